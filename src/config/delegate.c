#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "delegate.h"
#include "diag.h"
#include "model.h"
#include "node.h"
#include "pool.h"

static struct node *delegate_at(struct node *n, const char *key)
{
	struct node *c = n != NULL ? node_get(n, key) : NULL;

	return c != NULL ? c : n;
}

static struct cfg_vs *delegate_find(struct cfg_vs **vss, size_t n, const char *ns, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vss[i]->meta.name, name) == 0 && strcmp(vss[i]->meta.ns, ns) == 0)
			return vss[i];
	return NULL;
}

/* Istio's stringMatchConflict: absent on either side never conflicts; regexes always do;
 * an exact root takes only the same exact; a prefix root takes a narrower prefix or exact. */
static bool sm_conflict(const struct string_match *root, const struct string_match *leaf)
{
	if (root->kind == SM_NONE || leaf->kind == SM_NONE)
		return false;
	if (root->kind == SM_REGEX || leaf->kind == SM_REGEX)
		return true;
	if (root->kind == SM_EXACT)
		return leaf->kind != SM_EXACT || strcmp(leaf->value, root->value) != 0;
	return strncmp(leaf->value, root->value, root->len) != 0 || leaf->len < root->len;
}

static const struct header_match *hm_find(const struct header_match *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static bool hm_conflict(const struct header_match *root, size_t nroot,
			const struct header_match *leaf, size_t nleaf)
{
	for (size_t i = 0; i < nleaf; i++) {
		const struct header_match *r = hm_find(root, nroot, leaf[i].name);

		if (r != NULL && sm_conflict(&r->m, &leaf[i].m))
			return true;
	}
	return false;
}

static bool gateways_conflict(const struct str_list *root, const struct str_list *leaf)
{
	if (root->n == 0 || leaf->n == 0)
		return false;
	for (size_t i = 0; i < leaf->n; i++) {
		bool found = false;

		for (size_t k = 0; k < root->n && !found; k++)
			found = strcmp(root->v[k], leaf->v[i]) == 0;
		if (!found)
			return true;
	}
	return false;
}

static bool match_conflict(const struct http_match *root, const struct http_match *leaf)
{
	return sm_conflict(&root->uri, &leaf->uri) ||
	       sm_conflict(&root->more->scheme, &leaf->more->scheme) ||
	       sm_conflict(&root->more->method, &leaf->more->method) ||
	       sm_conflict(&root->more->authority, &leaf->more->authority) ||
	       hm_conflict(root->headers, root->nheaders, leaf->headers, leaf->nheaders) ||
	       hm_conflict(root->more->without_headers, root->more->nwithout_headers,
			   leaf->more->without_headers, leaf->more->nwithout_headers) ||
	       hm_conflict(root->more->query_params, root->more->nquery_params,
			   leaf->more->query_params, leaf->more->nquery_params) ||
	       root->ignore_uri_case != leaf->ignore_uri_case ||
	       (root->port > 0 && leaf->port > 0 && root->port != leaf->port) ||
	       gateways_conflict(&root->more->gateways, &leaf->more->gateways);
}

/* The leaf's header matches plus the root's for names the leaf does not match. */
static struct header_match *hm_merge(struct pool *p, const struct header_match *root, size_t nroot,
				     const struct header_match *leaf, size_t nleaf, size_t *n)
{
	struct header_match *out = pool_calloc(p, nroot + nleaf + 1, sizeof(*out));

	*n = 0;
	for (size_t i = 0; i < nleaf; i++)
		out[(*n)++] = leaf[i];
	for (size_t i = 0; i < nroot; i++)
		if (hm_find(leaf, nleaf, root[i].name) == NULL)
			out[(*n)++] = root[i];
	return out;
}

/* Istio's mergeHTTPMatchRequest: the leaf's conditions, the root's where the leaf has none. */
static void match_merge(struct pool *p, const struct http_match *root,
			const struct http_match *leaf, struct http_match *out)
{
	const struct http_match_more *rm = root->more, *lm = leaf->more;
	struct http_match_more *om = pool_alloc(p, sizeof(*om));

	*out = *leaf;
	*om = *lm;
	out->more = om;
	if (root->name != NULL)
		out->name = leaf->name != NULL ? pool_printf(p, "%s-%s", root->name, leaf->name)
					       : root->name;
	if (out->uri.kind == SM_NONE)
		out->uri = root->uri;
	if (om->scheme.kind == SM_NONE)
		om->scheme = rm->scheme;
	if (om->method.kind == SM_NONE)
		om->method = rm->method;
	if (om->authority.kind == SM_NONE)
		om->authority = rm->authority;
	out->headers = hm_merge(p, root->headers, root->nheaders, leaf->headers, leaf->nheaders,
				&out->nheaders);
	om->without_headers =
	    hm_merge(p, rm->without_headers, rm->nwithout_headers, lm->without_headers,
		     lm->nwithout_headers, &om->nwithout_headers);
	om->query_params = hm_merge(p, rm->query_params, rm->nquery_params, lm->query_params,
				    lm->nquery_params, &om->nquery_params);
	if (out->port == 0)
		out->port = root->port;
	if (om->gateways.n == 0)
		om->gateways = rm->gateways;
}

/* Merged match blocks of a delegate route under a root route; false on a conflict (some
 * delegate block fits in no root block, or nothing is left). */
static bool matches_merge(struct pool *p, const struct http_route *root,
			  const struct http_route *leaf, struct http_match **out, uint32_t *nout)
{
	size_t cap = root->nmatches * (leaf->nmatches ? leaf->nmatches : 1);

	if (root->nmatches == 0) {
		*out = leaf->matches;
		*nout = leaf->nmatches;
		return true;
	}
	if (leaf->nmatches == 0) {
		*out = root->matches;
		*nout = root->nmatches;
		return true;
	}
	*out = pool_calloc(p, cap, sizeof(**out));
	*nout = 0;
	for (size_t i = 0; i < leaf->nmatches; i++) {
		bool found = false;

		for (size_t k = 0; k < root->nmatches; k++) {
			if (match_conflict(&root->matches[k], &leaf->matches[i]))
				continue;
			match_merge(p, &root->matches[k], &leaf->matches[i], &(*out)[(*nout)++]);
			found = true;
		}
		if (!found)
			return false;
	}
	return *nout > 0;
}

/* The routes of root vs with every delegating route replaced; NULL when it has none. */
static void delegate_vs(struct pool *p, struct diag *d, struct cfg_vs *vs, struct cfg_vs **vss,
			size_t n)
{
	struct http_route *out;
	size_t nout = 0, cap = 0;
	bool any = false;

	for (size_t i = 0; i < vs->nhttp; i++) {
		const struct http_route *r = &vs->http[i];
		struct cfg_vs *dv;

		if (r->more->delegate.name == NULL) {
			cap++;
			continue;
		}
		any = true;
		dv = delegate_find(vss, n, r->more->delegate.ns, r->more->delegate.name);
		if (dv == NULL) {
			diag_error(d, delegate_at(r->node, "delegate"),
				   "delegate VirtualService %s/%s not found", r->more->delegate.ns,
				   r->more->delegate.name);
			continue;
		}
		if (dv->hosts.n > 0) {
			diag_error(d, delegate_at(r->node, "delegate"),
				   "VirtualService %s/%s has hosts: a delegate must have none",
				   dv->meta.ns, dv->meta.name);
			continue;
		}
		cap += dv->nhttp;
	}
	if (!any)
		return;
	out = pool_calloc(p, cap ? cap : 1, sizeof(*out));
	for (size_t i = 0; i < vs->nhttp; i++) {
		const struct http_route *r = &vs->http[i];
		struct cfg_vs *dv;

		if (r->more->delegate.name == NULL) {
			out[nout++] = *r;
			continue;
		}
		dv = delegate_find(vss, n, r->more->delegate.ns, r->more->delegate.name);
		if (dv == NULL || dv->hosts.n > 0)
			continue;
		dv->delegated = true;
		for (size_t k = 0; k < dv->nhttp; k++) {
			const struct http_route *leaf = &dv->http[k];
			struct http_route *m;

			if (leaf->more->delegate.name != NULL) {
				diag_error(d, delegate_at(leaf->node, "delegate"),
					   "VirtualService %s/%s is a delegate of %s/%s: it cannot "
					   "delegate again",
					   dv->meta.ns, dv->meta.name, vs->meta.ns, vs->meta.name);
				continue;
			}
			m = &out[nout];
			*m = *leaf;
			if (!matches_merge(p, r, leaf, &m->matches, &m->nmatches)) {
				diag_warn(
				    d, leaf->node,
				    "this delegate route conflicts with the match of the route "
				    "delegating to it (VirtualService %s/%s http[%zu]) and is "
				    "dropped there",
				    vs->meta.ns, vs->meta.name, i);
				continue;
			}
			if (m->name == NULL)
				m->name = r->name;
			nout++;
		}
	}
	vs->http = out;
	vs->nhttp = nout;
}

void delegate_expand(struct pool *p, struct diag *d, struct cfg_vs **vss, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vss[i]->hosts.n > 0)
			delegate_vs(p, d, vss[i], vss, n);
}
