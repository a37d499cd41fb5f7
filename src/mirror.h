/* Request mirroring (VirtualService HTTPRoute mirror / mirrors / mirrorPercentage), as Envoy's
 * request_mirror_policies do it: a copy of the request (method, path after rewrites, headers,
 * body) goes to each sampled mirror destination with the Host suffixed "-shadow"; the copy's
 * response is read and discarded.  Fire and forget: a mirror never delays, changes or fails
 * the exchange it copies, and costs nothing for routes without mirrors.
 *
 * A small per-worker upstream client: the mirror picks an endpoint of its cluster, takes a
 * pooled connection or opens one, and then lives on its own.  It holds no pointer into the
 * exchange once the exchange ends (exchanges are recycled), but a reference on the config
 * snapshot whose cluster and endpoint it uses, so a reload during a slow mirror is safe.
 *
 * Bounds: a mirror whose pending output exceeds MIRROR_MAX_PENDING is abandoned (the client
 * and the main upstream are never slowed for it); each mirror has a deadline (the route's
 * timeout, else upstreamConnect + upstreamIdle); a worker runs at most MIRROR_MAX_INFLIGHT
 * at once; the mirror cluster's connectionPool limits apply (a copy never waits: over a
 * limit it is dropped), its endpoint is chosen as for a main request (consistent hashing
 * by the mirror cluster's own DestinationRule, locality, health, outlier ejection), and
 * its outlierDetection and /clusters counters see the copies' outcomes, as Envoy's do for
 * shadow requests.  Failures only
 * count (metrics) and log at debug level.  Worker thread only. */
#ifndef MG_MIRROR_H
#define MG_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exchange;
struct http1_request;
struct route_request;
struct worker;
struct evbuffer;
struct percent;

#define MIRROR_MAX_PENDING (1024 * 1024)
#define MIRROR_MAX_INFLIGHT 512

/* ---- hooks for the exchange (proxy.c, request.c) ---- */

/* Take the hash key of each of the route's first EX_MIRROR_KEYS mirrors whose cluster is
 * consistently hashed, by that cluster's own policy, from the client's request (the
 * head is gone when a delayed request starts).  Call after the main destination's key
 * (proxy_prepare): a cookie that the main destination's policy has just made, under the
 * same name, is the mirror's key too; a mirror never makes one. */
void mirror_prepare(struct exchange *ex, const struct http1_request *req,
		    const struct route_request *rq);
/* Start the mirror copies of a routed exchange whose upstream head (ex->up_head) is built.
 * Call once, before any request body byte moves.  Never fails the exchange. */
void mirror_start(struct exchange *ex);
/* The first n bytes of src (not consumed) are request body of a Content-Length request. */
void mirror_body_buffer(struct exchange *ex, struct evbuffer *src, size_t n);
/* Decoded payload of a chunked request body (the mirror frames it as chunks again). */
void mirror_body(struct exchange *ex, const void *data, size_t len);
/* A chunked request body ended: the mirrors send their last chunk. */
void mirror_body_end(struct exchange *ex);
/* The exchange ends: its mirrors go on alone; one whose body is incomplete is abandoned. */
void mirror_exchange_end(struct exchange *ex);

/* ---- worker ---- */

/* Mirrors of w still talking to their upstream (drain waits for them, up to its deadline). */
unsigned mirror_inflight(const struct worker *w);
/* Worker exit: close and free every mirror and the worker's mirror state. */
void mirror_worker_free(struct worker *w);

/* ---- pure helpers (unit tested) ---- */

/* Envoy's shadow host: "-shadow" goes after the host, before a port ("a:8080" ->
 * "a-shadow:8080", "[::1]:80" -> "[::1]-shadow:80").  Returns the length written, or 0 when
 * out is too small. */
size_t mirror_shadow_host(const char *host, size_t len, char *out, size_t outsize);
/* Copy a serialized request head, with the Host field's value turned into its shadow host.
 * Returns 0, or -1 when the head is not one (no end of the request line). */
int mirror_shadow_head(const char *head, size_t len, struct evbuffer *out);
/* Is this request sampled for a mirror with percentage p, given a uniform random r?  Absent
 * percentage: always (Istio: mirrorPercentage absent means 100%). */
bool mirror_sampled(const struct percent *p, uint64_t r);

#endif
