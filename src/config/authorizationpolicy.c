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

/* AuthorizationPolicy (security.istio.io): Istio's fields and validation rules, decoded
 * into the rules authz.c evaluates.  Which policies apply to this appliance follows
 * Istio's workload selection (ap_apply); a dry run (annotation istio.io/dry-run) is kept
 * apart, evaluated and reported but never enforced.  CUSTOM asks an extension provider of
 * the main config (extauthz.c); the fields that need what meshgate does not have yet are
 * refused, each with its reason. */

static const char *const ap_actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};

/* Values follow Istio's matching (authz.c): "*", "*suffix", "prefix*", else exact.  Paths
 * may instead be templates, whose operators take whole segments: "{*}" one segment,
 * "{**}" (last only) any number; no other '*' then. */
static bool ap_template_ok(const char *v)
{
	const char *b;

	if (strchr(v, '{') == NULL)
		return true;
	for (b = strchr(v, '{'); b != NULL; b = strchr(b + 1, '{')) {
		size_t op = strncmp(b, "{**}", 4) == 0 ? 4 : strncmp(b, "{*}", 3) == 0 ? 3 : 0;

		if (op == 0 || b == v || b[-1] != '/' || (b[op] != '/' && b[op] != '\0') ||
		    (op == 4 && b[op] != '\0'))
			return false;
	}
	/* no '*', '{' or '}' outside the operators */
	for (const char *c = v; *c != '\0'; c++) {
		if (*c == '{') {
			c += c[2] == '*' ? 3 : 2;
			continue;
		}
		if (*c == '*' || *c == '}')
			return false;
	}
	return true;
}

static bool ap_value_ok(struct diag *d, struct node *n, const char *v, bool path)
{
	if (*v == '\0') {
		diag_error(d, n, "empty value");
		return false;
	}
	if (path && !ap_template_ok(v)) {
		diag_error(d, n,
			   "\"%s\": a path template's operators are whole segments, {*} one and "
			   "{**} (last only) any number, with no other '*'",
			   v);
		return false;
	}
	return true;
}

static bool ap_values(struct pool *p, struct diag *d, struct node *map, const char *key,
		      struct str_list *out, bool lower, bool path, bool *any)
{
	struct node *n = node_get(map, key);
	bool ok;

	if (n == NULL)
		return true;
	ok = cfg_decode_str_list(p, d, n, out, lower);
	for (size_t i = 0; ok && i < out->n; i++)
		ok = ap_value_ok(d, n->vals[i], out->v[i], path);
	if (ok && out->n == 0) {
		diag_error(d, n, "must not be empty when given");
		ok = false;
	}
	*any = true;
	return ok;
}

static bool ap_cidrs(struct pool *p, struct diag *d, struct node *map, const char *key,
		     struct ap_cidrs *out, bool *any)
{
	struct node *n = node_get(map, key);
	bool ok = true;

	if (n == NULL)
		return true;
	*any = true;
	if (!node_want_seq(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	for (size_t i = 0; i < n->n; i++) {
		const char *s;

		if (!node_str(d, n->vals[i], &s)) {
			ok = false;
		} else if (!cidr_parse(s, &out->v[out->n])) {
			diag_error(d, n->vals[i], "\"%s\" is not an IP address or CIDR prefix", s);
			ok = false;
		} else {
			out->n++;
		}
	}
	if (ok && out->n == 0) {
		diag_error(d, n, "must not be empty when given");
		ok = false;
	}
	return ok;
}

static bool ap_ports(struct pool *p, struct diag *d, struct node *map, const char *key,
		     struct str_list *out, bool *any)
{
	struct node *n = node_get(map, key);
	bool ok;

	if (n == NULL)
		return true;
	*any = true;
	ok = cfg_decode_str_list(p, d, n, out, false);
	for (size_t i = 0; ok && i < out->n; i++) {
		char *end;
		unsigned long v = strtoul(out->v[i], &end, 10);

		if (out->v[i][0] < '0' || out->v[i][0] > '9' || *end != '\0' || v == 0 ||
		    v > 65535) {
			diag_error(d, n->vals[i], "port must be in 1..65535, got \"%s\"",
				   out->v[i]);
			ok = false;
		}
	}
	return ok;
}

static bool ap_source(struct pool *p, struct diag *d, struct node *n, struct ap_source *src,
		      bool *http_only)
{
	struct node *s = node_get(n, "source");
	bool ok = true, any = false, reqp = false;

	node_check_unknown(d, n);
	if (s == NULL) {
		diag_error(d, n, "source is required");
		return false;
	}
	if (!node_want_map(d, s))
		return false;
	ok &= ap_cidrs(p, d, s, "ipBlocks", &src->ip_blocks, &any);
	ok &= ap_cidrs(p, d, s, "notIpBlocks", &src->not_ip_blocks, &any);
	ok &= ap_cidrs(p, d, s, "remoteIpBlocks", &src->remote_ip_blocks, &any);
	ok &= ap_cidrs(p, d, s, "notRemoteIpBlocks", &src->not_remote_ip_blocks, &any);
	ok &= ap_values(p, d, s, "principals", &src->principals, false, false, &any);
	ok &= ap_values(p, d, s, "notPrincipals", &src->not_principals, false, false, &any);
	ok &= ap_values(p, d, s, "namespaces", &src->namespaces, false, false, &any);
	ok &= ap_values(p, d, s, "notNamespaces", &src->not_namespaces, false, false, &any);
	ok &=
	    ap_values(p, d, s, "requestPrincipals", &src->request_principals, false, false, &reqp);
	ok &= ap_values(p, d, s, "notRequestPrincipals", &src->not_request_principals, false, false,
			&reqp);
	node_check_unknown(d, s);
	if (reqp)
		*http_only = true;
	if (ok && !any && !reqp) {
		diag_error(d, s, "source must not be empty");
		ok = false;
	}
	return ok;
}

static bool ap_operation(struct pool *p, struct diag *d, struct node *n, struct ap_operation *op,
			 bool *http_only)
{
	struct node *o = node_get(n, "operation");
	bool ok = true, any = false, http = false;

	node_check_unknown(d, n);
	if (o == NULL) {
		diag_error(d, n, "operation is required");
		return false;
	}
	if (!node_want_map(d, o))
		return false;
	ok &= ap_ports(p, d, o, "ports", &op->ports, &any);
	ok &= ap_ports(p, d, o, "notPorts", &op->not_ports, &any);
	ok &= ap_values(p, d, o, "hosts", &op->hosts, true, false, &http);
	ok &= ap_values(p, d, o, "notHosts", &op->not_hosts, true, false, &http);
	ok &= ap_values(p, d, o, "methods", &op->methods, false, false, &http);
	ok &= ap_values(p, d, o, "notMethods", &op->not_methods, false, false, &http);
	ok &= ap_values(p, d, o, "paths", &op->paths, false, true, &http);
	ok &= ap_values(p, d, o, "notPaths", &op->not_paths, false, true, &http);
	node_check_unknown(d, o);
	if (http)
		*http_only = true;
	if (ok && !any && !http) {
		diag_error(d, o, "operation must not be empty");
		ok = false;
	}
	return ok;
}

/* request.auth.claims[name] or, nested, request.auth.claims[outer][inner]... */
static bool ap_claim_key(struct pool *p, struct diag *d, struct node *n, const char *key,
			 struct ap_condition *c, bool *http_only)
{
	const char *s = key + 19; /* at the first '[' */
	size_t parts = 0;

	for (const char *b = s; *b == '['; b = strchr(b, ']') + 1) {
		const char *e = strchr(b, ']');

		if (e == NULL || e == b + 1 || memchr(b + 1, '[', (size_t)(e - b - 1)) != NULL)
			break;
		parts++;
		if (e[1] == '\0') {
			c->key = APK_AUTH_CLAIM;
			c->claim_path = pool_calloc(p, parts, sizeof(*c->claim_path));
			for (b = s; c->nclaim_path < parts; b = strchr(b, ']') + 1)
				c->claim_path[c->nclaim_path++] =
				    pool_strndup(p, b + 1, (size_t)(strchr(b, ']') - b - 1));
			*http_only = true;
			return true;
		}
	}
	diag_error(d, n,
		   "key %s: a claim is named as request.auth.claims[name], nested as "
		   "request.auth.claims[outer][inner]",
		   key);
	return false;
}

/* The attribute a `when` key names. */
static bool ap_key(struct pool *p, struct diag *d, struct node *n, const char *key,
		   struct ap_condition *c, bool *http_only)
{
	static const struct {
		const char *name;
		enum ap_key key;
	} keys[] = {
	    {"source.ip", APK_SOURCE_IP},
	    {"remote.ip", APK_REMOTE_IP},
	    {"source.principal", APK_SOURCE_PRINCIPAL},
	    {"source.namespace", APK_SOURCE_NAMESPACE},
	    {"destination.ip", APK_DEST_IP},
	    {"destination.port", APK_DEST_PORT},
	    {"connection.sni", APK_SNI},
	    {"request.auth.principal", APK_AUTH_PRINCIPAL},
	    {"request.auth.audiences", APK_AUTH_AUDIENCES},
	    {"request.auth.presenter", APK_AUTH_PRESENTER},
	};
	size_t len = strlen(key);

	if (strncmp(key, "request.headers[", 16) == 0 && len > 17 && key[len - 1] == ']') {
		c->key = APK_HEADER;
		c->header = cfg_lower(p, pool_strndup(p, key + 16, len - 17));
		*http_only = true;
		return true;
	}
	if (strncmp(key, "request.auth.claims[", 20) == 0)
		return ap_claim_key(p, d, n, key, c, http_only);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].name) == 0) {
			c->key = keys[i].key;
			if (c->key == APK_AUTH_PRINCIPAL || c->key == APK_AUTH_AUDIENCES ||
			    c->key == APK_AUTH_PRESENTER)
				*http_only = true;
			return true;
		}
	if (strncmp(key, "experimental.", 13) == 0)
		diag_error(d, n, "key %s: experimental keys are not supported", key);
	else
		diag_error(d, n, "unknown key %s", key);
	return false;
}

static bool ap_condition(struct pool *p, struct diag *d, struct node *n, struct ap_condition *c,
			 bool *http_only)
{
	const char *key;
	struct node *k = node_get(n, "key");
	bool ok, any = false, ip;

	if (!node_want_map(d, n))
		return false;
	if (k == NULL) {
		diag_error(d, n, "key is required");
		node_check_unknown(d, n);
		return false;
	}
	if (!node_str(d, k, &key) || !ap_key(p, d, k, key, c, http_only)) {
		node_mark_used(node_get(n, "values"));
		node_mark_used(node_get(n, "notValues"));
		node_check_unknown(d, n);
		return false;
	}
	ip = c->key == APK_SOURCE_IP || c->key == APK_REMOTE_IP || c->key == APK_DEST_IP;
	if (ip) {
		ok = ap_cidrs(p, d, n, "values", &c->ips, &any);
		ok &= ap_cidrs(p, d, n, "notValues", &c->not_ips, &any);
	} else if (c->key == APK_DEST_PORT) {
		ok = ap_ports(p, d, n, "values", &c->values, &any);
		ok &= ap_ports(p, d, n, "notValues", &c->not_values, &any);
	} else {
		ok = ap_values(p, d, n, "values", &c->values, c->key == APK_SNI, false, &any);
		ok &=
		    ap_values(p, d, n, "notValues", &c->not_values, c->key == APK_SNI, false, &any);
	}
	node_check_unknown(d, n);
	if (ok && !any) {
		diag_error(d, n, "values or notValues is required");
		ok = false;
	}
	return ok;
}

/* Room for the elements of a list (from, to, when, rules): false when n is not a list. */
static bool ap_list(struct pool *p, struct diag *d, struct node *n, size_t size, void **out,
		    size_t *count)
{
	*out = NULL;
	*count = 0;
	if (n == NULL)
		return true;
	if (!node_want_seq(d, n))
		return false;
	*count = n->n;
	*out = pool_calloc(p, n->n ? n->n : 1, size);
	return true;
}

static bool ap_rule(struct pool *p, struct diag *d, struct node *n, struct ap_rule *r)
{
	struct node *from, *to, *when;
	bool ok = true;

	if (!node_want_map(d, n))
		return false;
	from = node_get(n, "from");
	to = node_get(n, "to");
	when = node_get(n, "when");
	ok &= ap_list(p, d, from, sizeof(*r->from), (void **)&r->from, &r->nfrom);
	ok &= ap_list(p, d, to, sizeof(*r->to), (void **)&r->to, &r->nto);
	ok &= ap_list(p, d, when, sizeof(*r->when), (void **)&r->when, &r->nwhen);
	for (size_t i = 0; i < r->nfrom; i++)
		ok &= node_want_map(d, from->vals[i]) &&
		      ap_source(p, d, from->vals[i], &r->from[i], &r->http_only);
	for (size_t i = 0; i < r->nto; i++)
		ok &= node_want_map(d, to->vals[i]) &&
		      ap_operation(p, d, to->vals[i], &r->to[i], &r->http_only);
	for (size_t i = 0; i < r->nwhen; i++)
		ok &= ap_condition(p, d, when->vals[i], &r->when[i], &r->http_only);
	node_check_unknown(d, n);
	return ok;
}

/* metadata.annotations["istio.io/dry-run"] (load.c keeps it for this kind only), as Istio's
 * validation takes it: the words of Go's strconv.ParseBool, on an ALLOW or DENY policy. */
static bool ap_dry_run(struct diag *d, const struct cfg_meta *meta, enum ap_action action,
		       bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "t", "T", "1", NULL};
	static const char *const no[] = {"false", "False", "FALSE", "f", "F", "0", NULL};
	struct node *n;
	bool found = false;

	*out = false;
	if (meta->dry_run == NULL)
		return true;
	n = node_get(node_get(node_get(meta->node, "metadata"), "annotations"),
		     CFG_DRY_RUN_ANNOTATION);
	if (action == AP_AUDIT) {
		diag_error(d, n,
			   "a dry run is for action ALLOW or DENY only (Istio refuses it on "
			   "AUDIT)");
		return false;
	}
	for (size_t i = 0; !found && yes[i] != NULL; i++) {
		if (strcmp(meta->dry_run, yes[i]) == 0)
			found = *out = true;
		else if (strcmp(meta->dry_run, no[i]) == 0)
			found = true;
	}
	if (!found) {
		diag_error(d, n, "must be \"true\" or \"false\", got \"%s\"", meta->dry_run);
		return false;
	}
	/* Never enforce what the operator meant to try out: refused, not ignored. */
	if (*out && action == AP_CUSTOM) {
		diag_error(d, n,
			   "a dry run of a CUSTOM policy is not supported by meshgate: its "
			   "authorizer would be asked and obeyed");
		return false;
	}
	/* Unquoted, all but t, T, f and F are a YAML boolean or number, which Kubernetes
	 * refuses as an annotation (a string): the file would not apply to a cluster. */
	if (n != NULL && !n->quoted &&
	    (meta->dry_run[1] != '\0' || strchr("tTfF", meta->dry_run[0]) == NULL)) {
		diag_error(d, n,
			   "must be a quoted string (\"%s\"): Kubernetes refuses a YAML boolean "
			   "or number as an annotation",
			   meta->dry_run);
		return false;
	}
	return true;
}

/* action CUSTOM: provider.name names an extension provider of the main config (Istio's
 * MeshConfig.extensionProviders), the external authorizer the policy's requests go to. */
static bool ap_provider(struct diag *d, const struct cfg_set *set, struct node *act,
			struct node *provider, struct cfg_ap *ap)
{
	const struct cfg_main *m = &set->main;
	struct node *name;
	const char *s;

	if (provider == NULL) {
		diag_error(d, act,
			   "action CUSTOM needs provider.name (an extension provider of the main "
			   "config's extensionProviders)");
		return false;
	}
	if (!node_want_map(d, provider))
		return false;
	ap->provider_node = provider;
	name = cfg_require(d, provider, "name");
	node_check_unknown(d, provider);
	if (name == NULL || !node_str(d, name, &s))
		return false;
	for (size_t i = 0; i < m->next_authz; i++)
		if (strcmp(m->ext_authz[i].name, s) == 0) {
			ap->provider = &m->ext_authz[i];
			return true;
		}
	for (size_t i = 0; i < m->unserved_providers.n; i++)
		if (strcmp(m->unserved_providers.v[i], s) == 0) {
			diag_error(d, name,
				   "extension provider %s is of a kind meshgate does not serve: "
				   "only envoyExtAuthzHttp and envoyExtAuthzGrpc authorizers are",
				   s);
			return false;
		}
	for (size_t i = 0; i < m->nfile_logs; i++)
		if (strcmp(m->file_logs[i].name, s) == 0) {
			diag_error(d, name,
				   "extension provider %s is an access log (envoyFileAccessLog), "
				   "not an authorizer",
				   s);
			return false;
		}
	if (m->next_authz == 0)
		diag_error(d, name,
			   "no extension provider %s: the main config has no extensionProviders",
			   s);
	else
		diag_error(d, name,
			   "no extension provider %s in the main config's extensionProviders", s);
	return false;
}

void cfg_ap_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct cfg_ap *ap = pool_alloc(p, sizeof(*ap));
	struct node *sel, *act, *rules, *provider;
	bool ok = true;
	int action = AP_ALLOW;

	ap->meta = *meta;
	ap->denied =
	    pool_printf(p, "rbac_access_denied_matched_policy[%s.%s]", meta->ns, meta->name);
	if ((sel = node_get(spec, "selector")) != NULL && node_want_map(d, sel)) {
		ap->has_selector = true;
		ok &= cfg_decode_labels(p, d, node_get(sel, "matchLabels"), &ap->selector);
		node_check_unknown(d, sel);
	}
	ok &= cfg_no_target_ref(d, spec, "selector");
	if ((act = node_get(spec, "action")) != NULL)
		ok &= node_enum(d, act, ap_actions, &action);
	ap->action = (enum ap_action)action;
	provider = node_get(spec, "provider");
	if (ap->action == AP_CUSTOM)
		ok &= ap_provider(d, set, act, provider, ap);
	else if (provider != NULL) {
		node_mark_used(provider);
		diag_error(d, provider, "provider is only for action CUSTOM");
		ok = false;
	}
	ok &= ap_dry_run(d, meta, ap->action, &ap->dry_run);
	rules = node_get(spec, "rules");
	ok &= ap_list(p, d, rules, sizeof(*ap->rules), (void **)&ap->rules, &ap->nrules);
	for (size_t i = 0; i < ap->nrules; i++)
		ok &= ap_rule(p, d, rules->vals[i], &ap->rules[i]);
	node_check_unknown(d, spec);
	if (!ok)
		return;
	set->aps = cfg_append(p, set->aps, set->naps, sizeof(*set->aps));
	set->aps[set->naps++] = ap;
}

/* Istio's selection: a policy applies to the workloads its selector matches (all of its
 * labels among this appliance's), in the appliance's namespace, or in every namespace
 * from the root namespace; one without a selector applies to its whole namespace
 * (mesh-wide from the root namespace).  Unlike PeerAuthentication, every applicable
 * policy counts. */
bool cfg_policy_selects(const struct cfg_set *set, const struct cfg_meta *meta, bool has_selector,
			const struct kv_list *selector)
{
	if (strcmp(meta->ns, set->main.ns) != 0 && strcmp(meta->ns, set->main.root_namespace) != 0)
		return false;
	for (size_t k = 0; has_selector && k < selector->n; k++) {
		bool found = false;

		for (size_t j = 0; j < set->main.labels.n && !found; j++)
			found = strcmp(set->main.labels.v[j].key, selector->v[k].key) == 0 &&
				strcmp(set->main.labels.v[j].value, selector->v[k].value) == 0;
		if (!found)
			return false;
	}
	return true;
}

static struct node *ap_spec(const struct cfg_ap *ap)
{
	struct node *spec = node_get(ap->meta.node, "spec");

	return spec != NULL ? spec : ap->meta.node;
}

/* What evaluating the policy needs beyond the request itself (authz_request). */
static void ap_needs(const struct cfg_ap *ap, struct cfg_set *set)
{
	for (size_t i = 0; i < ap->nrules; i++) {
		const struct ap_rule *r = &ap->rules[i];

		for (size_t j = 0; j < r->nfrom; j++)
			if (r->from[j].principals.n || r->from[j].not_principals.n ||
			    r->from[j].namespaces.n || r->from[j].not_namespaces.n)
				set->ap_needs_principal = true;
		for (size_t j = 0; j < r->nwhen; j++) {
			enum ap_key k = r->when[j].key;

			if (k == APK_SOURCE_PRINCIPAL || k == APK_SOURCE_NAMESPACE)
				set->ap_needs_principal = true;
			if (k == APK_DEST_IP)
				set->ap_needs_local = true;
		}
	}
}

static bool ap_uses_request_auth(const struct ap_rule *r)
{
	for (size_t s = 0; s < r->nfrom; s++)
		if (r->from[s].request_principals.n || r->from[s].not_request_principals.n)
			return true;
	for (size_t w = 0; w < r->nwhen; w++)
		if (r->when[w].key >= APK_AUTH_PRINCIPAL)
			return true;
	return false;
}

/* Does the appliance serve TCP or TLS-passthrough connections (checked per connection)? */
static bool ap_l4_served(const struct cfg_set *set)
{
	for (size_t g = 0; g < set->ngateways; g++)
		for (size_t i = 0; set->gateways[g]->served && i < set->gateways[g]->nservers;
		     i++) {
			const struct gw_server *srv = &set->gateways[g]->servers[i];

			if (srv->protocol == GWP_TCP ||
			    ((srv->protocol == GWP_TLS || srv->protocol == GWP_HTTPS) &&
			     srv->tls.given && srv->tls.mode == TLSM_PASSTHROUGH))
				return true;
		}
	return false;
}

void ap_apply(struct diag *d, struct pool *p, struct cfg_set *set)
{
	bool l4 = ap_l4_served(set);

	for (size_t i = 0; i < set->naps; i++) {
		const struct cfg_ap *ap = set->aps[i];
		const struct cfg_ap ***list;
		size_t *n;

		if (!cfg_policy_selects(set, &ap->meta, ap->has_selector, &ap->selector)) {
			diag_notice(d, ap_spec(ap),
				    "does not select this appliance (namespace %s, labels of the "
				    "main config; mesh-wide policies come from %s)",
				    set->main.ns, set->main.root_namespace);
			continue;
		}
		if (ap->action == AP_AUDIT) {
			diag_notice(d, ap_spec(ap), "AUDIT policies change no decision");
			continue;
		}
		if (ap->action == AP_CUSTOM) {
			/* Istio: one provider per workload */
			if (set->ap_provider != NULL && set->ap_provider != ap->provider) {
				diag_error(
				    d, ap->provider_node,
				    "provider %s: the CUSTOM policies that apply here already "
				    "ask %s, and only one provider may apply to a workload",
				    ap->provider->name, set->ap_provider->name);
				continue;
			}
			set->ap_provider = ap->provider;
		}
		if (ap->dry_run) { /* Envoy's shadow rules: evaluated, never enforced */
			list = ap->action == AP_DENY ? &set->ap_shadow_deny : &set->ap_shadow_allow;
			n = ap->action == AP_DENY ? &set->nap_shadow_deny : &set->nap_shadow_allow;
		} else if (ap->action == AP_CUSTOM) {
			list = &set->ap_custom;
			n = &set->nap_custom;
		} else {
			list = ap->action == AP_DENY ? &set->ap_deny : &set->ap_allow;
			n = ap->action == AP_DENY ? &set->nap_deny : &set->nap_allow;
		}
		*list = cfg_append(p, (void *)*list, *n, sizeof(**list));
		(*list)[(*n)++] = ap;
		ap_needs(ap, set);
		if (ap->action == AP_CUSTOM && l4)
			diag_warn(d, ap_spec(ap),
				  "CUSTOM policies are checked on HTTP requests only: TCP and TLS "
				  "passthrough connections are not sent to the authorizer");
		for (size_t r = 0; l4 && ap->action == AP_DENY && r < ap->nrules; r++)
			if (ap->rules[r].http_only)
				diag_warn(d, ap_spec(ap),
					  "rules[%zu] uses HTTP-only fields: on TCP and TLS "
					  "passthrough connections, as in Istio, it is judged "
					  "without them and %s more",
					  r, ap->dry_run ? "would deny" : "denies");
		for (size_t r = 0; set->nra_rules == 0 && r < ap->nrules; r++)
			if (ap_uses_request_auth(&ap->rules[r]))
				diag_warn(d, ap_spec(ap),
					  "rules[%zu] looks at the request's JWT, but no "
					  "RequestAuthentication applies here: no request has one",
					  r);
	}
}
