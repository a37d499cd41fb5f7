#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config/model.h"
#include "msg.h"
#include "regex.h"
#include "jwt.h"
#include "router.h"
#include "snapshot.h"

/* Several headers of one name are matched as their values joined by "," (Envoy); the join
 * is built on the stack and a longer one is no match rather than an allocation. */
#define ROUTER_JOIN_MAX 8192
/* Request bytes quoted in an explanation are cut here. */
#define ROUTER_TRACE_QUOTE 200

enum router_hv {
	HV_ABSENT = 0,
	HV_OK,
	HV_TOOBIG,
};

static const char *const router_sm_names[] = {
    [SM_NONE] = "any",
    [SM_EXACT] = "exact",
    [SM_PREFIX] = "prefix",
    [SM_REGEX] = "regex",
};

/* ---- explanation text (admin/control thread only; the hot path passes t == NULL) ---- */

static void router_trace_add(struct router_trace *t, const char *s, size_t n)
{
	size_t cap;
	char *nb;

	if (t->len + n + 1 > t->cap) {
		cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		nb = realloc(t->buf, cap);
		if (nb == NULL)
			return; /* the explanation is cut short; routing is unaffected */
		t->buf = nb;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void router_trace_printf(struct router_trace *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void router_trace_printf(struct router_trace *t, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		router_trace_add(t, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);

	if (big == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	router_trace_add(t, big, (size_t)n);
	free(big);
}

/* Request bytes in double quotes, escaped and cut, since they come from the client. */
static void router_trace_quote(struct router_trace *t, const char *s, size_t len)
{
	char esc[8];

	router_trace_add(t, "\"", 1);
	for (size_t i = 0; i < len && i < ROUTER_TRACE_QUOTE; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			router_trace_add(t, esc, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			router_trace_add(t, esc, 4);
		} else {
			router_trace_add(t, (const char *)&s[i], 1);
		}
	}
	router_trace_add(t, "\"", 1);
	if (len > ROUTER_TRACE_QUOTE)
		router_trace_printf(t, "... (%zu bytes)", len);
}

void router_trace_free(struct router_trace *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}

/* ---- host lookup ---- */

uint32_t router_host_hash(const char *host, size_t len)
{
	/* FNV-1a over the ASCII-lower-cased bytes. */
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h ^= c;
		h *= 16777619u;
	}
	return h;
}

enum router_how {
	HOW_NONE = 0,
	HOW_EXACT,
	HOW_WILD,
	HOW_STAR,
};

static const struct vhost *router_lookup(const struct listener_cfg *l, const char *host, size_t len,
					 enum router_how *how)
{
	const struct vhost_table *vt = &l->vhosts;
	const struct vhost *vh;
	uint32_t i;

	if (vt->exact != NULL) {
		/* Load factor <= 1/2 (link.c), so an empty slot always ends the probe. */
		for (i = router_host_hash(host, len) & vt->exact_mask; (vh = vt->exact[i]) != NULL;
		     i = (i + 1) & vt->exact_mask) {
			if (strncasecmp(vh->name, host, len) == 0 && vh->name[len] == '\0') {
				*how = HOW_EXACT;
				return vh;
			}
		}
	}
	/* "*.example.com" needs at least one character before ".example.com". */
	for (size_t w = 0; w < vt->nwild; w++) {
		size_t sl = vt->wild[w].len;

		if (len > sl && strncasecmp(host + len - sl, vt->wild[w].suffix, sl) == 0) {
			*how = HOW_WILD;
			return vt->wild[w].vh;
		}
	}
	if (vt->star != NULL) {
		*how = HOW_STAR;
		return vt->star;
	}
	*how = HOW_NONE;
	return NULL;
}

const struct vhost *router_find_vhost(const struct listener_cfg *l, const char *host, size_t len)
{
	enum router_how how;

	return router_lookup(l, host, len, &how);
}

/* ---- matching ---- */

static bool router_sm_match(const struct string_match *m, const char *s, size_t len, bool caseless)
{
	if (s == NULL) /* an empty value may come without storage */
		s = "";
	switch (m->kind) {
	case SM_NONE:
		return true;
	case SM_EXACT:
		if (len != m->len)
			return false;
		return caseless ? strncasecmp(s, m->value, len) == 0
				: memcmp(s, m->value, len) == 0;
	case SM_PREFIX:
		if (len < m->len)
			return false;
		return caseless ? strncasecmp(s, m->value, m->len) == 0
				: memcmp(s, m->value, m->len) == 0;
	case SM_REGEX:
		return regex_match(m->re, s, len);
	}
	return false;
}

/* Field check with its explanation: "uri prefix "/api" did not match "/x"". */
static bool router_field(const struct string_match *m, const char *what, const char *s, size_t len,
			 bool caseless, struct router_trace *t, int k)
{
	if (s == NULL) {
		s = "";
		len = 0;
	}
	if (router_sm_match(m, s, len, caseless))
		return true;
	if (t != NULL) {
		router_trace_printf(t, "    match[%d]: %s %s%s \"%s\" did not match ", k, what,
				    router_sm_names[m->kind], caseless ? " (ignoreUriCase)" : "",
				    m->value);
		router_trace_quote(t, s, len);
		router_trace_add(t, "\n", 1);
	}
	return false;
}

/* Value of header name in rq: the only one as is, several joined by "," into buf. */
static enum router_hv router_header_value(const struct route_request *rq, const char *name,
					  char *buf, const char **val, size_t *vlen)
{
	size_t nlen = strlen(name), n = 0, count = 0;
	const struct msg_header *h;

	for (size_t i = 0; i < rq->nheaders; i++) {
		h = &rq->headers[i];
		if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
			continue;
		if (count == 0) {
			*val = h->value;
			*vlen = h->value_len;
		} else {
			if (count == 1) {
				if (*vlen > ROUTER_JOIN_MAX)
					return HV_TOOBIG;
				memcpy(buf, *val, *vlen);
				n = *vlen;
			}
			if (h->value_len + 1 > ROUTER_JOIN_MAX - n)
				return HV_TOOBIG;
			buf[n++] = ',';
			memcpy(buf + n, h->value, h->value_len);
			n += h->value_len;
			*val = buf;
			*vlen = n;
		}
		count++;
	}
	return count == 0 ? HV_ABSENT : HV_OK;
}

static bool router_claim_value(const char *v, size_t len, void *arg)
{
	const struct header_match *hm = arg;

	return hm->present_only || router_sm_match(&hm->m, v, len, false);
}

/* "@request.auth.claims.name": a claim of the verified JWT, matched as Istio does, on its
 * value or on any value of a list. */
static bool router_claim(const struct header_match *hm, const struct route_request *rq,
			 bool without, struct router_trace *t, int k)
{
	int i = rq->jwt != NULL ? jwt_claim_path(rq->jwt, hm->claim_path, hm->nclaim_path) : -1;
	bool m;

	if (i < 0) {
		if (t != NULL)
			router_trace_printf(t, "    match[%d]: %s: %s\n", k, hm->name,
					    rq->jwt == NULL ? "the request has no verified JWT"
							    : "the JWT has no such claim");
		return false;
	}
	m = jwt_claim_any(rq->jwt, i, router_claim_value, (void *)hm);
	if (m != without)
		return true;
	if (t != NULL)
		router_trace_printf(t, "    match[%d]: %s: %s\n", k, hm->name,
				    without ? "a value matched" : "no value matched");
	return false;
}

static bool router_header(const struct header_match *hm, const struct route_request *rq,
			  bool without, struct router_trace *t, int k)
{
	char buf[ROUTER_JOIN_MAX];
	const char *val = NULL;
	size_t vlen = 0;
	enum router_hv hv;

	if (hm->claim_path != NULL)
		return router_claim(hm, rq, without, t, k);
	hv = router_header_value(rq, hm->name, buf, &val, &vlen);
	const char *field = without ? "withoutHeaders" : "headers";
	bool m;

	if (hv == HV_ABSENT) {
		/* Envoy's inverted matcher on a missing header matches only for presence
		 * matchers, so Istio's withoutHeaders {exact: x} needs the header present
		 * (istio/istio#50988); we keep that behaviour. */
		if (without && hm->present_only)
			return true;
		if (t != NULL)
			router_trace_printf(
			    t, "    match[%d]: %s \"%s\": header absent%s\n", k, field, hm->name,
			    without ? " (withoutHeaders needs it present with another "
				      "value, as in Istio)"
				    : "");
		return false;
	}
	if (hv == HV_TOOBIG) {
		if (t != NULL)
			router_trace_printf(
			    t, "    match[%d]: %s \"%s\": joined values exceed %d bytes\n", k,
			    field, hm->name, ROUTER_JOIN_MAX);
		return false;
	}
	m = hm->present_only || router_sm_match(&hm->m, val, vlen, false);
	if (m != without)
		return true;
	if (t != NULL) {
		if (hm->present_only)
			router_trace_printf(t, "    match[%d]: %s \"%s\": header present\n", k,
					    field, hm->name);
		else
			router_trace_printf(t, "    match[%d]: %s \"%s\" %s \"%s\" %s ", k, field,
					    hm->name, router_sm_names[hm->m.kind], hm->m.value,
					    without ? "matched" : "did not match");
		if (!hm->present_only) {
			router_trace_quote(t, val, vlen);
			router_trace_add(t, "\n", 1);
		}
	}
	return false;
}

/* First value of query parameter name (raw, not percent-decoded, as Envoy matches it); a
 * parameter without '=' has the value "". */
static bool router_query_param(const struct route_request *rq, const char *name, const char **val,
			       size_t *vlen)
{
	const char *p = rq->query, *end, *amp, *eq;
	size_t nlen = strlen(name);

	if (p == NULL)
		return false;
	for (end = p + rq->query_len; p < end; p = amp + 1) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq == NULL)
			eq = amp;
		if ((size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
			*val = eq < amp ? eq + 1 : eq;
			*vlen = eq < amp ? (size_t)(amp - eq - 1) : 0;
			return true;
		}
	}
	return false;
}

static bool router_query(const struct header_match *qm, const struct route_request *rq,
			 struct router_trace *t, int k)
{
	const char *val;
	size_t vlen;

	if (!router_query_param(rq, qm->name, &val, &vlen)) {
		if (t != NULL)
			router_trace_printf(t,
					    "    match[%d]: queryParams \"%s\": parameter absent\n",
					    k, qm->name);
		return false;
	}
	if (qm->present_only || router_sm_match(&qm->m, val, vlen, false))
		return true;
	if (t != NULL) {
		router_trace_printf(t, "    match[%d]: queryParams \"%s\" %s \"%s\" did not match ",
				    k, qm->name, router_sm_names[qm->m.kind], qm->m.value);
		router_trace_quote(t, val, vlen);
		router_trace_add(t, "\n", 1);
	}
	return false;
}

/* Does "ns/name" in the match's gateway list name the gateway the request came through? */
static bool router_gateway_listed(const struct http_match *m, const struct route_request *rq,
				  const struct vhost *vh)
{
	const struct cfg_gateway *gw = vh->gateway;

	for (size_t i = 0; i < m->more->gateways.n; i++) {
		const char *e = m->more->gateways.v[i];

		if (rq->gateway != NULL) {
			if (strcmp(e, rq->gateway) == 0)
				return true;
		} else if (gw != NULL) {
			size_t nsl = strlen(gw->meta.ns);

			if (strncmp(e, gw->meta.ns, nsl) == 0 && e[nsl] == '/' &&
			    strcmp(e + nsl + 1, gw->meta.name) == 0)
				return true;
		}
	}
	return false;
}

/* One match block: every given field must accept the request (AND). */
static bool router_match_block(const struct http_match *m, const struct vhost *vh,
			       const struct route_request *rq, struct router_trace *t, int k)
{
	size_t i;

	if (!router_field(&m->uri, "uri", rq->path, rq->path_len,
			  m->ignore_uri_case && m->uri.kind != SM_REGEX, t, k))
		return false;
	if (!router_field(&m->more->scheme, "scheme", rq->scheme,
			  rq->scheme ? strlen(rq->scheme) : 0, false, t, k))
		return false;
	if (!router_field(&m->more->method, "method", rq->method, rq->method_len, false, t, k))
		return false;
	if (!router_field(&m->more->authority, "authority", rq->authority, rq->authority_len, false,
			  t, k))
		return false;
	for (i = 0; i < m->nheaders; i++)
		if (!router_header(&m->headers[i], rq, false, t, k))
			return false;
	for (i = 0; i < m->more->nwithout_headers; i++)
		if (!router_header(&m->more->without_headers[i], rq, true, t, k))
			return false;
	for (i = 0; i < m->more->nquery_params; i++)
		if (!router_query(&m->more->query_params[i], rq, t, k))
			return false;
	if (m->port != 0 && m->port != rq->port) {
		if (t != NULL)
			router_trace_printf(t,
					    "    match[%d]: port %u is not the listener port %u\n",
					    k, m->port, rq->port);
		return false;
	}
	if (m->more->gateways.n > 0 && !router_gateway_listed(m, rq, vh)) {
		if (t != NULL && rq->gateway != NULL)
			router_trace_printf(t, "    match[%d]: gateways does not list gateway %s\n",
					    k, rq->gateway);
		else if (t != NULL && vh->gateway != NULL)
			router_trace_printf(t,
					    "    match[%d]: gateways does not list gateway %s/%s\n",
					    k, vh->gateway->meta.ns, vh->gateway->meta.name);
		return false;
	}
	return true;
}

static bool router_route_accepts(const struct http_route *r, const struct vhost *vh,
				 const struct route_request *rq, struct router_trace *t)
{
	if (r->nmatches == 0) {
		if (t != NULL)
			router_trace_printf(t, "    no match conditions: matches every request\n");
		return true;
	}
	for (size_t k = 0; k < r->nmatches; k++) {
		if (router_match_block(&r->matches[k], vh, rq, t, (int)k)) {
			if (t != NULL)
				router_trace_printf(t, "    match[%zu] matched\n", k);
			return true;
		}
	}
	return false;
}

const struct http_route *router_match(const struct vhost *vh, const struct route_request *rq)
{
	if (vh == NULL)
		return NULL;
	for (size_t i = 0; i < vh->nroutes; i++)
		if (router_route_accepts(vh->routes[i], vh, rq, NULL))
			return vh->routes[i];
	return NULL;
}

const struct route_destination *router_pick_destination(const struct http_route *route, uint32_t r)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < route->nroute; i++) {
		acc += route->route[i].weight;
		if (r < acc)
			return &route->route[i];
	}
	/* Only reached with r >= total_weight (a caller bug): stay deterministic. */
	return route->nroute > 0 ? &route->route[route->nroute - 1] : NULL;
}

/* ---- L4 ---- */

const struct l4_target *router_l4_select(const struct l4_targets *t, const struct sockaddr *local)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct l4_target *x = &t->v[i];

		if (x->nsubnets == 0)
			return x;
		for (size_t k = 0; k < x->nsubnets; k++)
			if (cidr_has(&x->subnets[k], local))
				return x;
	}
	return NULL;
}

const struct route_destination *router_l4_pick(const struct l4_route *route, uint32_t r)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < route->nroute; i++) {
		acc += route->route[i].weight;
		if (r < acc)
			return &route->route[i];
	}
	return route->nroute > 0 ? &route->route[route->nroute - 1] : NULL;
}

/* ---- explain ---- */

static void router_trace_route(struct router_trace *t, size_t n, const struct http_route *r)
{
	router_trace_printf(t, "route %zu (", n);
	if (r->name != NULL)
		router_trace_printf(t, "\"%s\", ", r->name);
	if (r->vs != NULL)
		router_trace_printf(t, "from VirtualService %s/%s http[%d]", r->vs->meta.ns,
				    r->vs->meta.name, r->index);
	else
		router_trace_printf(t, "http[%d]", r->index);
	router_trace_add(t, ")", 1);
}

const struct http_route *router_explain(const struct listener_cfg *l,
					const struct route_request *rq, struct router_trace *t)
{
	static const char *const how_names[] = {
	    [HOW_NONE] = "none",
	    [HOW_EXACT] = "exact host",
	    [HOW_WILD] = "wildcard host",
	    [HOW_STAR] = "catch-all host",
	};
	const struct vhost *vh;
	enum router_how how;

	router_trace_printf(t, "listener %s: host ", l->key ? l->key : "?");
	router_trace_quote(t, rq->host, rq->host_len);
	vh = router_lookup(l, rq->host, rq->host_len, &how);
	if (vh == NULL) {
		router_trace_printf(t, ": no virtual host matches (%zu configured) -> 404 (NR)\n",
				    l->vhosts.nvhosts);
		return NULL;
	}
	router_trace_printf(t, ": %s \"%s\" with %zu route%s", how_names[how], vh->name,
			    vh->nroutes, vh->nroutes == 1 ? "" : "s");
	if (vh->gateway != NULL)
		router_trace_printf(t, " (Gateway %s/%s)", vh->gateway->meta.ns,
				    vh->gateway->meta.name);
	if (vh->https_redirect && (rq->scheme == NULL || strcmp(rq->scheme, "https") != 0)) {
		router_trace_printf(t, "\ntls.httpsRedirect: plain HTTP is redirected to https "
				       "before any route is tried\n");
		return NULL;
	}
	router_trace_printf(t, "\nrequest: %.*s ", (int)rq->method_len,
			    rq->method ? rq->method : "");
	router_trace_quote(t, rq->path, rq->path_len);
	if (rq->query != NULL) {
		router_trace_add(t, " query ", 7);
		router_trace_quote(t, rq->query, rq->query_len);
	}
	router_trace_add(t, "\n", 1);
	for (size_t i = 0; i < vh->nroutes; i++) {
		const struct http_route *r = vh->routes[i];

		router_trace_route(t, i, r);
		router_trace_add(t, ":\n", 2);
		if (router_route_accepts(r, vh, rq, t)) {
			router_trace_printf(t, "selected ");
			router_trace_route(t, i, r);
			router_trace_add(t, "\n", 1);
			return r;
		}
	}
	router_trace_printf(t, "no route matched -> 404 (NR)\n");
	return NULL;
}
