/* Unit tests for host lookup, route matching, weighted picks and explain (src/router.c),
 * the regex wrapper (src/regex.c) and the vhost tables link.c builds for them.
 *
 * Config sets are built by hand here, so these tests depend on no decoder; test_link.c
 * covers the YAML path. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config/diag.h"
#include "config/link.h"
#include "config/load.h"
#include "config/model.h"
#include "msg.h"
#include "pool.h"
#include "regex.h"
#include "router.h"
#include "snapshot.h"

/* ---- building sets by hand ---------------------------------------------------------- */

static struct pool *P;
static struct diag D;

static void *grow1(void *arr, size_t *n, size_t size)
{
	arr = pool_grow(P, arr, *n, *n + 1, size);
	(*n)++;
	return arr;
}

static struct cfg_set *set_new(void)
{
	struct cfg_set *set = pool_alloc(P, sizeof(*set));

	set->main.ns = "default";
	set->main.root_namespace = "istio-system"; /* Telemetry's apply reads it */
	return set;
}

static struct str_list strs(const char *a, const char *b)
{
	struct str_list l = {pool_calloc(P, 2, sizeof(char *)), 0};

	if (a != NULL)
		l.v[l.n++] = a;
	if (b != NULL)
		l.v[l.n++] = b;
	return l;
}

static void meta(struct cfg_meta *m, const char *kind, const char *ns, const char *name,
		 struct cfg_set *set)
{
	m->kind = kind;
	m->ns = ns;
	m->name = name;
	m->order = set->order_counter++;
}

static struct gw_server *gw_add(struct cfg_set *set, const char *name, uint32_t port,
				const char *h1, const char *h2)
{
	struct cfg_gateway *gw = pool_alloc(P, sizeof(*gw));
	struct gw_server *srv;

	meta(&gw->meta, "Gateway", "default", name, set);
	gw->servers = pool_calloc(P, 1, sizeof(*gw->servers));
	gw->nservers = 1;
	srv = &gw->servers[0];
	srv->port = port;
	srv->protocol = GWP_HTTP;
	srv->hosts = pool_calloc(P, 2, sizeof(*srv->hosts));
	srv->hosts[srv->nhosts++] = (struct gw_host){"*", h1};
	if (h2 != NULL)
		srv->hosts[srv->nhosts++] = (struct gw_host){"*", h2};
	set->gateways = grow1(set->gateways, &set->ngateways, sizeof(*set->gateways));
	set->gateways[set->ngateways - 1] = gw;
	return srv;
}

static struct cfg_vs *vs_add(struct cfg_set *set, const char *name, const char *host,
			     const char *gateway)
{
	struct cfg_vs *vs = pool_alloc(P, sizeof(*vs));

	meta(&vs->meta, "VirtualService", "default", name, set);
	vs->hosts = strs(host, NULL);
	vs->gateways = strs(gateway, NULL);
	set->vss = grow1(set->vss, &set->nvss, sizeof(*set->vss));
	set->vss[set->nvss - 1] = vs;
	return vs;
}

/* A route with a direct response (no destination needed) unless dest is given. */
static struct http_route *route_add(struct cfg_vs *vs, const char *name)
{
	struct http_route_more *more;
	struct http_route *r;

	vs->http = grow1(vs->http, &vs->nhttp, sizeof(*vs->http));
	r = &vs->http[vs->nhttp - 1];
	r->name = name;
	r->vs = vs;
	r->index = (int)vs->nhttp - 1;
	cfg_vs_route_init(r);
	more = pool_alloc(P, sizeof(*more));
	*more = *r->more; /* the shared empty block is read-only */
	r->more = more;
	r->more->direct_response = pool_alloc(P, sizeof(*r->more->direct_response));
	r->more->direct_response->given = true;
	r->more->direct_response->status = 200;
	return r;
}

/* Routes point into vs->http, which grow1 moves: fix the pointers after the last add. */
static struct http_match *match_add(struct http_route *r)
{
	size_t n = r->nmatches;

	r->matches = grow1(r->matches, &n, sizeof(*r->matches));
	r->nmatches = (uint32_t)n;
	r->matches[r->nmatches - 1].more = pool_alloc(P, sizeof(struct http_match_more));
	return &r->matches[r->nmatches - 1];
}

static void sm(struct string_match *m, enum string_match_kind kind, const char *value)
{
	m->kind = kind;
	m->value = value;
	m->len = strlen(value);
}

static struct header_match *hm_add(struct header_match **v, size_t *n, const char *name)
{
	*v = grow1(*v, n, sizeof(**v));
	(*v)[*n - 1].name = name;
	return &(*v)[*n - 1];
}

static struct cfg_se *se_add(struct cfg_set *set, const char *host, uint32_t port)
{
	struct cfg_se *se = pool_alloc(P, sizeof(*se));

	meta(&se->meta, "ServiceEntry", "default", host, set);
	se->hosts = strs(host, NULL);
	se->ports = pool_calloc(P, 1, sizeof(*se->ports));
	se->ports[0] = (struct se_port){port, "HTTP", "http", 0};
	se->nports = 1;
	se->resolution = SE_RES_STATIC;
	set->ses = grow1(set->ses, &set->nses, sizeof(*set->ses));
	set->ses[set->nses - 1] = se;
	return se;
}

static void se_ep(struct cfg_se *se, const char *addr, const char *version)
{
	struct se_endpoint *ep;

	se->endpoints = grow1(se->endpoints, &se->nendpoints, sizeof(*se->endpoints));
	ep = &se->endpoints[se->nendpoints - 1];
	ep->address = addr;
	if (version != NULL) {
		ep->labels.v = pool_calloc(P, 1, sizeof(struct kv));
		ep->labels.v[0] = (struct kv){"version", version};
		ep->labels.n = 1;
	}
}

static void dest_add(struct http_route *r, const char *host, const char *subset, uint32_t w)
{
	struct route_destination *d;
	size_t n = r->nroute;

	r->more->direct_response->given = false;
	r->route = grow1(r->route, &n, sizeof(*r->route));
	r->nroute = (uint32_t)n;
	d = &r->route[r->nroute - 1];
	cfg_vs_dest_init(d);
	d->dest.host = host;
	d->dest.fqdn = host;
	d->dest.subset = subset;
	d->weight = w;
}

static struct snapshot *link_ok(struct cfg_set *set)
{
	struct snapshot *s = link_compile(P, &D, set);

	if (s == NULL)
		diag_print(&D, stderr);
	assert_non_null(s);
	return s;
}

/* ---- requests ----------------------------------------------------------------------- */

struct req {
	struct route_request rq;
	struct msg_header h[8];
};

static struct req *req(const char *method, const char *target, const char *host)
{
	static struct req r;
	const char *q = strchr(target, '?');

	memset(&r, 0, sizeof(r));
	r.rq.method = method;
	r.rq.method_len = strlen(method);
	r.rq.path = target;
	r.rq.path_len = q ? (size_t)(q - target) : strlen(target);
	if (q != NULL) {
		r.rq.query = q + 1;
		r.rq.query_len = strlen(q + 1);
	}
	r.rq.host = host;
	r.rq.host_len = strlen(host);
	r.rq.authority = host;
	r.rq.authority_len = strlen(host);
	r.rq.scheme = "http";
	r.rq.port = 80;
	r.rq.headers = r.h;
	return &r;
}

static void hdr(struct req *r, const char *name, const char *value)
{
	r->h[r->rq.nheaders++] = (struct msg_header){name, strlen(name), value, strlen(value)};
}

static const char *route_name(const struct snapshot *s, const struct req *r)
{
	const struct vhost *vh = router_find_vhost(&s->listeners[0], r->rq.host, r->rq.host_len);
	const struct http_route *rt = router_match(vh, &r->rq);

	return rt != NULL ? rt->name : "(none)";
}

/* A request target and the name of the route it matches ("(none)": no route). */
struct want {
	const char *target, *route;
};

/* GET of each target on host h.test matches its route; a mismatch names the target. */
static void expect_routes(const struct snapshot *s, const struct want *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *got = route_name(s, req("GET", w[i].target, "h.test"));

		if (strcmp(got, w[i].route) != 0)
			fail_msg("GET %s: route \"%s\", expected \"%s\"", w[i].target, got,
				 w[i].route);
	}
}

#define EXPECT_ROUTES(s, ...)                                                                      \
	expect_routes((s), (const struct want[]){__VA_ARGS__},                                     \
		      sizeof((const struct want[]){__VA_ARGS__}) / sizeof(struct want))

static int setup(void **state)
{
	P = pool_new();
	diag_init(&D);
	return 0;
}

static int teardown(void **state)
{
	pool_free(P);
	diag_fini(&D);
	return 0;
}

/* ---- host lookup -------------------------------------------------------------------- */

static void test_host_precedence(void **state)
{
	struct cfg_set *set = set_new();
	const char *hosts[] = {"foo.example.com", "*.example.com", "*.b.example.com", "*"};
	struct snapshot *s;
	const struct vhost *vh;

	gw_add(set, "gw", 80, "*", NULL);
	for (size_t i = 0; i < 4; i++)
		route_add(vs_add(set, hosts[i], hosts[i], "gw"), hosts[i]);
	s = link_ok(set);
	assert_int_equal(s->nlisteners, 1);
	assert_string_equal(s->listeners[0].key, "0.0.0.0:80");
#define LOOK(h) router_find_vhost(&s->listeners[0], h, strlen(h))->name
	assert_string_equal(LOOK("foo.example.com"), "foo.example.com");
	assert_string_equal(LOOK("FOO.Example.COM"), "foo.example.com");
	assert_string_equal(LOOK("x.b.example.com"), "*.b.example.com");
	assert_string_equal(LOOK("a.x.B.example.com"), "*.b.example.com");
	assert_string_equal(LOOK("bar.example.com"), "*.example.com");
	assert_string_equal(LOOK("b.example.com"), "*.example.com");
	assert_string_equal(LOOK("example.com"), "*");
	assert_string_equal(LOOK(".example.com"), "*");
	assert_string_equal(LOOK("other"), "*");
	/* Only the first len bytes count: a host is not NUL-terminated on the wire. */
	vh = router_find_vhost(&s->listeners[0], "foo.example.comXX", 15);
	assert_string_equal(vh->name, "foo.example.com");
#undef LOOK
}

static void test_host_no_star(void **state)
{
	struct cfg_set *set = set_new();
	struct snapshot *s;
	char name[64];

	gw_add(set, "gw", 8080, "*", NULL);
	/* Enough exact hosts to exercise probing in the open-addressing table. */
	for (int i = 0; i < 100; i++) {
		char *h = pool_printf(P, "h%d.test", i);

		route_add(vs_add(set, h, h, "gw"), h);
	}
	s = link_ok(set);
	assert_int_equal(s->listeners[0].vhosts.nvhosts, 100);
	assert_true(s->listeners[0].vhosts.exact_mask + 1 >= 200);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "H%d.TEST", i);
		assert_string_equal(router_find_vhost(&s->listeners[0], name, strlen(name))->name,
				    pool_printf(P, "h%d.test", i));
	}
	assert_null(router_find_vhost(&s->listeners[0], "h100.test", 9));
	assert_null(router_find_vhost(&s->listeners[0], "h1.tes", 6));
}

/* Server hosts narrow VS hosts the way Istio does. */
static void test_host_intersection(void **state)
{
	struct cfg_set *set = set_new();
	struct snapshot *s;

	gw_add(set, "gw", 80, "*.example.com", "exact.org");
	route_add(vs_add(set, "a", "foo.example.com", "gw"), "a");
	route_add(vs_add(set, "b", "*", "gw"), "b");
	route_add(vs_add(set, "c", "*.com", "gw"), "c");
	s = link_ok(set);
	/* b: "*" becomes each server host; c: "*.com" narrows to "*.example.com". */
	assert_int_equal(s->listeners[0].vhosts.nvhosts, 3);
	assert_string_equal(route_name(s, req("GET", "/", "foo.example.com")), "a");
	assert_string_equal(route_name(s, req("GET", "/", "exact.org")), "b");
	/* "*.example.com" vhost: b's routes first (load order), then c's. */
	assert_string_equal(route_name(s, req("GET", "/", "bar.example.com")), "b");
	assert_null(router_find_vhost(&s->listeners[0], "x.com", 5));
}

/* ---- route matching ----------------------------------------------------------------- */

static void test_route_order(void **state)
{
	struct cfg_set *set = set_new();
	struct cfg_vs *vs, *vs2;
	struct snapshot *s;

	gw_add(set, "gw", 80, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	route_add(vs, "root");
	route_add(vs, "api");
	route_add(vs, "exact");
	sm(&match_add(&vs->http[0])->uri, SM_PREFIX, "/static");
	sm(&match_add(&vs->http[0])->uri, SM_PREFIX, "/img"); /* OR */
	sm(&match_add(&vs->http[1])->uri, SM_PREFIX, "/api");
	sm(&match_add(&vs->http[2])->uri, SM_EXACT, "/api/v1");
	vs2 = vs_add(set, "vs2", "h.test", "gw"); /* merged after vs */
	route_add(vs2, "fallback");
	s = link_ok(set);
	assert_int_equal(router_find_vhost(&s->listeners[0], "h.test", 6)->nroutes, 4);
	EXPECT_ROUTES(s, {"/static/a.css", "root"}, {"/img", "root"},
		      /* First match wins: "api" shadows the exact match that follows. */
		      {"/api/v1", "api"}, {"/API", "fallback"}, {"/", "fallback"});
}

static void test_match_kinds(void **state)
{
	struct cfg_set *set = set_new();
	struct http_match *m;
	struct cfg_vs *vs;
	struct snapshot *s;
	int i;

	gw_add(set, "gw", 80, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	for (i = 0; i < 7; i++)
		route_add(vs, pool_printf(P, "r%d", i));
	sm(&match_add(&vs->http[0])->uri, SM_REGEX, "/api");
	sm(&match_add(&vs->http[1])->uri, SM_REGEX, "/re/[a-z]+|/re/[0-9]+/x");
	m = match_add(&vs->http[2]);
	sm(&m->uri, SM_EXACT, "/case"); /* the decoder lower-cases caseless values */
	m->ignore_uri_case = true;
	m = match_add(&vs->http[3]);
	sm(&m->uri, SM_PREFIX, "/ci/");
	m->ignore_uri_case = true;
	m = match_add(&vs->http[4]);
	sm(&m->uri, SM_REGEX, "/rx/[a-z]+"); /* ignoreUriCase does not apply to regex */
	m->ignore_uri_case = true;
	m = match_add(&vs->http[5]);
	sm(&m->more->method, SM_EXACT, "POST");
	sm(&m->more->scheme, SM_EXACT, "http");
	m = match_add(&vs->http[6]);
	sm(&m->more->authority, SM_REGEX, "h:[0-9]+");
	route_add(vs, "port");
	match_add(&vs->http[7])->port = 8080;
	s = link_ok(set);

	assert_string_equal(route_name(s, req("GET", "/api", "h.test")), "r0");
	assert_string_equal(route_name(s, req("GET", "/api/x", "h.test")),
			    "(none)"); /* full match */
	EXPECT_ROUTES(s, {"/xapi", "(none)"}, {"/re/abc", "r1"}, {"/re/12/x", "r1"},
		      {"/re/12", "(none)"}, {"/CaSe", "r2"}, {"/case/", "(none)"}, {"/CI/x", "r3"},
		      {"/rx/abc", "r4"}, {"/rx/ABC", "(none)"});
	assert_string_equal(route_name(s, req("POST", "/p", "h.test")), "r5");
	assert_string_equal(route_name(s, req("post", "/p", "h.test")), "(none)");
	{
		struct req *r = req("GET", "/auth", "h.test");

		r->rq.authority = "h:8080";
		r->rq.authority_len = 6;
		assert_string_equal(route_name(s, r), "r6");
		r->rq.port = 8080;
		r->rq.authority = "h";
		r->rq.authority_len = 1;
		assert_string_equal(route_name(s, r), "port");
	}
}

static void test_headers(void **state)
{
	struct cfg_set *set = set_new();
	struct http_match *m;
	struct header_match *h;
	struct cfg_vs *vs;
	struct snapshot *s;
	struct req *r;

	gw_add(set, "gw", 80, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	route_add(vs, "exact");
	route_add(vs, "joined");
	route_add(vs, "regex");
	route_add(vs, "present");
	route_add(vs, "without");
	route_add(vs, "without-present");
	m = match_add(&vs->http[0]);
	sm(&hm_add(&m->headers, &m->nheaders, "end-user")->m, SM_EXACT, "jason");
	m = match_add(&vs->http[1]);
	sm(&hm_add(&m->headers, &m->nheaders, "x-multi")->m, SM_EXACT, "a,b");
	m = match_add(&vs->http[2]);
	sm(&hm_add(&m->headers, &m->nheaders, "x-re")->m, SM_REGEX, "v[0-9]");
	m = match_add(&vs->http[3]);
	hm_add(&m->headers, &m->nheaders, "x-present")->present_only = true;
	m = match_add(&vs->http[4]);
	sm(&m->uri, SM_PREFIX, "/w");
	sm(&hm_add(&m->more->without_headers, &m->more->nwithout_headers, "x-beta")->m, SM_EXACT,
	   "yes");
	m = match_add(&vs->http[5]);
	sm(&m->uri, SM_PREFIX, "/np");
	h = hm_add(&m->more->without_headers, &m->more->nwithout_headers, "x-beta");
	h->present_only = true;
	s = link_ok(set);

	r = req("GET", "/", "h.test");
	hdr(r, "End-User", "jason");
	assert_string_equal(route_name(s, r), "exact");
	r = req("GET", "/", "h.test");
	hdr(r, "end-user", "Jason");
	assert_string_equal(route_name(s, r), "(none)");
	/* Several headers of one name are matched joined with ",". */
	r = req("GET", "/", "h.test");
	hdr(r, "x-multi", "a");
	hdr(r, "other", "z");
	hdr(r, "X-Multi", "b");
	assert_string_equal(route_name(s, r), "joined");
	r = req("GET", "/", "h.test");
	hdr(r, "x-multi", "a");
	assert_string_equal(route_name(s, r), "(none)");
	r = req("GET", "/", "h.test");
	hdr(r, "x-re", "v1");
	assert_string_equal(route_name(s, r), "regex");
	r = req("GET", "/", "h.test");
	hdr(r, "x-re", "v1");
	hdr(r, "x-re", "v2"); /* "v1,v2" is not a full match */
	assert_string_equal(route_name(s, r), "(none)");
	r = req("GET", "/", "h.test");
	hdr(r, "x-present", "");
	assert_string_equal(route_name(s, r), "present");

	/* withoutHeaders: a present, different value passes; the matching value fails; an
	 * absent header fails too, as in Istio/Envoy (istio/istio#50988). */
	r = req("GET", "/w", "h.test");
	hdr(r, "x-beta", "no");
	assert_string_equal(route_name(s, r), "without");
	r = req("GET", "/w", "h.test");
	hdr(r, "x-beta", "yes");
	assert_string_equal(route_name(s, r), "(none)");
	assert_string_equal(route_name(s, req("GET", "/w", "h.test")), "(none)");
	/* withoutHeaders {}: the header must be absent. */
	assert_string_equal(route_name(s, req("GET", "/np", "h.test")), "without-present");
	r = req("GET", "/np", "h.test");
	hdr(r, "x-beta", "");
	assert_string_equal(route_name(s, r), "(none)");
}

static void test_header_join_overflow(void **state)
{
	struct cfg_set *set = set_new();
	struct http_match *m;
	struct cfg_vs *vs;
	struct snapshot *s;
	struct req *r;
	char *big = pool_alloc(P, 5000);

	memset(big, 'a', 4999);
	gw_add(set, "gw", 80, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	route_add(vs, "re");
	m = match_add(&vs->http[0]);
	sm(&hm_add(&m->headers, &m->nheaders, "x")->m, SM_REGEX, "a*,a*");
	s = link_ok(set);
	r = req("GET", "/", "h.test");
	hdr(r, "x", big);
	hdr(r, "x", big + 2000);
	assert_string_equal(route_name(s, r), "re"); /* 7999 bytes joined: fits */
	r = req("GET", "/", "h.test");
	hdr(r, "x", big);
	hdr(r, "x", big);
	assert_string_equal(route_name(s, r), "(none)"); /* 9999: too big, no match */
}

static void test_query_params(void **state)
{
	struct cfg_set *set = set_new();
	struct http_match *m;
	struct cfg_vs *vs;
	struct snapshot *s;

	gw_add(set, "gw", 80, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	route_add(vs, "exact");
	route_add(vs, "regex");
	route_add(vs, "empty");
	route_add(vs, "present");
	m = match_add(&vs->http[0]);
	sm(&hm_add(&m->more->query_params, &m->more->nquery_params, "key")->m, SM_EXACT, "true");
	m = match_add(&vs->http[1]);
	sm(&hm_add(&m->more->query_params, &m->more->nquery_params, "id")->m, SM_REGEX, "[0-9]+");
	m = match_add(&vs->http[2]);
	sm(&hm_add(&m->more->query_params, &m->more->nquery_params, "flag")->m, SM_EXACT, "");
	m = match_add(&vs->http[3]);
	hm_add(&m->more->query_params, &m->more->nquery_params, "p")->present_only = true;
	s = link_ok(set);

	EXPECT_ROUTES(s, {"/x?key=true", "exact"}, {"/x?a=1&key=true&b", "exact"},
		      /* The first occurrence counts. */
		      {"/x?key=false&key=true", "(none)"}, {"/x?Key=true", "(none)"},
		      {"/x?id=123", "regex"}, {"/x?id=12a", "(none)"}, {"/x?flag", "empty"},
		      {"/x?x=1&flag=", "empty"}, {"/x?p=", "present"}, {"/x?keyx=true", "(none)"},
		      {"/x", "(none)"});
}

static void test_match_gateways(void **state)
{
	struct cfg_set *set = set_new();
	struct http_match *m;
	struct cfg_vs *vs;
	struct snapshot *s;
	struct req *r;

	gw_add(set, "gw", 80, "*", NULL);
	gw_add(set, "other", 81, "*", NULL);
	vs = vs_add(set, "vs", "h.test", "gw");
	vs->gateways = strs("gw", "default/other");
	route_add(vs, "only-other");
	route_add(vs, "any");
	m = match_add(&vs->http[0]);
	m->more->gateways = strs("other", "mesh");
	s = link_ok(set);
	assert_int_equal(s->nlisteners, 2);
	/* Resolved by link to "ns/name". */
	assert_string_equal(vs->http[0].matches[0].more->gateways.v[0], "default/other");
	assert_string_equal(route_name(s, req("GET", "/", "h.test")), "any");
	r = req("GET", "/", "h.test");
	r->rq.gateway = "default/other";
	assert_string_equal(route_name(s, r), "only-other");
	{
		const struct vhost *vh = router_find_vhost(&s->listeners[1], "h.test", 6);

		assert_string_equal(router_match(vh, &req("GET", "/", "h.test")->rq)->name,
				    "only-other");
	}
}

/* ---- destinations ------------------------------------------------------------------- */

static void test_weighted_pick(void **state)
{
	struct cfg_set *set = set_new();
	struct cfg_dr *dr = pool_alloc(P, sizeof(*dr));
	struct cfg_se *se;
	struct cfg_vs *vs;
	struct http_route *r;
	struct snapshot *s;
	const struct route_destination *d;

	gw_add(set, "gw", 80, "*", NULL);
	se = se_add(set, "svc.test", 8080);
	se_ep(se, "10.0.0.1", "v1");
	se_ep(se, "10.0.0.2", "v2");
	se_ep(se, "::1", "v2");
	meta(&dr->meta, "DestinationRule", "default", "dr", set);
	dr->host = dr->fqdn = "svc.test";
	dr->subsets = pool_calloc(P, 2, sizeof(*dr->subsets));
	dr->nsubsets = 2;
	dr->subsets[0].name = "v1";
	dr->subsets[0].labels.v = &se->endpoints[0].labels.v[0];
	dr->subsets[0].labels.n = 1;
	dr->subsets[1].name = "v2";
	dr->subsets[1].labels.v = &se->endpoints[1].labels.v[0];
	dr->subsets[1].labels.n = 1;
	dr->subsets[1].policy.given = true;
	dr->subsets[1].policy.lb.simple = LB_ROUND_ROBIN;
	set->drs = grow1(set->drs, &set->ndrs, sizeof(*set->drs));
	set->drs[0] = dr;
	vs = vs_add(set, "vs", "h.test", "gw");
	r = route_add(vs, "split");
	dest_add(r, "svc.test", "v1", 30);
	dest_add(r, "svc.test", "v2", 70);
	route_add(vs, "single");
	dest_add(&vs->http[1], "svc.test", NULL, 0);
	r = &vs->http[0];
	s = link_ok(set);

	assert_int_equal(r->total_weight, 100);
	assert_string_equal(router_pick_destination(r, 0)->dest.subset, "v1");
	assert_string_equal(router_pick_destination(r, 29)->dest.subset, "v1");
	assert_string_equal(router_pick_destination(r, 30)->dest.subset, "v2");
	assert_string_equal(router_pick_destination(r, 99)->dest.subset, "v2");
	d = router_pick_destination(&vs->http[1], 99);
	assert_int_equal(d->weight, 100);

	assert_int_equal(s->nclusters, 3);
	assert_string_equal(s->clusters[0]->name, "outbound|8080|v1|svc.test");
	assert_int_equal(s->clusters[0]->nendpoints, 1);
	assert_string_equal(s->clusters[0]->endpoints[0].name, "10.0.0.1:8080");
	assert_int_equal(s->clusters[0]->lb, LB_LEAST_REQUEST);
	assert_string_equal(s->clusters[1]->name, "outbound|8080|v2|svc.test");
	assert_int_equal(s->clusters[1]->nendpoints, 2);
	assert_string_equal(s->clusters[1]->endpoints[1].name, "[::1]:8080");
	assert_int_equal(s->clusters[1]->lb, LB_ROUND_ROBIN);
	assert_int_equal(s->clusters[1]->index, 1);
	assert_string_equal(s->clusters[2]->name, "outbound|8080||svc.test");
	assert_int_equal(s->clusters[2]->nendpoints, 3);
	assert_ptr_equal(d->dest.cluster, s->clusters[2]);
}

/* ---- explain ------------------------------------------------------------------------ */

static void test_explain(void **state)
{
	struct cfg_set *set = set_new();
	struct router_trace t = {0};
	struct http_match *m;
	struct cfg_vs *vs;
	struct snapshot *s;
	const struct http_route *rt;
	struct req *r;

	gw_add(set, "gw", 80, "*.example.com", NULL);
	vs = vs_add(set, "shop", "*.example.com", "gw");
	route_add(vs, "api");
	route_add(vs, NULL);
	m = match_add(&vs->http[0]);
	sm(&m->uri, SM_PREFIX, "/api");
	m = match_add(&vs->http[0]);
	sm(&hm_add(&m->headers, &m->nheaders, "end-user")->m, SM_EXACT, "jason");
	m = match_add(&vs->http[1]);
	sm(&m->uri, SM_EXACT, "/");
	s = link_ok(set);

	r = req("GET", "/x", "www.example.com");
	rt = router_explain(&s->listeners[0], &r->rq, &t);
	assert_null(rt);
	fprintf(stderr, "%s", t.buf);
	assert_non_null(strstr(t.buf, "listener 0.0.0.0:80: host \"www.example.com\": "
				      "wildcard host \"*.example.com\" with 2 routes"));
	assert_non_null(strstr(t.buf, "route 0 (\"api\", from VirtualService default/shop "
				      "http[0]):\n"
				      "    match[0]: uri prefix \"/api\" did not match \"/x\"\n"
				      "    match[1]: headers \"end-user\": header absent\n"));
	assert_non_null(strstr(t.buf, "    match[0]: uri exact \"/\" did not match \"/x\"\n"));
	assert_non_null(strstr(t.buf, "no route matched -> 404 (NR)\n"));
	router_trace_free(&t);

	r = req("GET", "/", "www.example.com");
	hdr(r, "end-user", "bob");
	rt = router_explain(&s->listeners[0], &r->rq, &t);
	assert_ptr_equal(rt, &vs->http[1]);
	assert_non_null(strstr(t.buf, "    match[1]: headers \"end-user\" exact \"jason\" did not "
				      "match \"bob\"\n"));
	assert_non_null(strstr(t.buf, "    match[0] matched\nselected route 1 (from "
				      "VirtualService default/shop http[1])\n"));
	router_trace_free(&t);

	r = req("GET", "/", "example.org");
	assert_null(router_explain(&s->listeners[0], &r->rq, &t));
	assert_non_null(strstr(t.buf, "no virtual host matches (1 configured) -> 404 (NR)"));
	router_trace_free(&t);
}

/* ---- regex -------------------------------------------------------------------------- */

static void test_regex_rejects(void **state)
{
	static const char *const bad[] = {
	    "(a)\\1", "(?=a)b",  "(?!a)b", "(?<=a)b",  "(?<!a)b",   "(?>a)",    "a*+",
	    "a++",    "a?+",     "a{2}+",  "(a|(?R))", "(?1)(a)",   "(?P=n)",   "\\k<n>",
	    "\\g1",   "(*SKIP)", "(?|a)",  "(?x)a b",  "(?(1)a|b)", "(?&name)", "(?P>name)",
	    "a\\Kb",  "(?#c)a",  "a\\Z",   "\\h+",
	};
	static const char *const good[] = {
	    "a*?",     "a+?b",         "(?P<name>a)", "(?<name>a)", "(?i)abc",
	    "(?i:a)b", "[\\1-\\7]?",   "[(?=]",       "\\Q(?=\\E",  "a{2,3}?",
	    "[]a]+",   "[[:alpha:]]+", "\\d+\\.\\w",  "(?sU)a.*",   "caf\xc3\xa9",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (regex_compile(P, bad[i], false, err, sizeof(err)) != NULL)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(err, "RE2 syntax is required"));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (regex_compile(P, good[i], false, err, sizeof(err)) == NULL)
			fail_msg("refused %s: %s", good[i], err);
	assert_null(regex_compile(P, "(a", false, err, sizeof(err)));
	assert_non_null(strstr(err, "missing closing parenthesis"));
	regex_compile(P, "a(?=b)", false, err, sizeof(err));
	assert_string_equal(err, "lookahead \"(?=\" at offset 1 is not supported (RE2 syntax is "
				 "required)");
}

static void test_regex_match(void **state)
{
	char err[256];
	struct pcre2_real_code_8 *re;

	re = regex_compile(P, "a|ab", false, err, sizeof(err));
	assert_true(regex_match(re, "ab", 2)); /* alternation backtracks to a full match */
	assert_true(regex_match(re, "a", 1));
	assert_false(regex_match(re, "abc", 3));
	re = regex_compile(P, "abc$", false, err, sizeof(err));
	assert_false(regex_match(re, "abc\n", 4)); /* RE2's $ is the very end */
	re = regex_compile(P, "A.C", true, err, sizeof(err));
	assert_true(regex_match(re, "abc", 3));
	assert_true(regex_match(re,
				"a\xc3\xa9"
				"c",
				4)); /* '.' is one UTF-8 character */
	assert_false(regex_match(re,
				 "a\xff"
				 "c",
				 3)); /* invalid UTF-8: no match, no error */
	re = regex_compile(P, "(a+)+b", false, err, sizeof(err));
	{
		char s[64];

		memset(s, 'a', sizeof(s));
		assert_false(regex_match(re, s, sizeof(s))); /* bounded, not a hang */
	}
	re = regex_compile(P,
			   "([a-z])([a-z])([a-z])([a-z])([a-z])([a-z])([a-z])([a-z])([a-z])"
			   "([a-z])([a-z])([a-z])",
			   false, err, sizeof(err));
	assert_true(regex_match(re, "abcdefghijkl", 12)); /* more groups than the vector */
}

static void test_regex_replace(void **state)
{
	char err[256], out[64];
	struct pcre2_real_code_8 *re;
	long n;

	re = regex_compile_search(P, "^/service/([^/]+)(/.*)$", err, sizeof(err));
	n = regex_replace(re, "/service/foo/v1/api", 19, "\\2/instance/\\1", out, sizeof(out));
	assert_int_equal(n, 20);
	assert_string_equal(out, "/v1/api/instance/foo");
	n = regex_replace(re, "/other", 6, "\\2/instance/\\1", out, sizeof(out));
	assert_string_equal(out, "/other");
	re = regex_compile_search(P, "a", err, sizeof(err));
	regex_replace(re, "banana", 6, "o", out, sizeof(out));
	assert_string_equal(out, "bonono");
	re = regex_compile_search(P, "a*", err, sizeof(err));
	regex_replace(re, "baaac", 5, "-", out, sizeof(out));
	assert_string_equal(out, "-b-c-"); /* RE2::GlobalReplace */
	re = regex_compile_search(P, "(x)", err, sizeof(err));
	regex_replace(re, "axb", 3, "[\\0\\\\\\1]", out, sizeof(out));
	assert_string_equal(out, "a[x\\x]b");
	/* Bounded: -1 when the result and its NUL do not fit. */
	assert_int_equal(regex_replace(re, "xxxx", 4, "yy", out, 8), -1);
	assert_int_equal(regex_replace(re, "xxxx", 4, "yy", out, 9), 8);
}

/* ---- link: speed -------------------------------------------------------------------- */

static void test_link_many(void **state)
{
	struct cfg_set *set = set_new();
	struct timespec a, b;
	struct snapshot *s;
	int nvs = 10000, nr = 10;

	gw_add(set, "gw", 80, "*", NULL);
	se_ep(se_add(set, "svc.test", 80), "10.0.0.1", NULL);
	/* Built in place: the helpers above grow arrays one element at a time. */
	set->vss = pool_calloc(P, (size_t)nvs, sizeof(*set->vss));
	for (int i = 0; i < nvs; i++) {
		struct cfg_vs *vs = pool_alloc(P, sizeof(*vs));

		meta(&vs->meta, "VirtualService", "default", pool_printf(P, "vs%d", i), set);
		vs->hosts = strs(pool_printf(P, "h%d.example.com", i), NULL);
		vs->gateways = strs("gw", NULL);
		vs->http = pool_calloc(P, (size_t)nr, sizeof(*vs->http));
		vs->nhttp = (size_t)nr;
		for (int k = 0; k < nr; k++) {
			struct http_route *r = &vs->http[k];

			cfg_vs_route_init(r);
			r->name = pool_printf(P, "r%d", k);
			r->vs = vs;
			r->index = k;
			r->matches = pool_calloc(P, 1, sizeof(*r->matches));
			r->nmatches = 1;
			cfg_vs_match_init(&r->matches[0]);
			sm(&r->matches[0].uri, SM_PREFIX, pool_printf(P, "/p%d", k));
			r->route = pool_calloc(P, 1, sizeof(*r->route));
			r->nroute = 1;
			cfg_vs_dest_init(&r->route[0]);
			r->route[0].dest.host = r->route[0].dest.fqdn = "svc.test";
		}
		set->vss[set->nvss++] = vs;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	s = link_ok(set);
	clock_gettime(CLOCK_MONOTONIC, &b);
	fprintf(stderr, "link: %d VirtualServices x %d routes in %.1f ms\n", nvs, nr,
		(double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
	assert_int_equal(s->listeners[0].vhosts.nvhosts, nvs);
	assert_int_equal(s->nclusters, 1);
	assert_string_equal(route_name(s, req("GET", "/p7/x", "h9999.example.com")), "r7");
	assert_string_equal(route_name(s, req("GET", "/p7/x", "h10000.example.com")), "(none)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_host_precedence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_no_star, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_intersection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_join_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_gateways, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_weighted_pick, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_explain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_regex_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_regex_match, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_regex_replace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_many, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
