/* Unit tests for config/link.c through the real loader: inline YAML is written to a scratch
 * directory, loaded with config_load() and linked; the diagnostics must match exactly (they
 * are user interface), with the scratch directory left out of the paths. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/diag.h"
#include "config/link.h"
#include "config/load.h"
#include "pool.h"
#include "router.h"
#include "snapshot.h"
#include "tls.h"
#include "fixture.h"

static char dir[256];
static struct pool *P;
static struct diag D;
static char *out;

/* Load main (labels etc.) + r.yaml, link, compare the diagnostics. */
static struct snapshot *check(const char *main_extra, const char *yaml, const char *expect)
{
	char main_path[512];
	struct cfg_set *set;
	struct snapshot *s = NULL;

	fixture_write_file(dir, "main.yaml", main_extra);
	{
		FILE *f;

		snprintf(main_path, sizeof(main_path), "%s/main.yaml", dir);
		f = fopen(main_path, "a");
		assert_non_null(f);
		fputs("resources: [r.yaml]\n", f);
		fclose(f);
	}
	fixture_write_file(dir, "r.yaml", yaml);
	set = config_load(P, &D, main_path);
	if (D.nerrors == 0)
		s = link_compile(P, &D, set);
	free(out);
	out = fixture_diag_text(&D, dir);
	if (strcmp(out, expect) != 0)
		fail_msg("diagnostics differ\n--- expected\n%s--- got\n%s", expect, out);
	assert_int_equal(s == NULL, D.nerrors > 0);
	return s;
}

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
	free(out);
	out = NULL;
	return 0;
}

#define LABELS "labels: {istio: ingressgateway}\n"

#define GW80                                                                                       \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: Gateway\n"                                                                          \
	"metadata: {name: gw}\n"                                                                   \
	"spec:\n"                                                                                  \
	"  selector: {istio: ingressgateway}\n"                                                    \
	"  servers:\n"                                                                             \
	"  - port: {number: 80, name: http, protocol: HTTP}\n"                                     \
	"    hosts: [\"*\"]\n"                                                                     \
	"---\n"

#define SE_REVIEWS                                                                                 \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: ServiceEntry\n"                                                                     \
	"metadata: {name: reviews}\n"                                                              \
	"spec:\n"                                                                                  \
	"  hosts: [reviews.default.svc.cluster.local]\n"                                           \
	"  ports: [{number: 9080, name: http, protocol: HTTP}]\n"                                  \
	"  resolution: STATIC\n"                                                                   \
	"  endpoints:\n"                                                                           \
	"  - {address: 10.0.0.1, labels: {version: v1}}\n"                                         \
	"  - {address: 10.0.0.2, labels: {version: v2}, ports: {http: 8080}, weight: 3}\n"         \
	"---\n"

#define VS_HEAD                                                                                    \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: VirtualService\n"                                                                   \
	"metadata: {name: vs}\n"                                                                   \
	"spec:\n"                                                                                  \
	"  hosts: [example.com]\n"                                                                 \
	"  gateways: [gw]\n"                                                                       \
	"  http:\n"

/* Lines 1-9 GW80, 10-20 SE_REVIEWS, then VS_HEAD from line 21 ("http:" is line 27). */

static void test_ok_routes(void **state)
{
	struct snapshot *s = check(LABELS,
				   GW80 SE_REVIEWS VS_HEAD
				   "  - match: [{uri: {prefix: /v2}}]\n"
				   "    route: [{destination: {host: reviews, subset: v2}}]\n"
				   "  - route:\n"
				   "    - {destination: {host: reviews, subset: v1}, weight: 1}\n"
				   "    - {destination: {host: reviews}, weight: 3}\n"
				   "---\n"
				   "apiVersion: networking.istio.io/v1\n"
				   "kind: DestinationRule\n"
				   "metadata: {name: reviews}\n"
				   "spec:\n"
				   "  host: reviews\n"
				   "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
				   "  subsets:\n"
				   "  - {name: v1, labels: {version: v1}}\n"
				   "  - name: v2\n"
				   "    labels: {version: v2}\n"
				   "    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
				   "");
	const struct vhost *vh;
	const struct http_route *r;
	struct route_request rq = {.method = "GET",
				   .method_len = 3,
				   .path = "/v2/x",
				   .path_len = 5,
				   .scheme = "http",
				   .port = 80};

	assert_int_equal(s->nlisteners, 1);
	assert_string_equal(s->listeners[0].key, "0.0.0.0:80");
	vh = router_find_vhost(&s->listeners[0], "Example.COM", 11);
	assert_non_null(vh);
	r = router_match(vh, &rq);
	assert_non_null(r);
	assert_int_equal(r->index, 0);
	assert_string_equal(r->route[0].dest.cluster->name,
			    "outbound|9080|v2|reviews.default.svc.cluster.local");
	rq.path = "/";
	rq.path_len = 1;
	r = router_match(vh, &rq);
	assert_int_equal(r->index, 1);
	assert_int_equal(r->total_weight, 4);
	assert_string_equal(router_pick_destination(r, 0)->dest.subset, "v1");
	assert_null(router_pick_destination(r, 1)->dest.subset);
	assert_int_equal(s->nclusters, 3);
	/* v2: the endpoint's port override and weight; the subset's lb policy. */
	assert_int_equal(s->clusters[0]->nendpoints, 1);
	assert_string_equal(s->clusters[0]->endpoints[0].name, "10.0.0.2:8080");
	assert_int_equal(s->clusters[0]->endpoints[0].weight, 3);
	assert_int_equal(s->clusters[0]->lb, LB_ROUND_ROBIN);
	assert_string_equal(s->clusters[1]->endpoints[0].name, "10.0.0.1:9080");
	assert_int_equal(s->clusters[1]->endpoints[0].weight, 1);
	assert_int_equal(s->clusters[1]->lb, LB_RANDOM);
	assert_int_equal(s->clusters[2]->nendpoints, 2);
	assert_string_equal(s->clusters[2]->name,
			    "outbound|9080||reviews.default.svc.cluster.local");
}

static void test_unknown_gateway(void **state)
{
	check(LABELS,
	      GW80 "apiVersion: networking.istio.io/v1\n"
		   "kind: VirtualService\n"
		   "metadata: {name: vs}\n"
		   "spec:\n"
		   "  hosts: [example.com]\n"
		   "  gateways: [gw, other/gw, mesh]\n"
		   "  http:\n"
		   "  - directResponse: {status: 200}\n",
	      "r.yaml:15:18: VirtualService default/vs: spec.gateways[1]: gateway other/gw not "
	      "found\n");
}

static void test_destination_not_declared(void **state)
{
	check(LABELS, GW80 SE_REVIEWS VS_HEAD "  - route: [{destination: {host: ratings}}]\n",
	      "r.yaml:28:34: VirtualService default/vs: spec.http[0].route[0].destination.host: "
	      "destination host ratings.default.svc.cluster.local is not declared by any "
	      "ServiceEntry\n");
}

/* extensionProviders: each authorizer's service and port is a ServiceEntry's, and gets the
 * cluster a route destination naming them would; an HTTP/2 port is refused for the HTTP
 * authorizer, any other for the gRPC one. */
#define SE_AUTHZ                                                                                   \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: ServiceEntry\n"                                                                     \
	"metadata: {name: ext-authz}\n"                                                            \
	"spec:\n"                                                                                  \
	"  hosts: [ext-authz.example]\n"                                                           \
	"  resolution: STATIC\n"                                                                   \
	"  ports: [{number: 8000, name: http, protocol: HTTP},\n"                                  \
	"          {number: 9001, name: grpc, protocol: GRPC}]\n"                                  \
	"  endpoints: [{address: 127.0.0.1}]\n"                                                    \
	"---\n"

static void test_ext_authz(void **state)
{
	struct snapshot *s;

	(void)state;
	s = check("extensionProviders:\n"
		  "- {name: a, envoyExtAuthzHttp: {service: ns/Ext-Authz.example, port: 8000}}\n"
		  "- {name: g, envoyExtAuthzGrpc: {service: ext-authz.example, port: 9001}}\n",
		  SE_AUTHZ, "main.yaml:1:1: warning: no listener is configured\n");
	assert_non_null(s);
	assert_int_equal(s->set->main.next_authz, 2);
	assert_int_equal(s->set->main.ext_authz[0].kind, EXT_AUTHZ_HTTP);
	assert_non_null(s->set->main.ext_authz[0].dest.cluster);
	assert_string_equal(s->set->main.ext_authz[0].dest.cluster->name,
			    "outbound|8000||ext-authz.example");
	assert_int_equal(s->set->main.ext_authz[1].kind, EXT_AUTHZ_GRPC);
	assert_int_equal(s->set->main.ext_authz[1].timeout_us, 600000000);
	assert_int_equal(s->set->main.ext_authz[1].status_on_error, 403);
	assert_non_null(s->set->main.ext_authz[1].dest.cluster);
	assert_true(s->set->main.ext_authz[1].dest.cluster->http2);
	assert_string_equal(s->set->main.ext_authz[1].dest.cluster->name,
			    "outbound|9001||ext-authz.example");
	diag_fini(&D);
	diag_init(&D);
	check("extensionProviders:\n"
	      "- {name: missing, envoyExtAuthzHttp: {service: nope.example, port: 80}}\n"
	      "- {name: wrong-port, envoyExtAuthzHttp: {service: ext-authz.example, port: 9000}}\n"
	      "- {name: h2, envoyExtAuthzHttp: {service: ext-authz.example, port: 9001}}\n"
	      "- {name: h1, envoyExtAuthzGrpc: {service: ext-authz.example, port: 8000}}\n",
	      SE_AUTHZ,
	      "main.yaml:2:48: extensionProviders[0].envoyExtAuthzHttp.service: extension "
	      "provider missing: service nope.example is not declared by any ServiceEntry\n"
	      "main.yaml:3:76: extensionProviders[1].envoyExtAuthzHttp.port: extension provider "
	      "wrong-port: port 9000 is not declared for host ext-authz.example (ServiceEntry "
	      "ports: 8000, 9001)\n"
	      "main.yaml:4:68: extensionProviders[2].envoyExtAuthzHttp.port: extension provider "
	      "h2: port 9001 of ext-authz.example speaks HTTP/2 upstream, and the HTTP "
	      "authorizer is asked over HTTP/1.1 (declare the port with protocol HTTP)\n"
	      "main.yaml:5:68: extensionProviders[3].envoyExtAuthzGrpc.port: extension provider "
	      "h1: port 8000 of ext-authz.example does not speak HTTP/2 upstream, and the gRPC "
	      "authorizer is asked over HTTP/2 (declare the port with protocol GRPC or HTTP2)\n"
	      "main.yaml:1:1: warning: no listener is configured\n");
}

static void test_unknown_subset(void **state)
{
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD
	      "  - route: [{destination: {host: reviews, subset: v9}}]\n"
	      "---\n"
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: DestinationRule\n"
	      "metadata: {name: reviews}\n"
	      "spec:\n"
	      "  host: reviews.default.svc.cluster.local\n"
	      "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n",
	      "r.yaml:28:51: VirtualService default/vs: spec.http[0].route[0].destination.subset: "
	      "subset v9 not found in DestinationRule default/reviews (subsets: v1, v2)\n");
	diag_fini(&D);
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD "  - route: [{destination: {host: reviews, subset: v1}}]\n",
	      "r.yaml:28:51: VirtualService default/vs: spec.http[0].route[0].destination.subset: "
	      "subset v1: no DestinationRule for host reviews.default.svc.cluster.local defines "
	      "subsets\n");
}

static void test_port_required(void **state)
{
	check(LABELS,
	      GW80 "apiVersion: networking.istio.io/v1\n"
		   "kind: ServiceEntry\n"
		   "metadata: {name: two}\n"
		   "spec:\n"
		   "  hosts: [two.example]\n"
		   "  ports: [{number: 80, name: http, protocol: HTTP}, "
		   "{number: 81, name: alt, protocol: HTTP}]\n"
		   "  resolution: STATIC\n"
		   "  endpoints: [{address: 10.0.0.1}]\n"
		   "---\n" VS_HEAD "  - route: [{destination: {host: two.example}}]\n"
		   "  - route: [{destination: {host: two.example, port: {number: 82}}}]\n",
	      "r.yaml:26:27: VirtualService default/vs: spec.http[0].route[0].destination: "
	      "destination port required: service two.example has several ports (80, 81)\n"
	      "r.yaml:27:5: warning: VirtualService default/vs: spec.http[1]: this route can "
	      "never match: the route at r.yaml:26 matches every request first\n"
	      "r.yaml:27:53: VirtualService default/vs: spec.http[1].route[0].destination.port: "
	      "port 82 is not declared for host two.example (ServiceEntry ports: 80, 81)\n");
}

static void test_weights(void **state)
{
	/* Istio validates only a zero total (the decoder); other totals are relative. */
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD "  - route:\n"
				      "    - {destination: {host: reviews}, weight: 0}\n"
				      "    - {destination: {host: reviews}}\n",
	      "r.yaml:29:5: VirtualService default/vs: spec.http[0].route: total destination "
	      "weight = 0\n");
}

static void test_host_conflict(void **state)
{
	check(LABELS,
	      GW80 "apiVersion: networking.istio.io/v1\n"
		   "kind: Gateway\n"
		   "metadata: {name: gw2}\n"
		   "spec:\n"
		   "  servers:\n"
		   "  - port: {number: 80, name: http, protocol: HTTP}\n"
		   "    hosts: [a.example, \"*\"]\n",
	      "r.yaml:16:24: Gateway default/gw2: spec.servers[0].hosts[1]: host \"*\" on "
	      "0.0.0.0:80 is already claimed by Gateway default/gw (server at r.yaml:7)\n");
}

static void test_https_not_served(void **state)
{
	check(LABELS,
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: Gateway\n"
	      "metadata: {name: gw}\n"
	      "spec:\n"
	      "  servers:\n"
	      "  - port: {number: 443, name: https, protocol: HTTPS}\n"
	      "    hosts: [\"*\"]\n"
	      "    tls: {mode: SIMPLE, credentialName: cert}\n"
	      "  - port: {number: 80, name: http, protocol: HTTP}\n"
	      "    hosts: [\"*\"]\n"
	      "    tls: {httpsRedirect: true}\n",
	      "r.yaml:8:41: Gateway default/gw: spec.servers[0].tls.credentialName: credentialName "
	      "\"cert\" needs credentialsDir in the main config\n");
}

/* httpsRedirect marks the server's hosts on its listener: hosts a VirtualService binds and,
 * without one, the server's own hosts; another server's hosts on the port are untouched. */
static void test_https_redirect(void **state)
{
	struct snapshot *s =
	    check(LABELS,
		  "apiVersion: networking.istio.io/v1\n"
		  "kind: Gateway\n"
		  "metadata: {name: gw}\n"
		  "spec:\n"
		  "  selector: {istio: ingressgateway}\n"
		  "  servers:\n"
		  "  - port: {number: 80, name: http, protocol: HTTP}\n"
		  "    hosts: [example.com, \"*.secure.example\"]\n"
		  "    tls: {httpsRedirect: true}\n"
		  "  - port: {number: 80, name: plain, protocol: HTTP}\n"
		  "    hosts: [plain.example]\n"
		  "---\n" SE_REVIEWS VS_HEAD "  - route: [{destination: {host: reviews}}]\n"
		  "---\n"
		  "apiVersion: networking.istio.io/v1\n"
		  "kind: VirtualService\n"
		  "metadata: {name: plain}\n"
		  "spec:\n"
		  "  hosts: [plain.example]\n"
		  "  gateways: [gw]\n"
		  "  http:\n"
		  "  - route: [{destination: {host: reviews}}]\n",
		  "");
	const struct vhost *vh;

	assert_int_equal(s->nlisteners, 1);
	vh = router_find_vhost(&s->listeners[0], "example.com", 11);
	assert_non_null(vh);
	assert_true(vh->https_redirect);
	assert_int_equal(vh->nroutes, 1);
	/* no VirtualService for it: a route-less vhost that only redirects */
	vh = router_find_vhost(&s->listeners[0], "a.secure.example", 16);
	assert_non_null(vh);
	assert_true(vh->https_redirect);
	assert_int_equal(vh->nroutes, 0);
	assert_string_equal(vh->name, "*.secure.example");
	vh = router_find_vhost(&s->listeners[0], "plain.example", 13);
	assert_non_null(vh);
	assert_false(vh->https_redirect);
	assert_null(router_find_vhost(&s->listeners[0], "other.example", 13));
}

static void test_mesh_only_and_selector(void **state)
{
	struct snapshot *s =
	    check("labels: {app: edge}\n",
		  GW80 "apiVersion: networking.istio.io/v1\n"
		       "kind: VirtualService\n"
		       "metadata: {name: mesh-vs}\n"
		       "spec:\n"
		       "  hosts: [reviews]\n"
		       "  http:\n"
		       "  - route: [{destination: {host: nowhere}}]\n"
		       "---\n" VS_HEAD "  - route: [{destination: {host: nowhere}}]\n",
		  "r.yaml:5:13: notice: Gateway default/gw: spec.selector: not served: selector "
		  "{istio: ingressgateway} does not match this appliance's labels {app: edge}\n"
		  "r.yaml:14:3: notice: VirtualService default/mesh-vs: spec: bound to mesh only "
		  "and is not served by a gateway\n"
		  "main.yaml:1:1: warning: no listener is configured\n");

	assert_int_equal(s->nlisteners, 0);
}

static void test_regex_errors(void **state)
{
	check(LABELS,
	      GW80 VS_HEAD "  - match:\n"
			   "    - uri: {regex: \"/a(?=b)\"}\n"
			   "    - headers: {x-id: {regex: \"([0-9]\"}}\n"
			   "    - headers: {x-any: {regex: \"*\"}}\n"
			   "    rewrite:\n"
			   "      uriRegexRewrite: {match: \"^/a/(.*)$\", rewrite: \"/\\\\2\"}\n"
			   "    directResponse: {status: 204}\n",
	      "r.yaml:18:20: VirtualService default/vs: spec.http[0].match[0].uri.regex: invalid "
	      "regex: lookahead \"(?=\" at offset 2 is not supported (RE2 syntax is required)\n"
	      "r.yaml:19:31: VirtualService default/vs: spec.http[0].match[1].headers.x-id.regex: "
	      "invalid regex: missing closing parenthesis at offset 6\n"
	      "r.yaml:22:54: VirtualService default/vs: "
	      "spec.http[0].rewrite.uriRegexRewrite.rewrite: rewrite refers to \\2 but the "
	      "regex "
	      "has 1 capture group\n");
}

static void test_service_entries(void **state)
{
	check(LABELS,
	      GW80 "apiVersion: networking.istio.io/v1\n"
		   "kind: ServiceEntry\n"
		   "metadata: {name: dns}\n"
		   "spec:\n"
		   "  hosts: [dns.example, ip.example]\n"
		   "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
		   "  resolution: DNS\n"
		   "---\n"
		   "apiVersion: networking.istio.io/v1\n"
		   "kind: ServiceEntry\n"
		   "metadata: {name: again}\n"
		   "spec:\n"
		   "  hosts: [ip.example]\n"
		   "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
		   "  resolution: STATIC\n"
		   "  endpoints: [{address: 10.0.0.1, labels: {v: a}}]\n"
		   "---\n"
		   "apiVersion: networking.istio.io/v1\n"
		   "kind: DestinationRule\n"
		   "metadata: {name: orphan}\n"
		   "spec:\n"
		   "  host: orphan.example\n"
		   "  subsets: [{name: b, labels: {v: b}}]\n"
		   "---\n" VS_HEAD "  - route: [{destination: {host: dns.example}}]\n",
	      "r.yaml:22:11: ServiceEntry default/again: spec.hosts[0]: host ip.example port 80 "
	      "declared twice (first by ServiceEntry default/dns at r.yaml:14)\n"
	      "r.yaml:31:9: warning: DestinationRule default/orphan: spec.host: no ServiceEntry "
	      "declares host orphan.example: this DestinationRule has no effect\n"
	      "r.yaml:16:15: notice: ServiceEntry default/dns: spec.resolution: its names are "
	      "resolved when meshgate serves, and again every dnsRefreshRate\n");
}

static void test_no_host_matches(void **state)
{
	check(LABELS,
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: Gateway\n"
	      "metadata: {name: gw}\n"
	      "spec:\n"
	      "  servers:\n"
	      "  - port: {number: 80, name: http, protocol: HTTP}\n"
	      "    hosts: [\"*.example.org\", \"other/example.com\"]\n"
	      "---\n"
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: VirtualService\n"
	      "metadata: {name: vs}\n"
	      "spec:\n"
	      "  hosts: [example.com]\n"
	      "  gateways: [gw]\n"
	      "  http:\n"
	      "  - directResponse: {status: 200}\n",
	      "r.yaml:14:14: warning: VirtualService default/vs: spec.gateways[0]: no host of this "
	      "VirtualService matches a server of Gateway default/gw\n");
}

/* Delegation: a missing delegate is an error at the reference; a delegate route outside
 * the root route's match is dropped with a warning. */
static void test_delegate(void **state)
{
	check(
	    LABELS,
	    GW80 "apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: vs}\n"
		 "spec:\n"
		 "  hosts: [example.com]\n"
		 "  gateways: [gw]\n"
		 "  http:\n"
		 "  - delegate: {name: other}\n"
		 "  - match: [{uri: {exact: /a}}]\n"
		 "    delegate: {name: leaf}\n"
		 "---\n"
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: leaf}\n"
		 "spec:\n"
		 "  http:\n"
		 "  - match: [{uri: {prefix: /a}}]\n"
		 "    directResponse: {status: 200}\n",
	    "r.yaml:17:15: VirtualService default/vs: spec.http[0].delegate: delegate "
	    "VirtualService default/other not found\n"
	    "r.yaml:26:5: warning: VirtualService default/leaf: spec.http[0]: this delegate route "
	    "conflicts with the match of the route delegating to it (VirtualService default/vs "
	    "http[1]) and is dropped there\n");
}

/* Mirrors resolve to clusters like route destinations (and fail the same way); a served route
 * with mirrors loads without a warning now that they are enforced. */
static void test_mirrors(void **state)
{
	struct snapshot *s = check(LABELS,
				   GW80 SE_REVIEWS VS_HEAD
				   "  - route: [{destination: {host: reviews}}]\n"
				   "    mirrors:\n"
				   "    - destination: {host: reviews, port: {number: 9080}}\n"
				   "    - destination: {host: reviews}\n"
				   "      percentage: {value: 25}\n",
				   "");
	const struct vhost *vh = router_find_vhost(&s->listeners[0], "example.com", 11);
	const struct http_route *r;

	assert_non_null(vh);
	r = vh->routes[0];
	assert_non_null(r);
	assert_int_equal(r->more->nmirrors, 2);
	assert_non_null(r->more->mirrors[0].dest.cluster);
	assert_ptr_equal(r->more->mirrors[0].dest.cluster, r->route[0].dest.cluster);
	assert_ptr_equal(r->more->mirrors[1].dest.cluster, r->route[0].dest.cluster);
	assert_false(r->more->mirrors[0].percentage.given);
	assert_true(r->more->mirrors[1].percentage.given);

	teardown(state);
	setup(state);
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD "  - route: [{destination: {host: reviews}}]\n"
				      "    mirror: {host: ratings}\n",
	      "r.yaml:29:20: VirtualService default/vs: spec.http[0].mirror.host: destination "
	      "host ratings.default.svc.cluster.local is not declared by any ServiceEntry\n");
	teardown(state);
	setup(state);
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD "  - route: [{destination: {host: reviews}}]\n"
				      "    mirror: {host: reviews, port: {number: 81}}\n",
	      "r.yaml:29:35: VirtualService default/vs: spec.http[0].mirror.port: port 81 is not "
	      "declared for host reviews.default.svc.cluster.local (ServiceEntry ports: 9080)\n");
	teardown(state);
	setup(state);
	check(LABELS,
	      GW80 SE_REVIEWS VS_HEAD "  - directResponse: {status: 200}\n"
				      "    mirror: {host: reviews}\n",
	      "r.yaml:29:13: warning: VirtualService default/vs: spec.http[0].mirror: mirroring "
	      "has no effect on a directResponse route: nothing is forwarded\n");
}

static void test_catch_all_shadows(void **state)
{
	check(LABELS,
	      GW80 "apiVersion: networking.istio.io/v1\n"
		   "kind: VirtualService\n"
		   "metadata: {name: first}\n"
		   "spec:\n"
		   "  hosts: [example.com]\n"
		   "  gateways: [gw]\n"
		   "  http:\n"
		   "  - directResponse: {status: 200}\n"
		   "---\n" VS_HEAD "  - directResponse: {status: 201}\n",
	      "r.yaml:23:3: warning: VirtualService default/vs: spec: routes for host example.com "
	      "can never match: VirtualService default/first (route at r.yaml:17) matches every "
	      "request first\n");
}

#define SE_EXT                                                                                     \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: ServiceEntry\n"                                                                     \
	"metadata: {name: ext}\n"                                                                  \
	"spec:\n"                                                                                  \
	"  hosts: [ext.example.com]\n"                                                             \
	"  ports:\n"                                                                               \
	"  - {number: 80, name: http, protocol: HTTP}\n"                                           \
	"  - {number: 443, name: https, protocol: HTTPS}\n"                                        \
	"  resolution: STATIC\n"                                                                   \
	"  endpoints: [{address: 10.0.0.9, labels: {version: v1}}]\n"                              \
	"---\n"

#define VS_EXT                                                                                     \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: VirtualService\n"                                                                   \
	"metadata: {name: vs}\n"                                                                   \
	"spec:\n"                                                                                  \
	"  hosts: [example.com]\n"                                                                 \
	"  gateways: [gw]\n"                                                                       \
	"  http:\n"                                                                                \
	"  - match: [{uri: {prefix: /plain}}]\n"                                                   \
	"    route: [{destination: {host: ext.example.com, port: {number: 80}}}]\n"                \
	"  - match: [{uri: {prefix: /v1}}]\n"                                                      \
	"    route: [{destination: {host: ext.example.com, port: {number: 443}, subset: v1}}]\n"   \
	"  - match: [{uri: {prefix: /v2}}]\n"                                                      \
	"    route: [{destination: {host: ext.example.com, port: {number: 443}, subset: v2}}]\n"   \
	"  - route: [{destination: {host: ext.example.com, port: {number: 443}}}]\n"               \
	"---\n"

/* Telemetry: which access log a generation writes (tel_apply), as istiod merges the
 * Telemetries for a gateway. */
#define TEL(ns, name, body)                                                                        \
	"apiVersion: telemetry.istio.io/v1\n"                                                      \
	"kind: Telemetry\n"                                                                        \
	"metadata: {name: " name ", namespace: " ns "}\n"                                          \
	"spec:\n" body "---\n"
#define ENVOY "  - providers: [{name: envoy}]\n"
#define LOG_MAIN LABELS "accessLog: {path: /var/log/x.log, format: json}\n"

static void tel_expect(const struct snapshot *s, const char *path, const char *by)
{
	assert_non_null(s);
	/* the next check's diagnostics alone (its pool is freed with the test's) */
	diag_fini(&D);
	diag_init(&D);
	if (path == NULL)
		assert_null(s->set->access_log_path);
	else
		assert_string_equal(s->set->access_log_path, path);
	if (by == NULL) {
		assert_null(s->set->access_log_by);
	} else {
		assert_non_null(s->set->access_log_by);
		assert_string_equal(s->set->access_log_by->meta.name, by);
	}
}

static void test_telemetry_merge(void **state)
{
	const struct snapshot *s;

	(void)state;
	/* none: the main file's accessLog */
	tel_expect(check(LOG_MAIN, GW80, ""), "/var/log/x.log", NULL);
	/* mesh-wide on: the main file's place and format */
	s = check(LOG_MAIN, GW80 TEL("istio-system", "mesh", "  accessLogging:\n" ENVOY), "");
	assert_int_equal(s->set->access_log_format, ACCESSLOG_JSON);
	tel_expect(s, "/var/log/x.log", "mesh");
	/* ... to standard output in text without an accessLog */
	s = check(LABELS, GW80 TEL("istio-system", "mesh", "  accessLogging:\n" ENVOY), "");
	assert_int_equal(s->set->access_log_format, ACCESSLOG_TEXT);
	tel_expect(s, "-", "mesh");
	/* the namespace's Telemetry disables it: its entry inherits the providers */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("istio-system", "mesh", "  accessLogging:\n" ENVOY)
			     TEL("default", "ns", "  accessLogging:\n  - disabled: true\n"),
			 ""),
		   NULL, "ns");
	/* a workload Telemetry comes last; one for other labels does not apply */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("istio-system", "mesh",
				  "  accessLogging:\n  - providers: [{name: envoy}]\n"
				  "    disabled: true\n")
			     TEL("default", "gw",
				 "  selector: {matchLabels: {istio: ingressgateway}}\n"
				 "  accessLogging:\n" ENVOY)
				 TEL("default", "other",
				     "  selector: {matchLabels: {app: x}}\n"
				     "  accessLogging:\n  - disabled: true\n"),
			 "r.yaml:30:3: notice: Telemetry default/other: spec: does not select this "
			 "appliance (namespace default, labels of the main config)\n"),
		   "/var/log/x.log", "gw");
}

#define FILE_LOG(fmt)                                                                              \
	"extensionProviders:\n"                                                                    \
	"- name: FL\n"                                                                             \
	"  envoyFileAccessLog:\n"                                                                  \
	"    path: /var/log/f.log\n"                                                               \
	"    logFormat: " fmt "\n"

/* envoyFileAccessLog providers named by Telemetries; the header fields kept for the log */
static void test_telemetry_file_providers(void **state)
{
	const struct snapshot *s;

	(void)state;
	/* a Telemetry names the file provider (names compare without case): its file and
	 * format, not the main file's */
	s = check(
	    LOG_MAIN FILE_LOG("{labels: {code: '%RESPONSE_CODE%', b: '%REQ(X-B)%'}}"),
	    GW80 TEL("istio-system", "mesh", "  accessLogging:\n  - providers: [{name: fl}]\n"),
	    "");
	tel_expect(s, "/var/log/f.log", "mesh");
	assert_string_equal(s->set->access_log_provider, "FL");
	assert_int_equal(s->set->access_log_format, ACCESSLOG_JSON);
	assert_non_null(s->set->access_log_custom);
	assert_int_equal(s->set->access_log_headers[0].n, 1);
	assert_string_equal(s->set->access_log_headers[0].v[0], "x-b");
	assert_int_equal(s->set->access_log_headers[1].n, 0);
	/* no Telemetry: the main file's accessLog, its format built in */
	s = check(LOG_MAIN FILE_LOG("{text: '%RESPONSE_CODE%'}"), GW80, "");
	tel_expect(s, "/var/log/x.log", NULL);
	assert_null(s->set->access_log_custom);
	/* the filter's header names and the format's are kept together, once each */
	s = check(LABELS FILE_LOG("{text: '%REQ(x-a)% %REQ(x-b?X-A)% %RESP(x-c)% %REQ(:path)%'}"),
		  GW80 TEL("istio-system", "mesh",
			   "  accessLogging:\n  - providers: [{name: fl}]\n"
			   "    filter: {expression: \"request.headers['X-A'] == 'y' && "
			   "response.headers['x-d'] != ''\"}\n"),
		  "");
	tel_expect(s, "/var/log/f.log", "mesh");
	assert_non_null(s->set->access_log_filter);
	assert_int_equal(s->set->access_log_headers[0].n, 2);
	assert_string_equal(s->set->access_log_headers[0].v[0], "x-a");
	assert_string_equal(s->set->access_log_headers[0].v[1], "x-b");
	assert_int_equal(s->set->access_log_headers[1].n, 2);
	assert_string_equal(s->set->access_log_headers[1].v[0], "x-d");
	assert_string_equal(s->set->access_log_headers[1].v[1], "x-c");
	/* turned off by a later level: no log at all (the Telemetries decide) */
	tel_expect(check(LOG_MAIN FILE_LOG("{text: x}"),
			 GW80 TEL("istio-system", "mesh",
				  "  accessLogging:\n  - providers: [{name: fl}]\n")
			     TEL("default", "ns", "  accessLogging:\n  - disabled: true\n"),
			 ""),
		   NULL, "ns");
	/* two providers on: meshgate writes one log */
	assert_null(
	    check(LOG_MAIN FILE_LOG("{text: x}"),
		  GW80 TEL("istio-system", "mesh",
			   "  accessLogging:\n  - providers: [{name: envoy}, {name: fl}]\n"),
		  "r.yaml:15:5: Telemetry istio-system/mesh: spec.accessLogging[0]: the access log "
		  "providers "
		  "envoy and FL are both on: meshgate writes one access log\n"));
	diag_fini(&D);
	diag_init(&D);
	/* more than 8 header fields a side */
	assert_null(check(
	    LABELS FILE_LOG("{text: '%REQ(a)%%REQ(b)%%REQ(c)%%REQ(d)%%REQ(e)%"
			    "%REQ(f)%%REQ(g)%%REQ(h)%%REQ(i)%'}"),
	    GW80 TEL("istio-system", "mesh", "  accessLogging:\n  - providers: [{name: fl}]\n"),
	    "main.yaml:6:16: extensionProviders[0].envoyFileAccessLog.logFormat: the "
	    "access log reads more than 8 request header fields (the format's and the "
	    "filter's together)\n"));
	diag_fini(&D);
	diag_init(&D);
	/* ... and the filter alone: nine names */
	assert_null(
	    check(LABELS,
		  GW80 TEL("istio-system", "mesh",
			   "  accessLogging:\n  - providers: [{name: envoy}]\n"
			   "    filter: {expression: \"request.headers['a'] == '' || "
			   "request.headers['b'] == '' || request.headers['c'] == '' || "
			   "request.headers['d'] == '' || request.headers['e'] == '' || "
			   "request.headers['f'] == '' || request.headers['g'] == '' || "
			   "request.headers['h'] == '' || request.headers['i'] == ''\"}\n"),
		  "r.yaml:16:13: Telemetry istio-system/mesh: spec.accessLogging[0].filter: "
		  "the filter reads more than 8 request header fields\n"));
	diag_fini(&D);
	diag_init(&D);
	/* standard output by Istio's name for it */
	s = check(
	    LABELS "extensionProviders:\n- name: out\n  envoyFileAccessLog: {path: "
		   "/dev/stdout}\n",
	    GW80 TEL("istio-system", "mesh", "  accessLogging:\n  - providers: [{name: out}]\n"),
	    "");
	tel_expect(s, "-", "mesh");
	assert_int_equal(s->set->access_log_format, ACCESSLOG_TEXT);
	assert_null(s->set->access_log_custom);
}

/* metrics overrides: level order, modes, providers, label removal */
static void test_telemetry_metrics(void **state)
{
	const struct snapshot *s;

	(void)state;
	/* the root turns all off, the namespace turns two back on */
	s = check(LABELS,
		  GW80 TEL("istio-system", "mesh",
			   "  metrics:\n  - overrides:\n    - match: {metric: ALL_METRICS}\n"
			   "      disabled: true\n")
		      TEL("default", "ns",
			  "  metrics:\n  - providers: [{name: prometheus}]\n    overrides:\n"
			  "    - match: {metric: REQUEST_COUNT}\n      disabled: false\n"
			  "    - match: {metric: TCP_SENT_BYTES, mode: CLIENT}\n      disabled: "
			  "false\n"),
		  "");
	assert_int_equal(s->set->metrics_disabled,
			 ((1u << TM__COUNT) - 1) &
			     ~((1u << TM_REQUEST_COUNT) | (1u << TM_TCP_SENT_BYTES)));
	assert_false(s->set->metrics_http_off);
	assert_false(s->set->metrics_tcp_off);
	/* SERVER overrides and other providers do not apply; removals add up, once each */
	s = check(LABELS,
		  GW80 TEL("istio-system", "mesh",
			   "  metrics:\n  - overrides:\n    - match: {mode: SERVER}\n"
			   "      disabled: true\n    - tagOverrides: {source_app: {operation: "
			   "REMOVE}}\n  - providers: [{name: otel}]\n    overrides:\n"
			   "    - disabled: true\n")
		      TEL("default", "ns",
			  "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT}\n"
			  "      tagOverrides: {source_app: {operation: REMOVE}, reporter: "
			  "{operation: REMOVE}}\n"),
		  "r.yaml:19:24: warning: Telemetry istio-system/mesh: "
		  "spec.metrics[1].providers[0].name: "
		  "metrics provider \"otel\" is not one meshgate has (its metrics are Istio's "
		  "\"prometheus\" provider): skipped\n");
	assert_int_equal(s->set->metrics_disabled, 0);
	assert_int_equal(s->set->metrics_removed[TM_REQUEST_COUNT].n, 2);
	assert_string_equal(s->set->metrics_removed[TM_REQUEST_COUNT].v[0], "source_app");
	assert_string_equal(s->set->metrics_removed[TM_REQUEST_COUNT].v[1], "reporter");
	assert_int_equal(s->set->metrics_removed[TM_TCP_SENT_BYTES].n, 1);
	diag_fini(&D);
	diag_init(&D);
	/* all HTTP metrics off: nothing is counted for requests */
	s = check(LABELS,
		  GW80 TEL("istio-system", "mesh",
			   "  metrics:\n  - overrides:\n"
			   "    - {match: {metric: REQUEST_COUNT}, disabled: true}\n"
			   "    - {match: {metric: REQUEST_DURATION}, disabled: true}\n"
			   "    - {match: {metric: REQUEST_SIZE}, disabled: true}\n"
			   "    - {match: {metric: RESPONSE_SIZE}, disabled: true}\n"),
		  "");
	assert_true(s->set->metrics_http_off);
	assert_false(s->set->metrics_tcp_off);
}

static void test_telemetry_scope(void **state)
{
	(void)state;
	/* SERVER mode does not apply to a gateway: nothing decides, the main file's log */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("istio-system", "mesh",
				  "  accessLogging:\n  - match: {mode: SERVER}\n"
				  "    providers: [{name: envoy}]\n    disabled: true\n"),
			 "r.yaml:15:5: notice: Telemetry istio-system/mesh: spec.accessLogging[0]: "
			 "match mode SERVER: a gateway logs as a CLIENT in Istio, so this entry "
			 "does not apply here\n"),
		   "/var/log/x.log", NULL);
	/* the last level naming providers decides the scope: otel only, envoy out of it */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("istio-system", "mesh", "  accessLogging:\n" ENVOY) TEL(
			     "default", "ns", "  accessLogging:\n  - providers: [{name: OTel}]\n"),
			 "r.yaml:22:24: warning: Telemetry default/ns: "
			 "spec.accessLogging[0].providers[0].name: provider \"otel\" is not an "
			 "access log meshgate has (the provider \"envoy\" and the main config's "
			 "envoyFileAccessLog extensionProviders): skipped, as istiod skips "
			 "providers the mesh config does not define\n"),
		   "/var/log/x.log", NULL);
	/* ... and envoy named last brings it back, whatever the root said */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("istio-system", "mesh",
				  "  accessLogging:\n  - providers: [{name: zipkin}]\n")
			     TEL("default", "ns", "  accessLogging:\n" ENVOY),
			 "r.yaml:15:24: warning: Telemetry istio-system/mesh: "
			 "spec.accessLogging[0].providers[0].name: provider \"zipkin\" is not an "
			 "access log meshgate has (the provider \"envoy\" and the main config's "
			 "envoyFileAccessLog extensionProviders): skipped, as istiod skips "
			 "providers the mesh config does not define\n"),
		   "/var/log/x.log", "ns");
	/* two namespace-wide Telemetries in one namespace: the first counts */
	tel_expect(check(LOG_MAIN,
			 GW80 TEL("default", "a", "  accessLogging:\n" ENVOY)
			     TEL("default", "b", "  accessLogging:\n  - disabled: true\n"),
			 "r.yaml:17:1: warning: Telemetry default/b: namespace default has a "
			 "Telemetry without a selector already (a): only the first one loaded is "
			 "used\n"),
		   "/var/log/x.log", "a");
	/* metrics without overrides change nothing; tracing: loaded, not applied, said so */
	tel_expect(
	    check(LOG_MAIN,
		  GW80 TEL("istio-system", "mesh",
			   "  metrics: [{providers: [{name: prometheus}]}]\n"
			   "  tracing: [{randomSamplingPercentage: 10}]\n"),
		  "r.yaml:15:12: warning: Telemetry istio-system/mesh: spec.tracing: tracing "
		  "is not applied: meshgate propagates trace headers but reports no spans\n"),
	    "/var/log/x.log", NULL);
}

static const struct cluster *cluster_named(const struct snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nclusters; i++)
		if (strcmp(s->clusters[i]->name, name) == 0)
			return s->clusters[i];
	fail_msg("no cluster %s", name);
	return NULL;
}

/* DestinationRule policies merged as Istio does: the rule's, replaced for a port by its
 * portLevelSettings entry (every component: what it lacks is the default), then the
 * subset's fields, and the subset's entry for the port replacing everything again. */
static void test_upstream_tls_merge(void **state)
{
	struct snapshot *s =
	    check(LABELS,
		  GW80 SE_EXT VS_EXT "apiVersion: networking.istio.io/v1\n"
				     "kind: DestinationRule\n"
				     "metadata: {name: ext}\n"
				     "spec:\n"
				     "  host: ext.example.com\n"
				     "  trafficPolicy:\n"
				     "    loadBalancer: {simple: RANDOM}\n"
				     "    connectionPool: {tcp: {maxConnections: 7}}\n"
				     "    tls: {mode: SIMPLE, insecureSkipVerify: true}\n"
				     "    portLevelSettings:\n"
				     "    - port: {number: 443}\n"
				     "      tls: {mode: SIMPLE, sni: api.example.com}\n"
				     "  subsets:\n"
				     "  - name: v1\n"
				     "    trafficPolicy: {tls: {mode: DISABLE}}\n"
				     "  - name: v2\n"
				     "    trafficPolicy:\n"
				     "      portLevelSettings:\n"
				     "      - port: {number: 443}\n"
				     "        loadBalancer: {simple: ROUND_ROBIN}\n"
				     "        connectionPool: {tcp: {maxConnections: 9}}\n",
		  "");
	const struct cluster *plain, *tls, *v1, *v2;

	plain = cluster_named(s, "outbound|80||ext.example.com");
	tls = cluster_named(s, "outbound|443||ext.example.com");
	v1 = cluster_named(s, "outbound|443|v1|ext.example.com");
	v2 = cluster_named(s, "outbound|443|v2|ext.example.com");
	/* port 80: the rule's own tls and load balancer */
	assert_non_null(plain->tls);
	assert_false(plain->tls->verify);
	assert_string_equal(plain->tls_name, "ext.example.com");
	assert_int_equal(plain->lb, LB_RANDOM);
	/* port 443: the entry's tls; the load balancer falls back to the default */
	assert_non_null(tls->tls);
	assert_true(tls->tls->verify);
	assert_string_equal(tls->tls_name, "api.example.com");
	assert_int_equal(tls->lb, LB_LEAST_REQUEST);
	assert_true(tls->tls_id != 0 && tls->tls_id != plain->tls_id);
	assert_ptr_equal(tls->endpoints[0].cluster, tls);
	/* the subset's DISABLE wins over the port entry of the rule */
	assert_null(v1->tls);
	/* the subset's port entry replaces tls too */
	assert_null(v2->tls);
	assert_int_equal(v2->lb, LB_ROUND_ROBIN);
	/* connectionPool merges alike: the rule's on port 80, none through the rule's port
	 * entry, the subset entry's own */
	assert_non_null(plain->pool_limits);
	assert_int_equal(plain->pool_limits->max_connections, 7);
	assert_null(tls->pool_limits);
	assert_null(v1->pool_limits);
	assert_non_null(v2->pool_limits);
	assert_int_equal(v2->pool_limits->max_connections, 9);
}

/* Contexts are built at link time for served clusters only, with the files' problems at
 * the field that names them; ISTIO_MUTUAL needs the main config's meshIdentity. */
static void test_upstream_tls_errors(void **state)
{
	check(
	    LABELS,
	    GW80 SE_EXT VS_EXT
	    "apiVersion: networking.istio.io/v1\n"
	    "kind: DestinationRule\n"
	    "metadata: {name: ext}\n"
	    "spec:\n"
	    "  host: ext.example.com\n"
	    "  trafficPolicy:\n"
	    "    tls: {mode: SIMPLE, caCertificates: /nonexistent/ca.pem}\n"
	    "    portLevelSettings:\n"
	    "    - port: {number: 443}\n"
	    "      tls: {mode: ISTIO_MUTUAL, sni: x}\n"
	    "  subsets:\n"
	    "  - name: v1\n"
	    "    trafficPolicy: {tls: {mode: MUTUAL, caCertificate: x}}\n"
	    "  - name: v2\n"
	    "    trafficPolicy: {tls: {mode: MUTUAL}}\n"
	    "---\n"
	    "apiVersion: networking.istio.io/v1\n"
	    "kind: DestinationRule\n"
	    "metadata: {name: unused}\n"
	    "spec:\n"
	    "  host: nobody.example.com\n"
	    "  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /nope.pem}}\n",
	    "r.yaml:56:9: warning: DestinationRule default/unused: spec.host: no ServiceEntry "
	    "declares host nobody.example.com: this DestinationRule has no effect\n"
	    "r.yaml:42:41: DestinationRule default/ext: spec.trafficPolicy.tls.caCertificates: "
	    "cannot read CA certificates /nonexistent/ca.pem: No such file or directory\n"
	    "r.yaml:48:41: DestinationRule default/ext: spec.subsets[0].trafficPolicy.tls."
	    "caCertificate: unknown field \"caCertificate\"\n"
	    "r.yaml:50:26: DestinationRule default/ext: spec.subsets[1].trafficPolicy.tls: MUTUAL "
	    "TLS requires clientCertificate and privateKey (or credentialName)\n"
	    "r.yaml:45:19: DestinationRule default/ext: spec.trafficPolicy.portLevelSettings[0]."
	    "tls.mode: ISTIO_MUTUAL needs the appliance's mesh identity: set meshIdentity "
	    "(certificate, privateKey, caCertificates) in the main config\n");
}

/* ---- tls passthrough and tcp routes ---- */

#define GW_L4                                                                                      \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: Gateway\n"                                                                          \
	"metadata: {name: gw}\n"                                                                   \
	"spec:\n"                                                                                  \
	"  servers:\n"                                                                             \
	"  - port: {number: 443, name: tls, protocol: TLS}\n"                                      \
	"    hosts: [a.example.com, \"*.b.example.com\"]\n"                                        \
	"    tls: {mode: PASSTHROUGH}\n"                                                           \
	"  - port: {number: 443, name: https, protocol: HTTPS}\n"                                  \
	"    hosts: [c.example.com]\n"                                                             \
	"    tls: {mode: PASSTHROUGH}\n"                                                           \
	"  - port: {number: 9000, name: tcp, protocol: TCP}\n"                                     \
	"    hosts: [\"*\"]\n"                                                                     \
	"---\n"                                                                                    \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: ServiceEntry\n"                                                                     \
	"metadata: {name: backend}\n"                                                              \
	"spec:\n"                                                                                  \
	"  hosts: [backend.example]\n"                                                             \
	"  ports: [{number: 8443, name: tls, protocol: TLS}]\n"                                    \
	"  resolution: STATIC\n"                                                                   \
	"  endpoints:\n"                                                                           \
	"  - {address: 10.0.0.1, labels: {version: v1}}\n"                                         \
	"  - {address: 10.0.0.2, labels: {version: v2}}\n"                                         \
	"---\n"                                                                                    \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: DestinationRule\n"                                                                  \
	"metadata: {name: backend}\n"                                                              \
	"spec:\n"                                                                                  \
	"  host: backend.example\n"                                                                \
	"  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"      \
	"---\n"

/* Lines 1-14 the Gateway, 15-33 the ServiceEntry and DestinationRule, VS from line 34. */

static void test_l4_routes(void **state)
{
	struct snapshot *s = check(
	    LABELS,
	    GW_L4 "apiVersion: networking.istio.io/v1\n"
		  "kind: VirtualService\n"
		  "metadata: {name: pt}\n"
		  "spec:\n"
		  "  hosts: [\"*.example.com\"]\n"
		  "  gateways: [gw]\n"
		  "  tls:\n"
		  "  - match: [{port: 443, sniHosts: [a.example.com, c.example.com]}]\n"
		  "    route: [{destination: {host: backend.example, subset: v1}}]\n"
		  "  - match: [{sniHosts: [\"*.example.com\"]}]\n"
		  "    route:\n"
		  "    - {destination: {host: backend.example, subset: v1}, weight: 80}\n"
		  "    - {destination: {host: backend.example, subset: v2}, weight: 20}\n"
		  "  tcp:\n"
		  "  - match: [{port: 9000, destinationSubnets: [10.1.0.0/16, \"fd00::/8\"]}]\n"
		  "    route: [{destination: {host: backend.example, subset: v2}}]\n"
		  "  - route: [{destination: {host: backend.example}}]\n",
	    "");
	const struct listener_cfg *tls = NULL, *tcp = NULL;
	const struct tls_sni_entry *e;
	const struct l4_targets *t;
	const struct l4_target *x;
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

	assert_non_null(s);
	assert_int_equal(s->nlisteners, 2);
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i].port == 443)
			tls = &s->listeners[i];
		else
			tcp = &s->listeners[i];
	}
	/* TLS and HTTPS passthrough servers share the port; SNI picks the route. */
	assert_non_null(tls);
	assert_true(tls->peek);
	assert_null(tls->tls->front); /* nothing terminates here */
	e = tls_sni_lookup(tls->tls, "A.Example.COM", 13);
	assert_non_null(e);
	assert_null(e->sctx);
	t = e->user;
	assert_int_equal(t->n, 1);
	assert_string_equal(t->v[0].route->route[0].dest.cluster->name,
			    "outbound|8443|v1|backend.example");
	e = tls_sni_lookup(tls->tls, "c.example.com", 13);
	assert_non_null(e);
	assert_ptr_equal(((const struct l4_targets *)e->user)->v[0].route, t->v[0].route);
	/* SNI hosts are keys as written (Envoy's server_names): the server hosts bind. */
	e = tls_sni_lookup(tls->tls, "x.b.example.com", 15);
	assert_non_null(e);
	assert_string_equal(e->host, "*.example.com");
	x = &((const struct l4_targets *)e->user)->v[0];
	assert_int_equal(x->route->total_weight, 100);
	assert_string_equal(router_l4_pick(x->route, 79)->dest.subset, "v1");
	assert_string_equal(router_l4_pick(x->route, 80)->dest.subset, "v2");
	assert_ptr_equal(tls_sni_lookup(tls->tls, "d.example.com", 13), e);
	assert_null(tls_sni_lookup(tls->tls, "d.example.org", 13));
	assert_null(tls_sni_lookup(tls->tls, NULL, 0)); /* no SNI: no route */

	/* TCP: destinationSubnets decide between the two routes. */
	assert_non_null(tcp);
	assert_false(tcp->peek);
	assert_int_equal(tcp->tcp.n, 2);
	inet_pton(AF_INET, "10.1.200.3", &in4.sin_addr);
	x = router_l4_select(&tcp->tcp, (struct sockaddr *)&in4);
	assert_string_equal(x->route->route[0].dest.subset, "v2");
	inet_pton(AF_INET, "10.2.0.1", &in4.sin_addr);
	x = router_l4_select(&tcp->tcp, (struct sockaddr *)&in4);
	assert_null(x->route->route[0].dest.subset);
	assert_int_equal(x->route->total_weight, 100);
	inet_pton(AF_INET6, "::ffff:10.1.0.9", &in6.sin6_addr); /* dual-stack listener */
	x = router_l4_select(&tcp->tcp, (struct sockaddr *)&in6);
	assert_string_equal(x->route->route[0].dest.subset, "v2");
	inet_pton(AF_INET6, "fd12::1", &in6.sin6_addr);
	x = router_l4_select(&tcp->tcp, (struct sockaddr *)&in6);
	assert_string_equal(x->route->route[0].dest.subset, "v2");
	inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
	x = router_l4_select(&tcp->tcp, (struct sockaddr *)&in6);
	assert_null(x->route->route[0].dest.subset);
}

static void test_l4_errors(void **state)
{
	check(LABELS,
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: Gateway\n"
	      "metadata: {name: gw}\n"
	      "spec:\n"
	      "  servers:\n"
	      "  - port: {number: 80, name: http, protocol: HTTP}\n"
	      "    hosts: [\"*\"]\n"
	      "  - port: {number: 443, name: tls, protocol: TLS}\n"
	      "    hosts: [\"*.example.com\"]\n"
	      "    tls: {mode: PASSTHROUGH}\n"
	      "  - port: {number: 9000, name: tcp, protocol: TCP}\n"
	      "    hosts: [\"*\"]\n"
	      "  - port: {number: 9443, name: tls-term, protocol: TLS}\n"
	      "    hosts: [\"*\"]\n"
	      "    tls: {mode: SIMPLE, serverCertificate: x.crt, privateKey: x.key}\n"
	      "---\n"
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: ServiceEntry\n"
	      "metadata: {name: backend}\n"
	      "spec:\n"
	      "  hosts: [backend.example]\n"
	      "  ports: [{number: 8443, name: tls, protocol: TLS}]\n"
	      "  resolution: STATIC\n"
	      "  endpoints: [{address: 10.0.0.1}]\n"
	      "---\n"
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: VirtualService\n"
	      "metadata: {name: first}\n"
	      "spec:\n"
	      "  hosts: [\"*.example.com\"]\n"
	      "  gateways: [gw]\n"
	      "  tls:\n"
	      "  - match: [{sniHosts: [dup.example.com]}]\n"
	      "    route: [{destination: {host: backend.example}}]\n"
	      "  - match: [{port: 80, sniHosts: [web.example.com]}]\n"
	      "    route: [{destination: {host: backend.example}}]\n"
	      "  tcp:\n"
	      "  - match: [{port: 80}]\n"
	      "    route: [{destination: {host: backend.example}}]\n"
	      "---\n"
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: VirtualService\n"
	      "metadata: {name: second}\n"
	      "spec:\n"
	      "  hosts: [dup.example.com]\n"
	      "  gateways: [gw]\n"
	      "  tls:\n"
	      "  - match: [{sniHosts: [dup.example.com], gateways: [mesh]}]\n"
	      "    route: [{destination: {host: nowhere.example}}]\n"
	      "  - match: [{sniHosts: [dup.example.com]}]\n"
	      "    route: [{destination: {host: backend.example}}]\n"
	      "  - match: [{port: 8443, sniHosts: [dup.example.com]}]\n"
	      "    route: [{destination: {host: backend.example}}]\n",
	      "r.yaml:15:17: Gateway default/gw: spec.servers[3].tls.mode: protocol TLS with "
	      "tls.mode SIMPLE (TLS terminated in front of tcp routes) is not served yet; "
	      "PASSTHROUGH is\n"
	      "r.yaml:35:13: VirtualService default/first: spec.tls[1].match[0]: tls routes need a "
	      "server with tls.mode PASSTHROUGH: the server this match reaches (at r.yaml:6) is "
	      "HTTP\n"
	      "r.yaml:38:13: warning: VirtualService default/first: spec.tcp[0].match[0]: tcp "
	      "routes apply to TCP servers only: the server this route reaches (at r.yaml:6) is "
	      "HTTP, so it is never used\n"
	      "r.yaml:50:25: VirtualService default/second: spec.tls[1].match[0].sniHosts[0]: SNI "
	      "host dup.example.com on 0.0.0.0:443 is already routed by VirtualService "
	      "default/first (match at r.yaml:33)\n"
	      "r.yaml:52:13: warning: VirtualService default/second: spec.tls[2].match[0]: this "
	      "tls route reaches no server of its gateways (by port and hosts): it is never used\n"
	      "r.yaml:11:5: warning: Gateway default/gw: spec.servers[2]: no VirtualService tcp "
	      "route reaches this TCP server: its connections are closed (NR)\n");
}

static void test_l4_unused(void **state)
{
	check(LABELS,
	      "apiVersion: networking.istio.io/v1\n"
	      "kind: Gateway\n"
	      "metadata: {name: gw}\n"
	      "spec:\n"
	      "  servers:\n"
	      "  - port: {number: 443, name: https, protocol: HTTPS}\n"
	      "    hosts: [\"*\"]\n"
	      "    tls: {mode: PASSTHROUGH}\n"
	      "  - port: {number: 9000, name: tcp, protocol: TCP}\n"
	      "    hosts: [\"*\"]\n",
	      "r.yaml:6:5: warning: Gateway default/gw: spec.servers[0]: no VirtualService tls "
	      "route reaches this PASSTHROUGH server: its connections are closed (NR)\n"
	      "r.yaml:9:5: warning: Gateway default/gw: spec.servers[1]: no VirtualService tcp "
	      "route reaches this TCP server: its connections are closed (NR)\n");
}

/* A DestinationRule that originates TLS cannot apply to a relay of the client's bytes. */
static void test_l4_tls_origination(void **state)
{
	check(LABELS,
	      GW_L4 "apiVersion: networking.istio.io/v1\n"
		    "kind: VirtualService\n"
		    "metadata: {name: tcp}\n"
		    "spec:\n"
		    "  hosts: [\"*\"]\n"
		    "  gateways: [gw]\n"
		    "  tcp:\n"
		    "  - route: [{destination: {host: tlsback.example}}]\n"
		    "---\n"
		    "apiVersion: networking.istio.io/v1\n"
		    "kind: ServiceEntry\n"
		    "metadata: {name: tlsback}\n"
		    "spec:\n"
		    "  hosts: [tlsback.example]\n"
		    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
		    "  resolution: STATIC\n"
		    "  endpoints: [{address: 10.0.0.9}]\n"
		    "---\n"
		    "apiVersion: networking.istio.io/v1\n"
		    "kind: DestinationRule\n"
		    "metadata: {name: tlsback}\n"
		    "spec:\n"
		    "  host: tlsback.example\n"
		    "  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true}}\n",
	      "r.yaml:40:27: VirtualService default/tcp: spec.tcp[0].route[0].destination: "
	      "cluster outbound|443||tlsback.example originates TLS (DestinationRule tls): tcp "
	      "routes relay the client's bytes as they are and do not originate TLS\n"
	      "r.yaml:6:5: warning: Gateway default/gw: spec.servers[0]: no VirtualService tls "
	      "route reaches this PASSTHROUGH server: its connections are closed (NR)\n"
	      "r.yaml:9:5: warning: Gateway default/gw: spec.servers[1]: no VirtualService tls "
	      "route reaches this PASSTHROUGH server: its connections are closed (NR)\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ok_routes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_gateway, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destination_not_declared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_subset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_port_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_weights, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_conflict, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_https_not_served, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_https_redirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_tls_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_tls_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh_only_and_selector, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_regex_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_service_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_host_matches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_catch_all_shadows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delegate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_l4_routes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_l4_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_l4_unused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_l4_tls_origination, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mirrors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_telemetry_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_telemetry_scope, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_telemetry_file_providers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_telemetry_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ext_authz, setup, teardown),
	};
	int rc;

	if (!fixture_scratch_dir(dir, sizeof(dir), "test_link"))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fixture_scratch_dir_remove(dir);
	return rc;
}
