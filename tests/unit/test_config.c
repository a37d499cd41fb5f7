/* Config loader golden tests: every tests/config/{ok,bad}/NAME.yaml is loaded through
 * config_load() and its diagnostics must match NAME.err byte for byte (error text is user
 * interface).  A case is one resource file, listed by a main config the test writes; files
 * named main-*.yaml are main configs themselves.  Paths in the output are relative to the
 * test directory (the test runs in a scratch directory holding `ok` and `bad` symlinks).
 *
 * MG_CONFIG_TESTDIR names the directory (default tests/config); MG_CONFIG_UPDATE=1 rewrites
 * the .err files from the current output instead of comparing. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw(); configure's AC_USE_SYSTEM_EXTENSIONS defines it too */
#endif

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool.h"
#include "config/diag.h"
#include "config/load.h"

struct golden {
	char kind[8];   /* "ok" or "bad" */
	char name[256]; /* file name without .yaml */
};

static char test_dir[PATH_MAX];    /* absolute MG_CONFIG_TESTDIR */
static char scratch_dir[PATH_MAX]; /* cwd of every test */
static bool update_mode;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f, *m;
	int c;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	m = open_memstream(&buf, &len);
	assert_non_null(m);
	while ((c = getc(f)) != EOF)
		putc(c, m);
	fclose(f);
	fclose(m);
	return buf;
}

/* Load main_path and return the diagnostics as printed by `meshgate -t`. */
static char *load_and_print(const char *main_path, int *nerrors, struct pool **pp,
			    struct cfg_set **setp)
{
	struct pool *p = pool_new();
	struct cfg_set *set;
	struct diag d;
	char *out = NULL;
	size_t len = 0;
	FILE *m;

	diag_init(&d);
	set = config_load(p, &d, main_path);
	assert_non_null(set);
	m = open_memstream(&out, &len);
	assert_non_null(m);
	diag_print(&d, m);
	fclose(m);
	*nerrors = d.nerrors;
	diag_fini(&d);
	if (pp != NULL) {
		*pp = p;
		*setp = set;
	} else {
		pool_free(p);
	}
	return out;
}

static void test_golden(void **state)
{
	const struct golden *g = *state;
	char main_path[PATH_MAX + 64], err_path[PATH_MAX + 600];
	char *got, *want;
	int nerrors;

	if (strncmp(g->name, "main-", 5) == 0) {
		snprintf(main_path, sizeof(main_path), "%s/%s.yaml", g->kind, g->name);
	} else {
		char text[600];

		snprintf(main_path, sizeof(main_path), "main.yaml");
		snprintf(text, sizeof(text), "resources:\n- %s/%s.yaml\n", g->kind, g->name);
		write_file(main_path, text);
	}
	got = load_and_print(main_path, &nerrors, NULL, NULL);
	snprintf(err_path, sizeof(err_path), "%s/%s/%s.err", test_dir, g->kind, g->name);
	if (update_mode) {
		write_file(err_path, got);
	} else {
		want = read_file(err_path);
		if (want == NULL)
			fail_msg("%s: cannot read %s (run with MG_CONFIG_UPDATE=1 to create it)",
				 g->name, err_path);
		if (strcmp(got, want) != 0) {
			print_error("--- expected (%s)\n%s--- got\n%s", err_path, want, got);
			free(want);
			free(got);
			fail_msg("%s/%s: output differs from the golden file", g->kind, g->name);
		}
		free(want);
	}
	if (strcmp(g->kind, "ok") == 0 && nerrors != 0)
		fail_msg("ok/%s: %d errors:\n%s", g->name, nerrors, got);
	if (strcmp(g->kind, "bad") == 0 && nerrors == 0)
		fail_msg("bad/%s: no error reported", g->name);
	free(got);
}

/* ---- focused unit tests ---- */

static void test_expand_host(void **state)
{
	struct pool *p = pool_new();

	(void)state;
	assert_string_equal(cfg_expand_host(p, "reviews", "default"),
			    "reviews.default.svc.cluster.local");
	assert_string_equal(cfg_expand_host(p, "Reviews", "shop"),
			    "reviews.shop.svc.cluster.local");
	assert_string_equal(cfg_expand_host(p, "reviews.prod", "default"), "reviews.prod");
	assert_string_equal(cfg_expand_host(p, "WWW.Example.COM", "default"), "www.example.com");
	assert_string_equal(cfg_expand_host(p, "*.example.com", "default"), "*.example.com");
	assert_string_equal(cfg_expand_host(p, "*", "default"), "*");
	assert_string_equal(cfg_expand_host(p, "10.0.0.1", "default"), "10.0.0.1");
	assert_string_equal(cfg_expand_host(p, "::1", "default"), "::1");
	assert_null(cfg_expand_host(p, NULL, "default"));
	pool_free(p);
}

static void test_check_host(void **state)
{
	char why[160];

	(void)state;
	assert_true(cfg_check_host("example.com", 0, why, sizeof(why)));
	assert_true(cfg_check_host("reviews", 0, why, sizeof(why)));
	assert_true(cfg_check_host("istio.io.", 0, why, sizeof(why)));
	assert_true(cfg_check_host("*.example.com", CFG_HOST_WILDCARD, why, sizeof(why)));
	assert_true(cfg_check_host("*", CFG_HOST_WILDCARD, why, sizeof(why)));
	assert_false(cfg_check_host("*", 0, why, sizeof(why)));
	assert_false(cfg_check_host("*.example.com", 0, why, sizeof(why)));
	assert_false(cfg_check_host("a.*.com", CFG_HOST_WILDCARD, why, sizeof(why)));
	assert_false(cfg_check_host("foo_bar.com", 0, why, sizeof(why)));
	assert_false(cfg_check_host("-foo.com", 0, why, sizeof(why)));
	assert_false(cfg_check_host("a..b", 0, why, sizeof(why)));
	assert_false(cfg_check_host("", 0, why, sizeof(why)));
	assert_false(cfg_check_host("10.0.0.1", 0, why, sizeof(why)));
	assert_true(cfg_check_host("10.0.0.1", CFG_HOST_IP, why, sizeof(why)));
	assert_true(cfg_check_host("2001:db8::1", CFG_HOST_IP, why, sizeof(why)));
	assert_true(cfg_hosts_overlap("*.example.com", "a.example.com"));
	assert_true(cfg_hosts_overlap("a.example.com", "*.example.com"));
	assert_true(cfg_hosts_overlap("*", "a.example.com"));
	assert_false(cfg_hosts_overlap("*.example.com", "example.com"));
	assert_false(cfg_hosts_overlap("a.example.com", "b.example.com"));
	assert_true(cfg_is_ip_or_cidr("10.0.0.0/8"));
	assert_true(cfg_is_ip_or_cidr("2001:db8::/32"));
	assert_false(cfg_is_ip_or_cidr("10.0.0.0/33"));
	assert_false(cfg_is_ip_or_cidr("10.0.0.0/"));
}

static void test_main_defaults(void **state)
{
	struct cfg_set *set;
	struct pool *p;
	char *out;
	int nerrors;

	(void)state;
	write_file("empty-main.yaml", "# nothing but a comment\n");
	out = load_and_print("empty-main.yaml", &nerrors, &p, &set);
	assert_int_equal(nerrors, 0);
	assert_string_equal(out, "");
	assert_int_equal(set->main.workers, 0);
	assert_string_equal(set->main.ns, "default");
	assert_string_equal(set->main.admin_address, "127.0.0.1:15000");
	assert_int_equal(set->main.resources.n, 0);
	assert_int_equal(set->main.labels.n, 0);
	assert_null(set->main.access_log_path);
	assert_int_equal(set->main.limits.max_header_bytes, 65536);
	assert_int_equal(set->main.limits.max_headers, 100);
	assert_int_equal(set->main.limits.max_request_line_bytes, 16384);
	assert_int_equal(set->main.limits.max_connections, 10000);
	assert_int_equal(set->main.timeouts.idle_us, 60000000);
	assert_int_equal(set->main.timeouts.request_headers_us, 10000000);
	assert_int_equal(set->main.timeouts.request_body_idle_us, 30000000);
	assert_int_equal(set->main.timeouts.upstream_connect_us, 5000000);
	assert_int_equal(set->main.timeouts.upstream_idle_us, 60000000);
	assert_int_equal(set->main.timeouts.drain_us, 15000000);
	assert_int_equal(set->main.https_redirect_code, 301);
	assert_string_equal(set->main.dir, ".");
	assert_int_equal(set->ngateways + set->nvss + set->ndrs + set->nses, 0);
	free(out);
	pool_free(p);
}

static void test_main_full(void **state)
{
	struct cfg_set *set;
	struct cfg_main *m;
	struct pool *p;
	char *out;
	int nerrors;

	(void)state;
	out = load_and_print("ok/main-full.yaml", &nerrors, &p, &set);
	assert_int_equal(nerrors, 0);
	m = &set->main;
	assert_string_equal(m->dir, "ok");
	assert_int_equal(m->workers, 0);
	assert_int_equal(m->labels.n, 2);
	assert_string_equal(m->labels.v[0].key, "istio");
	assert_string_equal(m->labels.v[0].value, "ingressgateway");
	assert_string_equal(m->ns, "edge");
	assert_string_equal(m->admin_address, "[::1]:15000");
	assert_string_equal(m->access_log_path, "-");
	assert_int_equal(m->access_log_format, ACCESSLOG_JSON);
	assert_string_equal(m->credentials_dir, "/etc/meshgate/credentials");
	assert_string_equal(m->user, "meshgate");
	assert_int_equal(m->https_redirect_code, 308);
	assert_int_equal(m->limits.max_header_bytes, 32768);
	assert_int_equal(m->limits.max_headers, 50);
	assert_int_equal(m->limits.max_request_line_bytes, 8192);
	assert_int_equal(m->limits.max_connections, 20000);
	assert_int_equal(m->timeouts.idle_us, 120000000);
	assert_int_equal(m->timeouts.upstream_connect_us, 1500000);
	assert_int_equal(m->timeouts.drain_us, 0);
	free(out);
	pool_free(p);
}

/* A directory resource: *.yaml and *.yml in byte order, nothing else, no recursion; the
 * main file's directory anchors relative paths; resources get increasing load order. */
static void test_directory_resources(void **state)
{
	static const char se[] = "apiVersion: networking.istio.io/v1\n"
				 "kind: ServiceEntry\n"
				 "metadata: {name: %s}\n"
				 "spec: {hosts: [%s.example.com]}\n";
	struct cfg_set *set;
	struct pool *p;
	char text[512], *out;
	int nerrors;

	(void)state;
	assert_int_equal(mkdir("conf", 0755) == 0 || errno == EEXIST, 1);
	assert_int_equal(mkdir("conf/res", 0755) == 0 || errno == EEXIST, 1);
	assert_int_equal(mkdir("conf/res/sub.yaml", 0755) == 0 || errno == EEXIST, 1);
	snprintf(text, sizeof(text), se, "bravo", "bravo");
	write_file("conf/res/b.yaml", text);
	snprintf(text, sizeof(text), se, "alpha", "alpha");
	write_file("conf/res/a.yml", text);
	snprintf(text, sizeof(text), se, "upper", "upper");
	write_file("conf/res/Z.yaml", text);
	write_file("conf/res/c.txt", "not: yaml: at: all: [");
	write_file("conf/res/.hidden.yaml", "also: [broken");
	write_file("conf/main.yaml", "namespace: web\nresources: [res]\n");
	out = load_and_print("conf/main.yaml", &nerrors, &p, &set);
	assert_string_equal(out, "");
	assert_int_equal(nerrors, 0);
	assert_string_equal(set->main.resources.v[0], "conf/res");
	assert_int_equal(set->nses, 3);
	assert_string_equal(set->ses[0]->meta.name, "upper");
	assert_string_equal(set->ses[1]->meta.name, "alpha");
	assert_string_equal(set->ses[2]->meta.name, "bravo");
	assert_int_equal(set->ses[0]->meta.order, 0);
	assert_int_equal(set->ses[2]->meta.order, 2);
	assert_string_equal(set->ses[1]->meta.ns, "web");
	free(out);
	pool_free(p);
}

static const struct http_route *find_route(const struct cfg_vs *vs, const char *name)
{
	size_t i;

	for (i = 0; i < vs->nhttp; i++)
		if (vs->http[i].name != NULL && strcmp(vs->http[i].name, name) == 0)
			return &vs->http[i];
	return NULL;
}

/* Spot-check the decoded model of the richest ok case. */
static void test_decoded_model(void **state)
{
	const struct http_route *r;
	const struct http_match *m;
	const struct cfg_gateway *gw;
	const struct cfg_vs *vs;
	struct cfg_set *set;
	struct pool *p;
	char *out;
	int nerrors;

	(void)state;
	write_file("main.yaml", "resources: [ok/gateway-virtualservice.yaml]\n");
	out = load_and_print("main.yaml", &nerrors, &p, &set);
	assert_int_equal(nerrors, 0);
	assert_int_equal(set->ngateways, 1);
	assert_int_equal(set->nvss, 1);

	gw = set->gateways[0];
	assert_string_equal(gw->meta.ns, "edge");
	assert_int_equal(gw->nservers, 3);
	assert_int_equal(gw->servers[0].port, 80);
	assert_int_equal(gw->servers[0].protocol, GWP_HTTP);
	assert_string_equal(gw->servers[0].bind, "127.0.0.1");
	assert_int_equal(gw->servers[0].nhosts, 3);
	assert_string_equal(gw->servers[0].hosts[0].ns, "*");
	assert_string_equal(gw->servers[0].hosts[0].host, "*.example.com");
	assert_string_equal(gw->servers[0].hosts[1].ns, "edge");
	assert_string_equal(gw->servers[0].hosts[1].host, "shop.example.org");
	assert_true(gw->servers[0].tls.https_redirect);
	assert_int_equal(gw->servers[1].protocol, GWP_HTTPS);
	assert_string_equal(gw->servers[1].hosts[0].host, "secure.example.com");
	assert_int_equal(gw->servers[1].tls.mode, TLSM_MUTUAL);
	assert_int_equal(gw->servers[1].tls.min_version, 12);
	assert_int_equal(gw->servers[1].tls.max_version, 13);
	assert_string_equal(gw->servers[1].tls.credential_name, "secure-cert");
	assert_int_equal(gw->servers[2].tls.mode, TLSM_PASSTHROUGH);

	vs = set->vss[0];
	assert_int_equal(vs->nhttp, 6);
	assert_int_equal(vs->hosts.n, 2);
	r = find_route(vs, "api");
	assert_non_null(r);
	assert_ptr_equal(r->vs, vs);
	assert_int_equal(r->index, 0);
	assert_int_equal(r->nmatches, 2);
	m = &r->matches[0];
	assert_int_equal(m->uri.kind, SM_PREFIX);
	assert_string_equal(m->uri.value, "/api/");
	assert_true(m->ignore_uri_case);
	assert_int_equal(m->nheaders, 2);
	assert_string_equal(m->headers[0].name, "x-canary");
	assert_int_equal(m->headers[0].m.kind, SM_REGEX);
	assert_true(m->headers[1].present_only);
	assert_int_equal(m->more->nquery_params, 1);
	assert_int_equal(m->more->nwithout_headers, 1);
	assert_int_equal(m->port, 80);
	assert_string_equal(r->more->stat_prefix, "api");
	assert_int_equal(r->nroute, 2);
	assert_string_equal(r->route[0].dest.fqdn, "shop.edge.svc.cluster.local");
	assert_string_equal(r->route[0].dest.subset, "v1");
	assert_int_equal(r->route[0].dest.port, 8080);
	assert_int_equal(r->route[0].weight, 90);
	assert_string_equal(r->route[0].headers->response.set.v[0].key, "x-version");
	assert_string_equal(r->headers->request.set.v[0].key, "x-forwarded-service");
	assert_string_equal(r->headers->request.remove.v[0], "x-internal");
	assert_true(r->timeout_given);
	assert_int_equal(r->timeout_us, 2500000);
	assert_int_equal(r->retries->attempts, 3);
	assert_int_equal(r->retries->per_try_timeout_us, 500000);
	assert_int_equal(r->more->nmirrors, 1);
	assert_string_equal(r->more->mirrors[0].dest.fqdn, "shop-shadow.edge.svc.cluster.local");
	assert_true(r->more->mirrors[0].percentage.given);
	assert_true(r->more->cors->given);
	assert_int_equal(r->more->cors->nallow_origins, 2);
	assert_int_equal(r->more->cors->max_age_us, 86400000000ULL);
	assert_int_equal(r->more->cors->allow_credentials, 1);
	assert_true(r->more->rewrite->given);
	assert_string_equal(r->more->rewrite->authority, "backend.internal");

	r = &vs->http[1];
	assert_string_equal(r->more->rewrite->uri_regex.match, "^/old/(.*)$");
	r = &vs->http[2];
	assert_non_null(r->more->redirect);
	assert_int_equal(r->more->redirect->redirect_code, 308);
	assert_true(r->more->redirect->derive_port_from_request);
	r = &vs->http[4];
	assert_true(r->more->direct_response->given);
	assert_int_equal(r->more->direct_response->status, 418);
	assert_int_equal(r->more->direct_response->body_len, 5);
	assert_memory_equal(r->more->direct_response->body, "hello", 5);
	r = &vs->http[5];
	assert_int_equal(r->more->fault->abort.http_status, 555);
	assert_int_equal(r->more->fault->delay.fixed_delay_us, 7000000);
	assert_int_equal(r->retries->attempts, -1);
	assert_int_equal(r->more->cors->allow_credentials, -1);
	free(out);
	pool_free(p);
}

/* Routes without redirect, directResponse, delegate, rewrite, fault, mirrors, corsPolicy or
 * statPrefix share one empty block (8 bytes a route instead of 88); a route with any of them
 * has its own. */
static void test_route_policies_shared(void **state)
{
	const struct cfg_vs *vs;
	struct cfg_set *set;
	struct pool *p;
	char *out;
	int nerrors;

	(void)state;
	write_file("shared.yaml", "apiVersion: networking.istio.io/v1\n"
				  "kind: VirtualService\n"
				  "metadata: {name: vs, namespace: edge}\n"
				  "spec:\n"
				  "  hosts: [a.example.com]\n"
				  "  http:\n"
				  "  - match: [{uri: {exact: /a}}]\n"
				  "    route: [{destination: {host: a}}]\n"
				  "  - timeout: 1s\n"
				  "    route: [{destination: {host: b}}]\n"
				  "  - fault: {abort: {httpStatus: 503, percentage: {value: 1}}}\n"
				  "    route: [{destination: {host: c}}]\n");
	write_file("main.yaml", "resources: [shared.yaml]\n");
	out = load_and_print("main.yaml", &nerrors, &p, &set);
	assert_int_equal(nerrors, 0);
	vs = set->vss[0];
	assert_int_equal(vs->nhttp, 3);
	assert_ptr_equal(vs->http[0].more, vs->http[1].more);
	assert_null(vs->http[0].more->redirect);
	assert_false(vs->http[0].more->direct_response->given);
	assert_false(vs->http[0].more->fault->given);
	assert_true(vs->http[1].timeout_given);
	assert_ptr_not_equal(vs->http[2].more, vs->http[0].more);
	assert_true(vs->http[2].more->fault->abort.given);
	assert_int_equal(vs->http[2].more->fault->abort.http_status, 503);
	assert_false(vs->http[2].more->rewrite->given);
	free(out);
	pool_free(p);
}

/* ---- driver ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int cmp_golden(const void *a, const void *b)
{
	const struct golden *x = a, *y = b;
	int c = strcmp(x->kind, y->kind);

	return c ? c : strcmp(x->name, y->name);
}

static size_t collect(const char *kind, struct golden **v, size_t n)
{
	char dir[PATH_MAX + 16];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/%s", test_dir, kind);
	if ((dp = opendir(dir)) == NULL) {
		fprintf(stderr, "test_config: cannot open %s: %s\n", dir, strerror(errno));
		exit(1);
	}
	while ((e = readdir(dp)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len <= 5 || strcmp(e->d_name + len - 5, ".yaml") != 0 || len - 5 >= 256)
			continue;
		*v = realloc(*v, (n + 1) * sizeof(**v));
		if (*v == NULL)
			abort();
		snprintf((*v)[n].kind, sizeof((*v)[n].kind), "%s", kind);
		snprintf((*v)[n].name, sizeof((*v)[n].name), "%.*s", (int)(len - 5), e->d_name);
		n++;
	}
	closedir(dp);
	return n;
}

int main(void)
{
	static const struct CMUnitTest unit[] = {
	    cmocka_unit_test(test_expand_host),           cmocka_unit_test(test_check_host),
	    cmocka_unit_test(test_main_defaults),         cmocka_unit_test(test_main_full),
	    cmocka_unit_test(test_directory_resources),   cmocka_unit_test(test_decoded_model),
	    cmocka_unit_test(test_route_policies_shared),
	};
	const char *env = getenv("MG_CONFIG_TESTDIR");
	struct golden *cases = NULL;
	struct CMUnitTest *tests;
	char link[PATH_MAX + 16];
	size_t n, i;
	int rc;

	if (realpath(env && *env ? env : "tests/config", test_dir) == NULL) {
		fprintf(stderr, "test_config: %s: %s\n", env ? env : "tests/config",
			strerror(errno));
		return 1;
	}
	update_mode =
	    getenv("MG_CONFIG_UPDATE") != NULL && strcmp(getenv("MG_CONFIG_UPDATE"), "1") == 0;
	n = collect("ok", &cases, 0);
	n = collect("bad", &cases, n);
	qsort(cases, n, sizeof(*cases), cmp_golden);

	snprintf(scratch_dir, sizeof(scratch_dir), "%s/mg-test-config-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(scratch_dir) == NULL || chdir(scratch_dir) != 0) {
		perror("test_config: scratch directory");
		return 1;
	}
	snprintf(link, sizeof(link), "%s/ok", test_dir);
	if (symlink(link, "ok") != 0)
		return 1;
	snprintf(link, sizeof(link), "%s/bad", test_dir);
	if (symlink(link, "bad") != 0)
		return 1;

	tests = calloc(n + sizeof(unit) / sizeof(unit[0]), sizeof(*tests));
	if (tests == NULL)
		abort();
	for (i = 0; i < n; i++) {
		char *name = malloc(strlen(cases[i].kind) + strlen(cases[i].name) + 2);

		if (name == NULL)
			abort();
		sprintf(name, "%s/%s", cases[i].kind, cases[i].name);
		tests[i].name = name;
		tests[i].test_func = test_golden;
		tests[i].initial_state = &cases[i];
	}
	memcpy(tests + n, unit, sizeof(unit));
	rc = _cmocka_run_group_tests("config", tests, n + sizeof(unit) / sizeof(unit[0]), NULL,
				     NULL);
	/* Remove the scratch directory (FTW_PHYS: the ok/bad symlinks are not followed). */
	if (chdir("/") != 0 || nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "test_config: could not remove %s\n", scratch_dir);
	for (i = 0; i < n; i++)
		free((char *)tests[i].name);
	free(tests);
	free(cases);
	return rc;
}
