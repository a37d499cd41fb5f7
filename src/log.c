#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_level = LOG_LVL_INFO;
static __thread const char *thread_name = "main";

void log_init(enum log_level level)
{
	log_level = level;
}

bool log_debug_enabled(void)
{
	return log_level >= LOG_LVL_DEBUG;
}

void log_set_thread_name(const char *name)
{
	thread_name = name;
}

static void log_emit(const char *lvl, const char *fmt, va_list ap, int errnum)
    __attribute__((format(printf, 2, 0)));

/* One write(2) per line so lines from several threads never interleave. */
static void log_emit(const char *lvl, const char *fmt, va_list ap, int errnum)
{
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s [%s] ", ts.tv_nsec / 1000000, lvl,
		     thread_name);
	n += r > 0 ? (size_t)r : 0;
	r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	n = r > 0 && (size_t)r < sizeof(buf) - n ? n + (size_t)r : sizeof(buf) - 1;
	if (errnum != 0 && n < sizeof(buf) - 1) {
		r = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(errnum));
		n = r > 0 && (size_t)r < sizeof(buf) - n ? n + (size_t)r : sizeof(buf) - 1;
	}
	if (n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere left to report it */
	}
}

#define LOG_BODY(lvl_enum, lvl_name, errnum)                                                       \
	do {                                                                                       \
		va_list ap;                                                                        \
		if (log_level < (lvl_enum))                                                        \
			return;                                                                    \
		va_start(ap, fmt);                                                                 \
		log_emit(lvl_name, fmt, ap, errnum);                                               \
		va_end(ap);                                                                        \
	} while (0)

void log_warn(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY(LOG_LVL_WARN, "warn", e);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_WARN, "warn", 0);
}

void log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_INFO, "info", 0);
}

void log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_DEBUG, "debug", 0);
}

void fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal", fmt, ap, e);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal", fmt, ap, 0);
	va_end(ap);
	exit(1);
}

void log_raw(const char *line)
{
	char buf[4096];
	size_t n = strlen(line);

	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	memcpy(buf, line, n);
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere left to report it */
	}
}
