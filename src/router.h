/* Request routing: listener -> virtual host (by Host/authority) -> first matching route.
 * Read-only over a snapshot; no allocation on the lookup path. */
#ifndef MG_ROUTER_H
#define MG_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct listener_cfg;
struct vhost;
struct http_route;
struct route_destination;

/* What routing looks at, independent of HTTP version. */
struct route_request {
	const char *method;
	size_t method_len;
	const char *path; /* path only, no query; as sent (not decoded) */
	size_t path_len;
	const char *query; /* after '?', or NULL */
	size_t query_len;
	const char *host; /* authority without port */
	size_t host_len;
	const char *authority; /* authority as sent (Host header or :authority) */
	size_t authority_len;
	const char *scheme; /* "http" or "https" */
	uint32_t port;      /* listener port */
	const struct msg_header *headers;
	size_t nheaders;
	const char
	    *gateway; /* "ns/name" of the Gateway whose server accepted it, for match.gateways */
	const struct jwt *jwt; /* the verified JWT (RequestAuthentication), or NULL */
};

/* Case-insensitive hash of a host name: link.c places exact vhosts in the table with it and
 * router_find_vhost() probes with it, so both sides must use this one function. */
uint32_t router_host_hash(const char *host, size_t len);

/* Host lookup: exact (case-insensitive), then the longest "*.suffix", then "*". */
const struct vhost *router_find_vhost(const struct listener_cfg *l, const char *host, size_t len);

/* First route whose match blocks (OR of ANDs) accept rq; NULL when none (-> 404 NR). */
const struct http_route *router_match(const struct vhost *vh, const struct route_request *rq);

/* Pick one weighted destination; r is a uniform random number in [0, total_weight). */
const struct route_destination *router_pick_destination(const struct http_route *route, uint32_t r);

/* L4 (tls/tcp routes): the first target whose match's destinationSubnets hold local, the
 * address the client connected to (no subnets: any); NULL when none applies.  An IPv4
 * prefix also holds the IPv4-mapped form of its addresses (a dual-stack listener). */
struct sockaddr;
struct l4_targets;
struct l4_target;
struct l4_route;
const struct l4_target *router_l4_select(const struct l4_targets *t, const struct sockaddr *local);
/* Pick one weighted destination of an L4 route; r uniform in [0, total_weight). */
const struct route_destination *router_l4_pick(const struct l4_route *route, uint32_t r);

/* Explain: the same decisions as router_find_vhost + router_match, narrated into a
 * growing text buffer (control thread / admin only; allocates). Returns the route or NULL. */
struct router_trace {
	char *buf;
	size_t len, cap;
};
const struct http_route *router_explain(const struct listener_cfg *l,
					const struct route_request *rq, struct router_trace *t);
void router_trace_free(struct router_trace *t);

#endif
