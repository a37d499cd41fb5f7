/* Certificate file watching (see certwatch.h for the contract).
 *
 * Two lists of files with the identity each had when a load read it: `live` (what is
 * watched) and `pending` (what the load in progress reads).  The inotify watches are on
 * directories and are re-derived from `live` after every load and every check, so a
 * symlink that now leads elsewhere (a Kubernetes secret update) moves the watch along. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "certwatch.h"
#include "clock.h"
#include "log.h"

/* What a file was when it was read: a rename, a rewrite or a chmod changes it. */
struct cw_file {
	char *path;
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	size_t seq; /* order of the notes, so the latest of one path wins */
};

struct cw_list {
	struct cw_file *v;
	size_t n, cap;
};

struct cw_watch {
	int wd;
	bool keep; /* scratch during a sync */
	char *dir;
};

/* Directory events that can mean a watched file was replaced, rewritten or (un)linked.
 * Not IN_MODIFY: it fires on every write(2) to any file in the directory, so a log file
 * that shares the directory with a certificate woke the control thread once per line (a
 * load generator's per-request log took 15% of a CPU).  A rewrite in place ends with a
 * close, which IN_CLOSE_WRITE reports once. */
#define CW_MASK                                                                                    \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |        \
	 IN_DELETE_SELF | IN_MOVE_SELF)

static struct cw_list cw_live, cw_pending;
static bool cw_collecting;
static struct cw_watch *cw_watches;
static size_t cw_nwatches;
static int cw_fd = -1;
static struct event *cw_ev, *cw_timer;
static void (*cw_changed_cb)(const char *path);
static bool cw_armed;
static uint64_t cw_first_us;
static char cw_changed_path[PATH_MAX];

static void cw_list_clear(struct cw_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void cw_identity(struct cw_file *f, const struct stat *st, bool ok)
{
	f->present = ok;
	if (!ok)
		return;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtime = st->st_mtim;
	f->ctime = st->st_ctim;
}

static bool cw_same(const struct cw_file *a, const struct cw_file *b)
{
	if (a->present != b->present)
		return false;
	return !a->present ||
	       (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
		a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec);
}

static int cw_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cw_file *)a)->path, ((const struct cw_file *)b)->path);
}

/* In the first n entries of l (sorted). */
static struct cw_file *cw_find(struct cw_list *l, size_t n, const char *path)
{
	struct cw_file key = {.path = (char *)path};

	if (n == 0)
		return NULL;
	return bsearch(&key, l->v, n, sizeof(*l->v), cw_cmp);
}

/* Appends a copy of f, which gives its path to the list. */
static struct cw_file *cw_push(struct cw_list *l, const struct cw_file *f)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct cw_file *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = *f;
	l->v[l->n].seq = l->n;
	return &l->v[l->n++];
}

static int cw_cmp_seq(const void *a, const void *b)
{
	const struct cw_file *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorted by path, one entry per path: the latest note wins (a file read twice in one load
 * is the same file, and the later identity is the one the config ended up with). */
static void cw_list_normalize(struct cw_list *l)
{
	size_t i, k;

	if (l->n < 2)
		return; /* also keeps qsort from a NULL array: no TLS file was read */
	qsort(l->v, l->n, sizeof(*l->v), cw_cmp_seq);
	for (i = 0, k = 0; i < l->n; i++) {
		if (k > 0 && strcmp(l->v[k - 1].path, l->v[i].path) == 0) {
			free(l->v[k - 1].path);
			l->v[k - 1] = l->v[i];
			continue;
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
}

void certwatch_begin(void)
{
	cw_list_clear(&cw_pending);
	cw_collecting = true;
}

void certwatch_note(const char *path, int fd)
{
	struct cw_file f = {0};
	struct stat st;

	if (!cw_collecting || path == NULL)
		return;
	cw_identity(&f, &st, fd >= 0 ? fstat(fd, &st) == 0 : stat(path, &st) == 0);
	if ((f.path = strdup(path)) == NULL || cw_push(&cw_pending, &f) == NULL) {
		free(f.path);
		log_warnx("out of memory noting %s for certificate watching", path);
	}
}

/* ---- inotify ---- */

static char *cw_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static void cw_watch_dir(const char *dir)
{
	struct cw_watch *w;
	size_t i;
	int wd;

	if ((wd = inotify_add_watch(cw_fd, dir, CW_MASK | IN_ONLYDIR)) < 0) {
		/* A missing directory cannot be watched; its file is already "changed". */
		log_debug("cannot watch %s: %s", dir, strerror(errno));
		return;
	}
	for (i = 0; i < cw_nwatches; i++) {
		if (cw_watches[i].wd == wd) {
			cw_watches[i].keep = true;
			return;
		}
	}
	if ((w = realloc(cw_watches, (cw_nwatches + 1) * sizeof(*cw_watches))) == NULL)
		fatalx("out of memory");
	cw_watches = w;
	cw_watches[cw_nwatches].wd = wd;
	cw_watches[cw_nwatches].keep = true;
	cw_watches[cw_nwatches].dir = strdup(dir);
	cw_nwatches++;
}

/* The directories of the live files and of where their symlinks lead, and nothing else. */
static void cw_sync(void)
{
	char real[PATH_MAX];
	size_t i, k;

	if (cw_fd < 0)
		return;
	for (i = 0; i < cw_nwatches; i++)
		cw_watches[i].keep = false;
	for (i = 0; i < cw_live.n; i++) {
		char *d = cw_dirname(cw_live.v[i].path);

		if (d != NULL)
			cw_watch_dir(d);
		free(d);
		if (realpath(cw_live.v[i].path, real) != NULL &&
		    strcmp(real, cw_live.v[i].path) != 0 && (d = cw_dirname(real)) != NULL) {
			cw_watch_dir(d);
			free(d);
		}
	}
	for (i = 0, k = 0; i < cw_nwatches; i++) {
		if (cw_watches[i].keep) {
			cw_watches[k++] = cw_watches[i];
			continue;
		}
		inotify_rm_watch(cw_fd, cw_watches[i].wd); /* EINVAL once the dir is gone */
		free(cw_watches[i].dir);
	}
	cw_nwatches = k;
}

void certwatch_end(bool applied)
{
	size_t i, n0 = cw_live.n;

	cw_collecting = false;
	cw_list_normalize(&cw_pending);
	if (applied) {
		cw_list_clear(&cw_live);
		cw_live = cw_pending;
		memset(&cw_pending, 0, sizeof(cw_pending));
	} else {
		for (i = 0; i < cw_pending.n; i++) {
			struct cw_file *f = cw_find(&cw_live, n0, cw_pending.v[i].path);

			if (f != NULL) {
				free(f->path);
				*f = cw_pending.v[i];
				continue;
			}
			if (cw_push(&cw_live, &cw_pending.v[i]) == NULL)
				free(cw_pending.v[i].path);
		}
		/* every path now belongs to cw_live (or was freed) */
		free(cw_pending.v);
		memset(&cw_pending, 0, sizeof(cw_pending));
		cw_list_normalize(&cw_live);
	}
	cw_sync();
}

const char *certwatch_changed(void)
{
	struct cw_file now;
	struct stat st;
	size_t i;

	for (i = 0; i < cw_live.n; i++) {
		now.path = cw_live.v[i].path;
		cw_identity(&now, &st, stat(now.path, &st) == 0);
		if (!cw_same(&now, &cw_live.v[i]))
			return cw_live.v[i].path;
	}
	return NULL;
}

unsigned certwatch_count(void)
{
	return (unsigned)cw_live.n;
}

bool certwatch_check_due(void)
{
	return cw_armed;
}

static void cw_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	const char *path;

	cw_armed = false;
	if ((path = certwatch_changed()) != NULL) {
		/* The reload replaces the list the path lives in. */
		snprintf(cw_changed_path, sizeof(cw_changed_path), "%s", path);
		cw_changed_cb(cw_changed_path);
	}
	cw_sync();
}

/* Quiet for CERTWATCH_QUIET_MS, or CERTWATCH_MAX_MS after the first event at the latest. */
static void cw_arm(void)
{
	uint64_t now = clock_mono_us(), due;
	struct timeval tv;

	if (!cw_armed) {
		cw_armed = true;
		cw_first_us = now;
	}
	due = now + CERTWATCH_QUIET_MS * 1000ULL;
	if (due > cw_first_us + CERTWATCH_MAX_MS * 1000ULL)
		due = cw_first_us + CERTWATCH_MAX_MS * 1000ULL;
	due = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(due / 1000000);
	tv.tv_usec = (suseconds_t)(due % 1000000);
	evtimer_add(cw_timer, &tv);
}

static void cw_read_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;
	ssize_t n;

	/* Which file an event names does not matter: the check compares identities. */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		any = true;
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_warn("reading inotify events");
	if (any)
		cw_arm();
}

int certwatch_start(struct event_base *base, void (*changed)(const char *path))
{
	cw_changed_cb = changed;
	if ((cw_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		log_warn("inotify: certificate files are not watched (SIGHUP reloads them)");
		return -1;
	}
	cw_ev = event_new(base, cw_fd, EV_READ | EV_PERSIST, cw_read_cb, NULL);
	cw_timer = evtimer_new(base, cw_timer_cb, NULL);
	if (cw_ev == NULL || cw_timer == NULL || event_add(cw_ev, NULL) != 0)
		fatalx("out of memory");
	cw_sync();
	if (cw_live.n > 0)
		log_info("watching %u TLS file%s for changes", certwatch_count(),
			 cw_live.n == 1 ? "" : "s");
	return 0;
}

void certwatch_stop(void)
{
	size_t i;

	if (cw_ev != NULL)
		event_free(cw_ev);
	if (cw_timer != NULL)
		event_free(cw_timer);
	cw_ev = cw_timer = NULL;
	for (i = 0; i < cw_nwatches; i++)
		free(cw_watches[i].dir);
	free(cw_watches);
	cw_watches = NULL;
	cw_nwatches = 0;
	if (cw_fd >= 0)
		close(cw_fd);
	cw_fd = -1;
	cw_list_clear(&cw_live);
	cw_list_clear(&cw_pending);
	cw_armed = false;
}
