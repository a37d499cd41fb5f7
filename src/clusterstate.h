/* Per-appliance state of clusters and endpoints, shared by every worker thread and kept
 * across reloads: circuit-breaker counters (DestinationRule connectionPool) and
 * outlier-detection state.
 *
 * Keyed by cluster name ("outbound|80||svc") and endpoint address (and, for the per-route
 * counters of routes with a statPrefix, "route:" + the prefix), created by the control
 * thread before a snapshot is published (clusterstate_attach) and freed only at exit, so a
 * pooled upstream connection or an exchange that outlives its snapshot can still count
 * itself out.  Workers touch only the atomics: no lock on the data path.
 *
 * Tolerance of the limits (written down as the issue asks): counters are exact across
 * threads (atomic add/sub); a worker that holds no connection to a host may open one
 * even at maxConnections, as Envoy's per-worker pools do, so the connection limit can be
 * exceeded by at most one connection per worker and host. */
#ifndef MG_CLUSTERSTATE_H
#define MG_CLUSTERSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snapshot;

struct endpoint_state {
	atomic_uint consecutive_5xx;
	atomic_uint consecutive_gateway;
	atomic_uint consecutive_local;
	atomic_uint_fast64_t ejected_until_us; /* monotonic clock; 0 = in service */
	atomic_uint ejections;                 /* times ejected: the ejection time multiplier */
	atomic_bool ejected;
	atomic_bool hc_failed; /* active health checking says unhealthy (healthcheck.h) */
	/* monotonic time it (re)entered service, for slow start; 0 = since the beginning */
	atomic_uint_fast64_t in_service_since_us;
	struct endpoint_state *next;
	char key[]; /* "cluster name|endpoint address" */
};

/* Per-cluster request counters, one cache line per worker: a worker increments only its
 * own shard (plain adds, no contention); the admin endpoint sums them with relaxed loads. */
enum cluster_counter {
	CC_RQ_TOTAL,
	CC_RQ_2XX,
	CC_RQ_3XX,
	CC_RQ_4XX,
	CC_RQ_5XX,
	CC_RQ_RETRY,
	CC_RQ_TIMEOUT,
	CC_CX_CONNECT_FAIL,
	CC__COUNT,
};

struct cluster_shard {
	uint64_t v[CC__COUNT];
} __attribute__((aligned(64)));

extern const char *const cluster_counter_names[CC__COUNT];

struct cluster_state {
	struct cluster_shard *shards; /* one per worker */
	unsigned nshards;
	atomic_uint cx_active;      /* open upstream connections counted for this cluster */
	atomic_uint rq_active;      /* requests in flight */
	atomic_uint rq_pending;     /* requests waiting for a connection */
	atomic_uint retries_active; /* retries in flight */
	atomic_uint ejected;        /* endpoints ejected now */
	atomic_uint hc_failed;      /* endpoints failing active health checks now */
	/* Bumped whenever an endpoint leaves or re-enters service (ejection, return, health
	 * check verdict): workers cache what they derive from the endpoints' state (locality
	 * rank loads, slow start) and recompute only when it moves. */
	atomic_uint gen;
	/* counters for the admin endpoint and metrics */
	atomic_uint_fast64_t cx_overflow, rq_pending_overflow, rq_overflow, retry_overflow;
	atomic_uint_fast64_t ejections_total;
	struct cluster_state *next;
	char name[];
};

/* Attach (find or create) the state of every cluster and endpoint of s.  Control thread,
 * before s is published.  Returns 0, or -1 when out of memory. */
int clusterstate_attach(struct snapshot *s, unsigned nworkers);
/* Sum of one counter over the workers' shards. */
uint64_t clusterstate_count(const struct cluster_state *cs, enum cluster_counter id);

/* Count one event on worker number wid's shard (worker thread). */
static inline void clusterstate_bump(struct cluster_state *cs, int wid, enum cluster_counter id)
{
	if (cs != NULL && (unsigned)wid < cs->nshards)
		cs->shards[wid].v[id]++;
}

#define CLUSTER_COUNT(cl, wid, id) clusterstate_bump((cl)->state, (wid), (id))

/* Call fn for every route counter set (statPrefix routes, also of former configs). */
void clusterstate_each_route(void (*fn)(const struct cluster_state *cs, const char *prefix,
					void *arg),
			     void *arg);
/* Free every state (at exit, after the workers stopped). */
void clusterstate_free_all(void);

/* An endpoint of cs left or re-entered service: invalidate the workers' caches. */
static inline void clusterstate_changed(struct cluster_state *cs)
{
	if (cs != NULL)
		atomic_fetch_add_explicit(&cs->gen, 1, memory_order_release);
}

/* The generation to compare a cache with (0 when cs is NULL: nothing ever changes). */
static inline unsigned clusterstate_gen(const struct cluster_state *cs)
{
	return cs != NULL ? atomic_load_explicit(&cs->gen, memory_order_acquire) : 0;
}

/* Counted admission: add one to *counter unless that would exceed max (0 = unlimited).
 * Returns true when admitted. */
bool clusterstate_admit(atomic_uint *counter, uint32_t max);
/* Undo an admission (never below zero). */
void clusterstate_release(atomic_uint *counter);

#endif
