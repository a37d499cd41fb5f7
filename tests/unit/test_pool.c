/* pool.c: blocks are zeroed, 8-byte aligned and packed (a 24-byte block takes 24 bytes),
 * survive the move to a new chunk, big blocks leave the current chunk's free space alone,
 * strings and arrays copy what they should, cleanups run newest first on free and on reset,
 * and a reset pool is reused from its kept chunk. */
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

#include "pool.h"

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void test_zeroed_aligned_packed(void **state)
{
	struct pool *p = pool_new();

	(void)state;
	/* Many chunks' worth (malloc'd and mapped ones), in sizes that are not multiples of 8:
	 * each block zeroed and aligned to 8, and writing one never touches the next. */
	for (size_t i = 0; i < 20000; i++) {
		size_t size = 1 + i % 61;
		unsigned char *b = pool_alloc(p, size);

		assert_int_equal((uintptr_t)b % 8, 0);
		assert_true(all_zero(b, size));
		memset(b, 0xa5, size);
	}
	pool_free(p);
}

static void test_small_blocks_are_packed(void **state)
{
	struct pool *p = pool_new();
	unsigned char *a, *b, *c;

	(void)state;
	a = pool_alloc(p, 24);
	b = pool_alloc(p, 24);
	c = pool_alloc(p, 1);
	assert_ptr_equal(b, a + 24);
	assert_ptr_equal(c, b + 24);
	assert_ptr_equal(pool_alloc(p, 0), c + 8); /* a zero-size block still has an address */
	pool_free(p);
}

static void test_big_block_keeps_chunk_space(void **state)
{
	struct pool *p = pool_new();
	unsigned char *a, *big, *b;

	(void)state;
	a = pool_alloc(p, 32);
	big = pool_alloc(p, 1 << 20); /* more than a quarter of the next chunk: one-off */
	b = pool_alloc(p, 32);
	assert_ptr_equal(b, a + 32); /* still in the first chunk */
	assert_true(all_zero(big, 1 << 20));
	memset(big, 1, 1 << 20);
	assert_true(pool_bytes(p) >= (1u << 20) + 64 * 1024);
	pool_free(p);
}

static void test_strings_and_arrays(void **state)
{
	struct pool *p = pool_new();
	char longer[600];
	int *v, *w;
	char *s;

	(void)state;
	assert_string_equal(pool_strndup(p, "abcdef", 3), "abc");
	assert_string_equal(pool_strdup(p, "meshgate"), "meshgate");
	assert_string_equal(pool_printf(p, "%s:%d", "host", 8080), "host:8080");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	s = pool_printf(p, "<%s>", longer); /* past the formatter's stack buffer */
	assert_int_equal(strlen(s), sizeof(longer) + 1);
	assert_int_equal(s[0], '<');
	assert_int_equal(s[sizeof(longer)], '>');

	v = pool_calloc(p, 3, sizeof(*v));
	v[0] = 1, v[1] = 2, v[2] = 3;
	w = pool_grow(p, v, 3, 8, sizeof(*v));
	assert_int_equal(w[0], 1);
	assert_int_equal(w[2], 3);
	assert_true(all_zero((const unsigned char *)&w[3], 5 * sizeof(*w)));
	pool_free(p);
}

static int order[8];
static int norder;

static void record(void *arg)
{
	order[norder++] = *(int *)arg;
}

static void test_cleanups_newest_first(void **state)
{
	static int one = 1, two = 2, three = 3;
	struct pool *p = pool_new();

	(void)state;
	norder = 0;
	pool_on_free(p, record, &one);
	pool_on_free(p, record, &two);
	pool_reset(p);
	assert_int_equal(norder, 2);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);

	/* The reset pool works as new and keeps its first chunk: one 64 KiB chunk. */
	pool_on_free(p, record, &three);
	assert_non_null(pool_alloc(p, 100));
	assert_true(pool_bytes(p) < 2 * 64 * 1024);
	pool_free(p);
	assert_int_equal(norder, 3);
	assert_int_equal(order[2], 3);
	pool_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zeroed_aligned_packed),
	    cmocka_unit_test(test_small_blocks_are_packed),
	    cmocka_unit_test(test_big_block_keeps_chunk_space),
	    cmocka_unit_test(test_strings_and_arrays),
	    cmocka_unit_test(test_cleanups_newest_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
