/* authzpb.c: the CheckRequest meshgate sends a gRPC authorizer, byte for byte (hand-counted
 * encodings, and a walker that follows field numbers for larger ones), and the
 * CheckResponse it reads: Istio's sample answers, every HeaderValueOption field, unknown
 * fields of every wire type skipped, the oneof's last member winning, and malformed input
 * refused with a reason.  Inputs to the parser end where a PROT_NONE page begins, so a read
 * past the end crashes the test. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "authzpb.h"
#include "errors.h"

#define ARENA (64 * 1024)

/* ---- guard-page input ---- */

static unsigned char *arena;

static const uint8_t *at_guard(const void *s, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	assert_true(n <= ARENA);
	if (arena == NULL) {
		void *m = mmap(NULL, ARENA + pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(m != MAP_FAILED);
		assert_int_equal(mprotect((unsigned char *)m + ARENA, pg, PROT_NONE), 0);
		arena = m;
	}
	if (n > 0)
		memcpy(arena + ARENA - n, s, n);
	return arena + ARENA - n;
}

/* ---- a small message builder for the parser's inputs (lengths below 128 only) ---- */

struct b {
	uint8_t p[4096];
	size_t n;
};

static void b_raw(struct b *b, const void *s, size_t n)
{
	assert_true(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void b_varint(struct b *b, uint64_t v)
{
	while (v >= 0x80) {
		uint8_t c = (uint8_t)(v | 0x80);

		b_raw(b, &c, 1);
		v >>= 7;
	}
	b_raw(b, &(uint8_t){(uint8_t)v}, 1);
}

static void b_tag(struct b *b, unsigned field, unsigned wt)
{
	b_varint(b, (uint64_t)field << 3 | wt);
}

static void b_bytes(struct b *b, unsigned field, const void *s, size_t n)
{
	b_tag(b, field, 2);
	b_varint(b, n);
	b_raw(b, s, n);
}

static void b_str(struct b *b, unsigned field, const char *s)
{
	b_bytes(b, field, s, strlen(s));
}

static void b_msg(struct b *b, unsigned field, const struct b *in)
{
	b_bytes(b, field, in->p, in->n);
}

static void b_uint(struct b *b, unsigned field, uint64_t v)
{
	b_tag(b, field, 0);
	b_varint(b, v);
}

/* HeaderValueOption {header {key, value}} with append given when append >= 0. */
static void b_hvo(struct b *b, unsigned field, const char *key, const char *value, int append)
{
	struct b hv = {.n = 0}, opt = {.n = 0}, bv = {.n = 0};

	b_str(&hv, 1, key);
	b_str(&hv, 2, value);
	b_msg(&opt, 1, &hv);
	if (append >= 0) {
		b_uint(&bv, 1, (uint64_t)append);
		b_msg(&opt, 2, &bv);
	}
	b_msg(b, field, &opt);
}

static int parse(const struct b *b, struct authzpb_response *r, const char **why)
{
	*why = NULL;
	return authzpb_response_parse(at_guard(b->p, b->n), b->n, r, why);
}

static bool str_is(const struct authzpb_str *s, const char *want)
{
	return s->len == strlen(want) && memcmp(s->p, want, s->len) == 0;
}

/* ---- a walker over encoded output: the bytes of the first field at a path ---- */

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;

	for (unsigned shift = 0; *p < end; shift += 7) {
		uint8_t c = *(*p)++;

		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	fail_msg("truncated varint in the encoding");
	return 0;
}

/* Follow fields path[0..n) (the nth occurrence of the last one, from 0) through embedded
 * messages; the field's bytes (length-delimited) or its varint in *v.  False when
 * absent. */
static bool walk(const uint8_t *p, size_t len, const unsigned *path, size_t n, unsigned nth,
		 const uint8_t **out, size_t *out_len, uint64_t *v)
{
	const uint8_t *end = p + len;

	while (p < end) {
		uint64_t tag = rd_varint(&p, end), l = 0;
		unsigned wt = (unsigned)(tag & 7);
		const uint8_t *body = p;

		if (wt == 0)
			*v = rd_varint(&p, end);
		else if (wt == 2) {
			l = rd_varint(&p, end);
			assert_true(l <= (uint64_t)(end - p));
			body = p;
			p += l;
		} else {
			fail_msg("unexpected wire type %u in the encoding", wt);
		}
		if ((tag >> 3) != path[0])
			continue;
		if (n == 1) {
			if (nth-- > 0)
				continue;
			*out = body;
			*out_len = (size_t)l;
			return true;
		}
		assert_int_equal(wt, 2);
		return walk(body, (size_t)l, path + 1, n - 1, nth, out, out_len, v);
	}
	return false;
}

/* ---- encoding ---- */

static void test_encode_bytes(void **state)
{
	static const struct authzpb_field h[] = {
	    {"X-A", 3, "1", 1},
	    {"content-type", 12, "text/plain", 10},
	    {"x-a", 3, "2", 1},
	};
	/* clang-format off */
	static const uint8_t want[] = {
	    0x0a, 0x48,                                           /* attributes */
	    0x0a, 0x11,                                           /* source */
	    0x0a, 0x0f,                                           /* address */
	    0x0a, 0x0d,                                           /* socket_address */
	    0x12, 0x08, '1', '0', '.', '0', '.', '0', '.', '1',   /* address */
	    0x18, 0xd2, 0x09,                                     /* port_value 1234 */
	    0x22, 0x33,                                           /* request */
	    0x12, 0x31,                                           /* http */
	    0x12, 0x03, 'G', 'E', 'T',                            /* method */
	    0x1a, 0x0a, 0x0a, 0x03, 'x', '-', 'a', 0x12, 0x03, '1', ',', '2', /* headers */
	    0x1a, 0x1a, 0x0a, 0x0c, 'c', 'o', 'n', 't', 'e', 'n', 't', '-', 't', 'y', 'p', 'e',
	    0x12, 0x0a, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', /* headers */
	    0x22, 0x02, '/', 'a',                                 /* path */
	};
	/* clang-format on */
	struct authzpb_check c;
	uint8_t out[256];
	ssize_t n;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.source.address = "10.0.0.1";
	c.source.port = 1234;
	c.method = (struct authzpb_str){"GET", 3};
	c.path = (struct authzpb_str){"/a", 2};
	c.headers = h;
	c.nheaders = 3;
	n = authzpb_check_encode(&c, out, sizeof(out));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* every buffer too small by any amount says so, and writes nothing past its end */
	for (size_t cap = 0; cap < sizeof(want); cap++) {
		memset(out, 0xee, sizeof(out));
		assert_int_equal(authzpb_check_encode(&c, out, cap), -1);
		assert_int_equal(out[cap], 0xee);
	}
}

/* Everything set; lengths past 127 (two-byte length prefixes, content moved on). */
static void test_encode_fields(void **state)
{
	char big[300];
	struct authzpb_field h[] = {
	    {":authority", 10, "a.example", 9},
	    {"x-big", 5, big, sizeof(big)},
	    {"X-Envoy-Auth-Partial-Body", 25, "true", 4},
	    {"x-odd", 5,
	     "a\xff"
	     "b\xc3\xa9\xe2\x82",
	     7},
	    {"x-empty", 7, "", 0},
	};
	static const unsigned src_addr[] = {1, 1, 1, 1, 2}, src_port[] = {1, 1, 1, 1, 3},
			      src_pr[] = {1, 1, 4}, dst_addr[] = {1, 2, 1, 1, 2},
			      secs[] = {1, 4, 1, 1}, nanos[] = {1, 4, 1, 2}, id[] = {1, 4, 2, 1},
			      hdr[] = {1, 4, 2, 3}, host[] = {1, 4, 2, 5}, scheme[] = {1, 4, 2, 6},
			      size[] = {1, 4, 2, 9}, proto[] = {1, 4, 2, 10}, k[] = {1},
			      val[] = {2};
	struct authzpb_check c;
	static uint8_t out[4096];
	const uint8_t *f, *e;
	size_t fl, el;
	uint64_t v = 0;
	ssize_t n;

	(void)state;
	memset(big, 'v', sizeof(big));
	memset(&c, 0, sizeof(c));
	c.source.address = "192.0.2.7";
	c.source.port = 40000;
	c.source.principal = "spiffe://cluster.local/ns/foo/sa/a";
	c.destination.address = "::1";
	c.has_time = true;
	c.time_sec = 1700000000;
	c.time_nsec = 5;
	c.id = (struct authzpb_str){"42", 2};
	c.host = (struct authzpb_str){"a.example", 9};
	c.scheme = (struct authzpb_str){"https", 5};
	c.protocol = (struct authzpb_str){"HTTP/2", 6};
	c.size = 17;
	c.headers = h;
	c.nheaders = 5;
	n = authzpb_check_encode(&c, out, sizeof(out));
	assert_true(n > 300);

	assert_true(walk(out, (size_t)n, src_addr, 5, 0, &f, &fl, &v));
	assert_true(fl == 9 && memcmp(f, "192.0.2.7", 9) == 0);
	assert_true(walk(out, (size_t)n, src_port, 5, 0, &f, &fl, &v));
	assert_int_equal(v, 40000);
	assert_true(walk(out, (size_t)n, src_pr, 3, 0, &f, &fl, &v));
	assert_true(fl == 34 && memcmp(f, "spiffe://cluster.local/ns/foo/sa/a", 34) == 0);
	assert_true(walk(out, (size_t)n, dst_addr, 5, 0, &f, &fl, &v));
	assert_true(fl == 3 && memcmp(f, "::1", 3) == 0);
	/* no port given: none encoded */
	assert_false(walk(out, (size_t)n, (const unsigned[]){1, 2, 1, 1, 3}, 5, 0, &f, &fl, &v));
	assert_true(walk(out, (size_t)n, secs, 4, 0, &f, &fl, &v));
	assert_int_equal(v, 1700000000);
	assert_true(walk(out, (size_t)n, nanos, 4, 0, &f, &fl, &v));
	assert_int_equal(v, 5);
	assert_true(walk(out, (size_t)n, id, 4, 0, &f, &fl, &v));
	assert_true(fl == 2 && memcmp(f, "42", 2) == 0);
	assert_true(walk(out, (size_t)n, host, 4, 0, &f, &fl, &v));
	assert_true(walk(out, (size_t)n, scheme, 4, 0, &f, &fl, &v));
	assert_true(fl == 5 && memcmp(f, "https", 5) == 0);
	assert_true(walk(out, (size_t)n, size, 4, 0, &f, &fl, &v));
	assert_int_equal(v, 17);
	assert_true(walk(out, (size_t)n, proto, 4, 0, &f, &fl, &v));
	assert_true(fl == 6 && memcmp(f, "HTTP/2", 6) == 0);
	/* method and path not given: left out */
	assert_false(walk(out, (size_t)n, (const unsigned[]){1, 4, 2, 2}, 4, 0, &f, &fl, &v));
	assert_false(walk(out, (size_t)n, (const unsigned[]){1, 4, 2, 4}, 4, 0, &f, &fl, &v));

	/* the map: :authority, x-big (a 300-byte value), x-odd made UTF-8, x-empty with no
	 * value; the client's x-envoy-auth-partial-body left out */
	assert_true(walk(out, (size_t)n, hdr, 4, 0, &e, &el, &v));
	assert_true(walk(e, el, k, 1, 0, &f, &fl, &v));
	assert_true(fl == 10 && memcmp(f, ":authority", 10) == 0);
	assert_true(walk(out, (size_t)n, hdr, 4, 1, &e, &el, &v));
	assert_true(walk(e, el, val, 1, 0, &f, &fl, &v));
	assert_true(fl == sizeof(big) && memcmp(f, big, sizeof(big)) == 0);
	assert_true(walk(out, (size_t)n, hdr, 4, 2, &e, &el, &v));
	assert_true(walk(e, el, k, 1, 0, &f, &fl, &v));
	assert_true(fl == 5 && memcmp(f, "x-odd", 5) == 0);
	assert_true(walk(e, el, val, 1, 0, &f, &fl, &v));
	assert_true(fl == 7 && memcmp(f, "a!b\xc3\xa9!!", 7) == 0);
	assert_true(walk(out, (size_t)n, hdr, 4, 3, &e, &el, &v));
	assert_true(walk(e, el, k, 1, 0, &f, &fl, &v));
	assert_true(fl == 7 && memcmp(f, "x-empty", 7) == 0);
	assert_false(walk(e, el, val, 1, 0, &f, &fl, &v));
	assert_false(walk(out, (size_t)n, hdr, 4, 4, &e, &el, &v));
}

/* Invalid UTF-8 forms, each byte that starts no valid sequence replaced on its own. */
static void test_encode_utf8(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"\xc0\xaf", "!!"},           /* overlong */
	    {"\xe0\x80\xaf", "!!!"},      /* overlong */
	    {"\xed\xa0\x80", "!!!"},      /* surrogate */
	    {"\xf4\x90\x80\x80", "!!!!"}, /* above U+10FFFF */
	    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
	    {"\xe2\x82\xac\xe2", "\xe2\x82\xac!"},
	    {"\x80x", "!x"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct authzpb_check c;
		uint8_t out[64];
		const uint8_t *f;
		size_t fl;
		uint64_t v;
		ssize_t n;

		memset(&c, 0, sizeof(c));
		c.method = (struct authzpb_str){cases[i].in, strlen(cases[i].in)};
		n = authzpb_check_encode(&c, out, sizeof(out));
		assert_true(n > 0);
		assert_true(
		    walk(out, (size_t)n, (const unsigned[]){1, 4, 2, 2}, 4, 0, &f, &fl, &v));
		assert_int_equal(fl, strlen(cases[i].out));
		assert_memory_equal(f, cases[i].out, fl);
	}
}

/* ---- decoding ---- */

/* Istio's sample authorizer allowing: status OK, ok_response with its three headers. */
static void test_decode_allowed(void **state)
{
	struct b m = {.n = 0}, st = {.n = 0}, ok = {.n = 0};
	struct authzpb_response r;
	const char *why;

	(void)state;
	b_hvo(&ok, 2, "x-ext-authz-check-result", "allowed", -1);
	b_hvo(&ok, 2, "x-ext-authz-check-received", "source:{address:{socket_address:{}}}", -1);
	b_hvo(&ok, 2, "x-ext-authz-additional-header-override",
	      "grpc-additional-header-override-value", -1);
	b_msg(&m, 1, &st); /* Status{code: OK}: an empty message */
	b_msg(&m, 3, &ok);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.kind, AUTHZPB_OK);
	assert_int_equal(r.nheaders, 3);
	assert_true(str_is(&r.headers[0].key, "x-ext-authz-check-result"));
	assert_true(str_is(&r.headers[0].value, "allowed"));
	assert_false(r.headers[0].has_append);
	assert_true(str_is(&r.headers[2].value, "grpc-additional-header-override-value"));
	assert_int_equal(r.nremove + r.nresponse_headers, 0);

	/* nothing at all: OK, no http_response */
	m.n = 0;
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.kind, AUTHZPB_NONE);
}

/* Istio's sample denying: PERMISSION_DENIED, 403, its header and body. */
static void test_decode_denied(void **state)
{
	static const char body[] =
	    "denied by ext_authz for not found header `x-ext-authz: allow` in the request";
	struct b m = {.n = 0}, st = {.n = 0}, hs = {.n = 0}, den = {.n = 0};
	struct authzpb_response r;
	const char *why;

	(void)state;
	b_uint(&st, 1, 7);
	b_str(&st, 2, "permission denied");
	b_uint(&hs, 1, 403);
	b_msg(&den, 1, &hs);
	b_hvo(&den, 2, "x-ext-authz-check-result", "denied", -1);
	b_str(&den, 3, body);
	b_msg(&m, 1, &st);
	b_msg(&m, 2, &den);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, 7);
	assert_true(str_is(&r.message, "permission denied"));
	assert_int_equal(r.kind, AUTHZPB_DENIED);
	assert_int_equal(r.http_status, 403);
	assert_true(str_is(&r.body, body));
	assert_int_equal(r.nheaders, 1);
	assert_true(str_is(&r.headers[0].value, "denied"));

	/* denied with no denied_response: a code and nothing else */
	m.n = 0;
	st.n = 0;
	b_uint(&st, 1, 16);
	b_msg(&m, 1, &st);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, 16);
	assert_int_equal(r.kind, AUTHZPB_NONE);
	assert_int_equal(r.http_status, 0);

	/* an int32 code below zero comes as ten bytes, sign-extended */
	m.n = 0;
	st.n = 0;
	b_uint(&st, 1, UINT64_MAX);
	b_msg(&m, 1, &st);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, -1);
}

/* append (BoolValue) and append_action, headers_to_remove, response_headers_to_add. */
static void test_decode_ok_fields(void **state)
{
	struct b m = {.n = 0}, ok = {.n = 0}, hv = {.n = 0}, opt = {.n = 0};
	struct authzpb_response r;
	const char *why;

	(void)state;
	b_hvo(&ok, 2, "x-set", "1", 0);
	b_hvo(&ok, 2, "x-append", "2", 1);
	b_str(&ok, 5, "authorization");
	b_str(&ok, 5, "cookie");
	b_str(&hv, 1, "set-cookie");
	b_str(&hv, 2, "a=b");
	b_msg(&opt, 1, &hv);
	b_uint(&opt, 3, 2); /* OVERWRITE_IF_EXISTS_OR_ADD */
	b_msg(&ok, 6, &opt);
	b_hvo(&ok, 6, "x-resp", "r", 1);
	b_msg(&m, 3, &ok);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.kind, AUTHZPB_OK);
	assert_int_equal(r.nheaders, 2);
	assert_true(r.headers[0].has_append && !r.headers[0].append);
	assert_true(r.headers[1].has_append && r.headers[1].append);
	assert_int_equal(r.nremove, 2);
	assert_true(str_is(&r.remove[0], "authorization"));
	assert_true(str_is(&r.remove[1], "cookie"));
	assert_int_equal(r.nresponse_headers, 2);
	assert_true(str_is(&r.response_headers[0].key, "set-cookie"));
	assert_false(r.response_headers[0].has_append);
	assert_int_equal(r.response_headers[0].append_action, 2);
	assert_true(r.response_headers[1].append);
}

/* Unknown fields of every wire type, at every level, are skipped; a known field given
 * twice: the last scalar wins, repeated ones add up. */
static void test_decode_unknown(void **state)
{
	struct b m = {.n = 0}, st = {.n = 0}, den = {.n = 0}, hs = {.n = 0}, any = {.n = 0};
	static const uint8_t fixed64[8] = {1, 2, 3, 4, 5, 6, 7, 8}, fixed32[4] = {9, 9, 9, 9};
	struct authzpb_response r;
	const char *why;

	(void)state;
	b_str(&any, 1, "type.googleapis.com/x");
	b_uint(&st, 1, 5);
	b_uint(&st, 1, 7);   /* the last one */
	b_msg(&st, 3, &any); /* details: skipped */
	b_uint(&hs, 1, 401);
	b_uint(&hs, 2, 9); /* unknown */
	b_msg(&den, 1, &hs);
	b_tag(&den, 90, 1);
	b_raw(&den, fixed64, 8);
	b_tag(&den, 91, 5);
	b_raw(&den, fixed32, 4);
	b_tag(&den, 92, 3); /* a group, with a group inside */
	b_uint(&den, 1, 1);
	b_tag(&den, 93, 3);
	b_str(&den, 2, "x");
	b_tag(&den, 93, 4);
	b_tag(&den, 92, 4);
	b_str(&den, 3, "first");
	b_str(&den, 3, "body");
	b_msg(&m, 1, &st);
	b_uint(&m, 100000, 1);
	b_str(&m, 4, "metadata is skipped");
	b_msg(&m, 2, &den);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.code, 7);
	assert_int_equal(r.http_status, 401);
	assert_true(str_is(&r.body, "body"));
}

/* The oneof: the member given last wins, and the other's fields go with it. */
static void test_decode_oneof(void **state)
{
	struct b m = {.n = 0}, den = {.n = 0}, ok = {.n = 0}, hs = {.n = 0};
	struct authzpb_response r;
	const char *why;

	(void)state;
	b_uint(&hs, 1, 418);
	b_msg(&den, 1, &hs);
	b_hvo(&den, 2, "x-denied", "1", -1);
	b_str(&den, 3, "no");
	b_hvo(&ok, 2, "x-ok", "1", -1);
	b_msg(&m, 2, &den);
	b_msg(&m, 3, &ok);
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.kind, AUTHZPB_OK);
	assert_int_equal(r.http_status, 0);
	assert_int_equal(r.body.len, 0);
	assert_int_equal(r.nheaders, 1);
	assert_true(str_is(&r.headers[0].key, "x-ok"));
	b_msg(&m, 2, &den);
	b_msg(&m, 2, &den); /* given twice: merged, headers add up */
	assert_int_equal(parse(&m, &r, &why), 0);
	assert_int_equal(r.kind, AUTHZPB_DENIED);
	assert_int_equal(r.http_status, 418);
	assert_int_equal(r.nheaders, 2);
	assert_true(str_is(&r.headers[1].key, "x-denied"));
}

static void expect_bad(const struct b *m, const char *why_want)
{
	struct authzpb_response r;
	const char *why;

	assert_int_equal(parse(m, &r, &why), MG_EBAD);
	assert_non_null(why);
	if (strcmp(why, why_want) != 0)
		fail_msg("reason \"%s\", expected \"%s\"", why, why_want);
}

static void test_decode_malformed(void **state)
{
	struct b m, in, ok;

	(void)state;
	m.n = 0;
	b_raw(&m, "\x0a", 1);
	expect_bad(&m, "truncated varint");
	m.n = 0;
	b_raw(&m, "\x38\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11);
	expect_bad(&m, "varint overflows 64 bits");
	m.n = 0;
	b_raw(&m, "\x38\xff\xff\xff\xff\xff\xff\xff\xff\x81\x80\x01", 12);
	expect_bad(&m, "varint overflows 64 bits"); /* an eleventh byte */
	m.n = 0;
	b_raw(&m, "\x0a\x05\x08\x01", 4);
	expect_bad(&m, "length beyond the message");
	m.n = 0;
	b_raw(&m, "\x12\x02\x0a\x05", 4); /* denied_response holding a truncated status */
	expect_bad(&m, "length beyond the message");
	m.n = 0;
	b_uint(&m, 1, 0); /* status must be a message */
	expect_bad(&m, "wire type does not match the field");
	m.n = 0;
	in.n = 0;
	b_str(&in, 1, "7"); /* status.code must be a varint */
	b_msg(&m, 1, &in);
	expect_bad(&m, "wire type does not match the field");
	m.n = 0;
	b_raw(&m, "\x00\x01", 2);
	expect_bad(&m, "bad field number");
	m.n = 0;
	b_raw(&m, "\x0e", 1);
	expect_bad(&m, "bad wire type");
	m.n = 0;
	b_raw(&m, "\x0f", 1);
	expect_bad(&m, "bad wire type");
	m.n = 0;
	b_raw(&m, "\x80\x80\x80\x80\x80\x01", 6); /* tag above 32 bits */
	expect_bad(&m, "bad field number");
	m.n = 0;
	b_raw(&m, "\x39\x01\x02", 3); /* fixed64, cut */
	expect_bad(&m, "truncated fixed-size field");
	m.n = 0;
	b_raw(&m, "\x3d\x01", 2); /* fixed32, cut */
	expect_bad(&m, "truncated fixed-size field");
	m.n = 0;
	b_tag(&m, 9, 3);
	b_uint(&m, 1, 1);
	expect_bad(&m, "unterminated group");
	m.n = 0;
	b_tag(&m, 9, 3);
	b_tag(&m, 8, 4);
	expect_bad(&m, "mismatched end of group");
	m.n = 0;
	b_tag(&m, 9, 4);
	expect_bad(&m, "unexpected end of group");
	m.n = 0;
	for (int i = 0; i < AUTHZPB_DEPTH_MAX + 1; i++)
		b_tag(&m, 9, 3);
	expect_bad(&m, "groups nested too deep");

	/* headers: bounded, names tokens, values field content */
	ok.n = 0;
	for (int i = 0; i <= AUTHZPB_HEADERS_MAX; i++)
		b_hvo(&ok, 2, "x-a", "1", -1);
	m.n = 0;
	b_msg(&m, 3, &ok);
	expect_bad(&m, "too many headers");
	ok.n = 0;
	for (int i = 0; i <= AUTHZPB_HEADERS_MAX; i++)
		b_str(&ok, 5, "x-a");
	m.n = 0;
	b_msg(&m, 3, &ok);
	expect_bad(&m, "too many headers to remove");
	static const char *const bad_names[] = {"", "x a", ":path", "x\r\ny", "é"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		ok.n = m.n = 0;
		b_hvo(&ok, 2, bad_names[i], "1", -1);
		b_msg(&m, 3, &ok);
		expect_bad(&m, "a header name that is not a token");
	}
	static const char *const bad_values[] = {"a\r\nx-evil: 1", "a\nb",  "\x7f",
						 "a\0b",           " lead", "trail\t"};
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		struct b hv = {.n = 0}, opt = {.n = 0};
		size_t vlen = i == 3 ? 3 : strlen(bad_values[i]);

		ok.n = m.n = 0;
		b_str(&hv, 1, "x-a");
		b_bytes(&hv, 2, bad_values[i], vlen);
		b_msg(&opt, 1, &hv);
		b_msg(&ok, 6, &opt);
		b_msg(&m, 3, &ok);
		expect_bad(&m, "a header value that is not field content");
	}
	ok.n = m.n = 0;
	b_str(&ok, 5, "bad name");
	b_msg(&m, 3, &ok);
	expect_bad(&m, "a header name to remove that is not a token");
}

/* Every prefix of a valid answer parses or is refused with a reason, never reading past
 * its end (the guard page). */
static void test_decode_prefixes(void **state)
{
	struct b m = {.n = 0}, st = {.n = 0}, den = {.n = 0}, hs = {.n = 0};

	(void)state;
	b_uint(&st, 1, 7);
	b_uint(&hs, 1, 403);
	b_msg(&den, 1, &hs);
	b_hvo(&den, 2, "x-ext-authz-check-result", "denied", 1);
	b_str(&den, 3, "denied");
	b_msg(&m, 1, &st);
	b_msg(&m, 2, &den);
	for (size_t n = 0; n <= m.n; n++) {
		struct authzpb_response r;
		const char *why = NULL;
		int rc = authzpb_response_parse(at_guard(m.p, n), n, &r, &why);

		assert_true(rc == 0 || (rc == MG_EBAD && why != NULL));
	}
}

/* ---- gRPC framing ---- */

static void test_grpc_frame(void **state)
{
	uint8_t pre[AUTHZPB_GRPC_PREFIX], buf[16];
	const uint8_t *msg;
	size_t len;
	const char *why = NULL;

	(void)state;
	authzpb_grpc_prefix(0x01020304, pre);
	assert_memory_equal(pre, "\x00\x01\x02\x03\x04", 5);
	authzpb_grpc_prefix(3, buf);
	memcpy(buf + 5, "abc", 3);
	for (size_t n = 0; n < 8; n++)
		assert_int_equal(authzpb_grpc_frame(at_guard(buf, n), n, 100, &msg, &len, &why), 0);
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 8), 8, 100, &msg, &len, &why), 8);
	assert_int_equal(len, 3);
	assert_memory_equal(msg, "abc", 3);
	/* more after it: only the first message is taken */
	buf[8] = 0;
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 9), 9, 100, &msg, &len, &why), 8);
	/* an empty message */
	authzpb_grpc_prefix(0, buf);
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 5), 5, 100, &msg, &len, &why), 5);
	assert_int_equal(len, 0);
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 5), 5, 0, &msg, &len, &why), 5);
	/* too large, compressed, a bad flag */
	authzpb_grpc_prefix(101, buf);
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 5), 5, 100, &msg, &len, &why), MG_EBAD);
	assert_string_equal(why, "the gRPC message is too large");
	authzpb_grpc_prefix(1, buf);
	buf[0] = 1;
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 6), 6, 100, &msg, &len, &why), MG_EBAD);
	assert_string_equal(why, "a compressed gRPC message");
	buf[0] = 2;
	assert_int_equal(authzpb_grpc_frame(at_guard(buf, 6), 6, 100, &msg, &len, &why), MG_EBAD);
	assert_string_equal(why, "bad gRPC message flag");
}

static void test_grpc_status(void **state)
{
	(void)state;
	assert_int_equal(authzpb_grpc_status("0", 1), 0);
	assert_int_equal(authzpb_grpc_status(" 7\t", 3), 7);
	assert_int_equal(authzpb_grpc_status("16", 2), 16);
	assert_int_equal(authzpb_grpc_status("2147483647", 10), 2147483647);
	assert_int_equal(authzpb_grpc_status("2147483648", 10), -1);
	assert_int_equal(authzpb_grpc_status("99999999999", 11), -1);
	assert_int_equal(authzpb_grpc_status("", 0), -1);
	assert_int_equal(authzpb_grpc_status("  ", 2), -1);
	assert_int_equal(authzpb_grpc_status("-1", 2), -1);
	assert_int_equal(authzpb_grpc_status("1 2", 3), -1);
	assert_int_equal(authzpb_grpc_status("0x1", 3), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_bytes),     cmocka_unit_test(test_encode_fields),
	    cmocka_unit_test(test_encode_utf8),      cmocka_unit_test(test_decode_allowed),
	    cmocka_unit_test(test_decode_denied),    cmocka_unit_test(test_decode_ok_fields),
	    cmocka_unit_test(test_decode_unknown),   cmocka_unit_test(test_decode_oneof),
	    cmocka_unit_test(test_decode_malformed), cmocka_unit_test(test_decode_prefixes),
	    cmocka_unit_test(test_grpc_frame),       cmocka_unit_test(test_grpc_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
