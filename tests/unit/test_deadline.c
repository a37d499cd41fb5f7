/* deadline.c: entries expire in deadline order across durations, cancel and re-arm work
 * (also from inside the fire callback), more durations than lists still expire in order,
 * and the set's libevent timer really fires. */
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
#include <event2/event.h>

#include "clock.h"
#include "deadline.h"

#define N 64

struct item {
	struct deadline d;
	int id;
	uint64_t rearm_us; /* fire() arms it again with this, once */
	bool free_other;   /* fire() cancels items[id + 1] */
};

static struct item items[N];
static int fired[N * 2];
static int nfired;
static struct deadline_set *set;

static void on_fire(struct deadline *d)
{
	struct item *it = (struct item *)((char *)d - offsetof(struct item, d));

	assert_false(deadline_armed(d));
	fired[nfired++] = it->id;
	if (it->rearm_us != 0) {
		uint64_t us = it->rearm_us;

		it->rearm_us = 0;
		deadline_arm(set, d, us);
	}
	if (it->free_other && it->id + 1 < N)
		deadline_cancel(&items[it->id + 1].d);
}

static int setup(void **state)
{
	struct event_base *base = event_base_new();

	assert_non_null(base);
	*state = base;
	set = deadline_set_new(base, on_fire);
	assert_non_null(set);
	memset(items, 0, sizeof(items));
	for (int i = 0; i < N; i++)
		items[i].id = i;
	nfired = 0;
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < N; i++)
		deadline_cancel(&items[i].d);
	deadline_set_free(set);
	event_base_free(*state);
	return 0;
}

/* Two durations interleaved: each fires at its own time, nothing early. */
static void test_order_across_durations(void **state)
{
	uint64_t t0 = clock_mono_us();

	(void)state;
	deadline_arm(set, &items[0].d, 600000000); /* idle: 600 s */
	deadline_arm(set, &items[1].d, 10000000);  /* header: 10 s */
	deadline_arm(set, &items[2].d, 600000000);
	deadline_arm(set, &items[3].d, 10000000);
	deadline_run(set, t0);
	assert_int_equal(nfired, 0);
	deadline_run(set, t0 + 20000000);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired[0], 1);
	assert_int_equal(fired[1], 3);
	assert_true(deadline_armed(&items[0].d));
	deadline_run(set, clock_mono_us() + 700000000);
	assert_int_equal(nfired, 4);
	assert_int_equal(fired[2], 0);
	assert_int_equal(fired[3], 2);
}

static void test_cancel_and_rearm(void **state)
{
	uint64_t t0 = clock_mono_us();

	(void)state;
	deadline_arm(set, &items[0].d, 1000000);
	deadline_arm(set, &items[1].d, 1000000);
	deadline_cancel(&items[0].d);
	deadline_cancel(&items[0].d); /* twice is harmless */
	assert_false(deadline_armed(&items[0].d));
	/* re-arming moves it: item 1 now expires later than a fresh short one */
	deadline_arm(set, &items[1].d, 5000000);
	deadline_arm(set, &items[2].d, 1000000);
	deadline_run(set, t0 + 2000000 + 100000);
	assert_int_equal(nfired, 1);
	assert_int_equal(fired[0], 2);
	deadline_run(set, clock_mono_us() + 6000000);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired[1], 1);
}

/* fire() may arm its own entry again (due later) and cancel another one that was due in
 * the same run. */
static void test_changes_inside_fire(void **state)
{
	uint64_t t0 = clock_mono_us();

	(void)state;
	items[0].rearm_us = 0;
	items[0].free_other = true;
	items[2].rearm_us = 10000000;
	deadline_arm(set, &items[0].d, 1000);
	deadline_arm(set, &items[1].d, 1000);
	deadline_arm(set, &items[2].d, 1000);
	deadline_run(set, t0 + 2000000);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired[0], 0);
	assert_int_equal(fired[1], 2);
	assert_false(deadline_armed(&items[1].d));
	assert_true(deadline_armed(&items[2].d));
	deadline_run(set, clock_mono_us() + 11000000);
	assert_int_equal(nfired, 3);
	assert_int_equal(fired[2], 2);
}

/* More distinct durations than lists (a reload changing timeouts): the spill list keeps
 * its entries in deadline order, so everything still fires when due and in order. */
static void test_many_durations(void **state)
{
	uint64_t t0;

	(void)state;
	for (int i = 0; i < 20; i++)
		deadline_arm(set, &items[i].d, (uint64_t)(20 - i) * 1000000);
	t0 = clock_mono_us();
	for (int k = 1; k <= 21; k++) {
		deadline_run(set, t0 + (uint64_t)k * 1000000 - 500000);
		assert_int_equal(nfired, k - 1 < 20 ? k - 1 : 20);
	}
	for (int i = 0; i < 20; i++)
		assert_int_equal(fired[i], 19 - i);
}

/* Through the event loop: a 1 ms timeout fires without anyone calling deadline_run. */
static void test_timer_fires(void **state)
{
	struct event_base *base = *state;
	int rounds = 0;

	deadline_arm(set, &items[5].d, 1000);
	while (nfired == 0 && rounds++ < 1000)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(nfired, 1);
	assert_int_equal(fired[0], 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order_across_durations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_and_rearm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_inside_fire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_durations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timer_fires, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
