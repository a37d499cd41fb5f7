#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clusterstate.h"
#include "connpool.h"
#include "log.h"
#include "snapshot.h"
#include "worker.h"

#define POOL_BUCKETS 1024 /* power of two */
#define POOL_MAX_IDLE_PER_HOST 256

struct connpool {
	struct worker *w;
	struct upstream_host *buckets[POOL_BUCKETS];
	uint64_t next_id;
};

struct connpool *connpool_new(struct worker *w)
{
	struct connpool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		fatal("calloc");
	p->w = w;
	return p;
}

void connpool_free(struct connpool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < POOL_BUCKETS; i++) {
		struct upstream_host *h = p->buckets[i], *next;

		for (; h != NULL; h = next) {
			next = h->next_in_bucket;
			while (!TAILQ_EMPTY(&h->idle))
				connpool_close(TAILQ_FIRST(&h->idle));
			free(h);
		}
	}
	free(p);
}

static uint32_t addr_hash(const struct sockaddr_storage *a, socklen_t len)
{
	const unsigned char *b = (const unsigned char *)a;
	uint32_t h = 2166136261u;
	socklen_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

struct upstream_host *connpool_host(struct connpool *p, const struct endpoint *ep)
{
	uint32_t slot = addr_hash(&ep->addr, ep->addrlen) & (POOL_BUCKETS - 1);
	struct upstream_host *h;

	for (h = p->buckets[slot]; h != NULL; h = h->next_in_bucket)
		if (h->addrlen == ep->addrlen && memcmp(&h->addr, &ep->addr, ep->addrlen) == 0)
			return h;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	memcpy(&h->addr, &ep->addr, ep->addrlen);
	h->addrlen = ep->addrlen;
	snprintf(h->name, sizeof(h->name), "%s", ep->name);
	TAILQ_INIT(&h->idle);
	TAILQ_INIT(&h->waiters);
	h->next_in_bucket = p->buckets[slot];
	p->buckets[slot] = h;
	return h;
}

static void idle_unlink(struct upconn *uc)
{
	if (uc->idle) {
		TAILQ_REMOVE(&uc->host->idle, uc, idle_entry);
		uc->host->nidle--;
		uc->idle = false;
	}
}

void connpool_wait(struct upstream_host *h, struct upwaiter *wt)
{
	wt->host = h;
	TAILQ_INSERT_TAIL(&h->waiters, wt, entry);
}

void connpool_unwait(struct upwaiter *wt)
{
	if (wt->host == NULL)
		return;
	TAILQ_REMOVE(&wt->host->waiters, wt, entry);
	wt->host = NULL;
}

/* The first waiter of h, taken off the queue, or NULL. */
static struct upwaiter *next_waiter(struct upstream_host *h)
{
	struct upwaiter *wt = TAILQ_FIRST(&h->waiters);

	if (wt != NULL)
		connpool_unwait(wt);
	return wt;
}

void connpool_close(struct upconn *uc)
{
	struct upstream_host *h;
	struct upwaiter *wt;

	if (uc == NULL)
		return;
	h = uc->host;
	idle_unlink(uc);
	bufferevent_free(uc->bev);
	if (uc->counted != NULL)
		clusterstate_release(&uc->counted->cx_active);
	free(uc);
	if (h->ncx > 0)
		h->ncx--;
	/* a connection slot is free: the first waiter may open one */
	if ((wt = next_waiter(h)) != NULL)
		wt->ready(wt, NULL);
}

struct upconn *connpool_get_idle(struct connpool *p, struct upstream_host *h)
{
	struct upconn *uc = TAILQ_LAST(&h->idle, upconn_list);

	/* Most recently used first: it is the least likely to have been closed by the
	 * upstream's own idle timeout. */
	if (uc == NULL)
		return NULL;
	idle_unlink(uc);
	uc->reused = true;
	uc->requests++;
	return uc;
}

struct upconn *connpool_connect(struct connpool *p, struct upstream_host *h)
{
	struct upconn *uc;
	int fd, one = 1;

	fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("socket for upstream %s", h->name);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uc = calloc(1, sizeof(*uc));
	if (uc == NULL) {
		close(fd);
		return NULL;
	}
	uc->bev = bufferevent_socket_new(p->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (uc->bev == NULL) {
		close(fd);
		free(uc);
		return NULL;
	}
	uc->host = h;
	uc->pool = p;
	uc->id = ++p->next_id;
	uc->requests = 1;
	if (bufferevent_socket_connect(uc->bev, (struct sockaddr *)&h->addr, (int)h->addrlen) !=
	    0) {
		/* Immediate failure (e.g. no route): the caller maps it to 503 UF. */
		bufferevent_free(uc->bev);
		free(uc);
		return NULL;
	}
	h->ncx++;
	return uc;
}

/* An idle pooled connection must not receive anything: data or EOF means the upstream
 * closed it or broke protocol, so drop it. */
static void idle_read_cb(struct bufferevent *bev, void *arg)
{
	connpool_close(arg);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	connpool_close(arg);
}

void connpool_release(struct upconn *uc)
{
	struct upstream_host *h = uc->host;
	struct snapshot *s = uc->pool->w->cur != NULL ? uc->pool->w->cur->snap : NULL;
	struct timeval tv = {60, 0};
	struct upwaiter *wt;

	/* A request waiting for a connection to this host takes it at once. */
	if ((wt = next_waiter(h)) != NULL) {
		uc->reused = true;
		uc->requests++;
		wt->ready(wt, uc);
		return;
	}
	if (h->nidle >= POOL_MAX_IDLE_PER_HOST) {
		connpool_close(uc);
		return;
	}
	if (uc->idle_us > 0) {
		tv.tv_sec = (time_t)(uc->idle_us / 1000000);
		tv.tv_usec = (suseconds_t)(uc->idle_us % 1000000);
	} else if (s != NULL) {
		tv.tv_sec = (time_t)(s->set->main.timeouts.upstream_idle_us / 1000000);
		tv.tv_usec = (suseconds_t)(s->set->main.timeouts.upstream_idle_us % 1000000);
	}
	bufferevent_setcb(uc->bev, idle_read_cb, NULL, idle_event_cb, uc);
	bufferevent_setwatermark(uc->bev, EV_READ, 0, 0);
	bufferevent_set_timeouts(uc->bev, &tv, NULL);
	bufferevent_enable(uc->bev, EV_READ);
	TAILQ_INSERT_TAIL(&h->idle, uc, idle_entry);
	h->nidle++;
	uc->idle = true;
}
