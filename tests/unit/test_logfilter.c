/* logfilter.c: each Envoy attribute a Telemetry filter may read, mapped to the log line's
 * field (request, response, source, destination, connection, upstream, xds), absent where
 * Envoy has no value (a TCP relay's response code, the scheme without a request), the
 * response flags as Envoy's bits, and header fields read from the entry or from the copies
 * kept in the exchange (logfilter_keep_headers: several fields of one name joined). */
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

#include <cmocka.h>

#include "accesslog.h"
#include "cel.h"
#include "config/model.h"
#include "exchange.h"
#include "logfilter.h"
#include "pool.h"

static struct pool *pool;
static struct cfg_set set;
static struct accesslog_entry e;
static struct exchange *ex;

static int setup(void **state)
{
	(void)state;
	pool = pool_new();
	memset(&set, 0, sizeof(set));
	memset(&e, 0, sizeof(e));
	ex = calloc(1, sizeof(*ex));
	e.duration_us = 2500000;
	e.method = "POST";
	e.method_len = 4;
	e.path = "/api/v1/items?page=2";
	e.path_len = strlen(e.path);
	e.protocol = "HTTP/1.1";
	e.authority = "shop.example.com";
	e.authority_len = strlen(e.authority);
	e.user_agent = "curl/8.0";
	e.user_agent_len = 8;
	e.request_id = "rid-7";
	e.request_id_len = 5;
	e.status = 503;
	e.flags = "UF,URX";
	e.details = "upstream_reset_before_response_started{connection_failure}";
	e.bytes_received = 12;
	e.bytes_sent = 91;
	e.upstream_host = "10.1.2.3:8080";
	e.upstream_cluster = "outbound|8080||items.default.svc.cluster.local";
	e.route_name = "items-route";
	e.downstream_local = "192.0.2.10:443";
	e.downstream_remote = "198.51.100.7:51234";
	e.requested_server_name = "shop.example.com";
	e.requested_server_name_len = 16;
	e.downstream_tls_version = "TLSv1.3";
	e.grpc_status = 14;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ex);
	pool_free(pool);
	return 0;
}

/* Whether the line passes the filter src. */
static bool pass(const char *src)
{
	char err[200];
	size_t off;

	set.access_log_filter = cel_compile(pool, src, err, sizeof(err), &off);
	if (set.access_log_filter == NULL)
		fail_msg("%s: %s at %zu", src, err, off);
	return logfilter_pass(&set, &e, ex, NULL);
}

static void test_request(void **state)
{
	(void)state;
	assert_true(pass("request.path == '/api/v1/items?page=2'"));
	assert_true(pass("request.url_path == '/api/v1/items'"));
	assert_false(pass("request.url_path == '/api/v1/items?page=2'"));
	assert_true(pass("request.host == 'shop.example.com'"));
	assert_true(pass("request.scheme == 'http'")); /* no TLS connection given */
	assert_true(pass("request.method == 'POST'"));
	assert_true(pass("request.useragent.startsWith('curl/')"));
	assert_true(pass("request.id == 'rid-7'"));
	assert_true(pass("request.protocol == 'HTTP/1.1'"));
	assert_true(pass("request.duration > duration('2s') && request.duration < duration('3s')"));
	assert_true(pass("request.size == 12"));
	/* the fields the entry carries are headers too */
	assert_true(pass("request.headers[':authority'] == 'shop.example.com' && "
			 "request.headers['host'] == 'shop.example.com' && "
			 "request.headers[':method'] == 'POST' && request.headers['user-agent'] == "
			 "'curl/8.0' && request.headers['X-Request-Id'] == 'rid-7'"));
	/* not counted: absent, so the expression fails and the line is left out */
	assert_false(pass("request.total_size >= 0"));
}

static void test_response(void **state)
{
	(void)state;
	assert_true(pass("response.code == 503"));
	assert_true(pass("response.code_details.startsWith('upstream_reset')"));
	/* Envoy's bits: UF is 1 << 5, URX 1 << 15 */
	assert_true(pass("response.flags == 32 + 32768"));
	assert_true(pass("response.grpc_status == 14"));
	assert_true(pass("response.size == 91"));
	e.flags = "-";
	assert_true(pass("response.flags == 0"));
	e.grpc_status = -1;
	assert_false(pass("response.grpc_status == 14 || response.grpc_status != 14"));
	/* a TCP relay's line has no response code */
	e.status = 0;
	assert_false(pass("response.code == 0 || response.code != 0"));
}

static void test_addresses(void **state)
{
	(void)state;
	assert_true(pass("source.address == '198.51.100.7:51234' && source.port == 51234"));
	assert_true(pass("destination.address == '192.0.2.10:443' && destination.port == 443"));
	assert_true(pass("upstream.address == '10.1.2.3:8080'"));
	assert_false(pass("source.port == 443 || destination.port == 51234"));
	assert_true(pass("xds.cluster_name == 'outbound|8080||items.default.svc.cluster.local'"));
	assert_true(pass("xds.route_name == 'items-route'"));
	e.downstream_remote = "[2001:db8::5]:4000";
	assert_true(pass("source.port == 4000"));
	e.downstream_remote = "odd";
	assert_false(pass("source.port >= 0"));
	e.upstream_host = NULL; /* no upstream was chosen */
	assert_false(pass("upstream.address == '' || upstream.address != ''"));
}

static void test_connection(void **state)
{
	(void)state;
	assert_true(pass("connection.requested_server_name == 'shop.example.com'"));
	assert_true(pass("connection.tls_version == 'TLSv1.3'"));
	assert_true(pass("!connection.mtls")); /* no client certificate */
	e.requested_server_name = NULL;
	e.requested_server_name_len = 0;
	e.downstream_tls_version = NULL;
	assert_false(pass("connection.requested_server_name != 'x'"));
	assert_false(pass("connection.tls_version != 'x'"));
	/* no request: no scheme */
	e.method = NULL;
	assert_false(pass("request.scheme != 'x'"));
}

static void test_kept_headers(void **state)
{
	static const char *req_names[] = {"x-tenant", "referer"};
	static const char *resp_names[] = {"x-cache"};
	const struct http1_header req[] = {
	    {"X-Tenant", 8, "blue", 4},
	    {"Referer", 7, "https://a.example/", 18},
	    {"x-tenant", 8, "green", 5},
	    {"x-other", 7, "no", 2},
	};
	const struct http1_header resp[] = {{"X-Cache", 7, "HIT", 3}};

	(void)state;
	set.access_log_headers[0].v = req_names;
	set.access_log_headers[0].n = 2;
	set.access_log_headers[1].v = resp_names;
	set.access_log_headers[1].n = 1;
	/* nothing kept yet: the headers are absent */
	assert_false(pass("request.headers['x-tenant'] != ''"));
	logfilter_keep_headers(ex, &set, LOGFILTER_REQUEST, req, 4);
	logfilter_keep_headers(ex, &set, LOGFILTER_RESPONSE, resp, 1);
	assert_true(ex->log_hdr_kept);
	/* two fields of one name read as one, joined with "," as Envoy's header map */
	assert_true(pass("request.headers['X-TENANT'] == 'blue,green'"));
	assert_true(pass("request.referer == 'https://a.example/'"));
	assert_true(pass("response.headers['x-cache'] == 'HIT'"));
	/* a name not kept is absent, not empty */
	assert_false(pass("request.headers['x-other'] == 'no'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_headers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
