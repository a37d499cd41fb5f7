/* headbuf.c: every append function, the flush when the stack buffer is full, pieces larger
 * than the buffer, and the bytes in the destination compared with what snprintf writes for
 * the same head, over many random heads of every size around the buffer's. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "headbuf.h"

/* The destination's bytes, NUL-terminated (the caller frees them). */
static char *dst_text(struct evbuffer *dst, size_t *len)
{
	size_t n = evbuffer_get_length(dst);
	char *s = malloc(n + 1);

	assert_non_null(s);
	assert_int_equal(evbuffer_copyout(dst, s, n), (ev_ssize_t)n);
	s[n] = '\0';
	*len = n;
	return s;
}

static void assert_dst(struct evbuffer *dst, const char *want, size_t wlen)
{
	size_t len;
	char *got = dst_text(dst, &len);

	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);
}

#define ASSERT_DST_LIT(dst, lit) assert_dst((dst), (lit), sizeof(lit) - 1)

/* Nothing reaches the destination before the flush; after it, the builder is empty and
 * usable again; a flush of nothing adds nothing. */
static void test_add_and_flush(void **state)
{
	struct evbuffer *dst = evbuffer_new();
	struct headbuf hb;

	(void)state;
	headbuf_init(&hb, dst);
	headbuf_flush(&hb);
	assert_int_equal(evbuffer_get_length(dst), 0);
	headbuf_add(&hb, "GET", 3);
	HEADBUF_LIT(&hb, " / HTTP/1.1\r\n");
	headbuf_str(&hb, "host: a\r\n");
	headbuf_add(&hb, "", 0);
	assert_int_equal(evbuffer_get_length(dst), 0);
	assert_int_equal(hb.len, 3 + 13 + 9);
	headbuf_flush(&hb);
	assert_int_equal(hb.len, 0);
	ASSERT_DST_LIT(dst, "GET / HTTP/1.1\r\nhost: a\r\n");
	HEADBUF_LIT(&hb, "\r\n");
	headbuf_flush(&hb);
	headbuf_flush(&hb);
	ASSERT_DST_LIT(dst, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
	evbuffer_free(dst);
}

/* Decimal as printf("%" PRIu64) writes it: the edges and a spread of magnitudes. */
static void test_u64(void **state)
{
	static const uint64_t vals[] = {0,
					1,
					9,
					10,
					99,
					100,
					4095,
					65536,
					4294967295ULL,
					4294967296ULL,
					999999999999999999ULL,
					1000000000000000000ULL,
					10000000000000000000ULL,
					UINT64_MAX - 1,
					UINT64_MAX};
	struct evbuffer *dst = evbuffer_new();
	char want[32];
	uint64_t v, rnd = 1;

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]) + 64; i++) {
		struct headbuf hb;

		if (i < sizeof(vals) / sizeof(vals[0])) {
			v = vals[i];
		} else {
			rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
			v = rnd >> (i % 64); /* every length from 1 to 20 digits */
		}
		evbuffer_drain(dst, evbuffer_get_length(dst));
		headbuf_init(&hb, dst);
		headbuf_u64(&hb, v);
		headbuf_flush(&hb);
		assert_dst(dst, want, (size_t)snprintf(want, sizeof(want), "%" PRIu64, v));
	}
	evbuffer_free(dst);
}

/* "name: value\r\n", empty values included. */
static void test_header(void **state)
{
	struct evbuffer *dst = evbuffer_new();
	struct headbuf hb;

	(void)state;
	headbuf_init(&hb, dst);
	headbuf_header(&hb, "content-length", 14, "42", 2);
	headbuf_header(&hb, "x-empty", 7, "", 0);
	headbuf_header(&hb, "via", 3, "1.1 meshgate", 12);
	headbuf_flush(&hb);
	ASSERT_DST_LIT(dst, "content-length: 42\r\nx-empty: \r\nvia: 1.1 meshgate\r\n");
	evbuffer_free(dst);
}

/* A piece that does not fit in what is left flushes the buffer first and is then buffered;
 * one larger than the whole buffer goes to the destination directly, after what was
 * buffered: the order never changes. */
static void test_overflow(void **state)
{
	static char big[HEADBUF_SIZE * 3 + 17], want[HEADBUF_SIZE * 6];
	struct evbuffer *dst = evbuffer_new();
	struct headbuf hb;
	size_t wlen = 0;
	/* not a constant: the inline fast path would be dead code, which GCC warns about */
	volatile size_t biglen = sizeof(big);

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	headbuf_init(&hb, dst);
	/* fill to one byte short of full: nothing flushed yet */
	headbuf_add(&hb, big, HEADBUF_SIZE - 1);
	memcpy(want, big, HEADBUF_SIZE - 1);
	wlen = HEADBUF_SIZE - 1;
	assert_int_equal(evbuffer_get_length(dst), 0);
	/* exactly fits */
	headbuf_add(&hb, "!", 1);
	want[wlen++] = '!';
	assert_int_equal(hb.len, HEADBUF_SIZE);
	assert_int_equal(evbuffer_get_length(dst), 0);
	/* one byte more: the full buffer goes out, the byte is buffered */
	headbuf_add(&hb, "?", 1);
	want[wlen++] = '?';
	assert_int_equal(evbuffer_get_length(dst), HEADBUF_SIZE);
	assert_int_equal(hb.len, 1);
	/* a header that does not fit in what is left: written in pieces, in order */
	headbuf_add(&hb, big, HEADBUF_SIZE - 10);
	memcpy(want + wlen, big, HEADBUF_SIZE - 10);
	wlen += HEADBUF_SIZE - 10;
	headbuf_header(&hb, "x-long", 6, big, 100);
	memcpy(want + wlen, "x-long: ", 8);
	memcpy(want + wlen + 8, big, 100);
	memcpy(want + wlen + 108, "\r\n", 2);
	wlen += 110;
	/* larger than the buffer: straight to the destination, after the buffered bytes */
	headbuf_add(&hb, big, biglen);
	memcpy(want + wlen, big, biglen);
	wlen += biglen;
	assert_int_equal(hb.len, 0);
	HEADBUF_LIT(&hb, "\r\n");
	memcpy(want + wlen, "\r\n", 2);
	wlen += 2;
	headbuf_flush(&hb);
	assert_dst(dst, want, wlen);
	evbuffer_free(dst);
}

/* Random heads from a few bytes to several buffers long, built with every function and
 * with snprintf side by side: the same bytes. */
static void test_random_heads_match_printf(void **state)
{
	static char ref[64 * 1024], value[HEADBUF_SIZE + 512];
	struct evbuffer *dst = evbuffer_new();
	uint64_t rnd = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (char)(' ' + i % 95);
	for (int round = 0; round < 2000; round++) {
		struct headbuf hb;
		size_t rlen = 0;
		int ops;

		evbuffer_drain(dst, evbuffer_get_length(dst));
		headbuf_init(&hb, dst);
		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		ops = (int)(rnd >> 58); /* 0..63 operations */
		rlen += (size_t)snprintf(ref, sizeof(ref), "HTTP/1.1 %d OK\r\n", 200 + round % 300);
		HEADBUF_LIT(&hb, "HTTP/1.1 ");
		headbuf_u64(&hb, (uint64_t)(200 + round % 300));
		headbuf_str(&hb, " OK\r\n");
		for (int k = 0; k < ops; k++) {
			size_t vlen;
			uint64_t num;

			rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
			/* mostly short values, sometimes one near or above the buffer size */
			vlen = (rnd >> 40) % 8 == 0 ? (size_t)(rnd >> 20) % sizeof(value)
						    : (size_t)(rnd >> 20) % 80;
			num = rnd >> (rnd % 64);
			if (rlen + vlen + 64 > sizeof(ref))
				break;
			switch ((rnd >> 33) % 4) {
			case 0:
				headbuf_header(&hb, "x-h", 3, value, vlen);
				rlen += (size_t)snprintf(ref + rlen, sizeof(ref) - rlen,
							 "x-h: %.*s\r\n", (int)vlen, value);
				break;
			case 1:
				HEADBUF_LIT(&hb, "content-length: ");
				headbuf_u64(&hb, num);
				HEADBUF_LIT(&hb, "\r\n");
				rlen += (size_t)snprintf(ref + rlen, sizeof(ref) - rlen,
							 "content-length: %" PRIu64 "\r\n", num);
				break;
			case 2:
				headbuf_add(&hb, value, vlen);
				rlen += (size_t)snprintf(ref + rlen, sizeof(ref) - rlen, "%.*s",
							 (int)vlen, value);
				break;
			default:
				/* a flush in the middle changes nothing but when bytes move */
				headbuf_flush(&hb);
				break;
			}
		}
		HEADBUF_LIT(&hb, "\r\n");
		rlen += (size_t)snprintf(ref + rlen, sizeof(ref) - rlen, "\r\n");
		headbuf_flush(&hb);
		assert_dst(dst, ref, rlen);
	}
	evbuffer_free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_and_flush),
	    cmocka_unit_test(test_u64),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_random_heads_match_printf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
