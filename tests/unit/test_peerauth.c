/* Unit tests for config/peerauthentication.c: which mode each ISTIO_MUTUAL Gateway server
 * gets (pa_apply: policy levels, portLevelMtls, no policy = STRICT) and what a listener of
 * merged servers does with plaintext (pa_listener_mode).  Inline YAML goes through the real
 * loader from a scratch directory. */
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
#include <unistd.h>

#include <cmocka.h>

#include "config/diag.h"
#include "config/load.h"
#include "config/node.h"
#include "pool.h"
#include "fixture.h"

static char dir[256];
static struct pool *P;
static struct diag D;

static void expect_diag(const char *expect)
{
	char *got = fixture_diag_text(&D, dir);

	if (strcmp(got, expect) != 0)
		fail_msg("diagnostics differ\n--- expected\n%s--- got\n%s", expect, got);
	free(got);
}

/* Gateway "gw" with an ISTIO_MUTUAL HTTPS server on 443, another on 8443, and a SIMPLE one
 * on 8443 too (servers[0..2]), then the policies. */
#define GW                                                                                         \
	"apiVersion: networking.istio.io/v1\n"                                                     \
	"kind: Gateway\n"                                                                          \
	"metadata: {name: gw}\n"                                                                   \
	"spec:\n"                                                                                  \
	"  servers:\n"                                                                             \
	"  - port: {number: 443, name: mesh, protocol: HTTPS}\n"                                   \
	"    hosts: [\"*\"]\n"                                                                     \
	"    tls: {mode: ISTIO_MUTUAL}\n"                                                          \
	"  - port: {number: 8443, name: mesh2, protocol: HTTPS}\n"                                 \
	"    hosts: [mesh.example.com]\n"                                                          \
	"    tls: {mode: ISTIO_MUTUAL}\n"                                                          \
	"  - port: {number: 8443, name: web, protocol: HTTPS}\n"                                   \
	"    hosts: [web.example.com]\n"                                                           \
	"    tls: {mode: SIMPLE, serverCertificate: /nonexistent, privateKey: /nonexistent}\n"     \
	"---\n"

#define PA(name, ns, spec)                                                                         \
	"apiVersion: security.istio.io/v1\n"                                                       \
	"kind: PeerAuthentication\n"                                                               \
	"metadata: {name: " name ", namespace: " ns "}\n"                                          \
	"spec: " spec "\n"                                                                         \
	"---\n"

/* Load and apply; returns the gateway's servers. */
static struct gw_server *load(const char *yaml)
{
	char main_path[512];
	struct cfg_set *set;

	fixture_write_file(dir, "main.yaml", "labels: {app: edge}\nresources: [r.yaml]\n");
	fixture_write_file(dir, "r.yaml", yaml);
	snprintf(main_path, sizeof(main_path), "%s/main.yaml", dir);
	set = config_load(P, &D, main_path);
	assert_non_null(set);
	assert_int_equal(D.nerrors, 0);
	assert_int_equal(set->ngateways, 1);
	set->gateways[0]->served = true; /* link's job: the selector is empty */
	pa_apply(&D, set);
	return set->gateways[0]->servers;
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
	return 0;
}

/* No policy: an ISTIO_MUTUAL server is STRICT (not Istio's sidecar default PERMISSIVE);
 * other servers are left alone. */
static void test_no_policy(void **state)
{
	struct gw_server *s = load(GW);

	assert_int_equal(s[0].mtls, PA_STRICT);
	assert_int_equal(s[1].mtls, PA_STRICT);
	assert_int_equal(s[2].mtls, PA_UNSET);
	expect_diag("");
}

/* Workload policy (port level, then its own mode), then namespace, then mesh-wide; UNSET
 * inherits from the next level. */
static void test_levels(void **state)
{
	struct gw_server *s = load(
	    GW PA("mesh", "istio-system", "{mtls: {mode: PERMISSIVE}}")
		PA("ns", "default", "{mtls: {mode: UNSET}}")
		    PA("edge", "default",
		       "{selector: {matchLabels: {app: edge}}, portLevelMtls: {\"8443\": {mode: "
		       "DISABLE}}}"));

	assert_int_equal(s[0].mtls, PA_PERMISSIVE); /* mesh-wide, through UNSET levels */
	assert_int_equal(s[1].mtls, PA_DISABLE);    /* the workload's port level */
	assert_non_null(s[1].mtls_node);
	assert_int_equal(s[1].mtls_node->line, 29);
}

static void test_namespace_beats_mesh(void **state)
{
	struct gw_server *s = load(GW PA("mesh", "istio-system", "{mtls: {mode: PERMISSIVE}}")
				       PA("ns", "default", "{mtls: {mode: STRICT}}"));

	assert_int_equal(s[0].mtls, PA_STRICT);
	assert_int_equal(s[1].mtls, PA_STRICT);
}

/* What listeners do: plaintext only where every server is an HTTPS ISTIO_MUTUAL one. */
static void test_listener_mode(void **state)
{
	struct gw_server *s = load(GW PA("mesh", "istio-system", "{mtls: {mode: PERMISSIVE}}"));
	const struct gw_server *only443[] = {&s[0]};
	const struct gw_server *only_mesh2[] = {&s[1]};
	const struct gw_server *shared[] = {&s[1], &s[2]};
	const struct gw_server *web[] = {&s[2]};
	char *text;

	expect_diag("");
	assert_int_equal(pa_listener_mode(&D, only443, 1, "0.0.0.0:443"), PA_PERMISSIVE);
	assert_int_equal(pa_listener_mode(&D, only_mesh2, 1, "0.0.0.0:8443"), PA_PERMISSIVE);
	assert_int_equal(pa_listener_mode(&D, web, 1, "0.0.0.0:8443"), PA_UNSET);
	expect_diag("");
	/* a SIMPLE server on the port: plaintext would reach its hosts too */
	assert_int_equal(pa_listener_mode(&D, shared, 2, "0.0.0.0:8443"), PA_UNSET);
	expect_diag(
	    "r.yaml:19:21: warning: PeerAuthentication istio-system/mesh: spec.mtls.mode: "
	    "mTLS mode PERMISSIVE for port 8443: 0.0.0.0:8443 is shared with the server "
	    "at r.yaml:12, which is not an HTTPS ISTIO_MUTUAL one; the port stays STRICT\n");
	/* DISABLE and STRICT pass through; STRICT is what the servers say anyway */
	s[0].mtls = PA_DISABLE;
	assert_int_equal(pa_listener_mode(&D, only443, 1, "0.0.0.0:443"), PA_DISABLE);
	s[0].mtls = PA_STRICT;
	assert_int_equal(pa_listener_mode(&D, only443, 1, "0.0.0.0:443"), PA_UNSET);
	/* a terminated TLS (not HTTPS) server does not take plaintext HTTP */
	s[0].mtls = PA_PERMISSIVE;
	s[0].protocol = GWP_TLS;
	assert_int_equal(pa_listener_mode(&D, only443, 1, "0.0.0.0:443"), PA_UNSET);
	text = fixture_diag_text(&D, dir);
	assert_non_null(
	    strstr(text, "plaintext is taken on HTTPS servers only; 0.0.0.0:443 stays STRICT"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_no_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_namespace_beats_mesh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listener_mode, setup, teardown),
	};
	int rc;

	if (!fixture_scratch_dir(dir, sizeof(dir), "test_peerauth"))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fixture_scratch_dir_remove(dir);
	return rc;
}
