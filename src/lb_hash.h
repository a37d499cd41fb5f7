/* Consistent hashing over a cluster's endpoints (DestinationRule loadBalancer.consistentHash):
 * Karger's ring, Istio's default (each endpoint owns points on a ring of at least
 * minimumRingSize, in proportion to its weight; a key goes to the first point clockwise),
 * or Maglev (a lookup table of tableSize slots filled from per-endpoint permutations).
 * Both move about 1/N of the keys when one of N endpoints leaves.  Built at config load from
 * the endpoint names; lookups are read-only and lock-free. */
#ifndef MG_LB_HASH_H
#define MG_LB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "config/model.h"

struct pool;
struct endpoint;

struct lb_hash_table {
	bool maglev;
	size_t size;      /* ring points or maglev slots */
	uint64_t *points; /* ring only: sorted */
	uint32_t *owner;  /* endpoint index per point or slot */
};

/* The table for n endpoints (n >= 1), from the pool; NULL when n is 0. */
struct lb_hash_table *lb_hash_build(struct pool *p, const struct endpoint *eps, size_t n,
				    const struct consistent_hash *ch);

/* Index of the endpoint for key; attempt > 0 asks for the attempt-th other endpoint
 * (a retry that must not go back to the same one). */
size_t lb_hash_pick(const struct lb_hash_table *t, size_t n, uint64_t key, unsigned attempt);

/* The 64-bit hash of bytes used for keys and points. */
uint64_t lb_hash_bytes(const void *data, size_t len);

#endif
