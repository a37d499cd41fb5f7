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

/* PeerAuthentication (security.istio.io): Istio's fields and validation, and its effect on
 * the listeners whose Gateway servers use ISTIO_MUTUAL (the mesh-facing side): STRICT
 * takes mutual TLS only, PERMISSIVE mutual TLS or plaintext, DISABLE plaintext only. */

static const char *const pa_modes[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT", NULL};

static bool pa_mode(struct diag *d, struct node *mtls, enum pa_mode *mode, struct node **at)
{
	struct node *m;
	int i;

	if (mtls == NULL)
		return true;
	if (!node_want_map(d, mtls))
		return false;
	m = node_get(mtls, "mode");
	node_check_unknown(d, mtls);
	if (m == NULL)
		return true;
	if (!node_enum(d, m, pa_modes, &i))
		return false;
	*mode = (enum pa_mode)i;
	if (at != NULL)
		*at = m;
	return true;
}

void cfg_pa_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct cfg_pa *pa = pool_alloc(p, sizeof(*pa));
	struct node *sel, *ports;
	bool ok = true;

	pa->meta = *meta;
	if ((sel = node_get(spec, "selector")) != NULL && node_want_map(d, sel)) {
		pa->has_selector = true;
		ok &= cfg_decode_labels(p, d, node_get(sel, "matchLabels"), &pa->selector);
		node_check_unknown(d, sel);
	}
	ok &= pa_mode(d, node_get(spec, "mtls"), &pa->mode, &pa->mode_node);
	if (pa->mode_node == NULL)
		pa->mode_node = spec;
	if ((ports = node_get(spec, "portLevelMtls")) != NULL && node_want_map(d, ports)) {
		if (!pa->has_selector || pa->selector.n == 0) {
			diag_error(d, ports, "portLevelMtls requires a workload selector");
			ok = false;
		}
		pa->ports = pool_calloc(p, ports->n ? ports->n : 1, sizeof(*pa->ports));
		for (size_t i = 0; i < ports->n; i++) {
			struct pa_port *pp = &pa->ports[pa->nports];
			char *end;
			const char *key = ports->keys[i]->str;
			unsigned long port = strtoul(key, &end, 10);

			node_mark_used(ports->vals[i]);
			if (*key == '\0' || *end != '\0' || port == 0 || port > 65535) {
				diag_error(d, ports->vals[i],
					   "port must be in 1..65535, got \"%s\"", key);
				ok = false;
				continue;
			}
			pp->port = (uint32_t)port;
			pp->node = ports->vals[i];
			if (!pa_mode(d, ports->vals[i], &pp->mode, &pp->node)) {
				ok = false;
				continue;
			}
			pa->nports++;
		}
	}
	node_check_unknown(d, spec);
	if (!ok)
		return;
	set->pas = cfg_append(p, set->pas, set->npas, sizeof(*set->pas));
	set->pas[set->npas++] = pa;
}

/* The policy that applies to this appliance at a level: the oldest (first loaded) wins,
 * as in Istio. */
static const struct cfg_pa *pa_pick(const struct cfg_set *set, const char *ns, bool selector)
{
	const struct cfg_pa *best = NULL;

	for (size_t i = 0; i < set->npas; i++) {
		const struct cfg_pa *pa = set->pas[i];
		bool selects = true;

		if (strcmp(pa->meta.ns, ns) != 0 || pa->has_selector != selector)
			continue;
		for (size_t k = 0; selector && k < pa->selector.n; k++) {
			bool found = false;

			for (size_t j = 0; j < set->main.labels.n && !found; j++)
				found =
				    strcmp(set->main.labels.v[j].key, pa->selector.v[k].key) == 0 &&
				    strcmp(set->main.labels.v[j].value, pa->selector.v[k].value) ==
					0;
			selects &= found;
		}
		if (selects && (best == NULL || pa->meta.order < best->meta.order))
			best = pa;
	}
	return best;
}

static enum pa_mode pa_port_mode(const struct cfg_pa *pa, uint32_t port, struct node **at)
{
	for (size_t i = 0; pa != NULL && i < pa->nports; i++)
		if (pa->ports[i].port == port && pa->ports[i].mode != PA_UNSET) {
			*at = pa->ports[i].node;
			return pa->ports[i].mode;
		}
	if (pa != NULL && pa->mode != PA_UNSET) {
		*at = pa->mode_node;
		return pa->mode;
	}
	return PA_UNSET;
}

/* Positions of whole-policy notes: the spec (the document root when it has none). */
static struct node *pa_spec(const struct cfg_pa *pa)
{
	struct node *spec = node_get(pa->meta.node, "spec");

	return spec != NULL ? spec : pa->meta.node;
}

void pa_apply(struct diag *d, const struct cfg_set *set)
{
	/* most specific first: workload selector, then namespace, then mesh-wide */
	const struct cfg_pa *levels[3] = {pa_pick(set, set->main.ns, true),
					  pa_pick(set, set->main.ns, false),
					  pa_pick(set, set->main.root_namespace, false)};
	bool any_mesh_port = false;

	for (size_t g = 0; g < set->ngateways; g++) {
		const struct cfg_gateway *gw = set->gateways[g];

		for (size_t i = 0; gw->served && i < gw->nservers; i++) {
			struct gw_server *srv = &gw->servers[i];
			enum pa_mode mode = PA_UNSET;
			struct node *at = NULL;

			if (!srv->tls.given || srv->tls.mode != TLSM_ISTIO_MUTUAL)
				continue;
			any_mesh_port = true;
			for (int l = 0; l < 3 && mode == PA_UNSET; l++)
				mode = pa_port_mode(levels[l], srv->port, &at);
			/* No policy: what the server asks for.  Istio's mesh default is
			 * PERMISSIVE, but that is for sidecars; a Gateway server that says
			 * ISTIO_MUTUAL is not opened to plaintext by the absence of a policy. */
			srv->mtls = mode == PA_UNSET ? PA_STRICT : mode;
			srv->mtls_node = at;
		}
	}
	for (size_t i = 0; i < set->npas; i++) {
		const struct cfg_pa *pa = set->pas[i];
		bool applies = pa == levels[0] || pa == levels[1] || pa == levels[2];

		if (!applies)
			diag_notice(d, pa_spec(pa),
				    "does not select this appliance (which takes policies from "
				    "namespace %s and, mesh-wide, %s)",
				    set->main.ns, set->main.root_namespace);
		else if (!any_mesh_port)
			diag_notice(d, pa_spec(pa),
				    "applies to ISTIO_MUTUAL Gateway servers; none is served");
	}
}

static const char *pa_mode_name(enum pa_mode m)
{
	return pa_modes[m];
}

enum pa_mode pa_listener_mode(struct diag *d, const struct gw_server *const *servers, size_t n,
			      const char *lkey)
{
	const struct gw_server *open = NULL, *other = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct gw_server *srv = servers[i];
		bool opens = srv->tls.given && srv->tls.mode == TLSM_ISTIO_MUTUAL &&
			     (srv->mtls == PA_PERMISSIVE || srv->mtls == PA_DISABLE);

		if (opens && open == NULL)
			open = srv;
		if (!opens || srv->protocol != GWP_HTTPS)
			other = srv;
	}
	if (open == NULL)
		return PA_UNSET;
	if (other == open) {
		diag_warn(d, open->mtls_node != NULL ? open->mtls_node : open->node,
			  "mTLS mode %s for port %u: plaintext is taken on HTTPS servers only; "
			  "%s stays STRICT",
			  pa_mode_name(open->mtls), open->port, lkey);
		return PA_UNSET;
	}
	if (other != NULL) {
		/* Plaintext on the port would reach the other servers' hosts too: their
		 * own tls settings win, and the mesh server's policy is not honoured. */
		diag_warn(d, open->mtls_node != NULL ? open->mtls_node : open->node,
			  "mTLS mode %s for port %u: %s is shared with the server at %s:%d, "
			  "which is not an HTTPS ISTIO_MUTUAL one; the port stays STRICT",
			  pa_mode_name(open->mtls), open->port, lkey,
			  other->node != NULL && other->node->doc != NULL ? other->node->doc->file
									  : "?",
			  other->node != NULL ? other->node->line : 0);
		return PA_UNSET;
	}
	return open->mtls;
}
