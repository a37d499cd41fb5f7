#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config/model.h"
#include "dnsresolve.h"
#include "log.h"
#include "pool.h"

#define DNS_ADDRS_MAX 64    /* addresses kept per name */
#define DNS_TIMEOUT_MS 5000 /* one round of lookups, all names: Envoy's DNS timeout */

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

/* Store what name resolved to (res): *changed when its addresses differ from before;
 * false (store untouched) when res holds no address. */
static bool store(const char *name, const struct addrinfo *res, bool *changed)
{
	char *got[DNS_ADDRS_MAX];
	size_t n = 0;
	struct dns_name *d;

	for (const struct addrinfo *a = res; a != NULL && n < DNS_ADDRS_MAX; a = a->ai_next) {
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

/* A lookup getaddrinfo_a still runs after its deadline: glibc owns it until it ends, so
 * it is kept here and freed by a later round. */
struct dns_query {
	struct gaicb cb;
	struct addrinfo hints;
	char *name, *service;
	struct dns_query *next;
};
static struct dns_query *abandoned;

static void query_free(struct dns_query *q)
{
	if (q->cb.ar_result != NULL)
		freeaddrinfo(q->cb.ar_result);
	free(q->name);
	free(q->service);
	free(q);
}

static void reap_abandoned(void)
{
	struct dns_query **pp = &abandoned;

	while (*pp != NULL) {
		struct dns_query *q = *pp;

		if (gai_error(&q->cb) == EAI_INPROGRESS) {
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		query_free(q);
	}
}

int dns_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
		    int timeout_ms, struct addrinfo **res, bool *timed_out)
{
	struct dns_query *q = calloc(1, sizeof(*q));
	struct gaicb *cbs[1];
	struct timespec left;
	int rc;

	*res = NULL;
	*timed_out = false;
	reap_abandoned();
	if (q == NULL || (q->name = strdup(host)) == NULL ||
	    (port != NULL && (q->service = strdup(port)) == NULL)) {
		if (q != NULL)
			query_free(q);
		return EAI_MEMORY;
	}
	q->hints = *hints;
	q->cb.ar_name = q->name;
	q->cb.ar_service = q->service;
	q->cb.ar_request = &q->hints;
	cbs[0] = &q->cb;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, cbs, 1, NULL)) != 0) {
		query_free(q);
		return rc;
	}
	left.tv_sec = timeout_ms / 1000;
	left.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
	while (gai_error(&q->cb) == EAI_INPROGRESS &&
	       gai_suspend((const struct gaicb *const *)cbs, 1, &left) == EAI_INTR)
		; /* a signal: wait the rest (left is not updated: at most once more) */
	rc = gai_error(&q->cb);
	if (rc == EAI_INPROGRESS && gai_cancel(&q->cb) != EAI_CANCELED) {
		q->next = abandoned; /* glibc still owns it */
		abandoned = q;
		*timed_out = true;
		return EAI_AGAIN;
	}
	if (rc == EAI_INPROGRESS || rc == EAI_CANCELED) {
		query_free(q);
		*timed_out = true;
		return EAI_AGAIN;
	}
	if (rc == 0) {
		*res = q->cb.ar_result; /* the caller's to free */
		q->cb.ar_result = NULL;
	}
	query_free(q);
	return rc;
}

/* Resolve the names at once (getaddrinfo_a), all within DNS_TIMEOUT_MS: a resolver that
 * does not answer holds the control thread that long at most, not per name. */
static void resolve_all(char **list, size_t n, bool *changed)
{
	struct dns_query **q = calloc(n ? n : 1, sizeof(*q));
	struct gaicb **cbs = calloc(n ? n : 1, sizeof(*cbs));
	struct timespec deadline, now;
	size_t started = 0;

	reap_abandoned();
	if (q == NULL || cbs == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((q[i] = calloc(1, sizeof(**q))) == NULL ||
		    (q[i]->name = strdup(list[i])) == NULL)
			break;
		q[i]->hints.ai_family = AF_UNSPEC;
		q[i]->hints.ai_socktype = SOCK_STREAM;
		q[i]->cb.ar_name = q[i]->name;
		q[i]->cb.ar_request = &q[i]->hints;
		cbs[i] = &q[i]->cb;
		started = i + 1;
	}
	if (started > 0 && getaddrinfo_a(GAI_NOWAIT, cbs, (int)started, NULL) != 0) {
		log_warnx("resolve: getaddrinfo_a failed");
		for (size_t i = 0; i < started; i++)
			cbs[i]->ar_result = NULL;
		goto out_free;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += DNS_TIMEOUT_MS / 1000;
	for (;;) {
		bool pending = false;
		struct timespec left;

		for (size_t i = 0; i < started && !pending; i++)
			pending = gai_error(cbs[i]) == EAI_INPROGRESS;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!pending || now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
			break;
		left.tv_sec = deadline.tv_sec - now.tv_sec;
		left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		(void)gai_suspend((const struct gaicb *const *)cbs, (int)started, &left);
	}
	for (size_t i = 0; i < started; i++) {
		int rc = gai_error(cbs[i]);

		if (rc == EAI_INPROGRESS && gai_cancel(cbs[i]) != EAI_CANCELED) {
			log_warnx("resolve %s: no answer within %d ms", q[i]->name, DNS_TIMEOUT_MS);
			q[i]->next = abandoned; /* glibc still owns it */
			abandoned = q[i];
			q[i] = NULL;
			continue;
		}
		if (rc == EAI_INPROGRESS || rc == EAI_CANCELED)
			log_warnx("resolve %s: no answer within %d ms", q[i]->name, DNS_TIMEOUT_MS);
		else if (rc != 0)
			log_warnx("resolve %s: %s", q[i]->name, gai_strerror(rc));
		else if (!store(q[i]->name, cbs[i]->ar_result, changed))
			log_warnx("resolve %s: no IPv4 or IPv6 address", q[i]->name);
	}
out_free:
	for (size_t i = 0; i < n; i++)
		if (q[i] != NULL)
			query_free(q[i]);
out:
	free(q);
	free(cbs);
}

void dns_cleanup(void)
{
	while (abandoned != NULL) { /* at exit: let glibc finish before freeing */
		struct dns_query *q = abandoned;

		abandoned = q->next;
		if (gai_error(&q->cb) == EAI_INPROGRESS && gai_cancel(&q->cb) == EAI_NOTCANCELED) {
			const struct gaicb *one[1] = {&q->cb};

			(void)gai_suspend(one, 1, NULL);
		}
		query_free(q);
	}
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

/* The distinct names of the set, collected for one round of lookups. */
struct name_list {
	char **v;
	size_t n, cap;
};

static void add_name(const char *name, void *arg)
{
	struct name_list *l = arg;
	char **grown;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;

		if ((grown = realloc(l->v, cap * sizeof(*grown))) == NULL)
			return;
		l->v = grown;
		l->cap = cap;
	}
	l->v[l->n++] = (char *)name;
}

/* Look every name of the set up; true when some name's addresses changed. */
static bool resolve_set(const struct cfg_set *set)
{
	struct name_list l = {NULL, 0, 0};
	bool changed = false;

	for (size_t i = 0; i < set->nses; i++)
		if (se_dns(set->ses[i]))
			each_name(set->ses[i], add_name, &l);
	if (l.n > 0)
		resolve_all(l.v, l.n, &changed);
	free(l.v);
	return changed;
}

bool dns_refresh(const struct cfg_set *set)
{
	return resolve_set(set);
}

/* Append copies of e, one per address name has (the first only when one is enough). */
static void expand(struct pool *p, const struct se_endpoint *e, const char *name,
		   const char *dns_host, bool first_only, struct se_endpoint *out, size_t *n)
{
	const struct dns_name *d = name_find(name);

	if (d == NULL) {
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
	(void)resolve_set(set); /* names that fail keep what they had (expand uses it) */
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
