/* Pure parts of mirror.c: Envoy's shadow host (before a port, IPv6 literals), the shadow copy
 * of a serialized head, and the percentage draw. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "config/model.h"
#include "mirror.h"

static void check_host(const char *in, const char *want)
{
	char out[128];
	size_t n = mirror_shadow_host(in, strlen(in), out, sizeof(out));

	assert_int_equal(n, strlen(want));
	out[n] = '\0';
	assert_string_equal(out, want);
}

static void test_shadow_host(void **state)
{
	char small[8];

	check_host("a.example", "a.example-shadow");
	check_host("a.example:8080", "a.example-shadow:8080");
	check_host("10.0.0.1:80", "10.0.0.1-shadow:80");
	check_host("[::1]:80", "[::1]-shadow:80");
	check_host("[::1]", "[::1]-shadow");
	check_host("[fe80::1:2]", "[fe80::1:2]-shadow");
	check_host("", "-shadow");
	assert_int_equal(mirror_shadow_host("abc", 3, small, sizeof(small)), 0);
}

static void check_head(const char *in, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;

	assert_non_null(b);
	assert_int_equal(mirror_shadow_head(in, strlen(in), b), 0);
	n = evbuffer_get_length(b);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(evbuffer_pullup(b, -1), want, n);
	evbuffer_free(b);
}

static void test_shadow_head(void **state)
{
	struct evbuffer *b = evbuffer_new();

	/* as proxy.c builds it: host first */
	check_head("GET /x?q=1 HTTP/1.1\r\nhost: a.example:8080\r\nx-a: b\r\n\r\n",
		   "GET /x?q=1 HTTP/1.1\r\nhost: a.example-shadow:8080\r\nx-a: b\r\n\r\n");
	/* anywhere, any case, OWS kept; a field that only ends in "host" is not Host */
	check_head("POST / HTTP/1.1\r\nx-host: q\r\nHost:  b \r\ncontent-length: 2\r\n\r\n",
		   "POST / HTTP/1.1\r\nx-host: q\r\nHost:  b-shadow \r\ncontent-length: 2\r\n\r\n");
	/* a Host-like line after the end of the head is body, not a field */
	check_head("GET / HTTP/1.1\r\nx: y\r\n\r\nhost: z\r\n",
		   "GET / HTTP/1.1\r\nx: y\r\n\r\nhost: z\r\n");
	assert_non_null(b);
	assert_int_equal(mirror_shadow_head("GET / HTTP/1.1", 14, b), -1);
	evbuffer_free(b);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static unsigned draws(double value, bool given, unsigned n)
{
	struct percent p = {given, value};
	uint64_t s = 0x9E3779B97F4A7C15ULL;
	unsigned hits = 0;

	for (unsigned i = 0; i < n; i++)
		hits += mirror_sampled(&p, xorshift(&s));
	return hits;
}

static void test_sampled(void **state)
{
	struct percent tiny = {true, 0.0001};

	assert_true(mirror_sampled(NULL, 12345));
	assert_int_equal(draws(0, false, 1000), 1000); /* absent: 100% (Istio) */
	assert_int_equal(draws(100, true, 1000), 1000);
	assert_int_equal(draws(0, true, 1000), 0); /* given, value 0: none */
	/* seeded, so exact bounds are deterministic: 50% of 100000 within 1% */
	assert_in_range(draws(50, true, 100000), 49000, 51000);
	assert_in_range(draws(12.5, true, 100000), 12000, 13000);
	/* one in a million: the draw is in parts per million, as Envoy's */
	assert_true(mirror_sampled(&tiny, 0));
	assert_false(mirror_sampled(&tiny, 1));
	assert_true(mirror_sampled(&tiny, 1000000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shadow_host),
	    cmocka_unit_test(test_shadow_head),
	    cmocka_unit_test(test_sampled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
