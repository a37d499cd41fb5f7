/* cel.c: Istio's access-log filter examples against a fake exchange, absent attributes and
 * headers, the commutative error absorption of && and ||, CEL's typing (heterogeneous
 * numeric comparison, no mixed arithmetic), literals, durations, regexes, and the compile
 * errors with the offset each one points at. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "cel.h"
#include "pool.h"

struct header {
	const char *name, *value;
};

struct fake {
	struct cel_value val[CEL_ATTR_COUNT];
	bool present[CEL_ATTR_COUNT];
	struct header req[8], resp[8]; /* ended by a NULL name */
	uint64_t seen;                 /* attributes looked up */
};

static struct fake fx;
static struct pool *pool;

static void set_str(enum cel_attr a, const char *s)
{
	fx.val[a].type = CEL_STRING;
	fx.val[a].v.str.s = s;
	fx.val[a].v.str.len = strlen(s);
	fx.present[a] = true;
}

static void set_int(enum cel_attr a, int64_t i)
{
	fx.val[a].type = CEL_INT;
	fx.val[a].v.i = i;
	fx.present[a] = true;
}

/* An HTTP/1.1 POST to /login that got a 401 after 2.5 s, over mTLS. */
static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	set_str(CEL_REQ_PATH, "/login?next=/");
	set_str(CEL_REQ_URL_PATH, "/login");
	set_str(CEL_REQ_HOST, "example.com");
	set_str(CEL_REQ_SCHEME, "https");
	set_str(CEL_REQ_METHOD, "POST");
	set_str(CEL_REQ_USERAGENT, "curl/8.5.0");
	set_str(CEL_REQ_ID, "abc-123");
	set_str(CEL_REQ_PROTOCOL, "HTTP/1.1");
	fx.val[CEL_REQ_DURATION].type = CEL_DURATION;
	fx.val[CEL_REQ_DURATION].v.duration_ns = 2500000000;
	fx.present[CEL_REQ_DURATION] = true;
	set_int(CEL_REQ_SIZE, 10);
	set_int(CEL_REQ_TOTAL_SIZE, 300);
	set_int(CEL_RESP_CODE, 401);
	set_str(CEL_RESP_CODE_DETAILS, "via_upstream");
	set_int(CEL_RESP_FLAGS, 0);
	set_int(CEL_RESP_SIZE, 20);
	set_str(CEL_SRC_ADDRESS, "10.0.0.1:5555");
	set_int(CEL_SRC_PORT, 5555);
	set_str(CEL_DST_ADDRESS, "10.0.0.2:8080");
	set_int(CEL_DST_PORT, 8080);
	fx.val[CEL_CONN_MTLS].type = CEL_BOOL;
	fx.val[CEL_CONN_MTLS].v.b = true;
	fx.present[CEL_CONN_MTLS] = true;
	set_str(CEL_CONN_SNI, "example.com");
	set_str(CEL_CONN_TLS_VERSION, "TLSv1.3");
	set_str(CEL_UPSTREAM_ADDRESS, "10.1.0.1:80");
	set_str(CEL_XDS_CLUSTER, "outbound|80||svc.default.svc.cluster.local");
	set_str(CEL_XDS_ROUTE, "default");
	fx.req[0] = (struct header){"user-agent", "curl/8.5.0"};
	fx.req[1] = (struct header){"x-user-type", "dev"};
	fx.req[2] = (struct header){"x-multi", "a,b"};
	fx.resp[0] = (struct header){"content-type", "text/html"};
	pool = pool_new();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pool_free(pool);
	pool = NULL;
	return 0;
}

static bool fake_lookup(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
			struct cel_value *out)
{
	struct fake *f = ctx;
	const struct header *h;

	assert_true((unsigned)attr < CEL_ATTR_COUNT);
	f->seen |= UINT64_C(1) << attr;
	if (attr != CEL_REQ_HEADERS && attr != CEL_RESP_HEADERS) {
		assert_null(key);
		if (!f->present[attr])
			return false;
		*out = f->val[attr];
		return true;
	}
	assert_non_null(key);
	for (h = attr == CEL_REQ_HEADERS ? f->req : f->resp; h->name != NULL; h++)
		if (strlen(h->name) == keylen && strncasecmp(h->name, key, keylen) == 0) {
			out->type = CEL_STRING;
			out->v.str.s = h->value;
			out->v.str.len = strlen(h->value);
			return true;
		}
	return false;
}

static struct cel_expr *compile(const char *src)
{
	char err[256];
	size_t off = 0;
	struct cel_expr *e = cel_compile(pool, src, err, sizeof(err), &off);

	if (e == NULL)
		fail_msg("%s: compile error at %zu: %s", src, off, err);
	return e;
}

static bool run(const char *src)
{
	struct cel_expr *e = compile(src);
	bool r;

	fx.seen = 0;
	r = cel_eval(e, fake_lookup, &fx);
	/* the caller may skip building what the expression does not read */
	if ((fx.seen & ~cel_attrs_used(e)) != 0)
		fail_msg("%s: looked up attributes outside cel_attrs_used", src);
	return r;
}

#define YES(src)                                                                                   \
	do {                                                                                       \
		if (!run(src))                                                                     \
			fail_msg("expected true: %s", src);                                        \
	} while (0)
#define NO(src)                                                                                    \
	do {                                                                                       \
		if (run(src))                                                                      \
			fail_msg("expected false: %s", src);                                       \
	} while (0)
/* An evaluation error: false, and so is its negation. */
#define ERR(src)                                                                                   \
	do {                                                                                       \
		NO(src);                                                                           \
		NO("!(" src ")");                                                                  \
	} while (0)

static void refuse(const char *src, size_t want_off, const char *want_msg)
{
	char err[256];
	size_t off = 12345;

	if (cel_compile(pool, src, err, sizeof(err), &off) != NULL)
		fail_msg("compiled, but should not: %s", src);
	if (off != want_off || strstr(err, want_msg) == NULL)
		fail_msg("%s: got \"%s\" at %zu, want \"%s\" at %zu", src, err, off, want_msg,
			 want_off);
	assert_null(strchr(err, '\n'));
}

static void test_istio_examples(void **state)
{
	(void)state;
	YES("response.code >= 400");
	YES("response.code >= 500 || response.code == 401 || response.code == 403");
	YES("request.url_path.contains('login') && request.headers['x-user-type'] == 'dev'");
	YES("!(request.url_path.startsWith('/healthz'))");
	YES("response.code in [401, 403]");
	YES("request.duration > duration('2s')");
	YES("'x-user-type' in request.headers");
	NO("'x-debug' in request.headers");
	YES("request.method == \"POST\" && response.code != 200");
	YES("response.code >= 400 ? true : false");
	NO("xds.cluster_name == 'BlackHoleCluster'");
	YES("connection.mtls");
	YES("request.headers['user-agent'].matches('^curl/')");

	set_int(CEL_RESP_CODE, 200);
	set_str(CEL_XDS_CLUSTER, "BlackHoleCluster");
	set_str(CEL_REQ_URL_PATH, "/healthz/ready");
	fx.val[CEL_CONN_MTLS].v.b = false;
	NO("response.code >= 400");
	NO("response.code >= 500 || response.code == 401 || response.code == 403");
	NO("!(request.url_path.startsWith('/healthz'))");
	NO("response.code in [401, 403]");
	NO("request.method == \"POST\" && response.code != 200");
	NO("response.code >= 400 ? true : false");
	YES("xds.cluster_name == 'BlackHoleCluster'");
	NO("connection.mtls");
	fx.req[0].value = "Mozilla/5.0 curl/8";
	NO("request.headers['user-agent'].matches('^curl/')");
	YES("request.headers['user-agent'].matches('curl/')"); /* a search, as RE2 PartialMatch */
	set_int(CEL_RESP_CODE, 503);
	YES("response.code >= 500 || response.code == 401 || response.code == 403");
	fx.val[CEL_REQ_DURATION].v.duration_ns = 2000000000;
	NO("request.duration > duration('2s')");
	YES("request.duration >= duration(\"2s\")");
}

static void test_absent(void **state)
{
	(void)state;
	ERR("request.headers['x-debug'] == 'on'");
	ERR("request.headers.nope == ''");
	ERR("request.referer == ''");
	ERR("response.grpc_status == 0");
	NO("has(request.referer)");
	YES("has(request.useragent)");
	NO("has(request.headers.accept)");
	YES("has(request.headers.host) || true");
	YES("has(request.headers)");
	YES("'X-User-Type' in request.headers"); /* the lookup compares case-insensitively */
	YES("request.headers['x-multi'] == 'a,b'");
	YES("response.headers['content-type'].startsWith('text/')");
	NO("'content-type' in request.headers");
	/* a key given by an expression */
	fx.req[3] = (struct header){"example.com", "yes"};
	YES("request.headers[request.host] == 'yes'");
	ERR("request.headers[response.code] == 'yes'");
	NO("response.code in request.headers");
	YES("!(response.code in request.headers)");
}

static void test_error_absorption(void **state)
{
	(void)state;
	/* false && error is false, whichever side the error is on; likewise true || error */
	NO("false && request.headers['nope'] == 'x'");
	NO("request.headers['nope'] == 'x' && false");
	YES("!(request.headers['nope'] == 'x' && false)");
	YES("true || request.headers['nope'] == 'x'");
	YES("request.headers['nope'] == 'x' || true");
	YES("request.headers['nope'] == 'x' || response.code == 401");
	ERR("request.headers['nope'] == 'x' || false");
	ERR("true && request.headers['nope'] == 'x'");
	ERR("request.headers['nope'] == 'x' && true");
	/* a non-bool operand is an error too, and is absorbed the same way */
	YES("1 || true");
	NO("'a' && false");
	YES("!('a' && false)");
	ERR("1 && true");
	ERR("false || 'a'");
	ERR("request.headers['a'] == 'x' || request.headers['b'] == 'x' || false");
	YES("request.headers['a'] == 'x' || request.headers['b'] == 'x' || connection.mtls");
	/* a conditional takes only the branch it chooses */
	YES("true ? true : request.headers['nope'] == 'x'");
	ERR("request.headers['nope'] == 'x' ? true : true");
	ERR("1 ? true : false");
	YES("response.code == 401 ? (response.code == 401 ? true : false) : false");
	YES("false ? false : response.code == 401 ? true : false");
}

static void test_types(void **state)
{
	(void)state;
	/* heterogeneous equality: values of different kinds are unequal, not an error */
	NO("response.code == '401'");
	YES("response.code != '401'");
	NO("connection.mtls == 1");
	YES("null == null");
	YES("null != 0");
	/* ordering across kinds is an error */
	ERR("response.code < '500'");
	ERR("connection.mtls < 1");
	ERR("request.duration > 2");
	ERR("null < null");
	/* numbers compare by value across int, uint and double */
	YES("response.code == 401u");
	YES("response.code == 401.0");
	YES("response.code < 401.5 && response.code > 400.5");
	YES("-1 < 0u");
	YES("9223372036854775807 < 9223372036854775808u");
	YES("18446744073709551615u > 9223372036854775807");
	YES("9223372036854775807 < 9223372036854775808.0");
	YES("-9223372036854775808 == -9223372036854775808.0");
	YES("18446744073709551615u < 18446744073709551616.0");
	YES("2.5 > 2 && -2.5 < -2 && 2.0 == 2u");
	YES("401u in [401]");
	YES("401.0 in [400, 401]");
	/* NaN is unequal to everything and unordered */
	NO("0.0 / 0.0 == 0.0 / 0.0");
	YES("0.0 / 0.0 != 0.0 / 0.0");
	NO("0.0 / 0.0 < 1.0");
	YES("!(0.0 / 0.0 >= 1)");
	/* other orderings */
	YES("false < true && 'a' < 'b' && 'ab' > 'a' && '' < 'a' && 'b' >= 'b'");
	YES("duration('1s') < duration('2s')");
	YES("'\\u00e9' > 'z'"); /* code point order is UTF-8 byte order */
}

static void test_arithmetic(void **state)
{
	(void)state;
	YES("7 / 2 == 3 && -7 / 2 == -3 && -7 % 3 == -1 && 7 % -3 == 1");
	YES("2 * 3 + 4 == 10 && 2 + 3 * 4 == 14 && (2 + 3) * 4 == 20 && 10 - 2 - 3 == 5");
	YES("7u / 2u == 3u && 7u % 4u == 3u && 2u * 3u == 6u && 3u - 2u == 1u");
	YES("1.5 * 2.0 == 3.0 && 3.0 / 2.0 == 1.5 && 0.5 + 0.25 == 0.75");
	YES("1.0 / 0.0 > 1e308");
	YES("0x10 == 16 && 0x10u == 16u && 0XfF == 255");
	YES("-9223372036854775808 < 0 && -0x8000000000000000 == -9223372036854775808");
	YES("--3 == 3 && -(-3) == 3 && !!true && -3 + 1 == -2");
	YES("response.code - 1 == 400 && response.code / 100 == 4 && response.code % 100 == 1");
	YES("request.duration - duration('1s') == duration('1.5s')");
	YES("request.duration + duration('500ms') == duration('3s')");
	ERR("1 / 0 == 0");
	ERR("1 % 0 == 0");
	ERR("1u / 0u == 0u");
	ERR("9223372036854775807 + 1 > 0");
	ERR("-9223372036854775808 - 1 < 0");
	ERR("-(-9223372036854775808) > 0");
	ERR("-9223372036854775808 / -1 > 0");
	ERR("-9223372036854775808 % -1 == 0");
	ERR("4611686018427387904 * 2 > 0");
	ERR("2u - 3u == 0u");
	ERR("18446744073709551615u + 1u == 0u");
	ERR("1 + 1u == 2"); /* no mixed arithmetic */
	ERR("1 + 1.0 == 2");
	ERR("2.5 % 1.0 == 0.5");
	ERR("-1u == 0");
	ERR("-'a' == 'a'");
	ERR("!1");
	ERR("request.duration * 2 > duration('1s')");
	ERR("duration('9223372036s') + duration('1s') > duration('0')");
	ERR("true + true");
}

static void test_literals(void **state)
{
	(void)state;
	YES("'\\x41\\101\\u0041\\U00000041' == \"AAAA\"");
	YES("'\\xe9' == '\\u00e9' && size('\\xe9') == 1");
	YES("'a\\'b' == \"a'b\" && \"a\\\"b\" == 'a\"b' && '\\\\' == \"\\\\\"");
	YES("'\\a\\b\\f\\n\\r\\t\\v\\`\\?'.size() == 9");
	YES("r'\\d+' == '\\\\d+' && R\"\\n\" == '\\\\n'");
	YES("'''it's''' == \"it's\" && \"\"\"a\nb\"\"\" == 'a\\nb'");
	YES("size('h\xc3\xa9llo') == 5 && size('') == 0 && 'abc'.size() == 3");
	YES("1.5e3 == 1500.0 && 15E-1 == 1.5 && .5 == 0.5 && 1e2 == 100.0");
	YES("true != false && null == null");
	YES("request.url_path.size() == 6 // a comment\n && true");
	YES("\t response.code\n==\r401 ");
}

static void test_strings(void **state)
{
	(void)state;
	YES("request.path.contains('next') && request.path.contains('') && ''.contains('')");
	YES("request.path.startsWith('/login?') && request.path.startsWith('')");
	YES("request.path.endsWith('=/') && request.path.endsWith('')");
	NO("'ab'.startsWith('abc') || 'ab'.endsWith('xab') || 'ab'.contains('abc')");
	YES("'abcab'.endsWith('cab') && 'abcab'.contains('bca')");
	YES("request.url_path.contains(request.url_path)");
	ERR("response.code.contains('4')");
	ERR("request.path.contains(1)");
	ERR("size(response.code) == 3");
	YES("source.address.startsWith('10.') && source.port == 5555 && destination.port == 8080");
	YES("upstream.address == '10.1.0.1:80' && xds.route_name == 'default'");
	YES("connection.requested_server_name == request.host");
	YES("connection.tls_version == 'TLSv1.3' && request.scheme == 'https'");
	YES("request.protocol == 'HTTP/1.1' && request.id == 'abc-123'");
	YES("request.size == 10 && request.total_size == 300 && response.size == 20");
	YES("response.code_details == 'via_upstream' && response.flags == 0");
	YES("request.useragent.matches('^curl/[0-9.]+$') && matches(request.path, 'log')");
	NO("request.path.matches('^login')");
	YES("request.path.matches('(?i)LOGIN')");
	YES("'\\u00e9'.matches('^.$')"); /* '.' is one code point */
}

static void test_durations(void **state)
{
	(void)state;
	YES("duration('1.5s') == duration('1500ms') && duration('1h30m') == duration('90m')");
	YES("duration('1us') == duration('1000ns') && duration('1\xc2\xb5s') == duration('1us')");
	YES("duration('-1.5s') < duration('0') && duration('+2s') == duration('2s')");
	YES("duration('.5s') == duration('500ms') && duration('5.s') == duration('5s')");
	YES("duration('2h45m30.5s') == duration('9930500ms')");
	YES("duration('9223372036854775807ns') > duration('0')");
	YES("duration('-9223372036854775808ns') < duration('0')");
	YES("duration('0.000000001s') == duration('1ns')");
	YES("request.duration < duration('1h') && request.duration != duration('2s')");
	refuse("duration('2') > duration('1s')", 9, "invalid duration");
	refuse("duration('1x') > duration('1s')", 9, "invalid duration");
	refuse("duration('') > duration('1s')", 9, "invalid duration");
	refuse("duration('s') > duration('1s')", 9, "invalid duration");
	refuse("duration('-') > duration('1s')", 9, "invalid duration");
	refuse("duration('1s ') > duration('1s')", 9, "invalid duration");
	refuse("duration('3000000h') > duration('1s')", 9, "invalid duration");
	refuse("duration('9223372036854775808ns') > duration('1s')", 9, "invalid duration");
	refuse("duration(request.path) > duration('1s')", 9, "string literal");
	refuse("duration(2) > duration('1s')", 9, "string literal");
	refuse("duration('1s', '2s') > duration('1s')", 0, "takes 1 argument, not 2");
}

static void test_conversions(void **state)
{
	(void)state;
	YES("int('42') == 42 && int('-42') == -42 && int('+7') == 7");
	YES("int('9223372036854775807') == 9223372036854775807");
	YES("int('-9223372036854775808') == -9223372036854775808");
	YES("uint('18446744073709551615') == 18446744073709551615u");
	YES("int(2.9) == 2 && int(-2.9) == -2 && int(7u) == 7 && int(response.code) == 401");
	YES("uint(1) == 1u && uint(2.5) == 2u && uint(3u) == 3u");
	YES("double('1.5') == 1.5 && double(2) == 2.0 && double(3u) == 3.0 && double(0.5) == 0.5");
	YES("int(request.headers['x-user-type'] == 'dev' ? '1' : '0') == 1");
	ERR("int('x') == 0");
	ERR("int('') == 0");
	ERR("int('9223372036854775808') > 0");
	ERR("int('1 ') == 1");
	ERR("uint('-1') == 0u");
	ERR("uint('18446744073709551616') > 0u");
	ERR("uint(-1) == 1u");
	ERR("uint(-0.5) == 0u");
	ERR("int(9223372036854775808u) > 0");
	ERR("int(1e19) > 0");
	ERR("int(0.0 / 0.0) == 0");
	ERR("double('x') == 0.0");
	ERR("double(' 1') == 1.0");
	ERR("int(true) == 1");
	ERR("int(request.duration) > 0");
}

static void test_in_list(void **state)
{
	(void)state;
	YES("'POST' in ['GET', 'POST'] && !('PUT' in ['GET', 'POST'])");
	NO("response.code in []");
	NO("response.code in [400, 403, 'x']");
	YES("response.code in [response.code - 1 + 1]");
	ERR("response.code in [401, request.headers['nope']]");
}

/* (((...(true)...))) n deep */
static const char *parens(char *src, int n)
{
	char *w = src;

	for (int k = 0; k < n; k++)
		*w++ = '(';
	w += sprintf(w, "true");
	for (int k = 0; k < n; k++)
		*w++ = ')';
	*w = '\0';
	return src;
}

static void test_compile_errors(void **state)
{
	char src[CEL_MAX_LEN + 64], *w;

	(void)state;
	refuse("response.code >=", 16, "unexpected end of expression");
	refuse("request.nope == 1", 8, "unknown attribute request.nope (request has: path, ");
	refuse("foo(1)", 0, "unknown function 'foo' (known: has, size");
	refuse("'a' +", 5, "unexpected end of expression");
	refuse("'a' + 'b' == 'ab'", 4, "string concatenation is not supported");
	refuse("request.path + request.host == 'x'", 13, "string concatenation");
	refuse("request.path == 'abc", 16, "unterminated string");
	refuse("request.path == \"abc\n\" ", 16, "unterminated string");
	refuse("'''abc''", 0, "unterminated string");
	refuse("", 0, "unexpected end of expression");
	refuse("   ", 3, "unexpected end of expression");
	refuse("response.code = 1", 14, "'=' is not an operator (did you mean '=='?)");
	refuse("connection.mtls & true", 16, "did you mean '&&'");
	refuse("connection.mtls | true", 16, "did you mean '||'");
	refuse("request", 0, "'request' is not a value: select an attribute such as request.path");
	refuse("response == 1", 0, "such as response.code");
	refuse("request.headers", 0, "request.headers is a map");
	refuse("size(response.headers) > 0", 5, "response.headers is a map");
	refuse("[1, 2]", 0, "a list literal is only supported on the right of 'in'");
	refuse("[1, 2] == [1, 2] || true", 0, "a list literal");
	refuse("[1, 2, 3,].size() == 3 || true", 0, "a list literal");
	refuse("has(request.headers['x-debug'])", 4, "has() takes a field selection");
	refuse("has(response.code == 1)", 4, "has() takes a field selection");
	refuse("has((request.path))", 4, "has() takes a field selection");
	refuse("has(request)", 4, "has() takes a field selection");
	refuse("has()", 0, "has() takes 1 argument, not 0");
	refuse("request.path.foo()", 13, "unknown function 'foo'");
	refuse("request.path.size(1) == 1", 13, "size() takes 0 arguments, not 1");
	refuse("request.path.contains() ", 13, "contains() takes 1 argument, not 0");
	refuse("response.code.x == 1", 14, "field selection is only supported on attributes");
	refuse("request.path[0] == 'a'", 12, "only request.headers and response.headers");
	refuse("x == 1", 0, "unknown identifier 'x' (known: request, response");
	refuse("1 in 2", 5, "the right of 'in' must be a list literal or a header map");
	refuse("{'a': 1}", 0, "map literals are not supported");
	refuse("b'abc' == b'abc'", 0, "bytes literals are not supported");
	refuse("rb'abc' == ''", 0, "bytes literals are not supported");
	refuse("request.path == '\\q'", 17, "invalid escape sequence '\\q'");
	refuse("request.path == 'a\\x4'", 18, "\\x needs 2 hex digits");
	refuse("request.path == '\\ud800'", 17, "escape names no Unicode character (U+D800)");
	refuse("request.path == '\\U00110000'", 17, "no Unicode character");
	refuse("request.path == '\\18'", 17, "octal escape needs 3 digits");
	refuse("9223372036854775808 > 0", 0, "int literal out of range");
	refuse("-9223372036854775809 < 0", 1, "int literal out of range");
	refuse("18446744073709551616u > 0u", 0, "uint literal out of range");
	refuse("0x10000000000000000 > 0", 0, "int literal out of range");
	refuse("1e999 > 0.0", 0, "double literal out of range");
	refuse("123abc", 0, "invalid number literal");
	refuse("0x == 0", 0, "0x needs hex digits");
	refuse("request.path.matches('(')", 21, "invalid regular expression: missing closing");
	refuse("request.path.matches('(?=a)')", 21, "lookahead");
	refuse("request.path.matches('a\\x00')", 21, "cannot contain NUL");
	refuse("request.path.matches(request.host)", 21, "matches() takes a string literal");
	refuse("matches(request.path)", 0, "matches() takes 2 arguments, not 1");
	refuse("string(response.code) == '401'", 0, "string() is not supported");
	refuse("timestamp('2024-01-01T00:00:00Z') > 0", 0, "unknown function 'timestamp'");
	refuse("true true", 5, "unexpected 'true'");
	refuse("(true", 5, "unexpected end of expression");
	refuse("true)", 4, "unexpected ')'");
	refuse("response.code >= 400 ? true", 27, "unexpected end of expression");
	refuse("response.code.", 14, "unexpected end of expression");
	refuse("response.code @ 1", 14, "unexpected character '@'");
	refuse("response.code \x01 1", 14, "unexpected byte 0x01");
	refuse("request.path == 'a' }", 20, "unexpected character '}'");
	refuse("request..path", 8, "unexpected '.'");
	refuse("request.in", 8, "unexpected 'in'");
	refuse("true '''a\nb'''", 5, "unexpected ''''a'"); /* one line (found by fuzz_cel) */

	/* 40 parentheses deep: refused at the 33rd; 32 are fine */
	refuse(parens(src, 40), 32, "more than 32 nested parentheses");
	YES(parens(src, 32));
	/* as deep with calls, brackets and conditionals */
	w = src;
	for (int k = 0; k < 33; k++)
		w += sprintf(w, "int(");
	refuse(src, 32 * 4 + 3, "more than 32 nested");
	/* unary operators */
	memset(src, '!', 40);
	strcpy(src + 40, "true");
	refuse(src, 32, "more than 32 unary operators");
	/* the tree's own depth, whatever the parentheses: 1+1+...+1, the 32nd '+' fails */
	w = src;
	w += sprintf(w, "1");
	for (int k = 0; k < 40; k++)
		w += sprintf(w, "+1");
	refuse(src, 63, "nested more than 32 levels");
	/* long chains of || stay flat */
	w = src;
	w += sprintf(w, "response.code == 1");
	for (int k = 0; k < 100; k++)
		w += sprintf(w, " || response.code == %d", 400 + k);
	YES(src);
	/* size */
	memset(src, ' ', CEL_MAX_LEN + 1);
	memcpy(src, "true", 4);
	src[CEL_MAX_LEN + 1] = '\0';
	refuse(src, CEL_MAX_LEN, "longer than 4096 bytes");
	src[CEL_MAX_LEN] = '\0';
	YES(src);
}

static void test_error_reporting_args(void **state)
{
	size_t off = 99;

	(void)state;
	/* err and err_off may be absent; err is emptied on success */
	assert_null(cel_compile(pool, "foo(1)", NULL, 0, NULL));
	assert_null(cel_compile(pool, "foo(1)", NULL, 0, &off));
	assert_int_equal(off, 0);
	{
		char err[8] = "junk";

		assert_non_null(cel_compile(pool, "true", err, sizeof(err), NULL));
		assert_string_equal(err, "");
		assert_null(cel_compile(pool, "request.nope", err, sizeof(err), NULL));
		assert_string_equal(err, "unknown"); /* truncated, still terminated */
	}
	assert_false(cel_eval(NULL, fake_lookup, &fx));
	assert_false(cel_eval(compile("true"), NULL, NULL));
	assert_int_equal(cel_attrs_used(NULL), 0);
}

static void test_attrs_used(void **state)
{
	struct cel_expr *e;

	(void)state;
	e = compile("response.code >= 400 && request.headers['x'] == 'a' || has(xds.route_name)");
	assert_int_equal(cel_attrs_used(e), UINT64_C(1) << CEL_RESP_CODE |
						UINT64_C(1) << CEL_REQ_HEADERS |
						UINT64_C(1) << CEL_XDS_ROUTE);
	assert_int_equal(cel_attrs_used(compile("true || 1 == 2")), 0);
	assert_int_equal(cel_attrs_used(compile("'a' in response.headers")),
			 UINT64_C(1) << CEL_RESP_HEADERS);
	/* every attribute by its name */
	for (unsigned a = 0; a < CEL_ATTR_COUNT; a++) {
		char src[64];

		snprintf(src, sizeof(src), "has(%s)", cel_attr_name((enum cel_attr)a));
		e = compile(src);
		assert_int_equal(cel_attrs_used(e), UINT64_C(1) << a);
		assert_true(cel_eval(e, fake_lookup, &fx) ==
			    (fx.present[a] || a == CEL_REQ_HEADERS || a == CEL_RESP_HEADERS));
	}
	assert_string_equal(cel_attr_name(CEL_CONN_SNI), "connection.requested_server_name");
	assert_string_equal(cel_attr_name(CEL_ATTR_COUNT), "?");
}

/* A lookup that breaks its contract: a type out of range, or a NULL string. */
static bool bad_lookup(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
		       struct cel_value *out)
{
	(void)key;
	(void)keylen;
	if (attr == CEL_RESP_CODE) {
		out->type = (enum cel_type)42;
		return true;
	}
	out->type = CEL_STRING;
	out->v.str.s = NULL;
	out->v.str.len = *(size_t *)ctx;
	return true;
}

static void test_lookup_contract(void **state)
{
	size_t len = 0;

	(void)state;
	assert_false(
	    cel_eval(compile("response.code == 42 || !(response.code == 42)"), bad_lookup, &len));
	assert_true(cel_eval(compile("request.path == ''"), bad_lookup, &len));
	len = 3;
	assert_false(
	    cel_eval(compile("request.path == '' || !(request.path == '')"), bad_lookup, &len));
}

/* The fake exchange, read-only: what worker threads share. */
static bool shared_lookup(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
			  struct cel_value *out)
{
	(void)ctx;
	if (attr == CEL_RESP_CODE) {
		*out = fx.val[attr];
		return true;
	}
	out->type = CEL_STRING;
	out->v.str.s = key != NULL && keylen == 10 ? "curl/8.5.0" : "";
	out->v.str.len = strlen(out->v.str.s);
	return true;
}

static bool absent_lookup(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
			  struct cel_value *out)
{
	(void)ctx, (void)attr, (void)key, (void)keylen, (void)out;
	return false;
}

/* Workers evaluate one compiled expression at once (matches() uses per-thread state). */
static void *eval_many(void *arg)
{
	const struct cel_expr *e = arg;
	long ok = 0;

	for (int k = 0; k < 2000; k++)
		ok += !cel_eval(e, absent_lookup, NULL) && cel_eval(e, shared_lookup, NULL);
	return (void *)ok;
}

static void test_threads(void **state)
{
	const struct cel_expr *e =
	    compile("request.headers['user-agent'].matches('^curl/[0-9]') && "
		    "response.code in [401, 403]");
	pthread_t t[4];

	(void)state;
	for (int k = 0; k < 4; k++)
		assert_int_equal(pthread_create(&t[k], NULL, eval_many, (void *)e), 0);
	for (int k = 0; k < 4; k++) {
		void *ok;

		assert_int_equal(pthread_join(t[k], &ok), 0);
		assert_int_equal((long)ok, 2000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_istio_examples, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_error_absorption, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arithmetic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conversions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compile_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_error_reporting_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attrs_used, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_contract, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
