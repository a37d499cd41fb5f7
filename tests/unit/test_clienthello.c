/* Unit tests for src/clienthello.c: real ClientHellos written by OpenSSL's client (TLS 1.2
 * and 1.3, with and without SNI and ALPN, through memory BIOs), re-fragmented over records
 * of every size, cut at every length, and hand-built malformed ones.  Every input is parsed
 * from an exact-size heap copy, so sanitizers see any read past its end. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "clienthello.h"
#include "errors.h"

static uint8_t scratch[CLIENTHELLO_SCRATCH];

/* What OpenSSL's client sends first: its ClientHello records. */
static size_t openssl_hello(uint8_t *out, size_t cap, const char *sni, int max_version,
			    const char *alpn, size_t alpn_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rb, *wb;
	int n;

	assert_non_null(ctx);
	assert_true(SSL_CTX_set_max_proto_version(ctx, max_version));
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rb, wb);
	if (sni != NULL)
		assert_true(SSL_set_tlsext_host_name(ssl, sni));
	if (alpn != NULL)
		assert_int_equal(
		    SSL_set_alpn_protos(ssl, (const unsigned char *)alpn, (unsigned)alpn_len), 0);
	SSL_set_connect_state(ssl);
	assert_true(SSL_do_handshake(ssl) <= 0); /* waits for the ServerHello */
	n = BIO_read(wb, out, (int)cap);
	assert_true(n > 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

/* Parse an exact-size copy of buf[0..len). */
static int parse(const uint8_t *buf, size_t len, struct clienthello *ch, const char **why)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	rc = clienthello_parse(copy, len, scratch, ch, why);
	assert_true(rc == MG_OK || rc == MG_AGAIN || rc == MG_EBAD);
	assert_true(rc != MG_EBAD || *why != NULL);
	if (rc == MG_OK) {
		assert_true(ch->wire_len <= len);
		/* Copy what is checked out before the buffer goes. */
		if (ch->sni != NULL && (const uint8_t *)ch->sni >= copy &&
		    (const uint8_t *)ch->sni < copy + len) {
			static char keep[256];

			memcpy(keep, ch->sni, ch->sni_len);
			ch->sni = keep;
		}
		if (ch->alpn != NULL && ch->alpn >= copy && ch->alpn < copy + len) {
			static uint8_t keep_alpn[1024];

			assert_true(ch->alpn_len <= sizeof(keep_alpn));
			memcpy(keep_alpn, ch->alpn, ch->alpn_len);
			ch->alpn = keep_alpn;
		}
	}
	free(copy);
	return rc;
}

/* The handshake message carried by the records of a single-message hello. */
static size_t message_of(const uint8_t *rec, size_t len, uint8_t *msg)
{
	size_t off = 0, n = 0;

	while (off + 5 <= len) {
		size_t plen = (size_t)rec[off + 3] << 8 | rec[off + 4];

		memcpy(msg + n, rec + off + 5, plen);
		n += plen;
		off += 5 + plen;
	}
	return n;
}

/* msg cut into records of at most `size` bytes. */
static size_t fragment(const uint8_t *msg, size_t mlen, size_t size, uint8_t *out)
{
	size_t off = 0, n = 0;

	while (off < mlen) {
		size_t k = mlen - off < size ? mlen - off : size;

		out[n++] = 22;
		out[n++] = 3;
		out[n++] = 1;
		out[n++] = (uint8_t)(k >> 8);
		out[n++] = (uint8_t)k;
		memcpy(out + n, msg + off, k);
		n += k;
		off += k;
	}
	return n;
}

static void assert_sni(const struct clienthello *ch, const char *want)
{
	if (want == NULL) {
		assert_null(ch->sni);
		return;
	}
	assert_non_null(ch->sni);
	assert_int_equal(ch->sni_len, strlen(want));
	assert_memory_equal(ch->sni, want, ch->sni_len);
}

/* Every strict prefix of a complete hello asks for more. */
static void assert_prefixes_again(const uint8_t *buf, size_t len)
{
	struct clienthello ch;
	const char *why;

	for (size_t i = 0; i < len; i++)
		if (parse(buf, i, &ch, &why) != MG_AGAIN)
			fail_msg("prefix of %zu/%zu bytes: not MG_AGAIN (%s)", i, len,
				 why ? why : "ok");
}

static void test_openssl_tls13(void **state)
{
	static const char alpn[] = "\x02h2\x08http/1.1";
	uint8_t buf[4096];
	size_t n = openssl_hello(buf, sizeof(buf), "Nginx.Example.com", TLS1_3_VERSION, alpn,
				 sizeof(alpn) - 1);
	struct clienthello ch;
	const char *why;
	const uint8_t *name;
	size_t nlen, off = 0;

	assert_int_equal(parse(buf, n, &ch, &why), MG_OK);
	assert_sni(&ch, "Nginx.Example.com"); /* as sent: lookups lower-case it */
	assert_true(ch.tls13);
	assert_int_equal(ch.version, 0x0303);
	assert_int_equal(ch.wire_len, n);
	assert_true(clienthello_alpn_next(&ch, &off, &name, &nlen));
	assert_int_equal(nlen, 2);
	assert_memory_equal(name, "h2", 2);
	assert_true(clienthello_alpn_next(&ch, &off, &name, &nlen));
	assert_int_equal(nlen, 8);
	assert_memory_equal(name, "http/1.1", 8);
	assert_false(clienthello_alpn_next(&ch, &off, &name, &nlen));
	assert_prefixes_again(buf, n);
}

static void test_openssl_tls12(void **state)
{
	uint8_t buf[4096];
	size_t n = openssl_hello(buf, sizeof(buf), "a.example.com", TLS1_2_VERSION, NULL, 0);
	struct clienthello ch;
	const char *why;

	assert_int_equal(parse(buf, n, &ch, &why), MG_OK);
	assert_sni(&ch, "a.example.com");
	assert_false(ch.tls13);
	assert_null(ch.alpn);
	assert_prefixes_again(buf, n);
}

static void test_openssl_no_sni(void **state)
{
	uint8_t buf[4096];
	struct clienthello ch;
	const char *why;
	size_t n;

	n = openssl_hello(buf, sizeof(buf), NULL, TLS1_3_VERSION, NULL, 0);
	assert_int_equal(parse(buf, n, &ch, &why), MG_OK);
	assert_sni(&ch, NULL);
	n = openssl_hello(buf, sizeof(buf), NULL, TLS1_2_VERSION, NULL, 0);
	assert_int_equal(parse(buf, n, &ch, &why), MG_OK);
	assert_sni(&ch, NULL);
}

/* The same message over records of every size from 1 byte up: same answer, and every
 * prefix of each fragmented form asks for more. */
static void test_fragmented(void **state)
{
	uint8_t buf[4096], msg[4096], frag[4096 * 6];
	size_t n = openssl_hello(buf, sizeof(buf), "x.wild.example.com", TLS1_3_VERSION, NULL, 0);
	size_t mlen = message_of(buf, n, msg);
	struct clienthello ch;
	const char *why;

	for (size_t size = 1; size <= mlen; size++) {
		size_t fl = fragment(msg, mlen, size, frag);

		assert_int_equal(parse(frag, fl, &ch, &why), MG_OK);
		assert_sni(&ch, "x.wild.example.com");
		assert_int_equal(ch.wire_len, fl);
		if (size == 1 || size == 2 || size == 7 || size == 100 || size == mlen - 1)
			assert_prefixes_again(frag, fl);
	}
	/* Bytes after the message (early data, a CCS record) are not looked at. */
	memcpy(frag, buf, n);
	memcpy(frag + n, "\x14\x03\x03\x00\x01\x01", 6);
	assert_int_equal(parse(frag, n + 6, &ch, &why), MG_OK);
	assert_int_equal(ch.wire_len, n);
	/* ...but a record of another type before the end is refused. */
	n = fragment(msg, mlen, 50, frag);
	frag[55] = 21;
	assert_int_equal(parse(frag, n, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello interleaved with another record type");
}

static void test_not_tls(void **state)
{
	struct clienthello ch;
	const char *why;
	/* An SSLv2-compatible hello: no extensions, so no SNI. */
	static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};

	assert_int_equal(parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &ch, &why), MG_EBAD);
	assert_string_equal(why, "not a TLS handshake record");
	/* One byte is enough to tell. */
	assert_int_equal(parse((const uint8_t *)"G", 1, &ch, &why), MG_EBAD);
	assert_int_equal(parse(v2, sizeof(v2), &ch, &why), MG_EBAD);
	assert_int_equal(parse((const uint8_t *)"\x16\x02", 2, &ch, &why), MG_EBAD);
	assert_int_equal(parse((const uint8_t *)"", 0, &ch, &why), MG_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x00\x00", 5, &ch, &why), MG_EBAD);
	assert_string_equal(why, "bad TLS record length");
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x40\x01", 5, &ch, &why), MG_EBAD);
	/* A ServerHello where a ClientHello belongs. */
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x03\x00\x04\x02", 6, &ch, &why), MG_EBAD);
	assert_string_equal(why, "first handshake message is not a ClientHello");
}

/* ---- hand-built hellos ---- */

struct hb {
	uint8_t b[CLIENTHELLO_WIRE_MAX * 2];
	size_t n;
};

static void put(struct hb *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void put16(struct hb *h, size_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(h, x, 2);
}

static void ext(struct hb *e, unsigned type, const void *data, size_t n)
{
	put16(e, type);
	put16(e, n);
	put(e, data, n);
}

/* A server_name extension body holding one host_name. */
static size_t sni_body(uint8_t *out, const char *name)
{
	size_t n = strlen(name);

	out[0] = (uint8_t)((n + 3) >> 8);
	out[1] = (uint8_t)(n + 3);
	out[2] = 0;
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	memcpy(out + 5, name, n);
	return n + 5;
}

/* One record holding a ClientHello whose extensions block is exts (NULL: none). */
static void hello(struct hb *out, const struct hb *exts)
{
	static struct hb body;
	uint8_t random[32] = {0};

	body.n = 0;
	put16(&body, 0x0303);
	put(&body, random, 32);
	put(&body, "\x00", 1);             /* session id */
	put(&body, "\x00\x02\x13\x01", 4); /* one cipher suite */
	put(&body, "\x01\x00", 2);         /* null compression */
	if (exts != NULL) {
		put16(&body, exts->n);
		put(&body, exts->b, exts->n);
	}
	out->n = 0;
	put(out, "\x16\x03\x01", 3);
	put16(out, body.n + 4);
	put(out, "\x01\x00", 2);
	put16(out, body.n);
	put(out, body.b, body.n);
}

static int parse_exts(const struct hb *exts, struct clienthello *ch, const char **why)
{
	static struct hb rec;

	hello(&rec, exts);
	return parse(rec.b, rec.n, ch, why);
}

static void test_built(void **state)
{
	static struct hb e, rec;
	struct clienthello ch;
	const char *why;
	uint8_t s[512];
	size_t n;

	/* No extensions at all (TLS 1.2 allows it): no SNI. */
	hello(&rec, NULL);
	assert_int_equal(parse(rec.b, rec.n, &ch, &why), MG_OK);
	assert_sni(&ch, NULL);

	e.n = 0;
	n = sni_body(s, "host_1.example.com");
	ext(&e, 0, s, n);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_OK);
	assert_sni(&ch, "host_1.example.com");

	/* server_name twice */
	ext(&e, 0, s, n);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: server_name sent twice");

	/* a host name that is no DNS name, and one too long */
	e.n = 0;
	ext(&e, 0, s, sni_body(s, "a b.example"));
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: invalid SNI host name");
	{
		char longname[300];

		memset(longname, 'a', 256);
		longname[256] = '\0';
		e.n = 0;
		ext(&e, 0, s, sni_body(s, longname));
		assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
		longname[255] = '\0';
		e.n = 0;
		ext(&e, 0, s, sni_body(s, longname));
		assert_int_equal(parse_exts(&e, &ch, &why), MG_OK);
		assert_int_equal(ch.sni_len, 255);
	}

	/* two entries in the list; an empty list; a list shorter than its extension */
	e.n = 0;
	ext(&e, 0, "\x00\x0a\x00\x00\x03\x61\x2e\x62\x00\x00\x01\x63", 12);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: malformed server_name extension");
	e.n = 0;
	ext(&e, 0, "\x00\x00", 2);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	e.n = 0;
	ext(&e, 0, "\x00\x04\x00\x00\x01\x61\x00", 7);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);

	/* ALPN: an empty name, and an empty list */
	e.n = 0;
	ext(&e, 16, "\x00\x03\x02h2\x00", 6);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: malformed ALPN extension");
	e.n = 0;
	ext(&e, 16, "\x00\x00", 2);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);

	/* an extension longer than the block */
	e.n = 0;
	put16(&e, 0xff01);
	put16(&e, 10);
	put(&e, "abc", 3);
	assert_int_equal(parse_exts(&e, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: truncated extension");

	/* bytes after the extensions inside the message */
	e.n = 0;
	ext(&e, 0xff01, "\x00", 1);
	hello(&rec, &e);
	rec.b[4] += 1; /* record length */
	rec.b[8] += 1; /* handshake length */
	put(&rec, "\x00", 1);
	assert_int_equal(parse(rec.b, rec.n, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello: bad extensions length");

	/* an odd cipher suite list */
	hello(&rec, NULL);
	rec.b[5 + 4 + 2 + 32 + 1 + 1] = 3;
	assert_int_equal(parse(rec.b, rec.n, &ch, &why), MG_EBAD);
}

/* A 16 KiB hello fits (in two records, as it must); a byte more is refused from its header
 * alone; tiny records run into the wire bound. */
static void test_oversize(void **state)
{
	static struct hb e, rec, frag;
	static uint8_t pad[CLIENTHELLO_MAX];
	struct clienthello ch;
	const char *why;
	size_t n, body;
	uint8_t s[64];

	e.n = 0;
	ext(&e, 0, s, sni_body(s, "big.example.com"));
	body = 2 + 32 + 1 + 4 + 2 + 2 + e.n + 4; /* with an empty padding extension */
	ext(&e, 21, pad, CLIENTHELLO_MAX - body);
	hello(&rec, &e);
	n = rec.n - 5;
	assert_int_equal(n, CLIENTHELLO_MAX + 4);
	/* One record cannot carry it (2^14 bytes at most): two can. */
	frag.n = fragment(rec.b + 5, n, 16384, frag.b);
	assert_int_equal(parse(frag.b, frag.n, &ch, &why), MG_OK);
	assert_sni(&ch, "big.example.com");

	/* One byte more: the handshake header is enough to refuse it. */
	e.n = 0;
	ext(&e, 0, s, sni_body(s, "big.example.com"));
	ext(&e, 21, pad, CLIENTHELLO_MAX - body + 1);
	hello(&rec, &e);
	assert_int_equal(rec.n - 5, CLIENTHELLO_MAX + 5);
	frag.n = fragment(rec.b + 5, rec.n - 5, 16384, frag.b);
	assert_int_equal(parse(frag.b, 9, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello too large");

	/* A modest hello in 1-byte records needs 6 wire bytes per message byte. */
	e.n = 0;
	ext(&e, 21, pad, 4000);
	hello(&rec, &e);
	frag.n = fragment(rec.b + 5, rec.n - 5, 1, frag.b);
	assert_true(frag.n > CLIENTHELLO_WIRE_MAX);
	assert_int_equal(parse(frag.b, CLIENTHELLO_WIRE_MAX - 1, &ch, &why), MG_AGAIN);
	assert_int_equal(parse(frag.b, CLIENTHELLO_WIRE_MAX, &ch, &why), MG_EBAD);
	assert_string_equal(why, "ClientHello spans too many records");
}

/* Random bytes, and random corruption of a real hello at every offset: never a crash,
 * always one of the three answers (parse() checks that). */
static void test_garbage(void **state)
{
	uint8_t buf[4096], bad[4096];
	size_t n = openssl_hello(buf, sizeof(buf), "a.example.com", TLS1_3_VERSION, NULL, 0);
	struct clienthello ch;
	const char *why;
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 4; k++) {
			memcpy(bad, buf, n);
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			bad[i] ^= (uint8_t)(x | 1);
			(void)parse(bad, n, &ch, &why);
			(void)parse(bad, i + 1, &ch, &why);
		}
	}
	for (int round = 0; round < 2000; round++) {
		size_t len = x % 600;

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			bad[i] = (uint8_t)x;
		}
		/* Mostly-plausible framing so the body parser is reached too. */
		if (len > 9 && (round & 1)) {
			memcpy(bad, "\x16\x03\x01", 3);
			bad[3] = (uint8_t)((len - 5) >> 8);
			bad[4] = (uint8_t)(len - 5);
			bad[5] = 1;
			bad[6] = 0;
			bad[7] = (uint8_t)((len - 9) >> 8);
			bad[8] = (uint8_t)(len - 9);
		}
		(void)parse(bad, len, &ch, &why);
	}
}

static void test_sni_ext(void **state)
{
	const uint8_t *name;
	size_t n;

	assert_int_equal(
	    clienthello_sni_ext((const uint8_t *)"\x00\x04\x00\x00\x01x", 6, &name, &n), MG_OK);
	assert_int_equal(n, 1);
	assert_int_equal(name[0], 'x');
	/* another name type */
	assert_int_equal(
	    clienthello_sni_ext((const uint8_t *)"\x00\x04\x01\x00\x01x", 6, &name, &n), MG_EBAD);
	/* an empty host name */
	assert_int_equal(clienthello_sni_ext((const uint8_t *)"\x00\x03\x00\x00\x00", 5, &name, &n),
			 MG_EBAD);
	assert_int_equal(clienthello_sni_ext((const uint8_t *)"", 0, &name, &n), MG_EBAD);
	assert_true(clienthello_host_valid((const uint8_t *)"a-b_c.d9", 8));
	assert_false(clienthello_host_valid((const uint8_t *)"a\0b", 3));
	assert_false(clienthello_host_valid((const uint8_t *)"", 0));
}

/* The PERMISSIVE port's choice: real TLS 1.2 and 1.3 first flights are TLS; HTTP requests
 * of every method, garbage and nothing are not. */
static void test_is_tls(void **state)
{
	static const char *const plain[] = {
	    "GET / HTTP/1.1\r\n", "POST",        "PRI * HTTP/2.0", "\r\nGET", "x",
	    "\x15\x03\x03",       "\x17\x03\x03"};
	uint8_t buf[4096];
	size_t n;

	n = openssl_hello(buf, sizeof(buf), "a.example", TLS1_3_VERSION, NULL, 0);
	assert_true(clienthello_is_tls(buf, n));
	assert_true(clienthello_is_tls(buf, 1)); /* one byte is enough to decide */
	n = openssl_hello(buf, sizeof(buf), NULL, TLS1_2_VERSION, NULL, 0);
	assert_true(clienthello_is_tls(buf, n));
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		assert_false(clienthello_is_tls((const uint8_t *)plain[i], strlen(plain[i])));
	assert_false(clienthello_is_tls(buf, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_openssl_tls13),  cmocka_unit_test(test_openssl_tls12),
	    cmocka_unit_test(test_openssl_no_sni), cmocka_unit_test(test_fragmented),
	    cmocka_unit_test(test_not_tls),        cmocka_unit_test(test_built),
	    cmocka_unit_test(test_oversize),       cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_sni_ext),        cmocka_unit_test(test_is_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
