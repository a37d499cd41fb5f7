/* Locality-aware balancing (locality.c) over a hand-built cluster: ranks seen from the
 * appliance's locality, traffic kept in the nearest rank, Envoy's 1.4 overprovisioning
 * spill when part of a rank is out, and the per-worker cache of rank loads: recomputed
 * when the cluster's state generation moves (an ejection, a health verdict) or when an
 * ejection ends by itself, never per request otherwise; retries that leave the ranks
 * tried (retryRemoteLocalities). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clusterstate.h"
#include "locality.h"
#include "outlier.h"
#include "pool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

#define NEP 4
#define SEC 1000000ULL

static const char *const localities[NEP] = {"r2/z1/s1", "r1/z2/s1", "r1/z1/s1", "r1/z1/s1"};
static const char *const names[NEP] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};

static struct worker W;
static struct endpoint_state es[NEP];
static struct cluster_state cs;
static struct cluster cl;
static struct outlier_settings od;
static struct cfg_health_check hc;
static struct lb_slot slot[1];
static struct pool *P;

static int setup(void **state)
{
	struct endpoint *eps;

	memset(&W, 0, sizeof(W));
	W.rng = 0x12345678abcdefULL;
	memset(slot, 0, sizeof(slot));
	W.lb = slot;
	W.nlb = 1;
	slot[0].cl = &cl;
	memset(&cs, 0, sizeof(cs));
	memset(es, 0, sizeof(es));
	memset(&cl, 0, sizeof(cl));
	memset(&od, 0, sizeof(od));
	od.given = true;
	od.consecutive_5xx = 1;
	od.base_ejection_us = 10 * SEC;
	od.max_ejection_percent = 100;
	P = pool_new();
	eps = pool_calloc(P, NEP, sizeof(*eps));
	for (int i = 0; i < NEP; i++) {
		eps[i].name = names[i];
		eps[i].weight = 1;
		eps[i].locality = localities[i];
		eps[i].state = &es[i];
	}
	cl.name = "outbound|80||t";
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	cl.lb = LB_ROUND_ROBIN;
	cl.outlier = &od;
	cl.state = &cs;
	locality_assign(P, &cl, NULL, "r1/z1/s1", NULL);
	upstream_prepare(P, &cl);
	return 0;
}

static int teardown(void **state)
{
	pool_free(P);
	return 0;
}

/* picks at now: hits per locality rank (0 = the appliance's zone) */
static void picks(unsigned n, uint64_t now, unsigned hits[3])
{
	memset(hits, 0, 3 * sizeof(*hits));
	for (unsigned i = 0; i < n; i++) {
		const struct endpoint *ep = locality_pick(&W, &cl, now);

		assert_non_null(ep);
		hits[strcmp(ep->locality, "r1/z1/s1") == 0   ? 0
		     : strcmp(ep->locality, "r1/z2/s1") == 0 ? 1
							     : 2]++;
	}
}

static const struct endpoint *by_name(const char *name)
{
	for (size_t i = 0; i < cl.nendpoints; i++)
		if (strcmp(cl.endpoints[i].name, name) == 0)
			return &cl.endpoints[i];
	fail_msg("no endpoint %s", name);
	return NULL;
}

static void test_ranks(void **state)
{
	assert_int_equal(cl.nlevels, 3);
	assert_int_equal(cl.levels[0].count, 2);
	assert_int_equal(cl.levels[1].count, 1);
	assert_int_equal(cl.levels[2].count, 1);
	assert_true(cl.levels[0].uniform);
	assert_string_equal(cl.endpoints[0].locality, "r1/z1/s1");
	assert_string_equal(cl.endpoints[1].locality, "r1/z1/s1");
	assert_string_equal(cl.endpoints[2].locality, "r1/z2/s1");
	assert_string_equal(cl.endpoints[3].locality, "r2/z1/s1");
}

static void test_stays_local_cached(void **state)
{
	unsigned hits[3];

	picks(1000, 1 * SEC, hits);
	assert_int_equal(hits[0], 1000);
	/* computed once, kept until something changes */
	assert_true(slot[0].loc_valid);
	assert_int_equal(slot[0].loc_until_us, UINT64_MAX);
	assert_int_equal(slot[0].loc_gen, 0);
	assert_true(slot[0].health[0] == 1.0);
}

/* One of the two local endpoints ejected: the local rank carries 1.4 x 1/2 = 70%, the
 * next rank the rest; when the ejection ends the cache lapses by itself. */
static void test_spill_and_return(void **state)
{
	const struct endpoint *bad = by_name("10.0.0.3:80");
	unsigned hits[3];

	picks(100, 1 * SEC, hits);
	outlier_report(&cl, bad, 503, 1 * SEC);
	assert_int_equal(clusterstate_gen(&cs), 1);
	picks(10000, 2 * SEC, hits);
	assert_int_equal(slot[0].loc_gen, 1);
	assert_int_equal(slot[0].loc_until_us, 11 * SEC);
	assert_in_range(hits[0], 6600, 7400);
	assert_in_range(hits[1], 2600, 3400);
	assert_int_equal(hits[2], 0);
	for (unsigned i = 0; i < 200; i++)
		assert_ptr_not_equal(locality_pick(&W, &cl, 3 * SEC), bad);

	/* no event: the ejection's end alone brings the endpoint and the local rank back */
	picks(1000, 12 * SEC, hits);
	assert_int_equal(hits[0], 1000);
	assert_int_equal(slot[0].loc_until_us, UINT64_MAX);
	assert_int_equal(clusterstate_gen(&cs), 2); /* the return was an event too */
}

/* Health check verdicts move the generation: the whole local rank failing sends
 * everything to the next rank, then on to the last. */
static void test_health_events(void **state)
{
	unsigned hits[3];

	cl.outlier = NULL;
	cl.health_check = &hc;
	picks(100, 1 * SEC, hits);
	assert_int_equal(hits[0], 100);
	atomic_store(&es[2].hc_failed, true);
	atomic_store(&es[3].hc_failed, true);
	clusterstate_changed(&cs);
	picks(1000, 1 * SEC, hits);
	assert_int_equal(hits[1], 1000);
	atomic_store(&es[1].hc_failed, true);
	clusterstate_changed(&cs);
	picks(1000, 1 * SEC, hits);
	assert_int_equal(hits[2], 1000);
	atomic_store(&es[2].hc_failed, false);
	clusterstate_changed(&cs);
	picks(10000, 1 * SEC, hits);
	/* one local endpoint of two: 70% here, the rest past the failed middle rank */
	assert_in_range(hits[0], 6600, 7400);
	assert_int_equal(hits[1], 0);
	assert_in_range(hits[2], 2600, 3400);
}

/* retryRemoteLocalities: the ranks tried count as down, so a retry spills onwards; with
 * every rank tried the skip is forgotten (Envoy's previous_priorities). */
static void test_skip_ranks(void **state)
{
	unsigned hits[3];

	for (unsigned skip = 0; skip < 8; skip++) {
		unsigned want = skip == 7 ? 0 : (skip & 1) == 0 ? 0 : (skip & 2) == 0 ? 1 : 2;

		memset(hits, 0, sizeof(hits));
		for (unsigned i = 0; i < 500; i++) {
			const struct endpoint *ep = locality_pick_skip(&W, &cl, 1 * SEC, skip);

			assert_non_null(ep);
			hits[locality_rank_of(&cl, ep)]++;
		}
		assert_int_equal(hits[want], 500);
	}
	/* a rank that is down anyway is no reason to forget the skip */
	atomic_store(&es[1].hc_failed, true);
	cl.health_check = &hc;
	clusterstate_changed(&cs);
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(locality_rank_of(&cl, locality_pick_skip(&W, &cl, 1 * SEC, 1)), 2);
}

/* failoverPriority: the number of leading keys shared with the appliance ranks the
 * endpoints (topology keys read from the localities, key=value entries compared with the
 * value given); with failover too, the locality order applies within each label rank. */
static void test_failover_priority(void **state)
{
	static struct kv lab[4][2] = {
	    {{"net", "n1"}, {"rack", "a"}}, /* both keys match */
	    {{"net", "n1"}, {"rack", "b"}}, /* the first only */
	    {{"net", "n2"}, {"rack", "a"}}, /* none: rack is not looked at */
	    {{"rack", "a"}, {"x", "y"}},    /* no net label */
	};
	static const char *keys2[] = {"net", "rack"};
	static const char *keys_topo[] = {"topology.kubernetes.io/region", "net=n2"};
	static struct kv mine_v[] = {{"net", "n1"}, {"rack", "a"}};
	static struct locality_failover fo = {"r1", "r2"};
	struct kv_list mine = {mine_v, 2};
	struct locality_lb ll;
	struct endpoint *eps = pool_calloc(P, NEP, sizeof(*eps));

	for (int i = 0; i < NEP; i++) {
		eps[i].name = names[i];
		eps[i].weight = 1;
		eps[i].locality = localities[3 - i]; /* r1/z1, r1/z1, r1/z2, r2/z1 */
		eps[i].labels.v = lab[i];
		eps[i].labels.n = 2;
	}
	memset(&ll, 0, sizeof(ll));
	ll.given = ll.enabled = true;
	ll.failover_priority.v = keys2;
	ll.failover_priority.n = 2;
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	locality_assign(P, &cl, &ll, NULL, &mine); /* no locality needed */
	assert_int_equal(cl.nlevels, 3);
	assert_int_equal(cl.levels[0].count, 1);
	assert_string_equal(cl.endpoints[0].name, names[0]);
	assert_int_equal(cl.levels[1].count, 1);
	assert_string_equal(cl.endpoints[1].name, names[1]);
	assert_int_equal(cl.levels[2].count, 2); /* names[2] and names[3] */

	/* topology key from the localities, then a key=value entry */
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	ll.failover_priority.v = keys_topo;
	locality_assign(P, &cl, &ll, "r1/z9/s9", &mine);
	assert_int_equal(cl.nlevels, 3);
	assert_int_equal(cl.levels[0].count, 1); /* region r1 and net n2 */
	assert_string_equal(cl.endpoints[0].name, names[2]);
	assert_int_equal(cl.levels[1].count, 2); /* region r1 only */
	assert_int_equal(cl.levels[2].count, 1); /* region r2 */
	assert_string_equal(cl.endpoints[3].name, names[3]);

	/* with failover: label rank first, the locality order within it */
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	ll.failover_priority.v = keys2;
	ll.failover_priority.n = 1; /* net */
	ll.failover = &fo;
	ll.nfailover = 1;
	locality_assign(P, &cl, &ll, "r1/z2/s1", &mine);
	/* net n1 (names[0], names[1], both in the appliance's region) outranks the
	 * appliance's own zone (names[2], net n2), which outranks the failover region */
	assert_int_equal(cl.nlevels, 3);
	assert_int_equal(cl.levels[0].count, 2);
	assert_string_equal(cl.endpoints[2].name, names[2]);
	assert_string_equal(cl.endpoints[3].name, names[3]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ranks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stays_local_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spill_and_return, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skip_ranks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_priority, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
