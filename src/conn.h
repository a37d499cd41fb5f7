/* A client connection: accept, read request heads, hand exchanges to the proxy, write
 * local replies, keep-alive and pipelining (one exchange at a time, responses in order),
 * timeouts, and the one conn_close(). Worker thread only. */
#ifndef MG_CONN_H
#define MG_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "deadline.h"

struct worker;
struct wlistener;
struct h2down;
struct stream;
struct event;
struct exchange;

enum conn_wait {
	CW_IDLE = 0, /* between requests: idle timeout */
	CW_HEAD,     /* part of a head received: header timeout */
	CW_EXCHANGE, /* an exchange owns the connection */
	CW_LINGER,   /* the last response is out, the write side shut: reading to discard */
};

/* An address kept in binary: text is made when a request needs it (conn_addr_format). */
union conn_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Longest conn_addr_format() text with its NUL: "[v6]:port". */
#define CONN_ADDR_TEXT 64

/* Kept small: an idle keep-alive connection is this, its stream and its timer entry
 * (bench/: memory per idle connection), within glibc's 192-byte chunk.
 *
 * HTTP/2 (h2down.h): the client's connection has h2 set and no exchange of its own; each
 * of its request streams is a connection too (h2_stream), over a pipe instead of a socket,
 * for one exchange.  Such a one borrows the client's addresses and TLS state, and is not
 * in the worker's list: its HTTP/2 connection owns it. */
struct conn {
	LIST_ENTRY(conn) entry;
	struct worker *w;
	struct stream *st;
	struct exchange *ex;
	uint64_t id;
	const char *lkey;    /* the listener's "bind:port" (worker_key_intern: outlives it) */
	struct ssl_st *ssl;  /* TLS-terminating listeners; owned by st */
	char *xfcc;          /* the client certificate's x-forwarded-client-cert value, or NULL */
	struct wsnap *hs_ws; /* pinned while the handshake reads the snapshot's SNI table */
	struct h2down *h2;   /* HTTP/2: the session (of the client, or of this stream) */
	struct deadline timeout; /* idle, or request headers (wait says which) */
	union conn_addr peer;
	union conn_addr local; /* read with getsockname() when first needed */
	unsigned nrequests;
	uint16_t port;
	uint8_t wait; /* enum conn_wait */
	bool local_known : 1;
	bool close_after_flush : 1;
	bool peer_eof : 1;
	bool handshake_done : 1;
	bool xfcc_done : 1;
	bool h2_stream : 1;    /* one HTTP/2 stream of the connection h2down_conn(h2) */
	bool h2_malformed : 1; /* that stream was reset for a protocol error (h2down.c) */
	bool linger : 1;       /* closing with a request body maybe unread: see conn_finish */
};

struct wsnap;
struct tls_sni_table;

/* An accepted socket: L4 listeners (PASSTHROUGH servers, TCP) go to l4proxy.c, the rest
 * become HTTP connections. */
void conn_accept(struct worker *w, struct wlistener *wl, int fd, struct sockaddr *sa,
		 socklen_t salen);
/* Make an HTTP connection of an accepted socket (plain, or TLS when tls is given: tls
 * belongs to the snapshot ws, which the connection keeps pinned until its handshake is
 * done).  Takes fd and the pin ws (may be NULL).  The passthrough front uses it for a host
 * it terminates: it only peeked, so the handshake reads the ClientHello intact.  sa is the
 * client's address, local the one it connected to (NULL: the socket's, when first needed);
 * with a PROXY protocol header, both are the ones it told. */
void conn_start(struct worker *w, const char *lkey, uint32_t port, int fd,
		const struct sockaddr *sa, const struct sockaddr *local, struct wsnap *ws,
		const struct tls_sni_table *tls);
void conn_close(struct conn *c, const char *why);
/* Close with the exchange in progress ended as by a client that went away (DC). */
void conn_abort(struct conn *c, const char *why);
/* The connection of an HTTP/2 stream of parent (h2down.c): over the pipe st, whose input
 * holds the request.  Takes st (freed on failure).  NULL when out of memory. */
struct conn *conn_h2_stream_new(struct conn *parent, struct stream *st, struct h2down *h2);
/* An HTTP/2 connection's idle timeout runs while it has no stream (idle) or not. */
void conn_h2_idle(struct conn *c, bool idle);
/* The worker's deadline set calls this for a connection's expired timeout. */
void conn_timeout_fire(struct deadline *d);
/* Graceful shutdown: close now when idle, else after the current exchange. */
void conn_drain(struct conn *c);
/* The proxy finished an exchange: log it, then keep-alive (next pipelined head) or close. */
void conn_exchange_done(struct conn *c);
/* Same, without processing the next request or closing now (for synchronous callers):
 * returns whether the connection stays open for another request. */
bool conn_exchange_end(struct conn *c);
/* "ip" and "ip:port" ("[ip6]:port") of an address, for logs. */
void conn_sockaddr_format(const struct sockaddr *sa, char *ip, size_t iplen, char *full,
			  size_t fulllen);
/* An address as "ip" (with_port false) or "ip:port" / "[ip6]:port" into out (at least
 * CONN_ADDR_TEXT bytes); returns the length.  "?" for other families. */
size_t conn_addr_format(const union conn_addr *a, bool with_port, char *out);
/* The client's and the local end's address as text (conn_addr_format). */
size_t conn_peer_text(const struct conn *c, bool with_port, char *out);
size_t conn_local_text(struct conn *c, char *out);
/* Resume reading the client (after back-pressure or when the proxy wants body bytes). */
void conn_read_more(struct conn *c);
/* Envoy-format x-forwarded-client-cert of a verified client certificate (computed once per
 * connection), or NULL. */
const char *conn_xfcc(struct conn *c);

#endif
