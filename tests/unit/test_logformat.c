/* logformat.c: Envoy's format strings compiled and rendered over a fake log entry: Istio's
 * default text format gives the built-in line byte for byte, the operators and their
 * variants, REQ/RESP with fallbacks and lengths, the kept header copies, the JSON labels
 * (sorted, typed, null), operators meshgate does not record, and the compile errors with
 * the offset each points at. */
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

#include "accesslog.h"
#include "logformat.h"
#include "pool.h"

/* Istio's default text format (EnvoyTextLogFormat in istio's pilot). */
#define ISTIO_TEXT                                                                                 \
	"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "         \
	"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "                                \
	"%CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" "                \
	"%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "          \
	"\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "                \
	"\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% "                            \
	"%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "         \
	"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

static struct pool *pool;
static struct accesslog_entry e;
static char warned[512];

static int setup(void **state)
{
	(void)state;
	pool = pool_new();
	memset(&e, 0, sizeof(e));
	e.start.tv_sec = 1714558830; /* 2024-05-01T10:20:30Z */
	e.start.tv_nsec = 123456789;
	e.duration_us = 12345;
	e.upstream_time_us = 7000;
	e.method = "GET";
	e.method_len = 3;
	e.path = "/status/418?x=1";
	e.path_len = strlen(e.path);
	e.protocol = "HTTP/1.1";
	e.authority = "httpbin.example.com";
	e.authority_len = strlen(e.authority);
	e.user_agent = "curl/8.0";
	e.user_agent_len = 8;
	e.request_id = "req-1";
	e.request_id_len = 5;
	e.status = 418;
	e.flags = "-";
	e.details = "via_upstream";
	e.bytes_received = 0;
	e.bytes_sent = 135;
	e.upstream_host = "10.0.0.7:8000";
	e.upstream_cluster = "outbound|8000||httpbin.default.svc.cluster.local";
	e.upstream_local = "10.0.0.1:40000";
	e.downstream_local = "10.0.0.2:80";
	e.downstream_remote = "[2001:db8::1]:51000";
	e.route_name = "default";
	e.grpc_status = -1;
	e.attempts = 1;
	warned[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pool_free(pool);
	return 0;
}

static void warn(void *arg, size_t off, const char *name)
{
	size_t n = strlen(warned);

	(void)arg;
	snprintf(warned + n, sizeof(warned) - n, "%s%s@%zu", n > 0 ? " " : "", name, off);
}

static struct logformat *text(const char *s)
{
	char err[200] = "";
	size_t off = 0;
	struct logformat *f = logformat_text(pool, s, err, sizeof(err), &off, warn, NULL);

	if (f == NULL)
		fail_msg("\"%s\": %s at %zu", s, err, off);
	return f;
}

static const char *render(const struct logformat *f)
{
	static char line[ACCESSLOG_LINE_MAX + 1];
	size_t n = logformat_render(f, &e, line);

	line[n] = '\0';
	return line;
}

/* The compile error of s: its message must contain want, at offset want_off. */
static void bad(const char *s, const char *want, size_t want_off)
{
	char err[200] = "";
	size_t off = 9999;

	assert_null(logformat_text(pool, s, err, sizeof(err), &off, warn, NULL));
	if (strstr(err, want) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", s, err, want);
	assert_int_equal(off, want_off);
}

/* The built-in text line (accesslog.c) of e, through a file. */
static const char *builtin_line(void)
{
	static char line[ACCESSLOG_LINE_MAX + 1];
	char path[] = "/tmp/mg-test-logformat-XXXXXX";
	int fd = mkstemp(path);
	struct accesslog_buf *b = accesslog_buf_new();
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(accesslog_open(path, ACCESSLOG_TEXT), 0);
	accesslog_write(b, &e, NULL);
	accesslog_flush(b);
	accesslog_close();
	n = pread(fd, line, sizeof(line) - 1, 0);
	assert_true(n > 0);
	line[n] = '\0';
	close(fd);
	unlink(path);
	accesslog_buf_free(b);
	return line;
}

static void test_istio_default_is_builtin(void **state)
{
	struct logformat *f;
	const char *want;

	(void)state;
	f = text(ISTIO_TEXT);
	want = builtin_line();
	assert_string_equal(render(f), want);
	assert_string_equal(
	    warned, "CONNECTION_TERMINATION_DETAILS@135 UPSTREAM_TRANSPORT_FAILURE_REASON@169");
	/* a TCP relay's line: no request, status 0 */
	e.method = NULL;
	e.path = NULL;
	e.authority = NULL;
	e.user_agent = NULL;
	e.request_id = NULL;
	e.protocol = "-";
	e.status = 0;
	e.flags = "UF";
	e.details = "-";
	e.upstream_time_us = -1;
	e.requested_server_name = "db.example.com";
	e.requested_server_name_len = 14;
	want = builtin_line();
	assert_string_equal(render(f), want);
	assert_non_null(strstr(want, "\"- - -\" 0 UF"));
}

static void test_operators(void **state)
{
	(void)state;
	assert_string_equal(render(text("%START_TIME%")), "2024-05-01T10:20:30.123Z\n");
	assert_string_equal(render(text("%START_TIME(%Y/%m/%d %H:%M:%S)%|%START_TIME(%s.%3f)%")),
			    "2024/05/01 10:20:30|1714558830.123\n");
	assert_string_equal(render(text("%START_TIME(%6f %f %%)%")), "123456 123456789 %\n");
	assert_string_equal(
	    render(text("%DURATION% %RESPONSE_CODE% %BYTES_SENT% %BYTES_RECEIVED%")),
	    "12 418 135 0\n");
	assert_string_equal(
	    render(text("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
			"%DOWNSTREAM_REMOTE_PORT% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS%")),
	    "[2001:db8::1]:51000 2001:db8::1 51000 [2001:db8::1]:51000\n");
	assert_string_equal(
	    render(text("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%:%UPSTREAM_REMOTE_PORT% "
			"%UPSTREAM_LOCAL_PORT% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%")),
	    "10.0.0.7:8000 40000 10.0.0.2\n");
	assert_string_equal(
	    render(text("%ROUTE_NAME% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %PROTOCOL%")),
	    "default 1 HTTP/1.1\n");
	/* no newline is added to a format that ends with one */
	assert_string_equal(render(text("a\n")), "a\n");
	/* text between operators is as written, quotes included */
	assert_string_equal(render(text("\"x\" [y]")), "\"x\" [y]\n");
}

static void test_flags_details_grpc(void **state)
{
	(void)state;
	e.flags = "UF,URX";
	e.details = "upstream_reset_before_response_started{connection failure}";
	assert_string_equal(render(text("%RESPONSE_FLAGS% %RESPONSE_FLAGS_LONG%")),
			    "UF,URX UpstreamConnectionFailure,UpstreamRetryLimitExceeded\n");
	/* Envoy writes response code details with underscores for spaces */
	assert_string_equal(render(text("%RESPONSE_CODE_DETAILS%")),
			    "upstream_reset_before_response_started{connection_failure}\n");
	e.flags = "-";
	assert_string_equal(render(text("%RESPONSE_FLAGS%|%RESPONSE_FLAGS_LONG%")), "-|-\n");
	assert_string_equal(render(text("%GRPC_STATUS%")), "-\n");
	e.grpc_status = 1;
	assert_string_equal(render(text("%GRPC_STATUS% %GRPC_STATUS(SNAKE_STRING)% "
					"%GRPC_STATUS(NUMBER)% %GRPC_STATUS_NUMBER% "
					"%GRPC_STATUS(CAMEL_STRING)%")),
			    "Canceled CANCELLED 1 1 Canceled\n");
	e.grpc_status = 16;
	assert_string_equal(render(text("%GRPC_STATUS%")), "Unauthenticated\n");
	e.grpc_status = 99; /* no name: the number */
	assert_string_equal(render(text("%GRPC_STATUS%")), "99\n");
}

static void test_req_resp(void **state)
{
	struct logformat *f;
	static const char *req_names[] = {"x-custom", "x-other"};
	static const char *resp_names[] = {"x-reply"};
	const char *const *names[2] = {req_names, resp_names};
	const size_t n[2] = {2, 1};
	const char *kept_req[2] = {"hello world", NULL};
	uint32_t kept_req_len[2] = {11, 0};
	const char *kept_resp[1] = {"yes"};
	uint32_t kept_resp_len[1] = {3};
	const char *got[8];

	(void)state;
	assert_string_equal(render(text("%REQ(:METHOD)% %REQ(:PATH)% %REQ(HOST)% %REQ(:SCHEME)% "
					"%RESP(:STATUS)% %RESP(x-envoy-upstream-service-time)%")),
			    "GET /status/418?x=1 httpbin.example.com http 418 7\n");
	assert_string_equal(render(text("%REQ_WITHOUT_QUERY(:PATH)% %REQ(:PATH):7%")),
			    "/status/418 /status\n");
	f = text("%REQ(X-Custom)% %REQ(x-other?User-Agent)% %RESP(X-Reply)% %REQ(x-custom):5% "
		 "%RESP(x-missing)% %REQ(X-CUSTOM?X-OTHER)%");
	/* the names the format reads from kept copies, lower case, once each */
	assert_int_equal(logformat_header_names(f, 0, got, 8), 2);
	assert_string_equal(got[0], "x-custom");
	assert_string_equal(got[1], "x-other");
	assert_int_equal(logformat_header_names(f, 1, got, 8), 2);
	assert_string_equal(got[0], "x-reply");
	assert_string_equal(got[1], "x-missing");
	/* nothing kept: "-", and the fallback to a field the entry has */
	assert_string_equal(render(f), "- curl/8.0 - - - -\n");
	logformat_bind(f, names, n);
	assert_string_equal(render(f), "- curl/8.0 - - - -\n"); /* bound, none kept */
	e.kept[0] = kept_req;
	e.kept_len[0] = kept_req_len;
	e.kept[1] = kept_resp;
	e.kept_len[1] = kept_resp_len;
	assert_string_equal(render(f), "hello world curl/8.0 yes hello - hello world\n");
	/* values are escaped as the built-in line escapes them */
	kept_req[0] = "a\"b\x01";
	kept_req_len[0] = 4;
	assert_string_equal(render(text("%REQ(x-custom)%")), "-\n"); /* a new format: unbound */
	assert_string_equal(render(f), "a\\\"b\\x01 curl/8.0 yes a\\\"b\\x01 - a\\\"b\\x01\n");
}

static void test_json(void **state)
{
	struct logformat *f = logformat_json(pool, 6);
	char err[200];
	size_t off;
	static const char *const labels[][2] = {
	    {"status", "%RESPONSE_CODE%"},
	    {"path", "%REQ(:PATH)%"},
	    {"grpc", "%GRPC_STATUS%"},
	    {"mixed", "code=%RESPONSE_CODE% flags=%RESPONSE_FLAGS%"},
	    {"authority", "%REQ(:AUTHORITY)%"},
	    {"duration", "%REQUEST_DURATION%"},
	};

	(void)state;
	for (size_t i = 0; i < 6; i++)
		assert_true(logformat_json_label(pool, f, labels[i][0], labels[i][1], err,
						 sizeof(err), &off, warn, NULL));
	/* keys sorted; one operator: typed (number, string, null); mixed: a string with "-" */
	assert_string_equal(render(f), "{\"authority\":\"httpbin.example.com\",\"duration\":null,"
				       "\"grpc\":null,\"mixed\":\"code=418 flags=-\","
				       "\"path\":\"/status/418?x=1\",\"status\":418}\n");
	assert_string_equal(warned, "REQUEST_DURATION@0");
	/* JSON escapes */
	e.path = "/a\"b\n";
	e.path_len = 5;
	e.grpc_status = 0;
	assert_non_null(strstr(render(f), "\"path\":\"/a\\\"b\\u000a\""));
	assert_non_null(strstr(render(f), "\"grpc\":\"OK\""));
	/* a label's value that does not compile */
	f = logformat_json(pool, 1);
	assert_false(
	    logformat_json_label(pool, f, "x", "%NOPE%", err, sizeof(err), &off, warn, NULL));
	assert_non_null(strstr(err, "unknown command operator %NOPE%"));
	assert_int_equal(off, 1);
}

static void test_unrecorded(void **state)
{
	(void)state;
	assert_string_equal(
	    render(text("%UPSTREAM_PROTOCOL% %DYNAMIC_METADATA(istio.mixer:status)% "
			"%CONNECTION_ID%")),
	    "- - -\n");
	assert_string_equal(warned, "UPSTREAM_PROTOCOL@0 DYNAMIC_METADATA@20 CONNECTION_ID@59");
}

static void test_tls_absent(void **state)
{
	(void)state;
	/* no TLS: every TLS operator has no value */
	assert_string_equal(
	    render(text("%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% "
			"%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_PEER_SUBJECT% "
			"%DOWNSTREAM_PEER_FINGERPRINT_256% %DOWNSTREAM_LOCAL_SUBJECT% "
			"%REQUESTED_SERVER_NAME%")),
	    "- - - - - - -\n");
}

static void test_constants(void **state)
{
	char host[256];

	(void)state;
	setenv("MG_TEST_LOGFORMAT", "from-env", 1);
	assert_string_equal(
	    render(text("%ENVIRONMENT(MG_TEST_LOGFORMAT)%|%ENVIRONMENT(MG_NONE_X)%")),
	    "from-env|-\n");
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_string_equal(render(text("%HOSTNAME%")), strcat(host, "\n"));
}

static void test_long_line(void **state)
{
	char big[6000];
	const char *line;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	e.path = big;
	e.path_len = strlen(big);
	line = render(text("%REQ(:PATH)% end"));
	/* cut short of the line's bound (the writer adds the newline then) */
	assert_true(strlen(line) < ACCESSLOG_LINE_MAX);
	assert_int_equal(line[0], 'x');
}

static void test_errors(void **state)
{
	(void)state;
	bad("abc %NOPE% x", "unknown command operator %NOPE%", 5);
	bad("%", "a '%' that starts no command operator", 0);
	bad("50% off", "a '%' that starts no command operator", 2);
	bad("%REQ%", "%REQ% takes an argument", 1);
	bad("%DURATION(x)%", "%DURATION% takes no argument", 9);
	bad("%REQ(:PATH%", "'(' without its ')'", 4);
	bad("%REQ(:PATH):%", "expected a length after ':'", 12);
	bad("%REQ(:PATH):0%", "expected a length after ':'", 12);
	bad("%REQ(a b)%", "expected a header name", 5);
	bad("%REQ(?x)%", "expected a header name", 5);
	bad("%DURATION", "expected '%' closing the command operator", 9);
	bad("%START_TIME(%Y-%m-%d %H:%M:%S %Y-%m-%d %H:%M:%S %Y-%m-%d %H:%M:%S %Y-%m-%d %H)%",
	    "START_TIME format longer than 64 bytes", 12);
	bad("%GRPC_STATUS(CAMEL)%", "GRPC_STATUS takes CAMEL_STRING, SNAKE_STRING or NUMBER", 13);
	bad("%THIS_NAME_IS_MUCH_TOO_LONG_TO_BE_ANY_OPERATOR_THAT_ENVOY_HAS_AT_ALL%",
	    "unknown command operator", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_istio_default_is_builtin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_operators, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_details_grpc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_req_resp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unrecorded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_constants, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
