#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterstate.h"
#include "config/model.h"
#include "locality.h"
#include "outlier.h"
#include "pool.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

#define LOCALITY_ORDER 5     /* ranks by locality: subzone, zone, region, failover, rest */
#define OVERPROVISIONING 1.4 /* Envoy's default overprovisioning factor */

/* Part i (0 region, 1 zone, 2 subzone) of a locality into out; false when absent. */
static bool locality_part(const char *l, int i, const char **out, size_t *len)
{
	for (; l != NULL && i > 0; i--) {
		l = strchr(l, '/');
		if (l != NULL)
			l++;
	}
	if (l == NULL || *l == '\0')
		return false;
	*out = l;
	*len = strcspn(l, "/");
	return true;
}

static bool part_eq(const char *a, const char *b, int i)
{
	const char *x, *y;
	size_t xl, yl;

	if (!locality_part(a, i, &x, &xl) || !locality_part(b, i, &y, &yl))
		return false;
	return xl == yl && memcmp(x, y, xl) == 0;
}

bool locality_match(const char *pattern, const char *locality)
{
	size_t n = strlen(pattern);

	if (locality == NULL)
		return strcmp(pattern, "*") == 0;
	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, locality, n - 1) == 0;
	return strcmp(pattern, locality) == 0 ||
	       (strncmp(pattern, locality, n) == 0 && locality[n] == '/');
}

static unsigned locality_rank(const char *here, const char *there, const struct locality_lb *ll,
			      bool failover_listed)
{
	if (there == NULL)
		return LOCALITY_ORDER - 1;
	if (part_eq(here, there, 0)) {
		if (part_eq(here, there, 1))
			return part_eq(here, there, 2) ? 0 : 1;
		return 2;
	}
	for (size_t i = 0; ll != NULL && i < ll->nfailover; i++) {
		const char *r;
		size_t rl;

		if (locality_part(here, 0, &r, &rl) && strlen(ll->failover[i].from) == rl &&
		    memcmp(ll->failover[i].from, r, rl) == 0 &&
		    part_eq(ll->failover[i].to, there, 0))
			return 3;
	}
	return failover_listed ? 4 : 3;
}

static void locality_distribute(struct cluster *c, const struct locality_distribute *rule)
{
	uint64_t sum[64] = {0};
	size_t n = 0;
	int *group = calloc(c->nendpoints ? c->nendpoints : 1, sizeof(*group));

	if (group == NULL)
		return;
	/* the first `to` pattern that covers an endpoint's locality is its group */
	for (size_t i = 0; i < c->nendpoints; i++) {
		group[i] = -1;
		for (size_t k = 0; k < rule->to.n && k < 64; k++)
			if (locality_match(rule->to.v[k].key, c->endpoints[i].locality)) {
				group[i] = (int)k;
				sum[k] += c->endpoints[i].weight;
				break;
			}
	}
	/* weight = group share x the endpoint's share of its group; weight 0 leaves */
	for (size_t i = 0; i < c->nendpoints; i++) {
		uint64_t w = 0;

		if (group[i] >= 0 && sum[group[i]] > 0)
			w = strtoul(rule->to.v[group[i]].value, NULL, 10) * 1000 *
			    c->endpoints[i].weight / sum[group[i]];
		if (w == 0)
			continue;
		c->endpoints[n] = c->endpoints[i];
		c->endpoints[n].weight = (uint32_t)w;
		n++;
	}
	c->nendpoints = n;
	free(group);
}

/* The value of label key (klen bytes) for labels seen at locality: the label itself, else
 * Istio's topology labels taken from the locality (region, zone, subzone). */
static bool label_get(const struct kv_list *labels, const char *locality, const char *key,
		      size_t klen, const char **v, size_t *vlen)
{
	static const char *const topology[] = {"topology.kubernetes.io/region",
					       "topology.kubernetes.io/zone",
					       "topology.istio.io/subzone"};

	for (size_t i = 0; labels != NULL && i < labels->n; i++)
		if (strlen(labels->v[i].key) == klen && strncmp(labels->v[i].key, key, klen) == 0) {
			*v = labels->v[i].value;
			*vlen = strlen(*v);
			return true;
		}
	for (int t = 0; t < 3; t++)
		if (strlen(topology[t]) == klen && strncmp(topology[t], key, klen) == 0)
			return locality_part(locality, t, v, vlen);
	return false;
}

/* failoverPriority: N minus the number of leading keys on which ep matches the appliance
 * (its labels and locality), or the value a "key=value" entry names; a key counts only
 * when every key before it matched (Istio). */
static unsigned label_rank(const struct str_list *keys, const struct endpoint *ep,
			   const struct kv_list *mine, const char *here)
{
	unsigned matched = 0;

	for (size_t i = 0; i < keys->n; i++, matched++) {
		const char *k = keys->v[i], *eq = strchr(k, '='), *want, *got;
		size_t klen = eq != NULL ? (size_t)(eq - k) : strlen(k), wlen, glen;

		if (eq != NULL) {
			want = eq + 1;
			wlen = strlen(want);
		} else if (!label_get(mine, here, k, klen, &want, &wlen)) {
			break;
		}
		if (!label_get(&ep->labels, ep->locality, k, klen, &got, &glen) || glen != wlen ||
		    memcmp(got, want, wlen) != 0)
			break;
	}
	return (unsigned)keys->n - matched;
}

/* An endpoint's rank: by locality (Istio's failover), by failoverPriority, or both - the
 * label rank first, the locality order within it (Istio multiplies by the 5 locality
 * ranks) - capped at the last rank the cluster can hold. */
static unsigned endpoint_rank(const struct endpoint *ep, const struct locality_lb *ll,
			      const char *here, const struct kv_list *mine)
{
	bool listed = ll != NULL && ll->nfailover > 0;
	unsigned r;

	if (ll == NULL || ll->failover_priority.n == 0)
		r = locality_rank(here, ep->locality, ll, listed);
	else if (!listed)
		r = label_rank(&ll->failover_priority, ep, mine, here);
	else
		r = label_rank(&ll->failover_priority, ep, mine, here) * LOCALITY_ORDER +
		    locality_rank(here, ep->locality, ll, listed);
	return r < LB_RANKS ? r : LB_RANKS - 1;
}

void locality_assign(struct pool *p, struct cluster *c, const struct locality_lb *ll,
		     const char *here, const struct kv_list *labels)
{
	unsigned count[LB_RANKS] = {0}, *rank;
	struct endpoint *sorted;
	bool by_labels = ll != NULL && ll->failover_priority.n > 0;
	size_t k = 0;

	if ((here == NULL && !by_labels) || c->nendpoints == 0 || (ll != NULL && !ll->enabled))
		return;
	for (size_t i = 0; here != NULL && ll != NULL && i < ll->ndistribute; i++)
		if (locality_match(ll->distribute[i].from, here)) {
			locality_distribute(c, &ll->distribute[i]);
			return;
		}
	/* failover needs a way to see endpoints fail (Istio: outlier detection) */
	if (c->outlier == NULL && c->health_check == NULL)
		return;
	if ((rank = calloc(c->nendpoints, sizeof(*rank))) == NULL)
		return; /* no ranks: plain balancing */
	for (size_t i = 0; i < c->nendpoints; i++)
		count[rank[i] = endpoint_rank(&c->endpoints[i], ll, here, labels)]++;
	sorted = pool_calloc(p, c->nendpoints, sizeof(*sorted));
	c->nlevels = 0;
	for (unsigned r = 0; r < LB_RANKS; r++) {
		if (count[r] == 0)
			continue;
		c->levels[c->nlevels].start = (uint32_t)k;
		c->levels[c->nlevels].count = count[r];
		c->nlevels++;
		for (size_t i = 0; i < c->nendpoints; i++)
			if (rank[i] == r)
				sorted[k++] = c->endpoints[i];
	}
	c->endpoints = sorted;
	free(rank);
	if (c->nlevels < 2)
		c->nlevels = 0; /* one rank: plain balancing */
}

/* The share of each rank's endpoints in service.  Cached in the worker's slot until an
 * endpoint of c changes state (the cluster's generation) or an ejection ends by itself;
 * without a slot (an older snapshot's cluster) computed in mine. */
static const double *rank_health(struct worker *w, const struct cluster *c, uint64_t now_us,
				 double *mine)
{
	struct lb_slot *s = upstream_slot(w, c);
	unsigned gen = clusterstate_gen(c->state);
	uint64_t until = UINT64_MAX;
	double *health = s != NULL ? s->health : mine;

	if (s != NULL && s->loc_valid && s->loc_gen == gen && now_us < s->loc_until_us)
		return s->health;
	for (unsigned i = 0; i < c->nlevels; i++) {
		unsigned avail = 0;

		for (uint32_t k = 0; k < c->levels[i].count; k++) {
			const struct endpoint *ep = &c->endpoints[c->levels[i].start + k];
			uint64_t back;

			if (!outlier_out(c, ep, now_us)) {
				avail++;
				continue;
			}
			back = outlier_back_at(c, ep);
			if (back < until)
				until = back;
		}
		health[i] = (double)avail / c->levels[i].count;
	}
	if (s != NULL) {
		s->loc_valid = true;
		s->loc_gen = gen;
		s->loc_until_us = until;
	}
	return health;
}

/* The share of traffic each rank carries: its health with Envoy's overprovisioning, what a
 * rank cannot carry spilling to the next; ranks in skip count as down (Envoy's
 * previous_priorities).  Returns the sum (below 1 when not everything can be carried). */
static double rank_loads(const struct cluster *c, const double *health, unsigned skip, double *load)
{
	double left = 1.0, total = 0;

	for (unsigned i = 0; i < c->nlevels; i++) {
		load[i] = (skip & (1u << i)) != 0 ? 0 : OVERPROVISIONING * health[i];
		if (load[i] > left)
			load[i] = left;
		left -= load[i];
		total += load[i];
	}
	return total;
}

unsigned locality_rank_of(const struct cluster *c, const struct endpoint *ep)
{
	uint32_t k = (uint32_t)(ep - c->endpoints);

	for (unsigned i = 0; i < c->nlevels; i++)
		if (k >= c->levels[i].start && k - c->levels[i].start < c->levels[i].count)
			return i;
	return 0;
}

const struct endpoint *locality_pick(struct worker *w, const struct cluster *c, uint64_t now_us)
{
	return locality_pick_skip(w, c, now_us, 0);
}

const struct endpoint *locality_pick_skip(struct worker *w, const struct cluster *c,
					  uint64_t now_us, unsigned skip)
{
	double mine[LB_RANKS], load[LB_RANKS], total, draw;
	const double *health;
	const struct endpoint *ep, *rank;
	unsigned lv = 0;
	uint32_t n, start;

	if (outlier_panic(c))
		return upstream_pick(w, c);
	health = rank_health(w, c, now_us, mine);
	total = rank_loads(c, health, skip, load);
	if (total <= 0 && skip != 0) /* every rank with endpoints in service was tried */
		total = rank_loads(c, health, 0, load);
	if (total <= 0)
		return NULL; /* nothing available anywhere */
	/* what no rank could carry is shared in proportion (Envoy normalises the same way) */
	draw = (double)(worker_random(w) % 1000000) / 1000000.0 * total;
	while (lv + 1 < c->nlevels && (draw >= load[lv] || load[lv] <= 0)) {
		draw -= load[lv];
		lv++;
	}
	rank = c->endpoints + c->levels[lv].start;
	n = c->levels[lv].count;
	ep = upstream_pick_range(w, c, c->levels[lv].start, n, c->levels[lv].uniform);
	if (!outlier_out(c, ep, now_us))
		return ep;
	start = n > 1 ? (uint32_t)(worker_random(w) % n) : 0;
	for (uint32_t i = 0; i < n; i++) {
		ep = &rank[(start + i) % n];
		if (!outlier_out(c, ep, now_us))
			return ep;
	}
	return NULL;
}
