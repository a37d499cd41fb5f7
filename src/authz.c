#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authz.h"
#include "router.h"

/* Istio's matchers (pilot's authz model) compile each value to an Envoy string matcher:
 * "*" is presence, a leading '*' a suffix match, a trailing '*' a prefix match. */
bool authz_value_match(const char *pattern, const char *v, size_t len, bool nocase)
{
	size_t plen = strlen(pattern);
	int (*cmp)(const char *, const char *, size_t) = nocase ? strncasecmp : strncmp;

	if (v == NULL)
		return false;
	if (plen == 1 && pattern[0] == '*')
		return true;
	if (pattern[0] == '*')
		return len >= plen - 1 && cmp(v + len - (plen - 1), pattern + 1, plen - 1) == 0;
	if (pattern[plen - 1] == '*')
		return len >= plen - 1 && cmp(v, pattern, plen - 1) == 0;
	return len == plen && cmp(v, pattern, len) == 0;
}

/* A path template (validated at load): literal bytes, "{*}" one non-empty segment, "{**}"
 * the rest of the path. */
static bool template_match(const char *t, const char *p, size_t len)
{
	size_t i = 0;

	while (*t != '\0') {
		if (strncmp(t, "{**}", 4) == 0)
			return true;
		if (strncmp(t, "{*}", 3) == 0) {
			size_t start = i;

			while (i < len && p[i] != '/')
				i++;
			if (i == start)
				return false;
			t += 3;
			continue;
		}
		if (i >= len || p[i] != *t)
			return false;
		i++;
		t++;
	}
	return i == len;
}

static bool any_path(const struct str_list *l, const char *v, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strchr(l->v[i], '{') != NULL ? template_match(l->v[i], v, len)
						 : authz_value_match(l->v[i], v, len, false))
			return true;
	return false;
}

static bool any_value(const struct str_list *l, const char *v, size_t len, bool nocase)
{
	for (size_t i = 0; i < l->n; i++)
		if (authz_value_match(l->v[i], v, len, nocase))
			return true;
	return false;
}

/* A positive list must match (an absent attribute never does); a negative one must not. */
static bool values_ok(const struct str_list *yes, const struct str_list *no, const char *v,
		      size_t len, bool nocase)
{
	if (yes->n > 0 && !any_value(yes, v, len, nocase))
		return false;
	return no->n == 0 || !any_value(no, v, len, nocase);
}

static bool any_cidr(const struct ap_cidrs *c, const struct sockaddr *sa)
{
	for (size_t i = 0; i < c->n; i++)
		if (cidr_has(&c->v[i], sa))
			return true;
	return false;
}

static bool cidrs_ok(const struct ap_cidrs *yes, const struct ap_cidrs *no,
		     const struct sockaddr *sa)
{
	if (yes->n > 0 && !any_cidr(yes, sa))
		return false;
	return no->n == 0 || !any_cidr(no, sa);
}

/* The namespace of an Istio identity "td/ns/NAME/sa/ACCOUNT". */
static const char *principal_ns(const char *principal, size_t *len)
{
	const char *ns = principal != NULL ? strstr(principal, "/ns/") : NULL;
	const char *end;

	if (ns == NULL)
		return NULL;
	ns += 4;
	end = strchr(ns, '/');
	*len = end != NULL ? (size_t)(end - ns) : strlen(ns);
	return ns;
}

static bool str_ok(const struct str_list *yes, const struct str_list *no, const char *v)
{
	return values_ok(yes, no, v, v != NULL ? strlen(v) : 0, false);
}

static bool source_ok(const struct ap_source *s, const struct authz_request *r)
{
	const char *ns;
	size_t nslen = 0;

	if (!cidrs_ok(&s->ip_blocks, &s->not_ip_blocks, r->peer) ||
	    !cidrs_ok(&s->remote_ip_blocks, &s->not_remote_ip_blocks,
		      r->remote != NULL ? r->remote : r->peer) ||
	    !str_ok(&s->principals, &s->not_principals, r->principal))
		return false;
	ns = principal_ns(r->principal, &nslen);
	if (!values_ok(&s->namespaces, &s->not_namespaces, ns, nslen, false))
		return false;
	/* the verified JWT's "iss/sub" (RequestAuthentication); none without a token */
	if (r->http && !str_ok(&s->request_principals, &s->not_request_principals,
			       r->auth != NULL ? r->auth->principal : NULL))
		return false;
	return true;
}

/* Hosts match the authority with or without its port, case-insensitively, as Istio's
 * host matcher does. */
static bool host_in(const struct str_list *l, const char *a, size_t len)
{
	size_t host = len;

	if (len > 0 && a[0] == '[') { /* [v6]:port */
		const char *close = memchr(a, ']', len);

		if (close != NULL && (size_t)(close - a) + 1 < len && close[1] == ':')
			host = (size_t)(close - a) + 1;
	} else {
		const char *colon = memchr(a, ':', len);

		if (colon != NULL)
			host = (size_t)(colon - a);
	}
	return any_value(l, a, len, true) || (host < len && any_value(l, a, host, true));
}

static bool operation_ok(const struct ap_operation *o, const struct authz_request *r)
{
	char port[8];
	int plen = snprintf(port, sizeof(port), "%u", r->port);

	if (!values_ok(&o->ports, &o->not_ports, port, (size_t)plen, false))
		return false;
	if (!r->http) /* the HTTP fields were judged by the caller (rule_ok) */
		return true;
	if (o->hosts.n > 0 &&
	    (r->authority == NULL || !host_in(&o->hosts, r->authority, r->authority_len)))
		return false;
	if (o->not_hosts.n > 0 && r->authority != NULL &&
	    host_in(&o->not_hosts, r->authority, r->authority_len))
		return false;
	if (!values_ok(&o->methods, &o->not_methods, r->method, r->method_len, false))
		return false;
	if (o->paths.n > 0 && (r->path == NULL || !any_path(&o->paths, r->path, r->path_len)))
		return false;
	return o->not_paths.n == 0 || r->path == NULL ||
	       !any_path(&o->not_paths, r->path, r->path_len);
}

/* Repeated fields are matched as one value joined with ",", as Envoy's header matchers
 * see them: "x-token: guest" plus "x-token: admin" is not "admin". */
static bool header_ok(const struct ap_condition *c, const struct authz_request *r, bool deny)
{
	size_t nlen = strlen(c->header), n = 0, len = 0;
	const struct msg_header *one = NULL;
	char *joined = NULL, *p;
	bool ok;

	for (size_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == nlen &&
		    strncasecmp(r->headers[i].name, c->header, nlen) == 0) {
			one = &r->headers[i];
			len += (n++ > 0 ? 1 : 0) + one->value_len;
		}
	if (n > 1) {
		/* bounded by the request head's size limit */
		if ((joined = p = malloc(len)) == NULL)
			return deny; /* out of memory: fail closed (a DENY matches, an ALLOW not) */
		for (size_t i = 0, k = 0; i < r->nheaders; i++)
			if (r->headers[i].name_len == nlen &&
			    strncasecmp(r->headers[i].name, c->header, nlen) == 0) {
				if (k++ > 0)
					*p++ = ',';
				memcpy(p, r->headers[i].value, r->headers[i].value_len);
				p += r->headers[i].value_len;
			}
	}
	ok = values_ok(&c->values, &c->not_values,
		       n == 0   ? NULL
		       : n == 1 ? one->value
				: joined,
		       n == 0 ? 0 : len, false);
	free(joined);
	return ok;
}

static bool claim_value_in(const char *v, size_t len, void *arg)
{
	return any_value(arg, v, len, false);
}

/* A claim of the request's verified JWT: one value, or each of a list's, against the
 * values (some must match) and notValues (none may).  No token or no such claim: only
 * notValues can hold. */
static bool claim_ok(const struct ap_condition *c, const struct authz_request *r)
{
	const struct jwt *j = r->auth != NULL ? r->auth->jwt : NULL;
	int i = -1;

	if (j != NULL)
		i = c->key == APK_AUTH_AUDIENCES ? j->aud
		    : c->key == APK_AUTH_PRESENTER
			? j->azp
			: jwt_claim_path(j, c->claim_path, c->nclaim_path);
	if (i < 0)
		return c->values.n == 0;
	if (c->values.n > 0 && !jwt_claim_any(j, i, claim_value_in, (void *)&c->values))
		return false;
	return c->not_values.n == 0 || !jwt_claim_any(j, i, claim_value_in, (void *)&c->not_values);
}

static bool condition_ok(const struct ap_condition *c, const struct authz_request *r, bool deny)
{
	char port[8];
	size_t len = 0;
	const char *v;

	switch (c->key) {
	case APK_HEADER:
		return header_ok(c, r, deny);
	case APK_SOURCE_IP:
		return cidrs_ok(&c->ips, &c->not_ips, r->peer);
	case APK_REMOTE_IP:
		return cidrs_ok(&c->ips, &c->not_ips, r->remote != NULL ? r->remote : r->peer);
	case APK_DEST_IP:
		return cidrs_ok(&c->ips, &c->not_ips, r->local);
	case APK_DEST_PORT:
		len = (size_t)snprintf(port, sizeof(port), "%u", r->port);
		return values_ok(&c->values, &c->not_values, port, len, false);
	case APK_SNI:
		return values_ok(&c->values, &c->not_values, r->sni,
				 r->sni != NULL ? strlen(r->sni) : 0, true);
	case APK_SOURCE_PRINCIPAL:
		return str_ok(&c->values, &c->not_values, r->principal);
	case APK_SOURCE_NAMESPACE:
		v = principal_ns(r->principal, &len);
		return values_ok(&c->values, &c->not_values, v, len, false);
	case APK_AUTH_PRINCIPAL:
		return str_ok(&c->values, &c->not_values,
			      r->auth != NULL ? r->auth->principal : NULL);
	case APK_AUTH_AUDIENCES:
	case APK_AUTH_PRESENTER:
	case APK_AUTH_CLAIM:
		return claim_ok(c, r);
	}
	return false;
}

/* A rule matches when any of its sources, any of its operations and all of its conditions
 * do (an absent part matches).  On a TCP connection a rule with HTTP-only fields never
 * matches in an ALLOW policy, and in a DENY policy is judged on its other fields: Istio's
 * choice, which fails closed both ways. */
static bool rule_ok(const struct ap_rule *rule, const struct authz_request *r, bool deny)
{
	bool any;

	if (!r->http && rule->http_only && !deny)
		return false;
	any = rule->nfrom == 0;
	for (size_t i = 0; i < rule->nfrom && !any; i++)
		any = source_ok(&rule->from[i], r);
	if (!any)
		return false;
	any = rule->nto == 0;
	for (size_t i = 0; i < rule->nto && !any; i++)
		any = operation_ok(&rule->to[i], r);
	if (!any)
		return false;
	for (size_t i = 0; i < rule->nwhen; i++) {
		const struct ap_condition *c = &rule->when[i];

		if (!r->http && (c->key == APK_HEADER || c->key >= APK_AUTH_PRINCIPAL))
			continue; /* DENY on TCP: only the other fields count */
		if (!condition_ok(c, r, deny))
			return false;
	}
	return true;
}

/* Whether one of the policy's rules matches; *rule says which. */
static bool policy_ok(const struct cfg_ap *ap, const struct authz_request *r, size_t *rule)
{
	for (size_t i = 0; i < ap->nrules; i++)
		if (rule_ok(&ap->rules[i], r, ap->action == AP_DENY)) {
			*rule = i;
			return true;
		}
	return false;
}

/* A shadow engine: the first of the policies (load order) that matches is the effective
 * one; an ALLOW engine allows when one does, a DENY engine denies when one does. */
static void shadow_eval(const struct cfg_ap *const *aps, size_t n, bool deny,
			const struct authz_request *r, struct authz_engine *e)
{
	e->ap = NULL;
	e->rule = 0;
	for (size_t i = 0; i < n && e->ap == NULL; i++)
		if (policy_ok(aps[i], r, &e->rule))
			e->ap = aps[i];
	e->verdict = (e->ap != NULL) == deny ? AUTHZ_DENIED : AUTHZ_ALLOWED;
}

void authz_request_http(struct authz_request *r, const struct route_request *rq)
{
	r->http = true;
	r->port = rq->port;
	r->method = rq->method;
	r->method_len = rq->method_len;
	r->path = rq->path;
	r->path_len = rq->path_len;
	r->authority = rq->authority;
	r->authority_len = rq->authority_len;
	r->headers = rq->headers;
	r->nheaders = rq->nheaders;
}

const struct cfg_ap *authz_custom(const struct cfg_set *set, const struct authz_request *r)
{
	/* a rule that cannot be judged (out of memory) matches: the authorizer decides */
	for (size_t i = 0; i < set->nap_custom; i++)
		for (size_t k = 0; k < set->ap_custom[i]->nrules; k++)
			if (rule_ok(&set->ap_custom[i]->rules[k], r, true))
				return set->ap_custom[i];
	return NULL;
}

/* Envoy's RBAC filters in Istio's order: the DENY filter (its shadow rules, then its
 * rules), then the ALLOW filter (the same). */
const char *authz_check(const struct cfg_set *set, const struct authz_request *r,
			struct authz_shadow *shadow)
{
	size_t rule;

	if (shadow != NULL && set->nap_shadow_deny > 0)
		shadow_eval(set->ap_shadow_deny, set->nap_shadow_deny, true, r, &shadow->deny);
	for (size_t i = 0; i < set->nap_deny; i++)
		if (policy_ok(set->ap_deny[i], r, &rule))
			return set->ap_deny[i]->denied;
	if (shadow != NULL && set->nap_shadow_allow > 0)
		shadow_eval(set->ap_shadow_allow, set->nap_shadow_allow, false, r, &shadow->allow);
	if (set->nap_allow == 0)
		return NULL;
	for (size_t i = 0; i < set->nap_allow; i++)
		if (policy_ok(set->ap_allow[i], r, &rule))
			return NULL;
	return "rbac_access_denied_matched_policy[none]";
}

const char *authz_verdict_text(enum authz_verdict v)
{
	return v == AUTHZ_ALLOWED ? "allowed" : v == AUTHZ_DENIED ? "denied" : NULL;
}

char *authz_policy_id(const struct authz_engine *e, char *buf, size_t size)
{
	if (e->ap == NULL)
		snprintf(buf, size, "none");
	else
		snprintf(buf, size, "ns[%s]-policy[%s]-rule[%zu]", e->ap->meta.ns, e->ap->meta.name,
			 e->rule);
	return buf;
}
