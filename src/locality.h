/* Locality-aware load balancing (DestinationRule localityLbSetting, Istio's semantics on
 * Envoy's priorities): with the appliance's own locality in the main config,
 *   - failover: endpoints are ranked - same region/zone/subzone, same zone, same region,
 *     the failover regions named for this region, everything else - and each rank takes
 *     the traffic its available endpoints can carry with Envoy's overprovisioning factor
 *     1.4, the rest spilling to the next rank.  Istio enables it when the cluster has
 *     outlier detection (here also with an active health check), since only then can an
 *     endpoint be seen to fail;
 *   - failoverPriority (also without a locality): endpoints matching the appliance's
 *     labels (main config `labels`, topology.* keys read from the localities) on all N
 *     listed keys rank first, on the first N-1 next, ...; with failover too, the label
 *     rank comes first and the locality order applies within it (Istio's priority x 5 +
 *     locality priority); at most LB_RANKS ranks, the rest share the last;
 *   - distribute: the first rule whose `from` matches the appliance's locality shares
 *     the traffic between endpoint localities by the given percentages.
 * Rank ranges are built by link (the endpoints are sorted by rank); the pick runs per
 * request on the worker.  The share each rank carries depends on which endpoints are in
 * service: each worker caches it (struct lb_slot) and recomputes it only when the
 * cluster's state generation moves (clusterstate_changed: ejection, return, health
 * verdict) or an ejection ends by itself, so the common pick costs no scan. */
#ifndef MG_LOCALITY_H
#define MG_LOCALITY_H

#include <stdbool.h>
#include <stdint.h>

struct pool;
struct cluster;
struct endpoint;
struct worker;
struct locality_lb;
struct kv_list;

/* Config time: reorder and reweight c's endpoints for policy ll (NULL = none given) seen
 * from the appliance's locality here (NULL = unknown) and labels (main config): ranks by
 * locality, by failoverPriority (the number of leading label keys an endpoint shares with
 * the appliance), or both (labels first); nothing to do without a locality or a
 * failoverPriority. */
void locality_assign(struct pool *p, struct cluster *c, const struct locality_lb *ll,
		     const char *here, const struct kv_list *labels);

/* Does pattern ("region/zone/subzone", trailing "*" allowed) cover locality? */
bool locality_match(const char *pattern, const char *locality);

/* Data path: an endpoint by rank (c->nlevels > 1), NULL when none is available. */
const struct endpoint *locality_pick(struct worker *w, const struct cluster *c, uint64_t now_us);
/* The same for a retry with retryRemoteLocalities: the ranks in skip (bit i = rank i, those
 * tried before) count as down, so the traffic spills to the next ranks as if they had
 * failed (Envoy's previous_priorities retry priority); when that leaves nothing, skip is
 * forgotten. */
const struct endpoint *locality_pick_skip(struct worker *w, const struct cluster *c,
					  uint64_t now_us, unsigned skip);
/* The rank (index into c->levels) of ep, an endpoint of c. */
unsigned locality_rank_of(const struct cluster *c, const struct endpoint *ep);

#endif
