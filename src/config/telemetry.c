#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"
#include "diag.h"
#include "load.h"
#include "node.h"
#include "pool.h"

/* Telemetry (telemetry.istio.io): what a gateway's access log does.  meshgate's access log
 * is Istio's built-in provider "envoy" (the main config's accessLog says where it goes and
 * in which format; standard output and Envoy's text format when it says nothing).  The
 * Telemetries that select this appliance are merged as istiod merges them for a gateway:
 * root namespace, then the appliance's namespace, then workload selectors; the last level
 * that names providers decides which are in scope, entries without providers inherit the
 * previous entry's, `disabled` turns a provider off, and a provider's filter is the last
 * one given with it by name.  Metrics and tracing are not applied, and said so. */

#define TEL_ENVOY "envoy"

static const char *const tel_modes[] = {"CLIENT_AND_SERVER", "CLIENT", "SERVER", NULL};

/* A CEL compile error at its column when the expression sits on the scalar's line. */
static void tel_filter_error(struct diag *d, const struct node *n, const char *why, size_t off)
{
	if (strchr(n->str, '\n') == NULL && off <= n->len)
		diag_error_col(d, n, (n->quoted ? 1 : 0) + (int)off, "%s", why);
	else
		diag_error(d, n, "at byte %zu: %s", off, why);
}

static bool tel_filter(struct pool *p, struct diag *d, struct node *n, struct tel_access_log *l)
{
	struct node *e;
	char err[200];
	size_t off = 0;

	if (!node_want_map(d, n))
		return false;
	e = cfg_require(d, n, "expression");
	node_check_unknown(d, n);
	if (e == NULL || !node_str(d, e, &l->filter))
		return false;
	l->filter_expr = cel_compile(p, l->filter, err, sizeof(err), &off);
	if (l->filter_expr == NULL) {
		tel_filter_error(d, e, err, off);
		return false;
	}
	return true;
}

static bool tel_providers(struct pool *p, struct diag *d, struct node *n, struct tel_access_log *l)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	l->providers.v = pool_calloc(p, n->n ? n->n : 1, sizeof(*l->providers.v));
	l->provider_nodes = pool_calloc(p, n->n ? n->n : 1, sizeof(*l->provider_nodes));
	for (size_t i = 0; i < n->n; i++) {
		struct node *item = n->vals[i], *name;
		const char *s;

		if (!node_want_map(d, item)) {
			ok = false;
			continue;
		}
		name = cfg_require(d, item, "name");
		node_check_unknown(d, item);
		if (name == NULL || !node_str(d, name, &s)) {
			ok = false;
			continue;
		}
		if (*s == '\0') {
			diag_error(d, name, "empty provider name");
			ok = false;
			continue;
		}
		l->provider_nodes[l->providers.n] = name;
		l->providers.v[l->providers.n++] = cfg_lower(p, s);
	}
	return ok;
}

static bool tel_access_log(struct pool *p, struct diag *d, struct node *n, struct tel_access_log *l)
{
	struct node *v, *m;
	bool ok = true;
	int mode = TEL_CLIENT_AND_SERVER;

	l->node = n;
	if (!node_want_map(d, n))
		return false;
	if ((v = node_get(n, "providers")) != NULL)
		ok &= tel_providers(p, d, v, l);
	if ((v = node_get(n, "disabled")) != NULL)
		ok &= node_bool(d, v, &l->disabled);
	if ((v = node_get(n, "filter")) != NULL)
		ok &= tel_filter(p, d, v, l);
	if ((m = node_get(n, "match")) != NULL && node_want_map(d, m)) {
		if ((v = node_get(m, "mode")) != NULL)
			ok &= node_enum(d, v, tel_modes, &mode);
		node_check_unknown(d, m);
	}
	l->mode = (enum tel_mode)mode;
	node_check_unknown(d, n);
	return ok;
}

void cfg_telemetry_decode(struct pool *p, struct diag *d, struct cfg_set *set,
			  const struct cfg_meta *meta, struct node *spec)
{
	struct cfg_telemetry *t = pool_calloc(p, 1, sizeof(*t));
	struct node *sel, *logs;
	bool ok = true;

	t->meta = *meta;
	if ((sel = node_get(spec, "selector")) != NULL && node_want_map(d, sel)) {
		ok &= cfg_decode_labels(p, d, node_get(sel, "matchLabels"), &t->selector);
		t->has_selector = t->selector.n > 0;
		node_check_unknown(d, sel);
	}
	ok &= cfg_no_target_ref(d, spec, "selector");
	if ((logs = node_get(spec, "accessLogging")) != NULL && node_want_seq(d, logs)) {
		t->logs = pool_calloc(p, logs->n ? logs->n : 1, sizeof(*t->logs));
		for (size_t i = 0; i < logs->n; i++)
			ok &= tel_access_log(p, d, logs->vals[i], &t->logs[t->nlogs++]);
	} else if (logs != NULL) {
		ok = false;
	}
	/* Read as a whole: not applied (tel_apply says so), but not "unknown" either. */
	if ((t->metrics = node_get(spec, "metrics")) != NULL)
		node_mark_used(t->metrics);
	if ((t->tracing = node_get(spec, "tracing")) != NULL)
		node_mark_used(t->tracing);
	node_check_unknown(d, spec);
	if (!ok)
		return;
	set->tels = cfg_append(p, set->tels, set->ntels, sizeof(*set->tels));
	set->tels[set->ntels++] = t;
}

static bool tel_names(const struct str_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return true;
	return false;
}

static bool tel_mode_applies(const struct tel_access_log *l)
{
	return l->mode != TEL_SERVER;
}

/* The namespace-wide Telemetry of ns (the first loaded: Istio takes one per namespace). */
static const struct cfg_telemetry *tel_namespace_wide(struct diag *d, const struct cfg_set *set,
						      const char *ns)
{
	const struct cfg_telemetry *found = NULL;

	for (size_t i = 0; i < set->ntels; i++) {
		const struct cfg_telemetry *t = set->tels[i];

		if (t->has_selector || strcmp(t->meta.ns, ns) != 0)
			continue;
		if (found == NULL)
			found = t;
		else
			diag_warn(d, t->meta.node,
				  "namespace %s has a Telemetry without a selector already (%s): "
				  "only the first one loaded is used",
				  ns, found->meta.name);
	}
	return found;
}

static void tel_warn_unapplied(struct diag *d, const struct cfg_telemetry *t)
{
	if (t->metrics != NULL)
		diag_warn(d, t->metrics,
			  "metrics are not customised by meshgate: its Prometheus metrics are "
			  "fixed (meshgate(8), ADMIN ENDPOINT)");
	if (t->tracing != NULL)
		diag_warn(d, t->tracing,
			  "tracing is not applied: meshgate propagates trace headers but "
			  "reports no spans");
	for (size_t i = 0; i < t->nlogs; i++) {
		const struct tel_access_log *l = &t->logs[i];

		if (!tel_mode_applies(l))
			diag_notice(d, l->node,
				    "match mode SERVER: a gateway logs as a CLIENT in Istio, so "
				    "this entry does not apply here");
		for (size_t k = 0; k < l->providers.n; k++)
			if (strcmp(l->providers.v[k], TEL_ENVOY) != 0)
				diag_warn(d, l->provider_nodes[k],
					  "provider \"%s\" is not one meshgate has (its access log "
					  "is the provider \"envoy\"): skipped, as istiod skips "
					  "providers the mesh config does not define",
					  l->providers.v[k]);
		if (l->filter != NULL && l->providers.n == 0)
			diag_warn(d, l->node,
				  "a filter on an entry without providers is not used (as in "
				  "Istio): name the provider \"envoy\" with it");
	}
}

/* The header fields the filter reads by name are copied while the exchange runs (the
 * heads are gone when its line is judged): a bounded few, named by literal keys. */
static bool tel_filter_headers(struct diag *d, struct pool *p, const struct tel_access_log *l,
			       struct cfg_set *set)
{
	static const enum cel_attr maps[2] = {CEL_REQ_HEADERS, CEL_RESP_HEADERS};
	bool referer = (cel_attrs_used(l->filter_expr) >> CEL_REQ_REFERER) & 1;

	for (int side = 0; side < 2; side++) {
		const char *keys[CFG_LOG_FILTER_HEADERS + 1];
		size_t lens[CFG_LOG_FILTER_HEADERS + 1];
		size_t n =
		    cel_map_keys(l->filter_expr, maps[side], keys, lens, CFG_LOG_FILTER_HEADERS);
		struct str_list *out = &set->access_log_headers[side];

		if (n == SIZE_MAX) {
			diag_error(d, node_get(l->node, "filter"),
				   "%s headers are looked up by a computed name: name them with "
				   "string literals",
				   side == 0 ? "request" : "response");
			return false;
		}
		if (side == 0 && referer && n <= CFG_LOG_FILTER_HEADERS) {
			keys[n] = "referer"; /* keys has room for one more */
			lens[n++] = 7;
		}
		if (n > CFG_LOG_FILTER_HEADERS) {
			diag_error(d, node_get(l->node, "filter"),
				   "the filter reads more than %d %s header fields",
				   CFG_LOG_FILTER_HEADERS, side == 0 ? "request" : "response");
			return false;
		}
		out->v = pool_calloc(p, n ? n : 1, sizeof(*out->v));
		for (size_t i = 0; i < n; i++)
			out->v[out->n++] = cfg_lower(p, pool_strndup(p, keys[i], lens[i]));
	}
	return true;
}

void tel_apply(struct diag *d, struct pool *p, struct cfg_set *set)
{
	const struct cfg_telemetry **levels;
	size_t nlevels = 0;
	const struct cfg_telemetry *t;
	const struct tel_access_log *filter_from = NULL;
	const struct str_list *parent = NULL;
	bool in_scope = false, on = false, envoy_decided = false;

	set->access_log_path = set->main.access_log_path;
	set->access_log_format = set->main.access_log_format;
	if (set->ntels == 0)
		return;
	levels = pool_calloc(p, set->ntels, sizeof(*levels)); /* each Telemetry at most once */
	if ((t = tel_namespace_wide(d, set, set->main.root_namespace)) != NULL)
		levels[nlevels++] = t;
	if (strcmp(set->main.ns, set->main.root_namespace) != 0 &&
	    (t = tel_namespace_wide(d, set, set->main.ns)) != NULL)
		levels[nlevels++] = t;
	for (size_t i = 0; i < set->ntels; i++) {
		t = set->tels[i];
		if (!t->has_selector)
			continue;
		if (strcmp(t->meta.ns, set->main.ns) != 0 ||
		    !cfg_policy_selects(set, &t->meta, true, &t->selector)) {
			diag_notice(d, node_get(t->meta.node, "spec"),
				    "does not select this appliance (namespace %s, labels of the "
				    "main config)",
				    set->main.ns);
			continue;
		}
		levels[nlevels++] = t;
	}
	for (size_t i = 0; i < nlevels; i++)
		tel_warn_unapplied(d, levels[i]);

	/* Scope: the providers named (in this mode) by the last level that names any. */
	for (size_t i = 0; i < nlevels; i++) {
		bool named = false, envoy = false;

		for (size_t k = 0; k < levels[i]->nlogs; k++) {
			const struct tel_access_log *l = &levels[i]->logs[k];

			if (!tel_mode_applies(l) || l->providers.n == 0)
				continue;
			named = true;
			if (tel_names(&l->providers, TEL_ENVOY)) {
				envoy = true;
				filter_from = l;
			}
		}
		if (named)
			in_scope = envoy;
	}
	/* Then every entry in order: its providers (or the previous entry's) are on, or off
	 * when disabled. */
	for (size_t i = 0; i < nlevels; i++)
		for (size_t k = 0; k < levels[i]->nlogs; k++) {
			const struct tel_access_log *l = &levels[i]->logs[k];
			const struct str_list *names = l->providers.n > 0 ? &l->providers : parent;

			parent = names;
			if (names == NULL || !in_scope || !tel_mode_applies(l) ||
			    !tel_names(names, TEL_ENVOY))
				continue;
			envoy_decided = true;
			on = !l->disabled;
			set->access_log_by = levels[i];
		}
	/* As istiod: when no Telemetry gives the provider a say (none has accessLogging, or
	 * only for providers meshgate has not), the mesh-wide setting applies: here the main
	 * config's accessLog. */
	if (!envoy_decided)
		return;
	if (!on) {
		set->access_log_path = NULL;
		return;
	}
	if (set->access_log_path == NULL) {
		set->access_log_path = "-";
		set->access_log_format = ACCESSLOG_TEXT;
	}
	if (filter_from != NULL && filter_from->filter_expr != NULL &&
	    tel_filter_headers(d, p, filter_from, set)) {
		set->access_log_filter = filter_from->filter_expr;
		set->access_log_filter_src = filter_from->filter;
	}
}
