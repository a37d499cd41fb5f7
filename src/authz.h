/* AuthorizationPolicy evaluation (Istio's semantics): CUSTOM policies first (authz_custom:
 * does one match, so the external authorizer is asked), then DENY policies, then ALLOW
 * policies; a request that matches a DENY policy, or that matches none of the ALLOW
 * policies when there are some, is denied.  Pure: the caller gathers the attributes. */
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

/* The HTTP request's attributes (method, path, authority, fields, listener port) from a
 * routing request; the connection's side stays as it is. */
void authz_request_http(struct authz_request *r, const struct route_request *rq);

/* NULL when the request may pass; else why not, in Envoy's RBAC words for the access log:
 * "rbac_access_denied_matched_policy[ns.name]" naming the DENY policy that matched, or
 * "rbac_access_denied_matched_policy[none]" (ALLOW policies exist and none matched). */
const char *authz_check(const struct cfg_set *set, const struct authz_request *r);

/* The first CUSTOM policy (action CUSTOM, Istio's external authorization) whose rules match
 * the request, or NULL: its provider (set->ap_provider) is to be asked before the DENY and
 * ALLOW policies are.  HTTP requests only. */
const struct cfg_ap *authz_custom(const struct cfg_set *set, const struct authz_request *r);

/* Istio's value match: "*" any value, "*suffix", "prefix*", else exact (ASCII case folded
 * when nocase). */
bool authz_value_match(const char *pattern, const char *v, size_t len, bool nocase);

#endif
