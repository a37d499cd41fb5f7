/* CORS for a route's corsPolicy, with the semantics of Envoy's CORS filter as Istio
 * configures it.  Pure functions (no exchange, no socket): request.c classifies a request
 * and answers preflights, proxy.c and local_reply.c add the response headers.
 *
 *  - A request is a CORS request when it has a non-empty Origin; a preflight when it is
 *    also OPTIONS with a non-empty Access-Control-Request-Method.
 *  - An origin is allowed when one allowOrigins match accepts it (or accepts "*": an exact
 *    "*" allows every origin).
 *  - Allowed preflight: answered 200 by the gateway with access-control-allow-origin (the
 *    request's Origin), -allow-methods, -allow-headers, -max-age (seconds), and
 *    -allow-credentials: true when allowCredentials is true.
 *  - Preflight from another origin: forwarded (unmatchedPreflights FORWARD, the default), or
 *    answered 200 without access-control-allow-origin (IGNORE; the other preflight headers
 *    are still sent, as Envoy does).
 *  - Other requests from an allowed origin: the response gets access-control-allow-origin,
 *    -expose-headers and -allow-credentials, replacing the upstream's own.  From another
 *    origin, or without Origin, nothing changes. */
#ifndef MG_CORS_H
#define MG_CORS_H

#include <stdbool.h>
#include <stddef.h>

struct cors_policy;

enum cors_kind {
	CORS_NONE = 0,         /* no policy, no Origin, or an origin not allowed: untouched */
	CORS_ACTUAL,           /* allowed origin, not a preflight: response headers added */
	CORS_PREFLIGHT,        /* allowed preflight: answered by the gateway */
	CORS_PREFLIGHT_IGNORE, /* preflight from another origin, IGNORE: answered, no ACAO */
};

/* OPTIONS with a non-empty Origin and Access-Control-Request-Method (lengths 0 = absent). */
bool cors_is_preflight(const char *method, size_t method_len, size_t origin_len,
		       size_t request_method_len);

/* Does the policy allow this Origin value? */
bool cors_origin_allowed(const struct cors_policy *cp, const char *origin, size_t len);

/* What to do with a request (origin_len 0 = no Origin header). */
enum cors_kind cors_classify(const struct cors_policy *cp, const char *method, size_t method_len,
			     const char *origin, size_t origin_len, size_t request_method_len);

/* Header lines (each ending in CRLF) of a preflight answer into buf; with_origin false for
 * CORS_PREFLIGHT_IGNORE.  request_headers: the request's Access-Control-Request-Headers,
 * echoed when allowHeaders is just "*" (as Envoy does).  Returns the length, or -1 when it
 * does not fit in size (buf then holds "", nothing is ever cut). */
int cors_preflight_headers(const struct cors_policy *cp, bool with_origin, const char *origin,
			   size_t origin_len, const char *request_headers,
			   size_t request_headers_len, char *buf, size_t size);

/* Header lines added to a response to an allowed, non-preflight request; same return. */
int cors_response_headers(const struct cors_policy *cp, const char *origin, size_t origin_len,
			  char *buf, size_t size);

/* Whether an upstream response header is replaced by one cors_response_headers() adds. */
bool cors_replaces(const struct cors_policy *cp, const char *name, size_t len);

/* maxAge as Istio sends it to Envoy: whole seconds in decimal; "" when not set. */
void cors_max_age(const struct cors_policy *cp, char *buf, size_t size);

#endif
