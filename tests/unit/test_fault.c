/* Fault injection decisions (fault.c): percentages as Istio translates them (per million,
 * truncated; absent = never), delays, aborts with an HTTP or a gRPC status, the reply a
 * gRPC request gets, and the distribution over the worker RNG (seeded: deterministic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/model.h"
#include "fault.h"
#include "worker.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static struct percent pct(double v)
{
	struct percent p = {true, v};

	return p;
}

static void test_hit(void **state)
{
	struct percent none = {false, 0};
	struct percent p;

	for (uint64_t r = 0; r < 2000000; r += 99991) {
		assert_false(fault_hit(&none, r)); /* absent: 0 %, as Istio translates it */
		p = pct(0);
		assert_false(fault_hit(&p, r));
		p = pct(100);
		assert_true(fault_hit(&p, r));
	}
	/* per million: 0.0001 % fires for exactly one residue in a million */
	p = pct(0.0001);
	assert_true(fault_hit(&p, 0));
	assert_false(fault_hit(&p, 1));
	assert_true(fault_hit(&p, 1000000));
	/* 50 %: residues below 500000 */
	p = pct(50);
	assert_true(fault_hit(&p, 499999));
	assert_false(fault_hit(&p, 500000));
	assert_true(fault_hit(&p, 1000000 + 3));
	/* truncated like Istio's uint32(value * 10000) */
	p = pct(12.34567);
	assert_true(fault_hit(&p, 123455));
	assert_false(fault_hit(&p, 123456));
}

static void test_distribution(void **state)
{
	struct worker w;
	struct percent p = pct(30);
	int hits = 0;

	memset(&w, 0, sizeof(w));
	w.rng = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 100000; i++)
		hits += fault_hit(&p, worker_random(&w));
	assert_in_range(hits, 29000, 31000);
}

static void test_delay(void **state)
{
	struct http_fault f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(fault_delay_us(&f, 0), 0); /* no fault */
	f.given = true;
	f.abort.given = true;
	assert_int_equal(fault_delay_us(&f, 0), 0); /* abort only */
	f.delay.given = true;
	f.delay.fixed_delay_us = 700000;
	assert_int_equal(fault_delay_us(&f, 0), 0); /* no percentage: never */
	f.delay.percentage = pct(100);
	assert_int_equal(fault_delay_us(&f, 12345), 700000);
	f.delay.percentage = pct(10);
	assert_int_equal(fault_delay_us(&f, 99999), 700000);
	assert_int_equal(fault_delay_us(&f, 100000), 0);
}

static void test_abort_http(void **state)
{
	struct http_fault f;
	struct fault_reply r;

	memset(&f, 0, sizeof(f));
	assert_false(fault_abort(&f, 0, false, &r));
	f.given = true;
	f.abort.given = true;
	f.abort.percentage = pct(100);
	assert_false(fault_abort(&f, 0, false, &r)); /* no error type: Istio drops the abort */
	f.abort.http_status = 503;
	f.abort.percentage.given = false;
	assert_false(fault_abort(&f, 0, false, &r)); /* no percentage: never */
	f.abort.percentage = pct(100);
	assert_true(fault_abort(&f, 77, false, &r));
	assert_int_equal(r.status, 503);
	assert_string_equal(r.content_type, "text/plain");
	assert_int_equal(r.body_len, strlen("fault filter abort"));
	assert_memory_equal(r.body, "fault filter abort", r.body_len);
	assert_string_equal(r.headers, "");
	assert_int_equal(r.grpc_status, -1);
	f.abort.percentage = pct(25);
	assert_true(fault_abort(&f, 249999, false, &r));
	assert_false(fault_abort(&f, 250000, false, &r));

	/* a gRPC request: trailers-only 200, the HTTP status mapped to a gRPC code */
	f.abort.percentage = pct(100);
	assert_true(fault_abort(&f, 0, true, &r));
	assert_int_equal(r.status, 200);
	assert_null(r.content_type);
	assert_int_equal(r.body_len, 0);
	assert_string_equal(r.headers, "content-type: application/grpc\r\ngrpc-status: 14\r\n"
				       "grpc-message: fault filter abort\r\n");
	assert_int_equal(r.grpc_status, 14);
	f.abort.http_status = 404;
	assert_true(fault_abort(&f, 0, true, &r));
	assert_non_null(strstr(r.headers, "grpc-status: 12\r\n"));
}

static void test_abort_grpc(void **state)
{
	struct http_fault f;
	struct fault_reply r;

	memset(&f, 0, sizeof(f));
	f.given = true;
	f.abort.given = true;
	f.abort.grpc_status = "RESOURCE_EXHAUSTED";
	f.abort.grpc_code = 8;
	f.abort.percentage = pct(100);
	assert_true(fault_abort(&f, 0, true, &r));
	assert_int_equal(r.status, 200);
	assert_string_equal(r.headers, "content-type: application/grpc\r\ngrpc-status: 8\r\n"
				       "grpc-message: fault filter abort\r\n");
	/* the same fault on a plain HTTP request: Envoy's 503 local reply */
	assert_true(fault_abort(&f, 0, false, &r));
	assert_int_equal(r.status, 503);
	assert_memory_equal(r.body, "fault filter abort", r.body_len);
	/* OK (0) is a valid status to inject */
	f.abort.grpc_status = "OK";
	f.abort.grpc_code = 0;
	assert_true(fault_abort(&f, 0, true, &r));
	assert_non_null(strstr(r.headers, "grpc-status: 0\r\n"));
	assert_int_equal(r.grpc_status, 0);
}

static void test_grpc_detection(void **state)
{
	assert_true(fault_is_grpc(S("application/grpc")));
	assert_true(fault_is_grpc(S("application/grpc+proto")));
	assert_true(fault_is_grpc(S("Application/GRPC")));
	assert_true(fault_is_grpc(S("application/grpc; charset=utf-8")));
	assert_false(fault_is_grpc(S("application/grpc-web")));
	assert_false(fault_is_grpc(S("application/grpcx")));
	assert_false(fault_is_grpc(S("application/json")));
	assert_false(fault_is_grpc(S("application/grp")));
	assert_false(fault_is_grpc(NULL, 0));
	assert_int_equal(fault_http_to_grpc(401), 16);
	assert_int_equal(fault_http_to_grpc(403), 7);
	assert_int_equal(fault_http_to_grpc(429), 14);
	assert_int_equal(fault_http_to_grpc(500), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit),        cmocka_unit_test(test_distribution),
	    cmocka_unit_test(test_delay),      cmocka_unit_test(test_abort_http),
	    cmocka_unit_test(test_abort_grpc), cmocka_unit_test(test_grpc_detection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
