#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diag.h"
#include "load.h"
#include "node.h"
#include "pool.h"

/* RequestAuthentication (security.istio.io): Istio's JWTRule fields and validation.
 * Which resources apply follows Istio's workload selection, as for AuthorizationPolicy
 * (cfg_policy_selects).  The keys are read at link time (jwtauth.c). */

/* A field name as HTTP allows it (RFC 9110 token), lower-cased. */
static bool ra_field_name(struct pool *p, struct diag *d, struct node *n, const char **out)
{
	const char *s;

	if (!node_str(d, n, &s))
		return false;
	if (*s == '\0' || s[strspn(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0') {
		diag_error(d, n, "\"%s\" is not a header field name", s);
		return false;
	}
	*out = cfg_lower(p, s);
	return true;
}

static bool ra_from_headers(struct pool *p, struct diag *d, struct node *n, struct ra_rule *r)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	r->headers = pool_calloc(p, n->n ? n->n : 1, sizeof(*r->headers));
	for (size_t i = 0; i < n->n; i++) {
		struct node *h = n->vals[i], *name, *prefix;
		struct ra_header_loc *loc = &r->headers[r->nheaders];
		bool name_ok, prefix_ok;

		if (!node_want_map(d, h)) {
			ok = false;
			continue;
		}
		loc->prefix = "";
		name = cfg_require(d, h, "name");
		prefix = node_get(h, "prefix");
		/* both checked, so both report */
		name_ok = name != NULL && ra_field_name(p, d, name, &loc->name);
		prefix_ok = prefix == NULL || node_str(d, prefix, &loc->prefix);
		if (!name_ok || !prefix_ok)
			ok = false;
		else
			r->nheaders++;
		node_check_unknown(d, h);
	}
	return ok;
}

static bool ra_claim_path(struct pool *p, struct diag *d, struct node *n, const char *claim,
			  const char ***path, size_t *npath)
{
	size_t parts = 1;
	char *copy = pool_strndup(p, claim, strlen(claim)), *s, *dot;

	for (const char *c = claim; *c != '\0'; c++)
		parts += *c == '.';
	*path = pool_calloc(p, parts, sizeof(**path));
	*npath = 0;
	for (s = copy; s != NULL; s = dot != NULL ? dot + 1 : NULL) {
		dot = strchr(s, '.');
		if (dot != NULL)
			*dot = '\0';
		if (*s == '\0') {
			diag_error(d, n, "claim \"%s\": empty name between dots", claim);
			return false;
		}
		(*path)[(*npath)++] = s;
	}
	return true;
}

static bool ra_claim_headers(struct pool *p, struct diag *d, struct node *n, struct ra_rule *r)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	r->claim_headers = pool_calloc(p, n->n ? n->n : 1, sizeof(*r->claim_headers));
	for (size_t i = 0; i < n->n; i++) {
		struct node *m = n->vals[i], *h, *c;
		struct ra_claim_header *ch = &r->claim_headers[r->nclaim_headers];
		const char *claim;

		if (!node_want_map(d, m)) {
			ok = false;
			continue;
		}
		h = cfg_require(d, m, "header");
		c = cfg_require(d, m, "claim");
		if (h == NULL || c == NULL || !ra_field_name(p, d, h, &ch->header) ||
		    !node_str(d, c, &claim) ||
		    !ra_claim_path(p, d, c, claim, &ch->path, &ch->npath))
			ok = false;
		else if (strcmp(ch->header, "host") == 0 || ch->header[0] == ':') {
			diag_error(d, h, "\"%s\" cannot carry a claim", ch->header);
			ok = false;
		} else
			r->nclaim_headers++;
		node_check_unknown(d, m);
	}
	return ok;
}

static bool ra_uri_ok(struct diag *d, struct node *n, const char *uri)
{
	const char *host;

	if (strncasecmp(uri, "https://", 8) == 0)
		host = uri + 8;
	else if (strncasecmp(uri, "http://", 7) == 0)
		host = uri + 7;
	else {
		diag_error(d, n, "jwksUri \"%s\" must be an http:// or https:// URL", uri);
		return false;
	}
	if (*host == '\0' || *host == '/') {
		diag_error(d, n, "jwksUri \"%s\" has no host", uri);
		return false;
	}
	return true;
}

static bool ra_rule(struct pool *p, struct diag *d, struct node *n, struct ra_rule *r)
{
	struct node *v;
	bool ok = true;

	if (!node_want_map(d, n))
		return false;
	r->node = n;
	r->fetch_timeout_us = 5000000; /* Istio's default for fetching jwksUri */
	if ((v = cfg_require(d, n, "issuer")) == NULL || !node_str(d, v, &r->issuer))
		ok = false;
	else if (r->issuer[0] == '\0') {
		diag_error(d, v, "issuer must not be empty");
		ok = false;
	}
	if ((v = node_get(n, "audiences")) != NULL)
		ok &= cfg_decode_str_list(p, d, v, &r->audiences, false);
	if ((v = node_get(n, "jwks")) != NULL) {
		r->jwks_node = v;
		ok &= node_str(d, v, &r->jwks);
	}
	if ((v = node_get(n, "jwksUri")) != NULL) {
		r->jwks_uri_node = v;
		ok &= node_str(d, v, &r->jwks_uri) && ra_uri_ok(d, v, r->jwks_uri);
	}
	if ((v = node_get(n, "jwks_uri")) != NULL) { /* the older spelling Istio still reads */
		r->jwks_uri_node = v;
		ok &= node_str(d, v, &r->jwks_uri) && ra_uri_ok(d, v, r->jwks_uri);
	}
	if (r->jwks != NULL && r->jwks_uri != NULL)
		diag_notice(d, r->jwks_uri_node,
			    "jwks is given too and is used; jwksUri is not "
			    "fetched");
	if ((v = node_get(n, "timeout")) != NULL)
		ok &= cfg_decode_duration(d, v, 1000, false, &r->fetch_timeout_us);
	if ((v = node_get(n, "fromHeaders")) != NULL)
		ok &= ra_from_headers(p, d, v, r);
	if ((v = node_get(n, "fromParams")) != NULL)
		ok &= cfg_decode_str_list(p, d, v, &r->params, false);
	if ((v = node_get(n, "fromCookies")) != NULL)
		ok &= cfg_decode_str_list(p, d, v, &r->cookies, false);
	if (r->nheaders == 0 && r->params.n == 0 && r->cookies.n == 0) {
		/* Istio's defaults: "Authorization: Bearer <token>" or ?access_token=<token> */
		static const char *access_token = "access_token";

		r->headers = pool_calloc(p, 1, sizeof(*r->headers));
		r->headers[0].name = "authorization";
		r->headers[0].prefix = "Bearer ";
		r->nheaders = 1;
		r->params.v = &access_token;
		r->params.n = 1;
	}
	if ((v = node_get(n, "outputPayloadToHeader")) != NULL)
		ok &= ra_field_name(p, d, v, &r->payload_header);
	if ((v = node_get(n, "outputClaimToHeaders")) != NULL)
		ok &= ra_claim_headers(p, d, v, r);
	if ((v = node_get(n, "forwardOriginalToken")) != NULL)
		ok &= node_bool(d, v, &r->forward_token);
	node_check_unknown(d, n);
	return ok;
}

void cfg_ra_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct cfg_ra *ra = pool_calloc(p, 1, sizeof(*ra));
	struct node *sel, *rules;
	bool ok = true;

	ra->meta = *meta;
	if ((sel = node_get(spec, "selector")) != NULL && node_want_map(d, sel)) {
		ra->has_selector = true;
		ok &= cfg_decode_labels(p, d, node_get(sel, "matchLabels"), &ra->selector);
		node_check_unknown(d, sel);
	}
	ok &= cfg_no_target_ref(d, spec, "selector");
	if ((rules = node_get(spec, "jwtRules")) != NULL && node_want_seq(d, rules)) {
		ra->rules = pool_calloc(p, rules->n ? rules->n : 1, sizeof(*ra->rules));
		for (size_t i = 0; i < rules->n; i++)
			ok &= ra_rule(p, d, rules->vals[i], &ra->rules[ra->nrules++]);
		for (size_t i = 0; i < ra->nrules; i++)
			for (size_t j = 0; j < i && ra->rules[i].issuer != NULL; j++)
				if (ra->rules[j].issuer != NULL &&
				    strcmp(ra->rules[i].issuer, ra->rules[j].issuer) == 0) {
					diag_error(
					    d, ra->rules[i].node,
					    "issuer \"%s\" has a rule already (jwtRules[%zu])",
					    ra->rules[i].issuer, j);
					ok = false;
				}
	} else if (rules != NULL) {
		ok = false;
	}
	node_check_unknown(d, spec);
	if (!ok)
		return;
	set->ras = cfg_append(p, set->ras, set->nras, sizeof(*set->ras));
	set->ras[set->nras++] = ra;
}

void ra_apply(struct diag *d, struct pool *p, struct cfg_set *set)
{
	for (size_t i = 0; i < set->nras; i++) {
		struct cfg_ra *ra = set->ras[i];
		struct node *spec = node_get(ra->meta.node, "spec");

		if (!cfg_policy_selects(set, &ra->meta, ra->has_selector, &ra->selector)) {
			diag_notice(d, spec != NULL ? spec : ra->meta.node,
				    "does not select this appliance (namespace %s, labels of the "
				    "main config; mesh-wide policies come from %s)",
				    set->main.ns, set->main.root_namespace);
			continue;
		}
		for (size_t r = 0; r < ra->nrules; r++) {
			bool dup = false;

			for (size_t k = 0; k < set->nra_rules && !dup; k++)
				dup = strcmp(set->ra_rules[k]->issuer, ra->rules[r].issuer) == 0;
			if (dup) {
				diag_warn(d, ra->rules[r].node,
					  "issuer \"%s\" has a rule in an earlier "
					  "RequestAuthentication; that one is used",
					  ra->rules[r].issuer);
				continue;
			}
			set->ra_rules =
			    cfg_append(p, set->ra_rules, set->nra_rules, sizeof(*set->ra_rules));
			set->ra_rules[set->nra_rules++] = &ra->rules[r];
		}
	}
}
