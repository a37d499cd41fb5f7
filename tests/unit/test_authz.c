/* AuthorizationPolicy: decoding and validation (config/authorizationpolicy.c), which
 * policies select the appliance (ap_apply), and Istio's evaluation (authz.c): DENY before
 * ALLOW, an ALLOW policy set that nothing matches denies, sources/operations/conditions,
 * value wildcards, hosts with ports, absent attributes, TCP connections judged on their
 * fields only, and dry runs (istio.io/dry-run): their values, and their shadow verdicts,
 * which never change the decision.  Inline YAML goes through the real loader. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "authz.h"
#include "config/diag.h"
#include "config/load.h"
#include "pool.h"
#include "fixture.h"

static char dir[256];
static struct pool *P;
static struct diag D;
static struct cfg_set *S;

#define AP(name, ns, spec)                                                                         \
	"apiVersion: security.istio.io/v1\n"                                                       \
	"kind: AuthorizationPolicy\n"                                                              \
	"metadata: {name: " name ", namespace: " ns "}\n"                                          \
	"spec:\n" spec "---\n"

/* Appended to the main config (extensionProviders for CUSTOM policies), or "". */
static const char *main_extra = "";

static void load(const char *yaml)
{
	char main_path[512], text[2048];

	snprintf(text, sizeof(text),
		 "labels: {app: istio-ingressgateway, istio: ingressgateway}\n"
		 "resources: [r.yaml]\n%s",
		 main_extra);
	fixture_write_file(dir, "main.yaml", text);
	fixture_write_file(dir, "r.yaml", yaml);
	snprintf(main_path, sizeof(main_path), "%s/main.yaml", dir);
	S = config_load(P, &D, main_path);
	assert_non_null(S);
	ap_apply(&D, P, S);
}

static void load_ok(const char *yaml)
{
	load(yaml);
	if (D.nerrors != 0) {
		char *got = fixture_diag_text(&D, dir);

		fail_msg("unexpected errors:\n%s", got);
	}
}

/* The diagnostics of a refused policy contain want. */
static void refused(const char *yaml, const char *want)
{
	char *got;

	load(yaml);
	got = fixture_diag_text(&D, dir);
	if (D.nerrors == 0 || strstr(got, want) == NULL)
		fail_msg("expected an error containing \"%s\", got:\n%s", want, got);
	free(got);
	diag_fini(&D);
	diag_init(&D);
}

static struct sockaddr_storage peer_ss, local_ss;

static void set_addr(struct sockaddr_storage *ss, const char *text)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr),
				 1);
	} else {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr),
				 1);
	}
}

/* A request from 10.0.0.1 to port 80: GET /ip, Host a.example.com, no headers. */
static struct authz_request req(void)
{
	struct authz_request r;

	memset(&r, 0, sizeof(r));
	set_addr(&peer_ss, "10.0.0.1");
	set_addr(&local_ss, "192.0.2.10");
	r.peer = (const struct sockaddr *)&peer_ss;
	r.local = (const struct sockaddr *)&local_ss;
	r.port = 80;
	r.http = true;
	r.method = "GET";
	r.method_len = 3;
	r.path = "/ip";
	r.path_len = 3;
	r.authority = "a.example.com";
	r.authority_len = 13;
	return r;
}

static void with_path(struct authz_request *r, const char *path)
{
	r->path = path;
	r->path_len = strlen(path);
}

static void with_host(struct authz_request *r, const char *host)
{
	r->authority = host;
	r->authority_len = strlen(host);
}

/* The shadow verdicts of the last check; the decision must be the same whether dry runs
 * are evaluated or not. */
static struct authz_shadow SH;

static const char *check(const struct authz_request *r)
{
	const char *why = authz_check(S, r, NULL);

	memset(&SH, 0xa5, sizeof(SH)); /* what authz_check leaves alone stays visible */
	SH.deny.verdict = SH.allow.verdict = AUTHZ_NOT_EVALUATED;
	assert_ptr_equal(authz_check(S, r, &SH), why);
	return why;
}

#define ALLOWED(r) assert_null(check(&(r)))
#define DENIED_BY(r, what) assert_string_equal(check(&(r)), what)
#define NONE "rbac_access_denied_matched_policy[none]"

/* The engine's verdict and effective policy ("none" when no policy matched). */
static void shadow_is(const struct authz_engine *e, enum authz_verdict v, const char *id)
{
	char buf[AUTHZ_POLICY_ID_MAX];

	assert_int_equal(e->verdict, v);
	if (v != AUTHZ_NOT_EVALUATED)
		assert_string_equal(authz_policy_id(e, buf, sizeof(buf)), id);
}

static int setup(void **state)
{
	(void)state;
	P = pool_new();
	diag_init(&D);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pool_free(P);
	diag_fini(&D);
	return 0;
}

static void test_no_policy(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
	ALLOWED(r);
}

/* authz-deny task: DENY GET unless x-token is admin; ALLOW /ip only. */
static void test_deny_then_allow(void **state)
{
	struct authz_request r = req();
	struct msg_header admin = {"X-Token", 7, "admin", 5}, guest = {"x-token", 7, "guest", 5};

	(void)state;
	load_ok(AP("deny-method-get", "default",
		   "  action: DENY\n"
		   "  rules:\n"
		   "  - to: [{operation: {methods: [GET]}}]\n"
		   "    when: [{key: \"request.headers[x-token]\", notValues: [admin]}]\n")
		    AP("allow-path-ip", "default",
		       "  action: ALLOW\n"
		       "  rules: [{to: [{operation: {paths: [/ip]}}]}]\n"));
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.deny-method-get]");
	r.headers = &guest;
	r.nheaders = 1;
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.deny-method-get]");
	r.headers = &admin; /* names are case-insensitive, values are not */
	ALLOWED(r);
	{
		/* repeated fields are one value joined with ",", as Envoy matches them */
		struct msg_header two[] = {guest, admin};

		r.headers = two;
		r.nheaders = 2;
		DENIED_BY(r, "rbac_access_denied_matched_policy[default.deny-method-get]");
		r.headers = &admin;
		r.nheaders = 1;
	}
	with_path(&r, "/headers");
	DENIED_BY(r, NONE);
	r.method = "POST";
	r.method_len = 4;
	r.nheaders = 0;
	with_path(&r, "/ip");
	ALLOWED(r);
}

static void test_allow_nothing_and_everything(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("allow-nothing", "default", "  {}\n"));
	DENIED_BY(r, NONE);
	teardown(NULL);
	setup(NULL);
	load_ok(AP("allow-nothing", "default", "  {}\n")
		    AP("allow-all", "default", "  rules: [{}]\n"));
	ALLOWED(r);
	teardown(NULL);
	setup(NULL);
	/* a DENY policy without rules matches nothing */
	load_ok(AP("deny-nothing", "default", "  action: DENY\n"));
	ALLOWED(r);
}

static void test_ip_blocks(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("ingress-policy", "istio-system",
		   "  selector: {matchLabels: {app: istio-ingressgateway}}\n"
		   "  rules:\n"
		   "  - from: [{source: {ipBlocks: [1.2.3.4, 5.6.7.0/24], notIpBlocks: "
		   "[5.6.7.9]}}]\n"));
	DENIED_BY(r, NONE);
	set_addr(&peer_ss, "5.6.7.8");
	ALLOWED(r);
	set_addr(&peer_ss, "5.6.7.9");
	DENIED_BY(r, NONE);
	set_addr(&peer_ss, "::ffff:1.2.3.4"); /* an IPv4 client of a dual-stack listener */
	ALLOWED(r);
	set_addr(&peer_ss, "2001:db8::1");
	DENIED_BY(r, NONE);
}

static void test_hosts_ports_wildcards(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("hosts", "default",
		   "  rules:\n"
		   "  - to: [{operation: {hosts: [a.example.com, \"*.b.example.com\"], ports: "
		   "[\"80\"], notPaths: [\"/private*\", \"*.secret\"]}}]\n"));
	ALLOWED(r);
	with_host(&r, "A.Example.COM:80"); /* case and port do not matter */
	ALLOWED(r);
	with_host(&r, "x.b.example.com");
	ALLOWED(r);
	with_host(&r, "b.example.com");
	DENIED_BY(r, NONE);
	with_host(&r, "a.example.com");
	with_path(&r, "/private/x");
	DENIED_BY(r, NONE);
	with_path(&r, "/x/y.secret");
	DENIED_BY(r, NONE);
	with_path(&r, "/x/y.secrets");
	ALLOWED(r);
	r.port = 8080;
	DENIED_BY(r, NONE);
}

/* Absent attributes: a positive list never matches them, a negative one always does. */
/* Path templates: {*} one non-empty segment, {**} the rest. */
static void test_path_templates(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("tpl", "default",
		   "  rules:\n"
		   "  - to: [{operation: {paths: [\"/users/{*}/profile\", \"/static/{**}\"], "
		   "notPaths: [\"/static/{*}/secret/{**}\"]}}]\n"));
	with_path(&r, "/users/ann/profile");
	ALLOWED(r);
	with_path(&r, "/users/ann/bob/profile");
	DENIED_BY(r, NONE);
	with_path(&r, "/users//profile");
	DENIED_BY(r, NONE);
	with_path(&r, "/users/ann/profile/x");
	DENIED_BY(r, NONE);
	with_path(&r, "/static/");
	ALLOWED(r);
	with_path(&r, "/static/css/a.css");
	ALLOWED(r);
	with_path(&r, "/static");
	DENIED_BY(r, NONE);
	with_path(&r, "/static/v1/secret/key");
	DENIED_BY(r, NONE);
}

static void test_absent_attributes(void **state)
{
	struct authz_request r = req();
	struct msg_header tok = {"x-token", 7, "", 0};

	(void)state;
	load_ok(AP("need-token", "default",
		   "  action: DENY\n"
		   "  rules:\n"
		   "  - when: [{key: \"request.headers[x-token]\", values: [\"*\"]}]\n"
		   "  - from: [{source: {notRequestPrincipals: [\"*\"]}}]\n"
		   "    to: [{operation: {paths: [/headers]}}]\n"));
	ALLOWED(r);
	r.headers = &tok; /* present, even empty: "*" matches */
	r.nheaders = 1;
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.need-token]");
	r.nheaders = 0;
	with_path(&r, "/headers"); /* no request principal without a verified JWT */
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.need-token]");
}

static void test_principals(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("mesh-only", "default",
		   "  rules:\n"
		   "  - from: [{source: {principals: [\"cluster.local/ns/shop/sa/*\"]}}]\n"
		   "  - from: [{source: {namespaces: [billing]}}]\n"
		   "    when: [{key: source.principal, notValues: [\"*/sa/intruder\"]}]\n"));
	DENIED_BY(r, NONE); /* no client certificate */
	r.principal = "cluster.local/ns/shop/sa/cart";
	ALLOWED(r);
	r.principal = "cluster.local/ns/billing/sa/pay";
	ALLOWED(r);
	r.principal = "cluster.local/ns/billing/sa/intruder";
	DENIED_BY(r, NONE);
	r.principal = "cluster.local/ns/other/sa/cart";
	DENIED_BY(r, NONE);
}

static void test_conditions(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("conds", "default",
		   "  action: DENY\n"
		   "  rules:\n"
		   "  - when:\n"
		   "    - {key: destination.port, values: [\"80\"]}\n"
		   "    - {key: source.ip, values: [10.0.0.0/8], notValues: [10.9.0.0/16]}\n"
		   "    - {key: destination.ip, values: [192.0.2.0/24]}\n"
		   "  - when: [{key: connection.sni, values: [\"*.internal\"]}]\n"));
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.conds]");
	set_addr(&peer_ss, "10.9.1.1");
	ALLOWED(r);
	r = req();
	r.port = 443;
	ALLOWED(r);
	r.sni = "api.INTERNAL";
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.conds]");
	assert_true(S->ap_needs_local);
	assert_false(S->ap_needs_principal);
}

/* An unsigned token's claims (jwt_decode checks no signature; jwtauth.c does). */
static void decode_claims(struct jwt *j, const char *payload_b64)
{
	char tok[512];

	/* {"alg":"RS256"} . payload . a signature-shaped tail */
	snprintf(tok, sizeof(tok), "eyJhbGciOiJSUzI1NiJ9.%s.AAAA", payload_b64);
	assert_int_equal(jwt_decode(j, tok, strlen(tok)), JWT_OK);
}

/* authz-jwt task: requestPrincipals, a list claim, nested claims, audiences, presenter. */
static void test_request_auth(void **state)
{
	static struct jwt j;
	struct authz_request r = req();
	struct jwtauth auth = {&j, "testing@secure.istio.io/testing@secure.istio.io"};

	(void)state;
	load_ok(AP("require-jwt", "default",
		   "  rules:\n"
		   "  - from: [{source: {requestPrincipals: [\"testing@secure.istio.io/*\"]}}]\n"
		   "    when:\n"
		   "    - {key: \"request.auth.claims[groups]\", values: [group1]}\n"
		   "    - {key: \"request.auth.claims[org][team]\", notValues: [red]}\n"
		   "    - {key: request.auth.audiences, values: [\"*.example.com\"]}\n"
		   "    - {key: request.auth.presenter, notValues: [evil]}\n"));
	DENIED_BY(r, NONE); /* no token */
	/* {"groups":["group1","group2"],"org":{"team":"blue"},"aud":"api.example.com"} */
	decode_claims(&j, "eyJncm91cHMiOlsiZ3JvdXAxIiwiZ3JvdXAyIl0sIm9yZyI6eyJ0ZWFtIjoiYmx1ZSJ9"
			  "LCJhdWQiOiJhcGkuZXhhbXBsZS5jb20ifQ");
	r.auth = &auth;
	ALLOWED(r);
	auth.principal = "someone@else/x";
	DENIED_BY(r, NONE);
	auth.principal = "testing@secure.istio.io/testing@secure.istio.io";
	/* {"groups":"group1","org":{"team":"red"},"aud":["api.example.com"]} */
	decode_claims(&j, "eyJncm91cHMiOiJncm91cDEiLCJvcmciOnsidGVhbSI6InJlZCJ9LCJhdWQiOlsiYXBpLmV4"
			  "YW1wbGUuY29tIl19");
	DENIED_BY(r, NONE); /* team red */
	/* {"groups":["group2"],"aud":"api.example.com"} */
	decode_claims(&j, "eyJncm91cHMiOlsiZ3JvdXAyIl0sImF1ZCI6ImFwaS5leGFtcGxlLmNvbSJ9");
	DENIED_BY(r, NONE); /* no group1 */
}

/* A TCP connection: an ALLOW rule with HTTP fields never matches; a DENY rule is judged on
 * its other fields (denies more). */
static void test_tcp(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("allow-get", "default",
		   "  rules:\n"
		   "  - to: [{operation: {methods: [GET]}}]\n"
		   "  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n"
		   "    to: [{operation: {ports: [\"5432\"]}}]\n")
		    AP("deny-admin", "default",
		       "  action: DENY\n"
		       "  rules:\n"
		       "  - from: [{source: {ipBlocks: [10.0.0.66]}}]\n"
		       "    to: [{operation: {paths: [/admin]}}]\n"));
	r.http = false;
	DENIED_BY(r, NONE); /* port 80: only the GET rule, which TCP cannot match */
	r.port = 5432;
	ALLOWED(r);
	set_addr(&peer_ss, "10.0.0.66");
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.deny-admin]");
	r.http = true; /* over HTTP the path counts */
	r.port = 80;
	ALLOWED(r);
}

static void test_selection(void **state)
{
	struct authz_request r = req();
	char *got;

	(void)state;
	load_ok(AP("other-workload", "default",
		   "  selector: {matchLabels: {app: httpbin}}\n"
		   "  action: DENY\n"
		   "  rules: [{}]\n")
		    AP("other-namespace", "foo", "  action: DENY\n  rules: [{}]\n")
			AP("audit", "default", "  action: AUDIT\n  rules: [{}]\n"));
	ALLOWED(r);
	assert_int_equal(S->nap_deny, 0);
	got = fixture_diag_text(&D, dir);
	assert_non_null(
	    strstr(got, "default/other-workload: spec: does not select this appliance"));
	assert_non_null(strstr(got, "foo/other-namespace: spec: does not select this appliance"));
	assert_non_null(strstr(got, "default/audit: spec: AUDIT policies change no decision"));
	free(got);
	teardown(NULL);
	setup(NULL);
	load_ok(AP("gw", "istio-system",
		   "  selector: {matchLabels: {istio: ingressgateway}}\n"
		   "  action: DENY\n"
		   "  rules: [{}]\n"));
	DENIED_BY(r, "rbac_access_denied_matched_policy[istio-system.gw]");
}

#define PROVIDERS                                                                                  \
	"extensionProviders:\n"                                                                    \
	"- {name: ext, envoyExtAuthzHttp: {service: ext.example, port: 8000}}\n"                   \
	"- {name: ext2, envoyExtAuthzHttp: {service: ext.example, port: 8001}}\n"

/* action CUSTOM: its rules match as an ALLOW policy's do, only to say whether the
 * provider is asked; CUSTOM policies are a list of their own (authz_check never looks at
 * them), and only one provider may apply. */
static void test_custom(void **state)
{
	struct authz_request r = req();
	struct msg_header h[1] = {{"x-ext-authz", 11, "allow", 5}};
	char *got;

	(void)state;
	main_extra = PROVIDERS;
	load_ok(AP("ext-authz", "default",
		   "  action: CUSTOM\n"
		   "  provider: {name: ext}\n"
		   "  rules:\n"
		   "  - to: [{operation: {paths: [\"/headers\"]}}]\n"
		   "  - from: [{source: {ipBlocks: [\"192.0.2.0/24\"]}}]\n"
		   "    when: [{key: \"request.headers[x-ext-authz]\", values: [\"*\"]}]\n"));
	assert_int_equal(S->nap_custom, 1);
	assert_int_equal(S->nap_deny + S->nap_allow, 0);
	assert_non_null(S->ap_provider);
	assert_string_equal(S->ap_provider->name, "ext");
	assert_int_equal(S->ap_provider->port, 8000);
	assert_int_equal(S->ap_provider->status_on_error, 403);
	assert_true(S->ap_provider->timeout_us == 600000000ULL);
	assert_null(authz_custom(S, &r));      /* /ip: not asked */
	assert_null(authz_check(S, &r, NULL)); /* and CUSTOM never denies by itself */
	with_path(&r, "/headers");
	assert_ptr_equal(authz_custom(S, &r), S->ap_custom[0]);
	assert_ptr_equal(S->ap_custom[0]->provider, S->ap_provider);
	/* the second rule: source and header, both needed */
	with_path(&r, "/ip");
	set_addr(&peer_ss, "192.0.2.7");
	assert_null(authz_custom(S, &r));
	r.headers = h;
	r.nheaders = 1;
	assert_non_null(authz_custom(S, &r));
	set_addr(&peer_ss, "10.0.0.1");
	assert_null(authz_custom(S, &r));
	teardown(NULL);
	setup(NULL);

	/* CUSTOM beside DENY and ALLOW: each list apart; no rules never asks */
	main_extra = PROVIDERS;
	load_ok(AP("c", "default", "  action: CUSTOM\n  provider: {name: ext}\n")
		    AP("d", "default",
		       "  action: DENY\n  rules: [{to: [{operation: {paths: "
		       "[\"/deny\"]}}]}]\n")
			AP("a", "default", "  rules: [{to: [{operation: {paths: [\"/ip\"]}}]}]\n"));
	r = req();
	assert_int_equal(S->nap_custom, 1);
	assert_int_equal(S->nap_deny, 1);
	assert_int_equal(S->nap_allow, 1);
	assert_null(authz_custom(S, &r));
	assert_null(authz_check(S, &r, NULL));
	teardown(NULL);
	setup(NULL);

	/* two providers for this appliance: refused where the second is named; a policy of
	 * another namespace does not count */
	main_extra = PROVIDERS;
	refused(
	    AP("one", "default", "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n")
		AP("two", "default", "  action: CUSTOM\n  provider: {name: ext2}\n  rules: [{}]\n"),
	    "provider ext2: the CUSTOM policies that apply here already ask ext, and only one "
	    "provider may apply to a workload");
	load_ok(AP("one", "default", "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n")
		    AP("two", "elsewhere",
		       "  action: CUSTOM\n  provider: {name: ext2}\n  rules: [{}]\n"));
	assert_int_equal(S->nap_custom, 1);
	assert_string_equal(S->ap_provider->name, "ext");
	got = fixture_diag_text(&D, dir);
	assert_non_null(strstr(got, "elsewhere/two: spec: does not select this appliance"));
	free(got);
	teardown(NULL);
	setup(NULL);

	main_extra = PROVIDERS;
	refused(AP("c", "default", "  action: CUSTOM\n  rules: [{}]\n"),
		"action CUSTOM needs provider.name");
	refused(AP("c", "default", "  action: CUSTOM\n  provider: {name: nope}\n  rules: [{}]\n"),
		"no extension provider nope in the main config's extensionProviders");
	refused(AP("c", "default", "  action: CUSTOM\n  provider: ext\n  rules: [{}]\n"),
		"expected a map");
	main_extra = "";
}

static void test_refused(void **state)
{
	(void)state;
	refused(AP("c", "default", "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n"),
		"no extension provider ext: the main config has no extensionProviders");
	refused(AP("p", "default", "  provider: {name: ext}\n"),
		"provider is only for action CUSTOM");
	refused(AP("a", "default", "  action: MAYBE\n"), "MAYBE");
	refused(
	    AP("ip", "default", "  rules: [{from: [{source: {ipBlocks: [\"$CLIENT_IP\"]}}]}]\n"),
	    "\"$CLIENT_IP\" is not an IP address or CIDR prefix");
	refused(AP("k", "default", "  rules: [{when: [{key: request.foo, values: [x]}]}]\n"),
		"unknown key request.foo");
	refused(AP("v", "default", "  rules: [{when: [{key: source.ip}]}]\n"),
		"values or notValues is required");
	refused(AP("s", "default", "  rules: [{from: [{source: {}}]}]\n"),
		"source must not be empty");
	refused(AP("o", "default", "  rules: [{to: [{operation: {}}]}]\n"),
		"operation must not be empty");
	refused(AP("t", "default", "  rules: [{to: [{operation: {paths: [\"/a/{*}x/b\"]}}]}]\n"),
		"a path template's operators are whole segments");
	refused(AP("t2", "default", "  rules: [{to: [{operation: {paths: [\"/a/{**}/b\"]}}]}]\n"),
		"{**} (last only)");
	refused(AP("t3", "default", "  rules: [{to: [{operation: {paths: [\"/a/{*}/b*\"]}}]}]\n"),
		"with no other '*'");
	refused(AP("port", "default", "  rules: [{to: [{operation: {ports: [\"http\"]}}]}]\n"),
		"port must be in 1..65535");
	refused(AP("u", "default", "  rules: [{to: [{operation: {verbs: [GET]}}]}]\n"), "verbs");
	refused(AP("ref", "default", "  targetRef: {kind: Gateway, name: gw}\n"), "targetRef");
}

#define DRY_AP(name, ns, value, spec)                                                              \
	"apiVersion: security.istio.io/v1\n"                                                       \
	"kind: AuthorizationPolicy\n"                                                              \
	"metadata:\n"                                                                              \
	"  name: " name "\n"                                                                       \
	"  namespace: " ns "\n"                                                                    \
	"  annotations:\n"                                                                         \
	"    kubectl.kubernetes.io/last-applied-configuration: \"{}\"\n"                           \
	"    istio.io/dry-run: " value "\n"                                                        \
	"spec:\n" spec "---\n"

/* The annotation takes the words of Go's strconv.ParseBool, as Istio's validation does;
 * "false" is an enforced policy; other annotations are ignored. */
static void test_dry_run_values(void **state)
{
	static const char *const yes[] = {"\"true\"", "\"True\"", "\"TRUE\"", "\"t\"",
					  "T",        "\"1\"",    NULL};
	static const char *const no[] = {"\"false\"", "'False'", "\"FALSE\"", "f",
					 "\"F\"",     "\"0\"",   NULL};
	char yaml[1024];

	(void)state;
	for (size_t i = 0; yes[i] != NULL; i++) {
		snprintf(yaml, sizeof(yaml), DRY_AP("d", "default", "%s", "  rules: [{}]\n"),
			 yes[i]);
		load_ok(yaml);
		assert_int_equal(S->nap_allow, 0);
		assert_int_equal(S->nap_shadow_allow, 1);
		assert_true(S->ap_shadow_allow[0]->dry_run);
		teardown(NULL);
		setup(NULL);
	}
	for (size_t i = 0; no[i] != NULL; i++) {
		snprintf(yaml, sizeof(yaml),
			 DRY_AP("d", "default", "%s", "  action: DENY\n  rules: [{}]\n"), no[i]);
		load_ok(yaml);
		assert_int_equal(S->nap_deny, 1);
		assert_int_equal(S->nap_shadow_deny, 0);
		assert_false(S->ap_deny[0]->dry_run);
		teardown(NULL);
		setup(NULL);
	}
}

static void test_dry_run_refused(void **state)
{
	char *got;

	(void)state;
	refused(DRY_AP("y", "default", "\"yes\"", "  rules: [{}]\n"),
		"r.yaml:8:23: AuthorizationPolicy default/y: "
		"metadata.annotations[\"istio.io/dry-run\"]: must be \"true\" or \"false\", "
		"got \"yes\"");
	refused(DRY_AP("e", "default", "\"\"", "  rules: [{}]\n"), "got \"\"");
	refused(DRY_AP("b", "default", "true", "  rules: [{}]\n"),
		"dry-run\"]: must be a quoted string (\"true\"): Kubernetes refuses a YAML "
		"boolean or number as an annotation");
	refused(DRY_AP("n", "default", "0", "  rules: [{}]\n"), "must be a quoted string (\"0\")");
	refused(DRY_AP("m", "default", "{x: y}", "  rules: [{}]\n"), "expected a string");
	refused(DRY_AP("a", "default", "\"true\"", "  action: AUDIT\n  rules: [{}]\n"),
		"dry-run\"]: a dry run is for action ALLOW or DENY only (Istio refuses it on "
		"AUDIT)");
	/* CUSTOM: a dry run would ask the authorizer and obey it; refused, once */
	load(DRY_AP("c", "default", "\"true\"",
		    "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n"));
	got = fixture_diag_text(&D, dir);
	assert_non_null(strstr(got, "a dry run of a CUSTOM policy is not supported"));
	free(got);
	diag_fini(&D);
	diag_init(&D);
	refused("apiVersion: networking.istio.io/v1\n"
		"kind: ServiceEntry\n"
		"metadata:\n"
		"  name: se\n"
		"  annotations: {istio.io/dry-run: \"true\"}\n"
		"spec: {hosts: [a.example.com]}\n",
		"r.yaml:5:35: ServiceEntry default/se: metadata.annotations[\"istio.io/dry-run\"]: "
		"only an AuthorizationPolicy can be a dry run (Istio refuses the annotation on a "
		"ServiceEntry): remove it");
	refused("apiVersion: security.istio.io/v1\n"
		"kind: AuthorizationPolicy\n"
		"metadata: {name: list, annotations: [istio.io/dry-run]}\n"
		"spec: {}\n",
		"metadata.annotations: expected a map");
	/* other annotations stay ignored, on every kind */
	load_ok("apiVersion: networking.istio.io/v1\n"
		"kind: ServiceEntry\n"
		"metadata:\n"
		"  name: se\n"
		"  annotations: {istio.io/rev: canary, x: [not, a, string]}\n"
		"spec: {hosts: [a.example.com]}\n");
}

/* Istio's dry-run task: a dry-run DENY on a path and a header denies nothing; its shadow
 * engine says what it would have done and which rule matched. */
static void test_dry_run_deny(void **state)
{
	struct authz_request r = req();
	struct msg_header hdr = {"X-Dry-Run", 9, "1", 1};

	(void)state;
	load_ok(DRY_AP("deny-path-headers", "default", "\"true\"",
		       "  action: DENY\n"
		       "  rules:\n"
		       "  - to: [{operation: {paths: [/nowhere]}}]\n"
		       "  - to: [{operation: {paths: [\"/headers\"]}}]\n"
		       "    when: [{key: \"request.headers[x-dry-run]\", values: [\"1\"]}]\n"));
	assert_int_equal(S->nap_deny + S->nap_allow, 0);
	assert_int_equal(S->nap_shadow_deny, 1);
	ALLOWED(r);
	shadow_is(&SH.deny, AUTHZ_ALLOWED, "none");
	shadow_is(&SH.allow, AUTHZ_NOT_EVALUATED, NULL);
	with_path(&r, "/headers");
	r.headers = &hdr;
	r.nheaders = 1;
	ALLOWED(r);
	shadow_is(&SH.deny, AUTHZ_DENIED, "ns[default]-policy[deny-path-headers]-rule[1]");
	assert_ptr_equal(SH.deny.ap, S->ap_shadow_deny[0]);
	assert_int_equal(SH.deny.rule, 1);
	shadow_is(&SH.allow, AUTHZ_NOT_EVALUATED, NULL);
	/* a shadow verdict only when asked for */
	memset(&SH, 0, sizeof(SH));
	assert_null(authz_check(S, &r, NULL));
}

/* A config whose only ALLOW policy is a dry run denies nothing by default: the ALLOW
 * engine has no enforced rules (Istio leaves them out), only shadow ones. */
static void test_dry_run_allow_only(void **state)
{
	struct authz_request r = req();

	(void)state;
	/* mesh-wide, from the root namespace; allow-nothing enforced would deny everything */
	load_ok(DRY_AP("allow-ip", "istio-system", "\"true\"",
		       "  rules: [{to: [{operation: {paths: [/ip]}}]}]\n")
		    DRY_AP("allow-nothing", "istio-system", "\"true\"", "  {}\n"));
	assert_int_equal(S->nap_allow, 0);
	assert_int_equal(S->nap_shadow_allow, 2);
	ALLOWED(r);
	shadow_is(&SH.allow, AUTHZ_ALLOWED, "ns[istio-system]-policy[allow-ip]-rule[0]");
	shadow_is(&SH.deny, AUTHZ_NOT_EVALUATED, NULL);
	with_path(&r, "/headers");
	ALLOWED(r);
	shadow_is(&SH.allow, AUTHZ_DENIED, "none");
	assert_null(SH.allow.ap);
}

/* Enforced and dry-run policies side by side: the enforced ones decide alone.  The DENY
 * shadow engine runs before the enforced DENY policies (same filter); the ALLOW one only
 * for requests those let through. */
static void test_dry_run_with_enforced(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(AP("deny-admin", "default",
		   "  action: DENY\n"
		   "  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n")
		    AP("allow-some", "default",
		       "  rules: [{to: [{operation: {paths: [/ip, \"/admin*\", /new]}}]}]\n")
			DRY_AP("deny-more", "default", "\"true\"",
			       "  action: DENY\n"
			       "  rules: [{to: [{operation: {paths: [\"/admin*\", /ip]}}]}]\n")
			    DRY_AP("allow-less", "default", "\"true\"",
				   "  rules: [{to: [{operation: {paths: [/new]}}]}]\n"));
	assert_int_equal(S->nap_deny, 1);
	assert_int_equal(S->nap_allow, 1);
	assert_int_equal(S->nap_shadow_deny, 1);
	assert_int_equal(S->nap_shadow_allow, 1);
	ALLOWED(r); /* /ip: the dry-run DENY would deny, the dry-run ALLOW would too */
	shadow_is(&SH.deny, AUTHZ_DENIED, "ns[default]-policy[deny-more]-rule[0]");
	shadow_is(&SH.allow, AUTHZ_DENIED, "none");
	with_path(&r, "/admin/x");
	DENIED_BY(r, "rbac_access_denied_matched_policy[default.deny-admin]");
	shadow_is(&SH.deny, AUTHZ_DENIED, "ns[default]-policy[deny-more]-rule[0]");
	shadow_is(&SH.allow, AUTHZ_NOT_EVALUATED, NULL);
	with_path(&r, "/new");
	ALLOWED(r);
	shadow_is(&SH.deny, AUTHZ_ALLOWED, "none");
	shadow_is(&SH.allow, AUTHZ_ALLOWED, "ns[default]-policy[allow-less]-rule[0]");
	with_path(&r, "/other");
	DENIED_BY(r, NONE); /* the enforced ALLOW decides; the shadow verdicts are reported */
	shadow_is(&SH.deny, AUTHZ_ALLOWED, "none");
	shadow_is(&SH.allow, AUTHZ_DENIED, "none");
}

/* On a TCP connection the shadow rules follow the enforced ones' TCP semantics. */
static void test_dry_run_tcp(void **state)
{
	struct authz_request r = req();

	(void)state;
	load_ok(DRY_AP("allow-get", "default", "\"true\"",
		       "  rules: [{to: [{operation: {methods: [GET]}}]}]\n")
		    DRY_AP("deny-local-admin", "default", "\"true\"",
			   "  action: DENY\n"
			   "  rules:\n"
			   "  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n"
			   "    to: [{operation: {paths: [/admin]}}]\n"));
	r.http = false;
	ALLOWED(r);
	shadow_is(&SH.allow, AUTHZ_DENIED, "none"); /* an HTTP-only ALLOW rule never matches */
	/* a DENY rule is judged without them */
	shadow_is(&SH.deny, AUTHZ_DENIED, "ns[default]-policy[deny-local-admin]-rule[0]");
	r.http = true;
	ALLOWED(r);
	shadow_is(&SH.allow, AUTHZ_ALLOWED, "ns[default]-policy[allow-get]-rule[0]");
	shadow_is(&SH.deny, AUTHZ_ALLOWED, "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_no_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deny_then_allow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allow_nothing_and_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ip_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hosts_ports_wildcards, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path_templates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent_attributes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_principals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conditions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_auth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_selection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_deny, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_allow_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_with_enforced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_custom, setup, teardown),
	};

	int rc;

	if (!fixture_scratch_dir(dir, sizeof(dir), "test_authz"))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fixture_scratch_dir_remove(dir);
	return rc;
}
