/* Unit tests for the strict HTTP/1.1 parser (src/http1.c).
 *
 * Every input is copied so that it ends exactly where a PROT_NONE page begins: reading one
 * byte past the end of what the parser was given crashes the test. */
#include <setjmp.h>
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http1.h"
#include "errors.h"

#define MAXH 64
#define ARENA (256 * 1024)
#define NSLOTS 3

/* ---- guard-page buffers ------------------------------------------------------------- */

static unsigned char *arena[NSLOTS];

/* Copy s[0..n) into slot so that its last byte is the last readable byte. */
static char *at_guard(int slot, const void *s, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	assert_true(n <= ARENA);
	if (arena[slot] == NULL) {
		void *m = mmap(NULL, ARENA + pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(m != MAP_FAILED);
		assert_int_equal(mprotect((unsigned char *)m + ARENA, pg, PROT_NONE), 0);
		arena[slot] = m;
	}
	memcpy(arena[slot] + ARENA - n, s, n);
	return (char *)arena[slot] + ARENA - n;
}

static const struct http1_limits deflim = {8192, 4096, MAXH};

/* ---- request helpers ---------------------------------------------------------------- */

struct preq {
	struct http1_request r;
	struct http1_header h[MAXH];
	int rc, status;
	const char *why;
	const char *buf;
};

static int parse_req_lim(struct preq *p, int slot, const char *s, size_t n,
			 const struct http1_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->r.headers = p->h;
	p->status = -1;
	p->buf = at_guard(slot, s, n);
	p->rc = http1_parse_request(p->buf, n, lim, &p->r, &p->status, &p->why);
	if (p->rc == MG_EBAD)
		assert_non_null(p->why);
	return p->rc;
}

static int parse_req(struct preq *p, const char *s)
{
	return parse_req_lim(p, 0, s, strlen(s), &deflim);
}

static void assert_hdr(const struct preq *p, size_t i, const char *name, const char *value)
{
	assert_true(i < p->r.nheaders);
	assert_int_equal(p->r.headers[i].name_len, strlen(name));
	assert_memory_equal(p->r.headers[i].name, name, strlen(name));
	assert_int_equal(p->r.headers[i].value_len, strlen(value));
	if (strlen(value) > 0)
		assert_memory_equal(p->r.headers[i].value, value, strlen(value));
}

/* Same outcome, with every pointer at the same offset from its own buffer. */
static void assert_same_req(const struct preq *a, const struct preq *b)
{
	size_t i;

	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->r.method - a->buf, b->r.method - b->buf);
	assert_int_equal(a->r.method_len, b->r.method_len);
	assert_int_equal(a->r.target - a->buf, b->r.target - b->buf);
	assert_int_equal(a->r.target_len, b->r.target_len);
	assert_int_equal(a->r.minor_version, b->r.minor_version);
	assert_int_equal(a->r.nheaders, b->r.nheaders);
	assert_int_equal(a->r.host_index, b->r.host_index);
	assert_int_equal(a->r.conn_close, b->r.conn_close);
	assert_int_equal(a->r.expect_continue, b->r.expect_continue);
	assert_int_equal(a->r.upgrade, b->r.upgrade);
	for (i = 0; i < a->r.nheaders; i++) {
		assert_int_equal(a->h[i].name - a->buf, b->h[i].name - b->buf);
		assert_int_equal(a->h[i].name_len, b->h[i].name_len);
		assert_int_equal(a->h[i].value - a->buf, b->h[i].value - b->buf);
		assert_int_equal(a->h[i].value_len, b->h[i].value_len);
	}
}

/* Every strict prefix of a complete head gives MG_AGAIN; the head followed by anything
 * parses exactly like the head alone. */
static void check_splits(const char *s, const struct http1_limits *lim)
{
	size_t n = strlen(s), k;
	struct preq full, part;
	char *more = malloc(n + 16);

	parse_req_lim(&full, 1, s, n, lim);
	assert_true(full.rc > 0);
	for (k = 0; k < (size_t)full.rc; k++) {
		parse_req_lim(&part, 0, s, k, lim);
		if (part.rc != MG_AGAIN)
			fail_msg("prefix %zu of %s gave %d (%s)", k, s, part.rc, part.why);
	}
	for (k = (size_t)full.rc; k <= n; k++) {
		parse_req_lim(&part, 0, s, k, lim);
		assert_same_req(&full, &part);
	}
	memcpy(more, s, n);
	memcpy(more + n, "GET / HTTP/1.1\r\n", 16);
	parse_req_lim(&part, 0, more, n + 16, lim);
	assert_same_req(&full, &part);
	free(more);
}

/* A malformed head yields `status` and each of its prefixes MG_AGAIN or that same status. */
static void check_bad(const char *s, size_t n, const struct http1_limits *lim, int status)
{
	struct preq p;
	size_t k;

	parse_req_lim(&p, 0, s, n, lim);
	if (p.rc != MG_EBAD || p.status != status)
		fail_msg("\"%.*s\": rc %d status %d (%s), expected %d", (int)n, s, p.rc, p.status,
			 p.why ? p.why : "", status);
	for (k = 0; k < n; k++) {
		parse_req_lim(&p, 0, s, k, lim);
		if (p.rc == MG_AGAIN)
			continue;
		if (p.rc != MG_EBAD || p.status != status)
			fail_msg("prefix %zu of \"%.*s\": rc %d status %d", k, (int)n, s, p.rc,
				 p.status);
	}
}

#define CHECK_BAD(lit, lim, status) check_bad(lit, sizeof(lit) - 1, lim, status)

/* ---- valid requests ----------------------------------------------------------------- */

static const char *const valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "POST /submit?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 5\r\n"
    "Content-Type: text/plain\r\n\r\n",
    "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /legacy HTTP/1.0\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
    "GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Ws: \t  v a l \t \r\n"
    "X-Obs: caf\xc3\xa9\r\nX-Tab:\tx\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\nConnection: keep-alive, Upgrade\r\n"
    "Upgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
    "PROPFIND /dav/ HTTP/1.1\r\nHost: %41b.example\r\nDepth: 1\r\n\r\n",
    "M-SEARCH /x HTTP/1.1\r\nhost: xn--bcher-kva.example\r\n!#$%&'*+-.^_`|~09aZ: ok\r\n\r\n",
    "GET /a/very/long/path/that/exceeds/eight/bytes/many/times/over?and=a&query=string "
    "HTTP/1.1\r\nHost: a.b.c\r\nCookie: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n", /* empty port: RFC 3986 *DIGIT */
};

static void test_valid_splits(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(valid_requests) / sizeof(valid_requests[0]); i++)
		check_splits(valid_requests[i], &deflim);
}

static void test_simple_get(void **state)
{
	struct preq p;
	const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";

	assert_int_equal(parse_req(&p, s), (int)strlen(s));
	assert_int_equal(p.r.method_len, 3);
	assert_memory_equal(p.r.method, "GET", 3);
	assert_int_equal(p.r.target_len, 11);
	assert_memory_equal(p.r.target, "/index.html", 11);
	assert_int_equal(p.r.minor_version, 1);
	assert_int_equal(p.r.nheaders, 2);
	assert_hdr(&p, 0, "Host", "example.com");
	assert_hdr(&p, 1, "Accept", "*/*");
	assert_int_equal(p.r.host_index, 0);
	assert_int_equal(p.r.conn_close, 0);
	assert_int_equal(p.r.expect_continue, 0);
	assert_int_equal(p.r.upgrade, 0);
}

static void test_ows_and_values(void **state)
{
	struct preq p;

	assert_true(parse_req(&p, valid_requests[10]) > 0);
	assert_hdr(&p, 0, "Host", "[::1]:8080");
	assert_hdr(&p, 1, "X-Empty", "");
	assert_hdr(&p, 2, "X-Ws", "v a l");
	assert_hdr(&p, 3, "X-Obs", "caf\xc3\xa9");
	assert_hdr(&p, 4, "X-Tab", "x");
}

static void test_leading_empty_lines(void **state)
{
	struct preq p;
	const char *s = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";

	assert_int_equal(parse_req(&p, s), (int)strlen(s));
	assert_ptr_equal(p.r.method, p.buf + 8);
	CHECK_BAD("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &deflim, 400);
	CHECK_BAD("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &deflim, 400);
	CHECK_BAD("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &deflim, 400);
}

static void test_pipelined(void **state)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
	struct preq p;
	size_t n = strlen(s);
	int rc;

	rc = parse_req(&p, s);
	assert_int_equal(rc, 28);
	assert_memory_equal(p.r.target, "/1", 2);
	parse_req_lim(&p, 0, s + rc, n - (size_t)rc, &deflim);
	assert_int_equal(p.rc, (int)n - rc);
	assert_memory_equal(p.r.target, "/2", 2);
	assert_memory_equal(p.h[0].value, "b", 1);
}

static void test_http10(void **state)
{
	struct preq p;

	assert_true(parse_req(&p, "GET / HTTP/1.0\r\n\r\n") > 0);
	assert_int_equal(p.r.minor_version, 0);
	assert_int_equal(p.r.host_index, -1);
	assert_int_equal(p.r.conn_close, 1);
	assert_true(parse_req(&p, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
	assert_int_equal(p.r.conn_close, 0);
	assert_true(parse_req(&p, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") > 0);
	assert_int_equal(p.r.conn_close, 1);
	/* Expect and Upgrade mean nothing in 1.0. */
	assert_true(parse_req(&p,
			      "GET / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: upgrade\r\n"
			      "Upgrade: websocket\r\n\r\n") > 0);
	assert_int_equal(p.r.expect_continue, 0);
	assert_int_equal(p.r.upgrade, 0);
	/* Host is optional in 1.0 but still validated and still unique. */
	CHECK_BAD("GET / HTTP/1.0\r\nHost: a b\r\n\r\n", &deflim, 400);
	CHECK_BAD("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", &deflim, 400);
}

static void test_flags(void **state)
{
	struct preq p;

	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n") >
		    0);
	assert_int_equal(p.r.conn_close, 1);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n") > 0);
	assert_int_equal(p.r.conn_close, 0);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n") > 0);
	assert_int_equal(p.r.expect_continue, 1);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n") > 0);
	assert_int_equal(p.r.expect_continue, 0);
	assert_true(parse_req(&p, valid_requests[11]) > 0);
	assert_int_equal(p.r.upgrade, 1);
	assert_int_equal(p.r.expect_continue, 1);
	assert_int_equal(p.r.conn_close, 0);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n") > 0);
	assert_int_equal(p.r.upgrade, 0);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n") > 0);
	assert_int_equal(p.r.upgrade, 0);
	assert_true(parse_req(&p, "GET / HTTP/1.1\r\nUpgrade: h2c\r\nHost: a\r\nConnection: "
				  "Upgrade, HTTP2-Settings\r\n\r\n") > 0);
	assert_int_equal(p.r.upgrade, 1);
	assert_int_equal(p.r.host_index, 1);
}

/* ---- malformed requests ------------------------------------------------------------- */

struct bad_case {
	const char *in;
	int status;
};

#define H "Host: a\r\n"
static const struct bad_case bad_requests[] = {
    /* line endings */
    {"GET / HTTP/1.1\n" H "\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "\n", 400},
    {"GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "\r\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 400},
    {"GET /\r\n\r\n", 400},
    /* request-line shape */
    {"GET  / HTTP/1.1\r\n" H "\r\n", 400},
    {"GET /  HTTP/1.1\r\n" H "\r\n", 400},
    {"GET\t/ HTTP/1.1\r\n" H "\r\n", 400},
    {" GET / HTTP/1.1\r\n" H "\r\n", 400},
    {"G(T / HTTP/1.1\r\n" H "\r\n", 400},
    {"GET / HTTP/1.1 \r\n" H "\r\n", 400},
    {"GET / http/1.1\r\n" H "\r\n", 400},
    {"GET / HTTP/1.10\r\n" H "\r\n", 400},
    {"GET / HTTP/1.1x\n" H "\r\n", 400},
    {"GET /\x01"
     "HTTP/1.1\r\n" H "\r\n",
     400},
    {"GET\x01/ HTTP/1.1\r\n" H "\r\n", 400},
    {"GET / HTTP/1\r\n" H "\r\n", 400},
    {"GET / HTTP/a.1\r\n" H "\r\n", 400},
    {"GET /\x80 HTTP/1.1\r\n" H "\r\n", 400},
    {"GET /\x7f HTTP/1.1\r\n" H "\r\n", 400},
    {"GET /a\tb HTTP/1.1\r\n" H "\r\n", 400},
    {"GET / HTTP/2.0\r\n" H "\r\n", 505},
    {"GET / HTTP/1.2\r\n" H "\r\n", 505},
    {"GET / HTTP/0.9\r\n" H "\r\n", 505},
    {"GET / HTTP/3.1\r\n" H "\r\n", 505},
    /* request-target forms */
    {"GET foo HTTP/1.1\r\n" H "\r\n", 400},
    {"GET * HTTP/1.1\r\n" H "\r\n", 400},
    {"OPTIONS *x HTTP/1.1\r\n" H "\r\n", 400},
    {"CONNECT / HTTP/1.1\r\n" H "\r\n", 400},
    {"CONNECT a.com HTTP/1.1\r\n" H "\r\n", 400},
    {"CONNECT a.com: HTTP/1.1\r\n" H "\r\n", 400},
    {"CONNECT http://a.com:80/ HTTP/1.1\r\n" H "\r\n", 400},
    {"GET a.com:80 HTTP/1.1\r\n" H "\r\n", 400},
    {"GET ftp://a/ HTTP/1.1\r\n" H "\r\n", 400},
    {"GET http://u@a/ HTTP/1.1\r\n" H "\r\n", 400},
    {"GET http:///x HTTP/1.1\r\n" H "\r\n", 400},
    {"GET http://a#f/ HTTP/1.1\r\n" H "\r\n", 400},
    /* a fragment, in any form (RFC 9112 §3.2) */
    {"GET /a#b HTTP/1.1\r\n" H "\r\n", 400},
    {"GET /# HTTP/1.1\r\n" H "\r\n", 400},
    {"GET /a?q#/../admin HTTP/1.1\r\n" H "\r\n", 400},
    {"GET http://a/p#f HTTP/1.1\r\n" H "\r\n", 400},
    {"OPTIONS *# HTTP/1.1\r\n" H "\r\n", 400},
    /* header field syntax */
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "X: b\r\n c\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "X: b\r\n\tc\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H ": empty\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "X[y]: z\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "\xc3\xa9: x\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n" H "X: a\x01"
     "b\r\n\r\n",
     400},
    {"GET / HTTP/1.1\r\n" H "X: a\x7f"
     "b\r\n\r\n",
     400},
    {"GET / HTTP/1.1\r\n" H "X: a\x1b"
     "b-long-enough-for-a-word\r\n\r\n",
     400},
    /* framing field names with '_' for '-' (CGI reads them as the real ones) */
    {"POST / HTTP/1.1\r\n" H "Transfer_Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\n" H "transfer-encoding: chunked\r\nTRANSFER_encoding: x\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\n" H "Content_Length: 5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nContent_length: 0\r\n" H "\r\n", 400},
    {"POST / HTTP/1.0\r\nCONTENT_LENGTH: 0\r\n\r\n", 400},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400},
};
#undef H

static void test_bad_requests(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++)
		check_bad(bad_requests[i].in, strlen(bad_requests[i].in), &deflim,
			  bad_requests[i].status);
}

/* '_' is a tchar: only the two framing names are refused in that spelling. */
static void test_underscore_names(void **state)
{
	check_splits("GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1\r\nContent_Type: t\r\n"
		     "Transfer_Encodings: x\r\nContent_Lengths: 1\r\n_: y\r\n\r\n",
		     &deflim);
	check_splits("GET / HTTP/1.1\r\nHost: a\r\nXontent_Length: 1\r\nTransfer_Encodinx: "
		     "chunked\r\n\r\n",
		     &deflim);
}

static void test_nul_in_value(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
	static const char t[] = "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char u[] = "GET / HTTP/1.1\r\nHost: a\0\r\n\r\n";

	CHECK_BAD(s, &deflim, 400);
	CHECK_BAD(t, &deflim, 400);
	CHECK_BAD(u, &deflim, 400);
}

/* Every byte value in a field name, a field value and a request-target, against the ABNF. */
static void test_byte_classes(void **state)
{
	static const char tchar_extra[] = "!#$%&'*+-.^_`|~";
	char in[64];
	struct preq p;
	size_t k;
	int c;

	for (c = 0; c < 256; c++) {
		int tchar = (c < 128 && (isalnum(c) || strchr(tchar_extra, c) != NULL)) && c != 0;
		int fvalue = c == '\t' || (c >= 0x20 && c != 0x7f);
		int target = c > 0x20 && c < 0x7f && c != '#';
		int n;

		n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a\r\nX%cY: v\r\n\r\n", c);
		in[27] = (char)c;
		parse_req_lim(&p, 0, in, (size_t)n, &deflim);
		if ((p.rc > 0) != (tchar || c == ':')) /* "X:Y: v" is field X */
			fail_msg("name byte 0x%02x: rc %d", c, p.rc);
		/* Long value and target, the byte at every offset: covers the word-at-a-time
		 * scanners as well as the byte loops. */
		for (k = 0; k < 24; k++) {
			memcpy(in, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
			memset(in + 28, 'v', 24);
			in[28 + k] = (char)c;
			memcpy(in + 52, "\r\n\r\n", 4);
			parse_req_lim(&p, 0, in, 56, &deflim);
			if ((p.rc > 0) != fvalue)
				fail_msg("value byte 0x%02x at %zu: rc %d", c, k, p.rc);
			memcpy(in, "GET /", 5);
			memset(in + 5, 'p', 24);
			in[5 + k] = (char)c;
			memcpy(in + 29, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
			parse_req_lim(&p, 0, in, 51, &deflim);
			if ((p.rc > 0) != target)
				fail_msg("target byte 0x%02x at %zu: rc %d", c, k, p.rc);
		}
		n = snprintf(in, sizeof(in), "G%cT / HTTP/1.1\r\nHost: a\r\n\r\n", c);
		in[1] = (char)c;
		parse_req_lim(&p, 0, in, (size_t)n, &deflim);
		if ((p.rc > 0) != tchar)
			fail_msg("method byte 0x%02x: rc %d", c, p.rc);
	}
}

/* ---- limits ------------------------------------------------------------------------- */

static void test_limit_request_line(void **state)
{
	struct http1_limits lim = {8192, 14, MAXH};
	const char *ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"; /* request-line is 14 bytes */

	check_splits(ok, &lim);
	lim.max_request_line = 13;
	check_bad(ok, strlen(ok), &lim, 414);
	/* Refused while still incomplete: long method, long target, no version yet. */
	lim.max_request_line = 16;
	CHECK_BAD("GET /aaaaaaaaaaaaaaaaaaaa", &lim, 414);
	CHECK_BAD("GETGETGETGETGETGETGET", &lim, 414);
	CHECK_BAD("GET /aaaaaaaa HTT", &lim, 414);
	/* Leading empty lines do not count in the request line. */
	lim.max_request_line = 14;
	check_splits("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &lim);
}

static void test_limit_head(void **state)
{
	const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nX-Filler: 0123456789\r\n\r\n";
	struct http1_limits lim = {strlen(ok), 4096, MAXH};
	char big[600];
	struct preq p;

	check_splits(ok, &lim);
	lim.max_head = strlen(ok) - 1;
	check_bad(ok, strlen(ok), &lim, 431);
	/* A slow client that never ends its head is refused once max_head bytes are in. */
	lim.max_head = 512;
	memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	memset(big + 28, 'v', sizeof(big) - 28);
	parse_req_lim(&p, 0, big, 511, &lim);
	assert_int_equal(p.rc, MG_AGAIN);
	check_bad(big, 512, &lim, 431);
	check_bad(big, sizeof(big), &lim, 431);
	/* Leading empty lines count toward the head. */
	lim.max_head = strlen(ok) + 1;
	check_bad("\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Filler: 0123456789\r\n\r\n", strlen(ok) + 2,
		  &lim, 431);
}

static void test_limit_count(void **state)
{
	struct http1_limits lim = {8192, 4096, 2};
	const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\n\r\n";

	check_splits(ok, &lim);
	CHECK_BAD("GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 431);
	CHECK_BAD("GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC", &lim, 431);
	lim.max_headers = 0;
	CHECK_BAD("GET / HTTP/1.0\r\nA", &lim, 431);
	check_splits("GET / HTTP/1.0\r\n\r\n", &lim);
}

/* ---- request framing ---------------------------------------------------------------- */

struct framing_case {
	const char *fields; /* header lines after Host */
	int minor;
	int rc, status, kind;
	uint64_t length;
};

#define OK(f, k, l)                                                                                \
	{                                                                                          \
		f, 1, MG_OK, 0, HTTP1_BODY_##k, l                                                  \
	}
#define BAD(f, s)                                                                                  \
	{                                                                                          \
		f, 1, MG_EBAD, s, 0, 0                                                             \
	}
static const struct framing_case req_framing[] = {
    OK("", NONE, 0),
    OK("Content-Length: 0\r\n", LENGTH, 0),
    OK("Content-Length: 5\r\n", LENGTH, 5),
    OK("Content-Length: 005\r\n", LENGTH, 5),
    OK("Content-Length: 5, 5\r\n", LENGTH, 5),
    OK("Content-Length: 5,5\r\n", LENGTH, 5),
    OK("Content-Length: 5\r\ncontent-length: 5\r\n", LENGTH, 5),
    OK("Content-Length: 9223372036854775807\r\n", LENGTH, INT64_MAX),
    BAD("Content-Length: 9223372036854775808\r\n", 400),
    BAD("Content-Length: 99999999999999999999999\r\n", 400),
    BAD("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    BAD("Content-Length: 5, 6\r\n", 400),
    BAD("Content-Length: -5\r\n", 400),
    BAD("Content-Length: +5\r\n", 400),
    BAD("Content-Length: 0x5\r\n", 400),
    BAD("Content-Length: 5 5\r\n", 400),
    BAD("Content-Length: 5.0\r\n", 400),
    BAD("Content-Length:\r\n", 400),
    BAD("Content-Length: 5,\r\n", 400),
    BAD("Content-Length: ,5\r\n", 400),
    BAD("Content-Length: 5, , 5\r\n", 400),
    BAD("Content-Length: \"5\"\r\n", 400),
    OK("Transfer-Encoding: chunked\r\n", CHUNKED, 0),
    OK("Transfer-Encoding: Chunked\r\n", CHUNKED, 0),
    OK("Transfer-Encoding: chunked,\r\n", CHUNKED, 0),
    OK("Transfer-Encoding: , chunked\r\n", CHUNKED, 0),
    OK("Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", CHUNKED, 0),
    BAD("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
    BAD("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
    BAD("Transfer-Encoding: chunked, chunked\r\n", 400),
    BAD("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400),
    BAD("Transfer-Encoding: chunked, gzip\r\n", 400),
    BAD("Transfer-Encoding: gzip\r\n", 400),
    BAD("Transfer-Encoding: identity\r\n", 400),
    BAD("Transfer-Encoding: xchunked\r\n", 400),
    BAD("Transfer-Encoding: chunked x\r\n", 400),
    BAD("Transfer-Encoding: gzip chunked\r\n", 400),
    BAD("Transfer-Encoding: chunked;q=1\r\n", 400),
    BAD("Transfer-Encoding: \"chunked\"\r\n", 400),
    BAD("Transfer-Encoding: chunked\x80\r\n", 400),
    BAD("Transfer-Encoding:\r\n", 400),
    BAD("Transfer-Encoding: ,\r\n", 400),
    BAD("Transfer-Encoding: gzip, chunked, chunked\r\n", 400),
    BAD("Transfer-Encoding: gzip;x=\"a,chunked\", chunked\r\n", 400),
    BAD("Transfer-Encoding: gzip, chunked\r\n", 501),
    BAD("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501),
    BAD("Transfer-Encoding: gzip;level=1, chunked\r\n", 501),
    {"Transfer-Encoding: chunked\r\n", 0, MG_EBAD, 400, 0, 0},
    {"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n", 0, MG_EBAD, 400, 0, 0},
    {"Content-Length: 7\r\n", 0, MG_OK, 0, HTTP1_BODY_LENGTH, 7},
};
#undef OK
#undef BAD

static void test_request_framing(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(req_framing) / sizeof(req_framing[0]); i++) {
		const struct framing_case *c = &req_framing[i];
		char head[512];
		struct preq p;
		enum http1_body_kind kind = HTTP1_BODY_UNTIL_CLOSE;
		uint64_t len = 99;
		int rc, st = -1;
		const char *why = NULL;

		snprintf(head, sizeof(head), "POST / HTTP/1.%d\r\nHost: a\r\n%s\r\n", c->minor,
			 c->fields);
		assert_true(parse_req(&p, head) > 0);
		rc = http1_request_framing(&p.r, &kind, &len, &st, &why);
		if (rc != c->rc || (rc == MG_EBAD && st != c->status) ||
		    (rc == MG_OK && (kind != (enum http1_body_kind)c->kind || len != c->length)))
			fail_msg("case %zu \"%s\": rc %d status %d kind %d len %llu (%s)", i,
				 c->fields, rc, st, kind, (unsigned long long)len, why ? why : "");
		if (rc == MG_EBAD)
			assert_non_null(why);
	}
}

/* ---- responses ---------------------------------------------------------------------- */

struct presp {
	struct http1_response r;
	struct http1_header h[MAXH];
	int rc;
	const char *why;
	const char *buf;
};

static int parse_resp_lim(struct presp *p, int slot, const char *s, size_t n,
			  const struct http1_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->r.headers = p->h;
	p->buf = at_guard(slot, s, n);
	p->rc = http1_parse_response(p->buf, n, lim, &p->r, &p->why);
	if (p->rc == MG_EBAD)
		assert_non_null(p->why);
	return p->rc;
}

static int parse_resp(struct presp *p, const char *s)
{
	return parse_resp_lim(p, 0, s, strlen(s), &deflim);
}

static void check_resp_splits(const char *s)
{
	size_t n = strlen(s), k, i;
	struct presp full, part;

	parse_resp_lim(&full, 1, s, n, &deflim);
	assert_int_equal(full.rc, (int)n);
	for (k = 0; k < n; k++) {
		parse_resp_lim(&part, 0, s, k, &deflim);
		if (part.rc != MG_AGAIN)
			fail_msg("prefix %zu of %s gave %d", k, s, part.rc);
	}
	parse_resp_lim(&part, 0, s, n, &deflim);
	assert_int_equal(part.r.status, full.r.status);
	assert_int_equal(part.r.reason_len, full.r.reason_len);
	assert_int_equal(part.r.reason - part.buf, full.r.reason - full.buf);
	assert_int_equal(part.r.nheaders, full.r.nheaders);
	for (i = 0; i < full.r.nheaders; i++)
		assert_int_equal(part.h[i].value - part.buf, full.h[i].value - full.buf);
}

static void test_responses(void **state)
{
	struct presp p;
	size_t i;
	static const char *const ok[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
	    "HTTP/1.1 200\r\n\r\n",
	    "HTTP/1.1 204 \r\n\r\n",
	    "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n",
	    "HTTP/1.1 599 Wh\xc3\xa4t  ever\t\r\nConnection: close\r\n\r\n",
	    "HTTP/1.1 100 Continue\r\n\r\n",
	};

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		check_resp_splits(ok[i]);
	assert_true(parse_resp(&p, ok[0]) > 0);
	assert_int_equal(p.r.status, 200);
	assert_int_equal(p.r.minor_version, 1);
	assert_int_equal(p.r.reason_len, 2);
	assert_memory_equal(p.r.reason, "OK", 2);
	assert_int_equal(p.r.nheaders, 1);
	assert_int_equal(p.r.conn_close, 0);
	assert_true(parse_resp(&p, ok[1]) > 0);
	assert_int_equal(p.r.reason_len, 0);
	assert_true(parse_resp(&p, ok[2]) > 0);
	assert_int_equal(p.r.status, 204);
	assert_int_equal(p.r.reason_len, 0);
	assert_true(parse_resp(&p, ok[3]) > 0);
	assert_int_equal(p.r.minor_version, 0);
	assert_int_equal(p.r.conn_close, 1);
	assert_true(parse_resp(&p, ok[4]) > 0);
	assert_int_equal(p.r.reason_len, 12);
	assert_int_equal(p.r.conn_close, 1);
	assert_true(parse_resp(&p, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n") > 0);
	assert_int_equal(p.r.conn_close, 0);
}

static void test_bad_responses(void **state)
{
	static const char *const bad[] = {
	    "HTTP/1.1 99 X\r\n\r\n",
	    "HTTP/1.1 099 X\r\n\r\n",
	    "HTTP/1.1 600 X\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1  200 OK\r\n\r\n",
	    "HTTP/2 200\r\n\r\n",
	    "HTTP/2.0 200 OK\r\n\r\n",
	    "HTTP/1.2 200 OK\r\n\r\n",
	    "http/1.1 200 OK\r\n\r\n",
	    "ICY 200 OK\r\n\r\n",
	    "\r\nHTTP/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1 200 OK\n\r\n",
	    "HTTP/1.1 200 OK\r\nA: b\n\r\n",
	    "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
	    "HTTP/1.1 200 O\x01K\r\n\r\n",
	    "HTTP/1.1 200 OK\rX\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nA: \x7f\r\n\r\n",
	    "HTTP/1.1 200\tOK\r\n\r\n",
	};
	struct presp p;
	size_t i, k;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);

		if (parse_resp_lim(&p, 0, bad[i], n, &deflim) != MG_EBAD)
			fail_msg("\"%s\" accepted (%d)", bad[i], p.rc);
		for (k = 0; k < n; k++) {
			parse_resp_lim(&p, 0, bad[i], k, &deflim);
			assert_true(p.rc == MG_AGAIN || p.rc == MG_EBAD);
		}
	}
}

static void test_response_limits(void **state)
{
	struct http1_limits lim = {8192, 15, MAXH};
	struct presp p;

	/* "HTTP/1.1 200 OK" is 15 bytes. */
	assert_true(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK\r\n\r\n", 19, &lim) > 0);
	lim.max_request_line = 14;
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK\r\n\r\n", 19, &lim), MG_EBAD);
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK", 15, &lim), MG_EBAD);
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 O", 14, &lim), MG_AGAIN);
	lim.max_request_line = 10;
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 20", 11, &lim), MG_EBAD);
	lim.max_request_line = 4096;
	lim.max_head = 30;
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK\r\nServer: abcdefghij", 35, &lim),
			 MG_EBAD);
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK\r\nServer: abcdefg", 29, &lim),
			 MG_AGAIN);
	lim.max_head = 8192;
	lim.max_headers = 1;
	assert_int_equal(parse_resp_lim(&p, 0, "HTTP/1.1 200 OK\r\nA: 1\r\nB", 25, &lim), MG_EBAD);
}

struct rframing_case {
	const char *head;
	const char *method;
	int rc, kind;
	uint64_t length;
};

static const struct rframing_case resp_framing[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "GET", MG_OK, HTTP1_BODY_LENGTH, 10},
    {"HTTP/1.1 200 OK\r\nContent-Length: 10, 10\r\n\r\n", "GET", MG_OK, HTTP1_BODY_LENGTH, 10},
    {"HTTP/1.1 204 No\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 304 NM\r\nContent-Length: 5\r\n\r\n", "GET", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 100 Continue\r\n\r\n", "POST", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 101 SP\r\nUpgrade: websocket\r\n\r\n", "GET", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "CONNECT", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 407 A\r\nContent-Length: 5\r\n\r\n", "CONNECT", MG_OK, HTTP1_BODY_LENGTH, 5},
    {"HTTP/1.1 302 F\r\nContent-Length: 5\r\n\r\n", "CONNECT", MG_OK, HTTP1_BODY_LENGTH, 5},
    {"HTTP/1.1 299 X\r\nContent-Length: 5\r\n\r\n", "CONNECT", MG_OK, HTTP1_BODY_NONE, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", MG_OK, HTTP1_BODY_CHUNKED, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET", MG_OK,
     HTTP1_BODY_CHUNKED, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", MG_OK, HTTP1_BODY_UNTIL_CLOSE, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET", MG_OK,
     HTTP1_BODY_UNTIL_CLOSE, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "GET", MG_EBAD,
     0, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: \"x\"\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", MG_OK, HTTP1_BODY_LENGTH, 3},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "GET", MG_EBAD, 0, 0},
    {"HTTP/1.1 200 OK\r\n\r\n", "GET", MG_OK, HTTP1_BODY_UNTIL_CLOSE, 0},
    {"HTTP/1.1 200 OK\r\n\r\n", "head", MG_OK, HTTP1_BODY_UNTIL_CLOSE, 0},
};

static void test_response_framing(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(resp_framing) / sizeof(resp_framing[0]); i++) {
		const struct rframing_case *c = &resp_framing[i];
		struct presp p;
		enum http1_body_kind kind = HTTP1_BODY_UNTIL_CLOSE;
		uint64_t len = 99;
		const char *why = NULL;
		int rc;

		assert_true(parse_resp(&p, c->head) > 0);
		rc = http1_response_framing(&p.r, c->method, strlen(c->method), &kind, &len, &why);
		if (rc != c->rc ||
		    (rc == MG_OK && (kind != (enum http1_body_kind)c->kind || len != c->length)))
			fail_msg("case %zu: rc %d kind %d len %llu (%s)", i, rc, kind,
				 (unsigned long long)len, why ? why : "");
		if (rc == MG_EBAD)
			assert_non_null(why);
	}
}

/* ---- chunked ------------------------------------------------------------------------ */

struct ck_out {
	int err, done;
	size_t consumed;
	size_t plen, tlen;
	char payload[8192];
	char trailers[HTTP1_TRAILER_MAX]; /* the runs of st.trailers, end to end */
};

enum { WHOLE, BYTES, RANDOM };

/* Decode in[0..n) fed in pieces, each piece at a guard page.  Stops at error or done. */
static void ck_run(const char *in, size_t n, int mode, unsigned seed, struct ck_out *o)
{
	struct http1_chunked st;
	size_t off = 0;

	memset(&st, 0, sizeof(st));
	memset(o, 0, sizeof(*o));
	srand(seed);
	while (off < n && !o->err && !st.done) {
		size_t sz = mode == WHOLE ? n - off : mode == BYTES ? 1 : 1 + (size_t)rand() % 9;
		size_t pos = 0;
		const char *piece;

		if (sz > n - off)
			sz = n - off;
		piece = at_guard(2, in + off, sz);
		while (pos < sz && !st.done) {
			const char *data = (const char *)1;
			size_t dlen = 7;
			const char *why = NULL;
			ssize_t rc =
			    http1_chunked_step(&st, piece + pos, sz - pos, &data, &dlen, &why);

			if (rc < 0) {
				assert_int_equal(rc, MG_EBAD);
				assert_non_null(why);
				/* a failing call hands back no trailer bytes */
				assert_null(st.trailers);
				assert_int_equal(st.trailers_len, 0);
				o->err = 1;
				break;
			}
			assert_true((size_t)rc <= sz - pos);
			assert_true(rc > 0 || st.done);
			if (dlen > 0) {
				assert_true(data >= piece + pos && data + dlen <= piece + pos + rc);
				assert_true(o->plen + dlen <= sizeof(o->payload));
				memcpy(o->payload + o->plen, data, dlen);
				o->plen += dlen;
			}
			if (st.trailers_len > 0) {
				assert_int_equal(dlen, 0); /* payload or trailers, never both */
				assert_true(st.trailers >= piece + pos &&
					    st.trailers + st.trailers_len <= piece + pos + rc);
				assert_true(o->tlen + st.trailers_len <= sizeof(o->trailers));
				memcpy(o->trailers + o->tlen, st.trailers, st.trailers_len);
				o->tlen += st.trailers_len;
			} else {
				assert_null(st.trailers);
			}
			pos += (size_t)rc;
		}
		off += pos;
	}
	o->consumed = off;
	o->done = st.done;
	if (st.done) {
		/* Once done, nothing more is consumed. */
		const char *data;
		size_t dlen;
		const char *why;

		assert_int_equal(http1_chunked_step(&st, "0\r\n", 3, &data, &dlen, &why), 0);
		assert_int_equal(dlen, 0);
		assert_int_equal(st.trailers_len, 0);
	}
}

/* Whole, byte-by-byte and random splits must agree on everything (on the trailer bytes
 * handed back too, unless the input is bad: a failing call reports none of its bytes, so
 * what came before the failure depends on the split).  trailers: the trailer bytes
 * expected, NULL not to check. */
static void ck_check(const char *in, size_t n, int want_err, int want_done, const char *payload,
		     const char *trailers, size_t consumed)
{
	struct ck_out *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	unsigned seed;
	int mode;

	ck_run(in, n, WHOLE, 0, a);
	if (a->err != want_err || a->done != want_done)
		fail_msg("\"%.*s\": err %d done %d", (int)n, in, a->err, a->done);
	if (payload != NULL) {
		assert_int_equal(a->plen, strlen(payload));
		assert_memory_equal(a->payload, payload, a->plen);
	}
	if (trailers != NULL) {
		assert_int_equal(a->tlen, strlen(trailers));
		assert_memory_equal(a->trailers, trailers, a->tlen);
	}
	if (want_done)
		assert_int_equal(a->consumed, consumed);
	for (mode = BYTES; mode <= RANDOM; mode++) {
		for (seed = 1; seed <= (mode == RANDOM ? 50u : 1u); seed++) {
			ck_run(in, n, mode, seed, b);
			assert_int_equal(b->err, a->err);
			assert_int_equal(b->done, a->done);
			assert_int_equal(b->plen, a->plen);
			assert_memory_equal(b->payload, a->payload, a->plen);
			if (!a->err) {
				assert_int_equal(b->tlen, a->tlen);
				assert_memory_equal(b->trailers, a->trailers, a->tlen);
			}
			if (want_done)
				assert_int_equal(b->consumed, a->consumed);
		}
	}
	free(a);
	free(b);
}

#define CK_OK(s, p) ck_check(s, sizeof(s) - 1, 0, 1, p, NULL, sizeof(s) - 1)
#define CK_TR(s, p, t) ck_check(s, sizeof(s) - 1, 0, 1, p, t, sizeof(s) - 1)
#define CK_BAD(s) ck_check(s, sizeof(s) - 1, 1, 0, NULL, NULL, 0)
#define CK_MORE(s) ck_check(s, sizeof(s) - 1, 0, 0, NULL, NULL, 0)

static void test_chunked_valid(void **state)
{
	CK_OK("5\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
	CK_OK("0\r\n\r\n", "");
	CK_OK("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
	CK_OK("0005\r\nhello\r\n000\r\n\r\n", "hello");
	CK_OK("5;name=value;flag;q=\"quoted \\\" str\"\r\nhello\r\n0;last\r\n\r\n", "hello");
	CK_OK("5 ; a=b\r\nhello\r\n0\t;x\r\n\r\n", "hello");
	CK_OK("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nEmpty:\r\nWs: \t v \r\n\r\n", "hello");
	CK_OK("3\r\n\r\nx\r\n0\r\n\r\n", "\r\nx");
	CK_OK("5\r\nhe\xffl\x80\r\n0\r\n\r\n", "he\xffl\x80");
}

/* chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), val = token /
 * quoted-string (RFC 9112 §7.1.1), nothing else before the CRLF. */
static void test_chunk_extensions(void **state)
{
	CK_OK("5;a=b\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;a\r\nhello\r\n0;z\r\n\r\n", "hello");
	CK_OK("5;a;b;c=d\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;a=\"b c;d=e,f\"\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;a=\"\\\"\\\\\\\t\"\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;a=\"\xff\x80\"\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5 \t; \ta \t= \t\"b\" \t;\tc = d\r\nhello\r\n0\r\n\r\n", "hello");
	CK_OK("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", "hello");
	CK_BAD("5;\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5; \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;;a\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a;\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;=b\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a b\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a= \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a==b\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b c\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b,c\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a,b\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b\"c\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\"\"c\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\" \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\\\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\xff\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;\xff\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=(b)\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=\"b\"\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a=b\rhello\r\n0\r\n\r\n");
	CK_BAD("5\r\nhello\r\n0;\r\n\r\n");
}

static void test_chunked_stops_at_end(void **state)
{
	/* The next pipelined message is left alone. */
	static const char s[] = "2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n";

	ck_check(s, sizeof(s) - 1, 0, 1, "ok", "", 12);
}

static void test_chunked_incomplete(void **state)
{
	CK_MORE("5\r\nhello\r\n0\r\n");
	CK_MORE("5\r\nhello\r\n0\r\nX: y\r\n");
	CK_MORE("5\r\nhel");
	CK_MORE("FFFFFFFFFFFFFFFF\r\nabc");
	CK_MORE("5;ext");
}

static void test_chunked_bad(void **state)
{
	CK_BAD("5\nhello\r\n0\r\n\r\n");
	CK_BAD("5\r\nhello\n0\r\n\r\n");
	CK_BAD("5\r\nhelloX\r\n0\r\n\r\n");
	CK_BAD("5\r\nhello\rX0\r\n\r\n");
	CK_BAD("5\r\nhello0\r\n\r\n");
	CK_BAD("5\r\nhelloX\n0\r\n\r\n");
	CK_BAD("5\r\nhello\n\n0\r\n\r\n");
	CK_BAD("g\r\n");
	CK_BAD("\r\n");
	CK_BAD(";a\r\n");
	CK_BAD("-5\r\n");
	CK_BAD("+5\r\n");
	CK_BAD("0x5\r\nhello\r\n");
	CK_BAD(" 5\r\n");
	CK_BAD("5 \r\nhello\r\n0\r\n\r\n");
	CK_BAD("5\rhello");
	CK_BAD("5;a\nb\r\nhello\r\n0\r\n\r\n");
	CK_BAD("5;a\0\r\nhello\r\n");
	CK_BAD("5;a\rb\r\nhello\r\n");
	CK_BAD("5;a\x7f\r\nhello\r\n");
	CK_BAD("5 x\r\nhello\r\n");
	CK_BAD("11111111111111111\r\n");
	CK_BAD("00000000000000000\r\n\r\n");
	CK_BAD("0\r\nX : y\r\n\r\n");
	CK_BAD("0\r\n y\r\n\r\n");
	CK_BAD("0\r\n: y\r\n\r\n");
	CK_BAD("0\r\nX: \x01\r\n\r\n");
	CK_BAD("0\r\nX: y\n\r\n");
	CK_BAD("0\r\nX\r\n\r\n");
	CK_BAD("0\r\n\r\r");
	CK_BAD("0\r\n\n");
	CK_BAD("0\r\r\n\r\n");
	CK_BAD("0\n\r\n");
}

static void test_chunked_error_keeps_data(void **state)
{
	/* Payload before the bad byte reaches the caller however the input is split. */
	static const char s[] = "5\r\nhello\r\n3\r\nabcX\r\n";

	ck_check(s, sizeof(s) - 1, 1, 0, "helloabc", NULL, 0);
}

static void test_chunked_limits(void **state)
{
	size_t n = 16384 + 64, i;
	char *s = malloc(n + 1);
	struct ck_out *o = malloc(sizeof(*o));

	/* Extension line exactly at the limit, then one byte over. */
	s[0] = '1';
	s[1] = ';';
	memset(s + 2, 'e', HTTP1_CHUNK_LINE_MAX - 2);
	memcpy(s + HTTP1_CHUNK_LINE_MAX, "\r\nx\r\n0\r\n\r\n", 10);
	ck_run(s, HTTP1_CHUNK_LINE_MAX + 10, WHOLE, 0, o);
	assert_int_equal(o->done, 1);
	assert_int_equal(o->plen, 1);
	memset(s + 2, 'e', HTTP1_CHUNK_LINE_MAX - 1);
	ck_run(s, HTTP1_CHUNK_LINE_MAX + 1, WHOLE, 0, o);
	assert_int_equal(o->err, 1);
	ck_run(s, HTTP1_CHUNK_LINE_MAX + 1, BYTES, 0, o);
	assert_int_equal(o->err, 1);
	/* BWS is bounded too. */
	s[0] = '1';
	memset(s + 1, ' ', HTTP1_CHUNK_LINE_MAX + 1);
	ck_run(s, HTTP1_CHUNK_LINE_MAX + 2, WHOLE, 0, o);
	assert_int_equal(o->err, 1);

	/* Trailer section: exactly HTTP1_TRAILER_MAX bytes (incl. final CRLF) is fine. */
	memcpy(s, "0\r\nX: ", 6);
	memset(s + 6, 'v', HTTP1_TRAILER_MAX - 7);
	memcpy(s + 3 + HTTP1_TRAILER_MAX - 4, "\r\n\r\n", 4);
	ck_run(s, 3 + HTTP1_TRAILER_MAX, WHOLE, 0, o);
	assert_int_equal(o->done, 1);
	assert_int_equal(o->consumed, 3 + HTTP1_TRAILER_MAX);
	/* ... and handed back whole, but for the final CRLF, however it is split */
	assert_int_equal(o->tlen, HTTP1_TRAILER_MAX - 2);
	assert_memory_equal(o->trailers, s + 3, HTTP1_TRAILER_MAX - 2);
	ck_run(s, 3 + HTTP1_TRAILER_MAX, RANDOM, 3, o);
	assert_int_equal(o->done, 1);
	assert_int_equal(o->tlen, HTTP1_TRAILER_MAX - 2);
	assert_memory_equal(o->trailers, s + 3, HTTP1_TRAILER_MAX - 2);
	memset(s + 6, 'v', HTTP1_TRAILER_MAX - 6);
	memcpy(s + 3 + HTTP1_TRAILER_MAX - 3, "\r\n\r\n", 4);
	ck_run(s, 4 + HTTP1_TRAILER_MAX, WHOLE, 0, o);
	assert_int_equal(o->err, 1);
	assert_int_equal(o->tlen, 0);
	ck_run(s, 4 + HTTP1_TRAILER_MAX, BYTES, 0, o);
	assert_int_equal(o->err, 1);
	assert_true(o->tlen <= HTTP1_TRAILER_MAX);
	/* Many small trailer lines add up. */
	memcpy(s, "0\r\n", 3);
	for (i = 3; i + 6 <= n; i += 6)
		memcpy(s + i, "A: b\r\n", 6);
	ck_run(s, i, WHOLE, 0, o);
	assert_int_equal(o->err, 1);
	free(s);
	free(o);
}

static void test_chunked_big_chunk(void **state)
{
	/* 0x1000 bytes of data split into several calls; data pointers stay in the buffer. */
	size_t n = 6 + 0x1000 + 7, i;
	char *s = malloc(n);
	char *want = malloc(0x1001);

	memcpy(s, "1000\r\n", 6);
	for (i = 0; i < 0x1000; i++)
		want[i] = s[6 + i] = (char)('a' + i % 26);
	want[0x1000] = '\0';
	memcpy(s + 6 + 0x1000, "\r\n0\r\n\r\n", 7);
	ck_check(s, n, 0, 1, NULL, "", n);
	{
		struct ck_out *o = malloc(sizeof(*o));

		ck_run(s, n, RANDOM, 7, o);
		assert_int_equal(o->plen, 0x1000);
		assert_memory_equal(o->payload, want, 0x1000);
		free(o);
	}
	free(s);
	free(want);
}

static void test_chunked_trailers(void **state)
{
	static const char grpc[] = "5\r\nhello\r\n0\r\ngrpc-status: 0\r\ngrpc-message: all good\r\n"
				   "\r\nGET / HTTP/1.1\r\n";
	static const char part[] = "0\r\nX: y\r\nZ: ";

	/* One field, several, odd but valid ones (kept byte for byte: OWS, empty values,
	 * obs-text), and after a last-chunk with an extension. */
	CK_TR("5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", "hello", "X-Trailer: 1\r\n");
	CK_TR("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nEmpty:\r\nWs: \t v \r\n\r\n", "hello",
	      "X-Trailer: 1\r\nEmpty:\r\nWs: \t v \r\n");
	CK_TR("0;last=1\r\nA:b\r\nc-d: \xff\x80\r\n\r\n", "", "A:b\r\nc-d: \xff\x80\r\n");
	/* An empty trailer section hands back nothing. */
	CK_TR("0\r\n\r\n", "", "");
	CK_TR("5\r\nhello\r\n0;x\r\n\r\n", "hello", "");
	/* The next pipelined message is neither consumed nor taken for a trailer. */
	ck_check(grpc, sizeof(grpc) - 1, 0, 1, "hello",
		 "grpc-status: 0\r\ngrpc-message: all good\r\n", sizeof(grpc) - 1 - 16);
	/* Unfinished: what was consumed is handed back, whatever the split. */
	ck_check(part, sizeof(part) - 1, 0, 0, NULL, "X: y\r\nZ: ", 0);
	/* Bad fields still fail (ck_run: the failing call reports no trailer byte). */
	CK_BAD("0\r\nA: b\r\nX : y\r\n\r\n");
	CK_BAD("0\r\nA: b\r\n y\r\n\r\n");
	CK_BAD("0\r\nA: b\r\nB: \x7f\r\n\r\n");
	CK_BAD("0\r\nA: b\nB: c\r\n\r\n");
	CK_BAD("0\r\nA: b\r\n\r\r");
}

/* The runs of each call, fed in three pieces: the final CRLF is never part of one. */
static void test_chunked_trailer_runs(void **state)
{
	struct http1_chunked st;
	const char *data, *why = NULL;
	const char *p1 = "3\r\nabc\r\n0\r\nA: b\r", *p2 = "\nC: d\r\n\r", *p3 = "\nrest";
	size_t dlen;

	memset(&st, 0, sizeof(st));
	assert_int_equal(http1_chunked_step(&st, p1, strlen(p1), &data, &dlen, &why), 6);
	assert_int_equal(dlen, 3); /* the payload stops the call */
	assert_null(st.trailers);
	assert_int_equal(http1_chunked_step(&st, p1 + 6, strlen(p1) - 6, &data, &dlen, &why),
			 (ssize_t)strlen(p1) - 6);
	assert_int_equal(dlen, 0);
	assert_ptr_equal(st.trailers, p1 + 11);
	assert_int_equal(st.trailers_len, 5); /* "A: b\r" */
	assert_int_equal(http1_chunked_step(&st, p2, strlen(p2), &data, &dlen, &why),
			 (ssize_t)strlen(p2));
	assert_ptr_equal(st.trailers, p2);
	assert_int_equal(st.trailers_len, 7); /* "\nC: d\r\n", not the CR that follows */
	assert_false(st.done);
	assert_int_equal(http1_chunked_step(&st, p3, strlen(p3), &data, &dlen, &why), 1);
	assert_true(st.done);
	assert_null(st.trailers);
	assert_int_equal(st.trailers_len, 0);
}

static void test_chunked_after_error(void **state)
{
	struct http1_chunked st;
	const char *data, *why = NULL;
	size_t dlen;

	memset(&st, 0, sizeof(st));
	assert_int_equal(http1_chunked_step(&st, "z", 1, &data, &dlen, &why), MG_EBAD);
	why = NULL;
	assert_int_equal(http1_chunked_step(&st, "5\r\n", 3, &data, &dlen, &why), MG_EBAD);
	assert_non_null(why);
	memset(&st, 0, sizeof(st));
	assert_int_equal(http1_chunked_step(&st, "", 0, &data, &dlen, &why), 0);
	assert_int_equal(dlen, 0);
}

/* A full chunked request: head, framing decision, body. */
static void test_chunked_request_end_to_end(void **state)
{
	static const char s[] = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
				"4;x=1\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n";
	struct preq p;
	enum http1_body_kind kind;
	uint64_t len;
	int st;
	const char *why;
	struct ck_out *o = malloc(sizeof(*o));

	assert_true(parse_req_lim(&p, 1, s, sizeof(s) - 1, &deflim) > 0);
	assert_int_equal(http1_request_framing(&p.r, &kind, &len, &st, &why), MG_OK);
	assert_int_equal(kind, HTTP1_BODY_CHUNKED);
	ck_check(s + p.rc, sizeof(s) - 1 - (size_t)p.rc, 0, 1, "Wikipedia", "Expires: never\r\n",
		 sizeof(s) - 1 - (size_t)p.rc);
	ck_run(s + p.rc, sizeof(s) - 1 - (size_t)p.rc, BYTES, 0, o);
	assert_int_equal(o->plen, 9);
	free(o);
}

/* ---- helpers ------------------------------------------------------------------------ */

static void test_helpers(void **state)
{
	assert_true(http1_name_eq("Content-Length", 14, "content-length"));
	assert_true(http1_name_eq("HOST", 4, "host"));
	assert_true(http1_name_eq("XYZ@[`{", 7, "xyz@[`{"));
	assert_false(http1_name_eq("@", 1, "`"));
	assert_false(http1_name_eq("[", 1, "{"));
	assert_false(http1_name_eq("`", 1, "@"));
	assert_false(http1_name_eq("Host", 3, "host"));
	assert_false(http1_name_eq("Hosts", 5, "host"));
	assert_false(http1_name_eq("Hos\xd4", 4, "host"));
	assert_true(http1_list_has("keep-alive, Upgrade", 19, "upgrade"));
	assert_true(http1_list_has(" ,close ,", 9, "close"));
	assert_true(http1_list_has("a,\tclose\t", 9, "close"));
	assert_false(http1_list_has("closed", 6, "close"));
	assert_false(http1_list_has("close", 4, "close"));
	assert_false(http1_list_has("", 0, "close"));
	assert_false(http1_list_has("x close", 7, "close"));
	assert_false(http1_list_has(", ,", 3, ""));
}

/* http1_lower8 folds exactly the bytes 'A'..'Z', in every lane; http1_caseeq agrees with a
 * byte-by-byte fold for every length around the word size. */
static void test_caseeq(void **state)
{
	static const char lit[] = "x-forwarded-client-cert";
	char buf[sizeof(lit)];

	(void)state;
	for (unsigned c = 0; c < 256; c++) {
		for (int lane = 0; lane < 8; lane++) {
			uint64_t x = 0x4142435a5b607a7bULL, got, want = 0;

			((unsigned char *)&x)[lane] = (unsigned char)c;
			got = http1_lower8(x);
			for (int i = 0; i < 8; i++) {
				unsigned b = ((unsigned char *)&x)[i];

				((unsigned char *)&want)[i] =
				    (unsigned char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
			}
			assert_true(got == want);
		}
	}
	for (size_t n = 0; n < sizeof(lit); n++) {
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)(i % 2 ? lit[i] - (lit[i] >= 'a' && lit[i] <= 'z' ? 32 : 0)
					      : lit[i]);
		assert_true(http1_caseeq(buf, lit, n));
		for (size_t i = 0; i < n; i++) {
			char keep = buf[i];

			buf[i] = keep == '-' ? '\r' : '_'; /* '\r' | 0x20 would be '-' */
			assert_false(http1_caseeq(buf, lit, n));
			buf[i] = keep;
		}
	}
	assert_true(HTTP1_NAME_IS("Content-Length", 14, "content-length"));
	assert_false(HTTP1_NAME_IS("Content-Lengths", 15, "content-length"));
	assert_false(HTTP1_NAME_IS("content-lengtH\x00", 13, "content-length"));
}

/* The chunk-size line every writer of chunked framing uses: hex, no leading zeros, CRLF;
 * it reads back with the chunked decoder. */
static void test_chunk_size_line(void **state)
{
	static const uint64_t sizes[] = {
	    0, 1, 9, 10, 15, 16, 255, 4096, 16384, 65535, 0x123456789ULL, UINT64_MAX};
	char line[HTTP1_CHUNK_SIZE_LINE], want[32];

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = http1_chunk_size_line(sizes[i], line);

		snprintf(want, sizeof(want), "%llx\r\n", (unsigned long long)sizes[i]);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(line, want, n);
	}
	assert_int_equal(http1_chunk_size_line(UINT64_MAX, line), HTTP1_CHUNK_SIZE_LINE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunk_size_line),
	    cmocka_unit_test(test_caseeq),
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_ows_and_values),
	    cmocka_unit_test(test_valid_splits),
	    cmocka_unit_test(test_leading_empty_lines),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_http10),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_underscore_names),
	    cmocka_unit_test(test_nul_in_value),
	    cmocka_unit_test(test_byte_classes),
	    cmocka_unit_test(test_limit_request_line),
	    cmocka_unit_test(test_limit_head),
	    cmocka_unit_test(test_limit_count),
	    cmocka_unit_test(test_request_framing),
	    cmocka_unit_test(test_responses),
	    cmocka_unit_test(test_bad_responses),
	    cmocka_unit_test(test_response_limits),
	    cmocka_unit_test(test_response_framing),
	    cmocka_unit_test(test_chunked_valid),
	    cmocka_unit_test(test_chunk_extensions),
	    cmocka_unit_test(test_chunked_stops_at_end),
	    cmocka_unit_test(test_chunked_incomplete),
	    cmocka_unit_test(test_chunked_bad),
	    cmocka_unit_test(test_chunked_error_keeps_data),
	    cmocka_unit_test(test_chunked_limits),
	    cmocka_unit_test(test_chunked_big_chunk),
	    cmocka_unit_test(test_chunked_trailers),
	    cmocka_unit_test(test_chunked_trailer_runs),
	    cmocka_unit_test(test_chunked_after_error),
	    cmocka_unit_test(test_chunked_request_end_to_end),
	    cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
