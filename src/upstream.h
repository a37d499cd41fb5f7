/* Load balancing over a cluster's endpoints (per worker, no locks): ROUND_ROBIN (weighted),
 * RANDOM (weighted), LEAST_REQUEST (power of two choices on active requests, Envoy's
 * default algorithm and Istio's default policy). */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

struct worker;
struct cluster;
struct endpoint;

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl);

#endif
