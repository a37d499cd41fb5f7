/* Helpers shared by the unit tests that load configuration files from a scratch directory. */
#ifndef MG_TEST_FIXTURE_H
#define MG_TEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

struct diag;

/* Write text to dir/name (the test fails when it cannot). */
void fixture_write_file(const char *dir, const char *name, const char *text);
/* Every diagnostic line of d, with "<dir>/" removed so expectations name "r.yaml";
 * the caller frees it. */
char *fixture_diag_text(const struct diag *d, const char *dir);

/* A fresh scratch directory "$TMPDIR/<name>.XXXXXX" into dir (size bytes); false when it
 * cannot be made. */
bool fixture_scratch_dir(char *dir, size_t size, const char *name);
/* Remove the files the config tests write there (main.yaml, r.yaml), then the directory. */
void fixture_scratch_dir_remove(const char *dir);

#endif
