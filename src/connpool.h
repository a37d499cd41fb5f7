/* Per-worker keep-alive pools of upstream connections, keyed by endpoint address, so they
 * survive config reloads that keep the endpoint.  Also holds per-endpoint active request
 * counts for LEAST_REQUEST.  Worker thread only: no locks. */
#ifndef MG_CONNPOOL_H
#define MG_CONNPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct worker;
struct bufferevent;
struct endpoint;
struct connpool;

/* One upstream address as seen by one worker. */
struct upstream_host {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[64];
	uint32_t active_rq; /* exchanges currently using it */
	TAILQ_HEAD(upconn_list, upconn) idle;
	unsigned nidle;
	struct upstream_host *next_in_bucket;
};

struct upconn {
	struct bufferevent *bev;
	struct upstream_host *host;
	struct connpool *pool;
	TAILQ_ENTRY(upconn) idle_entry;
	bool idle;
	bool reused; /* has served at least one exchange before the current one */
	unsigned requests;
	uint64_t id;
	char local[64]; /* local ip:port, for the access log (filled on first use) */
};

struct connpool *connpool_new(struct worker *w);
void connpool_free(struct connpool *p);
/* The worker's record for an endpoint (created on first use). */
struct upstream_host *connpool_host(struct connpool *p, const struct endpoint *ep);
/* An idle keep-alive connection to h, or NULL. The caller owns it (set its callbacks). */
struct upconn *connpool_get_idle(struct connpool *p, struct upstream_host *h);
/* A new connection attempt to h (connect in progress; BEV_EVENT_CONNECTED tells). */
struct upconn *connpool_connect(struct connpool *p, struct upstream_host *h);
/* Give a healthy, idle-ready connection back to the pool (it watches it for close). */
void connpool_release(struct upconn *uc);
/* Close and free a connection that must not be reused. */
void connpool_close(struct upconn *uc);

#endif
