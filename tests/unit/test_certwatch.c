/* Certificate watching (certwatch.c) without an event loop: what a load notes becomes the
 * watched set, and certwatch_changed() reports a file whose identity moved on (rewrite,
 * rename into place, appearance), and only then. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "certwatch.h"

static char dir[] = "/tmp/mg-certwatch.XXXXXX";

static const char *path_of(const char *name)
{
	static char buf[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void put(const char *name, const char *text)
{
	FILE *f = fopen(path_of(name), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A load that reads the named files (NULL-terminated); applied or refused. */
static void load(bool applied, const char *const *names)
{
	certwatch_begin();
	for (; *names != NULL; names++) {
		int fd = open(path_of(*names), O_RDONLY);

		certwatch_note(path_of(*names), fd);
		if (fd >= 0)
			close(fd);
	}
	certwatch_end(applied);
}

static void test_rewrite_and_rename(void **state)
{
	static const char *const both[] = {"a.crt", "a.key", "a.crt", NULL};

	put("a.crt", "cert one");
	put("a.key", "key one");
	load(true, both);
	assert_int_equal(certwatch_count(), 2); /* read twice, watched once */
	assert_null(certwatch_changed());

	put("a.key", "key two, longer"); /* rewritten in place */
	assert_string_equal(certwatch_changed(), path_of("a.key"));
	load(true, both);
	assert_null(certwatch_changed());

	put("new.crt", "cert two");
	assert_int_equal(rename(path_of("new.crt"), path_of("a.crt")), 0);
	assert_string_equal(certwatch_changed(), path_of("a.crt"));
	load(true, both);
	assert_null(certwatch_changed());
}

static void test_refused_load_waits_for_next_change(void **state)
{
	static const char *const good[] = {"b.crt", NULL};
	static const char *const attempt[] = {"b.crt", "c.crt", NULL};

	put("b.crt", "good");
	load(true, good);
	put("b.crt", "broken replacement");
	assert_non_null(certwatch_changed());
	/* The reload that read it was refused: the same bytes are not retried ... */
	load(false, attempt);
	assert_null(certwatch_changed());
	assert_int_equal(certwatch_count(), 2); /* c.crt (missing) is watched for too */
	/* ... a further change is, and so is a missing file that appears. */
	put("c.crt", "now here");
	assert_string_equal(certwatch_changed(), path_of("c.crt"));
	load(false, attempt);
	assert_null(certwatch_changed());
	unlink(path_of("b.crt"));
	assert_string_equal(certwatch_changed(), path_of("b.crt"));
}

static void test_notes_outside_a_load_ignored(void **state)
{
	static const char *const none[] = {NULL};

	load(true, none);
	certwatch_note(path_of("x"), -1); /* meshgate -t, unit tests: no load in progress */
	assert_int_equal(certwatch_count(), 0);
	assert_null(certwatch_changed());
}

static int setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	static const char *const names[] = {"a.crt", "a.key", "b.crt", "c.crt", NULL};

	for (const char *const *n = names; *n != NULL; n++)
		unlink(path_of(*n));
	certwatch_stop();
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rewrite_and_rename),
	    cmocka_unit_test(test_refused_load_waits_for_next_change),
	    cmocka_unit_test(test_notes_outside_a_load_ignored),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
