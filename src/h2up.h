/* HTTP/2 towards upstreams (DestinationRule h2UpgradePolicy, ServiceEntry HTTP2/GRPC
 * ports): one nghttp2 session per upstream connection, shared by the exchanges of one
 * worker as streams.  Worker thread only: no locks.
 *
 * The exchange does not see HTTP/2: a stream looks to proxy.c like an upstream connection
 * carrying HTTP/1.1.  proxy.c writes the request head it built and the request body (in
 * its HTTP/1.1 framing) to the stream's output; this module turns the head into HEADERS
 * (h2conv.h) and the body into DATA under flow control.  It writes the response as an
 * HTTP/1.1 head (chunked framing when the upstream gave no content-length) followed by the
 * body to the stream's input and calls the read callback, so the response path of
 * proxy.c (retries on status, header operations, back-pressure, the access log) is the
 * one HTTP/1.1 upstreams take.  The cost is a second parse of heads meshgate made itself;
 * the HTTP/1.1 path pays nothing (see proxy.c).
 *
 * Connections are opened through connpool.c (so TLS origination, session resumption,
 * keep-alive options and the circuit breakers' connection count are the same) and kept
 * on their upstream_host's h2 list.  Over TLS the connection offers ALPN "h2" and
 * "http/1.1"; a server that picks HTTP/1.1 marks the host h2_off and the connection's
 * streams are told H2UP_FALLBACK: they try again over HTTP/1.1.
 *
 * Limits: a connection takes at most maxConcurrentStreams streams (and at most what the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS allows); after maxRequestsPerConnection streams,
 * a GOAWAY, or maxConnectionDuration it takes no new stream and closes after its last
 * one.  Without streams it closes after the idle timeout. */
#ifndef MG_H2UP_H
#define MG_H2UP_H

#include <stdbool.h>
#include <stdint.h>

struct connpool;
struct upstream_host;
struct upconn;
struct evbuffer;
struct conn_pool_settings;
struct h2up_conn;
struct h2up_stream;

enum h2up_event {
	H2UP_CONNECTED = 0,  /* the connection is ready (TLS: handshake and ALPN done) */
	H2UP_CONNECT_FAILED, /* connect or TLS handshake failed */
	H2UP_FALLBACK,       /* the TLS server chose HTTP/1.1: try again over HTTP/1.1 */
	H2UP_REFUSED,        /* not processed: RST_STREAM REFUSED_STREAM, or above GOAWAY's
			      * last stream id; safe to retry */
	H2UP_RESET,          /* RST_STREAM with another code, or a protocol error */
	H2UP_CLOSED,         /* the connection closed under the stream */
};

struct h2up_cb {
	void (*read)(void *arg);  /* bytes were added to the input */
	void (*write)(void *arg); /* the output drained: more request body is welcome */
	void (*event)(void *arg, enum h2up_event ev, const char *why);
};

/* A connection of h in owner's pool with room for one more stream, or NULL.  Pools are per
 * cluster as in Envoy (owner: a pointer that names the cluster across reloads, its
 * cluster_state), so each cluster's limits hold; lim is applied to the connections found. */
struct h2up_conn *h2up_find(struct upstream_host *h, const void *owner,
			    const struct conn_pool_settings *lim);
/* A new connection to h for owner's pool (connect in progress), or NULL when
 * connpool_connect failed.
 * Its upconn (h2up_conn_upconn) is the caller's to set up (circuit breaker count,
 * timeouts, keep-alive options) before the loop runs again. */
struct h2up_conn *h2up_connect(struct connpool *p, struct upstream_host *h, const void *owner,
			       const struct conn_pool_settings *lim);
struct upconn *h2up_conn_upconn(struct h2up_conn *hc);
/* Close every connection of h (the worker's pool is going away). */
void h2up_host_close(struct upstream_host *h);

/* A stream on hc for one try of an exchange.  *ready: the connection is up (no
 * H2UP_CONNECTED will come).  NULL when out of memory. */
struct h2up_stream *h2up_stream_open(struct h2up_conn *hc, const struct h2up_cb *cb, void *arg,
				     bool *ready);
/* HTTP/1.1 request bytes go to the output; the HTTP/1.1 response comes in the input. */
struct evbuffer *h2up_stream_output(struct h2up_stream *hs);
struct evbuffer *h2up_stream_input(struct h2up_stream *hs);
/* Stop or resume taking response bytes (back-pressure: the flow-control windows close). */
void h2up_stream_read(struct h2up_stream *hs, bool on);
/* The connection the stream runs on (socket, TLS, local address). */
struct upconn *h2up_stream_upconn(struct h2up_stream *hs);
/* The exchange is done with the stream: complete (a response that ended is left to end on
 * the wire, if it has not) or abandoned (RST_STREAM CANCEL).  No callback runs after. */
void h2up_stream_close(struct h2up_stream *hs, bool complete);

#endif
