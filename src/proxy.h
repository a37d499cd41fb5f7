/* The exchange state machine, upstream side: from a routed request to a forwarded
 * response.  conn.c parses and routes; proxy.c picks an endpoint, gets a pooled or new
 * upstream connection, streams the request body, parses the response and streams it back
 * with back-pressure both ways, mapping every upstream failure to 502/503/504 + a flag. */
#ifndef MG_PROXY_H
#define MG_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct exchange;
struct http1_request;
struct route_request;
struct evbuffer;

/* Start forwarding: ex->route and ex->rd are set, the request head is parsed (req) and still
 * in the client's input buffer.  Builds the upstream head (must finish before the caller
 * drains the head bytes). Returns 0, or -1 after having answered locally (503 UH etc.).
 * req and rq NULL: the head was built before by proxy_prepare(). */
int proxy_start(struct exchange *ex, const struct http1_request *req,
		const struct route_request *rq);
/* Build the upstream request head now, for a request that proxy_start(ex, NULL, NULL)
 * forwards later (held by a fault delay: the parsed head does not outlive the call). Only
 * the head: no endpoint is picked and no timer runs.  Returns 0, -1 out of memory. */
int proxy_prepare(struct exchange *ex, const struct http1_request *req,
		  const struct route_request *rq);
/* Client has more body bytes, or its output drained (back-pressure release). */
void proxy_client_readable(struct exchange *ex);
/* The client of a WebSocket tunnel closed: pass on what it sent last and end the exchange. */
void proxy_tunnel_client_closed(struct exchange *ex);
void proxy_client_drained(struct exchange *ex);

/* An upstream response head at the start of in (pulled up, at most lim->max_head bytes),
 * parsed and framed for a request of method: its length, MG_AGAIN while incomplete, or
 * MG_EBAD with *why.  resp->headers must hold lim->max_headers fields.  Shared by the
 * exchange (proxy.c), mirrors (mirror.c) and authorizer checks (extauthz.c), which each
 * treat interim answers and failures their own way. */
int proxy_response_head(struct evbuffer *in, const struct http1_limits *lim, const char *method,
			size_t method_len, struct http1_response *resp, enum http1_body_kind *kind,
			uint64_t *left, const char **why);
/* Client went away mid-exchange: release the upstream side. */
void proxy_abort(struct exchange *ex);
/* The client sent no body byte for requestBodyIdle. */
void proxy_client_timeout(struct exchange *ex);

#endif
