#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "clusterstate.h"
#include "connpool.h"
#include "pool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

static bool same_weights(const struct endpoint *eps, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (eps[i].weight != eps[0].weight)
			return false;
	return true;
}

void upstream_prepare(struct pool *p, struct cluster *c)
{
	uint64_t *cum = pool_calloc(p, c->nendpoints + 1, sizeof(*cum)); /* aborts when out */

	for (size_t i = 0; i < c->nendpoints; i++)
		cum[i + 1] = cum[i] + c->endpoints[i].weight;
	c->cum = cum;
	c->uniform = same_weights(c->endpoints, c->nendpoints);
	for (unsigned l = 0; l < c->nlevels; l++)
		c->levels[l].uniform =
		    same_weights(c->endpoints + c->levels[l].start, c->levels[l].count);
}

struct lb_slot *upstream_slot(struct worker *w, const struct cluster *cl)
{
	if (cl->index >= w->nlb || w->lb[cl->index].cl != cl)
		return NULL;
	return &w->lb[cl->index];
}

/* Endpoint start + i where cum[start + i] <= start's base + r mod the range's weight
 * < cum[start + i + 1]: a binary search (weights being >= 1), branch-free so that random
 * draws cost no mispredictions. */
static const struct endpoint *by_weight(const struct cluster *cl, uint32_t start, uint32_t count,
					uint64_t r)
{
	const uint64_t *cum = cl->cum + start, *base = cum;
	uint64_t pos = cum[0] + r % (cum[count] - cum[0]);
	uint32_t len = count;

	while (len > 1) {
		uint32_t half = len / 2;

		base = base[half] <= pos ? base + half : base;
		len -= half;
	}
	return &cl->endpoints[start + (uint32_t)(base - cum)];
}

uint64_t upstream_warm_weight(const struct cluster *cl, const struct endpoint *ep, uint64_t now)
{
	uint64_t since = ep->state != NULL ? atomic_load_explicit(&ep->state->in_service_since_us,
								  memory_order_relaxed)
					   : 0;
	uint64_t w = (uint64_t)ep->weight * 1000, elapsed;

	if (since == 0 || now >= since + cl->warmup_us)
		return w;
	elapsed = now > since ? now - since : 0;
	return elapsed * 10 < cl->warmup_us ? w / 10 : w * elapsed / cl->warmup_us;
}

/* Does an endpoint of cl warm up at now?  Cached in the slot until the generation moves or
 * the last warm-up in progress ends. */
static bool warming(struct lb_slot *s, const struct cluster *cl, uint64_t now)
{
	unsigned gen = clusterstate_gen(cl->state);
	uint64_t until = UINT64_MAX;
	bool any = false;

	if (s != NULL && s->warm_valid && s->warm_gen == gen && now < s->warm_until_us)
		return s->warming;
	for (size_t i = 0; i < cl->nendpoints; i++) {
		const struct endpoint_state *es = cl->endpoints[i].state;
		uint64_t since = es != NULL ? atomic_load_explicit(&es->in_service_since_us,
								   memory_order_relaxed)
					    : 0;

		if (since != 0 && now < since + cl->warmup_us) {
			/* valid until the first warm-up ends: then the weights change again */
			if (!any || since + cl->warmup_us < until)
				until = since + cl->warmup_us;
			any = true;
		}
	}
	if (s != NULL) {
		s->warm_valid = true;
		s->warm_gen = gen;
		s->warming = any;
		s->warm_until_us = until;
	}
	return any;
}

/* Weighted random pick over the warmed weights of the range. */
static const struct endpoint *warm_pick(struct worker *w, const struct cluster *cl, uint32_t start,
					uint32_t count, uint64_t now)
{
	const struct endpoint *eps = cl->endpoints + start;
	uint64_t total = 0, pos;

	for (uint32_t i = 0; i < count; i++)
		total += upstream_warm_weight(cl, &eps[i], now);
	if (total == 0)
		return &eps[0];
	pos = worker_random(w) % total;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t ww = upstream_warm_weight(cl, &eps[i], now);

		if (pos < ww)
			return &eps[i];
		pos -= ww;
	}
	return &eps[count - 1];
}

const struct endpoint *upstream_pick_range(struct worker *w, const struct cluster *cl,
					   uint32_t start, uint32_t count, bool uniform)
{
	const struct endpoint *eps = cl->endpoints + start;
	struct lb_slot *s;

	if (count == 1)
		return &eps[0];
	s = upstream_slot(w, cl);
	if (cl->warmup_us > 0) {
		uint64_t now = clock_mono_us();

		if (warming(s, cl, now))
			return warm_pick(w, cl, start, count, now);
	}
	switch (cl->lb) {
	case LB_ROUND_ROBIN:
	case LB_PASSTHROUGH: {
		/* an exchange of an older snapshot shares the cursor of the slot's index */
		uint32_t cur = 0;

		if (cl->index < w->nlb)
			cur = w->lb[cl->index].rr++;
		return uniform ? &eps[cur % count] : by_weight(cl, start, count, cur);
	}
	case LB_RANDOM:
		return uniform ? &eps[worker_random(w) % count]
			       : by_weight(cl, start, count, worker_random(w));
	case LB_UNSPECIFIED:
	case LB_LEAST_REQUEST:
	default: {
		/* Two random choices (weighted), keep the one with fewer active requests. */
		uint64_t ra = worker_random(w), rb = worker_random(w);
		const struct endpoint *a =
		    uniform ? &eps[ra % count] : by_weight(cl, start, count, ra);
		const struct endpoint *b =
		    uniform ? &eps[rb % count] : by_weight(cl, start, count, rb);
		struct upstream_host *ha, *hb;

		if (a == b)
			return a;
		ha = connpool_host(w->pool, a);
		hb = connpool_host(w->pool, b);
		if (ha == NULL || hb == NULL)
			return a;
		return hb->active_rq < ha->active_rq ? b : a;
	}
	}
}

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl)
{
	return upstream_pick_range(w, cl, 0, (uint32_t)cl->nendpoints, cl->uniform);
}
