/* A token bucket shared by every worker, without a lock: Envoy's local rate limit
 * (envoy.filters.http.local_ratelimit), which Istio's rate limit task inserts with an
 * EnvoyFilter.  max_tokens to start with, tokens_per_fill more every fill_interval, up to
 * max_tokens; each request takes one or is refused. */
#ifndef MESHGATE_RATELIMIT_H
#define MESHGATE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct pool;
struct local_rate_limit;
struct rate_bucket;

/* A full bucket for rl, its fills counted from now_us (monotonic); it goes with p. */
struct rate_bucket *ratelimit_new(struct pool *p, const struct local_rate_limit *rl,
				  uint64_t now_us);

/* Take a token at now_us: true when there was one. */
bool ratelimit_take(struct rate_bucket *b, uint64_t now_us);

#endif
