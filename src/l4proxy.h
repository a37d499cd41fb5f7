/* L4 connections: TLS passthrough and tcp routes.  Worker thread only.
 *
 * On a listener with PASSTHROUGH servers a connection first waits (edge-triggered, up to
 * the main config's requestHeaders timeout) for a complete ClientHello, which it only
 * peeks (recv MSG_PEEK): its SNI selects a passthrough host, whose tls routes give the
 * destination, or a terminating server on the same port, to which the untouched socket is
 * handed (conn_start()).  No SNI, an unknown one or bytes that are not a ClientHello close
 * the connection (NR).  A TCP listener takes its first applicable tcp route at once.
 * With the main config's proxyProtocol every connection first comes here for its PROXY
 * protocol header (proxyproto.h), peeked the same way and then read off exactly; the
 * client's and local addresses become the ones it tells.
 *
 * The relay connects to an endpoint of the route's cluster (upstreamConnect timeout; a
 * failure closes the client, UF,URX), then copies both ways on the plain sockets: each read
 * (up to 64 KiB) is written to the other side at once, and only what that side does not take
 * is queued, so an idle relay holds no buffer; a side is not read while the other side has
 * L4PROXY_HIGH_WM bytes queued, and is read again below 64 KiB.  EOF from one side is
 * passed on as a half-close (shutdown SHUT_WR) once what it sent is delivered; the relay
 * ends when both directions are done, on an error, or after the main config's idle timeout
 * without a byte either way.  One access-log line per connection, in Envoy tcp_proxy's
 * shape.  A relay holds its snapshot pinned; drain leaves relays running until the drain
 * deadline (l4proxy_close_all). */
#ifndef MG_L4PROXY_H
#define MG_L4PROXY_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct wsnap;
struct listener_cfg;

#define L4PROXY_HIGH_WM (256 * 1024)

/* Take over an accepted socket of listener lc (which peeks or is TCP, or any listener when
 * the main config's proxyProtocol asks for the PROXY protocol header first: it is read
 * here, within the requestHeaders timeout, then the connection goes on as its listener
 * says) and the snapshot pin ws it came from; counted as an open connection until it
 * closes or is handed to conn.c. */
void l4proxy_accept(struct worker *w, const char *lkey, uint32_t port, int fd,
		    const struct sockaddr *sa, struct wsnap *ws, const struct listener_cfg *lc);
/* Add the bytes each open relay of w moved since its last report to Istio's TCP metrics
 * (every reporting interval). */
void l4proxy_report_metrics(struct worker *w);
/* Drain deadline or exit: close every L4 connection of w now. */
void l4proxy_close_all(struct worker *w);

#endif
