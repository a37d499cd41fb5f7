/* A client connection: accept, read request heads, hand exchanges to the proxy, write
 * local replies, keep-alive and pipelining (one exchange at a time, responses in order),
 * timeouts, and the one conn_close(). Worker thread only. */
#ifndef MG_CONN_H
#define MG_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct worker;
struct wlistener;
struct stream;
struct event;
struct exchange;

enum conn_wait {
	CW_IDLE = 0, /* between requests: idle timeout */
	CW_HEAD,     /* part of a head received: header timeout */
	CW_EXCHANGE, /* an exchange owns the connection */
};

struct conn {
	LIST_ENTRY(conn) entry;
	struct worker *w;
	struct stream *st;
	uint64_t id;
	uint32_t port;
	char lkey[80];
	char peer_ip[48];
	char peer[64];  /* ip:port */
	char local[64]; /* ip:port */
	enum conn_wait wait;
	struct exchange *ex;
	unsigned nrequests;
	bool close_after_flush;
	bool peer_eof;
	struct event *timer;
	struct ssl_st *ssl; /* TLS-terminating listeners; owned by st */
	bool handshake_done;
	bool xfcc_done;
	char *xfcc;          /* the client certificate's x-forwarded-client-cert value, or NULL */
	struct wsnap *hs_ws; /* pinned while the handshake reads the snapshot's SNI table */
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
 * it terminates: it only peeked, so the handshake reads the ClientHello intact. */
void conn_start(struct worker *w, const char *lkey, uint32_t port, int fd,
		const struct sockaddr *sa, struct wsnap *ws, const struct tls_sni_table *tls);
void conn_close(struct conn *c, const char *why);
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
/* Resume reading the client (after back-pressure or when the proxy wants body bytes). */
void conn_read_more(struct conn *c);
/* Envoy-format x-forwarded-client-cert of a verified client certificate (computed once per
 * connection), or NULL. */
const char *conn_xfcc(struct conn *c);

#endif
