/* AuthorizationPolicy action CUSTOM at run time: Envoy's ext_authz filter as Istio
 * configures it for an envoyExtAuthzHttp or envoyExtAuthzGrpc extension provider.  A
 * request a CUSTOM policy matches is held (its head stays unread in the client's input)
 * while the check runs against the provider's cluster, bounded in size and time.
 *
 * HTTP (envoyExtAuthzHttp): a check request -- its method, pathPrefix + path, Host,
 * Authorization, the includeRequestHeadersInCheck fields, the
 * includeAdditionalHeadersInCheck ones and Content-Length: 0 -- goes over an HTTP/1.1
 * connection of the worker's pool; the answer is read with http1.c's response parser:
 *   200          allowed: headersToUpstreamOnAllow go into the request, which goes on
 *                (DENY and ALLOW policies, routing, forwarding);
 *   other 1xx-4xx denied: the client gets that status, the body and the
 *                headersToDownstreamOnDeny fields (details ext_authz_denied, flag UAEX);
 *   5xx, no answer (connect, reset, timeout): an error, allowed when failOpen, else
 *                statusOnError (details ext_authz_error, flag UAEX).
 *
 * gRPC (envoyExtAuthzGrpc): a unary call of envoy.service.auth.v3.Authorization/Check
 * (authzpb.h) on a stream of the cluster's HTTP/2 pool (h2up.h), written and read in
 * HTTP/1.1 framing; the CheckRequest carries the peers, the request's time, method, path,
 * host, scheme, protocol and every header.  A call that fails (HTTP status, grpc-status
 * other than 0, no answer, a malformed CheckResponse) is an error as above; else
 * CheckResponse.status OK allows, with ok_response's header mutations on the request
 * (headers: set, or joined to an existing field when append; headers_to_remove) and its
 * response_headers_to_add on the response; any other code denies: the client gets the
 * denied_response status (403 when none), its headers and body.
 *
 * The verdict is handed to request.c (request_extauthz_done) from the event loop, never
 * from within extauthz_start. */
#ifndef MG_EXTAUTHZ_H
#define MG_EXTAUTHZ_H

#include <stdbool.h>
#include <stddef.h>

struct exchange;
struct ext_authz;
struct http1_request;
struct http1_header;
struct route_request;
struct evbuffer;

/* Fields the authorizer may add to a request (headersToUpstreamOnAllow): request.c keeps
 * that many spare header slots. */
#define EXTAUTHZ_HEADERS_MAX 32

enum extauthz_verdict {
	EXTAUTHZ_ALLOWED = 0,
	EXTAUTHZ_DENIED,
	EXTAUTHZ_ERROR,
};

/* Start the check of ex's request (head_len bytes of head in the client's input).  0: the
 * verdict comes later; -1: out of memory (nothing was started). */
int extauthz_start(struct exchange *ex, const struct ext_authz *x, const struct http1_request *req,
		   const struct route_request *rq, size_t head_len);

/* The check's outcome, once request_extauthz_done was called. */
enum extauthz_verdict extauthz_verdict(const struct exchange *ex);
bool extauthz_fail_open(const struct exchange *ex);
size_t extauthz_head_len(const struct exchange *ex);
/* Denied: the authorizer's status, body and the header lines for the client. */
int extauthz_denied_reply(const struct exchange *ex, const char **body, size_t *body_len,
			  const char **headers);

/* Allowed: the authorizer's headersToUpstreamOnAllow fields (HTTP), or ok_response's
 * header mutations (gRPC; a joined value is kept in ex's arena), applied to the request's
 * fields h[0..*n) (room for EXTAUTHZ_HEADERS_MAX more). */
void extauthz_upstream_headers(struct exchange *ex, struct http1_header *h, size_t *n);
/* Allowed: does the response field name give way to a headersToDownstreamOnAllow field
 * of the authorizer's (gRPC: a response_headers_to_add entry that sets); and those
 * fields' lines, appended to out. */
bool extauthz_replaces(const struct exchange *ex, const char *name, size_t len);
void extauthz_response_headers(const struct exchange *ex, struct evbuffer *out);

/* Free the check's state: closes a connection still talking to the authorizer (a client
 * that left mid-check).  From request_finish(); ex->xa NULL is a no-op. */
void extauthz_free(struct exchange *ex);

#endif
