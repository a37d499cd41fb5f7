#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "accesslog.h"
#include "clienthello.h"
#include "conn.h"
#include "connpool.h"
#include "errors.h"
#include "l4proxy.h"
#include "log.h"
#include "router.h"
#include "snapshot.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

/* Reading a side resumes once the other side's queue is back under this. */
#define L4PROXY_LOW_WM (64 * 1024)
/* Bigger reads than libevent's 16 KiB default: fewer syscalls per megabyte relayed. */
#define L4PROXY_READ_MAX (64 * 1024)

enum l4_state {
	L4_HELLO = 0,  /* waiting for the ClientHello (passthrough listeners) */
	L4_CONNECTING, /* connecting upstream */
	L4_RELAY,      /* copying both ways */
};

struct l4side {
	struct bufferevent *bev;
	uint64_t bytes; /* read from this side */
	bool eof;       /* this side sent FIN */
	bool shut;      /* we sent FIN to this side */
	bool paused;    /* not read: the other side's queue is full */
};

struct l4conn {
	LIST_ENTRY(l4conn) entry;
	struct worker *w;
	struct wsnap *ws;
	const struct listener_cfg *lc;
	enum l4_state state;
	int fd;              /* the client socket, until down.bev owns it */
	struct event *rev;   /* L4_HELLO: the client is readable (edge-triggered) */
	struct event *timer; /* hello deadline, connect timeout, idle check */
	struct l4side down, up;
	const struct cluster *cl;
	const struct endpoint *ep;
	struct upstream_host *uh;
	bool logged;    /* a decision was made: the close writes an access-log line */
	bool edge;      /* the backend has edge-triggered events (epoll) */
	char flags[16]; /* "-" when empty */
	const char *details;
	uint64_t start_us, last_us;
	struct timespec start_wall;
	uint64_t idle_us;
	uint32_t port;
	struct sockaddr_storage peer_sa, local_sa;
	char lkey[80];
	char peer[64], local[64], up_local[64];
	char sni[256];
	size_t sni_len;
};

/* ClientHello peeks: one worker thread reads one at a time. */
static __thread uint8_t l4_peek[CLIENTHELLO_WIRE_MAX];
static __thread uint8_t l4_scratch[CLIENTHELLO_SCRATCH];

static void l4_relay_read_cb(struct bufferevent *bev, void *arg);
static void l4_relay_write_cb(struct bufferevent *bev, void *arg);
static void l4_event_cb(struct bufferevent *bev, short what, void *arg);

static uint64_t l4_now_us(void)
{
	struct timespec ts;

	/* The coarse clock (vDSO, no syscall): the idle check needs milliseconds at best. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void l4_arm(struct l4conn *c, uint64_t us)
{
	struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

	evtimer_add(c->timer, &tv);
}

static const struct cfg_main *l4_main(const struct l4conn *c)
{
	return &c->ws->snap->set->main;
}

static void l4_log(struct l4conn *c)
{
	struct accesslog_entry e;
	uint64_t sent = c->up.bytes;

	if (c->down.bev != NULL) {
		size_t queued = evbuffer_get_length(bufferevent_get_output(c->down.bev));

		sent = sent > queued ? sent - queued : 0;
	}
	memset(&e, 0, sizeof(e));
	e.start = c->start_wall;
	e.duration_us = l4_now_us() - c->start_us;
	e.upstream_time_us = -1;
	e.protocol = "-";
	e.status = 0;
	e.flags = c->flags[0] ? c->flags : "-";
	e.details = c->details != NULL ? c->details : "-";
	e.bytes_received = c->down.bytes;
	e.bytes_sent = sent;
	e.upstream_host = c->ep != NULL ? c->ep->name : NULL;
	e.upstream_cluster = c->cl != NULL ? c->cl->name : NULL;
	e.upstream_local = c->up_local[0] ? c->up_local : NULL;
	e.downstream_local = c->local;
	e.downstream_remote = c->peer;
	e.requested_server_name = c->sni_len ? c->sni : NULL;
	e.requested_server_name_len = c->sni_len;
	accesslog_write(c->w->alog, &e);
}

/* The one exit: log, release everything, uncount. */
static void l4_close(struct l4conn *c, const char *why)
{
	struct worker *w = c->w;

	if (c->logged)
		l4_log(c);
	log_debug("l4 connection from %s on %s closed: %s", c->peer, c->lkey, why);
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->down.bev != NULL)
		bufferevent_free(c->down.bev);
	else if (c->fd >= 0)
		close(c->fd);
	if (c->up.bev != NULL)
		bufferevent_free(c->up.bev);
	if (c->uh != NULL && c->uh->active_rq > 0)
		c->uh->active_rq--;
	LIST_REMOVE(c, entry);
	w->nl4--;
	atomic_fetch_sub_explicit(&mg_total_conns, 1, memory_order_relaxed);
	worker_snap_unpin(c->ws);
	free(c);
	worker_check_drained(w);
}

void l4proxy_close_all(struct worker *w)
{
	while (!LIST_EMPTY(&w->l4conns))
		l4_close(LIST_FIRST(&w->l4conns), "drain deadline");
}

static void l4_flag(struct l4conn *c, const char *flag)
{
	size_t n = strlen(c->flags);

	if (n + strlen(flag) + 2 > sizeof(c->flags))
		return;
	if (n > 0)
		c->flags[n++] = ',';
	strcpy(c->flags + n, flag);
}

/* No route for this connection: closed with NR (Envoy: no filter chain matched). */
static void l4_no_route(struct l4conn *c, const char *why)
{
	METRIC_INC(&c->w->metrics, downstream_cx_no_route);
	log_info("connection from %s on %s closed: %s", c->peer, c->lkey, why);
	l4_flag(c, "NR");
	c->details = "filter_chain_not_found";
	c->logged = true;
	l4_close(c, why);
}

/* ---- relay ---- */

static struct l4side *l4_other(struct l4conn *c, struct l4side *s)
{
	return s == &c->down ? &c->up : &c->down;
}

static struct l4side *l4_side(struct l4conn *c, struct bufferevent *bev)
{
	return bev == c->down.bev ? &c->down : &c->up;
}

/* Both directions finished: FIN passed on each way and everything delivered. */
static bool l4_done(const struct l4conn *c)
{
	return c->down.eof && c->up.eof && c->down.shut && c->up.shut;
}

/* s's peer sent FIN: pass it on to s once s has nothing left to write. */
static void l4_pass_eof(struct l4conn *c, struct l4side *s)
{
	if (s->shut || !l4_other(c, s)->eof ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return;
	shutdown(bufferevent_getfd(s->bev), SHUT_WR);
	s->shut = true;
}

static void l4_relay_read_cb(struct bufferevent *bev, void *arg)
{
	struct l4conn *c = arg;
	struct l4side *src = l4_side(c, bev), *dst = l4_other(c, src);
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(dst->bev);

	src->bytes += evbuffer_get_length(in);
	c->last_us = l4_now_us();
	/* Moves the chains, no copy; the write happens when dst is writable. */
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= L4PROXY_HIGH_WM) {
		bufferevent_disable(bev, EV_READ);
		src->paused = true;
	}
}

static void l4_relay_write_cb(struct bufferevent *bev, void *arg)
{
	struct l4conn *c = arg;
	struct l4side *dst = l4_side(c, bev), *src = l4_other(c, dst);

	c->last_us = l4_now_us();
	if (src->paused && evbuffer_get_length(bufferevent_get_output(bev)) < L4PROXY_LOW_WM) {
		src->paused = false;
		if (!src->eof)
			bufferevent_enable(src->bev, EV_READ);
	}
	l4_pass_eof(c, dst);
	if (l4_done(c))
		l4_close(c, "both directions done");
}

static void l4_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;
	uint64_t now = l4_now_us(), since = now - c->last_us;

	if (since >= c->idle_us) {
		c->details = "idle_timeout";
		l4_close(c, "idle timeout");
		return;
	}
	/* Activity since the timer was set: check again when it could expire. */
	l4_arm(c, c->idle_us - since);
}

static bool l4_side_setup(struct l4conn *c, struct l4side *s)
{
	bufferevent_setcb(s->bev, l4_relay_read_cb, l4_relay_write_cb, l4_event_cb, c);
	/* The write callback fires under the low mark: it resumes the paused reader, and at
	 * an empty queue passes a pending FIN on. */
	bufferevent_setwatermark(s->bev, EV_WRITE, L4PROXY_LOW_WM - 1, 0);
	bufferevent_set_max_single_read(s->bev, L4PROXY_READ_MAX);
	bufferevent_set_max_single_write(s->bev, L4PROXY_READ_MAX);
	return bufferevent_enable(s->bev, EV_READ | EV_WRITE) == 0;
}

static void l4_connected(struct l4conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	c->state = L4_RELAY;
	evtimer_del(c->timer);
	if (getsockname(bufferevent_getfd(c->up.bev), (struct sockaddr *)&ss, &sl) == 0) {
		char ip[64];

		conn_sockaddr_format((struct sockaddr *)&ss, ip, sizeof(ip), c->up_local,
				     sizeof(c->up_local));
	}
	c->down.bev = bufferevent_socket_new(c->w->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->down.bev == NULL) {
		l4_close(c, "out of memory");
		return;
	}
	c->fd = -1;
	if (!l4_side_setup(c, &c->down) || !l4_side_setup(c, &c->up)) {
		l4_close(c, "cannot set up the relay");
		return;
	}
	c->idle_us = l4_main(c)->timeouts.idle_us;
	c->last_us = l4_now_us();
	event_assign(c->timer, c->w->base, -1, 0, l4_idle_cb, c);
	l4_arm(c, c->idle_us);
}

static void l4_connect_failed(struct l4conn *c, const char *why)
{
	METRIC_INC(&c->w->metrics, upstream_cx_connect_fail);
	log_debug("connect to %s failed: %s", c->ep->name, why);
	/* Envoy's tcp_proxy: connect failure, and no attempt left. */
	l4_flag(c, "UF");
	l4_flag(c, "URX");
	l4_close(c, why);
}

static void l4_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	l4_connect_failed(arg, "upstream connect timeout");
}

static void l4_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct l4conn *c = arg;
	struct l4side *s;

	if (c->state == L4_CONNECTING) {
		if (what & BEV_EVENT_CONNECTED)
			l4_connected(c);
		else
			l4_connect_failed(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	s = l4_side(c, bev);
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING)) {
		/* A half-close: the other direction may go on. */
		s->eof = true;
		l4_pass_eof(c, l4_other(c, s));
		if (l4_done(c))
			l4_close(c, "both directions done");
		return;
	}
	l4_close(c, s == &c->down ? "client error" : "upstream error");
}

/* Connect to an endpoint of the route's cluster; the client is read once connected. */
static void l4_route(struct l4conn *c, const struct l4_target *t)
{
	struct worker *w = c->w;
	const struct route_destination *rd;
	int fd, one = 1;

	rd = router_l4_pick(t->route, t->route->total_weight > 0
					  ? (uint32_t)(worker_random(w) % t->route->total_weight)
					  : 0);
	c->logged = true;
	if (c->lc->protocol != GWP_TCP)
		METRIC_INC(&w->metrics, downstream_cx_passthrough);
	else
		METRIC_INC(&w->metrics, downstream_cx_tcp);
	c->cl = rd != NULL ? rd->dest.cluster : NULL;
	if (c->cl == NULL || c->cl->nendpoints == 0) {
		METRIC_INC(&w->metrics, upstream_rq_no_healthy);
		l4_flag(c, "UH");
		c->details = "no_healthy_upstream";
		l4_close(c, "no healthy upstream");
		return;
	}
	c->ep = upstream_pick(w, c->cl);
	c->uh = connpool_host(w->pool, c->ep);
	if (c->uh != NULL)
		c->uh->active_rq++; /* LEAST_REQUEST counts open relays */
	METRIC_INC(&w->metrics, upstream_cx_total);
	fd = socket(c->ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		l4_connect_failed(c, strerror(errno));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->up.bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->up.bev == NULL) {
		close(fd);
		l4_close(c, "out of memory");
		return;
	}
	c->state = L4_CONNECTING;
	bufferevent_setcb(c->up.bev, NULL, NULL, l4_event_cb, c);
	if (bufferevent_socket_connect(c->up.bev, (const struct sockaddr *)&c->ep->addr,
				       (int)c->ep->addrlen) != 0) {
		l4_connect_failed(c, "connect failed");
		return;
	}
	event_assign(c->timer, w->base, -1, 0, l4_connect_timeout_cb, c);
	l4_arm(c, l4_main(c)->timeouts.upstream_connect_us);
}

/* ---- the passthrough front ---- */

static void l4_hello_failed(struct l4conn *c, const char *why)
{
	METRIC_INC(&c->w->metrics, downstream_cx_hello_fail);
	l4_close(c, why);
}

static void l4_hello_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	l4_hello_failed(arg, "no complete ClientHello in time");
}

/* A terminating server on this port owns the SNI: the socket goes to conn.c untouched. */
static void l4_handoff(struct l4conn *c)
{
	struct worker *w = c->w;
	struct wsnap *ws = c->ws;
	int fd = c->fd;

	event_free(c->rev);
	event_free(c->timer);
	LIST_REMOVE(c, entry);
	w->nl4--;
	atomic_fetch_sub_explicit(&mg_total_conns, 1, memory_order_relaxed);
	conn_start(w, c->lkey, c->port, fd, (const struct sockaddr *)&c->peer_sa, ws, c->lc->tls);
	free(c);
}

static void l4_hello_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;
	const struct tls_sni_entry *e;
	const struct l4_target *t;
	struct clienthello ch;
	const char *why;
	ssize_t n;
	int rc;

	n = recv(c->fd, l4_peek, sizeof(l4_peek), MSG_PEEK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		l4_hello_failed(c, strerror(errno));
		return;
	}
	if (n == 0) {
		l4_hello_failed(c, "client closed before its ClientHello");
		return;
	}
	rc = clienthello_parse(l4_peek, (size_t)n, l4_scratch, &ch, &why);
	if (rc == MG_AGAIN) {
		/* The next segment raises a new edge; without edge triggering, look again
		 * shortly (level triggering would report the peeked bytes at once). */
		if (!c->edge) {
			struct timeval tv = {0, 5000};

			event_del(c->rev);
			event_assign(c->rev, c->w->base, -1, 0, l4_hello_cb, c);
			evtimer_add(c->rev, &tv);
		}
		return;
	}
	if (rc != MG_OK) {
		l4_no_route(c, why);
		return;
	}
	if (ch.sni != NULL) {
		/* Validated by the parser: safe to log, at most 255 bytes. */
		memcpy(c->sni, ch.sni, ch.sni_len);
		c->sni_len = ch.sni_len;
		c->sni[c->sni_len] = '\0';
	}
	e = c->lc->tls != NULL ? tls_sni_lookup(c->lc->tls, ch.sni, ch.sni_len) : NULL;
	if (e == NULL && ch.sni == NULL) {
		l4_no_route(c, "no SNI in the ClientHello");
		return;
	}
	if (e == NULL) {
		char buf[300];

		snprintf(buf, sizeof(buf), "no route for SNI %s", c->sni);
		l4_no_route(c, buf);
		return;
	}
	if (e->sctx != NULL) {
		l4_handoff(c);
		return;
	}
	event_free(c->rev);
	c->rev = NULL;
	evtimer_del(c->timer);
	t = router_l4_select(e->user, (const struct sockaddr *)&c->local_sa);
	if (t == NULL) {
		l4_no_route(c, "no tls route for this destination address");
		return;
	}
	l4_route(c, t);
}

void l4proxy_accept(struct worker *w, const char *lkey, uint32_t port, int fd,
		    const struct sockaddr *sa, struct wsnap *ws, const struct listener_cfg *lc)
{
	struct l4conn *c = calloc(1, sizeof(*c));
	socklen_t sl = sizeof(struct sockaddr_storage);
	char ip[64];
	int one = 1;

	if (c == NULL) {
		close(fd);
		worker_snap_unpin(ws);
		return;
	}
	c->w = w;
	c->ws = ws;
	c->lc = lc;
	c->fd = fd;
	c->port = port;
	c->start_us = c->last_us = l4_now_us();
	clock_gettime(CLOCK_REALTIME, &c->start_wall);
	snprintf(c->lkey, sizeof(c->lkey), "%s", lkey);
	memcpy(&c->peer_sa, sa,
	       sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in));
	conn_sockaddr_format(sa, ip, sizeof(ip), c->peer, sizeof(c->peer));
	if (getsockname(fd, (struct sockaddr *)&c->local_sa, &sl) == 0)
		conn_sockaddr_format((struct sockaddr *)&c->local_sa, ip, sizeof(ip), c->local,
				     sizeof(c->local));
	LIST_INSERT_HEAD(&w->l4conns, c, entry);
	w->nl4++;
	atomic_fetch_add_explicit(&mg_total_conns, 1, memory_order_relaxed);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	c->timer = evtimer_new(w->base, l4_hello_timeout_cb, c);
	if (c->timer == NULL) {
		l4_close(c, "out of memory");
		return;
	}
	if (lc->protocol == GWP_TCP) {
		const struct l4_target *t =
		    router_l4_select(&lc->tcp, (const struct sockaddr *)&c->local_sa);

		if (t == NULL)
			l4_no_route(c, "no tcp route");
		else
			l4_route(c, t);
		return;
	}
	/* Edge-triggered: the peek leaves the bytes queued, so a level-triggered event would
	 * fire again at once; an edge comes with each new segment. */
	c->edge = (event_base_get_features(w->base) & EV_FEATURE_ET) != 0;
	c->rev =
	    event_new(w->base, fd, EV_READ | (c->edge ? EV_PERSIST | EV_ET : 0), l4_hello_cb, c);
	if (c->rev == NULL || event_add(c->rev, NULL) != 0) {
		l4_close(c, "cannot watch the client");
		return;
	}
	l4_arm(c, l4_main(c)->timeouts.request_headers_us);
}
