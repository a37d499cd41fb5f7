#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"
#include "dr_policy.h"

/* Istio's SimpleLB names, mapped onto enum lb_simple (LEAST_CONN is LEAST_REQUEST's
 * deprecated alias). */
static const char *const dr_simple_names[] = {
    "UNSPECIFIED", "LEAST_CONN", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH", "LEAST_REQUEST", NULL};
static const enum lb_simple dr_simple_values[] = {
    LB_UNSPECIFIED, LB_LEAST_REQUEST, LB_ROUND_ROBIN, LB_RANDOM, LB_PASSTHROUGH, LB_LEAST_REQUEST};

/* A sub-object kept as a node for the work that will enforce it: its shape is checked and
 * the operator is told it has no effect yet. */
static bool dr_deferred(struct diag *d, struct node *n, bool seq, struct node **out)
{
	if (n == NULL)
		return true;
	if (seq ? !node_want_seq(d, n) : !node_want_map(d, n))
		return false;
	node_mark_used(n);
	diag_warn(d, n, "%s is accepted but not enforced yet", n->key);
	*out = n;
	return true;
}

static bool dr_load_balancer(struct pool *p, struct diag *d, struct node *n,
			     struct traffic_policy *tp)
{
	struct node *simple, *ch, *x;
	bool ok = true;
	int i;

	if (!node_want_map(d, n))
		return false;
	simple = node_get(n, "simple");
	ch = node_get(n, "consistentHash");
	if (simple != NULL) {
		if (node_enum(d, simple, dr_simple_names, &i))
			tp->lb.simple = dr_simple_values[i];
		else
			ok = false;
	}
	if (simple != NULL && ch != NULL) {
		diag_error(d, ch, "only one of simple or consistentHash may be set");
		ok = false;
	}
	ok &= dr_policy_consistent_hash(p, d, ch, &tp->lb.hash);
	ok &= dr_policy_locality(p, d, node_get(n, "localityLbSetting"), &tp->lb.locality);
	if ((x = node_get(n, "warmupDurationSecs")) != NULL) {
		ok &= cfg_decode_duration(d, x, 1000, false, &tp->lb.warmup_us);
	}
	node_check_unknown(d, n);
	return ok;
}

static const char *const dr_tls_modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};

/* ClientTLSSettings: the shape and the mode here, for every rule; the fields and their files
 * are decoded by link when a served route needs the cluster (tls_client_ctx_new), so a rule
 * no gateway uses never has its files read.  Not marked used: link reports unknown fields. */
static bool dr_tls(struct diag *d, struct node *n, struct node **out)
{
	struct node *mode;
	int m;

	if (n == NULL)
		return true;
	if (n->type == NODE_NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	if ((mode = node_get(n, "mode")) != NULL && !node_enum(d, mode, dr_tls_modes, &m))
		return false;
	*out = n;
	return true;
}

static bool dr_traffic_policy(struct pool *p, struct diag *d, struct node *n,
			      struct traffic_policy *tp, bool port_level);

/* portLevelSettings[]: port.number and the per-port subset of a traffic policy.  A port named
 * twice: Istio applies the first entry, so the second is reported and dropped. */
static bool dr_port_level(struct pool *p, struct diag *d, struct node *seq,
			  struct traffic_policy *tp)
{
	bool ok = true;

	if (seq == NULL)
		return true;
	if (!node_want_seq(d, seq))
		return false;
	tp->port_level_settings = seq;
	tp->ports = pool_calloc(p, seq->n ? seq->n : 1, sizeof(*tp->ports));
	for (size_t i = 0; i < seq->n; i++) {
		struct port_traffic_policy *pp = &tp->ports[tp->nports];
		struct node *it = seq->vals[i], *port, *num = NULL;
		bool fields_ok;
		size_t j;

		memset(pp, 0, sizeof(*pp));
		if (!node_want_map(d, it)) {
			ok = false;
			continue;
		}
		pp->node = it;
		port = cfg_require(d, it, "port");
		if (port != NULL && node_want_map(d, port)) {
			num = cfg_require(d, port, "number");
			node_check_unknown(d, port);
		}
		/* the entry's fields are checked even when its port is wrong */
		fields_ok = dr_traffic_policy(p, d, it, &pp->policy, true);
		if (!fields_ok || num == NULL || !cfg_decode_port(d, num, &pp->port)) {
			ok = false;
			continue;
		}
		for (j = 0; j < tp->nports; j++)
			if (tp->ports[j].port == pp->port)
				break;
		if (j < tp->nports) {
			diag_warn(d, num,
				  "port %u already has settings (entry %zu): this entry is ignored",
				  pp->port, j);
			continue;
		}
		tp->nports++;
	}
	return ok;
}

static bool dr_traffic_policy(struct pool *p, struct diag *d, struct node *n,
			      struct traffic_policy *tp, bool port_level)
{
	struct node *lb;
	bool ok = true;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	tp->given = true;
	if (n->n == (port_level && node_get(n, "port") != NULL ? 1u : 0u)) {
		diag_error(d, n, "%s must have at least one field",
			   port_level ? "port traffic policy" : "traffic policy");
		return false;
	}
	if ((lb = node_get(n, "loadBalancer")) != NULL)
		ok &= dr_load_balancer(p, d, lb, tp);
	ok &= dr_policy_connection_pool(d, node_get(n, "connectionPool"), &tp->connection_pool);
	ok &= dr_policy_outlier(d, node_get(n, "outlierDetection"), &tp->outlier);
	ok &= dr_tls(d, node_get(n, "tls"), &tp->tls);
	if (!port_level) {
		ok &= dr_port_level(p, d, node_get(n, "portLevelSettings"), tp);
		ok &= dr_deferred(d, node_get(n, "proxyProtocol"), false, &tp->proxy_protocol);
		ok &= dr_deferred(d, node_get(n, "tunnel"), false, &tp->tunnel);
	}
	node_check_unknown(d, n);
	if (tp->tunnel != NULL && tp->proxy_protocol != NULL) {
		diag_error(d, n, "tunnel and proxyProtocol must not be set together");
		ok = false;
	}
	return ok;
}

static bool dr_subset(struct pool *p, struct diag *d, struct node *n, struct dr_subset *s)
{
	struct node *name;
	bool ok = true;

	memset(s, 0, sizeof(*s));
	if (!node_want_map(d, n))
		return false;
	s->node = n;
	name = cfg_require(d, n, "name");
	ok &= cfg_decode_labels(p, d, node_get(n, "labels"), &s->labels);
	ok &= dr_traffic_policy(p, d, node_get(n, "trafficPolicy"), &s->policy, false);
	node_check_unknown(d, n);
	if (name == NULL || !node_str(d, name, &s->name))
		return false;
	if (*s->name == '\0') {
		diag_error(d, name, "subset name cannot be empty");
		ok = false;
	} else if (!cfg_is_dns_label(s->name)) {
		diag_error(d, name, "subset name is invalid: \"%s\"", s->name);
		ok = false;
	}
	return ok;
}

static void dr_workload_selector(struct pool *p, struct diag *d, struct node *n,
				 struct kv_list *out)
{
	if (n == NULL || !node_want_map(d, n))
		return;
	cfg_decode_labels(p, d, node_get(n, "matchLabels"), out);
	node_check_unknown(d, n);
	if (out->n == 0)
		diag_warn(d, n, "workload selector specified without labels");
}

void cfg_dr_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct node *host, *subsets, *ws;
	int errors = d->nerrors;
	struct cfg_dr *dr;
	const char *s;
	char why[160];
	size_t i, j;

	dr = pool_alloc(p, sizeof(*dr));
	dr->meta = *meta;
	host = cfg_require(d, spec, "host");
	dr_traffic_policy(p, d, node_get(spec, "trafficPolicy"), &dr->policy, false);
	subsets = node_get(spec, "subsets");
	cfg_decode_export_to(p, d, node_get(spec, "exportTo"), meta->ns, false, &dr->export_to);
	ws = node_get(spec, "workloadSelector");
	node_check_unknown(d, spec);

	if (host != NULL && node_str(d, host, &s)) {
		const char *h = cfg_lower(p, s);

		if (!cfg_check_host(h, CFG_HOST_WILDCARD, why, sizeof(why))) {
			diag_error(d, host, "%s", why);
		} else {
			dr->host = s;
			dr->fqdn = cfg_expand_host(p, h, meta->ns);
		}
	}
	if (subsets != NULL && node_want_seq(d, subsets)) {
		dr->subsets = pool_calloc(p, subsets->n ? subsets->n : 1, sizeof(*dr->subsets));
		for (i = 0; i < subsets->n; i++) {
			struct dr_subset *sub = &dr->subsets[dr->nsubsets];

			if (!dr_subset(p, d, subsets->vals[i], sub))
				continue;
			for (j = 0; j < dr->nsubsets; j++) {
				if (strcmp(dr->subsets[j].name, sub->name) == 0) {
					diag_error(d, node_get(sub->node, "name"),
						   "duplicate subset names: %s", sub->name);
					break;
				}
			}
			dr->nsubsets++;
		}
	}
	dr_workload_selector(p, d, ws, &dr->workload_selector);
	if (ws != NULL && dr->export_to.n > 0 &&
	    !(dr->export_to.n == 1 &&
	      (strcmp(dr->export_to.v[0], ".") == 0 || strcmp(dr->export_to.v[0], meta->ns) == 0)))
		diag_error(d, node_get(spec, "exportTo"),
			   "destination rule with workload selector "
			   "cannot have exportTo beyond current namespace");

	if (d->nerrors != errors)
		return;
	set->drs = cfg_append(p, set->drs, set->ndrs, sizeof(*set->drs));
	set->drs[set->ndrs++] = dr;
}
