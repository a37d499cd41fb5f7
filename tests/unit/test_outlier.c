/* Outlier detection (outlier.c) over a hand-built cluster: thresholds per detector,
 * maxEjectionPercent (one ejection always allowed), ejection time growing with repeated
 * ejections, lazy return to service, minHealthPercent panic mode, and picking around
 * ejected endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clusterstate.h"
#include "outlier.h"
#include "snapshot.h"
#include "worker.h"

#define NEP 4
#define SEC 1000000ULL

static struct worker W;
static struct endpoint eps[NEP];
static struct endpoint_state *es[NEP];
static struct cluster_state cs;
static struct cluster cl;
static struct outlier_settings od;

static int setup(void **state)
{
	static const char *names[NEP] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80",
					 "10.0.0.4:80"};

	memset(&W, 0, sizeof(W));
	W.rng = 0x12345678abcdefULL;
	memset(&cs, 0, sizeof(cs));
	memset(&cl, 0, sizeof(cl));
	memset(&od, 0, sizeof(od));
	od.given = true;
	od.consecutive_5xx = 3;
	od.consecutive_local = 2;
	od.interval_us = 10 * SEC;
	od.base_ejection_us = 30 * SEC;
	od.max_ejection_percent = 50;
	for (int i = 0; i < NEP; i++) {
		memset(&eps[i], 0, sizeof(eps[i]));
		eps[i].name = names[i];
		eps[i].weight = 1;
		es[i] = calloc(1, sizeof(*es[i]));
		eps[i].state = es[i];
	}
	cl.name = "outbound|80||t";
	cl.endpoints = eps;
	cl.nendpoints = NEP;
	cl.outlier = &od;
	cl.state = &cs;
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < NEP; i++)
		free(es[i]);
	return 0;
}

static void report_n(int ep, int status, int times, uint64_t now)
{
	for (int i = 0; i < times; i++)
		outlier_report(&cl, &eps[ep], status, now);
}

static void test_consecutive_5xx(void **state)
{
	report_n(0, 500, 2, 1 * SEC);
	outlier_report(&cl, &eps[0], 200, 1 * SEC); /* a success resets the run */
	report_n(0, 503, 2, 1 * SEC);
	assert_false(outlier_ejected(&cl, &eps[0], 1 * SEC));
	report_n(0, 502, 1, 1 * SEC);
	assert_true(outlier_ejected(&cl, &eps[0], 1 * SEC));
	assert_int_equal(atomic_load(&cs.ejected), 1);
	assert_true(outlier_ejected(&cl, &eps[0], 30 * SEC));
	assert_false(outlier_ejected(&cl, &eps[0], 31 * SEC)); /* base time elapsed: back */
	assert_int_equal(atomic_load(&cs.ejected), 0);
	/* ejected again at once: twice the base time */
	report_n(0, 500, 3, 32 * SEC);
	assert_true(outlier_ejected(&cl, &eps[0], 32 * SEC + 59 * SEC));
	assert_false(outlier_ejected(&cl, &eps[0], 32 * SEC + 60 * SEC));
	assert_int_equal(atomic_load(&cs.ejections_total), 2);
	/* long healthy: the multiplier decays, the next ejection is short again */
	report_n(0, 500, 3, 500 * SEC);
	assert_false(outlier_ejected(&cl, &eps[0], 531 * SEC));
}

static void test_gateway_and_local(void **state)
{
	od.consecutive_5xx = 0; /* only the gateway detector */
	od.consecutive_gateway = 2;
	report_n(1, 500, 5, SEC);
	assert_false(outlier_ejected(&cl, &eps[1], SEC));
	report_n(1, 504, 2, SEC);
	assert_true(outlier_ejected(&cl, &eps[1], SEC));

	od.consecutive_5xx = 3;
	od.split_local_origin = true; /* connect failures counted apart */
	report_n(2, 0, 1, SEC);
	outlier_report(&cl, &eps[2], 500, SEC); /* an answer: the connection worked */
	report_n(2, 0, 1, SEC);
	assert_false(outlier_ejected(&cl, &eps[2], SEC));
	report_n(2, 0, 1, SEC);
	assert_true(outlier_ejected(&cl, &eps[2], SEC));
	assert_int_equal(atomic_load(&es[2]->consecutive_5xx), 0); /* reset by the ejection */
}

static void test_max_ejection_percent(void **state)
{
	od.max_ejection_percent = 10; /* of 4 endpoints: still one may go */
	report_n(0, 500, 3, SEC);
	report_n(1, 500, 3, SEC);
	assert_true(outlier_ejected(&cl, &eps[0], SEC));
	assert_false(outlier_ejected(&cl, &eps[1], SEC));
	od.max_ejection_percent = 50;
	report_n(1, 500, 3, SEC);
	report_n(2, 500, 3, SEC);
	assert_true(outlier_ejected(&cl, &eps[1], SEC));
	assert_false(outlier_ejected(&cl, &eps[2], SEC)); /* 2 of 4 = 50% already */
}

static void test_pick_and_panic(void **state)
{
	const struct endpoint *ep;

	od.max_ejection_percent = 100;
	for (int i = 0; i < 3; i++)
		report_n(i, 500, 3, SEC);
	for (int k = 0; k < 50; k++) {
		ep = outlier_pick(&W, &cl, &eps[k % 3], SEC);
		assert_ptr_equal(ep, &eps[3]);
	}
	report_n(3, 500, 3, SEC);
	assert_null(outlier_pick(&W, &cl, &eps[0], SEC)); /* all ejected: 503 UH */
	od.min_health_percent = 50;                       /* panic: use them anyway */
	assert_ptr_equal(outlier_pick(&W, &cl, &eps[0], SEC), &eps[0]);
	assert_false(outlier_ejected(&cl, &eps[2], SEC));
}

static void test_not_configured(void **state)
{
	cl.outlier = NULL;
	report_n(0, 500, 100, SEC);
	assert_false(outlier_ejected(&cl, &eps[0], SEC));
	assert_int_equal(atomic_load(&es[0]->consecutive_5xx), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_consecutive_5xx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_and_local, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_ejection_percent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pick_and_panic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_configured, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
