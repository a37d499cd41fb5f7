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
#include <event2/event.h>

#include "accesslog.h"
#include "affinity.h"
#include "authz.h"
#include "clienthello.h"
#include "clock.h"
#include "clusterstate.h"
#include "conn.h"
#include "connpool.h"
#include "errors.h"
#include "l4proxy.h"
#include "logfilter.h"
#include "lb_hash.h"
#include "locality.h"
#include "istiometrics.h"
#include "log.h"
#include "outlier.h"
#include "proxyproto.h"
#include "router.h"
#include "snapshot.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

/* A paused reader resumes once the queue it fills is back under this. */
#define L4PROXY_LOW_WM (64 * 1024)
/* One read's worth: what a socket typically holds when it wakes us. */
#define L4PROXY_READ_MAX (64 * 1024)

enum l4_state {
	L4_HELLO = 0,  /* waiting for the ClientHello (passthrough listeners) */
	L4_CONNECTING, /* connecting upstream */
	L4_RELAY,      /* copying both ways */
};

/* One end of the relay.  Bytes read from it go straight to the other end; only what the
 * other end does not take at once waits in `pending` (the other end's queue), so an idle
 * or keeping-up relay holds no buffer. */
struct l4side {
	int fd;
	struct event *rev, *wev;  /* readable (persistent), writable (while pending) */
	struct evbuffer *pending; /* read from the other side, not yet written here */
	uint64_t in, out;         /* bytes read from / written to this side */
	bool reading, writing;    /* rev / wev added */
	bool eof;                 /* this side sent FIN */
	bool shut;                /* we sent FIN to this side */
};

struct l4conn {
	LIST_ENTRY(l4conn) entry;
	struct worker *w;
	struct wsnap *ws;
	const struct listener_cfg *lc;
	enum l4_state state;
	struct event *hev;   /* L4_HELLO: the client is readable (edge-triggered) */
	struct event *timer; /* hello deadline, connect timeout, idle check */
	struct l4side down, up;
	const struct cluster *cl;
	const struct endpoint *ep;
	struct upstream_host *uh;
	struct cluster_state *counted; /* counted in its cx_active (circuit breaking) */
	bool logged;       /* a decision was made: the close writes an access-log line */
	bool edge;         /* the backend has edge-triggered events (epoll) */
	bool pp_wait;      /* the PROXY protocol header is still to come (proxyProtocol) */
	bool istio_opened; /* counted in istio_tcp_connections_opened_total */
	uint64_t istio_in, istio_out; /* client bytes already added to the TCP metrics */
	char flags[16];               /* "-" when empty */
	const char *details;
	struct authz_shadow shadow; /* dry-run AuthorizationPolicies' verdicts, for the log */
	uint64_t start_us, last_us;
	struct timespec start_wall;
	uint64_t idle_us;
	uint32_t port;
	struct sockaddr_storage peer_sa, local_sa;
	const char *lkey; /* worker_key_intern */
	char peer[64], local[64], up_local[64];
	char sni[256];
	size_t sni_len;
};

/* ClientHello peeks and relay reads: one worker thread uses it for one call at a time. */
#define L4_BUF (L4PROXY_READ_MAX > CLIENTHELLO_WIRE_MAX ? L4PROXY_READ_MAX : CLIENTHELLO_WIRE_MAX)
_Static_assert(L4_BUF >= PROXYPROTO_MAX, "the PROXY header is peeked into l4_buf");
static __thread uint8_t l4_buf[L4_BUF];
static __thread uint8_t l4_scratch[CLIENTHELLO_SCRATCH];

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

	memset(&e, 0, sizeof(e));
	e.start = c->start_wall;
	e.duration_us = l4_now_us() - c->start_us;
	e.upstream_time_us = -1;
	e.grpc_status = -1;
	e.protocol = "-";
	e.status = 0;
	e.flags = c->flags[0] ? c->flags : "-";
	e.details = c->details != NULL ? c->details : "-";
	e.bytes_received = c->down.in;
	e.bytes_sent = c->down.out;
	e.upstream_host = c->ep != NULL ? c->ep->name : NULL;
	e.upstream_cluster = c->cl != NULL ? c->cl->name : NULL;
	e.upstream_local = c->up_local[0] ? c->up_local : NULL;
	e.downstream_local = c->local;
	e.downstream_remote = c->peer;
	e.requested_server_name = c->sni_len ? c->sni : NULL;
	e.requested_server_name_len = c->sni_len;
	if (c->shadow.deny.verdict != AUTHZ_NOT_EVALUATED ||
	    c->shadow.allow.verdict != AUTHZ_NOT_EVALUATED)
		e.shadow = &c->shadow;
	if (logfilter_pass(c->ws->snap->set, &e, NULL, NULL))
		accesslog_write(c->w->alog, &e, c->ws->snap->set->access_log_custom);
}

static void l4_side_free(struct l4side *s)
{
	if (s->rev != NULL)
		event_free(s->rev);
	if (s->wev != NULL)
		event_free(s->wev);
	if (s->pending != NULL)
		evbuffer_free(s->pending);
	if (s->fd >= 0)
		close(s->fd);
}

/* The one exit: log, release everything, uncount. */
static void l4_close(struct l4conn *c, const char *why)
{
	struct worker *w = c->w;

	if (c->logged)
		l4_log(c);
	if (c->istio_opened)
		istiom_tcp_closed(w->istio, c->cl->state, c->flags[0] ? c->flags : "-",
				  c->down.in - c->istio_in, c->down.out - c->istio_out);
	log_debug("l4 connection from %s on %s closed: %s", c->peer, c->lkey, why);
	if (c->hev != NULL)
		event_free(c->hev);
	if (c->timer != NULL)
		event_free(c->timer);
	l4_side_free(&c->down);
	l4_side_free(&c->up);
	if (c->uh != NULL && c->uh->active_rq > 0)
		c->uh->active_rq--;
	if (c->counted != NULL)
		clusterstate_release(&c->counted->cx_active);
	LIST_REMOVE(c, entry);
	w->nl4--;
	atomic_fetch_sub_explicit(&mg_total_conns, 1, memory_order_relaxed);
	worker_snap_unpin(c->ws);
	free(c);
	worker_check_drained(w);
}

void l4proxy_report_metrics(struct worker *w)
{
	for (struct l4conn *c = LIST_FIRST(&w->l4conns); c != NULL; c = LIST_NEXT(c, entry)) {
		if (!c->istio_opened || (c->down.in == c->istio_in && c->down.out == c->istio_out))
			continue;
		istiom_tcp_bytes(w->istio, c->cl->state, c->down.in - c->istio_in,
				 c->down.out - c->istio_out);
		c->istio_in = c->down.in;
		c->istio_out = c->down.out;
	}
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

static void l4_want_read(struct l4side *s, bool on)
{
	if (s->reading == on)
		return;
	s->reading = on;
	if (on)
		event_add(s->rev, NULL);
	else
		event_del(s->rev);
}

static void l4_want_write(struct l4side *s, bool on)
{
	if (s->writing == on)
		return;
	s->writing = on;
	if (on)
		event_add(s->wev, NULL);
	else
		event_del(s->wev);
}

static size_t l4_pending(const struct l4side *s)
{
	return s->pending != NULL ? evbuffer_get_length(s->pending) : 0;
}

/* dst's peer sent FIN and everything before it is delivered: pass it on.  Returns false
 * when the relay closed (both directions done). */
static bool l4_pass_eof(struct l4conn *c, struct l4side *dst)
{
	if (!dst->shut && l4_other(c, dst)->eof && l4_pending(dst) == 0) {
		shutdown(dst->fd, SHUT_WR);
		dst->shut = true;
	}
	if (c->down.shut && c->up.shut) {
		l4_close(c, "both directions done");
		return false;
	}
	return true;
}

/* Write what is queued for dst; resume its source once the queue is short again.  Returns
 * false when the relay closed. */
static bool l4_flush(struct l4conn *c, struct l4side *dst)
{
	struct l4side *src = l4_other(c, dst);
	int n;

	if (l4_pending(dst) > 0) {
		n = evbuffer_write(dst->pending, dst->fd);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			l4_close(c,
				 dst == &c->down ? "client write error" : "upstream write error");
			return false;
		}
		if (n > 0)
			dst->out += (uint64_t)n;
	}
	l4_want_write(dst, l4_pending(dst) > 0);
	if (!src->eof && !src->reading && l4_pending(dst) < L4PROXY_LOW_WM)
		l4_want_read(src, true);
	return l4_pass_eof(c, dst);
}

static void l4_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;
	struct l4side *src = fd == c->down.fd ? &c->down : &c->up, *dst = l4_other(c, src);
	ssize_t n, w = 0;

	n = read(src->fd, l4_buf, L4PROXY_READ_MAX);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		l4_close(c, src == &c->down ? "client read error" : "upstream read error");
		return;
	}
	c->last_us = l4_now_us();
	if (n == 0) {
		/* A half-close: the other direction may go on. */
		src->eof = true;
		l4_want_read(src, false);
		l4_pass_eof(c, dst);
		return;
	}
	src->in += (uint64_t)n;
	/* Straight through when nothing is queued; the rest waits for dst to be writable. */
	if (l4_pending(dst) == 0) {
		w = write(dst->fd, l4_buf, (size_t)n);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			l4_close(c,
				 dst == &c->down ? "client write error" : "upstream write error");
			return;
		}
		if (w < 0)
			w = 0;
		dst->out += (uint64_t)w;
	}
	if (w < n) {
		if (dst->pending == NULL && (dst->pending = evbuffer_new()) == NULL) {
			l4_close(c, "out of memory");
			return;
		}
		if (evbuffer_add(dst->pending, l4_buf + w, (size_t)(n - w)) != 0) {
			l4_close(c, "out of memory");
			return;
		}
		l4_want_write(dst, true);
		/* Back-pressure: the source waits while its bytes pile up here. */
		if (l4_pending(dst) >= L4PROXY_HIGH_WM)
			l4_want_read(src, false);
	}
}

static void l4_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;

	c->last_us = l4_now_us();
	l4_flush(c, fd == c->down.fd ? &c->down : &c->up);
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

static bool l4_side_events(struct l4conn *c, struct l4side *s)
{
	s->rev = event_new(c->w->base, s->fd, EV_READ | EV_PERSIST, l4_read_cb, c);
	s->wev = event_new(c->w->base, s->fd, EV_WRITE | EV_PERSIST, l4_write_cb, c);
	return s->rev != NULL && s->wev != NULL;
}

static void l4_connected(struct l4conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[64];

	c->state = L4_RELAY;
	evtimer_del(c->timer);
	if (getsockname(c->up.fd, (struct sockaddr *)&ss, &sl) == 0)
		conn_sockaddr_format((struct sockaddr *)&ss, ip, sizeof(ip), c->up_local,
				     sizeof(c->up_local));
	/* The connect wait used up.wev: from now on it means "pending bytes to write". */
	event_del(c->up.wev);
	event_assign(c->up.wev, c->w->base, c->up.fd, EV_WRITE | EV_PERSIST, l4_write_cb, c);
	c->up.writing = false;
	if (!l4_side_events(c, &c->down) || c->up.rev == NULL) {
		l4_close(c, "out of memory");
		return;
	}
	l4_want_read(&c->down, true);
	l4_want_read(&c->up, true);
	/* A connection that works resets the endpoint's consecutive failures. */
	if (c->cl->outlier != NULL)
		outlier_report(c->cl, c->ep, 200, clock_mono_us());
	/* connectionPool.tcp.idleTimeout is what Istio gives tcp_proxy's idle_timeout. */
	c->idle_us = c->cl->pool_limits != NULL && c->cl->pool_limits->tcp_idle_timeout_us > 0
			 ? c->cl->pool_limits->tcp_idle_timeout_us
			 : l4_main(c)->timeouts.idle_us;
	c->last_us = l4_now_us();
	event_assign(c->timer, c->w->base, -1, 0, l4_idle_cb, c);
	l4_arm(c, c->idle_us);
}

static void l4_connect_failed(struct l4conn *c, const char *why)
{
	METRIC_INC(&c->w->metrics, upstream_cx_connect_fail);
	CLUSTER_COUNT(c->cl, c->w->id, CC_CX_CONNECT_FAIL);
	if (c->cl->outlier != NULL)
		outlier_report(c->cl, c->ep, 0, clock_mono_us());
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

/* The upstream socket became writable: connected, or the connect failed. */
static void l4_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		l4_connect_failed(c, strerror(err));
		return;
	}
	l4_connected(c);
}

/* An endpoint as the HTTP path picks one: consistent hashing (at L4 only useSourceIp has a
 * key; other policies pick as if unhashed, as Envoy's tcp_proxy), locality ranks, the
 * balancer, then around ejected or unhealthy endpoints.  NULL: none in service. */
static const struct endpoint *l4_pick(struct l4conn *c)
{
	const struct cluster *cl = c->cl;
	const struct endpoint *ep;
	char cookie[AFFINITY_COOKIE_LEN + 1];
	uint64_t key, now = clock_mono_us();

	if (cl->hash_table != NULL && cl->hash_policy != NULL &&
	    cl->hash_policy->source == HASH_SOURCE_IP &&
	    affinity_key(cl->hash_policy, NULL, NULL, c->peer, 0, &key, cookie))
		ep = &cl->endpoints[lb_hash_pick(cl->hash_table, cl->nendpoints, key, 0)];
	else if (cl->nlevels > 1)
		ep = locality_pick(c->w, cl, now);
	else
		ep = upstream_pick(c->w, cl);
	if (ep != NULL && (cl->outlier != NULL || cl->health_check != NULL))
		ep = outlier_pick(c->w, cl, ep, now);
	return ep;
}

/* Connect to an endpoint of the route's cluster; the client is read once connected. */
/* AuthorizationPolicy on a TCP or TLS-passthrough connection (authz.c: HTTP-only fields
 * make an ALLOW rule fail and are left out of a DENY rule, as in Istio): closed when
 * denied, as Envoy's network RBAC filter does. */
static void l4_shadow_log(const struct l4conn *c, const char *prefix, const struct authz_engine *e)
{
	char id[AUTHZ_POLICY_ID_MAX];

	if (e->verdict != AUTHZ_NOT_EVALUATED)
		log_debug("connection from %s on %s: %sshadow %s, matched policy %s", c->peer,
			  c->lkey, prefix, authz_verdict_text(e->verdict),
			  authz_policy_id(e, id, sizeof(id)));
}

/* Dry-run AuthorizationPolicies: Envoy's network RBAC shadow counters and debug lines;
 * the verdicts stay with the connection for its access-log line. */
static void l4_shadow(struct l4conn *c)
{
	struct metrics_shard *m = &c->w->metrics;

	if (c->shadow.deny.verdict == AUTHZ_DENIED)
		METRIC_INC(m, downstream_cx_rbac_istio_dry_run_deny_shadow_denied);
	else if (c->shadow.deny.verdict == AUTHZ_ALLOWED)
		METRIC_INC(m, downstream_cx_rbac_istio_dry_run_deny_shadow_allowed);
	if (c->shadow.allow.verdict == AUTHZ_DENIED)
		METRIC_INC(m, downstream_cx_rbac_istio_dry_run_allow_shadow_denied);
	else if (c->shadow.allow.verdict == AUTHZ_ALLOWED)
		METRIC_INC(m, downstream_cx_rbac_istio_dry_run_allow_shadow_allowed);
	if (log_debug_enabled()) {
		l4_shadow_log(c, AUTHZ_DRY_RUN_DENY, &c->shadow.deny);
		l4_shadow_log(c, AUTHZ_DRY_RUN_ALLOW, &c->shadow.allow);
	}
}

static bool l4_denied(struct l4conn *c)
{
	const struct cfg_set *set = c->ws != NULL ? c->ws->snap->set : NULL;
	struct authz_request ar;
	const char *why;

	if (set == NULL || !authz_any(set))
		return false;
	memset(&ar, 0, sizeof(ar));
	ar.peer = (const struct sockaddr *)&c->peer_sa;
	ar.local = (const struct sockaddr *)&c->local_sa;
	ar.port = c->port;
	ar.sni = c->sni_len > 0 ? c->sni : NULL;
	why = authz_check(set, &ar, &c->shadow);
	if (authz_dry_run(set))
		l4_shadow(c);
	if (why == NULL)
		return false;
	METRIC_INC(&c->w->metrics, downstream_cx_rbac_denied);
	log_info("connection from %s on %s denied by access policy: %s", c->peer, c->lkey, why);
	c->details = why;
	c->logged = true;
	l4_close(c, "denied by an AuthorizationPolicy");
	return true;
}

static void l4_route(struct l4conn *c, const struct l4_target *t)
{
	struct worker *w = c->w;
	const struct route_destination *rd;
	const struct conn_pool_settings *lim;
	uint64_t connect_us;
	int one = 1;

	if (l4_denied(c))
		return;
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
	lim = c->cl->pool_limits;
	/* connectionPool.tcp.maxConnections: Envoy's tcp_proxy closes the connection (UO). */
	if (lim != NULL && lim->max_connections > 0 && c->cl->state != NULL) {
		if (!clusterstate_admit(&c->cl->state->cx_active, lim->max_connections)) {
			atomic_fetch_add_explicit(&c->cl->state->cx_overflow, 1,
						  memory_order_relaxed);
			METRIC_INC(&w->metrics, upstream_rq_overflow);
			l4_flag(c, "UO");
			c->details = "upstream_overflow";
			l4_close(c, "upstream overflow: maxConnections");
			return;
		}
		c->counted = c->cl->state;
	}
	c->ep = l4_pick(c);
	if (c->ep == NULL) {
		METRIC_INC(&w->metrics, upstream_rq_no_healthy);
		l4_flag(c, "UH");
		c->details = "no_healthy_upstream";
		l4_close(c, "no healthy upstream");
		return;
	}
	c->uh = connpool_host(w->pool, c->ep);
	if (c->uh != NULL)
		c->uh->active_rq++; /* LEAST_REQUEST counts open relays */
	METRIC_INC(&w->metrics, upstream_cx_total);
	if (!c->ws->snap->set->metrics_tcp_off) {
		istiom_tcp_opened(w->istio, c->cl->state);
		c->istio_opened = true;
	}
	c->up.fd = socket(c->ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->up.fd < 0) {
		l4_connect_failed(c, strerror(errno));
		return;
	}
	setsockopt(c->up.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	connpool_keepalive(c->up.fd, lim);
	c->state = L4_CONNECTING;
	if (connect(c->up.fd, (const struct sockaddr *)&c->ep->addr, c->ep->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		l4_connect_failed(c, strerror(errno));
		return;
	}
	c->up.rev = event_new(w->base, c->up.fd, EV_READ | EV_PERSIST, l4_read_cb, c);
	c->up.wev = event_new(w->base, c->up.fd, EV_WRITE, l4_connect_cb, c);
	if (c->up.rev == NULL || c->up.wev == NULL) {
		l4_close(c, "out of memory");
		return;
	}
	event_add(c->up.wev, NULL);
	connect_us = lim != NULL && lim->connect_timeout_us > 0
			 ? lim->connect_timeout_us
			 : l4_main(c)->timeouts.upstream_connect_us;
	event_assign(c->timer, w->base, -1, 0, l4_connect_timeout_cb, c);
	l4_arm(c, connect_us);
}

/* ---- the passthrough front ---- */

static void l4_hello_failed(struct l4conn *c, const char *why)
{
	/* A PERMISSIVE port's silent client is what an idle HTTP connection is: no count. */
	if (c->lc->mtls != PA_PERMISSIVE)
		METRIC_INC(&c->w->metrics, downstream_cx_hello_fail);
	l4_close(c, why);
}

static void l4_hello_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct l4conn *c = arg;

	if (c->pp_wait) {
		METRIC_INC(&c->w->metrics, downstream_cx_proxy_proto_error);
		l4_close(c, "no complete PROXY protocol header in time");
		return;
	}
	l4_hello_failed(c, c->lc->mtls == PA_PERMISSIVE ? "no byte in time"
							: "no complete ClientHello in time");
}

/* A terminating server on this port owns the SNI, or a PERMISSIVE port saw its first byte:
 * the socket goes to conn.c untouched, TLS-terminating unless tls is NULL. */
static void l4_handoff(struct l4conn *c, const struct tls_sni_table *tls)
{
	struct worker *w = c->w;
	struct wsnap *ws = c->ws;
	int fd = c->down.fd;

	event_free(c->hev);
	event_free(c->timer);
	LIST_REMOVE(c, entry);
	w->nl4--;
	atomic_fetch_sub_explicit(&mg_total_conns, 1, memory_order_relaxed);
	conn_start(w, c->lkey, c->port, fd, (const struct sockaddr *)&c->peer_sa,
		   (const struct sockaddr *)&c->local_sa, ws, tls);
	free(c);
}

static void l4_hello_cb(evutil_socket_t fd, short what, void *arg);

/* The PROXY protocol header, peeked then taken off the socket exactly: true once it is,
 * the client's and local addresses now the ones it tells; false while it is incomplete
 * (or when the connection was closed for it). */
static bool l4_proxy_header(struct l4conn *c)
{
	struct proxyproto pp;
	const char *why;
	char ip[64];
	ssize_t n = recv(c->down.fd, l4_buf, PROXYPROTO_MAX, MSG_PEEK);
	int len;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0) {
		METRIC_INC(&c->w->metrics, downstream_cx_proxy_proto_error);
		l4_close(c, n == 0 ? "client closed before its PROXY protocol header"
				   : strerror(errno));
		return false;
	}
	len = proxyproto_parse(l4_buf, (size_t)n, &pp, &why);
	if (len == 0) {
		if (!c->edge) { /* as for the ClientHello: look again shortly */
			struct timeval tv = {0, 5000};

			event_del(c->hev);
			event_assign(c->hev, c->w->base, -1, 0, l4_hello_cb, c);
			evtimer_add(c->hev, &tv);
		}
		return false;
	}
	if (len < 0 || recv(c->down.fd, l4_buf, (size_t)len, 0) != len) {
		METRIC_INC(&c->w->metrics, downstream_cx_proxy_proto_error);
		log_info("connection from %s on %s closed: PROXY protocol: %s", c->peer, c->lkey,
			 len < 0 ? why : "short read");
		l4_close(c, "invalid PROXY protocol header");
		return false;
	}
	c->pp_wait = false;
	if (pp.has_addresses) {
		memcpy(&c->peer_sa, &pp.src, sizeof(c->peer_sa));
		memcpy(&c->local_sa, &pp.dst, sizeof(c->local_sa));
		conn_sockaddr_format((struct sockaddr *)&c->peer_sa, ip, sizeof(ip), c->peer,
				     sizeof(c->peer));
		conn_sockaddr_format((struct sockaddr *)&c->local_sa, ip, sizeof(ip), c->local,
				     sizeof(c->local));
	}
	return true;
}

/* What the listener does with a connection once its PROXY header (if any) is read: a tcp
 * route at once, a ClientHello (or a PERMISSIVE port's first byte) peeked, or, on a port
 * that does neither, the socket handed to conn.c. */
static void l4_proceed(struct l4conn *c)
{
	const struct listener_cfg *lc = c->lc;

	if (lc->protocol == GWP_TCP) {
		const struct l4_target *t =
		    router_l4_select(&lc->tcp, (const struct sockaddr *)&c->local_sa);

		if (c->hev != NULL) {
			event_free(c->hev);
			c->hev = NULL;
		}
		evtimer_del(c->timer);
		if (t == NULL)
			l4_no_route(c, "no tcp route");
		else
			l4_route(c, t);
		return;
	}
	if (!lc->peek && lc->mtls != PA_PERMISSIVE) {
		l4_handoff(c, lc->mtls != PA_DISABLE ? lc->tls : NULL);
		return;
	}
	/* the bytes after the header may be there already: no new edge would tell */
	l4_hello_cb(c->down.fd, EV_READ, c);
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

	if (c->pp_wait) {
		if (!l4_proxy_header(c))
			return;
		l4_proceed(c);
		return;
	}
	/* A PERMISSIVE port needs one byte; a passthrough front the whole ClientHello. */
	n = recv(c->down.fd, l4_buf, c->lc->mtls == PA_PERMISSIVE ? 1 : CLIENTHELLO_WIRE_MAX,
		 MSG_PEEK);
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
	if (c->lc->mtls == PA_PERMISSIVE) {
		/* One byte decides: mutual TLS as STRICT does, or plaintext HTTP on the
		 * same routes (the HTTP parser judges what is not a request). */
		bool tls = clienthello_is_tls(l4_buf, (size_t)n);

		c->w->metrics
		    .permissive[tls ? METRICS_PERMISSIVE_TLS : METRICS_PERMISSIVE_PLAINTEXT]++;
		l4_handoff(c, tls ? c->lc->tls : NULL);
		return;
	}
	rc = clienthello_parse(l4_buf, (size_t)n, l4_scratch, &ch, &why);
	if (rc == MG_AGAIN) {
		/* The next segment raises a new edge; without edge triggering, look again
		 * shortly (level triggering would report the peeked bytes at once). */
		if (!c->edge) {
			struct timeval tv = {0, 5000};

			event_del(c->hev);
			event_assign(c->hev, c->w->base, -1, 0, l4_hello_cb, c);
			evtimer_add(c->hev, &tv);
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
		l4_handoff(c, c->lc->tls);
		return;
	}
	event_free(c->hev);
	c->hev = NULL;
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
	c->down.fd = fd;
	c->up.fd = -1;
	c->port = port;
	c->start_us = c->last_us = l4_now_us();
	clock_gettime(CLOCK_REALTIME, &c->start_wall);
	c->lkey = lkey;
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
	/* The PROXY protocol header first, on every port, when the balancer in front sends
	 * it (main config proxyProtocol). */
	c->pp_wait = l4_main(c)->proxy_protocol;
	if (lc->protocol == GWP_TCP && !c->pp_wait) {
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
	c->hev =
	    event_new(w->base, fd, EV_READ | (c->edge ? EV_PERSIST | EV_ET : 0), l4_hello_cb, c);
	if (c->hev == NULL || event_add(c->hev, NULL) != 0) {
		l4_close(c, "cannot watch the client");
		return;
	}
	l4_arm(c, l4_main(c)->timeouts.request_headers_us);
}
