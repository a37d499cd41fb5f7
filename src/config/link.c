#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "clock.h"
#include "delegate.h"
#include "diag.h"
#include "lb_hash.h"
#include "link.h"
#include "locality.h"
#include "load.h"
#include "model.h"
#include "node.h"
#include "pool.h"
#include "regex.h"
#include "retry.h"
#include "router.h"
#include "geoip.h"
#include "jwtauth.h"
#include "ratelimit.h"
#include "snapshot.h"
#include "tls.h"
#include "upstream.h"

/*
 * Linking runs once per generation on the control thread over everything loaded.  All
 * lookups go through hash maps built here (gateways by "ns/name", ServiceEntry hosts,
 * DestinationRule hosts, clusters, per-listener vhosts), so 10k VirtualServices link in
 * linear time.
 */

/* ---- a string-keyed open-addressing map in the pool ---- */

struct link_map {
	const char **keys;
	void **vals;
	uint32_t mask; /* slots - 1; 0 with keys == NULL before the first insert */
	size_t n;
};

static void link_map_grow(struct pool *p, struct link_map *m)
{
	uint32_t slots = m->keys ? (m->mask + 1) * 2 : 16, i, j;
	const char **keys = pool_calloc(p, slots, sizeof(*keys));
	void **vals = pool_calloc(p, slots, sizeof(*vals));

	for (i = 0; m->keys != NULL && i <= m->mask; i++) {
		if (m->keys[i] == NULL)
			continue;
		j = router_host_hash(m->keys[i], strlen(m->keys[i])) & (slots - 1);
		while (keys[j] != NULL)
			j = (j + 1) & (slots - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	m->keys = keys;
	m->vals = vals;
	m->mask = slots - 1;
}

/* The value slot of key; with create, inserts key (value NULL) when absent. */
static void **link_map_slot(struct pool *p, struct link_map *m, const char *key, bool create)
{
	uint32_t i;

	if (m->keys == NULL) {
		if (!create)
			return NULL;
		link_map_grow(p, m);
	}
	for (i = router_host_hash(key, strlen(key)) & m->mask; m->keys[i] != NULL;
	     i = (i + 1) & m->mask)
		if (strcmp(m->keys[i], key) == 0)
			return &m->vals[i];
	if (!create)
		return NULL;
	if ((m->n + 1) * 2 > m->mask + 1) {
		link_map_grow(p, m);
		return link_map_slot(p, m, key, true);
	}
	m->keys[i] = key;
	m->n++;
	return &m->vals[i];
}

static void *link_map_get(struct link_map *m, const char *key)
{
	void **v = link_map_slot(NULL, m, key, false);

	return v ? *v : NULL;
}

/* ---- link state ---- */

struct gw_info {
	struct cfg_gateway *gw;
	int *lidx;     /* per server: listener index, -1 when not served */
	bool *l4_used; /* per server: a tls/tcp route reaches it */
};

struct se_info {
	bool checked; /* resolution and addresses reported once */
	bool usable;
};

/* One (ServiceEntry, port) declaring a host. */
struct se_ref {
	struct cfg_se *se;
	struct se_info *info;
	struct se_port *port;
	size_t host_index;
	struct se_ref *next;
};

struct dr_wild {
	struct cfg_dr *dr;
	const char *suffix;
	size_t len;
};

struct claim {
	const struct cfg_gateway *gw;
	const struct gw_server *srv;
};

struct vbuild {
	struct vhost *vh;
	size_t cap;
	const struct cfg_vs *last_vs;       /* a VS is merged once per vhost */
	const struct http_route *catch_all; /* first route without match blocks */
};

/* The passthrough routes of one SNI host on one listener. */
struct sni_build {
	const char *host;
	struct l4_targets t;
	size_t cap;
};

struct lbuild {
	struct listener_cfg *lc;
	struct link_map hosts;  /* server host -> struct claim (conflicts) */
	struct link_map vhosts; /* vhost name -> struct vbuild */
	struct vbuild **order;  /* vhosts in creation order */
	size_t nvh, capvh;
	size_t capsrv;
	struct link_map sni; /* passthrough SNI host -> struct sni_build */
	struct sni_build **sni_order;
	size_t nsni, capsni;
	size_t captcp;
};

#define LINK_RECENT 64 /* power of two */

struct link {
	struct pool *p;
	struct diag *d;
	struct cfg_set *set;
	struct link_map gateways; /* "ns/name" -> gw_info */
	struct link_map se_hosts; /* host -> se_ref list */
	struct link_map se_ports; /* "host|port" -> se_ref (conflicts) */
	struct link_map drs;      /* fqdn -> cfg_dr */
	struct dr_wild *drwild;
	size_t ndrwild;
	struct link_map clusters; /* name -> cluster */
	struct link_map policies; /* traffic policies already checked (by address) */
	struct link_map tls;      /* "tls node|mesh SANs" -> tls_client_ctx (or link_tls_failed) */
	struct link_map regexes;  /* "c:" or "i:" + pattern -> compiled code, shared */
	struct {                  /* destinations resolved lately: routes repeat them */
		const char *fqdn, *subset;
		uint32_t port;
		struct cluster *c;
	} recent[LINK_RECENT];
	struct cluster **cl;
	size_t ncl, capcl;
	struct lbuild *lb;
	size_t nlb, caplb;
	struct link_map lkeys;              /* listener key -> index + 1 */
	struct http_retry *retries_default; /* Istio's, shared by routes without retries */
};

/* ---- small helpers ---- */

/* The child node at key, or n itself when absent: positions degrade to the parent. */
static struct node *link_at(struct node *n, const char *key)
{
	struct node *c = node_get(n, key);

	return c != NULL ? c : n;
}

static struct node *link_item(struct node *seq, size_t i)
{
	seq = node_real(seq);
	if (seq != NULL && seq->type == NODE_SEQ && i < seq->n)
		return seq->vals[i];
	return seq;
}

static struct node *link_spec(const struct cfg_meta *m)
{
	return link_at(m->node, "spec");
}

/* "file:line" of a node, for messages naming another resource. */
static const char *link_pos(struct link *l, const struct node *n)
{
	/* line and doc are there in a ghost too */
	if (n == NULL || n->doc == NULL || n->doc->file == NULL)
		return "?";
	return pool_printf(l->p, "%s:%d", n->doc->file, n->line);
}

static bool link_ends_with(const char *s, size_t slen, const char *suffix, size_t suflen)
{
	return slen >= suflen && memcmp(s + slen - suflen, suffix, suflen) == 0;
}

static bool link_kv_subset(const struct kv_list *sub, const struct kv_list *of)
{
	for (size_t i = 0; i < sub->n; i++) {
		size_t j;

		for (j = 0; j < of->n; j++)
			if (strcmp(sub->v[i].key, of->v[j].key) == 0 &&
			    strcmp(sub->v[i].value, of->v[j].value) == 0)
				break;
		if (j == of->n)
			return false;
	}
	return true;
}

static const char *link_kv_text(struct link *l, const struct kv_list *kv)
{
	const char *s = "";

	if (kv->n == 0)
		return "{}";
	for (size_t i = 0; i < kv->n; i++)
		s = pool_printf(l->p, "%s%s%s: %s", s, i ? ", " : "", kv->v[i].key, kv->v[i].value);
	return pool_printf(l->p, "{%s}", s);
}

static void *link_append(struct pool *p, void *arr, size_t *n, size_t *cap, size_t size)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;

		arr = pool_grow(p, arr, *cap, nc, size);
		*cap = nc;
	}
	(*n)++;
	return arr;
}

static const char *const link_protocol_names[] = {
    [GWP_HTTP] = "HTTP", [GWP_HTTPS] = "HTTPS", [GWP_HTTP2] = "HTTP2", [GWP_GRPC] = "GRPC",
    [GWP_TLS] = "TLS",   [GWP_TCP] = "TCP",     [GWP_MONGO] = "MONGO",
};

/* ---- Gateways and listeners ---- */

/* HTTPS and TLS servers share a port (SNI tells them apart), as Istio merges them. */
static bool link_tls_class(enum gw_protocol p)
{
	return p == GWP_HTTPS || p == GWP_TLS;
}

/* Relayed by SNI without terminating TLS (Istio treats HTTPS + PASSTHROUGH as TLS). */
static bool link_passthrough(const struct gw_server *srv)
{
	return link_tls_class(srv->protocol) && srv->tls.given && srv->tls.mode == TLSM_PASSTHROUGH;
}

static const char *const link_mode_names[] = {
    [TLSM_PASSTHROUGH] = "PASSTHROUGH",
    [TLSM_SIMPLE] = "SIMPLE",
    [TLSM_MUTUAL] = "MUTUAL",
    [TLSM_AUTO_PASSTHROUGH] = "AUTO_PASSTHROUGH",
    [TLSM_ISTIO_MUTUAL] = "ISTIO_MUTUAL",
    [TLSM_OPTIONAL_MUTUAL] = "OPTIONAL_MUTUAL",
};

/* "HTTPS with tls.mode SIMPLE", "HTTP", ...: what a server is, for messages. */
static const char *link_server_kind(struct link *l, const struct gw_server *srv)
{
	if (!srv->tls.given || !link_tls_class(srv->protocol))
		return link_protocol_names[srv->protocol];
	return pool_printf(l->p, "%s with tls.mode %s", link_protocol_names[srv->protocol],
			   link_mode_names[srv->tls.mode]);
}

static int link_listener(struct link *l, const struct cfg_gateway *gw, struct gw_server *srv)
{
	const char *bind = srv->bind != NULL ? srv->bind : "0.0.0.0";
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct listener_cfg *lc;
	struct lbuild *b;
	socklen_t sl;
	const char *key;
	void **slot;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)srv->port);
		sl = sizeof(*sin);
		key = pool_printf(l->p, "%s:%u", bind, srv->port);
	} else if (inet_pton(AF_INET6, bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)srv->port);
		sl = sizeof(*sin6);
		key = pool_printf(l->p, "[%s]:%u", bind, srv->port);
	} else {
		diag_error(l->d, link_at(srv->node, "bind"),
			   "bind \"%s\" is not an IP address (unix sockets are not supported)",
			   bind);
		return -1;
	}
	slot = link_map_slot(l->p, &l->lkeys, key, true);
	if (*slot != NULL) {
		b = &l->lb[(uintptr_t)*slot - 1];
		if (b->lc->protocol != srv->protocol &&
		    !(link_tls_class(b->lc->protocol) && link_tls_class(srv->protocol))) {
			const struct gw_server *first = b->lc->servers[0];

			diag_error(l->d, link_at(link_at(srv->node, "port"), "protocol"),
				   "protocol %s on %s differs from protocol %s of the server at %s",
				   link_protocol_names[srv->protocol], key,
				   link_protocol_names[b->lc->protocol], link_pos(l, first->node));
			return -1;
		}
	} else {
		l->lb = link_append(l->p, l->lb, &l->nlb, &l->caplb, sizeof(*l->lb));
		b = &l->lb[l->nlb - 1];
		lc = pool_alloc(l->p, sizeof(*lc));
		lc->key = key;
		lc->bind = bind;
		lc->port = srv->port;
		lc->addr = ss;
		lc->addrlen = sl;
		lc->protocol = srv->protocol;
		b->lc = lc;
		*slot = (void *)(uintptr_t)l->nlb;
	}
	lc = b->lc;
	lc->servers =
	    link_append(l->p, lc->servers, &lc->nservers, &b->capsrv, sizeof(*lc->servers));
	lc->servers[lc->nservers - 1] = srv;

	/* One host on one port belongs to one server: Istio would pick one silently. */
	for (size_t h = 0; h < srv->nhosts; h++) {
		struct claim *c;

		slot = link_map_slot(l->p, &b->hosts, srv->hosts[h].host, true);
		if ((c = *slot) != NULL) {
			if (c->srv == srv)
				diag_error(l->d, link_item(link_at(srv->node, "hosts"), h),
					   "host \"%s\" is listed twice", srv->hosts[h].host);
			else
				diag_error(l->d, link_item(link_at(srv->node, "hosts"), h),
					   "host \"%s\" on %s is already claimed by Gateway %s/%s "
					   "(server at %s)",
					   srv->hosts[h].host, key, c->gw->meta.ns,
					   c->gw->meta.name, link_pos(l, c->srv->node));
			continue;
		}
		c = pool_alloc(l->p, sizeof(*c));
		c->gw = gw;
		c->srv = srv;
		*slot = c;
	}
	return (int)(b - l->lb);
}

static void link_gateways(struct link *l)
{
	struct cfg_set *set = l->set;

	for (size_t g = 0; g < set->ngateways; g++) {
		struct cfg_gateway *gw = set->gateways[g];
		struct gw_info *gi = pool_alloc(l->p, sizeof(*gi));
		void **slot;

		gi->gw = gw;
		gi->lidx = pool_calloc(l->p, gw->nservers ? gw->nservers : 1, sizeof(int));
		gi->l4_used = pool_calloc(l->p, gw->nservers ? gw->nservers : 1, sizeof(bool));
		gw->key = pool_printf(l->p, "%s/%s", gw->meta.ns, gw->meta.name);
		slot = link_map_slot(l->p, &l->gateways, gw->key, true);
		if (*slot == NULL) /* the loader reports duplicate names */
			*slot = gi;
		for (size_t s = 0; s < gw->nservers; s++)
			gi->lidx[s] = -1;
		gw->served = link_kv_subset(&gw->selector, &l->set->main.labels);
		if (!gw->served) {
			diag_notice(
			    l->d, link_at(link_spec(&gw->meta), "selector"),
			    "not served: selector %s does not match this appliance's labels %s",
			    link_kv_text(l, &gw->selector), link_kv_text(l, &set->main.labels));
			continue;
		}
		for (size_t s = 0; s < gw->nservers; s++) {
			struct gw_server *srv = &gw->servers[s];
			struct node *at = link_at(link_at(srv->node, "port"), "protocol");

			if (srv->tls.given && srv->tls.mode == TLSM_AUTO_PASSTHROUGH)
				diag_error(
				    l->d, link_at(link_at(srv->node, "tls"), "mode"),
				    "AUTO_PASSTHROUGH is a mesh-only mode (an east-west "
				    "gateway routing SNI to mesh clusters); meshgate does not "
				    "implement it: use PASSTHROUGH with VirtualService tls routes");
			else if (srv->protocol == GWP_HTTPS && srv->tls.given &&
				 (srv->tls.mode == TLSM_SIMPLE || srv->tls.mode == TLSM_MUTUAL ||
				  srv->tls.mode == TLSM_OPTIONAL_MUTUAL ||
				  srv->tls.mode == TLSM_ISTIO_MUTUAL)) {
				/* terminated here: its context is built now, so every certificate
				 * problem is reported with the files named */
				srv->tls_ctx = tls_server_ctx_new(l->p, l->d, srv, &set->main);
			} else if (link_passthrough(srv) || srv->protocol == GWP_TCP) {
				/* relayed at L4: tls/tcp routes fill its tables (link_vs_l4) */
			} else if (srv->protocol == GWP_TLS && srv->tls.given)
				diag_error(l->d, link_at(link_at(srv->node, "tls"), "mode"),
					   "protocol TLS with tls.mode %s (TLS terminated in front "
					   "of tcp routes) is not served yet; PASSTHROUGH is",
					   link_mode_names[srv->tls.mode]);
			else if (link_tls_class(srv->protocol))
				diag_error(l->d, at, "protocol %s without tls is not served",
					   link_protocol_names[srv->protocol]);
			else if (srv->protocol != GWP_HTTP)
				diag_error(l->d, at, "protocol %s is not served yet",
					   link_protocol_names[srv->protocol]);
			gi->lidx[s] = link_listener(l, gw, srv);
		}
	}
}

/* ---- ServiceEntries and DestinationRules ---- */

static void link_index_ses(struct link *l)
{
	for (size_t i = 0; i < l->set->nses; i++) {
		struct cfg_se *se = l->set->ses[i];
		struct se_info *info = pool_alloc(l->p, sizeof(*info));
		struct node *hosts = link_at(link_spec(&se->meta), "hosts");

		for (size_t h = 0; h < se->hosts.n; h++) {
			const char *host = se->hosts.v[h];
			void **hslot = link_map_slot(l->p, &l->se_hosts, host, true);

			for (size_t pi = 0; pi < se->nports; pi++) {
				struct se_ref *r, *last;
				void **slot = link_map_slot(
				    l->p, &l->se_ports,
				    pool_printf(l->p, "%s|%u", host, se->ports[pi].number), true);

				if (*slot != NULL) {
					r = *slot;
					diag_error(
					    l->d, link_item(hosts, h),
					    "host %s port %u declared twice (first by "
					    "ServiceEntry %s/%s at %s)",
					    host, se->ports[pi].number, r->se->meta.ns,
					    r->se->meta.name,
					    link_pos(l, link_item(link_at(link_spec(&r->se->meta),
									  "hosts"),
								  r->host_index)));
					continue;
				}
				r = pool_alloc(l->p, sizeof(*r));
				r->se = se;
				r->info = info;
				r->port = &se->ports[pi];
				r->host_index = h;
				/* Appended: messages list ports in declaration order. */
				if ((last = *hslot) == NULL) {
					*hslot = r;
				} else {
					while (last->next != NULL)
						last = last->next;
					last->next = r;
				}
				*slot = r;
			}
		}
	}
}

static void link_index_drs(struct link *l)
{
	for (size_t i = 0; i < l->set->ndrs; i++) {
		struct cfg_dr *dr = l->set->drs[i];
		const char *fqdn = dr->fqdn != NULL ? dr->fqdn : dr->host;
		struct node *at = link_at(link_spec(&dr->meta), "host");
		void **slot;
		bool used = false;

		if (fqdn == NULL)
			continue;
		if (fqdn[0] == '*') {
			struct dr_wild *w;
			size_t flen = strlen(fqdn);

			l->drwild = pool_grow(l->p, l->drwild, l->ndrwild, l->ndrwild + 1,
					      sizeof(*l->drwild));
			w = &l->drwild[l->ndrwild++];
			w->dr = dr;
			w->suffix = fqdn + 1;
			w->len = flen - 1;
			/* Wildcard rules are few: a scan over the SE hosts is fine. */
			for (uint32_t s = 0; l->se_hosts.keys && s <= l->se_hosts.mask; s++) {
				const char *h = l->se_hosts.keys[s];

				if (h != NULL && (w->len == 0 ||
						  link_ends_with(h, strlen(h), w->suffix, w->len)))
					used = true;
			}
		} else {
			slot = link_map_slot(l->p, &l->drs, fqdn, true);
			if (*slot != NULL) {
				struct cfg_dr *first = *slot;

				diag_error(l->d, at,
					   "host %s already has a DestinationRule (%s/%s at %s)",
					   fqdn, first->meta.ns, first->meta.name,
					   link_pos(l, link_at(link_spec(&first->meta), "host")));
				continue;
			}
			*slot = dr;
			used = link_map_get(&l->se_hosts, fqdn) != NULL;
		}
		if (!used)
			diag_warn(
			    l->d, at,
			    "no ServiceEntry declares host %s: this DestinationRule has no effect",
			    fqdn);
	}
}

static struct cfg_dr *link_find_dr(struct link *l, const char *fqdn)
{
	struct cfg_dr *dr = link_map_get(&l->drs, fqdn);
	size_t flen = strlen(fqdn), best = 0;

	if (dr != NULL)
		return dr;
	/* Most specific wildcard wins (Istio's host lookup). */
	for (size_t i = 0; i < l->ndrwild; i++) {
		struct dr_wild *w = &l->drwild[i];

		if ((w->len == 0 ||
		     (flen > w->len && link_ends_with(fqdn, flen, w->suffix, w->len))) &&
		    (dr == NULL || w->len > best)) {
			dr = w->dr;
			best = w->len;
		}
	}
	return dr;
}

/* ---- clusters ---- */

static bool link_parse_ip(const char *s, uint32_t port, struct endpoint *ep)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep->addr;

	memset(&ep->addr, 0, sizeof(ep->addr));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		ep->addrlen = sizeof(*sin);
		return true;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		ep->addrlen = sizeof(*sin6);
		return true;
	}
	return false;
}

/* Can the SE's endpoints be used as static addresses?  Reported once per ServiceEntry. */
static bool link_se_usable(struct link *l, struct cfg_se *se, struct se_info *info)
{
	struct node *spec = link_spec(&se->meta), *eps = link_at(spec, "endpoints");
	struct endpoint tmp;
	size_t bad = 0;

	if (info->checked)
		return info->usable;
	info->checked = true;
	for (size_t i = 0; i < se->nendpoints; i++)
		if (!link_parse_ip(se->endpoints[i].address, 0, &tmp))
			bad++;
	switch (se->resolution) {
	case SE_RES_STATIC:
		for (size_t i = 0; bad > 0 && i < se->nendpoints; i++)
			if (!link_parse_ip(se->endpoints[i].address, 0, &tmp))
				diag_error(l->d, link_at(link_item(eps, i), "address"),
					   "endpoint address \"%s\" cannot be routed to: only IP "
					   "addresses are supported",
					   se->endpoints[i].address);
		info->usable = bad == 0;
		break;
	case SE_RES_DNS:
	case SE_RES_DNS_ROUND_ROBIN:
		/* names (endpoint addresses, or the hosts without endpoints) are resolved
		 * when serving (dnsresolve.c), not by a check */
		if (!l->set->dns_resolved && (bad > 0 || se->nendpoints == 0))
			diag_notice(l->d, link_at(spec, "resolution"),
				    "its names are resolved when meshgate serves, and again every "
				    "dnsRefreshRate");
		info->usable = true;
		break;
	case SE_RES_NONE:
	default:
		diag_error(l->d, link_at(spec, "resolution"),
			   "resolution NONE (the default) gives a gateway no address to route to: "
			   "use resolution STATIC with endpoints");
		info->usable = false;
		break;
	}
	return info->usable;
}

/* PASSTHROUGH (the original destination) has no meaning on a gateway.  Once per policy and
 * port, however many clusters use it. */
static void link_check_policy(struct link *l, const struct traffic_policy *tp, uint32_t port,
			      struct node *at)
{
	void **seen;

	if (!tp->given)
		return;
	seen = link_map_slot(l->p, &l->policies, pool_printf(l->p, "%p|%u", (const void *)tp, port),
			     true);
	if (*seen != NULL)
		return;
	*seen = (void *)tp;
	if (tp->lb.simple == LB_PASSTHROUGH)
		diag_error(l->d, link_at(link_at(at, "loadBalancer"), "simple"),
			   "loadBalancer.simple PASSTHROUGH is not supported by a gateway");
	for (size_t i = 0; i < tp->nports; i++) {
		const struct traffic_policy *pp = &tp->ports[i].policy;
		struct node *lb = link_at(tp->ports[i].node, "loadBalancer");

		if (tp->ports[i].port != port)
			continue;
		if (pp->lb.simple == LB_PASSTHROUGH)
			diag_error(l->d, link_at(lb, "simple"),
				   "loadBalancer.simple PASSTHROUGH is not supported by a gateway");
	}
}

/* The policy a cluster gets from its rule and subset, merged as Istio's MergeTrafficPolicy
 * does: the rule's fields, replaced as a whole by its portLevelSettings entry for the port;
 * then each field the subset sets, and the subset's entry for the port replacing them all
 * again.  loadBalancer is one field (simple, consistentHash, localityLbSetting, warmup). */
struct link_policy {
	const struct traffic_policy *lb; /* whose loadBalancer applies; NULL: the default */
	const struct conn_pool_settings *pool;
	const struct outlier_settings *outlier;
	struct node *tls;
};

static bool link_lb_given(const struct traffic_policy *tp)
{
	return tp->lb.simple != LB_UNSPECIFIED || tp->lb.hash.given || tp->lb.warmup_us > 0 ||
	       tp->lb.locality.given;
}

static void link_policy_apply(const struct traffic_policy *tp, uint32_t port,
			      struct link_policy *out)
{
	if (tp == NULL || !tp->given)
		return;
	if (link_lb_given(tp))
		out->lb = tp;
	if (tp->connection_pool.given)
		out->pool = &tp->connection_pool;
	if (tp->outlier.given)
		out->outlier = &tp->outlier;
	if (tp->tls != NULL)
		out->tls = tp->tls;
	for (size_t i = 0; i < tp->nports; i++) {
		const struct traffic_policy *pp = &tp->ports[i].policy;

		if (tp->ports[i].port != port)
			continue;
		/* "port level policies do not inherit": what the entry lacks is the default */
		out->lb = link_lb_given(pp) ? pp : NULL;
		out->pool = pp->connection_pool.given ? &pp->connection_pool : NULL;
		out->outlier = pp->outlier.given ? &pp->outlier : NULL;
		out->tls = pp->tls;
		break;
	}
}

static char link_tls_failed; /* map value for a tls block whose context could not be built */

/* Origination for cluster c: the context is built once per tls block (and per ServiceEntry
 * SAN list for ISTIO_MUTUAL), its errors reported once, at the block, files named. */
static void link_cluster_tls(struct link *l, struct cluster *c, struct node *tls)
{
	const struct str_list *sans = NULL;
	struct tls_client_ctx *ctx;
	struct node *mode;
	void **slot, **first;

	if (tls == NULL)
		return;
	/* only ISTIO_MUTUAL reads the ServiceEntry's accounts: other modes share a context */
	mode = node_get(tls, "mode");
	if (mode != NULL && mode->type == NODE_SCALAR && strcmp(mode->str, "ISTIO_MUTUAL") == 0 &&
	    c->se->subject_alt_names.n > 0)
		sans = &c->se->subject_alt_names;
	slot = link_map_slot(l->p, &l->tls,
			     pool_printf(l->p, "%p|%p", (void *)tls, (const void *)sans), true);
	if (*slot == NULL) {
		/* The same block with another SAN list decodes alike: report its problems
		 * once, through the first build. */
		first = link_map_slot(l->p, &l->tls, pool_printf(l->p, "%p", (void *)tls), true);
		if (*first == &link_tls_failed) {
			*slot = &link_tls_failed;
		} else if (*first != NULL) {
			struct diag quiet;

			diag_init(&quiet);
			ctx = tls_client_ctx_new(l->p, &quiet, tls, &l->set->main, sans);
			diag_fini(&quiet);
			*slot = ctx != NULL ? (void *)ctx : &link_tls_failed;
		} else {
			ctx = tls_client_ctx_new(l->p, l->d, tls, &l->set->main, sans);
			*slot = *first = ctx != NULL ? (void *)ctx : &link_tls_failed;
		}
	}
	if (*slot == &link_tls_failed)
		return;
	ctx = *slot;
	if (ctx->ctx == NULL)
		return; /* DISABLE */
	c->tls = ctx;
	if (ctx->sni != NULL)
		c->tls_name = ctx->sni;
	else if (ctx->mesh) /* what Istio's sidecars send to each other */
		c->tls_name = pool_printf(l->p, "outbound_.%u_.%s_.%s", c->port,
					  c->subset != NULL ? c->subset : "", c->host);
	else
		c->tls_name = c->host;
	c->tls_id = tls_client_origin_id(ctx, c->tls_name);
}

static uint32_t link_endpoint_port(const struct se_endpoint *ep, const struct se_port *sp)
{
	if (sp->name != NULL) {
		for (size_t i = 0; i < ep->ports.n; i++)
			if (strcmp(ep->ports.v[i].key, sp->name) == 0)
				return (uint32_t)strtoul(ep->ports.v[i].value, NULL, 10);
	}
	return sp->target_port != 0 ? sp->target_port : sp->number;
}

/* loadBalancer.localityLbSetting, seen from the appliance's own locality (main config). */
static void link_cluster_locality(struct link *l, struct cluster *c, const struct link_policy *pol)
{
	const struct locality_lb *ll =
	    pol->lb != NULL && pol->lb->lb.locality.given ? &pol->lb->lb.locality : NULL;

	locality_assign(l->p, c, ll, l->set->main.locality, &l->set->main.labels);
}

/* loadBalancer.consistentHash of the merged policy (a loadBalancer with `simple` has none). */
static void link_cluster_hash(struct link *l, struct cluster *c, const struct link_policy *pol)
{
	const struct consistent_hash *ch =
	    pol->lb != NULL && pol->lb->lb.hash.given ? &pol->lb->lb.hash : NULL;

	if (ch == NULL || c->nendpoints == 0)
		return;
	c->hash_policy = ch;
	c->hash_table = lb_hash_build(l->p, c->endpoints, c->nendpoints, ch);
	if (c->hash_table == NULL)
		diag_error(l->d, ch->node, "out of memory building the consistent-hash table");
}

/* Istio's choice of the upstream protocol: ports declared HTTP/2 (HTTP2, GRPC, GRPC-WEB)
 * speak it; h2UpgradePolicy UPGRADE upgrades any other port, DO_NOT_UPGRADE only keeps an
 * HTTP/1.1 port as it is; useClientProtocol overrides both with the client's protocol,
 * decided per request (proxy.c). */
static bool link_cluster_http2(const char *protocol, const struct conn_pool_settings *cp)
{
	if (cp != NULL && cp->use_client_protocol)
		return false;
	if (protocol != NULL && (strcmp(protocol, "HTTP2") == 0 || strcmp(protocol, "GRPC") == 0 ||
				 strcmp(protocol, "GRPC-WEB") == 0))
		return true;
	return cp != NULL && cp->h2_upgrade == DR_H2_UPGRADE;
}

static struct cluster *link_cluster_new(struct link *l, const char *name, const char *fqdn,
					struct se_ref *r, struct cfg_dr *dr,
					const struct dr_subset *sub, struct node *at)
{
	struct cluster *c = pool_alloc(l->p, sizeof(*c));
	struct cfg_se *se = r->se;
	struct link_policy pol;
	size_t n = 0;

	c->name = name;
	c->host = fqdn;
	c->port = r->port->number;
	c->subset = sub != NULL ? sub->name : NULL;
	c->se = se;
	c->dr = dr;
	memset(&pol, 0, sizeof(pol));
	if (dr != NULL) {
		link_policy_apply(&dr->policy, c->port, &pol);
		link_check_policy(l, &dr->policy, c->port,
				  link_at(link_spec(&dr->meta), "trafficPolicy"));
	}
	if (sub != NULL) {
		link_policy_apply(&sub->policy, c->port, &pol);
		link_check_policy(l, &sub->policy, c->port, link_at(sub->node, "trafficPolicy"));
	}
	c->lb = pol.lb != NULL && pol.lb->lb.simple != LB_UNSPECIFIED ? pol.lb->lb.simple
								      : LB_LEAST_REQUEST;
	c->warmup_us = pol.lb != NULL ? pol.lb->lb.warmup_us : 0;
	c->pool_limits = pol.pool;
	c->http2 = link_cluster_http2(r->port->protocol, pol.pool);
	c->outlier = pol.outlier;
	link_cluster_tls(l, c, pol.tls);

	if (link_se_usable(l, se, r->info)) {
		bool dns = se->resolution == SE_RES_DNS || se->resolution == SE_RES_DNS_ROUND_ROBIN;
		const struct se_endpoint *eps =
		    dns && l->set->dns_resolved ? se->resolved : se->endpoints;
		size_t neps = dns && l->set->dns_resolved ? se->nresolved : se->nendpoints;

		c->endpoints = pool_calloc(l->p, neps ? neps : 1, sizeof(*c->endpoints));
		for (size_t i = 0; i < neps; i++) {
			const struct se_endpoint *sep = &eps[i];
			struct endpoint *ep = &c->endpoints[n];
			uint32_t port;

			if (sub != NULL && !link_kv_subset(&sub->labels, &sep->labels))
				continue;
			/* a host's own addresses serve only that host (DNS without endpoints) */
			if (sep->dns_host != NULL && strcmp(sep->dns_host, fqdn) != 0)
				continue;
			port = link_endpoint_port(sep, r->port);
			if (!link_parse_ip(sep->address, port, ep))
				continue;
			ep->name = strchr(sep->address, ':') != NULL
				       ? pool_printf(l->p, "[%s]:%u", sep->address, port)
				       : pool_printf(l->p, "%s:%u", sep->address, port);
			ep->weight = sep->weight != 0 ? sep->weight : 1;
			ep->labels = sep->labels;
			ep->locality = sep->locality;
			ep->cluster = c;
			n++;
		}
		c->nendpoints = n;
		for (size_t k = 0; k < l->set->main.nhealth_checks; k++) {
			const struct cfg_health_check *hc = &l->set->main.health_checks[k];

			if (hc->host != NULL && strcmp(hc->host, c->host) == 0 &&
			    (hc->port == 0 || hc->port == c->port)) {
				c->health_check = hc;
				break;
			}
		}
		link_cluster_locality(l, c, &pol);
		link_cluster_hash(l, c, &pol);
		n = c->nendpoints; /* distribute may drop endpoints given no share */
		if (n == 0 && !(dns && !l->set->dns_resolved)) /* names wait for serving */
			diag_warn(l->d, at,
				  "cluster %s has no endpoints: requests to it will get 503 (UH)",
				  name);
	}
	upstream_prepare(l->p, c); /* cumulative weights: no sum per pick */
	c->index = (uint32_t)l->ncl;
	l->cl = link_append(l->p, l->cl, &l->ncl, &l->capcl, sizeof(*l->cl));
	l->cl[l->ncl - 1] = c;
	return c;
}

static const char *link_port_list(struct link *l, struct se_ref *refs)
{
	const char *s = "";

	for (struct se_ref *r = refs; r != NULL; r = r->next)
		s = pool_printf(l->p, "%s%s%u", s, *s ? ", " : "", r->port->number);
	return s;
}

static const char *link_subset_list(struct link *l, const struct cfg_dr *dr)
{
	const char *s = "";

	for (size_t i = 0; i < dr->nsubsets; i++)
		s = pool_printf(l->p, "%s%s%s", s, i ? ", " : "", dr->subsets[i].name);
	return s;
}

/* Destination -> ServiceEntry host and port (+ DestinationRule subset) -> cluster. */
static void link_destination(struct link *l, struct destination *dest)
{
	const char *fqdn = dest->fqdn != NULL ? dest->fqdn : dest->host, *subset;
	struct se_ref *refs, *r, *pick = NULL;
	const struct dr_subset *sub = NULL;
	struct cfg_dr *dr = NULL;
	const char *name;
	uint32_t port = dest->port;
	struct cluster *c;
	char key[512];
	void **slot;
	uint32_t h;
	int n;

	if (fqdn == NULL)
		return;
	subset = dest->subset != NULL ? dest->subset : "";
	h = (router_host_hash(fqdn, strlen(fqdn)) ^ router_host_hash(subset, strlen(subset)) ^
	     dest->port) &
	    (LINK_RECENT - 1);
	if (l->recent[h].c != NULL && dest->port == l->recent[h].port &&
	    strcmp(fqdn, l->recent[h].fqdn) == 0 && strcmp(subset, l->recent[h].subset) == 0) {
		dest->cluster = l->recent[h].c;
		return;
	}
	refs = link_map_get(&l->se_hosts, fqdn);
	if (refs == NULL) {
		diag_error(l->d, link_at(dest->node, "host"),
			   "destination host %s is not declared by any ServiceEntry", fqdn);
		return;
	}
	if (port == 0) {
		if (refs->next != NULL) {
			diag_error(l->d, dest->node,
				   "destination port required: service %s has several ports (%s)",
				   fqdn, link_port_list(l, refs));
			return;
		}
		pick = refs;
	} else {
		for (r = refs; r != NULL && pick == NULL; r = r->next)
			if (r->port->number == port)
				pick = r;
		if (pick == NULL) {
			diag_error(l->d, link_at(dest->node, "port"),
				   "port %u is not declared for host %s (ServiceEntry ports: %s)",
				   port, fqdn, link_port_list(l, refs));
			return;
		}
	}
	port = pick->port->number;
	if (dest->subset != NULL && dest->subset[0] != '\0') {
		dr = link_find_dr(l, fqdn);
		if (dr == NULL || dr->nsubsets == 0) {
			diag_error(l->d, link_at(dest->node, "subset"),
				   "subset %s: no DestinationRule for host %s defines subsets",
				   dest->subset, fqdn);
			return;
		}
		for (size_t i = 0; i < dr->nsubsets && sub == NULL; i++)
			if (strcmp(dr->subsets[i].name, dest->subset) == 0)
				sub = &dr->subsets[i];
		if (sub == NULL) {
			diag_error(l->d, link_at(dest->node, "subset"),
				   "subset %s not found in DestinationRule %s/%s (subsets: %s)",
				   dest->subset, dr->meta.ns, dr->meta.name,
				   link_subset_list(l, dr));
			return;
		}
	} else {
		dr = link_find_dr(l, fqdn);
	}
	/* Most destinations name a cluster already made: format the key on the stack. */
	n = snprintf(key, sizeof(key), "outbound|%u|%s|%s", port, sub ? sub->name : "", fqdn);
	name = n >= 0 && (size_t)n < sizeof(key)
		   ? key
		   : pool_printf(l->p, "outbound|%u|%s|%s", port, sub ? sub->name : "", fqdn);
	if ((c = link_map_get(&l->clusters, name)) == NULL) {
		if (name == key)
			name = pool_strdup(l->p, key);
		slot = link_map_slot(l->p, &l->clusters, name, true);
		*slot = c = link_cluster_new(l, name, fqdn, pick, dr, sub, dest->node);
	}
	dest->cluster = c;
	l->recent[h].fqdn = fqdn;
	l->recent[h].subset = subset;
	l->recent[h].port = dest->port;
	l->recent[h].c = c;
}

/* ---- extension providers (main config) ---- */

/* Each authorizer's service and port resolves to the cluster a route destination naming
 * them gets (ServiceEntry endpoints, DestinationRule policies, the same pools).  The HTTP
 * authorizer is asked over HTTP/1.1, the gRPC one over HTTP/2: the port must say so. */
static void link_ext_authz(struct link *l)
{
	struct cfg_main *m = &l->set->main;

	for (size_t i = 0; i < m->next_authz; i++) {
		struct ext_authz *x = &m->ext_authz[i];
		struct se_ref *refs = link_map_get(&l->se_hosts, x->service), *r;

		if (refs == NULL) {
			diag_error(l->d, x->service_node,
				   "extension provider %s: service %s is not declared by any "
				   "ServiceEntry",
				   x->name, x->service);
			continue;
		}
		for (r = refs; r != NULL && r->port->number != x->port; r = r->next)
			;
		if (r == NULL) {
			diag_error(l->d, x->port_node,
				   "extension provider %s: port %u is not declared for host %s "
				   "(ServiceEntry ports: %s)",
				   x->name, x->port, x->service, link_port_list(l, refs));
			continue;
		}
		x->dest.host = x->service;
		x->dest.fqdn = x->service;
		x->dest.port = x->port;
		x->dest.node = x->node;
		link_destination(l, &x->dest);
		if (x->dest.cluster == NULL)
			continue;
		if (x->kind == EXT_AUTHZ_HTTP && x->dest.cluster->http2) {
			diag_error(
			    l->d, x->port_node,
			    "extension provider %s: port %u of %s speaks HTTP/2 upstream, "
			    "and the HTTP authorizer is asked over HTTP/1.1 (declare the port "
			    "with protocol HTTP)",
			    x->name, x->port, x->service);
			x->dest.cluster = NULL;
		} else if (x->kind == EXT_AUTHZ_GRPC && !x->dest.cluster->http2) {
			diag_error(
			    l->d, x->port_node,
			    "extension provider %s: port %u of %s does not speak HTTP/2 "
			    "upstream, and the gRPC authorizer is asked over HTTP/2 (declare "
			    "the port with protocol GRPC or HTTP2)",
			    x->name, x->port, x->service);
			x->dest.cluster = NULL;
		}
	}
}

/* ---- VirtualService routes ---- */

static void link_string_match(struct link *l, struct string_match *m, bool caseless)
{
	char err[256], buf[256];
	const char *key;
	void **slot;
	int n;

	if (m->kind == SM_NONE || m->value == NULL)
		return;
	m->len = strlen(m->value);
	if (m->kind != SM_REGEX || m->re != NULL)
		return;
	/* Generated configs repeat patterns across thousands of routes; compiled code is
	 * read-only, so one copy serves them all (JIT compilation dominates link time). */
	n = snprintf(buf, sizeof(buf), "%c:%s", caseless ? 'i' : 'c', m->value);
	key = n >= 0 && (size_t)n < sizeof(buf)
		  ? buf
		  : pool_printf(l->p, "%c:%s", caseless ? 'i' : 'c', m->value);
	if ((m->re = link_map_get(&l->regexes, key)) != NULL)
		return;
	slot = link_map_slot(l->p, &l->regexes, key == buf ? pool_strdup(l->p, buf) : key, true);
	m->re = regex_compile(l->p, m->value, caseless, err, sizeof(err));
	if (m->re == NULL)
		diag_error(l->d, link_at(m->node, "regex"), "invalid regex: %s", err);
	*slot = m->re; /* a bad pattern stays NULL: reported once per use */
}

static void link_header_matches(struct link *l, struct header_match *h, size_t n, bool header)
{
	for (size_t i = 0; i < n; i++) {
		/* Istio turns a header regex of "*" (not a valid RE2) into a presence match. */
		if (header && h[i].m.kind == SM_REGEX && h[i].m.value != NULL &&
		    strcmp(h[i].m.value, "*") == 0) {
			h[i].present_only = true;
			continue;
		}
		link_string_match(l, &h[i].m, false);
	}
}

/* Istio gateway references: "name" (VS namespace), "ns/name", "./name", and the legacy
 * "name.ns[.svc.cluster.local]" form. */
static const char *link_gateway_ref(struct link *l, const char *ref, const char *ns)
{
	const char *slash = strchr(ref, '/'), *dot, *dot2;

	if (slash != NULL) {
		if (slash - ref == 1 && ref[0] == '.')
			return pool_printf(l->p, "%s/%s", ns, slash + 1);
		return ref;
	}
	if ((dot = strchr(ref, '.')) == NULL)
		return pool_printf(l->p, "%s/%s", ns, ref);
	dot2 = strchr(dot + 1, '.');
	return pool_printf(l->p, "%.*s/%.*s",
			   (int)(dot2 != NULL ? (size_t)(dot2 - dot - 1) : strlen(dot + 1)),
			   dot + 1, (int)(dot - ref), ref);
}

/* \0..\9 and \\ only (RE2::Rewrite); returns the highest group named, or -1 when bad. */
static int link_rewrite_groups(const char *rw, char *bad)
{
	int max = 0;

	for (; *rw != '\0'; rw++) {
		if (*rw != '\\')
			continue;
		rw++;
		if (*rw >= '0' && *rw <= '9') {
			if (*rw - '0' > max)
				max = *rw - '0';
		} else if (*rw != '\\') {
			*bad = *rw;
			return -1;
		}
	}
	return max;
}

static void link_uri_regex_rewrite(struct link *l, struct http_route *r)
{
	uint32_t ncap = 0;
	char err[256], bad = 0;
	struct node *at;
	int max;

	if (r->more->rewrite->uri_regex.match == NULL || r->more->rewrite->uri_regex.re != NULL)
		return;
	at = link_at(link_at(r->node, "rewrite"), "uriRegexRewrite");
	r->more->rewrite->uri_regex.re =
	    regex_compile_search(l->p, r->more->rewrite->uri_regex.match, err, sizeof(err));
	if (r->more->rewrite->uri_regex.re == NULL) {
		diag_error(l->d, link_at(at, "match"), "invalid regex: %s", err);
		return;
	}
	if (r->more->rewrite->uri_regex.rewrite == NULL)
		return;
	max = link_rewrite_groups(r->more->rewrite->uri_regex.rewrite, &bad);
	if (max < 0) {
		diag_error(
		    l->d, link_at(at, "rewrite"),
		    "invalid escape \"\\%c\": use \\0..\\9 for groups and \\\\ for a backslash",
		    bad ? bad : ' ');
		return;
	}
	pcre2_pattern_info(r->more->rewrite->uri_regex.re, PCRE2_INFO_CAPTURECOUNT, &ncap);
	if ((uint32_t)max > ncap)
		diag_error(l->d, link_at(at, "rewrite"),
			   "rewrite refers to \\%d but the regex has %u capture group%s", max, ncap,
			   ncap == 1 ? "" : "s");
}

/* tls/tcp routes: gateway references resolved as for http, weights normalised. */
static void link_l4_validate(struct link *l, struct cfg_vs *vs, struct l4_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct l4_route *r = &routes[i];
		uint32_t sum = 0;

		for (size_t k = 0; k < r->nmatches; k++) {
			struct l4_match *m = &r->matches[k];

			for (size_t g = 0; g < m->gateways.n; g++)
				if (strcmp(m->gateways.v[g], "mesh") != 0)
					m->gateways.v[g] =
					    link_gateway_ref(l, m->gateways.v[g], vs->meta.ns);
		}
		if (r->nroute == 1)
			r->route[0].weight = 100;
		for (size_t d = 0; d < r->nroute; d++)
			sum += r->route[d].weight;
		r->total_weight = sum;
	}
}

/* Checks that hold whether or not the VirtualService is served (Istio validation). */
static void link_vs_validate(struct link *l, struct cfg_vs *vs)
{
	link_l4_validate(l, vs, vs->tls, vs->ntls);
	link_l4_validate(l, vs, vs->tcp, vs->ntcp);
	for (size_t i = 0; i < vs->nhttp; i++) {
		struct http_route *r = &vs->http[i];
		uint32_t sum = 0;

		for (size_t k = 0; k < r->nmatches; k++) {
			struct http_match *m = &r->matches[k];

			/* ignoreUriCase covers exact and prefix only (Istio's documentation;
			 * Envoy ignores case_sensitive for safe_regex). */
			link_string_match(l, &m->uri, false);
			link_string_match(l, &m->more->scheme, false);
			link_string_match(l, &m->more->method, false);
			link_string_match(l, &m->more->authority, false);
			link_header_matches(l, m->headers, m->nheaders, true);
			link_header_matches(l, m->more->without_headers, m->more->nwithout_headers,
					    true);
			link_header_matches(l, m->more->query_params, m->more->nquery_params,
					    false);
			for (size_t g = 0; g < m->more->gateways.n; g++)
				if (strcmp(m->more->gateways.v[g], "mesh") != 0)
					m->more->gateways.v[g] = link_gateway_ref(
					    l, m->more->gateways.v[g], vs->meta.ns);
		}
		for (size_t k = 0; k < r->more->cors->nallow_origins; k++)
			link_string_match(l, &r->more->cors->allow_origins[k], false);
		link_uri_regex_rewrite(l, r);

		/* One destination takes everything; several split by weight relative to
		 * their total, as Envoy's weighted clusters (the decoder refuses a total of 0,
		 * Istio's validation). */
		if (r->nroute == 1)
			r->route[0].weight = 100;
		for (size_t d = 0; d < r->nroute; d++)
			sum += r->route[d].weight;
		r->total_weight = sum;
	}
}

/* Resolution a served VirtualService needs: destinations, subsets, unsupported features. */
/* Does route r apply on a served gateway?  Not when every match block restricts it to
 * other gateways or to the mesh (per-match `gateways`, as in Istio's two-leg egress
 * VirtualServices): such a route is never taken here, so its destinations need not exist. */
static bool link_route_on_gateway(struct link *l, const struct http_route *r)
{
	if (r->nmatches == 0)
		return true;
	for (size_t k = 0; k < r->nmatches; k++) {
		const struct http_match *m = &r->matches[k];

		if (m->more->gateways.n == 0)
			return true;
		for (size_t g = 0; g < m->more->gateways.n; g++) {
			struct gw_info *gi;

			if (strcmp(m->more->gateways.v[g], "mesh") == 0)
				continue;
			gi = link_map_get(&l->gateways, m->more->gateways.v[g]);
			if (gi != NULL && gi->gw->served)
				return true;
		}
	}
	return false;
}

/* A route every request matches: no match block, or one block without any condition. */
static struct http_retry *link_retries_default(struct link *l)
{
	if (l->retries_default == NULL) {
		l->retries_default = pool_alloc(l->p, sizeof(*l->retries_default));
		l->retries_default->attempts = -1;
		retry_policy_default(&l->retries_default->policy);
	}
	return l->retries_default;
}

static bool link_route_matches_all(const struct http_route *r)
{
	if (r->nmatches == 0)
		return true;
	for (size_t k = 0; k < r->nmatches; k++) {
		const struct http_match *m = &r->matches[k];

		if (m->more->scheme.kind == SM_NONE && m->more->method.kind == SM_NONE &&
		    m->more->authority.kind == SM_NONE && m->nheaders == 0 &&
		    m->more->nwithout_headers == 0 && m->more->nquery_params == 0 && m->port == 0 &&
		    m->more->gateways.n == 0 &&
		    (m->uri.kind == SM_NONE ||
		     (m->uri.kind == SM_PREFIX && m->uri.len == 1 && m->uri.value[0] == '/')))
			return true;
	}
	return false;
}

static void link_vs_resolve(struct link *l, struct cfg_vs *vs)
{
	const struct http_route *all = NULL;

	for (size_t i = 0; i < vs->nhttp; i++) {
		struct http_route *r = &vs->http[i];

		if (all != NULL)
			diag_warn(l->d, r->node,
				  "this route can never match: the route at %s matches every "
				  "request first",
				  link_pos(l, all->node));
		else if (link_route_matches_all(r))
			all = r;
		if (!r->retries->given)
			r->retries = link_retries_default(l);
		if (!link_route_on_gateway(l, r))
			continue;
		/* Istio accepts it, Envoy has nothing to copy: say so rather than ignore it. */
		if (r->more->nmirrors > 0 &&
		    (r->more->redirect != NULL || r->more->direct_response->given))
			diag_warn(l->d, link_at(link_at(r->node, "mirrors"), "mirror"),
				  "mirroring has no effect on a %s route: nothing is forwarded",
				  r->more->redirect != NULL ? "redirect" : "directResponse");
		for (size_t k = 0; k < r->nmatches; k++) {
			struct http_match *m = &r->matches[k];

			if (m->more->source_labels.n > 0)
				diag_error(l->d, link_at(m->node, "sourceLabels"),
					   "sourceLabels selects sidecar workloads; it is not "
					   "supported on a gateway");
			if (m->more->source_namespace != NULL)
				diag_error(l->d, link_at(m->node, "sourceNamespace"),
					   "sourceNamespace selects sidecar workloads; it is not "
					   "supported on a gateway");
			for (size_t h = 0; h < m->nheaders + m->more->nwithout_headers; h++) {
				const struct header_match *hm =
				    h < m->nheaders ? &m->headers[h]
						    : &m->more->without_headers[h - m->nheaders];

				/* Istio's analyzer says the same (IST0149). */
				if (hm->claim_path != NULL && l->set->nra_rules == 0)
					diag_warn(l->d, hm->m.node,
						  "routing on a JWT claim (%s), but no "
						  "RequestAuthentication applies here: no request "
						  "has claims",
						  hm->name);
			}
		}
		for (size_t d = 0; d < r->nroute; d++)
			link_destination(l, &r->route[d].dest);
		for (size_t d = 0; d < r->more->nmirrors; d++)
			link_destination(l, &r->more->mirrors[d].dest);
	}
}

/* The host a VS host gets through a server host: the more specific of the two (Istio), or
 * NULL when they do not intersect.  Wildcards are "*" or "*.suffix". */
static const char *link_host_intersect(const char *v, const char *s)
{
	size_t vl = strlen(v), sl = strlen(s);
	bool vw = v[0] == '*', sw = s[0] == '*';

	if (strcmp(s, "*") == 0)
		return v;
	if (strcmp(v, "*") == 0)
		return s;
	if (!vw && !sw)
		return strcmp(v, s) == 0 ? v : NULL;
	if (sw && !vw)
		return vl > sl - 1 && link_ends_with(v, vl, s + 1, sl - 1) ? v : NULL;
	if (vw && !sw)
		return sl > vl - 1 && link_ends_with(s, sl, v + 1, vl - 1) ? s : NULL;
	if (link_ends_with(v + 1, vl - 1, s + 1, sl - 1))
		return v;
	if (link_ends_with(s + 1, sl - 1, v + 1, vl - 1))
		return s;
	return NULL;
}

static void link_vhost_add(struct link *l, struct lbuild *b, const char *name,
			   const struct cfg_vs *vs, const struct cfg_gateway *gw,
			   const struct gw_server *srv)
{
	void **slot;
	struct vbuild *vb;
	struct vhost *vh;

	/* A VirtualService with only tcp/tls routes has nothing for an HTTP listener; an
	 * empty vhost would shadow a less specific one ("*") and turn its hosts into 404s. */
	if (vs->nhttp == 0)
		return;
	slot = link_map_slot(l->p, &b->vhosts, name, true);
	vb = *slot;
	if (vb == NULL) {
		vb = pool_alloc(l->p, sizeof(*vb));
		vb->vh = pool_alloc(l->p, sizeof(*vb->vh));
		vb->vh->name = name;
		vb->vh->gateway = gw;
		vb->vh->server = srv;
		*slot = vb;
		b->order = link_append(l->p, b->order, &b->nvh, &b->capvh, sizeof(*b->order));
		b->order[b->nvh - 1] = vb;
	}
	/* Istio sets require_tls on a merged virtual host when any server it comes from
	 * redirects. */
	if (srv->protocol == GWP_HTTP && srv->tls.https_redirect)
		vb->vh->https_redirect = true;
	if (vb->last_vs == vs)
		return;
	vb->last_vs = vs;
	vh = vb->vh;
	/* Several VirtualServices merge in load order; a catch-all route before them hides
	 * everything that follows. */
	if (vb->catch_all != NULL && vb->catch_all->vs != NULL)
		diag_warn(l->d, link_spec(&vs->meta),
			  "routes for host %s can never match: VirtualService %s/%s (route at %s) "
			  "matches every request first",
			  name, vb->catch_all->vs->meta.ns, vb->catch_all->vs->meta.name,
			  link_pos(l, vb->catch_all->node));
	if (vh->nroutes + vs->nhttp > vb->cap) {
		/* Most vhosts get one VirtualService: size for it exactly, double after. */
		size_t nc = vb->cap ? vb->cap * 2 : vs->nhttp;

		while (nc < vh->nroutes + vs->nhttp)
			nc *= 2;
		vh->routes = pool_grow(l->p, vh->routes, vb->cap, nc, sizeof(*vh->routes));
		vb->cap = nc;
	}
	for (size_t i = 0; i < vs->nhttp; i++) {
		vh->routes[vh->nroutes++] = &vs->http[i];
		if (vb->catch_all == NULL && vs->http[i].nmatches == 0)
			vb->catch_all = &vs->http[i];
	}
}

/* Bind vs to one served gateway: its routes go to every listener vhost one of its hosts
 * gets through a server host.  Returns whether any host matched. */
static bool link_vs_bind(struct link *l, struct cfg_vs *vs, struct gw_info *gi)
{
	struct cfg_gateway *gw = gi->gw;
	bool any = false;

	for (size_t s = 0; s < gw->nservers; s++) {
		struct gw_server *srv = &gw->servers[s];
		struct lbuild *b = gi->lidx[s] >= 0 ? &l->lb[gi->lidx[s]] : NULL;

		for (size_t h = 0; h < srv->nhosts; h++) {
			const struct gw_host *gh = &srv->hosts[h];
			const char *ns = gh->ns;

			if (ns != NULL && strcmp(ns, ".") == 0)
				ns = gw->meta.ns;
			if (ns != NULL && strcmp(ns, "*") != 0 && strcmp(ns, vs->meta.ns) != 0)
				continue;
			for (size_t v = 0; v < vs->hosts.n; v++) {
				/* Short names mean NAME.<VS namespace>.svc.cluster.local, on a
				 * gateway as in the mesh (Istio's documented interpretation). */
				const char *host =
				    cfg_expand_host(l->p, vs->hosts.v[v], vs->meta.ns);
				const char *name = link_host_intersect(host, gh->host);

				if (name == NULL)
					continue;
				any = true;
				if (b != NULL &&
				    (srv->protocol == GWP_HTTP || srv->tls_ctx != NULL))
					link_vhost_add(l, b, name, vs, gw, srv);
			}
		}
	}
	return any;
}

/* ---- tls and tcp routes ---- */

/* Append (route, match) to a candidate list unless it is there already (a route reached
 * through two servers or gateways sharing the listener). Returns the new target or NULL. */
static struct l4_target *link_target_add(struct link *l, struct l4_targets *t, size_t *cap,
					 const struct cfg_vs *vs, const struct l4_route *r,
					 const struct l4_match *m, const struct cfg_gateway *gw)
{
	struct l4_target *x;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].route == r && t->v[i].match == m)
			return NULL;
	t->v = link_append(l->p, t->v, &t->n, cap, sizeof(*t->v));
	x = &t->v[t->n - 1];
	memset(x, 0, sizeof(*x));
	x->route = r;
	x->match = m;
	x->vs = vs;
	x->gateway = gw;
	if (m != NULL && m->destination_subnets.n > 0) {
		struct cidr *c = pool_calloc(l->p, m->destination_subnets.n, sizeof(*c));

		for (size_t k = 0; k < m->destination_subnets.n; k++)
			if (cidr_parse(m->destination_subnets.v[k], &c[x->nsubnets]))
				x->nsubnets++; /* the decoder refused what does not parse */
		x->subnets = c;
	}
	return x;
}

/* Does the match apply on gateway key (its own `gateways`, when given, must name it)? */
static bool link_l4_on(const struct l4_match *m, const char *key)
{
	if (m == NULL || m->gateways.n == 0)
		return true;
	for (size_t g = 0; g < m->gateways.n; g++)
		if (strcmp(m->gateways.v[g], key) == 0)
			return true;
	return false;
}

/* The server host a VS-side name gets on server host gh (namespace rules as for http). */
static const char *link_l4_host(const struct cfg_vs *vs, const struct cfg_gateway *gw,
				const struct gw_host *gh, const char *name)
{
	const char *ns = gh->ns;

	if (ns != NULL && strcmp(ns, ".") == 0)
		ns = gw->meta.ns;
	if (ns != NULL && strcmp(ns, "*") != 0 && strcmp(ns, vs->meta.ns) != 0)
		return NULL;
	return link_host_intersect(name, gh->host);
}

/* One SNI host of a tls match on one passthrough server: a candidate of its SNI entry. */
static void link_sni_add(struct link *l, struct lbuild *b, const char *host, struct cfg_vs *vs,
			 const struct l4_route *r, const struct l4_match *m, size_t si,
			 const struct cfg_gateway *gw)
{
	struct node *at = link_item(link_at(m->node, "sniHosts"), si);
	struct claim *c = link_map_get(&b->hosts, host);
	void **slot = link_map_slot(l->p, &b->sni, host, true);
	struct sni_build *sb = *slot;

	/* SNI picks terminating and passthrough servers alike: one name, one owner. */
	if (c != NULL && !link_passthrough(c->srv)) {
		diag_error(l->d, at,
			   "SNI host %s on %s belongs to the %s server of Gateway %s/%s (at %s): "
			   "this tls route would never be used",
			   host, b->lc->key, link_server_kind(l, c->srv), c->gw->meta.ns,
			   c->gw->meta.name, link_pos(l, c->srv->node));
		return;
	}
	if (sb == NULL) {
		sb = pool_alloc(l->p, sizeof(*sb));
		sb->host = host;
		*slot = sb;
		b->sni_order =
		    link_append(l->p, b->sni_order, &b->nsni, &b->capsni, sizeof(*b->sni_order));
		b->sni_order[b->nsni - 1] = sb;
	}
	for (size_t i = 0; i < sb->t.n; i++) {
		const struct l4_target *x = &sb->t.v[i];

		if (x->route == r && x->match == m)
			return;
		/* An earlier route for any destination address takes every connection. */
		if (x->nsubnets == 0) {
			diag_error(l->d, at,
				   "SNI host %s on %s is already routed by VirtualService %s/%s "
				   "(match at %s)",
				   host, b->lc->key, x->vs->meta.ns, x->vs->meta.name,
				   link_pos(l, x->match->node));
			return;
		}
	}
	link_target_add(l, &sb->t, &sb->cap, vs, r, m, gw);
}

/* A tcp route on a TCP listener, after the routes of earlier VirtualServices. */
static void link_tcp_add(struct link *l, struct lbuild *b, struct cfg_vs *vs,
			 const struct l4_route *r, const struct l4_match *m,
			 const struct cfg_gateway *gw)
{
	struct l4_targets *t = &b->lc->tcp;
	const struct l4_target *all = NULL;

	for (size_t i = 0; i < t->n && all == NULL; i++)
		if (t->v[i].nsubnets == 0 && t->v[i].route != r)
			all = &t->v[i];
	if (link_target_add(l, t, &b->captcp, vs, r, m, gw) != NULL && all != NULL)
		diag_warn(l->d, m != NULL ? m->node : r->node,
			  "this tcp route can never match on %s: the tcp route at %s takes every "
			  "connection first",
			  b->lc->key, link_pos(l, all->route->node));
}

/* Does the VirtualService bind to server srv of gw (a host of each intersects, within the
 * server host's namespace)?  Istio's pickMatchingGatewayHosts. */
static bool link_l4_binds(struct link *l, const struct cfg_vs *vs, const struct cfg_gateway *gw,
			  const struct gw_server *srv)
{
	for (size_t h = 0; h < srv->nhosts; h++)
		for (size_t v = 0; v < vs->hosts.n; v++)
			if (link_l4_host(vs, gw, &srv->hosts[h],
					 cfg_expand_host(l->p, vs->hosts.v[v], vs->meta.ns)) !=
			    NULL)
				return true;
	return false;
}

/* The servers a tls or tcp match reaches through one served gateway (port, and the
 * VirtualService bound through its hosts); fills their listeners' tables.  Its SNI hosts
 * are keys as written, like Envoy's server_names: the server hosts only bind.  *other gets
 * a server the match reaches that cannot take it. */
static bool link_l4_gateway(struct link *l, struct cfg_vs *vs, struct gw_info *gi,
			    const struct l4_route *r, const struct l4_match *m, bool tls,
			    const struct gw_server **other)
{
	struct cfg_gateway *gw = gi->gw;
	bool hit = false;

	for (size_t s = 0; s < gw->nservers; s++) {
		const struct gw_server *srv = &gw->servers[s];
		struct lbuild *b = gi->lidx[s] >= 0 ? &l->lb[gi->lidx[s]] : NULL;

		if (b == NULL || (m != NULL && m->port != 0 && m->port != srv->port) ||
		    !link_l4_binds(l, vs, gw, srv))
			continue;
		if (!(tls ? link_passthrough(srv) : srv->protocol == GWP_TCP)) {
			*other = srv;
			continue;
		}
		hit = gi->l4_used[s] = true;
		if (!tls)
			link_tcp_add(l, b, vs, r, m, gw);
		for (size_t si = 0; tls && si < m->sni_hosts.n; si++)
			link_sni_add(l, b, m->sni_hosts.v[si], vs, r, m, si, gw);
	}
	return hit;
}

/* A served VirtualService's tls and tcp routes: into the SNI tables of the PASSTHROUGH
 * servers and the route lists of the TCP servers they reach; destinations resolved for the
 * routes that are used. */
static void link_vs_l4(struct link *l, struct cfg_vs *vs, bool tls)
{
	struct l4_route *routes = tls ? vs->tls : vs->tcp;
	size_t n = tls ? vs->ntls : vs->ntcp;
	const char *what = tls ? "tls" : "tcp";

	for (size_t i = 0; i < n; i++) {
		struct l4_route *r = &routes[i];
		bool used = false;

		for (size_t k = 0; k < (r->nmatches ? r->nmatches : 1); k++) {
			const struct l4_match *m = r->nmatches ? &r->matches[k] : NULL;
			const struct gw_server *other = NULL;
			bool on = false, hit = false;

			for (size_t g = 0; g < vs->gateways.n; g++) {
				const char *ref = vs->gateways.v[g], *key;
				struct gw_info *gi;

				if (strcmp(ref, "mesh") == 0)
					continue;
				key = link_gateway_ref(l, ref, vs->meta.ns);
				gi = link_map_get(&l->gateways, key);
				if (gi == NULL || !gi->gw->served || !link_l4_on(m, key))
					continue;
				on = true;
				hit |= link_l4_gateway(l, vs, gi, r, m, tls, &other);
			}
			if (!on)
				continue; /* mesh-only, or for gateways on other appliances */
			if (m != NULL && m->source_labels.n > 0)
				diag_error(l->d, link_at(m->node, "sourceLabels"),
					   "sourceLabels selects sidecar workloads; it is not "
					   "supported on a gateway");
			used |= hit;
			if (hit)
				continue;
			if (other != NULL && tls)
				diag_error(
				    l->d, m->node,
				    "tls routes need a server with tls.mode PASSTHROUGH: the "
				    "server this match reaches (at %s) is %s",
				    link_pos(l, other->node), link_server_kind(l, other));
			else if (other != NULL)
				diag_warn(l->d, m != NULL ? m->node : r->node,
					  "tcp routes apply to TCP servers only: the server this "
					  "route reaches (at %s) is %s, so it is never used",
					  link_pos(l, other->node), link_server_kind(l, other));
			else
				diag_warn(
				    l->d, m != NULL ? m->node : r->node,
				    "this %s route reaches no server of its gateways (by port "
				    "and hosts): it is never used",
				    what);
		}
		if (!used)
			continue;
		for (size_t d = 0; d < r->nroute; d++) {
			struct destination *dest = &r->route[d].dest;

			link_destination(l, dest);
			/* Sending plaintext where the DestinationRule asks for TLS would be a
			 * silent downgrade. */
			if (dest->cluster != NULL && dest->cluster->tls != NULL)
				diag_error(l->d, dest->node,
					   "cluster %s originates TLS (DestinationRule tls): %s "
					   "routes relay the client's bytes as they are and do not "
					   "originate TLS",
					   dest->cluster->name, what);
		}
	}
}

static int link_vs_cmp(const void *a, const void *b)
{
	const struct cfg_vs *x = *(struct cfg_vs *const *)a, *y = *(struct cfg_vs *const *)b;

	return (x->meta.order > y->meta.order) - (x->meta.order < y->meta.order);
}

/* Looked up only for a report: node_get() per VirtualService shows in link time. */
static struct node *link_vs_gateways(const struct cfg_vs *vs)
{
	return link_at(link_spec(&vs->meta), "gateways");
}

static void link_vss(struct link *l)
{
	size_t n = l->set->nvss;
	struct cfg_vs **vss = pool_calloc(l->p, n ? n : 1, sizeof(*vss));

	if (n > 0)
		memcpy(vss, l->set->vss, n * sizeof(*vss));
	for (size_t i = 1; i < n; i++) {
		if (vss[i - 1]->meta.order > vss[i]->meta.order) {
			qsort(vss, n, sizeof(*vss), link_vs_cmp);
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		link_vs_validate(l, vss[i]);
	delegate_expand(l->p, l->d, vss, n);
	for (size_t i = 0; i < n; i++) {
		struct cfg_vs *vs = vss[i];
		bool mesh_only = true, served = false;

		if (vs->hosts.n == 0) {
			/* a delegate: served through the routes that delegate to it */
			if (!vs->delegated)
				diag_notice(
				    l->d, link_spec(&vs->meta),
				    "has no hosts and no route delegates to it: not served");
			continue;
		}
		for (size_t g = 0; g < vs->gateways.n; g++) {
			const char *ref = vs->gateways.v[g], *key;
			struct gw_info *gi;

			if (strcmp(ref, "mesh") == 0)
				continue;
			mesh_only = false;
			key = link_gateway_ref(l, ref, vs->meta.ns);
			gi = link_map_get(&l->gateways, key);
			if (gi == NULL) {
				diag_error(l->d, link_item(link_vs_gateways(vs), g),
					   "gateway %s not found", key);
				continue;
			}
			if (!gi->gw->served) /* its own notice says why */
				continue;
			served = true;
			if (!link_vs_bind(l, vs, gi))
				diag_warn(l->d, link_item(link_vs_gateways(vs), g),
					  "no host of this VirtualService matches a server of "
					  "Gateway %s",
					  key);
		}
		if (mesh_only)
			diag_notice(l->d,
				    vs->gateways.n ? link_vs_gateways(vs) : link_spec(&vs->meta),
				    "bound to mesh only and is not served by a gateway");
		if (served) {
			link_vs_resolve(l, vs);
			link_vs_l4(l, vs, true);
			link_vs_l4(l, vs, false);
		}
	}
}

/* Hosts of an httpsRedirect server that no VirtualService binds still redirect (Istio adds
 * a require_tls virtual host for each of them), so the server needs no routes at all. */
static void link_redirect_vhosts(struct link *l, struct lbuild *b)
{
	struct listener_cfg *lc = b->lc;

	if (lc->protocol != GWP_HTTP)
		return;
	for (size_t s = 0; s < lc->nservers; s++) {
		const struct gw_server *srv = lc->servers[s];

		if (!srv->tls.https_redirect)
			continue;
		for (size_t h = 0; h < srv->nhosts; h++) {
			const char *host = srv->hosts[h].host;
			struct claim *c = link_map_get(&b->hosts, host);
			void **slot;
			struct vbuild *vb;

			/* a host claimed twice is reported already; the claim owns it */
			if (c == NULL || c->srv != srv)
				continue;
			slot = link_map_slot(l->p, &b->vhosts, host, true);
			if (*slot != NULL)
				continue; /* bound by a VirtualService: flagged in link_vhost_add */
			vb = pool_alloc(l->p, sizeof(*vb));
			vb->vh = pool_alloc(l->p, sizeof(*vb->vh));
			vb->vh->name = host;
			vb->vh->gateway = c->gw;
			vb->vh->server = srv;
			vb->vh->https_redirect = true;
			*slot = vb;
			b->order =
			    link_append(l->p, b->order, &b->nvh, &b->capvh, sizeof(*b->order));
			b->order[b->nvh - 1] = vb;
		}
	}
}

/* ---- compile the vhost tables ---- */

static int link_wild_cmp(const void *a, const void *b)
{
	const struct vhost *x = *(struct vhost *const *)a, *y = *(struct vhost *const *)b;
	size_t xl = strlen(x->name), yl = strlen(y->name);

	if (xl != yl)
		return xl < yl ? 1 : -1; /* longest suffix first */
	return strcmp(x->name, y->name);
}

static void link_vhost_table(struct link *l, struct lbuild *b)
{
	struct vhost_table *vt = &b->lc->vhosts;
	struct vhost **wild = pool_calloc(l->p, b->nvh ? b->nvh : 1, sizeof(*wild));
	size_t nexact = 0, nwild = 0, slots = 1;

	for (size_t i = 0; i < b->nvh; i++) {
		struct vhost *vh = b->order[i]->vh;

		if (strcmp(vh->name, "*") == 0)
			vt->star = vh;
		else if (vh->name[0] == '*')
			wild[nwild++] = vh;
		else
			nexact++;
	}
	vt->nvhosts = b->nvh;
	if (nexact > 0) {
		while (slots < 2 * nexact)
			slots *= 2;
		vt->exact = pool_calloc(l->p, slots, sizeof(*vt->exact));
		vt->exact_mask = (uint32_t)(slots - 1);
		for (size_t i = 0; i < b->nvh; i++) {
			struct vhost *vh = b->order[i]->vh;
			uint32_t j;

			if (vh->name[0] == '*')
				continue;
			j = router_host_hash(vh->name, strlen(vh->name)) & vt->exact_mask;
			while (vt->exact[j] != NULL)
				j = (j + 1) & vt->exact_mask;
			vt->exact[j] = vh;
		}
	}
	qsort(wild, nwild, sizeof(*wild), link_wild_cmp);
	vt->wild = pool_calloc(l->p, nwild ? nwild : 1, sizeof(*vt->wild));
	vt->nwild = nwild;
	for (size_t i = 0; i < nwild; i++) {
		vt->wild[i].suffix = wild[i]->name + 1;
		vt->wild[i].len = strlen(wild[i]->name + 1);
		vt->wild[i].vh = wild[i];
	}
}

/* An HTTPS/TLS listener's SNI table: every host of its terminating servers with that
 * server's context, and every SNI host its tls routes pass through (with their targets).
 * Clients without SNI get the server of the main config's tlsDefaultHost, else the only
 * server when there is one terminating server and nothing else; otherwise the handshake
 * fails (or the connection closes) with a logged reason. */
static void link_sni_table(struct link *l, struct lbuild *b)
{
	struct listener_cfg *lc = b->lc;
	struct tls_sni_table *t;
	struct node *dh_at;
	const char *dh;
	size_t n = b->nsni, k = 0, nterm = 0;

	if (!link_tls_class(lc->protocol))
		return;
	for (size_t s = 0; s < lc->nservers; s++) {
		const struct gw_server *srv = lc->servers[s];

		if (link_passthrough(srv)) {
			lc->peek = true;
			continue;
		}
		if (srv->tls_ctx == NULL)
			return; /* its error is already reported */
		n += srv->nhosts;
		nterm++;
	}
	t = pool_alloc(l->p, sizeof(*t));
	t->v = pool_calloc(l->p, n ? n : 1, sizeof(*t->v));
	for (size_t s = 0; s < lc->nservers; s++) {
		const struct gw_server *srv = lc->servers[s];

		for (size_t h = 0; srv->tls_ctx != NULL && h < srv->nhosts; h++) {
			t->v[k].host = srv->hosts[h].host;
			t->v[k].sctx = srv->tls_ctx;
			k++;
		}
	}
	for (size_t i = 0; i < b->nsni; i++) {
		t->v[k].host = b->sni_order[i]->host;
		t->v[k].user = &b->sni_order[i]->t;
		k++;
	}
	t->n = k;
	if (lc->nservers == 1 && nterm == 1 && k > 0)
		t->no_sni = &t->v[0];
	if (nterm == 0) {
		tls_sni_table_index(l->p, t);
	} else if (tls_sni_table_init(l->p, t) != 0) {
		diag_error(l->d, lc->servers[0]->node, "cannot build the TLS context of %s",
			   lc->key);
		return;
	}
	if ((dh = cfg_main_default_host(&l->set->main, lc->port, &dh_at)) != NULL &&
	    !tls_sni_table_default(t, dh) && dh_at != NULL)
		diag_warn(l->d, dh_at,
			  "no server on %s serves \"%s\": clients without SNI fail there", lc->key,
			  dh);
	lc->tls = t;
	lc->mtls = pa_listener_mode(l->d, lc->servers, lc->nservers, lc->key);
}

/* PASSTHROUGH and TCP servers that no route reaches close every connection (NR). */
static void link_l4_unused(struct link *l)
{
	for (size_t g = 0; g < l->set->ngateways; g++) {
		struct gw_info *gi = link_map_get(&l->gateways, l->set->gateways[g]->key);

		if (gi == NULL || gi->gw != l->set->gateways[g] || !gi->gw->served)
			continue;
		for (size_t s = 0; s < gi->gw->nservers; s++) {
			const struct gw_server *srv = &gi->gw->servers[s];

			if (gi->lidx[s] < 0 || gi->l4_used[s])
				continue;
			if (link_passthrough(srv))
				diag_warn(l->d, srv->node,
					  "no VirtualService tls route reaches this PASSTHROUGH "
					  "server: its connections are closed (NR)");
			else if (srv->protocol == GWP_TCP)
				diag_warn(
				    l->d, srv->node,
				    "no VirtualService tcp route reaches this TCP server: its "
				    "connections are closed (NR)");
		}
	}
}

struct snapshot *link_compile(struct pool *p, struct diag *d, struct cfg_set *set)
{
	struct link l = {.p = p, .d = d, .set = set};
	int errors = d->nerrors;
	struct snapshot *snap;

	link_gateways(&l);
	pa_apply(d, set);
	ra_apply(d, p, set);
	jwtauth_link(p, d, set);
	ef_apply(d, set);
	tel_apply(d, p, set);
	ap_apply(d, p, set);
	link_index_ses(&l);
	link_index_drs(&l);
	link_ext_authz(&l);
	link_vss(&l);
	link_l4_unused(&l);

	snap = pool_alloc(p, sizeof(*snap));
	snap->pool = p;
	snap->set = set;
	snap->listeners = pool_calloc(p, l.nlb ? l.nlb : 1, sizeof(*snap->listeners));
	for (size_t i = 0; i < l.nlb; i++) {
		link_redirect_vhosts(&l, &l.lb[i]);
		link_vhost_table(&l, &l.lb[i]);
		link_sni_table(&l, &l.lb[i]);
		snap->listeners[i] = *l.lb[i].lc;
	}
	snap->nlisteners = l.nlb;
	snap->clusters = l.cl;
	snap->nclusters = l.ncl;
	snap->geoip = geoip_open(p, d, &set->main.geoip);
	snap->rate_bucket =
	    set->rate_limit != NULL ? ratelimit_new(p, set->rate_limit, clock_mono_us()) : NULL;
	if (l.nlb == 0)
		diag_warn(d, set->main.node, "no listener is configured");
	if (d->nerrors > errors)
		return NULL;
	return snap;
}
