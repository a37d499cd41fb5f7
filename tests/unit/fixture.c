#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/diag.h"
#include "fixture.h"

void fixture_write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

bool fixture_scratch_dir(char *dir, size_t size, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, size, "%s/%s.XXXXXX", tmp != NULL ? tmp : "/tmp", name);
	return mkdtemp(dir) != NULL;
}

void fixture_scratch_dir_remove(const char *dir)
{
	static const char *const files[] = {"main.yaml", "r.yaml"};
	char path[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

char *fixture_diag_text(const struct diag *d, const char *dir)
{
	size_t len = 0, dl = strlen(dir);
	char *buf = NULL, *hit;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	diag_print(d, m);
	fclose(m);
	while ((hit = strstr(buf, dir)) != NULL && hit[dl] == '/')
		memmove(hit, hit + dl + 1, strlen(hit + dl + 1) + 1);
	return buf;
}
