/* Retry policy (retry.c): retryOn parsing, Istio's defaults, the compile rules for a
 * `retries` block, and the retry decisions and backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "retry.h"

static void test_parse_names_and_codes(void **state)
{
	struct retry_policy rp;
	const char *bad = NULL;
	size_t badlen = 0;

	memset(&rp, 0, sizeof(rp));
	assert_int_equal(retry_on_parse("5xx, gateway-error ,409,503,409", &rp, &bad, &badlen), 0);
	assert_int_equal(rp.on, RETRY_ON_5XX | RETRY_ON_GATEWAY_ERROR | RETRY_ON_STATUS_CODES);
	assert_int_equal(rp.ncodes, 2); /* duplicates kept once */
	assert_int_equal(rp.codes[0], 409);
	assert_int_equal(rp.codes[1], 503);

	assert_int_equal(retry_on_parse("reset,bogus,5xx", &rp, &bad, &badlen), -1);
	assert_int_equal(badlen, 5);
	assert_memory_equal(bad, "bogus", 5);
	assert_int_equal(retry_on_parse("600", &rp, &bad, &badlen), -1);
	assert_int_equal(retry_on_parse("99", &rp, &bad, &badlen), -1);
	assert_int_equal(retry_on_parse("5xx,", &rp, &bad, &badlen), -1); /* empty token */
	assert_int_equal(badlen, 0);
	assert_int_equal(retry_on_parse("cancelled,unavailable,deadline-exceeded,internal,"
					"resource-exhausted",
					&rp, &bad, &badlen),
			 0);
	assert_int_equal(rp.on, RETRY_ON_GRPC_ANY);
}

static void test_default_policy(void **state)
{
	struct retry_policy rp;
	struct http_retry absent = {0};

	retry_policy_compile(&absent, &rp);
	assert_int_equal(rp.num_retries, 2);
	assert_true(retry_on_failure(&rp, RETRY_FAIL_CONNECT));
	assert_false(retry_on_failure(&rp, RETRY_FAIL_RESET));
	assert_false(retry_on_failure(&rp, RETRY_FAIL_PER_TRY));
	assert_true(retry_on_status(&rp, 503, -1));
	assert_false(retry_on_status(&rp, 500, -1));
	assert_false(retry_on_status(&rp, 502, -1));
	assert_true(retry_on_status(&rp, 200, 14)); /* unavailable */
	assert_true(retry_on_status(&rp, 200, 1));  /* cancelled */
	assert_false(retry_on_status(&rp, 200, 13));
	assert_true(rp.ignore_previous_hosts);
	assert_int_equal(rp.backoff_base_us, 25000);
}

static void test_compile_block(void **state)
{
	struct retry_policy rp;
	struct http_retry rt = {.given = true, .attempts = -1, .ignore_previous_hosts = -1};

	retry_policy_compile(&rt, &rp);
	assert_int_equal(rp.num_retries, 0); /* attempts absent: no retries (Istio) */

	rt.attempts = 4;
	rt.per_try_timeout_us = 300000;
	rt.backoff_us = 100000;
	rt.ignore_previous_hosts = 0;
	retry_policy_compile(&rt, &rp);
	assert_int_equal(rp.num_retries, 4);
	assert_int_equal(rp.per_try_timeout_us, 300000);
	assert_int_equal(rp.backoff_base_us, 100000);
	assert_false(rp.ignore_previous_hosts);
	assert_true(retry_on_status(&rp, 503, -1)); /* default conditions kept */

	rt.retry_on = "gateway-error";
	retry_policy_compile(&rt, &rp);
	assert_false(retry_on_status(&rp, 200, 14)); /* grpc conditions replaced */
	assert_true(retry_on_status(&rp, 504, -1));
	assert_false(retry_on_status(&rp, 500, -1));
	assert_true(retry_on_failure(&rp, RETRY_FAIL_RESET));
	assert_true(retry_on_failure(&rp, RETRY_FAIL_PER_TRY));
	assert_true(retry_on_failure(&rp, RETRY_FAIL_CONNECT));
}

static void test_conditions(void **state)
{
	struct retry_policy rp;
	const char *bad;
	size_t badlen;

	memset(&rp, 0, sizeof(rp));
	assert_int_equal(retry_on_parse("5xx", &rp, &bad, &badlen), 0);
	for (int s = 500; s <= 599; s++)
		assert_true(retry_on_status(&rp, s, -1));
	assert_false(retry_on_status(&rp, 499, -1));
	assert_true(retry_on_failure(&rp, RETRY_FAIL_CONNECT));

	assert_int_equal(retry_on_parse("retriable-4xx", &rp, &bad, &badlen), 0);
	assert_true(retry_on_status(&rp, 409, -1));
	assert_false(retry_on_status(&rp, 404, -1));
	assert_false(retry_on_failure(&rp, RETRY_FAIL_CONNECT));

	assert_int_equal(retry_on_parse("connect-failure", &rp, &bad, &badlen), 0);
	assert_true(retry_on_failure(&rp, RETRY_FAIL_CONNECT));
	assert_false(retry_on_failure(&rp, RETRY_FAIL_RESET));
	assert_false(retry_on_status(&rp, 503, -1));

	assert_int_equal(retry_on_parse("reset", &rp, &bad, &badlen), 0);
	assert_true(retry_on_failure(&rp, RETRY_FAIL_RESET));
	assert_true(retry_on_failure(&rp, RETRY_FAIL_CONNECT));
	assert_false(retry_on_status(&rp, 503, -1));
}

static void test_backoff_bounds(void **state)
{
	struct retry_policy rp = {.backoff_base_us = 25000};
	uint64_t rnd = 0x9e3779b97f4a7c15ULL, max1 = 0, max3 = 0;

	for (int i = 0; i < 10000; i++) {
		uint64_t b1, b3, b9;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		b1 = retry_backoff_us(&rp, 1, rnd);
		b3 = retry_backoff_us(&rp, 3, rnd >> 7);
		b9 = retry_backoff_us(&rp, 9, rnd >> 3);
		assert_true(b1 < 25000);
		assert_true(b3 < 7 * 25000);
		assert_true(b9 < 10 * 25000); /* capped at 10 x base */
		max1 = b1 > max1 ? b1 : max1;
		max3 = b3 > max3 ? b3 : max3;
	}
	assert_true(max1 > 20000); /* the whole range is used: full jitter */
	assert_true(max3 > 25000 * 5);
	rp.backoff_base_us = 0; /* falls back to Envoy's 25 ms, never divides by zero */
	assert_true(retry_backoff_us(&rp, 1, 12345) < 25000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_names_and_codes), cmocka_unit_test(test_default_policy),
	    cmocka_unit_test(test_compile_block),         cmocka_unit_test(test_conditions),
	    cmocka_unit_test(test_backoff_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
