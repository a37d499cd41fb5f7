/* AuthorizationPolicy evaluation (Istio's semantics): CUSTOM policies first (authz_custom:
 * does one match, so the external authorizer is asked), then DENY policies, then ALLOW
 * policies; a request that matches a DENY policy, or that matches none of the ALLOW
 * policies when there are some, is denied.  Dry-run policies (istio.io/dry-run) are
 * evaluated as Envoy's shadow rules and decide nothing.  Pure: the caller gathers the
 * attributes, and counts and logs the shadow verdicts. */
#ifndef MESHGATE_AUTHZ_H
#define MESHGATE_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/model.h"
#include "jwtauth.h"
#include "msg.h"

struct authz_request {
	const struct sockaddr *peer; /* source.ip */
	const struct sockaddr
	    *remote;                  /* remote.ip: the client behind trusted proxies; NULL: peer */
	const struct sockaddr *local; /* destination.ip; NULL unless set->ap_needs_local */
	uint32_t port;                /* destination.port: the listener's */
	const char
	    *principal;  /* the client certificate's identity (its URI SAN without
			  * "spiffe://"), or NULL; looked at only when set->ap_needs_principal */
	const char *sni; /* or NULL */
	/* What only HTTP requests have (http false: a TCP connection). */
	bool http;
	const char *method;
	size_t method_len;
	const char *path; /* normalised, without the query */
	size_t path_len;
	const char *authority;
	size_t authority_len;
	const struct msg_header *headers;
	size_t nheaders;
	const struct jwtauth *auth; /* the verified JWT (RequestAuthentication), or NULL */
};

struct route_request;

/* The Envoy stat prefixes (shadow_rules_stat_prefix) Istio gives the shadow rules of its
 * DENY and ALLOW filters; counters, log fields and metadata keys start with them. */
#define AUTHZ_DRY_RUN_DENY "istio_dry_run_deny_"
#define AUTHZ_DRY_RUN_ALLOW "istio_dry_run_allow_"

enum authz_verdict {
	AUTHZ_NOT_EVALUATED = 0,
	AUTHZ_ALLOWED,
	AUTHZ_DENIED,
};

/* What one shadow engine (the dry-run policies of one action) would have decided. */
struct authz_engine {
	enum authz_verdict verdict;
	const struct cfg_ap *ap; /* the policy that matched (the effective policy), or NULL */
	size_t rule;             /* ... and its rule that did */
};

/* The dry-run policies' verdicts, in Istio's arrangement: the DENY ones are the shadow rules
 * of the DENY filter, evaluated before the real DENY policies (denied when one matches);
 * the ALLOW ones those of the ALLOW filter, which a request denied by a real DENY policy
 * never reaches (allowed when one matches, denied otherwise).  Zeroed: nothing evaluated. */
struct authz_shadow {
	struct authz_engine deny, allow;
};

/* Whether any policy applies, dry runs included: the callers' fast path. */
static inline bool authz_any(const struct cfg_set *set)
{
	return (set->nap_deny | set->nap_allow | set->nap_shadow_deny | set->nap_shadow_allow) != 0;
}

/* Whether dry-run policies apply (shadow verdicts to report). */
static inline bool authz_dry_run(const struct cfg_set *set)
{
	return (set->nap_shadow_deny | set->nap_shadow_allow) != 0;
}

/* The HTTP request's attributes (method, path, authority, fields, listener port) from a
 * routing request; the connection's side stays as it is. */
void authz_request_http(struct authz_request *r, const struct route_request *rq);

/* NULL when the request may pass; else why not, in Envoy's RBAC words for the access log:
 * "rbac_access_denied_matched_policy[ns.name]" naming the DENY policy that matched, or
 * "rbac_access_denied_matched_policy[none]" (ALLOW policies exist and none matched).
 * With shadow, the dry-run policies' verdicts too (what is not evaluated is left
 * AUTHZ_NOT_EVALUATED); shadow NULL: dry runs are not looked at.  They never change the
 * result. */
const char *authz_check(const struct cfg_set *set, const struct authz_request *r,
			struct authz_shadow *shadow);

/* Envoy's words for a verdict: "allowed", "denied" (its shadow_engine_result), or NULL. */
const char *authz_verdict_text(enum authz_verdict v);

/* The effective policy of an engine as Istio names the RBAC policy of a rule,
 * "ns[NS]-policy[NAME]-rule[N]", or "none"; written into buf, which it returns. */
#define AUTHZ_POLICY_ID_MAX 384
char *authz_policy_id(const struct authz_engine *e, char *buf, size_t size);

/* The first CUSTOM policy (action CUSTOM, Istio's external authorization) whose rules match
 * the request, or NULL: its provider (set->ap_provider) is to be asked before the DENY and
 * ALLOW policies are.  HTTP requests only. */
const struct cfg_ap *authz_custom(const struct cfg_set *set, const struct authz_request *r);

/* Istio's value match: "*" any value, "*suffix", "prefix*", else exact (ASCII case folded
 * when nocase). */
bool authz_value_match(const char *pattern, const char *v, size_t len, bool nocase);

#endif
