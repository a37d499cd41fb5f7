/* RequestAuthentication at run time, as Envoy's jwt_authn filter does it for Istio: find
 * the tokens in the places the rules name, verify each with its issuer's keys, and answer
 * 401 for a bad one; a request without a token passes unauthenticated (an
 * AuthorizationPolicy decides whether it may).  A verified token gives the request
 * principal "iss/sub" and the claims that authorization and routing look at. */
#ifndef MESHGATE_JWTAUTH_H
#define MESHGATE_JWTAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

struct cfg_set;
struct diag;
struct pool;
struct http1_header;

/* Fields a request may gain (outputPayloadToHeader and outputClaimToHeaders of one rule). */
#define JWTAUTH_CLAIM_HEADERS_MAX 8
#define JWTAUTH_HEADERS_MAX (JWTAUTH_CLAIM_HEADERS_MAX + 1)

/* The request's verified token, valid until the thread's next request. */
struct jwtauth {
	const struct jwt *jwt; /* NULL: the request carried no token */
	const char *principal; /* "iss/sub" */
};

/* Link: each applied rule's inline jwks into keys (errors at the jwks field); rules with
 * only a jwksUri wait for jwtauth_fetch.  The keys go with p. */
void jwtauth_link(struct pool *p, struct diag *d, struct cfg_set *set);

/* Serving (control thread, blocking, bounded by each rule's timeout): fetch the jwksUri
 * of each rule without inline keys and give the rule the keys.  A URI that fails keeps
 * the keys it last gave, if any; otherwise the rule's tokens are refused ("Jwks remote
 * fetch is failed").  Logs each failure. */
void jwtauth_fetch(struct pool *p, struct cfg_set *set);
/* The periodic check (Istio refetches every 20 minutes): fetch again without touching
 * the (published) set; true when some document changed, so a reload should follow. */
bool jwtauth_refresh(const struct cfg_set *set);
/* Does some applied rule take its keys from a jwksUri? */
bool jwtauth_uses_uris(const struct cfg_set *set);
/* Forget fetched documents (exit). */
void jwtauth_fetch_cleanup(void);

/* The request's fields h[0..*n) (room for JWTAUTH_HEADERS_MAX more) and query, under the
 * config generation the rules are from: JWT_OK with out filled (out->jwt NULL when there
 * is no token), or why the token is refused.  On success the fields are rewritten for
 * the upstream: the token's field dropped unless forwardOriginalToken, the output fields
 * the client sent dropped and the verified ones appended. */
enum jwt_status jwtauth_request(const struct cfg_set *set, uint64_t generation,
				struct http1_header *h, size_t *n, const char *query,
				size_t query_len, int64_t now, struct jwtauth *out);

void jwtauth_thread_cleanup(void);

#endif
