#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "load.h"
#include "node.h"
#include "pool.h"

/* Telemetry `metrics`: what Istio's standard metrics (istiometrics.h) look like here.  An
 * override may turn metrics off (`disabled`) or remove labels (tagOverrides with
 * operation REMOVE), for the metrics its match names, in the CLIENT mode a gateway
 * reports in; reportingInterval paces the TCP byte counts of open relays.  Istio's other
 * knobs (new labels computed by expressions, custom metrics) are loaded and said to be not
 * applied. */

#define TM_PROMETHEUS "prometheus"

/* MetricSelector.IstioMetric, in enum tel_metric order, ALL_METRICS last. */
static const char *const tm_names[] = {
    "REQUEST_COUNT",          "REQUEST_DURATION",       "REQUEST_SIZE",   "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",  "GRPC_RESPONSE_MESSAGES", "ALL_METRICS",    NULL,
};

const char *tel_metric_name(enum tel_metric m)
{
	return tm_names[m];
}

static const char *const tm_modes[] = {"CLIENT_AND_SERVER", "CLIENT", "SERVER", NULL};
static const char *const tm_operations[] = {"UPSERT", "REMOVE", NULL};

static bool tm_tag_overrides(struct pool *p, struct diag *d, struct node *n,
			     struct tel_metric_override *o)
{
	bool ok = true;

	if (!node_want_map(d, n))
		return false;
	o->remove.v = pool_calloc(p, n->n ? n->n : 1, sizeof(*o->remove.v));
	for (size_t i = 0; i < n->n; i++) {
		struct node *t = n->vals[i], *op, *value;
		int operation = 0;

		node_mark_used(t);
		if (!node_want_map(d, t)) {
			ok = false;
			continue;
		}
		op = node_get(t, "operation");
		value = node_get(t, "value");
		node_check_unknown(d, t);
		if (op != NULL && !node_enum(d, op, tm_operations, &operation)) {
			ok = false;
			continue;
		}
		if (operation == 1) {
			o->remove.v[o->remove.n++] = n->keys[i]->str;
			continue;
		}
		/* UPSERT (the default): a label valued by an expression per request */
		diag_warn(d, value != NULL ? value : t,
			  "tag %s: labels computed per request are not applied (meshgate's "
			  "labels are Istio's defaults; REMOVE is)",
			  n->keys[i]->str);
	}
	return ok;
}

static bool tm_override(struct pool *p, struct diag *d, struct node *n,
			struct tel_metric_override *o)
{
	struct node *m, *v;
	bool ok = true;
	int metric = TM__COUNT, mode = TEL_CLIENT_AND_SERVER;

	o->node = n;
	o->disabled = -1;
	if (!node_want_map(d, n))
		return false;
	if ((m = node_get(n, "match")) != NULL && node_want_map(d, m)) {
		if ((v = node_get(m, "metric")) != NULL)
			ok &= node_enum(d, v, tm_names, &metric);
		if ((v = node_get(m, "customMetric")) != NULL) {
			node_mark_used(v);
			diag_warn(d, v,
				  "custom metrics are not served by meshgate: this override "
				  "changes nothing");
			metric = -1;
		}
		if ((v = node_get(m, "mode")) != NULL)
			ok &= node_enum(d, v, tm_modes, &mode);
		node_check_unknown(d, m);
	}
	/* no match, or ALL_METRICS: every metric */
	o->metrics = metric < 0 ? 0 : metric == TM__COUNT ? (1u << TM__COUNT) - 1 : 1u << metric;
	o->mode = (enum tel_mode)mode;
	if ((v = node_get(n, "disabled")) != NULL) {
		bool b = false;

		ok &= node_bool(d, v, &b);
		o->disabled = b;
	}
	if ((v = node_get(n, "tagOverrides")) != NULL)
		ok &= tm_tag_overrides(p, d, v, o);
	node_check_unknown(d, n);
	return ok;
}

static bool tm_entry(struct pool *p, struct diag *d, struct node *n, struct tel_metrics *e)
{
	struct node *v;
	bool ok = true;

	e->node = n;
	if (!node_want_map(d, n))
		return false;
	if ((v = node_get(n, "providers")) != NULL)
		ok &= tel_decode_providers(p, d, v, &e->providers, &e->provider_nodes);
	if ((v = node_get(n, "overrides")) != NULL && node_want_seq(d, v)) {
		e->overrides = pool_calloc(p, v->n ? v->n : 1, sizeof(*e->overrides));
		for (size_t i = 0; i < v->n; i++)
			ok &= tm_override(p, d, v->vals[i], &e->overrides[e->noverrides++]);
	}
	/* as in Istio, it paces the TCP metrics of open connections only */
	if ((v = node_get(n, "reportingInterval")) != NULL)
		ok &= cfg_decode_duration(d, v, 1000000, false, &e->reporting_interval_us);
	node_check_unknown(d, n);
	return ok;
}

bool tel_metrics_decode(struct pool *p, struct diag *d, struct node *n, struct cfg_telemetry *t)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	t->metrics = pool_calloc(p, n->n ? n->n : 1, sizeof(*t->metrics));
	for (size_t i = 0; i < n->n; i++)
		ok &= tm_entry(p, d, n->vals[i], &t->metrics[t->nmetrics++]);
	return ok;
}

static bool tm_for_prometheus(struct diag *d, const struct tel_metrics *e)
{
	bool named = false;

	for (size_t i = 0; i < e->providers.n; i++) {
		if (strcmp(e->providers.v[i], TM_PROMETHEUS) == 0)
			named = true;
		else
			diag_warn(d, e->provider_nodes[i],
				  "metrics provider \"%s\" is not one meshgate has (its metrics "
				  "are Istio's \"prometheus\" provider): skipped",
				  e->providers.v[i]);
	}
	return e->providers.n == 0 || named;
}

/* Add name to the labels removed from a metric, once. */
static void tm_remove(struct pool *p, struct str_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return;
	l->v = cfg_append(p, l->v, l->n, sizeof(*l->v));
	l->v[l->n++] = name;
}

void tel_metrics_apply(struct diag *d, struct pool *p, struct cfg_set *set,
		       const struct cfg_telemetry *const *levels, size_t nlevels)
{
	for (size_t i = 0; i < nlevels; i++)
		for (size_t k = 0; k < levels[i]->nmetrics; k++) {
			const struct tel_metrics *e = &levels[i]->metrics[k];

			if (!tm_for_prometheus(d, e))
				continue;
			if (e->reporting_interval_us > 0) /* the last one given */
				set->metrics_tcp_interval_us = e->reporting_interval_us;
			/* in order, each override over the ones before it */
			for (size_t j = 0; j < e->noverrides; j++) {
				const struct tel_metric_override *o = &e->overrides[j];

				if (o->mode == TEL_SERVER)
					continue; /* a gateway reports as a CLIENT */
				if (o->disabled == 1)
					set->metrics_disabled |= o->metrics;
				else if (o->disabled == 0)
					set->metrics_disabled &= ~o->metrics;
				for (int m = 0; m < TM__COUNT; m++)
					if ((o->metrics >> m) & 1)
						for (size_t r = 0; r < o->remove.n; r++)
							tm_remove(p, &set->metrics_removed[m],
								  o->remove.v[r]);
			}
		}
	set->metrics_http_off = (set->metrics_disabled & TM_HTTP_MASK) == TM_HTTP_MASK;
	set->metrics_tcp_off = (set->metrics_disabled & TM_TCP_MASK) == TM_TCP_MASK;
}
