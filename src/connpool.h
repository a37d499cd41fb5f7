/* Per-worker keep-alive pools of upstream connections, keyed by endpoint address and TLS
 * origination (the cluster's tls_id: 0 for plaintext), so TLS and plaintext connections to
 * one address never mix, and pools survive config reloads that keep the endpoint and its
 * TLS settings.  Also holds per-endpoint active request counts for LEAST_REQUEST.  Worker
 * thread only: no locks.
 *
 * TLS (DestinationRule tls): a host record in use keeps a reference on the SSL_CTX and
 * copies of the SNI name and session key, so its connections do not depend on the snapshot
 * that created them.  Connections are TLS streams (stream.h) in connecting state; the
 * stream reports BEV_EVENT_CONNECTED once the handshake is done.  Sessions are resumed per host
 * (SNI name and address).  A finished TLS connection is closed with close_notify, which
 * also keeps its session resumable. */
#ifndef MG_CONNPOOL_H
#define MG_CONNPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct worker;
struct stream;
struct endpoint;
struct connpool;
struct exchange;
struct ssl_st;
struct ssl_ctx_st;
struct upconn;
struct cluster_state;
struct conn_pool_settings;
struct h2up_conn;

/* A request waiting for a connection to a host (cluster at its maxConnections): it is
 * handed the next connection released to the pool, or told (uc NULL) that a connection
 * closed so it may open one. */
struct upwaiter {
	TAILQ_ENTRY(upwaiter) entry;
	void (*ready)(struct upwaiter *wt, struct upconn *uc);
	struct upstream_host *host; /* set while queued */
};

/* One upstream address (and TLS origination) as seen by one worker. */
struct upstream_host {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[64];
	uint64_t tls_id;            /* 0: plaintext */
	struct ssl_ctx_st *tls_ctx; /* referenced while in use; let go when the record
				     * has no connection and no request */
	char *tls_name;             /* SNI and verified name */
	char *tls_session;          /* session cache key: "name|address" */
	bool tls_check_name;
	uint32_t active_rq; /* exchanges currently using it */
	TAILQ_HEAD(upconn_list, upconn) idle;
	unsigned nidle;
	unsigned ncx; /* this worker's open connections to it, idle or busy */
	TAILQ_HEAD(upwaiter_list, upwaiter) waiters;
	struct h2up_conn *h2conns; /* HTTP/2 connections (h2up.c), busy or idle */
	bool h2_off;               /* its TLS server chose HTTP/1.1 by ALPN: no more tries */
	struct upstream_host *next_in_bucket;
};

struct upconn {
	struct stream *st;
	struct ssl_st *ssl; /* TLS origination; owned by st */
	bool tls_counted;   /* handshake counted in the metrics */
	struct upstream_host *host;
	struct connpool *pool;
	TAILQ_ENTRY(upconn) idle_entry;
	bool idle;
	bool reused; /* has served at least one exchange before the current one */
	unsigned requests;
	uint64_t id;
	char local[64];                /* local ip:port, for the access log (filled on first use) */
	struct cluster_state *counted; /* counted in its cx_active (circuit breaking) */
	uint64_t created_us;           /* monotonic, for maxConnectionDuration */
	uint64_t idle_us;              /* pooled idle timeout; 0 = the main config's */
};

struct connpool *connpool_new(struct worker *w);
void connpool_free(struct connpool *p);
/* The worker's record for an endpoint and its cluster's TLS origination (created on first
 * use). */
struct upstream_host *connpool_host(struct connpool *p, const struct endpoint *ep);
/* An idle keep-alive connection to h, or NULL. The caller owns it (set its callbacks). */
struct upconn *connpool_get_idle(struct connpool *p, struct upstream_host *h);
/* A new connection attempt to h (connect in progress; BEV_EVENT_CONNECTED tells). */
struct upconn *connpool_connect(struct connpool *p, struct upstream_host *h);
/* connectionPool maxConnections before a new connection to h: true when it may open, with
 * *counted the state it then counts in (NULL: no limit applies); false when the cluster is
 * at its limit and this worker already has a connection to h (cx_overflow counted).  A
 * worker without any connection to h still opens one, as Envoy's per-worker pools do. */
bool connpool_admit(struct upstream_host *h, struct cluster_state *cs,
		    const struct conn_pool_settings *lim, struct cluster_state **counted);
/* A new connection's settings from its cluster's DestinationRule (lim may be NULL): the
 * circuit-breaker count it holds, its idle timeout, TCP keep-alive. */
/* DestinationRule connectionPool.tcp.tcpKeepalive on an upstream socket (fd < 0 or lim
 * NULL: nothing). */
void connpool_keepalive(int fd, const struct conn_pool_settings *lim);
void connpool_setup(struct upconn *uc, struct cluster_state *counted,
		    const struct conn_pool_settings *lim);
/* Give a healthy, idle-ready connection back to the pool (it watches it for close). */
void connpool_release(struct upconn *uc);
/* Close and free a connection that must not be reused. */
void connpool_close(struct upconn *uc);
/* Queue a waiter on h (FIFO) / take it off its queue (no-op when not queued). */
void connpool_wait(struct upstream_host *h, struct upwaiter *wt);
void connpool_unwait(struct upwaiter *wt);
/* Tell h's first waiter that it may look for a connection again (an HTTP/2 stream slot
 * came free).  False when nobody waits. */
bool connpool_wake(struct upstream_host *h);
struct worker *connpool_worker(struct connpool *p);
/* For the upstream event callback before a response: when uc's TLS handshake failed, why
 * ("tls verify failed: ..." / "tls handshake failed: ..."), copied into ex's log arena,
 * logged and counted; NULL when uc is plaintext or the failure is not TLS (a refused
 * connect). */
const char *connpool_tls_failure(struct upconn *uc, struct exchange *ex);

#endif
