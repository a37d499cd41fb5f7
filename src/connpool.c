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

#include <fcntl.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "clusterstate.h"
#include "connpool.h"
#include "exchange.h"
#include "h2up.h"
#include "log.h"
#include "snapshot.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

#define POOL_BUCKETS 1024 /* power of two */
#define POOL_MAX_IDLE_PER_HOST 1024

static void connpool_tls_drop(struct upstream_host *h);

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
			h2up_host_close(h);
			connpool_tls_drop(h);
			free(h);
		}
	}
	free(p);
}

static uint32_t addr_hash(const struct sockaddr_storage *a, socklen_t len, uint64_t tls_id)
{
	const unsigned char *b = (const unsigned char *)a;
	uint32_t h = 2166136261u;
	socklen_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h ^ (uint32_t)tls_id ^ (uint32_t)(tls_id >> 32);
}

/* What a record's TLS connections are made from, taken out of the snapshot (a reference on
 * the SSL_CTX, copies of the names).  Equal tls_ids mean equivalent contexts, so what one
 * snapshot gave serves the next ones too, with its session cache. */
static bool connpool_tls_take(struct upstream_host *h, const struct cluster *cl)
{
	const struct tls_client_ctx *tc = cl->tls;

	if (!SSL_CTX_up_ref(tc->ctx))
		return false;
	h->tls_ctx = tc->ctx;
	h->tls_check_name = tls_client_checks_name(tc);
	h->tls_name = strdup(cl->tls_name);
	if (h->tls_name != NULL && asprintf(&h->tls_session, "%s|%s", cl->tls_name, h->name) < 0)
		h->tls_session = NULL;
	return h->tls_name != NULL && h->tls_session != NULL;
}

static void connpool_tls_drop(struct upstream_host *h)
{
	SSL_CTX_free(h->tls_ctx);
	free(h->tls_name);
	free(h->tls_session);
	h->tls_ctx = NULL;
	h->tls_name = h->tls_session = NULL;
}

struct upstream_host *connpool_host(struct connpool *p, const struct endpoint *ep)
{
	const struct cluster *cl = ep->cluster;
	uint64_t tls_id = cl != NULL && cl->tls != NULL ? cl->tls_id : 0;
	uint32_t slot = addr_hash(&ep->addr, ep->addrlen, tls_id) & (POOL_BUCKETS - 1);
	struct upstream_host *h;

	for (h = p->buckets[slot]; h != NULL; h = h->next_in_bucket)
		if (h->addrlen == ep->addrlen && h->tls_id == tls_id &&
		    memcmp(&h->addr, &ep->addr, ep->addrlen) == 0)
			break;
	if (h == NULL) {
		if ((h = calloc(1, sizeof(*h))) == NULL)
			return NULL;
		memcpy(&h->addr, &ep->addr, ep->addrlen);
		h->addrlen = ep->addrlen;
		h->tls_id = tls_id;
		snprintf(h->name, sizeof(h->name), "%s", ep->name);
		TAILQ_INIT(&h->idle);
		TAILQ_INIT(&h->waiters);
		h->next_in_bucket = p->buckets[slot];
		p->buckets[slot] = h;
	}
	/* dropped when the record fell idle (connpool_close), taken again on its next use */
	if (tls_id != 0 && h->tls_ctx == NULL && !connpool_tls_take(h, cl)) {
		connpool_tls_drop(h);
		return NULL;
	}
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

bool connpool_wake(struct upstream_host *h)
{
	struct upwaiter *wt = next_waiter(h);

	if (wt == NULL)
		return false;
	wt->ready(wt, NULL);
	return true;
}

struct worker *connpool_worker(struct connpool *p)
{
	return p->w;
}

/* Handshakes and resumptions, once per connection that completed one. */
static void tls_count(struct upconn *uc)
{
	struct metrics_shard *m = &uc->pool->w->metrics;

	if (uc->ssl == NULL || uc->tls_counted || !SSL_is_init_finished(uc->ssl))
		return;
	uc->tls_counted = true;
	METRIC_INC(m, upstream_cx_ssl_handshake);
	if (SSL_session_reused(uc->ssl))
		METRIC_INC(m, upstream_cx_ssl_session_reused);
}

void connpool_close(struct upconn *uc)
{
	struct upstream_host *h;
	struct upwaiter *wt;

	if (uc == NULL)
		return;
	h = uc->host;
	idle_unlink(uc);
	if (uc->ssl != NULL && SSL_is_init_finished(uc->ssl)) {
		tls_count(uc);
		/* close_notify, best effort (one non-blocking write): an SSL freed without
		 * it marks its session not resumable.  Errors (a peer already gone) only
		 * leave entries in this thread's error queue: clear them. */
		SSL_shutdown(uc->ssl);
		ERR_clear_error();
	}
	stream_free(uc->st);
	if (uc->counted != NULL)
		clusterstate_release(&uc->counted->cx_active);
	free(uc);
	if (h->ncx > 0)
		h->ncx--;
	/* a connection slot is free: the first waiter may open one */
	if ((wt = next_waiter(h)) != NULL) {
		wt->ready(wt, NULL);
		return;
	}
	/* Records outlive reloads: one whose TLS settings changed must not keep its SSL_CTX
	 * (CA store included) forever.  Nothing uses it now; its next use takes it again. */
	if (h->tls_ctx != NULL && h->ncx == 0 && h->active_rq == 0)
		connpool_tls_drop(h);
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

/* A TLS stream in connecting state (the socket is made by stream_connect). */
static struct stream *connpool_tls_stream(struct connpool *p, struct upstream_host *h, SSL **out)
{
	struct stream *st;
	SSL *ssl;

	ERR_clear_error();
	ssl = tls_client_ssl_open(h->tls_ctx, h->tls_name, h->tls_check_name, h->tls_session);
	if (ssl == NULL) {
		log_warnx("cannot prepare TLS to upstream %s (%s)", h->name, h->tls_name);
		return NULL;
	}
	if ((st = stream_tls_new(p->w->sloop, -1, ssl, false)) != NULL)
		*out = ssl;
	return st;
}

void connpool_keepalive(int fd, const struct conn_pool_settings *lim)
{
	int on = 1, v;

	if (fd < 0 || lim == NULL || !lim->keepalive.given)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (lim->keepalive.probes > 0) {
		v = (int)lim->keepalive.probes;
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
	}
	if (lim->keepalive.time_us > 0) {
		v = (int)(lim->keepalive.time_us / 1000000);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v));
	}
	if (lim->keepalive.interval_us > 0) {
		v = (int)(lim->keepalive.interval_us / 1000000);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
	}
}

bool connpool_admit(struct upstream_host *h, struct cluster_state *cs,
		    const struct conn_pool_settings *lim, struct cluster_state **counted)
{
	*counted = NULL;
	if (lim == NULL || lim->max_connections == 0 || cs == NULL)
		return true;
	if (!clusterstate_admit(&cs->cx_active, lim->max_connections)) {
		if (h->ncx > 0) {
			atomic_fetch_add_explicit(&cs->cx_overflow, 1, memory_order_relaxed);
			return false;
		}
		atomic_fetch_add_explicit(&cs->cx_active, 1, memory_order_relaxed);
	}
	*counted = cs;
	return true;
}

void connpool_setup(struct upconn *uc, struct cluster_state *counted,
		    const struct conn_pool_settings *lim)
{
	uc->counted = counted;
	uc->created_us = clock_mono_us();
	if (lim != NULL) {
		uc->idle_us = lim->http_idle_timeout_us > 0 ? lim->http_idle_timeout_us
							    : lim->tcp_idle_timeout_us;
		connpool_keepalive(stream_getfd(uc->st), lim);
	}
}

struct upconn *connpool_connect(struct connpool *p, struct upstream_host *h)
{
	struct upconn *uc;

	if (h->tls_id != 0 && h->tls_ctx == NULL)
		return NULL; /* never plaintext where TLS is configured */
	uc = calloc(1, sizeof(*uc));
	if (uc == NULL)
		return NULL;
	if (h->tls_ctx != NULL)
		uc->st = connpool_tls_stream(p, h, &uc->ssl);
	else
		uc->st = stream_socket_new(p->w->sloop, -1);
	if (uc->st == NULL) {
		free(uc);
		return NULL;
	}
	uc->host = h;
	uc->pool = p;
	uc->id = ++p->next_id;
	uc->requests = 1;
	if (stream_connect(uc->st, (struct sockaddr *)&h->addr, h->addrlen) != 0) {
		/* Immediate failure (e.g. no route): the caller maps it to 503 UF. */
		stream_free(uc->st);
		free(uc);
		return NULL;
	}
	h->ncx++;
	return uc;
}

const char *connpool_tls_failure(struct upconn *uc, struct exchange *ex)
{
	char buf[256];
	const char *why;
	size_t len, room;
	const char *kept;

	if (uc == NULL || uc->ssl == NULL)
		return NULL;
	if (!uc->reused && SSL_is_init_finished(uc->ssl)) {
		/* A TLS 1.3 server refuses our certificate (or its absence) after our side of
		 * the handshake is done: its alert may still wait in the socket when the first
		 * write already failed on the reset that followed it.  A peek reads it (the
		 * info callback records it) and consumes no application data. */
		char c;

		ERR_clear_error();
		SSL_peek(uc->ssl, &c, 1);
		ERR_clear_error();
	}
	if ((why = tls_client_failure(uc->ssl, buf, sizeof(buf))) == NULL)
		return NULL;
	METRIC_INC(&uc->pool->w->metrics, upstream_cx_ssl_handshake_error);
	log_info("TLS to upstream %s (%s) failed: %s", uc->host->name, uc->host->tls_name, why);
	/* ex->details outlives the connection (and its SSL): a NUL-terminated arena copy */
	room = EX_ARENA - ex->arena_used;
	if (room < 2)
		return "tls handshake failed";
	len = strlen(why) < room - 1 ? strlen(why) : room - 1;
	kept = exchange_keep(ex, why, len, NULL);
	exchange_keep(ex, "", 1, NULL);
	return kept;
}

/* An idle pooled connection must not receive anything: data or EOF means the upstream
 * closed it or broke protocol, so drop it. */
static void idle_read_cb(struct stream *st, void *arg)
{
	connpool_close(arg);
}

static void idle_event_cb(struct stream *st, short what, void *arg)
{
	connpool_close(arg);
}

void connpool_release(struct upconn *uc)
{
	struct upstream_host *h = uc->host;
	struct snapshot *s = uc->pool->w->cur != NULL ? uc->pool->w->cur->snap : NULL;
	struct timeval tv = {60, 0};
	struct upwaiter *wt;

	tls_count(uc);
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
	stream_setcb(uc->st, idle_read_cb, NULL, idle_event_cb, uc);
	stream_setwatermark(uc->st, EV_READ, 0, 0);
	stream_set_read_timeout(uc->st, &tv);
	stream_enable(uc->st, EV_READ);
	TAILQ_INSERT_TAIL(&h->idle, uc, idle_entry);
	h->nidle++;
	uc->idle = true;
}
