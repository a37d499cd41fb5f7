/* Helpers shared by the unit tests that load configuration files from a scratch directory. */
#ifndef MG_TEST_FIXTURE_H
#define MG_TEST_FIXTURE_H

struct diag;

/* Write text to dir/name (the test fails when it cannot). */
void fixture_write_file(const char *dir, const char *name, const char *text);
/* Every diagnostic line of d, with "<dir>/" removed so expectations name "r.yaml";
 * the caller frees it. */
char *fixture_diag_text(const struct diag *d, const char *dir);

#endif
