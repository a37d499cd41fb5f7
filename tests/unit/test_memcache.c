/* memcache: size classes, reuse of freed blocks in a thread that keeps them, the per-class
 * bound, calloc and realloc, and the hand-back at thread end.  Under AddressSanitizer the
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

/* At most 256 KiB per class are kept: 8 blocks of 32 KiB; the rest go back to malloc. */
static void test_bound(void **state)
{
	void *p[16];

	(void)state;
	memcache_thread_begin();
	for (int i = 0; i < 16; i++)
		p[i] = memcache_malloc(32768);
	for (int i = 0; i < 16; i++)
		memcache_free(p[i]);
	if (memcache_caching()) {
		/* the first 8 freed are kept (a stack): they come back, the last kept first */
		void *q[8];

		for (int i = 7; i >= 0; i--) {
			q[i] = memcache_malloc(32768);
			assert_ptr_equal(q[i], p[i]);
		}
		for (int i = 0; i < 8; i++)
			memcache_free(q[i]);
	}
	memcache_thread_end();
	assert_false(memcache_caching());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes_and_reuse),
	    cmocka_unit_test(test_calloc_realloc),
	    cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
