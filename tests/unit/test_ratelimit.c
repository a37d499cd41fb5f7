/* ratelimit.c: a full bucket to start, one token a request, tokens_per_fill more each
 * fill_interval up to max_tokens (fills missed while idle add up, capped), and two
 * threads taking at once never take more tokens than there are. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config/model.h"
#include "pool.h"
#include "ratelimit.h"

#define SEC 1000000ull

static int take_n(struct rate_bucket *b, uint64_t now, int n)
{
	int got = 0;

	for (int i = 0; i < n; i++)
		got += ratelimit_take(b, now);
	return got;
}

static void test_bucket(void **state)
{
	struct pool *p = pool_new();
	struct local_rate_limit rl = {
	    .max_tokens = 4, .tokens_per_fill = 2, .fill_interval_us = 60 * SEC};
	uint64_t t0 = 1000 * SEC;
	struct rate_bucket *b = ratelimit_new(p, &rl, t0);

	(void)state;
	assert_int_equal(take_n(b, t0, 10), 4);                /* full to start */
	assert_int_equal(take_n(b, t0 + 59 * SEC, 10), 0);     /* no fill yet */
	assert_int_equal(take_n(b, t0 + 60 * SEC, 10), 2);     /* one fill */
	assert_int_equal(take_n(b, t0 + 60 * SEC + 1, 10), 0); /* ... once */
	assert_int_equal(take_n(b, t0 + 600 * SEC, 10), 4);    /* missed fills, capped */
	assert_int_equal(take_n(b, t0 + 661 * SEC, 1), 1);
	assert_int_equal(take_n(b, t0 + 661 * SEC, 10), 1);
	pool_free(p);
}

struct racer {
	struct rate_bucket *b;
	uint64_t now;
	int got;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	r->got = take_n(r->b, r->now, 100000);
	return NULL;
}

static void test_threads(void **state)
{
	struct pool *p = pool_new();
	struct local_rate_limit rl = {
	    .max_tokens = 50000, .tokens_per_fill = 1, .fill_interval_us = 3600 * SEC};
	struct racer r[2];
	pthread_t th[2];

	(void)state;
	r[0].b = r[1].b = ratelimit_new(p, &rl, 0);
	r[0].now = r[1].now = 1;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(r[0].got + r[1].got, 50000);
	pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
