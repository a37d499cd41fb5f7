#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/model.h"
#include "dnsresolve.h"
#include "log.h"
#include "pool.h"

#define DNS_ADDRS_MAX 64 /* addresses kept per name */

/* What each name resolved to last (control thread only): kept so that a failed lookup
 * keeps the addresses, and a refresh can tell a change. */
struct dns_name {
	struct dns_name *next;
	char *name;
	char *addrs[DNS_ADDRS_MAX]; /* as the resolver ordered them (DNS_ROUND_ROBIN: first) */
	size_t n;
};
static struct dns_name *names;

static struct dns_name *name_find(const char *name)
{
	for (struct dns_name *d = names; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static int addr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Do the two lists hold the same addresses (a resolver may rotate their order)? */
static bool same_set(char *const *a, size_t na, char *const *b, size_t nb)
{
	char *x[DNS_ADDRS_MAX], *y[DNS_ADDRS_MAX];

	if (na != nb)
		return false;
	memcpy(x, a, na * sizeof(*a));
	memcpy(y, b, nb * sizeof(*b));
	qsort(x, na, sizeof(*x), addr_cmp);
	qsort(y, nb, sizeof(*y), addr_cmp);
	for (size_t i = 0; i < na; i++)
		if (strcmp(x[i], y[i]) != 0)
			return false;
	return true;
}

/* Look name up now: true and the store updated when it resolved (*changed says whether
 * its addresses differ from before); false (store untouched) when it did not. */
static bool lookup(const char *name, bool *changed)
{
	struct addrinfo hints, *res = NULL;
	char *got[DNS_ADDRS_MAX];
	size_t n = 0;
	struct dns_name *d;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
		log_warnx("resolve %s: %s", name, gai_strerror(rc));
		return false;
	}
	for (struct addrinfo *a = res; a != NULL && n < DNS_ADDRS_MAX; a = a->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *src =
		    a->ai_family == AF_INET
			? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		bool dup = false;

		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    inet_ntop(a->ai_family, src, text, sizeof(text)) == NULL)
			continue;
		for (size_t i = 0; i < n && !dup; i++)
			dup = strcmp(got[i], text) == 0;
		if (!dup && (got[n] = strdup(text)) != NULL)
			n++;
	}
	freeaddrinfo(res);
	if (n == 0)
		return false;
	if ((d = name_find(name)) == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
			free(d);
			for (size_t i = 0; i < n; i++)
				free(got[i]);
			return false;
		}
		d->next = names;
		names = d;
		*changed = true;
	} else if (!*changed) {
		*changed = !same_set(d->addrs, d->n, got, n);
	}
	for (size_t i = 0; i < d->n; i++)
		free(d->addrs[i]);
	memcpy(d->addrs, got, n * sizeof(*got));
	d->n = n;
	return true;
}

void dns_cleanup(void)
{
	while (names != NULL) {
		struct dns_name *d = names;

		names = d->next;
		for (size_t i = 0; i < d->n; i++)
			free(d->addrs[i]);
		free(d->name);
		free(d);
	}
}

static bool se_dns(const struct cfg_se *se)
{
	return se->resolution == SE_RES_DNS || se->resolution == SE_RES_DNS_ROUND_ROBIN;
}

/* The names a DNS ServiceEntry asks for: its endpoints' addresses that are not IP
 * addresses, or, without endpoints, its hosts (not wildcards). */
static void each_name(const struct cfg_se *se, void (*fn)(const char *name, void *arg), void *arg)
{
	if (se->nendpoints == 0) {
		for (size_t h = 0; h < se->hosts.n; h++)
			if (se->hosts.v[h][0] != '*')
				fn(se->hosts.v[h], arg);
		return;
	}
	for (size_t i = 0; i < se->nendpoints; i++)
		if (!is_ip(se->endpoints[i].address))
			fn(se->endpoints[i].address, arg);
}

static void count_name(const char *name, void *arg)
{
	(void)name;
	(*(size_t *)arg)++;
}

bool dns_has_names(const struct cfg_set *set)
{
	size_t n = 0;

	for (size_t i = 0; i < set->nses; i++)
		if (se_dns(set->ses[i]))
			each_name(set->ses[i], count_name, &n);
	return n > 0;
}

static void refresh_name(const char *name, void *arg)
{
	lookup(name, arg);
}

bool dns_refresh(const struct cfg_set *set)
{
	bool changed = false;

	for (size_t i = 0; i < set->nses; i++)
		if (se_dns(set->ses[i]))
			each_name(set->ses[i], refresh_name, &changed);
	return changed;
}

/* Append copies of e, one per address name has (the first only when one is enough). */
static void expand(struct pool *p, const struct se_endpoint *e, const char *name,
		   const char *dns_host, bool first_only, struct se_endpoint *out, size_t *n)
{
	bool changed = false;
	const struct dns_name *d;

	if (!lookup(name, &changed) && name_find(name) != NULL)
		log_warnx("resolve %s: keeping the addresses it had", name);
	if ((d = name_find(name)) == NULL) {
		out[(*n)++] = *e; /* no address yet: link leaves it out (503 UH until it has) */
		return;
	}
	for (size_t i = 0; i < d->n && (!first_only || i == 0); i++) {
		struct se_endpoint *x = &out[(*n)++];

		*x = *e;
		x->address = pool_strdup(p, d->addrs[i]);
		x->dns_host = dns_host;
	}
}

void dns_resolve(struct pool *p, struct cfg_set *set)
{
	set->dns_resolved = true;
	for (size_t i = 0; i < set->nses; i++) {
		struct cfg_se *se = set->ses[i];
		bool first_only = se->resolution == SE_RES_DNS_ROUND_ROBIN;
		size_t nin = se->nendpoints ? se->nendpoints : se->hosts.n, n = 0;
		struct se_endpoint *out;

		if (!se_dns(se))
			continue;
		out = pool_calloc(p, nin * DNS_ADDRS_MAX, sizeof(*out));
		if (se->nendpoints == 0) {
			for (size_t h = 0; h < se->hosts.n; h++) {
				struct se_endpoint e;

				if (se->hosts.v[h][0] == '*')
					continue;
				memset(&e, 0, sizeof(e));
				e.address = se->hosts.v[h];
				e.dns_host = se->hosts.v[h];
				expand(p, &e, se->hosts.v[h], se->hosts.v[h], first_only, out, &n);
			}
		} else {
			for (size_t k = 0; k < se->nendpoints; k++) {
				const struct se_endpoint *e = &se->endpoints[k];

				if (is_ip(e->address))
					out[n++] = *e;
				else
					expand(p, e, e->address, NULL, first_only, out, &n);
			}
		}
		se->resolved = out;
		se->nresolved = n;
	}
}
