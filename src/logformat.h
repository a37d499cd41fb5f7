/* Access log formats written as Envoy's format strings (its "command operators", e.g.
 * "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%"), as Istio's mesh config accessLogFormat
 * and its envoyFileAccessLog providers' logFormat give them: a text line, or a JSON object
 * of labels whose values are format strings.  Compiled once at load into a list of
 * operators; rendered by the workers for every line, without allocation. */
#ifndef MG_LOGFORMAT_H
#define MG_LOGFORMAT_H

#include <stdbool.h>
#include <stddef.h>

struct accesslog_entry;
struct pool;
struct logformat; /* compiled; immutable once its header slots are bound */

/* Called for each operator Envoy has that meshgate does not record: it compiles, and
 * prints "-" (null in JSON) as Envoy does for a value it does not have. */
typedef void logformat_warn_fn(void *arg, size_t off, const char *name);

/* A text format (a newline is added when it does not end with one, as istiod does).  NULL
 * on error, with err and *off (the byte offset in s) set. */
struct logformat *logformat_text(struct pool *p, const char *s, char *err, size_t errlen,
				 size_t *off, logformat_warn_fn *warn, void *warn_arg);

/* A JSON format: logformat_json(p, n), then each label in turn with logformat_json_label,
 * whose value is compiled as a text format (without the newline); false on error.  The
 * object's keys come out sorted, as Envoy writes a Struct. */
struct logformat *logformat_json(struct pool *p, size_t nlabels);
bool logformat_json_label(struct pool *p, struct logformat *f, const char *key, const char *value,
			  char *err, size_t errlen, size_t *off, logformat_warn_fn *warn,
			  void *warn_arg);

/* The header names (lower case) whose values the format reads from the exchange's kept
 * copies, side 0 request, 1 response; the ones the log entry carries anyway (method, path,
 * authority, user agent, ...) are not listed.  At most max; returns how many there are. */
size_t logformat_header_names(const struct logformat *f, int side, const char **out, size_t max);

/* Tell the format where its headers are kept: names[side][k] is at the entry's
 * kept[side][k].  Names it reads that are not there print "-". */
void logformat_bind(struct logformat *f, const char *const *names[2], const size_t n[2]);

/* The line for e, its newline included, into out (ACCESSLOG_LINE_MAX bytes: longer lines
 * are cut there); returns its length. */
size_t logformat_render(const struct logformat *f, const struct accesslog_entry *e, char *out);

#endif
