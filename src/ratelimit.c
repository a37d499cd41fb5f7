#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>

#include "config/model.h"
#include "pool.h"
#include "ratelimit.h"

/* The whole state is one 64-bit word, so a compare-and-swap takes a token and applies the
 * fills due in one step: the fill count it was last brought up to (high 32 bits; the
 * difference is taken modulo 2^32, so it may wrap) and the tokens (low 32). */
struct rate_bucket {
	_Atomic uint64_t state;
	uint64_t base_us, interval_us;
	uint32_t max_tokens, per_fill;
};

struct rate_bucket *ratelimit_new(struct pool *p, const struct local_rate_limit *rl,
				  uint64_t now_us)
{
	struct rate_bucket *b = pool_calloc(p, 1, sizeof(*b));

	b->base_us = now_us;
	b->interval_us = rl->fill_interval_us;
	b->max_tokens = rl->max_tokens;
	b->per_fill = rl->tokens_per_fill;
	atomic_init(&b->state, (uint64_t)rl->max_tokens);
	return b;
}

bool ratelimit_take(struct rate_bucket *b, uint64_t now_us)
{
	uint32_t fills = (uint32_t)((now_us - b->base_us) / b->interval_us);
	uint64_t old = atomic_load_explicit(&b->state, memory_order_relaxed), next;

	for (;;) {
		uint32_t done = (uint32_t)(old >> 32), tokens = (uint32_t)old;
		uint64_t due = (uint32_t)(fills - done);

		if (due > 0) {
			uint64_t t = tokens + due * b->per_fill;

			tokens = t > b->max_tokens ? b->max_tokens : (uint32_t)t;
		}
		if (tokens == 0)
			return false;
		next = ((uint64_t)fills << 32) | (tokens - 1);
		if (atomic_compare_exchange_weak_explicit(
			&b->state, &old, next, memory_order_relaxed, memory_order_relaxed))
			return true;
	}
}
