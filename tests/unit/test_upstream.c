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
#include <unistd.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "clock.h"
#include "clusterstate.h"
#include "connpool.h"
#include "pool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

#define NEP 4
#define NBIG 9

static struct worker W;
static struct endpoint eps[NBIG];
static struct cluster cl;
static struct lb_slot slot[1];
static struct pool *P;

/* the link step: cumulative weights after the test set them */
static void prep(void)
{
	upstream_prepare(P, &cl);
}

static int setup(void **state)
{
	memset(&W, 0, sizeof(W));
	W.rng = 0x12345678abcdefULL;
	W.pool = connpool_new(&W);
	memset(slot, 0, sizeof(slot));
	W.lb = slot;
	W.nlb = 1;
	slot[0].cl = &cl;
	P = pool_new();
	for (int i = 0; i < NBIG; i++) {
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
	prep();
	return 0;
}

static int teardown(void **state)
{
	connpool_free(W.pool);
	pool_free(P);
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
	prep();
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
	prep();
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

/* Many weights: the binary search over cumulative weights gives each endpoint exactly its
 * weight's share of a round-robin cycle, in endpoint order. */
static void test_weighted_search(void **state)
{
	unsigned hits[NBIG] = {0};

	cl.lb = LB_ROUND_ROBIN;
	cl.nendpoints = NBIG;
	for (int i = 0; i < NBIG; i++)
		eps[i].weight = (uint32_t)(i + 1); /* total 45 */
	prep();
	assert_false(cl.uniform);
	assert_int_equal(cl.cum[NBIG], 45);
	/* the first cycle walks the endpoints in order, each weight times */
	for (int i = 0; i < NBIG; i++)
		for (int k = 0; k <= i; k++)
			assert_ptr_equal(upstream_pick(&W, &cl), &eps[i]);
	for (unsigned i = 0; i < 45 * 20; i++)
		hits[upstream_pick(&W, &cl) - eps]++;
	for (int i = 0; i < NBIG; i++)
		assert_int_equal(hits[i], 20 * (i + 1));
}

/* A range (a locality rank) is balanced on its own, weighted or not. */
static void test_range(void **state)
{
	unsigned hits[NBIG] = {0};

	cl.lb = LB_ROUND_ROBIN;
	cl.nendpoints = NBIG;
	for (int i = 0; i < NBIG; i++)
		eps[i].weight = i < 3 ? 1 : (uint32_t)i;
	prep();
	for (unsigned i = 0; i < 300; i++)
		hits[upstream_pick_range(&W, &cl, 0, 3, true) - eps]++;
	assert_int_equal(hits[0], 100);
	assert_int_equal(hits[1], 100);
	assert_int_equal(hits[2], 100);
	memset(hits, 0, sizeof(hits));
	for (unsigned i = 0; i < 15 * 10; i++) /* endpoints 4, 5, 6: weights 4 + 5 + 6 */
		hits[upstream_pick_range(&W, &cl, 4, 3, false) - eps]++;
	assert_int_equal(hits[3], 0);
	assert_int_equal(hits[4], 40);
	assert_int_equal(hits[5], 50);
	assert_int_equal(hits[6], 60);
	assert_int_equal(hits[7], 0);
	cl.lb = LB_RANDOM;
	memset(hits, 0, sizeof(hits));
	for (unsigned i = 0; i < 15000; i++)
		hits[upstream_pick_range(&W, &cl, 4, 3, false) - eps]++;
	assert_int_equal(hits[3] + hits[7], 0);
	assert_in_range(hits[4], 3600, 4400);
	assert_in_range(hits[6], 5400, 6600);
}

/* Slow start is cached per worker: nobody warming costs no scan; an endpoint entering
 * service (the cluster's generation moves) is seen at once and weighs little; when its
 * window is over the cache lapses by itself. */
static void test_warmup_cache(void **state)
{
	struct cluster_state *cs = calloc(1, sizeof(*cs) + 8);
	struct endpoint_state es[2];
	unsigned hits[NEP];
	uint64_t now;

	assert_non_null(cs);
	memset(es, 0, sizeof(es));
	cl.nendpoints = 2;
	cl.lb = LB_RANDOM;
	cl.state = cs;
	cl.warmup_us = 200000; /* 200 ms */
	eps[0].state = &es[0];
	eps[1].state = &es[1];
	prep();
	count(4000, hits);
	assert_true(slot[0].warm_valid);
	assert_false(slot[0].warming);
	assert_int_equal(slot[0].warm_until_us, UINT64_MAX);
	assert_in_range(hits[1], 1700, 2300);

	now = clock_mono_us();
	atomic_store(&es[1].in_service_since_us, now);
	clusterstate_changed(cs); /* what the health checker does when it returns */
	count(4000, hits);
	assert_true(slot[0].warming);
	assert_int_equal(slot[0].warm_until_us, now + 200000);
	/* 10% of its weight at first: ~9% of the picks; generous for a slow machine */
	assert_in_range(hits[1], 100, 1000);

	while (clock_mono_us() < now + 250000)
		usleep(10000);
	count(4000, hits); /* no generation change: the window's end alone */
	assert_false(slot[0].warming);
	assert_in_range(hits[1], 1700, 2300);
	eps[0].state = eps[1].state = NULL;
	cl.state = NULL;
	cl.warmup_us = 0;
	free(cs);
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
	    cmocka_unit_test_setup_teardown(test_weighted_search, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_warmup_cache, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
