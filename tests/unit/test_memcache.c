/* memcache: size classes, reuse of freed blocks in a thread that keeps them, the per-class
 * bound, calloc and realloc, the trim of what a period did not use, and the hand-back at
 * thread end.  Under AddressSanitizer the
 * cache keeps nothing (memcache_caching() is false) and only the plain behaviour is
 * checked. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memcache.h"

static void test_sizes_and_reuse(void **state)
{
	static const size_t sizes[] = {1, 24, 25, 32, 33, 100, 512, 4000, 32768, 40000};

	(void)state;
	memcache_thread_begin();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = memcache_malloc(sizes[i]), *q;

		assert_non_null(p);
		assert_true(malloc_usable_size(p) >= sizes[i]);
		memset(p, 0xab, sizes[i]);
		memcache_free(p);
		q = memcache_malloc(sizes[i]);
		assert_non_null(q);
		/* a class size comes back as the same block; past the classes, malloc decides */
		if (memcache_caching() && sizes[i] <= 32768)
			assert_ptr_equal(p, q);
		assert_true(malloc_usable_size(q) >= sizes[i]);
		memset(q, 0xcd, sizes[i]);
		memcache_free(q);
	}
	memcache_free(NULL);
	memcache_thread_end();
}

static void test_calloc_realloc(void **state)
{
	unsigned char *p;

	(void)state;
	memcache_thread_begin();
	p = memcache_malloc(100);
	memset(p, 0xff, 100);
	memcache_free(p);
	p = memcache_calloc(10, 10); /* maybe the same block: zeroed anyway */
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
	memcpy(p, "abcdef", 6);
	p = memcache_realloc(p, 100000);
	assert_non_null(p);
	assert_memory_equal(p, "abcdef", 6);
	p = memcache_realloc(p, 10);
	assert_memory_equal(p, "abcdef", 6);
	memcache_free(p);
	assert_null(memcache_calloc(SIZE_MAX / 2, 4));
	memcache_thread_end();
}

/* At most 1 MiB per class is kept: 32 blocks of 32 KiB; the rest go back to malloc. */
static void test_bound(void **state)
{
	void *p[40];

	(void)state;
	memcache_thread_begin();
	for (int i = 0; i < 40; i++)
		p[i] = memcache_malloc(32768);
	for (int i = 0; i < 40; i++)
		memcache_free(p[i]);
	if (memcache_caching()) {
		/* the first 32 freed are kept (a stack): they come back, the last kept first */
		void *q[32];

		assert_int_equal(memcache_kept(), 32);
		for (int i = 31; i >= 0; i--) {
			q[i] = memcache_malloc(32768);
			assert_ptr_equal(q[i], p[i]);
		}
		for (int i = 0; i < 32; i++)
			memcache_free(q[i]);
	}
	memcache_thread_end();
	assert_false(memcache_caching());
	assert_int_equal(memcache_kept(), 0);
}

/* memcache_trim() frees what was not taken since the previous trim, least recently freed
 * first, and keeps what was. */
static void test_trim(void **state)
{
	void *p[10], *hot[3];

	(void)state;
	memcache_thread_begin();
	for (int i = 0; i < 10; i++)
		p[i] = memcache_malloc(1000);
	for (int i = 0; i < 10; i++)
		memcache_free(p[i]);
	if (!memcache_caching()) {
		memcache_trim(); /* nothing kept, nothing to do */
		assert_int_equal(memcache_kept(), 0);
		memcache_thread_end();
		return;
	}
	assert_int_equal(memcache_kept(), 10);
	memcache_trim(); /* the first one only starts the period */
	assert_int_equal(memcache_kept(), 10);

	/* a period that needs 3 blocks at most: the 7 others go */
	for (int i = 0; i < 3; i++)
		hot[i] = memcache_malloc(1000);
	for (int i = 0; i < 3; i++)
		memcache_free(hot[i]);
	memcache_trim();
	assert_int_equal(memcache_kept(), 3);
	/* the 3 kept are the ones in use during the period */
	for (int i = 0; i < 3; i++) {
		void *q = memcache_malloc(1000);

		assert_true(q == hot[0] || q == hot[1] || q == hot[2]);
		memcache_free(q);
	}
	memcache_trim(); /* that period needed 1 at a time: 2 go */
	assert_int_equal(memcache_kept(), 1);
	memcache_trim(); /* a quiet period: the last goes */
	assert_int_equal(memcache_kept(), 0);
	memcache_thread_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes_and_reuse),
	    cmocka_unit_test(test_calloc_realloc),
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_trim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
