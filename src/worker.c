#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "accesslog.h"
#include "conn.h"
#include "exchange.h"
#include "connpool.h"
#include "clock.h"
#include "l4proxy.h"
#include "h2down.h"
#include "istiometrics.h"
#include "log.h"
#include "memcache.h"
#include "mirror.h"
#include "request.h"
#include "snapshot.h"
#include "stream.h"
#include "upstream.h"
#include "worker.h"

struct worker *workers[MG_MAX_WORKERS];
int nworkers;
atomic_uint mg_total_conns;

/* Work handed to a worker by the control thread (config plans, drain).  Worker event bases
 * have no lock (every event operation on the data path would take a mutex for nothing): the
 * control thread never touches a worker's base, it queues here and wakes the worker through
 * an eventfd. */
struct post {
	struct post *next;
	void (*fn)(struct worker *, void *);
	void *arg;
};

static void post_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct post *p, *next;
	uint64_t n;

	(void)what;
	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->post_mu);
	p = w->post_head;
	w->post_head = NULL;
	w->post_tail = &w->post_head;
	pthread_mutex_unlock(&w->post_mu);
	for (; p != NULL; p = next) {
		next = p->next;
		p->fn(w, p->arg);
		free(p);
	}
}

void worker_post(struct worker *w, void (*fn)(struct worker *, void *), void *arg)
{
	struct post *p = calloc(1, sizeof(*p));
	uint64_t one = 1;

	if (p == NULL)
		fatal("worker_post");
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&w->post_mu);
	*w->post_tail = p;
	w->post_tail = &p->next;
	pthread_mutex_unlock(&w->post_mu);
	while (write(w->post_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

uint64_t worker_random(struct worker *w)
{
	/* xorshift64*: per-worker, no locks; quality is ample for load balancing and ids. */
	uint64_t x = w->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- snapshot pinning ---- */

static void wsnap_release(struct wsnap *ws)
{
	snapshot_unref(ws->snap);
	free(ws);
}

static void worker_adopt_newest(struct worker *w)
{
	struct snapshot *s = snapshot_current();
	struct wsnap *old = w->cur, *ws;

	if (s == NULL)
		return;
	if (old != NULL && old->snap == s) {
		snapshot_unref(s);
		return;
	}
	ws = calloc(1, sizeof(*ws));
	if (ws == NULL) {
		snapshot_unref(s);
		return;
	}
	ws->snap = s;
	ws->w = w;
	w->cur = ws;
	/* Per-cluster balancer slots are per snapshot: cluster indexes change. */
	free(w->lb);
	w->nlb = 0;
	w->lb = calloc(s->nclusters ? s->nclusters : 1, sizeof(*w->lb));
	if (w->lb != NULL) {
		w->nlb = s->nclusters;
		for (size_t i = 0; i < s->nclusters; i++)
			w->lb[i].cl = s->clusters[i];
	}
	if (old != NULL && old->local_refs == 0)
		wsnap_release(old);
	/* else: the last exchange on it releases it (worker_snap_unpin). */
}

struct wsnap *worker_snap_pin(struct worker *w)
{
	if (w->cur == NULL || snapshot_generation_hint() != w->cur->snap->generation)
		worker_adopt_newest(w);
	if (w->cur == NULL)
		return NULL;
	w->cur->local_refs++;
	return w->cur;
}

struct wsnap *worker_snap_ref(struct wsnap *ws)
{
	ws->local_refs++;
	return ws;
}

void worker_snap_unpin(struct wsnap *ws)
{
	if (ws == NULL)
		return;
	if (--ws->local_refs == 0 && ws->w->cur != ws)
		wsnap_release(ws);
}

/* ---- listeners ---- */

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct wlistener *wl = arg;

	conn_accept(wl->w, wl, fd, sa, (socklen_t)salen);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct wlistener *wl = arg;
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE/ENFILE: pause accepting briefly instead of spinning. */
	log_warnx("accept on %s: %s", wl->key, evutil_socket_error_to_string(e));
	if (e == EMFILE || e == ENFILE) {
		struct timeval tv = {0, 100000};

		evconnlistener_disable(lev);
		event_base_once(wl->w->base, -1, EV_TIMEOUT, accept_resume_cb, lev, &tv);
	}
}

const char *worker_key_intern(const char *key)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char **keys;
	static size_t nkeys;
	const char *found = NULL;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nkeys && found == NULL; i++)
		if (strcmp(keys[i], key) == 0)
			found = keys[i];
	if (found == NULL) {
		char **nk = realloc(keys, (nkeys + 1) * sizeof(*nk));
		char *copy = strdup(key);

		if (nk == NULL || copy == NULL)
			fatalx("out of memory keeping a listener key");
		keys = nk;
		keys[nkeys++] = copy;
		found = copy;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

static void wlistener_free(struct wlistener *wl)
{
	if (wl == NULL)
		return;
	if (wl->lev != NULL)
		evconnlistener_free(wl->lev);
	free(wl);
}

void worker_apply_plan(struct worker *w, void *arg)
{
	struct listener_plan *plan = arg;
	size_t i, j;

	for (i = 0; i < plan->nremove; i++) {
		for (j = 0; j < w->nlisteners; j++) {
			if (strcmp(w->listeners[j]->key, plan->remove[i]) == 0) {
				wlistener_free(w->listeners[j]);
				w->listeners[j] = w->listeners[--w->nlisteners];
				break;
			}
		}
		free(plan->remove[i]);
	}
	for (i = 0; i < plan->nadd; i++) {
		struct wlistener *wl = calloc(1, sizeof(*wl));
		struct wlistener **nl;

		nl = realloc(w->listeners, (w->nlisteners + 1) * sizeof(*nl));
		if (wl == NULL || nl == NULL)
			fatalx("out of memory adding a listener");
		w->listeners = nl;
		wl->key = worker_key_intern(plan->add[i].key);
		free(plan->add[i].key);
		wl->port = plan->add[i].port;
		wl->w = w;
		/* backlog 0: the control thread already called listen() on it. */
		wl->lev = evconnlistener_new(w->base, accept_cb, wl,
					     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
					     plan->add[i].fd);
		if (wl->lev == NULL)
			fatalx("evconnlistener_new failed for %s", wl->key);
		evconnlistener_set_error_cb(wl->lev, accept_error_cb);
		if (w->draining)
			evconnlistener_disable(wl->lev);
		w->listeners[w->nlisteners++] = wl;
	}
	free(plan->add);
	free(plan->remove);
	free(plan);
	/* Adopt the snapshot that came with these listeners before the next accept. */
	worker_adopt_newest(w);
}

/* ---- drain ---- */

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_info("drain deadline reached with %u connections open; closing them",
		 w->nconns + w->nl4);
	while (!LIST_EMPTY(&w->conns))
		conn_close(LIST_FIRST(&w->conns), "drain deadline");
	l4proxy_close_all(w);
	event_base_loopexit(w->base, NULL);
}

void worker_check_drained(struct worker *w)
{
	/* Mirrors in flight finish too, bounded by their own deadline and the drain's. */
	if (w->draining && w->nconns == 0 && w->nl4 == 0 && mirror_inflight(w) == 0)
		event_base_loopexit(w->base, NULL);
}

void worker_drain(struct worker *w, void *arg)
{
	uint64_t *deadline_us = arg;
	struct timeval tv;
	struct conn *c, *next;
	size_t i;

	w->draining = true;
	for (i = 0; i < w->nlisteners; i++)
		wlistener_free(w->listeners[i]);
	w->nlisteners = 0;
	tv.tv_sec = (time_t)(*deadline_us / 1000000);
	tv.tv_usec = (suseconds_t)(*deadline_us % 1000000);
	w->drain_timer = evtimer_new(w->base, drain_deadline_cb, w);
	evtimer_add(w->drain_timer, &tv);
	for (c = LIST_FIRST(&w->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		conn_drain(c);
	}
	worker_check_drained(w);
}

/* ---- thread ---- */

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	static __thread unsigned ticks;
	static __thread uint64_t tcp_reported_us;
	struct worker *w = arg;
	const struct cfg_set *set = w->cur != NULL ? w->cur->snap->set : NULL;
	uint64_t now = clock_mono_us();

	accesslog_flush(w->alog);
	if (++ticks % 5 == 0)
		memcache_trim(); /* once a second */
	if (set != NULL &&
	    now - tcp_reported_us >=
		(set->metrics_tcp_interval_us > 0 ? set->metrics_tcp_interval_us : 15000000)) {
		l4proxy_report_metrics(w);
		tcp_reported_us = now;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct event *tick;
	struct timeval tv = {0, 200000};

	log_set_thread_name(w->name);
	memcache_thread_begin();
	/* Flush the access log at least every 200 ms so lines appear promptly when idle, and
	 * trim the allocation cache once a second. */
	tick = event_new(w->base, -1, EV_PERSIST, keepalive_cb, w);
	event_add(tick, &tv);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_free(tick);
	accesslog_flush(w->alog);
	request_thread_cleanup();
	h2down_thread_cleanup();
	memcache_thread_end();
	return NULL;
}

int workers_start(int n)
{
	int i;

	/* Workers allocate and free read buffers (32 KiB chains) at request rate.  glibc's
	 * default hands free memory at the top of a heap back to the kernel as soon as 128 KiB
	 * are free there, and the next request faults it in again: an madvise (a TLB flush)
	 * and page faults every few requests under load.  Keep up to 8 MiB per arena. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	if (n < 1)
		n = 1;
	if (n > MG_MAX_WORKERS)
		n = MG_MAX_WORKERS;
	for (i = 0; i < n; i++) {
		struct worker *w = calloc(1, sizeof(*w));
		struct event_config *cfg;
		struct timespec ts;

		if (w == NULL)
			fatal("calloc");
		w->id = i;
		snprintf(w->name, sizeof(w->name), "w%d", i);
		if ((cfg = event_config_new()) == NULL ||
		    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK) != 0 ||
		    (w->base = event_base_new_with_config(cfg)) == NULL)
			fatalx("event_base_new failed");
		event_config_free(cfg);
		if ((w->sloop = stream_loop_new(w->base)) == NULL ||
		    (w->conn_timeouts = deadline_set_new(w->base, conn_timeout_fire)) == NULL)
			fatalx("out of memory");
		pthread_mutex_init(&w->post_mu, NULL);
		w->post_tail = &w->post_head;
		if ((w->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
			fatal("eventfd");
		w->post_ev = event_new(w->base, w->post_fd, EV_READ | EV_PERSIST, post_cb, w);
		if (w->post_ev == NULL || event_add(w->post_ev, NULL) != 0)
			fatalx("worker %d: cannot watch its queue", i);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		w->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ ((uint64_t)i << 56) ^
			 0x9E3779B97F4A7C15ULL;
		if (w->rng == 0)
			w->rng = 1;
		LIST_INIT(&w->conns);
		LIST_INIT(&w->l4conns);
		w->pool = connpool_new(w);
		w->alog = accesslog_buf_new();
		w->istio = istiom_table_new();
		workers[i] = w;
	}
	nworkers = n;
	for (i = 0; i < n; i++)
		if (pthread_create(&workers[i]->thread, NULL, worker_main, workers[i]) != 0)
			fatalx("pthread_create failed");
	return 0;
}

void workers_join(void)
{
	int i;

	for (i = 0; i < nworkers; i++) {
		struct worker *w = workers[i];

		pthread_join(w->thread, NULL);
		if (w->drain_timer != NULL)
			event_free(w->drain_timer);
		for (size_t j = 0; j < w->nlisteners; j++)
			wlistener_free(w->listeners[j]);
		free(w->listeners);
		while (w->ex_free != NULL) {
			struct exchange *ex = w->ex_free;

			w->ex_free = ex->next_free;
			request_exchange_free(ex);
		}
		mirror_worker_free(w); /* before the pool and snapshot they use */
		connpool_free(w->pool);
		accesslog_buf_free(w->alog);
		istiom_table_free(w->istio);
		w->istio = NULL;
		if (w->cur != NULL)
			wsnap_release(w->cur);
		free(w->lb);
		stream_loop_free(w->sloop); /* its streams are gone: connections, pools, mirrors */
		deadline_set_free(w->conn_timeouts);
		event_free(w->post_ev);
		close(w->post_fd);
		pthread_mutex_destroy(&w->post_mu);
		event_base_free(w->base);
		free(w);
		workers[i] = NULL;
	}
	nworkers = 0;
}
