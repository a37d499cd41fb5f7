#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "clusterstate.h"
#include "connpool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

static uint32_t total_weight(const struct cluster *cl, bool *uniform)
{
	uint32_t t = 0;
	size_t i;

	*uniform = true;
	for (i = 0; i < cl->nendpoints; i++) {
		t += cl->endpoints[i].weight;
		if (cl->endpoints[i].weight != cl->endpoints[0].weight)
			*uniform = false;
	}
	return t;
}

static const struct endpoint *by_weight(const struct cluster *cl, uint64_t r, uint32_t total)
{
	uint64_t pos = r % total;
	size_t i;

	for (i = 0; i < cl->nendpoints; i++) {
		if (pos < cl->endpoints[i].weight)
			return &cl->endpoints[i];
		pos -= cl->endpoints[i].weight;
	}
	return &cl->endpoints[cl->nendpoints - 1];
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

/* Weighted random pick over the warmed weights, or NULL when nobody is warming up. */
static const struct endpoint *warm_pick(struct worker *w, const struct cluster *cl)
{
	uint64_t now, total = 0, full = 0, pos;

	now = clock_mono_us();
	for (size_t i = 0; i < cl->nendpoints; i++) {
		total += upstream_warm_weight(cl, &cl->endpoints[i], now);
		full += (uint64_t)cl->endpoints[i].weight * 1000;
	}
	if (total == full || total == 0)
		return NULL;
	pos = worker_random(w) % total;
	for (size_t i = 0; i < cl->nendpoints; i++) {
		uint64_t ww = upstream_warm_weight(cl, &cl->endpoints[i], now);

		if (pos < ww)
			return &cl->endpoints[i];
		pos -= ww;
	}
	return &cl->endpoints[cl->nendpoints - 1];
}

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl)
{
	const struct endpoint *warm;
	bool uniform;
	uint32_t total;
	size_t n = cl->nendpoints;

	if (n == 1)
		return &cl->endpoints[0];
	if (cl->warmup_us > 0 && (warm = warm_pick(w, cl)) != NULL)
		return warm;
	total = total_weight(cl, &uniform);
	switch (cl->lb) {
	case LB_ROUND_ROBIN:
	case LB_PASSTHROUGH: {
		uint32_t cur = 0;

		if (cl->index < w->nrr)
			cur = w->rr[cl->index]++;
		return uniform ? &cl->endpoints[cur % n] : by_weight(cl, cur, total);
	}
	case LB_RANDOM:
		return by_weight(cl, worker_random(w), total ? total : 1);
	case LB_UNSPECIFIED:
	case LB_LEAST_REQUEST:
	default: {
		/* Two random choices (weighted), keep the one with fewer active requests. */
		const struct endpoint *a = by_weight(cl, worker_random(w), total ? total : 1);
		const struct endpoint *b = by_weight(cl, worker_random(w), total ? total : 1);
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
