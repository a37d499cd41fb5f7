#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>

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

const struct endpoint *upstream_pick(struct worker *w, const struct cluster *cl)
{
	bool uniform;
	uint32_t total;
	size_t n = cl->nendpoints;

	if (n == 1)
		return &cl->endpoints[0];
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
