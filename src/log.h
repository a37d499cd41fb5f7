/* Process log on stderr (journald adds timestamps under systemd; we add our own for
 * foreground use).  relayd's five functions: warn (with errno), warnx, info, debug, fatal. */
#ifndef MG_LOG_H
#define MG_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

void log_init(enum log_level level);
/* Whether debug lines are written: skip formatting their arguments when not. */
bool log_debug_enabled(void);
void log_set_thread_name(const char *name); /* "ctl", "w0", "w1", ... */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* + strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Write one preformatted line (no prefix), used for config diagnostics. */
void log_raw(const char *line);

#endif
