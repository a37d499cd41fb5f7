#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clusterstate.h"
#include "log.h"
#include "outlier.h"
#include "snapshot.h"
#include "worker.h"

#define OUTLIER_MAX_EJECTION_US (300ULL * 1000000) /* Envoy's max_ejection_time default */

static void outlier_eject(const struct cluster *cl, struct endpoint_state *es,
			  const struct endpoint *ep, uint64_t now_us, const char *why)
{
	const struct outlier_settings *od = cl->outlier;
	struct cluster_state *cs = cl->state;
	unsigned ejected = atomic_load_explicit(&cs->ejected, memory_order_relaxed);
	unsigned times, healthy_for;
	uint64_t last, dur, cap;
	bool expected = false;

	/* maxEjectionPercent, but one endpoint may always be ejected (Envoy) */
	if (ejected > 0 &&
	    (uint64_t)ejected * 100 >= (uint64_t)cl->nendpoints * od->max_ejection_percent)
		return;
	if (!atomic_compare_exchange_strong(&es->ejected, &expected, true))
		return; /* another worker got there first */
	/* Envoy lowers the multiplier at every interval tick that finds the endpoint in
	 * service, the tick that returns it excepted: count the whole intervals since. */
	times = atomic_load_explicit(&es->ejections, memory_order_relaxed);
	last = atomic_load_explicit(&es->ejected_until_us, memory_order_relaxed);
	if (times > 0 && last > 0 && od->interval_us > 0 && now_us > last + od->interval_us) {
		healthy_for = (unsigned)((now_us - last) / od->interval_us) - 1;
		times = healthy_for >= times ? 0 : times - healthy_for;
	}
	times++;
	atomic_store_explicit(&es->ejections, times, memory_order_relaxed);
	cap = od->base_ejection_us > OUTLIER_MAX_EJECTION_US ? od->base_ejection_us
							     : OUTLIER_MAX_EJECTION_US;
	dur = od->base_ejection_us * times;
	if (dur > cap)
		dur = cap;
	atomic_store_explicit(&es->ejected_until_us, now_us + dur, memory_order_release);
	atomic_fetch_add_explicit(&cs->ejected, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cs->ejections_total, 1, memory_order_relaxed);
	clusterstate_changed(cs);
	atomic_store_explicit(&es->consecutive_5xx, 0, memory_order_relaxed);
	atomic_store_explicit(&es->consecutive_gateway, 0, memory_order_relaxed);
	atomic_store_explicit(&es->consecutive_local, 0, memory_order_relaxed);
	log_info("outlier detection: %s ejected from %s for %llu ms (%s, ejection %u)", ep->name,
		 cl->name, (unsigned long long)(dur / 1000), why, times);
}

/* Count one more failure; true when the threshold is reached. */
static bool outlier_count(atomic_uint *counter, uint32_t threshold)
{
	unsigned n = atomic_fetch_add_explicit(counter, 1, memory_order_relaxed) + 1;

	return threshold > 0 && n >= threshold;
}

static void outlier_reset(atomic_uint *counter)
{
	/* read first: a healthy endpoint costs a load, not a store on a shared line */
	if (atomic_load_explicit(counter, memory_order_relaxed) != 0)
		atomic_store_explicit(counter, 0, memory_order_relaxed);
}

void outlier_report(const struct cluster *cl, const struct endpoint *ep, int status,
		    uint64_t now_us)
{
	const struct outlier_settings *od = cl->outlier;
	struct endpoint_state *es = ep->state;

	if (od == NULL || es == NULL || cl->state == NULL)
		return;
	if (status == 0 && od->split_local_origin) {
		if (outlier_count(&es->consecutive_local, od->consecutive_local))
			outlier_eject(cl, es, ep, now_us, "consecutive local-origin failures");
		return;
	}
	if (status == 0)
		status = 503; /* not split: a local failure counts as Envoy's 503 */
	else if (od->split_local_origin)
		outlier_reset(&es->consecutive_local); /* the connection worked */
	if (status < 500) {
		outlier_reset(&es->consecutive_5xx);
		outlier_reset(&es->consecutive_gateway);
		return;
	}
	if (outlier_count(&es->consecutive_5xx, od->consecutive_5xx)) {
		outlier_eject(cl, es, ep, now_us, "consecutive 5xx");
		return;
	}
	if (status >= 502 && status <= 504 &&
	    outlier_count(&es->consecutive_gateway, od->consecutive_gateway))
		outlier_eject(cl, es, ep, now_us, "consecutive gateway errors");
}

bool outlier_out(const struct cluster *cl, const struct endpoint *ep, uint64_t now_us)
{
	struct endpoint_state *es = ep->state;
	struct cluster_state *cs = cl->state;
	bool expected = true;

	if (es == NULL || cs == NULL)
		return false;
	if (cl->outlier != NULL && atomic_load_explicit(&es->ejected, memory_order_relaxed)) {
		if (now_us < atomic_load_explicit(&es->ejected_until_us, memory_order_acquire))
			return true;
		/* back in service; the worker that flips the flag does the bookkeeping */
		if (atomic_compare_exchange_strong(&es->ejected, &expected, false)) {
			clusterstate_release(&cs->ejected);
			clusterstate_changed(cs);
			log_info("outlier detection: %s back in %s", ep->name, cl->name);
		}
	}
	return cl->health_check != NULL &&
	       atomic_load_explicit(&es->hc_failed, memory_order_relaxed);
}

uint64_t outlier_back_at(const struct cluster *cl, const struct endpoint *ep)
{
	struct endpoint_state *es = ep->state;

	if (es == NULL || cl->outlier == NULL ||
	    !atomic_load_explicit(&es->ejected, memory_order_relaxed))
		return UINT64_MAX;
	return atomic_load_explicit(&es->ejected_until_us, memory_order_acquire);
}

bool outlier_panic(const struct cluster *cl)
{
	/* Below the panic threshold Envoy balances over every endpoint: minHealthPercent with
	 * outlier detection (Istio's mapping, default 0 = never), else Envoy's default 50%. */
	uint32_t panic = cl->outlier != NULL ? cl->outlier->min_health_percent : 50;
	unsigned down;

	if (panic == 0 || cl->state == NULL)
		return false;
	down = atomic_load_explicit(&cl->state->ejected, memory_order_relaxed) +
	       atomic_load_explicit(&cl->state->hc_failed, memory_order_relaxed);
	if (down > cl->nendpoints)
		down = (unsigned)cl->nendpoints;
	return (uint64_t)(cl->nendpoints - down) * 100 < (uint64_t)cl->nendpoints * panic;
}

bool outlier_ejected(const struct cluster *cl, const struct endpoint *ep, uint64_t now_us)
{
	return outlier_out(cl, ep, now_us) && !outlier_panic(cl);
}

const struct endpoint *outlier_pick(struct worker *w, const struct cluster *cl,
				    const struct endpoint *first, uint64_t now_us)
{
	size_t n = cl->nendpoints, start;

	if (!outlier_out(cl, first, now_us) || outlier_panic(cl))
		return first;
	start = n > 1 ? (size_t)(worker_random(w) % n) : 0;
	for (size_t i = 0; i < n; i++) {
		const struct endpoint *ep = &cl->endpoints[(start + i) % n];

		if (!outlier_out(cl, ep, now_us))
			return ep;
	}
	return NULL;
}
