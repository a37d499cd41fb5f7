#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cel.h"
#include "diag.h"
#include "load.h"
#include "logformat.h"
#include "node.h"
#include "pool.h"

/* Telemetry (telemetry.istio.io): what a gateway's access log does.  meshgate's access log
 * is Istio's built-in provider "envoy" (the main config's accessLog says where it goes and
 * in which format; standard output and Envoy's text format when it says nothing) or one of
 * the main config's envoyFileAccessLog extension providers.  The
 * Telemetries that select this appliance are merged as istiod merges them for a gateway:
 * root namespace, then the appliance's namespace, then workload selectors; the last level
 * that names providers decides which are in scope, entries without providers inherit the
 * previous entry's, `disabled` turns a provider off, and a provider's filter is the last
 * one given with it by name.  Metrics overrides are applied by telemetry_metrics.c;
 * tracing is not, and said so. */

#define TEL_ENVOY "envoy"

static const char *const tel_modes[] = {"CLIENT_AND_SERVER", "CLIENT", "SERVER", NULL};

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
		diag_error_scalar(d, e, off, err);
		return false;
	}
	return true;
}

bool tel_decode_providers(struct pool *p, struct diag *d, struct node *n, struct str_list *out,
			  struct node ***nodes)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	*nodes = pool_calloc(p, n->n ? n->n : 1, sizeof(**nodes));
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
		(*nodes)[out->n] = name;
		out->v[out->n++] = cfg_lower(p, s);
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
		ok &= tel_decode_providers(p, d, v, &l->providers, &l->provider_nodes);
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
	struct node *sel, *logs, *v;
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
	if ((v = node_get(spec, "metrics")) != NULL)
		ok &= tel_metrics_decode(p, d, v, t);
	/* Read as a whole: not applied (tel_apply says so), but not "unknown" either. */
	if ((t->tracing = node_get(spec, "tracing")) != NULL)
		node_mark_used(t->tracing);
	node_check_unknown(d, spec);
	if (!ok)
		return;
	set->tels = cfg_append(p, set->tels, set->ntels, sizeof(*set->tels));
	set->tels[set->ntels++] = t;
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

/* The access log providers meshgate has: "envoy", then the file providers; -1 other. */
static int tel_provider(const struct cfg_set *set, const char *name)
{
	if (strcmp(name, TEL_ENVOY) == 0)
		return 0;
	for (size_t i = 0; i < set->main.nfile_logs; i++)
		if (strcasecmp(set->main.file_logs[i].name, name) == 0)
			return 1 + (int)i;
	return -1;
}

static void tel_warn_unapplied(struct diag *d, const struct cfg_set *set,
			       const struct cfg_telemetry *t)
{
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
			if (tel_provider(set, l->providers.v[k]) < 0)
				diag_warn(
				    d, l->provider_nodes[k],
				    "provider \"%s\" is not an access log meshgate has (the "
				    "provider \"envoy\" and the main config's "
				    "envoyFileAccessLog extensionProviders): skipped, as istiod "
				    "skips providers the mesh config does not define",
				    l->providers.v[k]);
		if (l->filter != NULL && l->providers.n == 0)
			diag_warn(d, l->node,
				  "a filter on an entry without providers is not used (as in "
				  "Istio): name the provider with it");
	}
}

/* Add a header name (lower case) to the kept ones of a side, once; false when that makes
 * more than CFG_LOG_HEADERS. */
static bool tel_keep_name(struct pool *p, struct str_list *out, const char *name, size_t len)
{
	for (size_t i = 0; i < out->n; i++)
		if (strlen(out->v[i]) == len && strncasecmp(out->v[i], name, len) == 0)
			return true;
	if (out->n == CFG_LOG_HEADERS)
		return false;
	out->v[out->n++] = cfg_lower(p, pool_strndup(p, name, len));
	return true;
}

/* The header fields the filter and the format read by name are copied while the exchange
 * runs (the heads are gone when its line is judged and written): a bounded few, named by
 * the filter's literal keys and the format's REQ/RESP operators. */
static bool tel_keep_headers(struct diag *d, struct pool *p, const struct tel_access_log *l,
			     const struct node *format_node, struct cfg_set *set)
{
	static const enum cel_attr maps[2] = {CEL_REQ_HEADERS, CEL_RESP_HEADERS};
	bool referer = l != NULL && ((cel_attrs_used(l->filter_expr) >> CEL_REQ_REFERER) & 1);

	for (int side = 0; side < 2; side++) {
		const char *keys[CFG_LOG_HEADERS + 1];
		size_t lens[CFG_LOG_HEADERS + 1];
		size_t n = 0;
		struct str_list *out = &set->access_log_headers[side];
		const char *what = side == 0 ? "request" : "response";

		out->v = pool_calloc(p, CFG_LOG_HEADERS, sizeof(*out->v));
		out->n = 0;
		if (l != NULL)
			n = cel_map_keys(l->filter_expr, maps[side], keys, lens, CFG_LOG_HEADERS);
		if (n == SIZE_MAX) {
			diag_error(d, node_get(l->node, "filter"),
				   "%s headers are looked up by a computed name: name them with "
				   "string literals",
				   what);
			return false;
		}
		if (n > CFG_LOG_HEADERS) { /* keys[] holds only the first ones */
			diag_error(d, node_get(l->node, "filter"),
				   "the filter reads more than %d %s header fields",
				   CFG_LOG_HEADERS, what);
			return false;
		}
		if (side == 0 && referer) {
			keys[n] = "referer"; /* keys has room for one more */
			lens[n++] = 7;
		}
		for (size_t i = 0; i < n; i++)
			if (!tel_keep_name(p, out, keys[i], lens[i])) {
				diag_error(d, node_get(l->node, "filter"),
					   "the filter reads more than %d %s header fields",
					   CFG_LOG_HEADERS, what);
				return false;
			}
		if (set->access_log_custom != NULL) {
			const char *names[CFG_LOG_HEADERS + 1];
			size_t nn = logformat_header_names(set->access_log_custom, side, names,
							   CFG_LOG_HEADERS + 1);

			for (size_t i = 0; i < nn; i++)
				if (i > CFG_LOG_HEADERS ||
				    !tel_keep_name(p, out, names[i], strlen(names[i]))) {
					diag_error(
					    d, format_node,
					    "the access log reads more than %d %s header "
					    "fields (the format's and the filter's together)",
					    CFG_LOG_HEADERS, what);
					return false;
				}
		}
	}
	if (set->access_log_custom != NULL) {
		const char *const *names[2] = {set->access_log_headers[0].v,
					       set->access_log_headers[1].v};
		const size_t n[2] = {set->access_log_headers[0].n, set->access_log_headers[1].n};

		logformat_bind(set->access_log_custom, names, n);
	}
	return true;
}

/* What the Telemetries say of one access log provider. */
struct tel_provider_state {
	bool in_scope, decided, on;
	const struct tel_access_log *filter_from;
	const struct cfg_telemetry *by;
	const struct tel_access_log *last; /* the entry that decided */
};

void tel_apply(struct diag *d, struct pool *p, struct cfg_set *set)
{
	const struct cfg_telemetry **levels;
	size_t nlevels = 0, nprov = 1 + set->main.nfile_logs;
	const struct cfg_telemetry *t;
	const struct str_list *parent = NULL;
	struct tel_provider_state *st;
	struct node *format_node = NULL;
	const struct tel_access_log *filter_from = NULL;
	int chosen = -1;

	set->access_log_path = set->main.access_log_path;
	set->access_log_format = set->main.access_log_format;
	set->access_log_custom = set->main.access_log_custom;
	set->access_log_provider = TEL_ENVOY;
	set->metrics_tcp_interval_us = 15000000; /* Istio's TCP reporting interval */
	if (set->ntels > 0) {
		levels = pool_calloc(p, set->ntels, sizeof(*levels)); /* each at most once */
		st = pool_calloc(p, nprov, sizeof(*st));
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
					    "does not select this appliance (namespace %s, labels "
					    "of the main config)",
					    set->main.ns);
				continue;
			}
			levels[nlevels++] = t;
		}
		for (size_t i = 0; i < nlevels; i++)
			tel_warn_unapplied(d, set, levels[i]);
		tel_metrics_apply(d, p, set, levels, nlevels);

		/* Scope: the providers named (in this mode) by the last level that names
		 * any; a provider's filter: the last entry naming it that has one or not. */
		for (size_t i = 0; i < nlevels; i++) {
			bool named = false;

			for (size_t k = 0; k < levels[i]->nlogs; k++)
				named |= tel_mode_applies(&levels[i]->logs[k]) &&
					 levels[i]->logs[k].providers.n > 0;
			if (!named)
				continue;
			for (size_t q = 0; q < nprov; q++)
				st[q].in_scope = false;
			for (size_t k = 0; k < levels[i]->nlogs; k++) {
				const struct tel_access_log *l = &levels[i]->logs[k];

				if (!tel_mode_applies(l))
					continue;
				for (size_t j = 0; j < l->providers.n; j++) {
					int q = tel_provider(set, l->providers.v[j]);

					if (q >= 0) {
						st[q].in_scope = true;
						st[q].filter_from = l;
					}
				}
			}
		}
		/* Then every entry in order: its providers (or the previous entry's) are on,
		 * or off when disabled. */
		for (size_t i = 0; i < nlevels; i++)
			for (size_t k = 0; k < levels[i]->nlogs; k++) {
				const struct tel_access_log *l = &levels[i]->logs[k];
				const struct str_list *names =
				    l->providers.n > 0 ? &l->providers : parent;

				parent = names;
				if (names == NULL || !tel_mode_applies(l))
					continue;
				for (size_t j = 0; j < names->n; j++) {
					int q = tel_provider(set, names->v[j]);

					if (q < 0 || !st[q].in_scope)
						continue;
					st[q].decided = true;
					st[q].on = !l->disabled;
					st[q].by = levels[i];
					st[q].last = l;
				}
			}
		/* As istiod: when no Telemetry gives a provider a say (none has
		 * accessLogging, or only for providers meshgate has not), the mesh-wide
		 * setting applies: here the main config's accessLog. */
		for (size_t q = 0; q < nprov; q++) {
			if (!st[q].decided)
				continue;
			if (set->access_log_by == NULL || st[q].on)
				set->access_log_by = st[q].by;
			if (!st[q].on)
				continue;
			if (chosen >= 0) {
				diag_error(d, st[q].last->node,
					   "the access log providers %s and %s are both on: "
					   "meshgate writes one access log",
					   chosen == 0 ? TEL_ENVOY
						       : set->main.file_logs[chosen - 1].name,
					   q == 0 ? TEL_ENVOY : set->main.file_logs[q - 1].name);
				return;
			}
			chosen = (int)q;
		}
		if (set->access_log_by != NULL && chosen < 0) {
			set->access_log_path = NULL; /* turned off */
			return;
		}
		if (chosen == 0 && set->access_log_path == NULL) {
			set->access_log_path = "-";
			set->access_log_format = ACCESSLOG_TEXT;
			set->access_log_custom = NULL;
		} else if (chosen > 0) {
			const struct file_log_provider *f = &set->main.file_logs[chosen - 1];

			set->access_log_path = f->path;
			set->access_log_format = f->format;
			set->access_log_custom = f->custom;
			set->access_log_provider = f->name;
			format_node = node_get(f->node, "logFormat");
		}
		if (chosen >= 0 && st[chosen].filter_from != NULL &&
		    st[chosen].filter_from->filter_expr != NULL)
			filter_from = st[chosen].filter_from;
	}
	if (set->access_log_path == NULL)
		return;
	if (format_node == NULL && set->access_log_custom != NULL)
		format_node = node_get(node_get(set->main.node, "accessLog"), "logFormat");
	if (tel_keep_headers(d, p, filter_from, format_node, set) && filter_from != NULL) {
		set->access_log_filter = filter_from->filter_expr;
		set->access_log_filter_src = filter_from->filter;
	}
}
