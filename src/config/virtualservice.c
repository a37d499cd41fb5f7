#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"
#include "retry.h"

#define VS_WEIGHT_MAX 2147483647 /* Istio weights are int32 */
#define VS_BODY_MAX (1024 * 1024)
#define VS_BODY_WARN (100 * 1024)

struct vs_ctx {
	struct pool *p;
	struct diag *d;
	const char *ns;
	struct cfg_vs *vs;
	bool to_gateway; /* gateways given and "mesh" not among them (Istio's isGateway) */
	bool delegate;   /* no hosts: this VirtualService is a delegate */
};

static const char *const vs_derive_port[] = {"FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL};
static const char *const vs_preflight[] = {"UNSPECIFIED", "FORWARD", "IGNORE", NULL};
static const char *const vs_methods[] = {"GET",    "HEAD",    "POST",    "PUT",   "PATCH",
					 "DELETE", "CONNECT", "OPTIONS", "TRACE", NULL};
static const char *const vs_grpc_status[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
    NULL,
};

/* Position of s in names, or -1. */
static int vs_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static bool vs_in(const char *const *names, const char *s)
{
	for (; *names != NULL; names++)
		if (strcmp(*names, s) == 0)
			return true;
	return false;
}

static bool vs_str(struct vs_ctx *c, struct node *n, const char **out)
{
	if (n == NULL)
		return true;
	return node_str(c->d, n, out);
}

static bool vs_is_claim(const char *name)
{
	return strncmp(name, "@request.auth.claims.", 21) == 0 ||
	       strncmp(name, "@request.auth.claims[", 21) == 0;
}

/* The member names of "@request.auth.claims" followed by ".name", "[name]" or ".[name]"
 * segments (brackets for names with dots in them). */
static bool vs_claim_path(struct vs_ctx *c, struct node *at, struct header_match *h)
{
	const char *s = h->name + 20;
	size_t parts = 0;

	for (const char *q = s; *q != '\0'; q++)
		parts += *q == '.' || *q == '[';
	h->claim_path = pool_calloc(c->p, parts ? parts : 1, sizeof(*h->claim_path));
	while (*s != '\0') {
		const char *b = s, *e;

		if (s[0] == '.' && s[1] == '[')
			s++;
		if (*s == '[') {
			b = s + 1;
			e = strchr(b, ']');
			if (e == NULL || (e[1] != '\0' && e[1] != '.' && e[1] != '['))
				e = NULL;
		} else if (*s == '.') {
			b = s + 1;
			e = b + strcspn(b, ".[");
		} else {
			e = NULL;
		}
		if (e == NULL || e == b) {
			diag_error(c->d, at,
				   "%s: a claim is named @request.auth.claims.name, nested "
				   ".outer.inner, or [name.with.dots]",
				   h->name);
			return false;
		}
		h->claim_path[h->nclaim_path++] = pool_strndup(c->p, b, (size_t)(e - b));
		s = *s == '[' ? e + 1 : e;
	}
	return true;
}

/* ---- what routes without a policy share ---- */

static const struct direct_response vs_no_direct_response;
static const struct http_rewrite vs_no_rewrite;
static const struct http_retry vs_no_retries = {.attempts = -1};
static const struct http_fault vs_no_fault;
static const struct cors_policy vs_no_cors = {.allow_credentials = -1};
static const struct headers_ops vs_no_headers;
static const struct http_match_more vs_no_more;
static const struct http_route_more vs_no_route_more = {
    .direct_response = (struct direct_response *)&vs_no_direct_response,
    .rewrite = (struct http_rewrite *)&vs_no_rewrite,
    .fault = (struct http_fault *)&vs_no_fault,
    .cors = (struct cors_policy *)&vs_no_cors,
};

/* The model's pointers are not const because decoders and link fill the policies a route
 * has; these empty ones are never written (a write would fault: they are read-only). */
void cfg_vs_route_init(struct http_route *r)
{
	r->more = (struct http_route_more *)&vs_no_route_more;
	r->retries = (struct http_retry *)&vs_no_retries;
	r->headers = (struct headers_ops *)&vs_no_headers;
}

void cfg_vs_dest_init(struct route_destination *rd)
{
	rd->headers = (struct headers_ops *)&vs_no_headers;
}

void cfg_vs_match_init(struct http_match *m)
{
	m->more = (struct http_match_more *)&vs_no_more;
}

static bool vs_more_empty(const struct http_match_more *mm)
{
	return mm->scheme.kind == SM_NONE && mm->method.kind == SM_NONE &&
	       mm->authority.kind == SM_NONE && mm->nwithout_headers == 0 &&
	       mm->nquery_params == 0 && mm->gateways.n == 0 && mm->source_labels.n == 0 &&
	       mm->source_namespace == NULL;
}

/* A route's own copy of a policy it has. */
static void *vs_policy(struct vs_ctx *c, size_t size)
{
	return pool_alloc(c->p, size);
}

/* ---- destinations ---- */

static bool vs_destination(struct vs_ctx *c, struct node *n, struct destination *out)
{
	struct node *host, *subset, *port;
	const char *s;
	char why[160];
	bool ok = true;

	if (!node_want_map(c->d, n))
		return false;
	out->node = n;
	host = cfg_require(c->d, n, "host");
	subset = node_get(n, "subset");
	port = node_get(n, "port");
	node_check_unknown(c->d, n);
	if (host != NULL && node_str(c->d, host, &s)) {
		const char *h = cfg_lower(c->p, s);

		if (strcmp(h, "*") == 0) {
			diag_error(c->d, host, "invalid destination host *");
			ok = false;
		} else if (!cfg_check_host(h, CFG_HOST_WILDCARD | CFG_HOST_IP, why, sizeof(why))) {
			diag_error(c->d, host, "%s", why);
			ok = false;
		} else {
			out->host = s;
			out->fqdn = cfg_expand_host(c->p, h, c->ns);
		}
	} else {
		ok = false;
	}
	if (subset != NULL && node_str(c->d, subset, &s)) {
		if (!cfg_is_dns_label(s)) {
			diag_error(c->d, subset, "subset name is invalid: \"%s\"", s);
			ok = false;
		}
		out->subset = s;
	} else if (subset != NULL) {
		ok = false;
	}
	if (port != NULL && node_want_map(c->d, port)) {
		ok &= cfg_decode_port(c->d, cfg_require(c->d, port, "number"), &out->port);
		node_check_unknown(c->d, port);
	} else if (port != NULL) {
		ok = false;
	}
	return ok;
}

/* HTTPRouteDestination (http) or RouteDestination (tls/tcp) list. */
static bool vs_route_dests(struct vs_ctx *c, struct node *n, bool http,
			   struct route_destination **out, size_t *nout)
{
	uint64_t total = 0;
	bool ok = true;
	size_t i;

	*out = NULL;
	*nout = 0;
	if (n == NULL)
		return true;
	if (!node_want_seq(c->d, n))
		return false;
	*out = pool_calloc(c->p, n->n ? n->n : 1, sizeof(**out));
	for (i = 0; i < n->n; i++) {
		struct route_destination *rd = &(*out)[*nout];
		struct node *e = n->vals[i], *dest, *w, *x;

		if (!node_want_map(c->d, e)) {
			ok = false;
			continue;
		}
		dest = cfg_require(c->d, e, "destination");
		w = node_get(e, "weight");
		cfg_vs_dest_init(rd);
		if (http && (x = node_get(e, "headers")) != NULL) {
			rd->headers = vs_policy(c, sizeof(*rd->headers));
			ok &= cfg_decode_headers_ops(c->p, c->d, x, rd->headers);
		}
		node_check_unknown(c->d, e);
		if (dest == NULL || !vs_destination(c, dest, &rd->dest))
			ok = false;
		if (!cfg_decode_u32(c->d, w, 0, VS_WEIGHT_MAX, &rd->weight))
			ok = false;
		total += rd->weight;
		(*nout)++;
	}
	if (ok && n->n > 1 && total == 0) {
		diag_error(c->d, n, "total destination weight = 0");
		ok = false;
	}
	if (ok && total > VS_WEIGHT_MAX) {
		diag_error(c->d, n, "total destination weight %llu is above %d",
			   (unsigned long long)total, VS_WEIGHT_MAX);
		ok = false;
	}
	return ok;
}

/* ---- HTTPMatchRequest ---- */

enum vs_hdr_kind {
	VS_HDR_HEADERS = 0,
	VS_HDR_WITHOUT,
	VS_HDR_QUERY,
};

/* headers / withoutHeaders / queryParams: name -> StringMatch, where `{}` means presence. */
static bool vs_header_matches(struct vs_ctx *c, struct node *n, enum vs_hdr_kind kind,
			      struct header_match **out, size_t *nout)
{
	bool ok = true;
	size_t i;

	*out = NULL;
	*nout = 0;
	if (n == NULL)
		return true;
	if (!node_want_map(c->d, n))
		return false;
	*out = pool_calloc(c->p, n->n ? n->n : 1, sizeof(**out));
	for (i = 0; i < n->n; i++) {
		struct header_match *h = &(*out)[*nout];
		struct node *v = n->vals[i];
		const char *name = n->keys[i]->str;

		memset(h, 0, sizeof(*h));
		n->keys[i]->used = true;
		if (*name == '\0') {
			diag_error(c->d, v, "%s name cannot be empty",
				   kind == VS_HDR_QUERY ? "query parameter" : "header");
			ok = false;
			continue;
		}
		if (kind == VS_HDR_QUERY) {
			h->name = name; /* query parameter names are case-sensitive */
		} else if (vs_is_claim(name)) {
			/* JWT claim routing: claim names are case-sensitive. */
			if (!c->to_gateway) {
				diag_error(c->d, v,
					   "JWT claim based routing (key: %s) is only "
					   "supported for gateways",
					   name);
				ok = false;
			}
			h->name = name;
			if (!vs_claim_path(c, v, h)) {
				ok = false;
				continue;
			}
		} else if (!cfg_is_token(name)) {
			diag_error(c->d, v, "header name %s is not a valid header name", name);
			ok = false;
			continue;
		} else {
			h->name = cfg_lower(c->p, name);
		}
		if (v->type == NODE_NULL) {
			diag_error(c->d, v, "%s match %s cannot be null",
				   kind == VS_HDR_QUERY ? "query param" : "header", name);
			ok = false;
			continue;
		}
		if (v->type == NODE_MAP && v->n == 0) {
			h->present_only = true;
			h->m.node = v;
			(*nout)++;
			continue;
		}
		if (!cfg_decode_string_match(c->p, c->d, v, &h->m, false)) {
			ok = false;
			continue;
		}
		if (kind == VS_HDR_QUERY && h->m.kind == SM_PREFIX) {
			diag_error(c->d, node_get(v, "prefix"),
				   "prefix match is not supported for "
				   "queryParams (use exact or regex)");
			ok = false;
			continue;
		}
		if (h->m.kind == SM_PREFIX && h->m.len == 0) {
			diag_error(c->d, node_get(v, "prefix"),
				   "prefix string match should not be "
				   "empty");
			ok = false;
			continue;
		}
		(*nout)++;
	}
	return ok;
}

static bool vs_gateway_names(struct vs_ctx *c, struct node *n, const struct str_list *l)
{
	bool ok = true;
	size_t i;

	for (i = 0; i < l->n; i++) {
		const char *g = l->v[i], *slash = strchr(g, '/');
		struct node *at = n->vals[i];

		if (strcmp(g, "mesh") == 0)
			continue;
		if (slash != NULL) {
			char *ns = pool_strndup(c->p, g, (size_t)(slash - g));

			if (!cfg_is_dns_label(ns)) {
				diag_error(c->d, at, "invalid value for namespace: \"%s\"", ns);
				ok = false;
			}
			if (!cfg_is_dns_label(slash + 1)) {
				diag_error(c->d, at, "invalid value for gateway name: \"%s\"",
					   slash + 1);
				ok = false;
			}
		} else if (strchr(g, '.') != NULL) {
			if (cfg_is_dns_subdomain(g)) {
				const char *dot = strchr(g, '.'), *end = strchr(dot + 1, '.');

				diag_warn(c->d, at,
					  "using legacy gatewayName format \"%s\"; prefer the "
					  "<namespace>/<name> format: \"%.*s/%.*s\"",
					  g, (int)(end ? end - dot - 1 : (long)strlen(dot + 1)),
					  dot + 1, (int)(dot - g), g);
			} else {
				diag_error(c->d, at, "invalid gateway name \"%s\"", g);
				ok = false;
			}
		} else if (!cfg_is_dns_label(g)) {
			diag_error(c->d, at, "invalid gateway name \"%s\"", g);
			ok = false;
		}
	}
	return ok;
}

static bool vs_http_match(struct vs_ctx *c, struct node *n, struct http_match *m,
			  const char **stat_prefix)
{
	struct http_match_more mm;
	struct node *x, *gw;
	bool ok = true, caseless = false;
	const char *s;

	memset(m, 0, sizeof(*m));
	memset(&mm, 0, sizeof(mm));
	cfg_vs_match_init(m);
	if (!node_want_map(c->d, n))
		return false;
	m->node = n;
	ok &= vs_str(c, node_get(n, "name"), &m->name);
	if ((x = node_get(n, "ignoreUriCase")) != NULL)
		ok &= node_bool(c->d, x, &m->ignore_uri_case);
	caseless = m->ignore_uri_case;
	ok &= cfg_decode_string_match(c->p, c->d, node_get(n, "uri"), &m->uri, caseless);
	ok &= cfg_decode_string_match(c->p, c->d, node_get(n, "scheme"), &mm.scheme, false);
	ok &= cfg_decode_string_match(c->p, c->d, node_get(n, "method"), &mm.method, false);
	ok &= cfg_decode_string_match(c->p, c->d, node_get(n, "authority"), &mm.authority, false);
	ok &=
	    vs_header_matches(c, node_get(n, "headers"), VS_HDR_HEADERS, &m->headers, &m->nheaders);
	ok &= vs_header_matches(c, node_get(n, "withoutHeaders"), VS_HDR_WITHOUT,
				&mm.without_headers, &mm.nwithout_headers);
	ok &= vs_header_matches(c, node_get(n, "queryParams"), VS_HDR_QUERY, &mm.query_params,
				&mm.nquery_params);
	ok &= cfg_decode_port(c->d, node_get(n, "port"), &m->port);
	ok &= cfg_decode_labels(c->p, c->d, node_get(n, "sourceLabels"), &mm.source_labels);
	gw = node_get(n, "gateways");
	if (cfg_decode_str_list(c->p, c->d, gw, &mm.gateways, false))
		ok &= vs_gateway_names(c, gw, &mm.gateways);
	else
		ok = false;
	if ((x = node_get(n, "sourceNamespace")) != NULL && node_str(c->d, x, &s)) {
		if (!cfg_is_dns_label(s)) {
			diag_error(c->d, x, "sourceNamespace match %s is invalid", s);
			ok = false;
		}
		mm.source_namespace = s;
	} else if (x != NULL) {
		ok = false;
	}
	if ((x = node_get(n, "statPrefix")) != NULL && node_str(c->d, x, &s)) {
		if (*stat_prefix == NULL)
			*stat_prefix = s;
	} else if (x != NULL) {
		ok = false;
	}
	node_check_unknown(c->d, n);
	if (!vs_more_empty(&mm)) {
		m->more = pool_alloc(c->p, sizeof(*m->more));
		*m->more = mm;
	}
	return ok;
}

/* ---- HTTPRoute actions ---- */

static bool vs_redirect(struct vs_ctx *c, struct node *n, struct http_route *r)
{
	struct http_redirect *rd;
	struct node *port, *derive, *code, *scheme;
	bool ok = true;
	int64_t v;
	int i;

	if (!node_want_map(c->d, n))
		return false;
	rd = pool_alloc(c->p, sizeof(*rd));
	rd->redirect_code = 301;
	ok &= vs_str(c, node_get(n, "uri"), &rd->uri);
	ok &= vs_str(c, node_get(n, "authority"), &rd->authority);
	port = node_get(n, "port");
	derive = node_get(n, "derivePort");
	scheme = node_get(n, "scheme");
	code = node_get(n, "redirectCode");
	node_check_unknown(c->d, n);
	ok &= cfg_decode_port(c->d, port, &rd->port);
	if (derive != NULL) {
		if (node_enum(c->d, derive, vs_derive_port, &i))
			rd->derive_port_from_request = i == 1;
		else
			ok = false;
		if (port != NULL) {
			diag_error(c->d, derive, "only one of port or derivePort may be set");
			ok = false;
		}
	}
	if (scheme != NULL && node_str(c->d, scheme, &rd->scheme)) {
		if (strcmp(rd->scheme, "http") != 0 && strcmp(rd->scheme, "https") != 0) {
			diag_error(c->d, scheme,
				   "invalid redirect scheme, must be \"http\" or "
				   "\"https\"");
			ok = false;
		}
	} else if (scheme != NULL) {
		ok = false;
	}
	if (code != NULL && node_int(c->d, code, 0, 999, &v)) {
		if (v != 0 && (v < 300 || v > 399)) {
			diag_error(c->d, code, "%d is not a valid redirect code, must be 3xx",
				   (int)v);
			ok = false;
		} else if (v != 0) {
			rd->redirect_code = (uint32_t)v;
		}
	} else if (code != NULL) {
		ok = false;
	}
	if (ok && rd->uri == NULL && rd->authority == NULL && port == NULL && derive == NULL &&
	    rd->scheme == NULL) {
		diag_error(c->d, n, "redirect must specify uri, authority, scheme, or port");
		ok = false;
	}
	r->more->redirect = rd;
	return ok;
}

static int vs_b64(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/* protobuf JSON bytes: standard or URL-safe base64, padding optional. */
static bool vs_base64(struct pool *p, const char *s, char **out, size_t *outlen)
{
	size_t len = strlen(s), o = 0, i;
	uint32_t acc = 0;
	int bits = 0;
	char *buf;

	while (len > 0 && s[len - 1] == '=')
		len--;
	buf = pool_alloc(p, len * 3 / 4 + 1);
	for (i = 0; i < len; i++) {
		int v = vs_b64((unsigned char)s[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (len % 4 == 1)
		return false;
	*out = buf;
	*outlen = o;
	return true;
}

static bool vs_direct_response(struct vs_ctx *c, struct node *n, struct direct_response *dr)
{
	struct node *status, *body, *x;
	bool ok = true;
	const char *s;

	if (!node_want_map(c->d, n))
		return false;
	dr->given = true;
	status = cfg_require(c->d, n, "status");
	body = node_get(n, "body");
	node_check_unknown(c->d, n);
	if (status == NULL || !cfg_decode_u32(c->d, status, 200, 599, &dr->status))
		ok = false;
	if (body == NULL)
		return ok;
	if (!node_want_map(c->d, body))
		return false;
	if ((x = node_get(body, "string")) != NULL && node_str(c->d, x, &s)) {
		dr->body = s;
		dr->body_len = strlen(s);
	} else if (x != NULL) {
		ok = false;
	}
	if ((x = node_get(body, "bytes")) != NULL && node_str(c->d, x, &s)) {
		char *b;

		if (dr->body != NULL) {
			diag_error(c->d, body, "only one of string or bytes may be set");
			ok = false;
		} else if (!vs_base64(c->p, s, &b, &dr->body_len)) {
			diag_error(c->d, x, "bytes must be base64-encoded");
			ok = false;
		} else {
			dr->body = b;
		}
	} else if (x != NULL) {
		ok = false;
	}
	node_check_unknown(c->d, body);
	if (dr->body_len > VS_BODY_MAX) {
		diag_error(c->d, body, "direct response body must be less than 1MB");
		ok = false;
	} else if (dr->body_len > VS_BODY_WARN) {
		diag_warn(c->d, body, "large direct response body (%zu bytes)", dr->body_len);
	}
	return ok;
}

static bool vs_delegate(struct vs_ctx *c, struct node *n, struct http_route *r)
{
	struct node *name, *ns;
	bool ok = true;

	if (!node_want_map(c->d, n))
		return false;
	name = cfg_require(c->d, n, "name");
	ns = node_get(n, "namespace");
	node_check_unknown(c->d, n);
	if (name != NULL && node_str(c->d, name, &r->more->delegate.name)) {
		if (!cfg_is_dns_subdomain(r->more->delegate.name)) {
			diag_error(c->d, name, "invalid delegate name \"%s\"",
				   r->more->delegate.name);
			ok = false;
		}
	} else {
		ok = false;
	}
	r->more->delegate.ns = c->ns;
	if (ns != NULL && node_str(c->d, ns, &r->more->delegate.ns)) {
		if (!cfg_is_dns_label(r->more->delegate.ns)) {
			diag_error(c->d, ns, "invalid namespace \"%s\"", r->more->delegate.ns);
			ok = false;
		}
	} else if (ns != NULL) {
		ok = false;
	}
	return ok;
}

static bool vs_rewrite(struct vs_ctx *c, struct node *n, struct http_rewrite *rw)
{
	struct node *rr, *m, *w;
	bool ok = true;

	if (!node_want_map(c->d, n))
		return false;
	rw->given = true;
	ok &= vs_str(c, node_get(n, "uri"), &rw->uri);
	ok &= vs_str(c, node_get(n, "authority"), &rw->authority);
	rr = node_get(n, "uriRegexRewrite");
	node_check_unknown(c->d, n);
	if (rr != NULL && node_want_map(c->d, rr)) {
		m = node_get(rr, "match");
		w = node_get(rr, "rewrite");
		node_check_unknown(c->d, rr);
		ok &= vs_str(c, m, &rw->uri_regex.match);
		ok &= vs_str(c, w, &rw->uri_regex.rewrite);
		if (ok && (rw->uri_regex.match == NULL || *rw->uri_regex.match == '\0' ||
			   rw->uri_regex.rewrite == NULL || *rw->uri_regex.rewrite == '\0')) {
			diag_error(c->d, rr, "uriRegexRewrite requires both match and rewrite");
			ok = false;
		}
		if (ok && rw->uri != NULL) {
			diag_error(c->d, n,
				   "rewrite may only contain one of uri or uriRegexRewrite");
			ok = false;
		}
	} else if (rr != NULL) {
		ok = false;
	}
	if (ok && (rw->uri == NULL || *rw->uri == '\0') && rr == NULL &&
	    (rw->authority == NULL || *rw->authority == '\0')) {
		diag_error(c->d, n,
			   "rewrite must specify at least one of uri, uriRegexRewrite, or "
			   "authority");
		ok = false;
	}
	return ok;
}

static bool vs_retry_on_ok(struct vs_ctx *c, struct node *at, struct http_retry *rt)
{
	const char *bad;
	size_t badlen;

	if (retry_on_parse(rt->retry_on, &rt->policy, &bad, &badlen) == 0)
		return true;
	diag_error(c->d, at, "\"%.*s\" is not a valid retryOn policy", (int)badlen, bad);
	return false;
}

static bool vs_retries(struct vs_ctx *c, struct node *n, struct http_retry *rt)
{
	struct node *att, *ptt, *on, *rrl, *x;
	bool ok = true;
	int64_t v;

	if (!node_want_map(c->d, n))
		return false;
	rt->given = true;
	rt->attempts = -1;
	att = node_get(n, "attempts");
	ptt = node_get(n, "perTryTimeout");
	on = node_get(n, "retryOn");
	rrl = node_get(n, "retryRemoteLocalities");
	rt->ignore_previous_hosts = -1;
	if ((x = node_get(n, "retryIgnorePreviousHosts")) != NULL) {
		bool b;

		if (node_bool(c->d, x, &b))
			rt->ignore_previous_hosts = b;
		else
			ok = false;
	}
	ok &= cfg_decode_duration(c->d, node_get(n, "backoff"), 1000, false, &rt->backoff_us);
	node_check_unknown(c->d, n);
	if (att != NULL) {
		if (node_int(c->d, att, 0, INT32_MAX, &v))
			rt->attempts = (int32_t)v;
		else
			ok = false;
	}
	ok &= cfg_decode_duration(c->d, ptt, 1000, false, &rt->per_try_timeout_us);
	if (on != NULL && node_str(c->d, on, &rt->retry_on))
		ok &= vs_retry_on_ok(c, on, rt);
	else if (on != NULL)
		ok = false;
	if (rrl != NULL)
		ok &= node_bool(c->d, rrl, &rt->retry_remote_localities);
	if (ok && rt->attempts == 0 && (ptt != NULL || on != NULL || rrl != NULL)) {
		diag_error(c->d, att,
			   "http retry policy configured when attempts are set to 0 "
			   "(disabled)");
		ok = false;
	}
	if (ok)
		retry_policy_compile(rt, &rt->policy);
	return ok;
}

/* Fault percentage: `percentage` wins; the deprecated integer `percent` is converted. */
static bool vs_fault_percent(struct vs_ctx *c, struct node *map, struct percent *out)
{
	struct node *pct = node_get(map, "percentage"), *old = node_get(map, "percent");
	uint32_t v;
	bool ok;

	ok = cfg_decode_percent(c->d, pct, out);
	if (old != NULL) {
		diag_warn(c->d, old, "percent is deprecated, use percentage");
		if (!cfg_decode_u32(c->d, old, 0, 100, &v))
			return false;
		if (pct == NULL) {
			out->given = true;
			out->value = v;
		}
	}
	return ok;
}

/* Istio translates an absent percentage into 0 % (istio/istio#36303 settled on Envoy's
 * behaviour and changed the documentation): valid, but almost certainly not what was meant. */
static void vs_fault_never(struct vs_ctx *c, struct node *at, const char *what)
{
	diag_warn(c->d, at,
		  "no percentage: Istio injects this %s into no request (percentage.value: 100 "
		  "for every request)",
		  what);
}

static bool vs_fault(struct vs_ctx *c, struct node *n, struct http_fault *f)
{
	struct node *delay, *abort_, *x;
	bool ok = true;
	int given;

	if (!node_want_map(c->d, n))
		return false;
	f->given = true;
	delay = node_get(n, "delay");
	abort_ = node_get(n, "abort");
	node_check_unknown(c->d, n);
	if (delay == NULL && abort_ == NULL) {
		diag_error(c->d, n, "HTTP fault injection must have an abort and/or a delay");
		return false;
	}
	if (delay != NULL && node_want_map(c->d, delay)) {
		f->delay.given = true;
		ok &= vs_fault_percent(c, delay, &f->delay.percentage);
		if (node_get(delay, "percentage") == NULL && node_get(delay, "percent") == NULL)
			vs_fault_never(c, delay, "delay");
		x = node_get(delay, "fixedDelay");
		if ((node_get(delay, "exponentialDelay")) != NULL) {
			diag_error(c->d, node_get(delay, "exponentialDelay"),
				   "exponentialDelay not supported yet");
			ok = false;
		} else if (x == NULL) {
			diag_error(c->d, delay, "missing required field \"fixedDelay\"");
			ok = false;
		}
		ok &= cfg_decode_duration(c->d, x, 1000, false, &f->delay.fixed_delay_us);
		node_check_unknown(c->d, delay);
	} else if (delay != NULL) {
		ok = false;
	}
	if (abort_ != NULL && node_want_map(c->d, abort_)) {
		struct node *hs = node_get(abort_, "httpStatus");
		struct node *gs = node_get(abort_, "grpcStatus");
		struct node *h2 = node_get(abort_, "http2Error");

		f->abort.given = true;
		/* Unlike delay, abort has no deprecated integer percent (a reserved field) */
		ok &=
		    cfg_decode_percent(c->d, node_get(abort_, "percentage"), &f->abort.percentage);
		node_check_unknown(c->d, abort_);
		given = (hs != NULL) + (gs != NULL) + (h2 != NULL);
		if (given > 1) {
			diag_error(c->d, abort_,
				   "only one of httpStatus, grpcStatus or http2Error "
				   "may be set");
			ok = false;
		} else if (given == 0) {
			diag_warn(c->d, abort_, "abort configured, but error type not set");
		}
		if (h2 != NULL) {
			diag_error(c->d, h2, "HTTP/2 abort fault injection not supported yet");
			ok = false;
		}
		ok &= cfg_decode_u32(c->d, hs, 200, 599, &f->abort.http_status);
		if (gs != NULL && node_str(c->d, gs, &f->abort.grpc_status)) {
			f->abort.grpc_code = vs_index(vs_grpc_status, f->abort.grpc_status);
			if (f->abort.grpc_code < 0) {
				diag_error(c->d, gs,
					   "gRPC status \"%s\" is not supported, for example "
					   "NOT_FOUND",
					   f->abort.grpc_status);
				ok = false;
			}
		} else if (gs != NULL) {
			ok = false;
		}
		if (given == 1 && h2 == NULL && node_get(abort_, "percentage") == NULL)
			vs_fault_never(c, abort_, "abort");
	} else if (abort_ != NULL) {
		ok = false;
	}
	return ok;
}

static bool vs_mirror_percent(struct vs_ctx *c, struct node *old, struct percent *out)
{
	uint32_t v;

	diag_warn(c->d, old, "%s is deprecated, use mirrorPercentage", old->key);
	if (!cfg_decode_u32(c->d, old, 0, 100, &v))
		return false;
	out->given = true;
	out->value = v;
	return true;
}

static bool vs_mirrors(struct vs_ctx *c, struct node *route, struct http_route *r)
{
	struct node *mirror = node_get(route, "mirror");
	struct node *mp = node_get(route, "mirrorPercentage");
	struct node *old = node_get(route, "mirrorPercent");
	struct node *old2 = node_get(route, "mirror_percent");
	struct node *list = node_get(route, "mirrors");
	bool ok = true;
	size_t i;

	if (old == NULL)
		old = old2;
	if (mirror != NULL && list != NULL) {
		diag_error(c->d, list, "only one of mirror or mirrors may be set");
		return false;
	}
	if ((mp != NULL || old != NULL) && mirror == NULL)
		diag_warn(c->d, mp ? mp : old, "%s without mirror is ignored",
			  mp ? "mirrorPercentage" : old->key);
	if (mirror != NULL) {
		r->more->mirrors = pool_alloc(c->p, sizeof(*r->more->mirrors));
		ok &= vs_destination(c, mirror, &r->more->mirrors[0].dest);
		ok &= cfg_decode_percent(c->d, mp, &r->more->mirrors[0].percentage);
		if (old != NULL) {
			struct percent tmp;

			if (vs_mirror_percent(c, old, &tmp) && mp == NULL)
				r->more->mirrors[0].percentage = tmp;
			else if (mp == NULL)
				ok = false;
		}
		r->more->nmirrors = 1;
		return ok;
	}
	if (list == NULL)
		return true;
	if (!node_want_seq(c->d, list))
		return false;
	r->more->mirrors = pool_calloc(c->p, list->n ? list->n : 1, sizeof(*r->more->mirrors));
	for (i = 0; i < list->n; i++) {
		struct node *e = list->vals[i], *dest;

		if (!node_want_map(c->d, e)) {
			ok = false;
			continue;
		}
		dest = cfg_require(c->d, e, "destination");
		ok &= dest != NULL &&
		      vs_destination(c, dest, &r->more->mirrors[r->more->nmirrors].dest);
		ok &= cfg_decode_percent(c->d, node_get(e, "percentage"),
					 &r->more->mirrors[r->more->nmirrors].percentage);
		node_check_unknown(c->d, e);
		r->more->nmirrors++;
	}
	return ok;
}

/* corsPolicy allowHeaders / exposeHeaders: header names, or "*". */
static bool vs_cors_header_list(struct vs_ctx *c, struct node *x, struct str_list *out)
{
	bool ok = true;

	if (!cfg_decode_str_list(c->p, c->d, x, out, false))
		return false;
	for (size_t i = 0; i < out->n; i++) {
		if (strcmp(out->v[i], "*") != 0 && !cfg_is_token(out->v[i])) {
			diag_error(c->d, x->vals[i], "header name %s is not a valid header name",
				   out->v[i]);
			ok = false;
		}
	}
	return ok;
}

static bool vs_cors(struct vs_ctx *c, struct node *n, struct cors_policy *cp)
{
	struct node *ao, *old, *x;
	struct str_list l;
	bool ok = true, b;
	size_t i;
	int e;

	if (!node_want_map(c->d, n))
		return false;
	cp->given = true;
	cp->allow_credentials = -1;
	ao = node_get(n, "allowOrigins");
	old = node_get(n, "allowOrigin");
	if (ao != NULL && node_want_seq(c->d, ao)) {
		cp->allow_origins =
		    pool_calloc(c->p, ao->n ? ao->n : 1, sizeof(*cp->allow_origins));
		for (i = 0; i < ao->n; i++) {
			struct string_match *m = &cp->allow_origins[cp->nallow_origins];

			if (!cfg_decode_string_match(c->p, c->d, ao->vals[i], m, false)) {
				ok = false;
				continue;
			}
			if (m->len == 0) {
				diag_error(c->d, ao->vals[i],
					   "\"\" is not a valid match for CORS "
					   "allowOrigins");
				ok = false;
				continue;
			}
			cp->nallow_origins++;
		}
	} else if (ao != NULL) {
		ok = false;
	}
	if (old != NULL) {
		diag_warn(c->d, old, "allowOrigin is deprecated, use allowOrigins");
		if (cfg_decode_str_list(c->p, c->d, old, &l, false) && ao == NULL) {
			cp->allow_origins =
			    pool_calloc(c->p, l.n ? l.n : 1, sizeof(*cp->allow_origins));
			for (i = 0; i < l.n; i++) {
				struct string_match *m = &cp->allow_origins[i];

				m->kind = SM_EXACT;
				m->value = l.v[i];
				m->len = strlen(l.v[i]);
				m->node = old->vals[i];
			}
			cp->nallow_origins = l.n;
		}
	}
	x = node_get(n, "allowMethods");
	if (cfg_decode_str_list(c->p, c->d, x, &cp->allow_methods, false)) {
		for (i = 0; i < cp->allow_methods.n; i++) {
			if (!vs_in(vs_methods, cp->allow_methods.v[i])) {
				diag_error(c->d, x->vals[i],
					   "\"%s\" is not a supported HTTP method",
					   cp->allow_methods.v[i]);
				ok = false;
			}
		}
	} else {
		ok = false;
	}
	ok &= vs_cors_header_list(c, node_get(n, "allowHeaders"), &cp->allow_headers);
	ok &= vs_cors_header_list(c, node_get(n, "exposeHeaders"), &cp->expose_headers);
	ok &= cfg_decode_duration(c->d, node_get(n, "maxAge"), 1000, true, &cp->max_age_us);
	if ((x = node_get(n, "allowCredentials")) != NULL) {
		if (node_bool(c->d, x, &b))
			cp->allow_credentials = b;
		else
			ok = false;
	}
	if ((x = node_get(n, "unmatchedPreflights")) != NULL) {
		if (node_enum(c->d, x, vs_preflight, &e))
			cp->unmatched_preflights = vs_preflight[e];
		else
			ok = false;
	}
	node_check_unknown(c->d, n);
	return ok;
}

/* Istio: the authority may be rewritten in one place only. */
static bool vs_authority_once(struct vs_ctx *c, struct node *at, const struct http_route *r)
{
	const struct header_op_list *req = &r->headers->request;
	const struct kv_list *lists[2] = {&req->set, &req->add};
	int seen = r->more->rewrite->authority != NULL && *r->more->rewrite->authority != '\0';
	size_t i, k;

	for (k = 0; k < 2; k++)
		for (i = 0; i < lists[k]->n; i++)
			if (strcmp(lists[k]->v[i].key, "host") == 0 ||
			    strcmp(lists[k]->v[i].key, ":authority") == 0)
				seen++;
	if (seen > 1) {
		diag_error(c->d, at,
			   "authority header cannot be set multiple times (rewrite."
			   "authority and headers.request)");
		return false;
	}
	return true;
}

/* Istio's route / redirect / directResponse / delegate exclusivity. */
static bool vs_http_actions(struct vs_ctx *c, struct node *n, const struct http_route *r)
{
	bool ok = true;

	if (r->more->delegate.name != NULL) {
		if (c->delegate) {
			diag_error(c->d, n, "delegate HTTP route cannot contain delegate");
			ok = false;
		}
		if (r->nroute > 0 || r->more->redirect != NULL || r->more->direct_response->given) {
			diag_error(c->d, n,
				   "a delegating HTTP route must not specify route, redirect "
				   "or directResponse");
			ok = false;
		}
		return ok;
	}
	if (r->more->redirect != NULL) {
		if (r->nroute > 0) {
			diag_error(c->d, n, "HTTP route cannot contain both route and redirect");
			ok = false;
		}
		if (r->more->direct_response->given) {
			diag_error(c->d, n,
				   "HTTP route cannot contain both redirect and "
				   "directResponse");
			ok = false;
		}
		if (r->more->fault->given) {
			diag_error(c->d, n, "HTTP route cannot contain both fault and redirect");
			ok = false;
		}
		if (r->more->rewrite->given) {
			diag_error(c->d, n, "HTTP route cannot contain both rewrite and redirect");
			ok = false;
		}
	} else if (r->more->direct_response->given) {
		if (r->nroute > 0) {
			diag_error(c->d, n,
				   "HTTP route cannot contain both route and "
				   "directResponse");
			ok = false;
		}
	} else if (r->nroute == 0) {
		diag_error(c->d, n,
			   "HTTP route needs one of route, redirect, directResponse or "
			   "delegate");
		ok = false;
	}
	return ok;
}

/* The route's fields; r->more is the caller's scratch block. */
static bool vs_http_route_fields(struct vs_ctx *c, struct node *n, struct http_route *r)
{
	struct node *x, *route;
	bool ok = true;
	size_t i, nroute = 0;

	r->node = n;
	r->vs = c->vs;
	ok &= vs_str(c, node_get(n, "name"), &r->name);
	if ((x = node_get(n, "match")) != NULL && node_want_seq(c->d, x)) {
		r->matches = pool_calloc(c->p, x->n ? x->n : 1, sizeof(*r->matches));
		for (i = 0; i < x->n; i++) {
			if (vs_http_match(c, x->vals[i], &r->matches[r->nmatches],
					  &r->more->stat_prefix))
				r->nmatches++;
			else
				ok = false;
		}
	} else if (x != NULL) {
		ok = false;
	}
	route = node_get(n, "route");
	ok &= vs_route_dests(c, route, true, &r->route, &nroute);
	r->nroute = (uint32_t)nroute;
	if ((x = node_get(n, "redirect")) != NULL)
		ok &= vs_redirect(c, x, r);
	if ((x = node_get(n, "directResponse")) != NULL) {
		r->more->direct_response = vs_policy(c, sizeof(*r->more->direct_response));
		ok &= vs_direct_response(c, x, r->more->direct_response);
	}
	if ((x = node_get(n, "delegate")) != NULL)
		ok &= vs_delegate(c, x, r);
	if ((x = node_get(n, "rewrite")) != NULL) {
		r->more->rewrite = vs_policy(c, sizeof(*r->more->rewrite));
		ok &= vs_rewrite(c, x, r->more->rewrite);
	}
	if ((x = node_get(n, "timeout")) != NULL) {
		/* 0s is Istio's "disabled"; anything else needs ms precision. */
		if (cfg_decode_duration(c->d, x, 0, false, &r->timeout_us))
			r->timeout_given = true;
		else
			ok = false;
	}
	if ((x = node_get(n, "retries")) != NULL) {
		r->retries = vs_policy(c, sizeof(*r->retries));
		ok &= vs_retries(c, x, r->retries);
	}
	if ((x = node_get(n, "fault")) != NULL) {
		r->more->fault = vs_policy(c, sizeof(*r->more->fault));
		ok &= vs_fault(c, x, r->more->fault);
	}
	ok &= vs_mirrors(c, n, r);
	if ((x = node_get(n, "corsPolicy")) != NULL) {
		r->more->cors = vs_policy(c, sizeof(*r->more->cors));
		ok &= vs_cors(c, x, r->more->cors);
	}
	if ((x = node_get(n, "headers")) != NULL) {
		r->headers = vs_policy(c, sizeof(*r->headers));
		ok &= cfg_decode_headers_ops(c->p, c->d, x, r->headers);
	}
	node_check_unknown(c->d, n);
	if (!ok)
		return false;
	ok &= vs_authority_once(c, n, r);
	ok &= vs_http_actions(c, n, r);
	return ok;
}

static bool vs_route_more_empty(const struct http_route_more *m)
{
	return m->redirect == NULL && m->direct_response == vs_no_route_more.direct_response &&
	       m->delegate.name == NULL && m->rewrite == vs_no_route_more.rewrite &&
	       m->fault == vs_no_route_more.fault && m->nmirrors == 0 &&
	       m->cors == vs_no_route_more.cors && m->stat_prefix == NULL;
}

static bool vs_http_route(struct vs_ctx *c, struct node *n, struct http_route *r)
{
	struct http_route_more more = vs_no_route_more;
	bool ok;

	memset(r, 0, sizeof(*r));
	cfg_vs_route_init(r);
	if (!node_want_map(c->d, n))
		return false;
	r->more = &more;
	ok = vs_http_route_fields(c, n, r);
	if (vs_route_more_empty(&more)) {
		r->more = (struct http_route_more *)&vs_no_route_more;
	} else {
		r->more = pool_alloc(c->p, sizeof(*r->more));
		*r->more = more;
	}
	return ok;
}

/* ---- tls / tcp ---- */

/* Istio's SubsetOf: is sni covered by the VirtualService host h? */
static bool vs_sni_covered(const char *sni, const char *h)
{
	size_t ls = strlen(sni), lh = strlen(h);

	if (strcmp(h, "*") == 0 || strcmp(sni, h) == 0)
		return true;
	if (h[0] == '*' && ls >= lh && strcmp(sni + ls - (lh - 1), h + 1) == 0)
		return true;
	return false;
}

static bool vs_l4_match(struct vs_ctx *c, struct node *n, bool tls, struct l4_match *m)
{
	struct node *sni, *subnets, *gw, *x;
	char why[160];
	bool ok = true;
	size_t i, j;

	memset(m, 0, sizeof(*m));
	if (!node_want_map(c->d, n))
		return false;
	m->node = n;
	sni = tls ? cfg_require(c->d, n, "sniHosts") : NULL;
	subnets = node_get(n, "destinationSubnets");
	ok &= cfg_decode_port(c->d, node_get(n, "port"), &m->port);
	ok &= cfg_decode_labels(c->p, c->d, node_get(n, "sourceLabels"), &m->source_labels);
	gw = node_get(n, "gateways");
	if (cfg_decode_str_list(c->p, c->d, gw, &m->gateways, false))
		ok &= vs_gateway_names(c, gw, &m->gateways);
	else
		ok = false;
	if ((x = node_get(n, "sourceNamespace")) != NULL) {
		const char *s;

		if (node_str(c->d, x, &s))
			diag_warn(c->d, x, "sourceNamespace is mesh-only and ignored by meshgate");
		else
			ok = false;
	}
	node_check_unknown(c->d, n);
	if (cfg_decode_str_list(c->p, c->d, subnets, &m->destination_subnets, false)) {
		for (i = 0; i < m->destination_subnets.n; i++) {
			if (!cfg_is_ip_or_cidr(m->destination_subnets.v[i])) {
				diag_error(c->d, subnets->vals[i], "%s is not a valid CIDR block",
					   m->destination_subnets.v[i]);
				ok = false;
			}
		}
	} else {
		ok = false;
	}
	if (!tls)
		return ok;
	if (sni == NULL)
		return false;
	if (!cfg_decode_str_list(c->p, c->d, sni, &m->sni_hosts, true))
		return false;
	if (m->sni_hosts.n == 0) {
		diag_error(c->d, sni, "TLS match must have at least one SNI host");
		return false;
	}
	for (i = 0; i < m->sni_hosts.n; i++) {
		const char *h = m->sni_hosts.v[i];
		bool covered = false;

		if (cfg_is_ip(h)) {
			diag_warn(c->d, sni->vals[i],
				  "using an IP address (\"%s\") goes against SNI "
				  "spec and most clients do not support this",
				  h);
			continue;
		}
		if (!cfg_check_host(h, CFG_HOST_WILDCARD, why, sizeof(why))) {
			diag_error(c->d, sni->vals[i], "%s", why);
			ok = false;
			continue;
		}
		for (j = 0; j < c->vs->hosts.n && !covered; j++)
			covered = vs_sni_covered(h, c->vs->hosts.v[j]);
		if (!covered) {
			diag_error(c->d, sni->vals[i],
				   "SNI host \"%s\" is not a compatible subset of "
				   "any of the virtual service hosts",
				   h);
			ok = false;
		}
	}
	return ok;
}

static bool vs_l4_route(struct vs_ctx *c, struct node *n, bool tls, struct l4_route *r)
{
	struct node *match, *route;
	bool ok = true;
	size_t i;

	memset(r, 0, sizeof(*r));
	if (!node_want_map(c->d, n))
		return false;
	r->node = n;
	match = tls ? cfg_require(c->d, n, "match") : node_get(n, "match");
	route = cfg_require(c->d, n, "route");
	node_check_unknown(c->d, n);
	if (match != NULL && node_want_seq(c->d, match)) {
		if (tls && match->n == 0) {
			diag_error(c->d, match, "TLS route must have at least one match condition");
			ok = false;
		}
		r->matches = pool_calloc(c->p, match->n ? match->n : 1, sizeof(*r->matches));
		for (i = 0; i < match->n; i++) {
			if (vs_l4_match(c, match->vals[i], tls, &r->matches[r->nmatches]))
				r->nmatches++;
			else
				ok = false;
		}
	} else if (match != NULL || tls) {
		ok = false;
	}
	if (route == NULL)
		return false;
	ok &= vs_route_dests(c, route, false, &r->route, &r->nroute);
	if (ok && r->nroute == 0) {
		diag_error(c->d, route, "%s route is required", tls ? "TLS" : "TCP");
		ok = false;
	}
	return ok;
}

static bool vs_l4_routes(struct vs_ctx *c, struct node *n, bool tls, struct l4_route **out,
			 size_t *nout)
{
	bool ok = true;
	size_t i;

	if (n == NULL)
		return true;
	if (!node_want_seq(c->d, n))
		return false;
	if (c->delegate && n->n > 0) {
		diag_error(c->d, n, "delegate virtual service must have no %s route specified",
			   tls ? "tls" : "tcp");
		ok = false;
	}
	*out = pool_calloc(c->p, n->n ? n->n : 1, sizeof(**out));
	for (i = 0; i < n->n; i++) {
		if (vs_l4_route(c, n->vals[i], tls, &(*out)[*nout]))
			(*nout)++;
		else
			ok = false;
	}
	return ok;
}

/* ---- the VirtualService ---- */

static bool vs_hosts(struct vs_ctx *c, struct node *n)
{
	struct cfg_vs *vs = c->vs;
	char why[160];
	bool ok, valid = true;
	size_t i, j;

	if (n == NULL)
		return true;
	ok = cfg_decode_str_list(c->p, c->d, n, &vs->hosts, true);
	for (i = 0; i < vs->hosts.n; i++) {
		const char *h = vs->hosts.v[i];

		if (!cfg_check_host(h, CFG_HOST_WILDCARD | CFG_HOST_IP, why, sizeof(why))) {
			diag_error(c->d, n->vals[i], "%s", why);
			ok = valid = false;
		} else if (!c->to_gateway && strcmp(h, "*") == 0) {
			diag_error(c->d, n->vals[i],
				   "wildcard host * is not allowed for virtual "
				   "services bound to the mesh gateway");
			ok = valid = false;
		}
	}
	for (i = 0; valid && i < vs->hosts.n; i++) {
		for (j = i + 1; j < vs->hosts.n; j++) {
			if (cfg_hosts_overlap(vs->hosts.v[i], vs->hosts.v[j])) {
				diag_error(c->d, n->vals[j],
					   "duplicate hosts in virtual service: %s & "
					   "%s",
					   vs->hosts.v[i], vs->hosts.v[j]);
				ok = false;
			}
		}
	}
	return ok;
}

/* After decoding, only a regex has something left to report (link compiles it, and a bad
 * pattern is reported at its `regex` key).  Other conditions stand on their match block's
 * ghost: one allocation per condition less, 3 MB in a table of 100 000 routes. */
static void vs_ghost_sm(struct pool *p, struct string_match *m, struct node *block)
{
	m->node = m->kind == SM_REGEX ? node_ghost(p, m->node) : block;
}

/* A claim condition keeps its own position too: link refuses it there. */
static void vs_ghost_headers(struct pool *p, struct header_match *h, size_t n, struct node *block)
{
	for (size_t i = 0; i < n; i++)
		if (vs_is_claim(h[i].name))
			h[i].m.node = node_ghost(p, h[i].m.node);
		else
			vs_ghost_sm(p, &h[i].m, block);
}

static void vs_ghost_dests(struct pool *p, struct route_destination *rd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rd[i].dest.node = node_ghost(p, rd[i].dest.node);
}

static void vs_ghost_l4(struct pool *p, struct l4_route *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		r[i].node = node_ghost(p, r[i].node);
		for (size_t j = 0; j < r[i].nmatches; j++)
			r[i].matches[j].node = node_ghost(p, r[i].matches[j].node);
		vs_ghost_dests(p, r[i].route, r[i].nroute);
	}
}

/* The document's tree is dropped after decoding (load.c): every node the model points at
 * becomes a ghost, which link's reports turn back into the node (node_real). */
static void vs_ghost(struct pool *p, struct cfg_vs *vs)
{
	size_t i, j;

	vs->meta.node = node_ghost(p, vs->meta.node);
	for (i = 0; i < vs->nhttp; i++) {
		struct http_route *r = &vs->http[i];

		r->node = node_ghost(p, r->node);
		for (j = 0; j < r->nmatches; j++) {
			struct http_match *m = &r->matches[j];

			m->node = node_ghost(p, m->node);
			vs_ghost_sm(p, &m->uri, m->node);
			vs_ghost_headers(p, m->headers, m->nheaders, m->node);
			if (m->more == &vs_no_more)
				continue; /* read-only, and no nodes */
			vs_ghost_sm(p, &m->more->scheme, m->node);
			vs_ghost_sm(p, &m->more->method, m->node);
			vs_ghost_sm(p, &m->more->authority, m->node);
			vs_ghost_headers(p, m->more->without_headers, m->more->nwithout_headers,
					 m->node);
			vs_ghost_headers(p, m->more->query_params, m->more->nquery_params, m->node);
		}
		vs_ghost_dests(p, r->route, r->nroute);
		for (j = 0; j < r->more->nmirrors; j++)
			r->more->mirrors[j].dest.node =
			    node_ghost(p, r->more->mirrors[j].dest.node);
		for (j = 0; j < r->more->cors->nallow_origins; j++)
			vs_ghost_sm(p, &r->more->cors->allow_origins[j], r->node);
	}
	vs_ghost_l4(p, vs->tls, vs->ntls);
	vs_ghost_l4(p, vs->tcp, vs->ntcp);
}

void cfg_vs_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct node *hosts, *gws, *http, *tls, *tcp;
	struct vs_ctx ctx, *c = &ctx;
	int errors = d->nerrors;
	struct cfg_vs *vs;
	size_t i;

	vs = pool_alloc(p, sizeof(*vs));
	vs->meta = *meta;
	memset(c, 0, sizeof(*c));
	c->p = p;
	c->d = d;
	c->ns = meta->ns;
	c->vs = vs;

	hosts = node_get(spec, "hosts");
	gws = node_get(spec, "gateways");
	http = node_get(spec, "http");
	tls = node_get(spec, "tls");
	tcp = node_get(spec, "tcp");
	cfg_decode_export_to(p, d, node_get(spec, "exportTo"), meta->ns, false, &vs->export_to);
	node_check_unknown(d, spec);

	if (cfg_decode_str_list(p, d, gws, &vs->gateways, false))
		vs_gateway_names(c, gws, &vs->gateways);
	c->to_gateway = vs->gateways.n > 0;
	for (i = 0; i < vs->gateways.n; i++)
		if (strcmp(vs->gateways.v[i], "mesh") == 0)
			c->to_gateway = false;
	vs_hosts(c, hosts);
	/* No hosts: a delegate, only reachable through another VirtualService's delegate. */
	c->delegate = hosts == NULL || (hosts->type == NODE_SEQ && hosts->n == 0);
	if (c->delegate && vs->gateways.n > 0)
		diag_error(d, gws, "delegate virtual service must have no gateways specified");

	if ((http == NULL || (http->type == NODE_SEQ && http->n == 0)) &&
	    (tls == NULL || (tls->type == NODE_SEQ && tls->n == 0)) &&
	    (tcp == NULL || (tcp->type == NODE_SEQ && tcp->n == 0)))
		diag_error(d, spec, "http, tcp or tls must be provided in virtual service");
	if (http != NULL && node_want_seq(d, http)) {
		vs->http = pool_calloc(p, http->n ? http->n : 1, sizeof(*vs->http));
		for (i = 0; i < http->n; i++) {
			struct http_route *r = &vs->http[vs->nhttp];

			if (vs_http_route(c, http->vals[i], r)) {
				r->index = (int)vs->nhttp;
				vs->nhttp++;
			}
		}
	}
	vs_l4_routes(c, tls, true, &vs->tls, &vs->ntls);
	vs_l4_routes(c, tcp, false, &vs->tcp, &vs->ntcp);

	if (d->nerrors != errors)
		return;
	if (node_doc_dropped(spec->doc))
		vs_ghost(p, vs);
	set->vss = cfg_append(p, set->vss, set->nvss, sizeof(*set->vss));
	set->vss[set->nvss++] = vs;
}
