/* Config diagnostics: every error and warning is collected with its position, so one
 * `meshgate -t` run reports all of them (relayd's errors++), in a stable order.
 *
 * Line format (user interface; golden tests match it byte for byte):
 *   FILE:LINE:COL: Kind namespace/name: field.path: message          (errors)
 *   FILE:LINE:COL: warning: Kind namespace/name: field.path: message (warnings)
 *   FILE:LINE:COL: notice: ...                                         (notices)
 * Parts that do not apply are left out (a main-config key has no Kind, a YAML syntax
 * error has no field path). */
#ifndef MG_DIAG_H
#define MG_DIAG_H

#include <stdio.h>

struct node;

enum diag_level {
	DIAG_ERROR = 0,
	DIAG_WARNING,
	DIAG_NOTICE,
};

struct diag_entry {
	enum diag_level level;
	char *text; /* the whole formatted line without trailing newline (malloc'd) */
};

struct diag {
	struct diag_entry *v;
	size_t n, cap;
	int nerrors;
	int nwarnings;
};

void diag_init(struct diag *d);
void diag_fini(struct diag *d);

/* Report at a node: position, resource (from the node's document) and field path
 * are derived from the node itself.  n may be NULL (then only the message is printed). */
void diag_error(struct diag *d, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warn(struct diag *d, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_notice(struct diag *d, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error inside a scalar that holds a language of its own (a CEL expression): at the
 * node's column plus col_off, with the node's resource and field path. */
void diag_error_col(struct diag *d, const struct node *n, int col_off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same for an error at byte off of the scalar's value, with the message as is: at its
 * column when the value's bytes before off stand in the source as they are (one line, no
 * escapes), else "at byte N" of the value. */
void diag_error_scalar(struct diag *d, const struct node *n, size_t off, const char *msg);
/* Report at a raw position (YAML syntax errors, files that cannot be read). */
void diag_error_at(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Print every entry, one per line, in report order. */
void diag_print(const struct diag *d, FILE *out);

#endif
