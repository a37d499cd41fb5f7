/* Load balancer distributions (upstream.c) over a hand-built cluster.  The worker RNG is
 * seeded, so the statistical bounds are deterministic, not flaky. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "clusterstate.h"
#include "connpool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

#define NEP 4

static struct worker W;
static struct endpoint eps[NEP];
static struct cluster cl;
static uint32_t rr_slot[1];

static int setup(void **state)
{
	memset(&W, 0, sizeof(W));
	W.rng = 0x12345678abcdefULL;
	W.pool = connpool_new(&W);
	W.rr = rr_slot;
	W.nrr = 1;
	rr_slot[0] = 0;
	for (int i = 0; i < NEP; i++) {
		struct sockaddr_in *in = (struct sockaddr_in *)&eps[i].addr;

		memset(&eps[i], 0, sizeof(eps[i]));
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)(9000 + i));
		in->sin_addr.s_addr = htonl(0x7f000001);
		eps[i].addrlen = sizeof(*in);
		eps[i].name = "127.0.0.1:900x";
		eps[i].weight = 1;
	}
	memset(&cl, 0, sizeof(cl));
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	cl.index = 0;
	return 0;
}

static int teardown(void **state)
{
	connpool_free(W.pool);
	return 0;
}

static void count(unsigned n, unsigned *hits)
{
	memset(hits, 0, NEP * sizeof(*hits));
	for (unsigned i = 0; i < n; i++) {
		const struct endpoint *e = upstream_pick(&W, &cl);

		assert_true(e >= eps && e < eps + NEP);
		hits[e - eps]++;
	}
}

static void test_round_robin_exact(void **state)
{
	unsigned hits[NEP];

	cl.lb = LB_ROUND_ROBIN;
	for (int i = 0; i < 8; i++)
		assert_ptr_equal(upstream_pick(&W, &cl), &eps[i % NEP]);
	count(400, hits);
	for (int i = 0; i < NEP; i++)
		assert_int_equal(hits[i], 100);
}

static void test_round_robin_weighted(void **state)
{
	unsigned hits[NEP];

	cl.lb = LB_ROUND_ROBIN;
	eps[0].weight = 5;
	eps[1].weight = 3;
	eps[2].weight = 1;
	eps[3].weight = 1;
	count(1000, hits); /* 100 full cycles of total weight 10 */
	assert_int_equal(hits[0], 500);
	assert_int_equal(hits[1], 300);
	assert_int_equal(hits[2], 100);
	assert_int_equal(hits[3], 100);
}

static void test_random_weighted(void **state)
{
	unsigned hits[NEP];

	cl.lb = LB_RANDOM;
	eps[0].weight = 1;
	eps[1].weight = 1;
	eps[2].weight = 2;
	eps[3].weight = 4;
	count(80000, hits);
	/* expected 10000, 10000, 20000, 40000; 5 sigma is well under 3% */
	assert_in_range(hits[0], 9000, 11000);
	assert_in_range(hits[1], 9000, 11000);
	assert_in_range(hits[2], 18500, 21500);
	assert_in_range(hits[3], 38000, 42000);
}

static void test_least_request_avoids_busy(void **state)
{
	unsigned hits[NEP];
	struct upstream_host *busy = connpool_host(W.pool, &eps[0]);

	cl.lb = LB_LEAST_REQUEST;
	busy->active_rq = 50;
	count(40000, hits);
	/* Power of two choices: the busy endpoint wins only when drawn twice (1/16). */
	assert_in_range(hits[0], 1900, 3100);
	for (int i = 1; i < NEP; i++)
		assert_in_range(hits[i], 11500, 14000);
	busy->active_rq = 0;
	count(40000, hits);
	for (int i = 0; i < NEP; i++)
		assert_in_range(hits[i], 9000, 11000);
}

/* Slow start: weight x max(10%, elapsed / window), full outside the window. */
static void test_warmup_weight(void **state)
{
	struct endpoint_state es;
	const uint64_t win = 10000000, t0 = 5000000;

	memset(&es, 0, sizeof(es));
	cl.warmup_us = win;
	eps[0].weight = 2;
	eps[0].state = &es;
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0), 2000); /* since 0: never warming */
	atomic_store(&es.in_service_since_us, t0);
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0), 200); /* floor 10% */
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0 + win / 20), 200);
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0 + win / 4), 500);
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0 + win / 2), 1000);
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0 + win), 2000);
	assert_int_equal(upstream_warm_weight(&cl, &eps[0], t0 + 3 * win), 2000);
	eps[0].state = NULL;
	cl.warmup_us = 0;
}

static void test_single_endpoint(void **state)
{
	cl.nendpoints = 1;
	for (int lb = LB_UNSPECIFIED; lb <= LB_PASSTHROUGH; lb++) {
		cl.lb = (enum lb_simple)lb;
		assert_ptr_equal(upstream_pick(&W, &cl), &eps[0]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_robin_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_robin_weighted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random_weighted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_least_request_avoids_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single_endpoint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_warmup_weight, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
