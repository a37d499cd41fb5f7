/* Consistent hashing (lb_hash.c): ring and Maglev tables spread keys by weight, and
 * removing one of N endpoints moves about 1/N of the keys (never a key between two
 * endpoints that both stay, for Maglev almost never).  Also the affinity keys (affinity.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "affinity.h"
#include "http1.h"
#include "lb_hash.h"
#include "pool.h"
#include "router.h"
#include "snapshot.h"

#define NKEYS 20000

static struct endpoint eps[5];
static char names[5][32];

static void make_endpoints(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "10.1.0.%zu:8080", i + 1);
		memset(&eps[i], 0, sizeof(eps[i]));
		eps[i].name = names[i];
		eps[i].weight = 1;
	}
}

static uint64_t key_of(int k)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "user-%d", k);

	return lb_hash_bytes(s, (size_t)n);
}

static void spread_and_disruption(bool maglev, double max_moved)
{
	struct consistent_hash ch = {
	    .given = true, .maglev = maglev, .table_size = 65537, .minimum_ring_size = 1024};
	struct pool *p = pool_new();
	struct lb_hash_table *t4, *t3;
	size_t count[4] = {0}, moved = 0, between_stayers = 0;

	make_endpoints(4);
	t4 = lb_hash_build(p, eps, 4, &ch);
	t3 = lb_hash_build(p, eps, 3, &ch); /* the fourth endpoint left */
	assert_non_null(t4);
	assert_non_null(t3);
	for (int k = 0; k < NKEYS; k++) {
		size_t a = lb_hash_pick(t4, 4, key_of(k), 0), b = lb_hash_pick(t3, 3, key_of(k), 0);

		assert_true(a < 4 && b < 3);
		count[a]++;
		if (a != b) {
			moved++;
			if (a != 3)
				between_stayers++;
		}
	}
	for (int i = 0; i < 4; i++) /* each near 1/4 */
		assert_true(count[i] > NKEYS / 4 * 0.7 && count[i] < NKEYS / 4 * 1.3);
	/* the keys of the endpoint that left (~1/4) must move; few others may */
	assert_true(moved >= count[3]);
	assert_true((double)moved / NKEYS < max_moved);
	print_message("%s: moved %zu of %d keys (%zu between endpoints that stayed)\n",
		      maglev ? "maglev" : "ring", moved, NKEYS, between_stayers);
	pool_free(p);
}

static void test_ring(void **state)
{
	spread_and_disruption(false, 0.40);
}

static void test_maglev(void **state)
{
	spread_and_disruption(true, 0.30);
}

static void test_weights_and_retry_walk(void **state)
{
	struct consistent_hash ch = {.given = true, .minimum_ring_size = 1024};
	struct pool *p = pool_new();
	struct lb_hash_table *t;
	size_t count[2] = {0};

	make_endpoints(2);
	eps[0].weight = 3;
	t = lb_hash_build(p, eps, 2, &ch);
	for (int k = 0; k < NKEYS; k++) {
		size_t first = lb_hash_pick(t, 2, key_of(k), 0);

		count[first]++;
		assert_int_not_equal(lb_hash_pick(t, 2, key_of(k), 1), first); /* a retry moves */
	}
	assert_true(count[0] > NKEYS * 0.65 && count[0] < NKEYS * 0.85);
	ch.maglev = true;
	ch.table_size = 65537;
	t = lb_hash_build(p, eps, 2, &ch);
	count[0] = count[1] = 0;
	for (int k = 0; k < NKEYS; k++)
		count[lb_hash_pick(t, 2, key_of(k), 0)]++;
	assert_true(count[0] > NKEYS * 0.65 && count[0] < NKEYS * 0.85);
	pool_free(p);
}

static void test_affinity_keys(void **state)
{
	struct http1_header h[3] = {
	    {"X-User", 6, "jason", 5},
	    {"Cookie", 6, "a=1; sticky=\"abc\"; b=2", 22},
	    {"Host", 4, "x", 1},
	};
	struct http1_request req = {.headers = h, .nheaders = 3};
	struct route_request rq = {.query = "a=1&u=bob&c", .query_len = 11};
	struct consistent_hash ch = {.given = true};
	char cookie[AFFINITY_COOKIE_LEN + 1], line[256];
	uint64_t k1 = 0, k2 = 0;

	ch.source = HASH_HEADER;
	ch.name = "x-user";
	assert_true(affinity_key(&ch, &req, &rq, "127.0.0.1:5555", 1, &k1, cookie));
	assert_int_equal(k1, lb_hash_bytes("jason", 5));
	ch.name = "x-none";
	assert_false(affinity_key(&ch, &req, &rq, "127.0.0.1:5555", 1, &k1, cookie));

	ch.source = HASH_COOKIE;
	ch.name = "sticky";
	assert_true(affinity_key(&ch, &req, &rq, NULL, 1, &k1, cookie));
	assert_int_equal(k1, lb_hash_bytes("abc", 3)); /* quotes removed */
	assert_string_equal(cookie, "");
	ch.name = "missing";
	assert_false(affinity_key(&ch, &req, &rq, NULL, 1, &k1, cookie)); /* no ttl: no cookie */
	ch.cookie_ttl_given = true;
	ch.cookie_ttl_us = 60000000;
	ch.cookie_path = "/";
	assert_true(affinity_key(&ch, &req, &rq, NULL, 0xabcdefULL, &k1, cookie));
	assert_string_equal(cookie, "0000000000abcdef");
	/* a request that can set no cookie (a mirror's copy) has no key without one */
	assert_false(affinity_key(&ch, &req, &rq, NULL, 0xabcdefULL, &k2, NULL));
	ch.name = "sticky";
	assert_true(affinity_key(&ch, &req, &rq, NULL, 1, &k2, NULL));
	assert_int_equal(k2, lb_hash_bytes("abc", 3));
	ch.name = "missing";
	assert_true(affinity_set_cookie(&ch, cookie, line, sizeof(line)) > 0);
	assert_string_equal(
	    line, "set-cookie: missing=\"0000000000abcdef\"; Max-Age=60; Path=/; HttpOnly\r\n");
	ch.cookie_ttl_us = 0; /* session cookie */
	affinity_set_cookie(&ch, cookie, line, sizeof(line));
	assert_string_equal(line, "set-cookie: missing=\"0000000000abcdef\"; Path=/; HttpOnly\r\n");
	/* httpCookie.attributes (decoded into one string) go after Path, as in Envoy */
	ch.cookie_attrs = "; SameSite=Strict; Secure";
	ch.cookie_ttl_us = 3600000000ULL;
	affinity_set_cookie(&ch, cookie, line, sizeof(line));
	assert_string_equal(line, "set-cookie: missing=\"0000000000abcdef\"; Max-Age=3600; Path=/; "
				  "SameSite=Strict; Secure; HttpOnly\r\n");
	ch.cookie_path = NULL;
	affinity_set_cookie(&ch, cookie, line, sizeof(line));
	assert_string_equal(line, "set-cookie: missing=\"0000000000abcdef\"; Max-Age=3600; "
				  "SameSite=Strict; Secure; HttpOnly\r\n");
	assert_int_equal(affinity_set_cookie(&ch, cookie, line, 40), 0); /* does not fit */
	ch.cookie_attrs = NULL;

	ch.source = HASH_SOURCE_IP;
	assert_true(affinity_key(&ch, &req, &rq, "10.0.0.7:1234", 1, &k1, cookie));
	assert_true(affinity_key(&ch, &req, &rq, "10.0.0.7:9999", 1, &k2, cookie));
	assert_int_equal(k1, k2); /* the port is not part of it */
	assert_true(affinity_key(&ch, &req, &rq, "[::1]:80", 1, &k1, cookie));
	assert_int_equal(k1, lb_hash_bytes("::1", 3));

	ch.source = HASH_QUERY_PARAM;
	ch.name = "u";
	assert_true(affinity_key(&ch, &req, &rq, NULL, 1, &k1, cookie));
	assert_int_equal(k1, lb_hash_bytes("bob", 3));
	ch.name = "c"; /* present without a value */
	assert_true(affinity_key(&ch, &req, &rq, NULL, 1, &k1, cookie));
	ch.name = "zz";
	assert_false(affinity_key(&ch, &req, &rq, NULL, 1, &k1, cookie));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring),
	    cmocka_unit_test(test_maglev),
	    cmocka_unit_test(test_weights_and_retry_walk),
	    cmocka_unit_test(test_affinity_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
