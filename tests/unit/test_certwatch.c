/* Certificate watching (certwatch.c): what a load notes becomes the watched set, and
 * certwatch_changed() reports a file whose identity moved on (rewrite, rename into place,
 * appearance), and only then.  The last test runs the inotify side on an event loop. */
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
#include <event2/event.h>

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

static void changed_cb(const char *path)
{
}

/* Events ready on the inotify descriptor are read; the loop does not wait. */
static void pump(struct event_base *base)
{
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
}

static void test_busy_neighbour_file_does_not_wake(void **state)
{
	static const char *const d[] = {"d.crt", NULL};
	struct event_base *base = event_base_new();
	int fd, i;

	assert_non_null(base);
	put("d.crt", "cert");
	/* A log file kept open beside the certificate: its writes are no event of ours. */
	fd = open(path_of("busy.log"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	load(true, d);
	assert_int_equal(certwatch_start(base, changed_cb), 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal(write(fd, "line\n", 5), 5);
	pump(base);
	assert_false(certwatch_check_due());
	/* Its close is one event (a certificate rewritten in place ends the same way). */
	close(fd);
	pump(base);
	assert_true(certwatch_check_due());
	certwatch_stop();
	event_base_free(base);
	unlink(path_of("busy.log"));
}

static int setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	static const char *const names[] = {"a.crt", "a.key", "b.crt", "c.crt", "d.crt", NULL};

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
	    cmocka_unit_test(test_busy_neighbour_file_does_not_wake),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
