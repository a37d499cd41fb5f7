/* Worker threads: each owns one libevent event_base and everything a connection touches
 * (its SO_REUSEPORT listening sockets, client connections, upstream pools, metric shard).
 * The control thread talks to workers only by posting closures onto their base. */
#ifndef MG_WORKER_H
#define MG_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "metrics.h"

struct event_base;
struct event;
struct evconnlistener;
struct snapshot;
struct connpool;
struct accesslog_buf;
struct conn;
struct exchange;
struct mirror_state;

#define MG_MAX_WORKERS 256

/* A snapshot as one worker uses it: the worker holds one global reference per snapshot it
 * still needs and counts its own exchanges on it without atomics (no shared write per
 * request). */
struct wsnap {
	struct snapshot *snap;
	unsigned local_refs;
	struct worker *w;
};

struct wlistener {
	const char *key; /* "bind:port" (worker_key_intern) */
	uint32_t port;
	struct evconnlistener *lev;
	struct worker *w;
};

struct worker {
	int id;
	char name[16];
	pthread_t thread;
	struct event_base *base;
	struct stream_loop *sloop;          /* the streams' end-of-round queue (stream.c) */
	struct deadline_set *conn_timeouts; /* client connections' idle and header timeouts */
	struct wlistener **listeners;
	size_t nlisteners;
	struct wsnap *cur; /* newest snapshot this worker has adopted */
	struct connpool *pool;
	struct accesslog_buf *alog;
	struct istio_table *istio; /* Istio's standard metrics, this worker's series */
	uint64_t next_conn_id;
	uint64_t rng;
	LIST_HEAD(conn_list, conn) conns;
	unsigned nconns;
	LIST_HEAD(l4conn_list, l4conn) l4conns; /* passthrough and tcp relays (l4proxy.c) */
	unsigned nl4;
	bool draining;
	struct event *drain_timer;
	struct lb_slot *lb; /* per cluster index of cur->snap: cursor and caches (upstream.h) */
	size_t nlb;
	struct metrics_shard metrics;
	struct exchange *ex_free; /* recycled exchanges (request.c) */
	unsigned nex_free;
	struct mirror_state *mirror; /* mirrors in flight and recycled (mirror.c) */
	/* worker_post's queue: the only state the control thread shares with the worker */
	pthread_mutex_t post_mu;
	struct post *post_head, **post_tail;
	int post_fd; /* eventfd */
	struct event *post_ev;
};

extern struct worker *workers[MG_MAX_WORKERS];
extern int nworkers;
extern atomic_uint mg_total_conns; /* across workers, for maxConnections (tolerance: racy by
				    * at most one accept per worker) */

int workers_start(int n);
void workers_join(void);
/* Run fn(w, arg) on worker w's thread (thread-safe; returns at once). */
void worker_post(struct worker *w, void (*fn)(struct worker *, void *), void *arg);

/* Per-exchange snapshot pinning (worker thread only). */
struct wsnap *worker_snap_pin(struct worker *w);
void worker_snap_unpin(struct wsnap *ws);
/* One more pin on a snapshot already pinned (a mirror outliving its exchange). */
struct wsnap *worker_snap_ref(struct wsnap *ws);

/* Control -> worker: listener set changes and shutdown. */
struct listener_plan_add {
	char *key;
	uint32_t port;
	int fd;
};

struct listener_plan {
	struct listener_plan_add *add;
	size_t nadd;
	char **remove;
	size_t nremove;
};
void worker_apply_plan(struct worker *w, void *plan);   /* takes ownership */
void worker_drain(struct worker *w, void *deadline_us); /* arg: uint64_t *, not freed */
void worker_check_drained(struct worker *w);

uint64_t worker_random(struct worker *w);

/* A listener's "bind:port" as a string that lives as long as the process, so that a
 * connection can point at it after a reload removed its listener.  One copy per distinct
 * key (listeners are few); any thread. */
const char *worker_key_intern(const char *key);

#endif
