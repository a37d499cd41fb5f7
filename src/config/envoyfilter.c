#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "load.h"
#include "node.h"
#include "pool.h"

/* EnvoyFilter (networking.istio.io) patches Envoy's own configuration, which meshgate does
 * not have.  One patch is understood, because it is how Istio's rate limit task limits a
 * gateway: envoy.filters.http.local_ratelimit inserted as an HTTP_FILTER, with its token
 * bucket, filter_enabled / filter_enforced fractions and response_headers_to_add.  Every
 * other patch is refused, naming what it is. */

#define EF_LOCAL_RL "envoy.filters.http.local_ratelimit"
#define EF_RL_TYPE                                                                                 \
	"type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
#define EF_TYPED_STRUCT "type.googleapis.com/udpa.type.v1.TypedStruct"
#define EF_XDS_TYPED_STRUCT "type.googleapis.com/xds.type.v3.TypedStruct"

static bool ef_u32(struct diag *d, struct node *map, const char *key, bool required, uint32_t min,
		   uint32_t *out)
{
	struct node *n = required ? cfg_require(d, map, key) : node_get(map, key);

	if (n == NULL)
		return !required;
	return cfg_decode_u32(d, n, min, UINT32_MAX, out);
}

/* RuntimeFractionalPercent {runtime_key, default_value: {numerator, denominator}}: the
 * runtime key is Envoy's (no runtime here), the default is the value. */
static bool ef_fraction(struct diag *d, struct node *n, uint32_t *ppm)
{
	static const char *const denominators[] = {"HUNDRED", "TEN_THOUSAND", "MILLION", NULL};
	static const uint32_t scale[] = {10000, 100, 1};
	struct node *dv, *den;
	uint32_t num = 0;
	int which = 0;
	bool ok = true;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	node_mark_used(node_get(n, "runtime_key"));
	if ((dv = node_get(n, "default_value")) != NULL && node_want_map(d, dv)) {
		ok &= ef_u32(d, dv, "numerator", false, 0, &num);
		if ((den = node_get(dv, "denominator")) != NULL)
			ok &= node_enum(d, den, denominators, &which);
		node_check_unknown(d, dv);
		if (ok && (uint64_t)num * scale[which] > 1000000) {
			diag_error(d, dv, "more than 100%%");
			ok = false;
		}
		*ppm = num * scale[which];
	}
	node_check_unknown(d, n);
	return ok;
}

static bool ef_headers(struct pool *p, struct diag *d, struct node *n, struct kv_list *out)
{
	bool ok = true;

	if (n == NULL)
		return true;
	if (!node_want_seq(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	for (size_t i = 0; i < n->n; i++) {
		struct node *item = n->vals[i], *h, *k, *v;
		const char *key = NULL, *value = "";

		if (!node_want_map(d, item)) {
			ok = false;
			continue;
		}
		node_mark_used(node_get(item, "append"));
		node_mark_used(node_get(item, "append_action"));
		if ((h = cfg_require(d, item, "header")) != NULL && node_want_map(d, h)) {
			if ((k = cfg_require(d, h, "key")) == NULL || !node_str(d, k, &key))
				ok = false;
			else if (!cfg_is_token(key)) {
				diag_error(d, k, "\"%s\" is not a header field name", key);
				ok = false;
			}
			if ((v = node_get(h, "value")) != NULL)
				ok &= node_str(d, v, &value);
			node_check_unknown(d, h);
		} else {
			ok = false;
		}
		node_check_unknown(d, item);
		if (ok && key != NULL) {
			out->v[out->n].key = cfg_lower(p, key);
			out->v[out->n++].value = value;
		}
	}
	return ok;
}

/* The LocalRateLimit message. */
static bool ef_local_rl(struct pool *p, struct diag *d, struct node *v, struct local_rate_limit *rl)
{
	struct node *tb, *n;
	bool ok = true;

	if (!node_want_map(d, v))
		return false;
	rl->node = v;
	if ((n = cfg_require(d, v, "stat_prefix")) == NULL || !node_str(d, n, &rl->stat_prefix))
		ok = false;
	if ((tb = cfg_require(d, v, "token_bucket")) != NULL && node_want_map(d, tb)) {
		rl->tokens_per_fill = 1;
		ok &= ef_u32(d, tb, "max_tokens", true, 1, &rl->max_tokens);
		ok &= ef_u32(d, tb, "tokens_per_fill", false, 1, &rl->tokens_per_fill);
		if ((n = cfg_require(d, tb, "fill_interval")) == NULL ||
		    !cfg_decode_duration(d, n, 50000, false, &rl->fill_interval_us))
			ok = false;
		node_check_unknown(d, tb);
	} else {
		ok = false;
	}
	ok &= ef_fraction(d, node_get(v, "filter_enabled"), &rl->enabled_ppm);
	ok &= ef_fraction(d, node_get(v, "filter_enforced"), &rl->enforced_ppm);
	ok &= ef_headers(p, d, node_get(v, "response_headers_to_add"), &rl->response_headers);
	if ((n = node_get(v, "descriptors")) != NULL) {
		node_mark_used(n);
		diag_error(d, n,
			   "descriptors need route rate limit actions, which meshgate does not "
			   "have: one token bucket for all requests is supported");
		ok = false;
	}
	node_check_unknown(d, v);
	return ok;
}

/* patch.value: {name, typed_config} of the filter inserted. */
static bool ef_filter(struct pool *p, struct diag *d, struct node *value,
		      struct local_rate_limit *rl)
{
	struct node *name = cfg_require(d, value, "name"), *tc, *type, *url;
	const char *s;
	bool ok;

	if (name == NULL || !node_str(d, name, &s))
		return false;
	if (strcmp(s, EF_LOCAL_RL) != 0) {
		node_mark_used(value);
		diag_error(d, name,
			   "filter %s: meshgate has no Envoy filters; of EnvoyFilter it supports "
			   "only " EF_LOCAL_RL,
			   s);
		return false;
	}
	if ((tc = cfg_require(d, value, "typed_config")) == NULL || !node_want_map(d, tc) ||
	    (type = cfg_require(d, tc, "@type")) == NULL || !node_str(d, type, &s)) {
		node_mark_used(value);
		return false;
	}
	if (strcmp(s, EF_TYPED_STRUCT) == 0 || strcmp(s, EF_XDS_TYPED_STRUCT) == 0) {
		if ((url = cfg_require(d, tc, "type_url")) == NULL || !node_str(d, url, &s))
			ok = false;
		else if (strcmp(s, EF_RL_TYPE) != 0) {
			diag_error(d, url, "type_url must be " EF_RL_TYPE);
			ok = false;
		} else {
			ok = ef_local_rl(p, d, cfg_require(d, tc, "value"), rl);
		}
	} else if (strcmp(s, EF_RL_TYPE) == 0) {
		type->used = true;
		node_mark_used(node_get(tc, "@type"));
		ok = ef_local_rl(p, d, tc, rl);
		return ok; /* the message's own fields were checked for unknown ones */
	} else {
		diag_error(d, type, "@type must be " EF_RL_TYPE " (or a TypedStruct of it)");
		ok = false;
	}
	node_mark_used(tc);
	node_check_unknown(d, value);
	return ok;
}

static bool ef_patch(struct pool *p, struct diag *d, struct node *cp, struct cfg_ef *ef)
{
	static const char *const contexts[] = {"ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND",
					       "GATEWAY", NULL};
	static const char *const operations[] = {
	    "MERGE",        "ADD",          "REMOVE",  "INSERT_BEFORE",
	    "INSERT_AFTER", "INSERT_FIRST", "REPLACE", NULL};
	struct node *apply = cfg_require(d, cp, "applyTo"), *match = node_get(cp, "match"),
		    *patch = cfg_require(d, cp, "patch"), *op, *ctx;
	const char *s;
	int context = 0, operation = 0;

	if (apply == NULL || patch == NULL || !node_str(d, apply, &s)) {
		node_mark_used(cp);
		return false;
	}
	if (strcmp(s, "HTTP_FILTER") != 0) {
		node_mark_used(cp);
		diag_error(d, apply,
			   "applyTo %s: of EnvoyFilter meshgate supports only an HTTP_FILTER "
			   "patch inserting " EF_LOCAL_RL,
			   s);
		return false;
	}
	if (match != NULL && node_want_map(d, match) &&
	    (ctx = node_get(match, "context")) != NULL && node_enum(d, ctx, contexts, &context) &&
	    (context == 1 || context == 2)) {
		node_mark_used(cp);
		diag_notice(d, ctx, "a sidecar patch: not for a gateway, left out");
		return true;
	}
	node_mark_used(match); /* listener / filter chain: meshgate has one HTTP chain */
	if (!node_want_map(d, patch) || (op = cfg_require(d, patch, "operation")) == NULL ||
	    !node_enum(d, op, operations, &operation)) {
		node_mark_used(cp);
		return false;
	}
	if (operation != 1 && operation != 3 && operation != 4 && operation != 5) {
		node_mark_used(cp);
		diag_error(d, op, "a filter is added with ADD or INSERT_BEFORE/AFTER/FIRST");
		return false;
	}
	if (ef->rl != NULL) {
		node_mark_used(cp);
		diag_error(d, patch, "one local rate limit per EnvoyFilter");
		return false;
	}
	ef->rl = pool_calloc(p, 1, sizeof(*ef->rl));
	if (!ef_filter(p, d, cfg_require(d, patch, "value"), ef->rl)) {
		node_mark_used(cp);
		return false;
	}
	node_check_unknown(d, patch);
	node_check_unknown(d, cp);
	return true;
}

void cfg_ef_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct cfg_ef *ef = pool_calloc(p, 1, sizeof(*ef));
	struct node *sel, *patches;
	bool ok = true;

	ef->meta = *meta;
	if ((sel = node_get(spec, "workloadSelector")) != NULL && node_want_map(d, sel)) {
		ef->has_selector = true;
		ok &= cfg_decode_labels(p, d, node_get(sel, "labels"), &ef->selector);
		node_check_unknown(d, sel);
	}
	node_mark_used(node_get(spec, "priority"));
	ok &= cfg_no_target_ref(d, spec, "workloadSelector");
	if ((patches = cfg_require(d, spec, "configPatches")) != NULL &&
	    node_want_seq(d, patches)) {
		for (size_t i = 0; i < patches->n; i++)
			ok &= node_want_map(d, patches->vals[i]) &&
			      ef_patch(p, d, patches->vals[i], ef);
	} else {
		ok = false;
	}
	node_check_unknown(d, spec);
	if (!ok || ef->rl == NULL)
		return;
	set->efs = cfg_append(p, set->efs, set->nefs, sizeof(*set->efs));
	set->efs[set->nefs++] = ef;
}

void ef_apply(struct diag *d, struct cfg_set *set)
{
	for (size_t i = 0; i < set->nefs; i++) {
		const struct cfg_ef *ef = set->efs[i];
		struct node *spec = node_get(ef->meta.node, "spec");

		if (!cfg_policy_selects(set, &ef->meta, ef->has_selector, &ef->selector)) {
			diag_notice(d, spec != NULL ? spec : ef->meta.node,
				    "does not select this appliance (namespace %s, labels of the "
				    "main config; mesh-wide filters come from %s)",
				    set->main.ns, set->main.root_namespace);
			continue;
		}
		if (set->rate_limit != NULL) {
			diag_warn(d, ef->rl->node,
				  "a local rate limit applies already (an earlier EnvoyFilter): "
				  "this one is left out");
			continue;
		}
		set->rate_limit = ef->rl;
	}
}
