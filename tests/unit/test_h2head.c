/* h2head: an HTTP/2 request's header list -> the HTTP/1.1 head the exchange parses (and
 * what RFC 9113 makes malformed), trailers -> chunked trailer lines, an HTTP/1.1 response
 * head -> the HEADERS field list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "h2head.h"

#define F(n, v)                                                                                    \
	{                                                                                          \
		n, sizeof(n) - 1, v, sizeof(v) - 1                                                 \
	}
#define REQ(...)                                                                                   \
	F(":method", "GET"), F(":scheme", "https"), F(":authority", "a.example"),                  \
	    F(":path", "/x"), ##__VA_ARGS__

/* The head h2head_request writes for fields, or NULL (and *why) when it refuses them. */
static char *head_of(const struct h2head_field *f, size_t n, bool end, struct h2head_req *info,
		     const char **why)
{
	struct evbuffer *out = evbuffer_new();
	char *s = NULL;

	assert_non_null(out);
	if (h2head_request(f, n, end, out, info, why) == 0) {
		size_t len = evbuffer_get_length(out);

		s = calloc(1, len + 1);
		assert_non_null(s);
		evbuffer_remove(out, s, len);
	}
	evbuffer_free(out);
	return s;
}

static void test_get(void **state)
{
	struct h2head_field f[] = {REQ(F("user-agent", "t/1"), F("cookie", "a=1"),
				       F("accept", "*/*"), F("cookie", "b=2"),
				       F("te", "trailers"))};
	struct h2head_req info;
	const char *why = NULL;
	char *h = head_of(f, 9, true, &info, &why);

	(void)state;
	assert_string_equal(h, "GET /x HTTP/1.1\r\nhost: a.example\r\nuser-agent: t/1\r\n"
			       "accept: */*\r\nte: trailers\r\ncookie: a=1; b=2\r\n"
			       "connection: close\r\n\r\n");
	assert_false(info.chunked);
	assert_false(info.head);
	free(h);
}

static void test_body_framing(void **state)
{
	struct h2head_field chunked[] = {REQ(F("content-type", "text/plain"))};
	struct h2head_field length[] = {REQ(F("content-length", "10"))};
	struct h2head_field head[] = {F(":method", "HEAD"), F(":scheme", "http"), F(":path", "/"),
				      F("host", "b.example")};
	struct h2head_req info;
	const char *why = NULL;
	char *h;

	(void)state;
	h = head_of(chunked, 5, false, &info, &why);
	assert_non_null(strstr(h, "transfer-encoding: chunked\r\n"));
	assert_true(info.chunked);
	free(h);
	h = head_of(length, 5, false, &info, &why);
	assert_null(strstr(h, "transfer-encoding"));
	assert_non_null(strstr(h, "content-length: 10\r\n"));
	assert_false(info.chunked);
	free(h);
	/* no :authority: the host field is the Host, once */
	h = head_of(head, 4, true, &info, &why);
	assert_string_equal(h, "HEAD / HTTP/1.1\r\nhost: b.example\r\nconnection: close\r\n\r\n");
	assert_true(info.head);
	free(h);
}

static void test_special_targets(void **state)
{
	struct h2head_field connect[] = {F(":method", "CONNECT"), F(":authority", "a.example:443")};
	struct h2head_field options[] = {F(":method", "OPTIONS"), F(":scheme", "http"),
					 F(":authority", "a"), F(":path", "*")};
	struct h2head_field star[] = {REQ()};
	struct h2head_req info;
	const char *why = NULL;
	char *h;

	(void)state;
	h = head_of(connect, 2, true, &info, &why);
	assert_string_equal(h, "CONNECT a.example:443 HTTP/1.1\r\nhost: a.example:443\r\n"
			       "connection: close\r\n\r\n");
	free(h);
	h = head_of(options, 4, true, &info, &why);
	assert_non_null(h);
	assert_memory_equal(h, "OPTIONS * HTTP/1.1\r\n", 20);
	free(h);
	star[3] = (struct h2head_field)F(":path", "*"); /* only OPTIONS may ask for "*" */
	assert_null(head_of(star, 4, true, &info, &why));
}

static void expect_refused(struct h2head_field *f, size_t n, const char *reason)
{
	struct h2head_req info;
	const char *why = NULL;
	char *h = head_of(f, n, true, &info, &why);

	if (h != NULL)
		fail_msg("accepted: %s", h);
	assert_string_equal(why, reason);
}

static void test_malformed(void **state)
{
	struct h2head_field upper[] = {REQ(F("X-Upper", "1"))};
	struct h2head_field conn[] = {REQ(F("connection", "close"))};
	struct h2head_field ka[] = {REQ(F("keep-alive", "5"))};
	struct h2head_field te[] = {REQ(F("te", "gzip"))};
	struct h2head_field late[] = {F(":method", "GET"), F("a", "b"), F(":path", "/")};
	struct h2head_field unknown[] = {REQ(), F(":protocol", "websocket")};
	struct h2head_field twice[] = {REQ(), F(":path", "/y")};
	struct h2head_field nopath[] = {F(":method", "GET"), F(":scheme", "http"),
					F(":authority", "a")};
	struct h2head_field host[] = {REQ(F("host", "b.example"))};
	struct h2head_field userinfo[] = {F(":method", "GET"), F(":scheme", "http"),
					  F(":authority", "u@a"), F(":path", "/")};
	struct h2head_field ctl[] = {REQ(F("x", "a\rb"))};
	struct h2head_field ws[] = {REQ(F("x", " a"))};
	struct h2head_field sp[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "a"),
				    F(":path", "/a b")};
	struct h2head_field hostdup[] = {F(":method", "GET"), F(":scheme", "http"), F(":path", "/"),
					 F("host", "a"), F("host", "a")};

	(void)state;
	expect_refused(upper, 5, "invalid header name");
	expect_refused(conn, 5, "connection-specific header field");
	expect_refused(ka, 5, "connection-specific header field");
	expect_refused(te, 5, "TE other than trailers");
	expect_refused(late, 3, "pseudo-header after a regular field");
	expect_refused(unknown, 5, "unknown pseudo-header");
	expect_refused(twice, 5, "repeated pseudo-header");
	expect_refused(nopath, 3, "missing or invalid :path or :scheme");
	expect_refused(host, 5, "host field differs from :authority");
	expect_refused(userinfo, 4, "invalid :authority");
	expect_refused(ctl, 5, "invalid header value");
	expect_refused(ws, 5, "invalid header value");
	expect_refused(sp, 4, "missing or invalid :path or :scheme");
	expect_refused(hostdup, 5, "more than one host field");
}

static void test_trailers(void **state)
{
	struct h2head_field ok[] = {F("grpc-status", "0"), F("grpc-message", "fine")};
	struct h2head_field pseudo[] = {F(":status", "200")};
	struct evbuffer *out = evbuffer_new();
	const char *why = NULL;
	char buf[128];
	size_t len;

	(void)state;
	assert_int_equal(h2head_trailers(ok, 2, out, &why), 0);
	len = evbuffer_get_length(out);
	evbuffer_remove(out, buf, len);
	buf[len] = '\0';
	assert_string_equal(buf, "grpc-status: 0\r\ngrpc-message: fine\r\n");
	assert_int_equal(h2head_trailers(pseudo, 1, out, &why), -1);
	assert_string_equal(why, "pseudo-header in trailers");
	evbuffer_free(out);
}

static void test_response(void **state)
{
	struct http1_header hdrs[] = {
	    {"Content-Type", 12, "text/plain", 10},  {"Connection", 10, "close", 5},
	    {"Transfer-Encoding", 17, "chunked", 7}, {"X-Mixed-Case", 12, "V", 1},
	    {"Keep-Alive", 10, "timeout=5", 9},
	};
	struct http1_response resp = {1, 404, "Not Found", 9, hdrs, 5, 1};
	char status[3], lower[128];
	nghttp2_nv nv[8];
	int n = h2head_response(&resp, status, lower, nv, 8);

	(void)state;
	assert_int_equal(n, 3);
	assert_memory_equal(nv[0].name, ":status", 7);
	assert_memory_equal(nv[0].value, "404", 3);
	assert_int_equal(nv[1].namelen, 12);
	assert_memory_equal(nv[1].name, "content-type", 12);
	assert_memory_equal(nv[2].name, "x-mixed-case", 12);
	assert_memory_equal(nv[2].value, "V", 1);
	/* more fields than room */
	assert_int_equal(h2head_response(&resp, status, lower, nv, 5), -1);
}

/* Every byte value in a field name and in :authority, against the sets as the RFCs write
 * them (h2head.c keeps them as bitmaps). */
static void test_charsets(void **state)
{
	const char *tchar = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";
	const char *authority = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789-._~%!$&'()*+,;=:[]";

	(void)state;
	for (int ch = 0; ch < 256; ch++) {
		char name[3] = {'x', (char)ch, 'y'}, auth[3] = {'a', (char)ch, 'b'};
		struct h2head_field f[] = {F(":method", "GET"),
					   F(":scheme", "https"),
					   F(":authority", "a.example"),
					   F(":path", "/x"),
					   {name, 3, "v", 1}};
		struct h2head_req info;
		const char *why = NULL;
		char *h = head_of(f, 5, true, &info, &why);
		bool want = ch != 0 && strchr(tchar, ch) != NULL;

		if ((h != NULL) != want)
			fail_msg("field name byte 0x%02x: %s", ch, h != NULL ? "taken" : why);
		free(h);
		f[2] = (struct h2head_field){":authority", 10, auth, 3};
		f[4] = (struct h2head_field)F("x", "v");
		h = head_of(f, 5, true, &info, &why);
		want = ch != 0 && strchr(authority, ch) != NULL;
		if ((h != NULL) != want)
			fail_msg(":authority byte 0x%02x: %s", ch, h != NULL ? "taken" : why);
		free(h);
		/* a value: any byte but the controls (HTAB aside) and DEL, at each position of
		 * a value long enough to be read eight bytes at a time */
		f[2] = (struct h2head_field)F(":authority", "a.example");
		for (size_t at = 1; at < 23; at++) {
			char value[24];

			memset(value, 'v', sizeof(value));
			value[at] = (char)ch;
			f[4] = (struct h2head_field){"x", 1, value, sizeof(value)};
			h = head_of(f, 5, true, &info, &why);
			want = !((ch < 0x20 && ch != '\t') || ch == 0x7f);
			if ((h != NULL) != want)
				fail_msg("value byte 0x%02x at %zu: %s", ch, at,
					 h != NULL ? "taken" : why);
			free(h);
		}
	}
}

/* The fields proxy.c hands over one by one (h2down_head_field) are lowered the same way. */
static void test_lower_fields(void **state)
{
	nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
	    {(uint8_t *)"X-Up", (uint8_t *)"1", 4, 1, 0},
	    {(uint8_t *)"Upgrade", (uint8_t *)"h2c", 7, 3, 0},
	    {(uint8_t *)"server", (uint8_t *)"meshgate", 6, 8, 0},
	    {(uint8_t *)"PROXY-connection", (uint8_t *)"x", 16, 1, 0},
	    {(uint8_t *)"Set-Cookie", (uint8_t *)"a=1", 10, 3, 0},
	};
	char lower[64];

	(void)state;
	assert_int_equal(h2head_lower_fields(nv, 1, 6, lower), 4);
	assert_memory_equal(nv[0].name, ":status", 7);
	assert_int_equal(nv[1].namelen, 4);
	assert_memory_equal(nv[1].name, "x-up", 4);
	assert_memory_equal(nv[2].name, "server", 6);
	assert_memory_equal(nv[2].value, "meshgate", 8);
	assert_memory_equal(nv[3].name, "set-cookie", 10);
	assert_memory_equal(nv[3].value, "a=1", 3);
	assert_ptr_equal(nv[1].name, (uint8_t *)lower); /* packed into lower, in order */
	assert_ptr_equal(nv[3].name, (uint8_t *)lower + 10);
	assert_int_equal(h2head_lower_fields(nv, 1, 1, lower), 1); /* nothing past first */
}

/* Every byte value, at every offset within eight bytes and with every tail length: only
 * A-Z change. */
static void test_lower_all_bytes(void **state)
{
	uint8_t name[256 + 16];
	char lower[sizeof(name)];

	(void)state;
	for (size_t off = 0; off < 8; off++) {
		for (size_t tail = 0; tail < 8; tail++) {
			size_t len = off + 256 + tail;
			nghttp2_nv nv[2] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
					    {name, (uint8_t *)"v", len, 1, 0}};

			memset(name, 'Q', sizeof(name));
			for (int b = 0; b < 256; b++)
				name[off + (size_t)b] = (uint8_t)b;
			assert_int_equal(h2head_lower_fields(nv, 1, 2, lower), 2);
			for (size_t k = 0; k < len; k++) {
				uint8_t want = name[k] >= 'A' && name[k] <= 'Z'
						   ? (uint8_t)(name[k] + 32)
						   : name[k];

				if ((uint8_t)lower[k] != want)
					fail_msg("byte %zu (0x%02x): 0x%02x", k, name[k],
						 (uint8_t)lower[k]);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_body_framing),
	    cmocka_unit_test(test_special_targets),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_trailers),
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_lower_fields),
	    cmocka_unit_test(test_lower_all_bytes),
	    cmocka_unit_test(test_charsets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
