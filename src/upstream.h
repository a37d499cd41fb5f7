/* Load balancing over a cluster's endpoints (per worker, no locks): ROUND_ROBIN (weighted),
 * RANDOM (weighted), LEAST_REQUEST (power of two choices on active requests, Envoy's
 * default algorithm and Istio's default policy). */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

#include <stdint.h>

struct worker;
struct cluster;
struct endpoint;

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl);

/* Slow start (warmupDurationSecs, Envoy's formula with aggression 1): an endpoint that
 * entered service less than the window ago weighs weight x max(10%, elapsed / window);
 * in thousandths of the weight, at monotonic time now. */
uint64_t upstream_warm_weight(const struct cluster *cl, const struct endpoint *ep, uint64_t now);

#endif
