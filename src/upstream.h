/* Load balancing over a cluster's endpoints (per worker, no locks): ROUND_ROBIN (weighted),
 * RANDOM (weighted), LEAST_REQUEST (power of two choices on active requests, Envoy's
 * default algorithm and Istio's default policy).
 *
 * Cost per pick: O(1) when every weight is the same, else O(log n) over cumulative weights
 * that upstream_prepare computed when the cluster was built; no allocation.  Slow start
 * (warmupDurationSecs) weighs endpoints by time, so while one warms the pick is a weighted
 * scan, O(n); whether one warms is cached per worker (struct lb_slot) and rechecked only
 * when the cluster's state generation moves or the last warm-up ends. */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

struct pool;
struct worker;
struct cluster;
struct endpoint;

/* Ranks a cluster's endpoints may fall in at most (struct cluster levels): Istio's five
 * locality ranks times the failoverPriority ranks, the rest sharing the last one. */
#define LB_RANKS 16

/* What a worker keeps per cluster of its newest snapshot (worker.h w->lb, indexed by the
 * cluster's index): the round-robin cursor, and caches derived from the endpoints' shared
 * state.  A cache holds while the cluster's generation (clusterstate_gen) is the one it
 * was computed at and the monotonic clock is before its until_us. */
struct lb_slot {
	const struct cluster *cl; /* owner; an exchange on an older snapshot finds another
				   * cluster here and computes without the caches */
	uint32_t rr;              /* round-robin cursor */
	bool warm_valid;          /* slow start: does any endpoint warm up? */
	bool warming;
	unsigned warm_gen;
	uint64_t warm_until_us;
	bool loc_valid; /* locality ranks: the share of each rank in service (locality.c) */
	unsigned loc_gen;
	uint64_t loc_until_us;
	double health[LB_RANKS];
};

/* Link time: cumulative weights and uniformity of c (and of its locality ranks, which
 * locality_assign set before).  Every cluster given to a pick must have been prepared. */
void upstream_prepare(struct pool *p, struct cluster *c);

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl);
/* The same among endpoints[start .. start + count - 1] (a locality rank; uniform: its
 * weights are all the same). */
const struct endpoint *upstream_pick_range(struct worker *w, const struct cluster *cl,
					   uint32_t start, uint32_t count, bool uniform);

/* w's slot for cl, NULL when cl is not of w's newest snapshot. */
struct lb_slot *upstream_slot(struct worker *w, const struct cluster *cl);

/* Slow start (warmupDurationSecs, Envoy's formula with aggression 1): an endpoint that
 * entered service less than the window ago weighs weight x max(10%, elapsed / window);
 * in thousandths of the weight, at monotonic time now. */
uint64_t upstream_warm_weight(const struct cluster *cl, const struct endpoint *ep, uint64_t now);

#endif
