#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "affinity.h"
#include "clock.h"
#include "clusterstate.h"
#include "conn.h"
#include "connpool.h"
#include "cors.h"
#include "exchange.h"
#include "extauthz.h"
#include "h2down.h"
#include "headbuf.h"
#include "errors.h"
#include "h2up.h"
#include "http1.h"
#include "lb_hash.h"
#include "local_reply.h"
#include "logfilter.h"
#include "locality.h"
#include "log.h"
#include "mirror.h"
#include "outlier.h"
#include "proxy.h"
#include "regex.h"
#include "request.h"
#include "retry.h"
#include "router.h"
#include "snapshot.h"
#include "stream.h"
#include "upstream.h"
#include "worker.h"

/* Back-pressure: stop reading one side while the other side's output holds more than
 * HIGH bytes; resume when it drains to LOW.  Bounds memory per exchange to ~2 x HIGH. */
#define BP_HIGH (1024 * 1024)
#define BP_LOW (256 * 1024)
/* Response bytes waiting for an HTTP/2 client's stream (h2down.h): a connection carries up to
 * 100 streams, so each gets a sixteenth of what a connection of its own would. */
#define BP_HIGH_H2_STREAM (64 * 1024)
#define UP_MAX_HEAD (64 * 1024)
#define UP_MAX_HEADERS 256
/* A request body is kept for a retry up to this size; a longer one is sent once. */
#define RETRY_REPLAY_MAX (64 * 1024)

static void up_read_cb(struct stream *st, void *arg);
static void up_write_cb(struct stream *st, void *arg);
static void up_event_cb(struct stream *st, short what, void *arg);

static const struct cfg_main *ex_main(const struct exchange *ex)
{
	return &ex->ws->snap->set->main;
}

/* The try's upstream byte streams: the connection's, or an HTTP/2 stream's (h2up.h), which
 * carries the same HTTP/1.1 bytes. */
static inline struct evbuffer *up_output(struct exchange *ex)
{
	return ex->h2 != NULL ? h2up_stream_output(ex->h2) : stream_output(ex->uc->st);
}

static inline struct evbuffer *up_input(struct exchange *ex)
{
	return ex->h2 != NULL ? h2up_stream_input(ex->h2) : stream_input(ex->uc->st);
}

static void up_reading(struct exchange *ex, bool on)
{
	if (ex->h2 != NULL)
		h2up_stream_read(ex->h2, on);
	else if (on)
		stream_enable(ex->uc->st, EV_READ);
	else
		stream_disable(ex->uc->st, EV_READ);
}

static bool name_in(const char *name, size_t len, const struct str_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (http1_name_eq(name, len, l->v[i]))
			return true;
	return false;
}

static bool name_in_kv(const char *name, size_t len, const struct kv_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (http1_name_eq(name, len, l->v[i].key))
			return true;
	return false;
}

/* Case-insensitive compare against a literal, length first: most header names differ in
 * length, so most checks end before touching a byte (and no strlen per call). */
#define NAME_IS(n, len, lit) HTTP1_NAME_IS(n, len, lit)

/* RFC 9110 §7.6.1: connection-specific fields are not forwarded. */
static bool hop_by_hop(const char *name, size_t len)
{
	return NAME_IS(name, len, "connection") || NAME_IS(name, len, "keep-alive") ||
	       NAME_IS(name, len, "proxy-connection") || NAME_IS(name, len, "te") ||
	       NAME_IS(name, len, "trailer") || NAME_IS(name, len, "transfer-encoding") ||
	       NAME_IS(name, len, "upgrade");
}

/* The field names a message's Connection fields list (RFC 9110 §7.6.1), split once per
 * message so each header is checked against a few tokens instead of rescanning. */
#define CONN_TOKENS_MAX 16

struct conn_tokens {
	const char *t[CONN_TOKENS_MAX];
	size_t len[CONN_TOKENS_MAX];
	size_t n;
};

static void conn_tokens_parse(const struct http1_header *h, size_t n, struct conn_tokens *ct)
{
	ct->n = 0;
	for (size_t i = 0; i < n; i++) {
		const char *v = h[i].value, *end = v + h[i].value_len;

		if (!NAME_IS(h[i].name, h[i].name_len, "connection"))
			continue;
		while (v < end) {
			const char *s, *e;

			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			s = v;
			while (v < end && *v != ',')
				v++;
			e = v;
			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			/* Past the cap the rest are dropped: more than 16 hop-by-hop names is
			 * not a real client, and forwarding an extra header is the safe error. */
			if (e > s && ct->n < CONN_TOKENS_MAX) {
				ct->t[ct->n] = s;
				ct->len[ct->n] = (size_t)(e - s);
				ct->n++;
			}
		}
	}
}

static bool listed_in_connection(const struct conn_tokens *ct, const char *name, size_t len)
{
	for (size_t i = 0; i < ct->n; i++)
		if (ct->len[i] == len && strncasecmp(ct->t[i], name, len) == 0)
			return true;
	return false;
}

static void add_header_ops(struct headbuf *hb, const struct header_op_list *ops)
{
	size_t i;

	for (i = 0; i < ops->set.n; i++)
		headbuf_header(hb, ops->set.v[i].key, strlen(ops->set.v[i].key),
			       ops->set.v[i].value, strlen(ops->set.v[i].value));
	for (i = 0; i < ops->add.n; i++)
		headbuf_header(hb, ops->add.v[i].key, strlen(ops->add.v[i].key),
			       ops->add.v[i].value, strlen(ops->add.v[i].value));
}

static bool ops_drop(const struct header_op_list *ops, const char *name, size_t len)
{
	return name_in(name, len, &ops->remove) || name_in_kv(name, len, &ops->set);
}

/* The path sent upstream: normalised request path, rewritten per route.rewrite. */
static size_t rewrite_path(const struct http_route *route, const struct route_request *rq,
			   char *out, size_t outsize)
{
	const struct http_rewrite *rw = route->more->rewrite;
	size_t i, plen = rq->path_len;

	if (rw->uri_regex.re != NULL) {
		long n = regex_replace(rw->uri_regex.re, rq->path, rq->path_len,
				       rw->uri_regex.rewrite, out, outsize);

		if (n >= 0)
			return (size_t)n;
	} else if (rw->uri != NULL) {
		size_t ulen = strlen(rw->uri), cut = 1; /* no uri match: Envoy's prefix is "/" */
		bool whole = false;

		for (i = 0; i < route->nmatches; i++) {
			const struct string_match *m = &route->matches[i].uri;

			if (m->kind == SM_PREFIX && m->len <= plen &&
			    (route->matches[i].ignore_uri_case
				 ? strncasecmp(rq->path, m->value, m->len) == 0
				 : memcmp(rq->path, m->value, m->len) == 0)) {
				cut = m->len;
				break;
			}
			if (m->kind == SM_EXACT || m->kind == SM_REGEX) {
				whole = true;
				break;
			}
		}
		if (whole)
			cut = plen;
		if (rq->path_len >= 1 && cut <= plen && ulen + (plen - cut) < outsize) {
			memcpy(out, rw->uri, ulen);
			memcpy(out + ulen, rq->path + cut, plen - cut);
			return ulen + plen - cut;
		}
	}
	if (plen > outsize)
		plen = outsize;
	memcpy(out, rq->path, plen);
	return plen;
}

static void build_upstream_head(struct exchange *ex, const struct http1_request *req,
				const struct route_request *rq)
{
	struct headbuf hb;
	const struct http_route *route = ex->route;
	const struct headers_ops *dops = ex->rd->headers;
	char path[8192], peer[CONN_ADDR_TEXT];
	size_t plen = rewrite_path(route, rq, path, sizeof(path)), i;
	const char *authority = route->more->rewrite->authority;
	struct conn_tokens ct;
	size_t alen = authority != NULL ? strlen(authority) : 0;
	bool te_sent = false;

	if (authority == NULL) {
		authority = rq->authority;
		alen = rq->authority_len;
	}
	conn_tokens_parse(req->headers, req->nheaders, &ct);
	headbuf_init(&hb, ex->up_head);
	headbuf_add(&hb, req->method, req->method_len);
	HEADBUF_LIT(&hb, " ");
	headbuf_add(&hb, path, plen);
	if (rq->query != NULL) {
		HEADBUF_LIT(&hb, "?");
		headbuf_add(&hb, rq->query, rq->query_len);
	}
	HEADBUF_LIT(&hb, " HTTP/1.1\r\nhost: ");
	headbuf_add(&hb, authority, alen);
	HEADBUF_LIT(&hb, "\r\n");
	for (i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		/* TE is hop-by-hop, but "trailers" in it says the client takes trailers, which
		 * gRPC upstreams look for: it goes on alone, as Envoy does ("gzip, trailers"
		 * becomes "trailers"); any other coding is the client's business with us. */
		if (hop_by_hop(h->name, h->name_len)) {
			if (!te_sent && NAME_IS(h->name, h->name_len, "te") &&
			    http1_list_has(h->value, h->value_len, "trailers")) {
				HEADBUF_LIT(&hb, "te: trailers\r\n");
				te_sent = true;
			}
			continue;
		}
		if (NAME_IS(h->name, h->name_len, "host") ||
		    NAME_IS(h->name, h->name_len, "content-length") ||
		    NAME_IS(h->name, h->name_len, "expect") ||
		    NAME_IS(h->name, h->name_len, "x-forwarded-for") ||
		    NAME_IS(h->name, h->name_len, "x-forwarded-proto") ||
		    NAME_IS(h->name, h->name_len, "x-request-id") ||
		    NAME_IS(h->name, h->name_len, "x-forwarded-client-cert") ||
		    ops_drop(&route->headers->request, h->name, h->name_len) ||
		    ops_drop(&dops->request, h->name, h->name_len) ||
		    listed_in_connection(&ct, h->name, h->name_len))
			continue;
		headbuf_header(&hb, h->name, h->name_len, h->value, h->value_len);
	}
	/* Envoy at the edge (use_remote_address) appends the peer to x-forwarded-for and sets
	 * x-forwarded-proto from the listener. */
	HEADBUF_LIT(&hb, "x-forwarded-for: ");
	if (ex->xff != NULL) {
		headbuf_add(&hb, ex->xff, ex->xff_len);
		HEADBUF_LIT(&hb, ", ");
	}
	headbuf_add(&hb, peer, conn_peer_text(ex->c, false, peer));
	HEADBUF_LIT(&hb, "\r\nx-forwarded-proto: ");
	headbuf_str(&hb, rq->scheme);
	HEADBUF_LIT(&hb, "\r\n");
	headbuf_header(&hb, "x-request-id", 12, ex->request_id, ex->request_id_len);
	/* Istio's gateway default (SANITIZE_SET): a client's own x-forwarded-client-cert is
	 * dropped above; a verified client certificate sets it. */
	if (ex->c->ssl != NULL) {
		const char *xfcc = conn_xfcc(ex->c);

		if (xfcc != NULL)
			headbuf_header(&hb, "x-forwarded-client-cert", 23, xfcc, strlen(xfcc));
	}
	add_header_ops(&hb, &route->headers->request);
	add_header_ops(&hb, &dops->request);
	if (ex->upgrade)
		HEADBUF_LIT(&hb, "upgrade: websocket\r\nconnection: upgrade\r\n");
	if (ex->req_kind == HTTP1_BODY_LENGTH) {
		HEADBUF_LIT(&hb, "content-length: ");
		headbuf_u64(&hb, ex->req_remaining);
		HEADBUF_LIT(&hb, "\r\n");
	} else if (ex->req_kind == HTTP1_BODY_CHUNKED) {
		HEADBUF_LIT(&hb, "transfer-encoding: chunked\r\n");
	}
	HEADBUF_LIT(&hb, "\r\n");
	headbuf_flush(&hb);
}

static void timer_arm(struct exchange *ex, struct event **ev, event_callback_fn cb, uint64_t us)
{
	struct timeval tv;

	if (*ev == NULL)
		*ev = evtimer_new(ex->c->w->base, cb, ex);
	if (*ev == NULL)
		return;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(*ev, &tv);
}

/* End the current try: its connection (kept for reuse or closed), its timers and its
 * request count.  The route timer, which bounds all tries together, is left running. */
static void up_drop(struct exchange *ex, bool reusable)
{
	if (ex->waiter.host != NULL) {
		connpool_unwait(&ex->waiter);
		clusterstate_release(&ex->cl->state->rq_pending);
	}
	if (ex->connect_timer != NULL)
		evtimer_del(ex->connect_timer);
	if (ex->try_timer != NULL)
		evtimer_del(ex->try_timer);
	if (ex->uh != NULL && ex->uh->active_rq > 0)
		ex->uh->active_rq--;
	ex->uh = NULL;
	if (ex->h2 != NULL) {
		h2up_stream_close(ex->h2, reusable);
		ex->h2 = NULL;
	}
	if (ex->uc == NULL)
		return;
	if (reusable)
		connpool_release(ex->uc);
	else
		connpool_close(ex->uc);
	ex->uc = NULL;
}

/* Release the upstream side for good: the exchange is ending. */
static void up_release(struct exchange *ex, bool reusable)
{
	if (ex->route_timer != NULL)
		evtimer_del(ex->route_timer);
	if (ex->backoff_timer != NULL)
		evtimer_del(ex->backoff_timer);
	up_drop(ex, reusable);
	if (ex->rq_counted) {
		clusterstate_release(&ex->cl->state->rq_active);
		ex->rq_counted = false;
	}
	if (ex->retry_counted) {
		clusterstate_release(&ex->cl->state->retries_active);
		ex->retry_counted = false;
	}
}

/* End the exchange with a local error reply (nothing sent to the client yet). */
static void fail_local(struct exchange *ex, int status, const char *flag, const char *details)
{
	struct conn *c = ex->c;
	char body[160];
	int n;

	up_release(ex, false);
	exchange_flag(ex, flag);
	if (ex->retries_exhausted)
		exchange_flag(ex, "URX");
	ex->details = details;
	if (!ex->req_done)
		ex->client_keepalive = false; /* unread body bytes: framing of the rest is lost */
	n = snprintf(body, sizeof(body), "%s\n", details);
	local_reply(ex, status, "text/plain", body, (size_t)n, NULL, !ex->client_keepalive);
	conn_exchange_done(c);
}

/* Something failed after the response head went out: the client must see a broken
 * response, never a truncated one that looks complete. */
static void fail_abort(struct exchange *ex, const char *flag, const char *details)
{
	struct conn *c = ex->c;

	up_release(ex, false);
	exchange_flag(ex, flag);
	ex->details = details;
	conn_close(c, details);
}

/* up_connect's answers */
enum { UP_OK = 0, UP_FAILED = -1, UP_OVERFLOW = -2, UP_NO_HEALTHY = -3, UP_QUEUED = 1 };

/* A circuit breaker (DestinationRule connectionPool) refused the request: 503 UO at once,
 * as Envoy answers an overflow. */
static void overflow(struct exchange *ex, const char *details)
{
	METRIC_INC(&ex->c->w->metrics, upstream_rq_overflow);
	fail_local(ex, 503, "UO", details);
}

/* ---- retries (policy in src/retry.c) ---- */

static int try_start(struct exchange *ex);
static void backoff_cb(evutil_socket_t fd, short what, void *arg);

static const struct retry_policy *ex_retry(const struct exchange *ex)
{
	return &ex->route->retries->policy;
}

/* After a failed try: schedule another one when the policy wants it (wanted), a retry is
 * left, and the request can be replayed (no body byte sent, or all of them kept).
 * Returns false when the caller must answer; a wanted retry that is over the limit marks
 * the exchange for URX, as Envoy does. */
static bool try_again(struct exchange *ex, bool wanted)
{
	struct worker *w = ex->c->w;
	const struct retry_policy *rp = ex_retry(ex);

	if (!wanted || rp->num_retries == 0 || ex->resp_head_sent ||
	    (ex->req_started && !ex->replay_ok))
		return false;
	if (ex->tries > rp->num_retries) {
		METRIC_INC(&w->metrics, upstream_rq_retry_limit_exceeded);
		ex->retries_exhausted = true; /* flagged URX after the failure's own flag */
		return false;
	}
	/* connectionPool.http.maxRetries: concurrent retries towards the cluster */
	if (!ex->retry_counted && ex->cl->pool_limits != NULL &&
	    ex->cl->pool_limits->max_retries > 0 && ex->cl->state != NULL) {
		if (!clusterstate_admit(&ex->cl->state->retries_active,
					ex->cl->pool_limits->max_retries)) {
			atomic_fetch_add_explicit(&ex->cl->state->retry_overflow, 1,
						  memory_order_relaxed);
			METRIC_INC(&w->metrics, upstream_rq_retry_overflow);
			return false;
		}
		ex->retry_counted = true;
	}
	up_drop(ex, false);
	METRIC_INC(&w->metrics, upstream_rq_retry);
	CLUSTER_COUNT(ex->cl, w->id, CC_RQ_RETRY);
	/* no body bytes pile up while we wait: reading resumes when the next try starts */
	if (!ex->req_done)
		stream_disable(ex->c->st, EV_READ);
	timer_arm(ex, &ex->backoff_timer, backoff_cb,
		  retry_backoff_us(rp, ex->tries, worker_random(w)));
	return true;
}

/* A try ended without a response: retry, or answer with status/flag. */
static void up_failed(struct exchange *ex, enum retry_failure f, int status, const char *flag,
		      const char *details)
{
	/* the endpoint failed us (not our own pending queue): outlier detection counts it */
	if (ex->cl->outlier != NULL && ex->ep != NULL && ex->waiter.host == NULL)
		outlier_report(ex->cl, ex->ep, 0, clock_mono_us());
	if (try_again(ex, retry_on_failure(ex_retry(ex), f)))
		return;
	fail_local(ex, status, flag, details);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;
	int rc = try_start(ex);

	if (rc == UP_OVERFLOW) {
		overflow(ex, "upstream overflow: too many pending requests");
		return;
	}
	if (rc == UP_NO_HEALTHY) {
		METRIC_INC(&ex->c->w->metrics, upstream_rq_no_healthy);
		fail_local(ex, 503, "UH", "no healthy upstream");
		return;
	}
	if (rc != UP_OK) {
		METRIC_INC(&ex->c->w->metrics, upstream_cx_connect_fail);
		CLUSTER_COUNT(ex->cl, ex->c->w->id, CC_CX_CONNECT_FAIL);
		up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect error");
		return;
	}
	if (!ex->req_done) {
		conn_read_more(ex->c);
		proxy_client_readable(ex);
	}
}

static void try_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;

	METRIC_INC(&ex->c->w->metrics, upstream_rq_per_try_timeout);
	CLUSTER_COUNT(ex->cl, ex->c->w->id, CC_RQ_TIMEOUT);
	if (ex->resp_head_sent)
		fail_abort(ex, "UT", "upstream per-try timeout");
	else
		up_failed(ex, RETRY_FAIL_PER_TRY, 504, "UT", "upstream per-try timeout");
}

/* A grpc-status value (OWS around it allowed, as in a trailer line): its code, or -1 when it
 * is not one to three digits. */
static int grpc_status_value(const char *v, size_t len)
{
	int code = 0;

	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 3)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		code = code * 10 + (v[i] - '0');
	}
	return code;
}

/* grpc-status of a response head (trailers-only gRPC answers carry it there), or -1. */
static int grpc_status_of(const struct http1_response *resp)
{
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (NAME_IS(h->name, h->name_len, "grpc-status"))
			return grpc_status_value(h->value, h->value_len);
	}
	return -1;
}

/* A retry replays the request body: every byte sent upstream is also kept in ex->replay,
 * up to RETRY_REPLAY_MAX; past that the copy is given up (and with it the retries). */
static void *replay_room(struct exchange *ex, size_t n, struct evbuffer_iovec *v)
{
	if (!ex->replay_ok || n == 0)
		return NULL;
	if (ex->replay == NULL)
		ex->replay = evbuffer_new(); /* kept with the recycled exchange */
	if (ex->replay == NULL || evbuffer_get_length(ex->replay) + n > RETRY_REPLAY_MAX ||
	    evbuffer_reserve_space(ex->replay, (ev_ssize_t)n, v, 1) != 1) {
		ex->replay_ok = false;
		if (ex->replay != NULL)
			evbuffer_drain(ex->replay, evbuffer_get_length(ex->replay));
		return NULL;
	}
	v->iov_len = n;
	return v->iov_base;
}

/* Keep the first n bytes of src (about to move upstream). */
static void replay_keep_buf(struct exchange *ex, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v;
	void *p = replay_room(ex, n, &v);

	if (p != NULL) {
		evbuffer_copyout(src, p, n);
		evbuffer_commit_space(ex->replay, &v, 1);
	}
}

/* Queue request body bytes upstream, keeping the copy. */
static void body_add(struct exchange *ex, struct evbuffer *out, const void *data, size_t n)
{
	struct evbuffer_iovec v;
	void *p = replay_room(ex, n, &v);

	if (p != NULL) {
		memcpy(p, data, n);
		evbuffer_commit_space(ex->replay, &v, 1);
	}
	evbuffer_add(out, data, n);
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;

	METRIC_INC(&ex->c->w->metrics, upstream_cx_connect_fail);
	CLUSTER_COUNT(ex->cl, ex->c->w->id, CC_CX_CONNECT_FAIL);
	up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect timeout");
}

static void response_done(struct exchange *ex);

static void route_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;

	if (ex->tunnel) { /* the route timer is the tunnel's idle timer by now */
		exchange_flag(ex, "SI");
		ex->details = "websocket idle timeout";
		response_done(ex);
		return;
	}

	METRIC_INC(&ex->c->w->metrics, upstream_rq_timeout);
	CLUSTER_COUNT(ex->cl, ex->c->w->id, CC_RQ_TIMEOUT);
	if (!ex->resp_head_sent)
		fail_local(ex, 504, "UT", "upstream request timeout");
	else
		fail_abort(ex, "UT", "upstream request timeout");
}

/* UPSTREAM_LOCAL_ADDRESS: the local end of the upstream connection.  Looked up once per
 * connection (getsockname is a syscall) and copied into each exchange that uses it. */
static void note_upstream_local(struct exchange *ex)
{
	struct upconn *uc = ex->h2 != NULL ? h2up_stream_upconn(ex->h2) : ex->uc;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	evutil_socket_t fd;

	if (uc == NULL)
		return;
	fd = stream_getfd(uc->st);
	if (uc->local[0] == '\0' && fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			snprintf(uc->local, sizeof(uc->local), "%s:%u", ip, ntohs(in->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			snprintf(uc->local, sizeof(uc->local), "[%s]:%u", ip,
				 ntohs(in6->sin6_port));
		}
	}
	memcpy(ex->upstream_local, uc->local, sizeof(ex->upstream_local));
}

static void up_attach(struct exchange *ex, struct upconn *uc)
{
	ex->uc = uc;
	stream_setcb(uc->st, up_read_cb, up_write_cb, up_event_cb, ex);
	stream_setwatermark(uc->st, EV_WRITE, BP_LOW, 0);
	stream_setwatermark(uc->st, EV_READ, 0, BP_HIGH / 4);
	stream_set_read_timeout(uc->st, NULL);
	stream_enable(uc->st, EV_READ | EV_WRITE);
}

/* Get a connection (pooled first) and queue the request head on it. */
/* Queue the request head (and the body kept so far) on the attached connection.  A copy,
 * not a move: both stay until the response starts, for a retry. */
static void up_send(struct exchange *ex)
{
	struct evbuffer *out = up_output(ex);

	evbuffer_add(out, evbuffer_pullup(ex->up_head, -1), evbuffer_get_length(ex->up_head));
	if (ex->req_started && ex->replay != NULL)
		evbuffer_add(out, evbuffer_pullup(ex->replay, -1), evbuffer_get_length(ex->replay));
	if (ex_retry(ex)->per_try_timeout_us > 0)
		timer_arm(ex, &ex->try_timer, try_timeout_cb, ex_retry(ex)->per_try_timeout_us);
	ex->upstream_sent_us = clock_mono_us();
}

static void pending_ready(struct upwaiter *wt, struct upconn *uc);

/* Get a connection (pooled first) and queue the request on it; at the cluster's
 * maxConnections the request waits for one (bounded by http1MaxPendingRequests and the
 * connect timeout).  Returns UP_OK (sent or queued), UP_FAILED (connect failed at once)
 * or UP_OVERFLOW (a circuit breaker said no: 503 UO). */

/* connectionPool maxConnections before a new connection: UP_OK (open it; *counted says
 * whether it is counted in cx_active), UP_QUEUED (the request waits for a connection, up
 * to connect_us) or UP_OVERFLOW. */
static int up_admit_cx(struct exchange *ex, uint64_t connect_us, bool *counted)
{
	const struct conn_pool_settings *lim = ex->cl->pool_limits;
	struct cluster_state *cs = ex->cl->state, *in;

	if (connpool_admit(ex->uh, cs, lim, &in)) {
		*counted = in != NULL;
		return UP_OK;
	}
	*counted = false;
	if (!clusterstate_admit(&cs->rq_pending, lim->max_pending)) {
		atomic_fetch_add_explicit(&cs->rq_pending_overflow, 1, memory_order_relaxed);
		return UP_OVERFLOW;
	}
	ex->waiter.ready = pending_ready;
	connpool_wait(ex->uh, &ex->waiter);
	timer_arm(ex, &ex->connect_timer, connect_timeout_cb, connect_us);
	return UP_QUEUED;
}

static void up_setup(struct exchange *ex, struct upconn *uc, bool counted)
{
	METRIC_INC(&ex->c->w->metrics, upstream_cx_total);
	connpool_setup(uc, counted ? ex->cl->state : NULL, ex->cl->pool_limits);
}

static uint64_t up_connect_us(const struct exchange *ex)
{
	const struct conn_pool_settings *lim = ex->cl->pool_limits;

	return lim != NULL && lim->connect_timeout_us > 0
		   ? lim->connect_timeout_us
		   : ex_main(ex)->timeouts.upstream_connect_us;
}

static void h2_read_cb(void *arg);
static void h2_write_cb(void *arg);
static void h2_event_cb(void *arg, enum h2up_event ev, const char *why);
static const struct h2up_cb h2_cbs = {h2_read_cb, h2_write_cb, h2_event_cb};

/* HTTP/2: a stream on a connection with room, else on a new connection (maxConnections
 * permitting). */
static int up_connect_h2(struct exchange *ex)
{
	struct worker *w = ex->c->w;
	const void *owner = ex->cl->state != NULL ? (const void *)ex->cl->state : ex->cl;
	struct h2up_conn *hc = h2up_find(ex->uh, owner, ex->cl->pool_limits);
	uint64_t connect_us = up_connect_us(ex);
	bool counted = false, ready = false;
	int rc;

	if (hc == NULL) {
		if ((rc = up_admit_cx(ex, connect_us, &counted)) != UP_OK)
			return rc == UP_QUEUED ? UP_OK : rc;
		hc = h2up_connect(w->pool, ex->uh, owner, ex->cl->pool_limits);
		if (hc == NULL) {
			if (counted)
				clusterstate_release(&ex->cl->state->cx_active);
			return UP_FAILED;
		}
		up_setup(ex, h2up_conn_upconn(hc), counted);
	}
	if ((ex->h2 = h2up_stream_open(hc, &h2_cbs, ex, &ready)) == NULL)
		return UP_FAILED;
	ex->h2_reused = ready;
	if (ready) {
		METRIC_INC(&w->metrics, upstream_cx_reuse);
		note_upstream_local(ex);
	} else {
		timer_arm(ex, &ex->connect_timer, connect_timeout_cb, connect_us);
	}
	up_send(ex);
	return UP_OK;
}

/* HTTP/2 towards the endpoint: the cluster speaks it (h2up.h), or useClientProtocol
 * follows a client that speaks it (h2down.h). */
static bool up_speaks_h2(const struct exchange *ex)
{
	const struct conn_pool_settings *cp = ex->cl->pool_limits;

	return ex->cl->http2 || (cp != NULL && cp->use_client_protocol && ex->c->h2 != NULL);
}

static int up_connect(struct exchange *ex, bool allow_pooled)
{
	struct worker *w = ex->c->w;
	struct upconn *uc;
	uint64_t connect_us;
	bool counted;
	int rc;

	if (up_speaks_h2(ex) && !ex->uh->h2_off)
		return up_connect_h2(ex);
	uc = allow_pooled ? connpool_get_idle(w->pool, ex->uh) : NULL;
	if (uc != NULL) {
		METRIC_INC(&w->metrics, upstream_cx_reuse);
		up_attach(ex, uc);
		note_upstream_local(ex);
		up_send(ex);
		return UP_OK;
	}
	connect_us = up_connect_us(ex);
	if ((rc = up_admit_cx(ex, connect_us, &counted)) != UP_OK)
		return rc == UP_QUEUED ? UP_OK : rc;
	uc = connpool_connect(w->pool, ex->uh);
	if (uc == NULL) {
		if (counted)
			clusterstate_release(&ex->cl->state->cx_active);
		return UP_FAILED;
	}
	up_setup(ex, uc, counted);
	timer_arm(ex, &ex->connect_timer, connect_timeout_cb, connect_us);
	up_attach(ex, uc);
	up_send(ex);
	return UP_OK;
}

/* A waiting request is handed a connection, or told that one closed so it may connect. */
static void pending_ready(struct upwaiter *wt, struct upconn *uc)
{
	struct exchange *ex = (struct exchange *)((char *)wt - offsetof(struct exchange, waiter));
	int rc;

	clusterstate_release(&ex->cl->state->rq_pending);
	if (ex->connect_timer != NULL)
		evtimer_del(ex->connect_timer);
	if (uc != NULL) {
		METRIC_INC(&ex->c->w->metrics, upstream_cx_reuse);
		up_attach(ex, uc);
		note_upstream_local(ex);
		up_send(ex);
		return;
	}
	rc = up_connect(ex, true);
	if (rc == UP_OVERFLOW)
		overflow(ex, "upstream overflow: too many pending requests");
	else if (rc != UP_OK)
		up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect error");
}

/* One try: pick an endpoint (another one than last time when the policy says so and the
 * cluster has one: Envoy's previous_hosts predicate, up to 5 picks), then connect. */
static int try_start(struct exchange *ex)
{
	struct worker *w = ex->c->w;
	const struct cluster *cl = ex->cl;
	bool other = ex->tries > 0 && ex_retry(ex)->ignore_previous_hosts && cl->nendpoints > 1;
	const struct endpoint *ep;

	if (cl->hash_table != NULL && ex->hash_given) {
		/* a retry walks on to the next endpoint of the ring */
		ep = &cl->endpoints[lb_hash_pick(cl->hash_table, cl->nendpoints, ex->hash_key,
						 other ? ex->tries : 0)];
	} else if (cl->nlevels > 1) {
		/* locality ranks: the pick already skips what is out of service; a retry with
		 * retryRemoteLocalities leaves the ranks tried */
		unsigned skip =
		    ex->tries > 0 && ex_retry(ex)->remote_localities ? ex->ranks_tried : 0;

		ep = locality_pick_skip(w, cl, clock_mono_us(), skip);
		for (int i = 0; other && ep != NULL && i < 5 && ep == ex->prev_ep; i++)
			ep = locality_pick_skip(w, cl, clock_mono_us(), skip);
		if (ep == NULL)
			return UP_NO_HEALTHY;
		ex->ranks_tried |= 1u << locality_rank_of(cl, ep);
	} else {
		ep = upstream_pick(w, cl);
		for (int i = 0; other && i < 5 && ep == ex->prev_ep; i++)
			ep = upstream_pick(w, cl);
	}
	if ((cl->outlier != NULL || cl->health_check != NULL) &&
	    (ep = outlier_pick(w, cl, ep, clock_mono_us())) == NULL)
		return UP_NO_HEALTHY;
	ex->ep = ep;
	ex->prev_ep = ep;
	ex->tries++;
	ex->uh = connpool_host(w->pool, ep);
	if (ex->uh == NULL)
		return -1;
	ex->uh->active_rq++;
	return up_connect(ex, true);
}

/* A WebSocket handshake (RFC 6455 §4.1) goes upstream as one, as Envoy's upgrade support
 * does by default: a GET without a body from an HTTP/1.1 client whose Connection lists
 * upgrade and whose Upgrade names websocket, towards an HTTP/1.1 upstream.  Any other
 * upgrade (h2c, ...) is dropped as hop-by-hop and the request goes as plain HTTP/1.1. */
static bool websocket_asked(const struct exchange *ex, const struct http1_request *req)
{
	const struct cluster *cl = ex->rd != NULL ? ex->rd->dest.cluster : NULL;

	if (!req->upgrade || ex->c->h2 != NULL || cl == NULL || cl->http2 || req->method_len != 3 ||
	    memcmp(req->method, "GET", 3) != 0 || /* case-sensitive */
	    !(ex->req_kind == HTTP1_BODY_NONE ||
	      (ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0)))
		return false;
	for (size_t i = 0; i < req->nheaders; i++)
		if (NAME_IS(req->headers[i].name, req->headers[i].name_len, "upgrade") &&
		    http1_list_has(req->headers[i].value, req->headers[i].value_len, "websocket"))
			return true;
	return false;
}

int proxy_prepare(struct exchange *ex, const struct http1_request *req,
		  const struct route_request *rq)
{
	if (ex->up_head == NULL)
		ex->up_head = evbuffer_new(); /* kept with the recycled exchange */
	if (ex->up_head == NULL)
		return -1;
	ex->upgrade = websocket_asked(ex, req);
	build_upstream_head(ex, req, rq);
	/* consistent hashing needs the request: its key is taken now, the head goes away */
	if (ex->rd != NULL && ex->rd->dest.cluster != NULL &&
	    ex->rd->dest.cluster->hash_policy != NULL) {
		char peer[CONN_ADDR_TEXT];

		conn_peer_text(ex->c, true, peer);
		ex->hash_given =
		    affinity_key(ex->rd->dest.cluster->hash_policy, req, rq, peer,
				 worker_random(ex->c->w), &ex->hash_key, ex->new_cookie);
	}
	mirror_prepare(ex, req, rq);
	return 0;
}

int proxy_start(struct exchange *ex, const struct http1_request *req,
		const struct route_request *rq)
{
	struct worker *w = ex->c->w;
	const struct cluster *cl = ex->rd != NULL ? ex->rd->dest.cluster : NULL;
	const struct conn_pool_settings *lim;
	int rc;

	ex->cl = cl;
	if (cl == NULL || cl->nendpoints == 0) {
		METRIC_INC(&w->metrics, upstream_rq_no_healthy);
		exchange_flag(ex, "UH");
		ex->details = "no healthy upstream";
		local_reply(ex, 503, "text/plain", "no healthy upstream\n", 20, NULL, false);
		return -1;
	}
	lim = cl->pool_limits;
	if (lim != NULL && lim->max_requests > 0 && cl->state != NULL) {
		if (!clusterstate_admit(&cl->state->rq_active, lim->max_requests)) {
			atomic_fetch_add_explicit(&cl->state->rq_overflow, 1, memory_order_relaxed);
			METRIC_INC(&w->metrics, upstream_rq_overflow);
			exchange_flag(ex, "UO");
			ex->details = "upstream overflow: too many requests";
			local_reply(ex, 503, "text/plain", "upstream overflow\n", 18, NULL, false);
			return -1;
		}
		ex->rq_counted = true;
	}
	if (req != NULL && proxy_prepare(ex, req, rq) != 0) {
		up_release(ex, false);
		local_reply(ex, 503, "text/plain", "out of memory\n", 14, NULL, false);
		return -1;
	}
	ex->replay_ok = ex_retry(ex)->num_retries > 0;
	if (ex->route->timeout_us > 0)
		timer_arm(ex, &ex->route_timer, route_timeout_cb, ex->route->timeout_us);
	rc = try_start(ex);
	if (rc == UP_NO_HEALTHY) {
		up_release(ex, false);
		METRIC_INC(&w->metrics, upstream_rq_no_healthy);
		exchange_flag(ex, "UH");
		ex->details = "no healthy upstream";
		local_reply(ex, 503, "text/plain", "no healthy upstream\n", 20, NULL, false);
		return -1;
	}
	if (rc == UP_OVERFLOW) {
		up_release(ex, false);
		METRIC_INC(&w->metrics, upstream_rq_overflow);
		exchange_flag(ex, "UO");
		ex->details = "upstream overflow: too many pending requests";
		local_reply(ex, 503, "text/plain", "upstream overflow\n", 18, NULL, false);
		return -1;
	}
	if (rc != UP_OK) {
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		CLUSTER_COUNT(ex->cl, w->id, CC_CX_CONNECT_FAIL);
		if (!try_again(ex, retry_on_failure(ex_retry(ex), RETRY_FAIL_CONNECT))) {
			up_release(ex, false);
			exchange_flag(ex, "UF");
			ex->details = "upstream connect error";
			local_reply(ex, 503, "text/plain", "upstream connect error\n", 23, NULL,
				    false);
			return -1;
		}
	}
	mirror_start(ex);
	ex->c->ex = ex;
	/* We answer 100-continue ourselves (and strip Expect): the client starts sending while
	 * the upstream connection is being set up. */
	if (ex->expect_continue && ex->req_kind != HTTP1_BODY_NONE &&
	    !(ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0))
		evbuffer_add(stream_output(ex->c->st), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
}

/* ---- request body: client -> upstream ---- */

static void req_body_error(struct exchange *ex, const char *why)
{
	METRIC_INC(&ex->c->w->metrics, downstream_rq_bad_request);
	if (!ex->resp_head_sent) {
		ex->req_done = false;
		fail_local(ex, 400, "DPE", why);
	} else {
		fail_abort(ex, "DPE", why);
	}
}

/* While a request body is coming in, a client that stops sending for requestBodyIdle gets
 * 408 (or loses the connection if the response already started). */
static void body_idle_timer(struct exchange *ex, bool on)
{
	struct timeval tv;
	uint64_t us = ex_main(ex)->timeouts.request_body_idle_us;

	if (!on) {
		stream_set_read_timeout(ex->c->st, NULL);
		return;
	}
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	stream_set_read_timeout(ex->c->st, &tv);
}

void proxy_client_timeout(struct exchange *ex)
{
	METRIC_INC(&ex->c->w->metrics, downstream_rq_timeout);
	ex->req_done = false;
	if (!ex->resp_head_sent)
		fail_local(ex, 408, "DC", "request body timeout");
	else
		fail_abort(ex, "DC", "request body timeout");
}

/* ---- WebSocket tunnel: after a 101, bytes both ways until either side closes ---- */

static void write_response_head(struct exchange *ex, const struct http1_response *resp);
static bool move_body(struct exchange *ex);

/* Traffic either way restarts the idle timer (main timeouts.idle). */
static void tunnel_touch(struct exchange *ex)
{
	timer_arm(ex, &ex->route_timer, route_timeout_cb, ex_main(ex)->timeouts.idle_us);
}

static void tunnel_from_client(struct exchange *ex)
{
	struct evbuffer *in = stream_input(ex->c->st);
	size_t n = evbuffer_get_length(in);

	if (n > 0) {
		ex->bytes_in += n;
		evbuffer_add_buffer(up_output(ex), in);
		tunnel_touch(ex);
	}
	if (evbuffer_get_length(up_output(ex)) > BP_HIGH)
		stream_disable(ex->c->st, EV_READ); /* resumed by up_write_cb */
}

void proxy_tunnel_client_closed(struct exchange *ex)
{
	tunnel_from_client(ex); /* details stay via_upstream, as Envoy logs an upgrade */
	response_done(ex);
}

/* The upstream's 101 to our WebSocket handshake: answer the client, then relay. */
static void tunnel_start(struct exchange *ex, const struct http1_response *resp, size_t head_len)
{
	ex->tunnel = true;
	ex->resp_kind = HTTP1_BODY_UNTIL_CLOSE; /* upstream bytes flow until it closes */
	ex->upstream_reusable = false;
	ex->client_keepalive = false;
	ex->upstream_time_us = (int64_t)(clock_mono_us() - ex->upstream_sent_us);
	ex->details = "via_upstream";
	write_response_head(ex, resp);
	evbuffer_drain(up_input(ex), head_len);
	evbuffer_drain(ex->up_head, evbuffer_get_length(ex->up_head));
	METRIC_INC(&ex->c->w->metrics, upstream_cx_websocket);
	body_idle_timer(ex, false);
	ex->req_done = false; /* the client's bytes are the tunnel's from now on */
	conn_read_more(ex->c);
	tunnel_touch(ex);
	if (move_body(ex))
		return;
	proxy_client_readable(ex); /* what the client sent behind its handshake */
}

/* Did the upstream accept the WebSocket upgrade (RFC 6455 §4.1: Upgrade: websocket and
 * Connection: upgrade)?  Anything less is not a switch we can follow. */
static bool websocket_granted(const struct http1_response *resp)
{
	bool upgrade = false, connection = false;

	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (NAME_IS(h->name, h->name_len, "upgrade"))
			upgrade = upgrade || http1_list_has(h->value, h->value_len, "websocket");
		else if (NAME_IS(h->name, h->name_len, "connection"))
			connection =
			    connection || http1_list_has(h->value, h->value_len, "upgrade");
	}
	return upgrade && connection;
}

void proxy_client_readable(struct exchange *ex)
{
	struct conn *c = ex->c;
	struct evbuffer *in = stream_input(c->st);
	struct evbuffer *out;
	size_t avail;

	if (ex->req_done || (ex->uc == NULL && ex->h2 == NULL))
		return;
	if (ex->tunnel) {
		tunnel_from_client(ex);
		return;
	}
	body_idle_timer(ex, true);
	out = up_output(ex);
	while (!ex->req_done && (avail = evbuffer_get_length(in)) > 0) {
		if (evbuffer_get_length(out) > BP_HIGH) {
			stream_disable(c->st, EV_READ); /* resumed by up_write_cb */
			return;
		}
		if (ex->req_kind == HTTP1_BODY_LENGTH) {
			size_t n = avail < ex->req_remaining ? avail : (size_t)ex->req_remaining;

			replay_keep_buf(ex, in, n);
			mirror_body_buffer(ex, in, n);
			evbuffer_remove_buffer(in, out, n);
			ex->req_remaining -= n;
			ex->bytes_in += n;
			ex->req_started = true;
			if (ex->req_remaining == 0)
				ex->req_done = true;
		} else {
			/* chunked: decode, validate, and re-encode cleanly (extensions and
			 * trailers are dropped) so the upstream never sees ambiguous framing */
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)chunk);

			while (off < chunk && !ex->req_chunk.done) {
				const char *data;
				size_t dlen = 0;
				const char *why = NULL;
				ssize_t k = http1_chunked_step(&ex->req_chunk, buf + off,
							       chunk - off, &data, &dlen, &why);

				if (k < 0) {
					req_body_error(ex, why != NULL ? why : "bad chunked body");
					return;
				}
				if (dlen > 0) {
					char size[HTTP1_CHUNK_SIZE_LINE];
					size_t sl = http1_chunk_size_line(dlen, size);

					mirror_body(ex, data, dlen);
					body_add(ex, out, size, sl);
					body_add(ex, out, data, dlen);
					body_add(ex, out, "\r\n", 2);
					ex->req_started = true;
					ex->bytes_in += dlen;
				}
				off += (size_t)k;
				if (k == 0)
					break;
			}
			evbuffer_drain(in, off);
			if (ex->req_chunk.done) {
				mirror_body_end(ex);
				body_add(ex, out, "0\r\n\r\n", 5);
				ex->req_done = true;
			} else if (off < chunk) {
				break; /* need more bytes */
			}
		}
	}
	if (ex->req_done)
		body_idle_timer(ex, false);
}

static void up_write_cb(struct stream *st, void *arg)
{
	struct exchange *ex = arg;

	/* Upstream output drained below BP_LOW: take more request body. */
	if (!ex->req_done) {
		conn_read_more(ex->c);
		proxy_client_readable(ex);
	}
}

/* ---- response: upstream -> client ---- */

/* How the body reaches the client, decided with its head: chunked for an HTTP/1.1 client
 * when the upstream gave no length, delimited by the close for HTTP/1.0. */
static void response_body_framing(struct exchange *ex)
{
	if (ex->resp_kind == HTTP1_BODY_CHUNKED || ex->resp_kind == HTTP1_BODY_UNTIL_CLOSE) {
		if (ex->minor_version >= 1) {
			ex->resp_chunked_out = true;
		} else {
			ex->resp_close_delimited = true; /* HTTP/1.0 client: body ends at close */
			ex->client_keepalive = false;
		}
	}
	if (!ex->req_done)
		ex->client_keepalive = false; /* the upstream answered before the body ended */
}

/* An HTTP/2 client's stream takes the head as fields (h2down.h), so that h2down does not
 * parse bytes meshgate just wrote.  The rarer heads that other modules add lines to
 * (CORS, ext_authz, a session affinity cookie, a WebSocket switch) go as bytes.  NULL:
 * write bytes. */
static struct h2down_head *response_fields_begin(struct exchange *ex,
						 const struct http1_response *resp)
{
	const struct header_op_list *rops = &ex->route->headers->response;
	const struct header_op_list *dops = &ex->rd->headers->response;

	if (!ex->c->h2_stream || ex->tunnel || ex->cors == CORS_ACTUAL || ex->xa != NULL ||
	    ex->new_cookie[0] != '\0' || ex->minor_version < 1)
		return NULL;
	return h2down_head_begin(ex->c, resp->status,
				 resp->nheaders + 3 + rops->set.n + rops->add.n + dops->set.n +
				     dops->add.n);
}

static void h2_header_ops(struct h2down_head *h, const struct header_op_list *ops)
{
	size_t i;

	for (i = 0; i < ops->set.n; i++)
		h2down_head_field(h, ops->set.v[i].key, strlen(ops->set.v[i].key),
				  ops->set.v[i].value, strlen(ops->set.v[i].value));
	for (i = 0; i < ops->add.n; i++)
		h2down_head_field(h, ops->add.v[i].key, strlen(ops->add.v[i].key),
				  ops->add.v[i].value, strlen(ops->add.v[i].value));
}

/* The fields after the upstream's, as the HTTP/1.1 head below has them, in its order. */
static void response_fields_end(struct exchange *ex, struct h2down_head *h)
{
	enum http1_body_kind kind = HTTP1_BODY_LENGTH;
	char ust[20], cl[20];

	h2down_head_field(h, "server", 6, "meshgate", 8);
	h2down_head_field(h, "x-envoy-upstream-service-time", 29, ust,
			  headbuf_u64_text(ust, ex->upstream_time_us > 0
						    ? (uint64_t)ex->upstream_time_us / 1000
						    : 0));
	h2_header_ops(h, &ex->route->headers->response);
	h2_header_ops(h, &ex->rd->headers->response);
	response_body_framing(ex);
	if (ex->resp_kind == HTTP1_BODY_LENGTH)
		h2down_head_field(h, "content-length", 14, cl,
				  headbuf_u64_text(cl, ex->resp_remaining));
	if (ex->resp_chunked_out)
		kind = HTTP1_BODY_CHUNKED;
	else if (ex->resp_kind != HTTP1_BODY_LENGTH)
		kind = HTTP1_BODY_NONE;
	h2down_head_end(h, kind, ex->resp_remaining);
}

static void write_response_head(struct exchange *ex, const struct http1_response *resp)
{
	struct conn *c = ex->c;
	struct headbuf hb;
	const struct headers_ops *dops = ex->rd->headers;
	const struct header_op_list *rops = &ex->route->headers->response;
	size_t i;
	struct conn_tokens ct;
	struct h2down_head *h2;
	bool keep_cl = ex->resp_kind == HTTP1_BODY_NONE && resp->status != 204 &&
		       !(resp->status >= 100 && resp->status < 200);

	if (ex->log_hdr_kept)
		logfilter_keep_headers(ex, ex->ws->snap->set, LOGFILTER_RESPONSE, resp->headers,
				       resp->nheaders);
	conn_tokens_parse(resp->headers, resp->nheaders, &ct);
	h2 = response_fields_begin(ex, resp);
	if (h2 == NULL) {
		headbuf_init(&hb, stream_output(c->st));
		HEADBUF_LIT(&hb, "HTTP/1.1 ");
		headbuf_u64(&hb, (uint64_t)resp->status);
		HEADBUF_LIT(&hb, " ");
		if (resp->reason_len > 0)
			headbuf_add(&hb, resp->reason, resp->reason_len);
		else
			headbuf_str(&hb, http_reason(resp->status));
		HEADBUF_LIT(&hb, "\r\n");
	}
	for (i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (NAME_IS(h->name, h->name_len, "grpc-status")) /* trailers-only gRPC */
			ex->grpc_status = grpc_status_value(h->value, h->value_len);
		if (hop_by_hop(h->name, h->name_len) || NAME_IS(h->name, h->name_len, "server") ||
		    (!keep_cl && NAME_IS(h->name, h->name_len, "content-length")) ||
		    ops_drop(rops, h->name, h->name_len) ||
		    ops_drop(&dops->response, h->name, h->name_len) ||
		    listed_in_connection(&ct, h->name, h->name_len) ||
		    (ex->cors == CORS_ACTUAL &&
		     cors_replaces(ex->route->more->cors, h->name, h->name_len)) ||
		    (ex->xa != NULL && extauthz_replaces(ex, h->name, h->name_len)))
			continue;
		if (h2 != NULL)
			h2down_head_field(h2, h->name, h->name_len, h->value, h->value_len);
		else
			headbuf_header(&hb, h->name, h->name_len, h->value, h->value_len);
	}
	if (h2 != NULL) {
		response_fields_end(ex, h2);
		ex->resp_head_sent = true;
		ex->status = resp->status;
		return;
	}
	HEADBUF_LIT(&hb, "server: meshgate\r\nx-envoy-upstream-service-time: ");
	headbuf_u64(&hb, ex->upstream_time_us > 0 ? (uint64_t)ex->upstream_time_us / 1000 : 0);
	HEADBUF_LIT(&hb, "\r\n");
	add_header_ops(&hb, rops);
	add_header_ops(&hb, &dops->response);
	if (ex->new_cookie[0] != '\0') {
		char line[COOKIE_LINE_MAX];
		size_t n =
		    affinity_set_cookie(ex->cl->hash_policy, ex->new_cookie, line, sizeof(line));

		headbuf_add(&hb, line, n);
	}
	if (ex->cors == CORS_ACTUAL) {
		headbuf_flush(&hb);
		request_cors_response(ex, hb.dst);
	}
	if (ex->xa != NULL) { /* headersToDownstreamOnAllow */
		headbuf_flush(&hb);
		extauthz_response_headers(ex, hb.dst);
	}
	if (ex->tunnel) {
		/* the switch itself: no framing, the connection is the tunnel's */
		HEADBUF_LIT(&hb, "upgrade: websocket\r\nconnection: upgrade\r\n\r\n");
		headbuf_flush(&hb);
		ex->resp_head_sent = true;
		ex->status = resp->status;
		return;
	}
	response_body_framing(ex);
	if (ex->resp_kind == HTTP1_BODY_LENGTH) {
		HEADBUF_LIT(&hb, "content-length: ");
		headbuf_u64(&hb, ex->resp_remaining);
		HEADBUF_LIT(&hb, "\r\n");
	} else if (ex->resp_chunked_out) {
		HEADBUF_LIT(&hb, "transfer-encoding: chunked\r\n");
	}
	if (!ex->client_keepalive || c->w->draining)
		HEADBUF_LIT(&hb, "connection: close\r\n");
	else if (ex->minor_version == 0)
		HEADBUF_LIT(&hb, "connection: keep-alive\r\n");
	HEADBUF_LIT(&hb, "\r\n");
	headbuf_flush(&hb);
	ex->resp_head_sent = true;
	ex->status = resp->status;
}

/* ---- response trailers ---- */

/* Fields never forwarded as trailers: connection-specific ones (RFC 9110 §7.6.1) and the
 * framing and routing fields a trailer must not carry (§6.5.1). */
static bool trailer_dropped(const char *name, size_t len)
{
	return hop_by_hop(name, len) || NAME_IS(name, len, "content-length") ||
	       NAME_IS(name, len, "host");
}

/* Keep a run of the upstream's trailer field lines (http1.h: the runs end to end are the
 * section) until the body ends: the section is only known good, and its lines whole, then.
 * Bounded by HTTP1_TRAILER_MAX; only responses that have trailers get here. */
static void trailers_keep(struct exchange *ex, const char *run, size_t len)
{
	if (ex->resp_trailers_lost)
		return;
	if (ex->resp_trailers == NULL)
		ex->resp_trailers = evbuffer_new(); /* kept with the recycled exchange */
	if (ex->resp_trailers == NULL || evbuffer_add(ex->resp_trailers, run, len) != 0) {
		/* a line cut short must not be forwarded: drop them all, as before trailers
		 * were forwarded at all */
		ex->resp_trailers_lost = true;
		if (ex->resp_trailers != NULL)
			evbuffer_drain(ex->resp_trailers, evbuffer_get_length(ex->resp_trailers));
	}
}

/* The body ended: note the trailers' grpc-status, and add the fields the client may see to
 * out (NULL: the client does not take trailers).  Response header operations do not apply
 * to trailers, as in Envoy. */
static void trailers_out(struct exchange *ex, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(ex->resp_trailers);
	const char *t = (const char *)evbuffer_pullup(ex->resp_trailers, (ev_ssize_t)n), *end;

	if (t == NULL) { /* out of memory making them contiguous: dropped */
		evbuffer_drain(ex->resp_trailers, n);
		return;
	}
	/* validated by http1.c: name ':' value CRLF, no CR inside a line */
	for (end = t + n; t < end;) {
		const char *colon = memchr(t, ':', (size_t)(end - t));
		const char *cr = colon != NULL ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
		size_t nlen;

		if (cr == NULL || end - cr < 2)
			break;
		nlen = (size_t)(colon - t);
		if (NAME_IS(t, nlen, "grpc-status"))
			ex->grpc_status = grpc_status_value(colon + 1, (size_t)(cr - colon - 1));
		if (out != NULL && !trailer_dropped(t, nlen))
			evbuffer_add(out, t, (size_t)(cr + 2 - t));
		t = cr + 2;
	}
	evbuffer_drain(ex->resp_trailers, n);
}

static void response_done(struct exchange *ex)
{
	struct conn *c = ex->c;
	struct evbuffer *out = stream_output(c->st);
	const struct conn_pool_settings *lim = ex->cl->pool_limits;
	/* an HTTP/2 stream is complete when both directions are; h2up.c keeps the connection's
	 * own limits */
	bool reusable = ex->h2 != NULL ? ex->req_done
				       : ex->upstream_reusable && ex->req_done && ex->uc != NULL &&
					     stream_input_len(ex->uc->st) == 0;

	/* maxRequestsPerConnection (1 disables keep-alive) and maxConnectionDuration */
	if (reusable && lim != NULL && ex->uc != NULL &&
	    ((lim->max_requests_per_connection > 0 &&
	      ex->uc->requests >= lim->max_requests_per_connection) ||
	     (lim->max_connection_duration_us > 0 &&
	      clock_mono_us() - ex->uc->created_us >= lim->max_connection_duration_us)))
		reusable = false;

	/* the last chunk, with the upstream's trailers when the client said it takes them */
	if (ex->resp_chunked_out)
		evbuffer_add(out, "0\r\n", 3);
	if (ex->resp_trailers != NULL && evbuffer_get_length(ex->resp_trailers) > 0)
		trailers_out(ex, ex->resp_chunked_out && ex->te_trailers ? out : NULL);
	if (ex->resp_chunked_out)
		evbuffer_add(out, "\r\n", 2);
	up_release(ex, reusable);
	if (c->w->draining)
		ex->client_keepalive = false;
	conn_exchange_done(c);
}

/* Move response body bytes; returns true when the exchange ended (ex is gone). */
static bool move_body(struct exchange *ex)
{
	struct evbuffer *in = up_input(ex);
	struct evbuffer *out = stream_output(ex->c->st);
	size_t avail = evbuffer_get_length(in);

	switch (ex->resp_kind) {
	case HTTP1_BODY_NONE:
		response_done(ex);
		return true;
	case HTTP1_BODY_LENGTH: {
		size_t n = avail < ex->resp_remaining ? avail : (size_t)ex->resp_remaining;

		stream_move(ex->c->st, in, n);
		ex->resp_remaining -= n;
		ex->bytes_out += n;
		if (ex->resp_remaining == 0) {
			response_done(ex);
			return true;
		}
		break;
	}
	case HTTP1_BODY_UNTIL_CLOSE:
		if (avail > 0 && ex->tunnel)
			tunnel_touch(ex);
		if (avail > 0) {
			if (ex->resp_chunked_out) {
				char size[HTTP1_CHUNK_SIZE_LINE];

				evbuffer_add(out, size, http1_chunk_size_line(avail, size));
				stream_move(ex->c->st, in, avail);
				evbuffer_add(out, "\r\n", 2);
			} else {
				stream_move(ex->c->st, in, avail);
			}
			ex->bytes_out += avail;
		}
		break;
	case HTTP1_BODY_CHUNKED:
		while (avail > 0 && !ex->resp_chunk.done) {
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)chunk);

			while (off < chunk && !ex->resp_chunk.done) {
				const char *data, *why = NULL;
				size_t dlen = 0;
				ssize_t k = http1_chunked_step(&ex->resp_chunk, buf + off,
							       chunk - off, &data, &dlen, &why);

				if (k < 0) {
					METRIC_INC(&ex->c->w->metrics, upstream_rq_bad_response);
					fail_abort(ex, "UPE", "bad chunked response body");
					return true;
				}
				if (dlen > 0) {
					if (ex->resp_chunked_out) {
						char size[HTTP1_CHUNK_SIZE_LINE];

						evbuffer_add(out, size,
							     http1_chunk_size_line(dlen, size));
						evbuffer_add(out, data, dlen);
						evbuffer_add(out, "\r\n", 2);
					} else {
						evbuffer_add(out, data, dlen);
					}
					ex->bytes_out += dlen;
				}
				if (ex->resp_chunk.trailers_len > 0)
					trailers_keep(ex, ex->resp_chunk.trailers,
						      ex->resp_chunk.trailers_len);
				off += (size_t)k;
				if (k == 0)
					break;
			}
			evbuffer_drain(in, off);
			avail = evbuffer_get_length(in);
			if (off < chunk && !ex->resp_chunk.done)
				break;
		}
		if (ex->resp_chunk.done) {
			response_done(ex);
			return true;
		}
		break;
	}
	if (evbuffer_get_length(out) > (ex->c->h2 != NULL ? BP_HIGH_H2_STREAM : BP_HIGH))
		up_reading(ex, false); /* resumed by proxy_client_drained */
	return false;
}

int proxy_response_head(struct evbuffer *in, const struct http1_limits *lim, const char *method,
			size_t method_len, struct http1_response *resp, enum http1_body_kind *kind,
			uint64_t *left, const char **why)
{
	size_t len = evbuffer_get_length(in);
	size_t want = len < lim->max_head + 4 ? len : lim->max_head + 4;
	struct http1_header *hdrs = resp->headers;
	const char *buf;
	int n;

	if (len == 0)
		return MG_AGAIN;
	buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	memset(resp, 0, sizeof(*resp));
	resp->headers = hdrs;
	n = http1_parse_response(buf, want, lim, resp, why);
	if (n < 0)
		return n;
	if (http1_response_framing(resp, method, method_len, kind, left, why) != 0)
		return MG_EBAD;
	return n;
}

static void handle_response_head(struct exchange *ex)
{
	struct evbuffer *in = up_input(ex);
	struct http1_limits lim = {UP_MAX_HEAD, UP_MAX_HEAD, UP_MAX_HEADERS};
	struct http1_header hdrs[UP_MAX_HEADERS];
	struct http1_response resp = {.headers = hdrs};
	const char *why = NULL;

	for (;;) {
		int n = proxy_response_head(in, &lim, ex->method, ex->method_len, &resp,
					    &ex->resp_kind, &ex->resp_remaining, &why);

		if (n == MG_AGAIN)
			return;
		if (n < 0) {
			METRIC_INC(&ex->c->w->metrics, upstream_rq_bad_response);
			log_info("bad response from %s: %s", ex->ep->name, why ? why : "?");
			fail_local(ex, 502, "UPE", "upstream sent an invalid response");
			return;
		}
		if (resp.status == 101) {
			if (ex->upgrade && websocket_granted(&resp)) {
				tunnel_start(ex, &resp, (size_t)n);
				return;
			}
			/* a switch nobody asked for (or to something else): following it
			 * would hand the connection to bytes we cannot frame */
			METRIC_INC(&ex->c->w->metrics, upstream_rq_bad_response);
			fail_local(ex, 502, "UPE", "upstream switched protocols unasked");
			return;
		}
		if (resp.status >= 100 && resp.status < 200) {
			/* Interim responses: 100 was answered by us already; drop every other
			 * 1xx (103 hints included), as before a final response. */
			evbuffer_drain(in, (size_t)n);
			continue;
		}
		if (ex->cl->outlier != NULL)
			outlier_report(ex->cl, ex->ep, resp.status, clock_mono_us());
		if ((resp.status >= 400 || (ex_retry(ex)->on & RETRY_ON_GRPC_ANY)) &&
		    retry_on_status(ex_retry(ex), resp.status,
				    (ex_retry(ex)->on & RETRY_ON_GRPC_ANY) ? grpc_status_of(&resp)
									   : -1) &&
		    try_again(ex, true))
			return; /* this answer is dropped with its connection */
		if (ex->retries_exhausted)
			exchange_flag(ex, "URX");
		ex->upstream_time_us = (int64_t)(clock_mono_us() - ex->upstream_sent_us);
		ex->details = "via_upstream";
		ex->upstream_reusable = !resp.conn_close && ex->resp_kind != HTTP1_BODY_UNTIL_CLOSE;
		write_response_head(ex, &resp);
		evbuffer_drain(in, (size_t)n);
		/* the head is no longer needed for a retry */
		evbuffer_drain(ex->up_head, evbuffer_get_length(ex->up_head));
		move_body(ex);
		return;
	}
}

static void up_read_cb(struct stream *st, void *arg)
{
	struct exchange *ex = arg;

	if (!ex->resp_head_sent)
		handle_response_head(ex);
	else
		move_body(ex);
}

void proxy_client_drained(struct exchange *ex)
{
	if ((ex->uc != NULL || ex->h2 != NULL) && ex->resp_head_sent)
		up_reading(ex, true);
}

static void up_event_cb(struct stream *st, short what, void *arg)
{
	struct exchange *ex = arg;
	struct worker *w = ex->c->w;
	const char *tls_why;

	if (what & BEV_EVENT_CONNECTED) {
		if (ex->connect_timer != NULL)
			evtimer_del(ex->connect_timer);
		note_upstream_local(ex);
		return;
	}
	/* TLS origination whose handshake failed (bad certificate, alert): a connect failure
	 * (503 UF, retried as one), with why it failed as the details */
	if (!ex->resp_head_sent && (tls_why = connpool_tls_failure(ex->uc, ex)) != NULL) {
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", tls_why);
		return;
	}
	if (ex->connect_timer != NULL && evtimer_pending(ex->connect_timer, NULL)) {
		/* still connecting: the connect failed */
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		CLUSTER_COUNT(ex->cl, w->id, CC_CX_CONNECT_FAIL);
		log_debug("connect to %s failed", ex->ep->name);
		up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect error");
		return;
	}
	if (ex->resp_head_sent) {
		if (ex->resp_kind == HTTP1_BODY_UNTIL_CLOSE && (what & BEV_EVENT_EOF)) {
			/* drain what arrived with the close, then finish */
			move_body(ex);
			ex->upstream_reusable = false;
			response_done(ex);
			return;
		}
		METRIC_INC(&w->metrics, upstream_rq_reset);
		fail_abort(ex, "UC", "upstream reset mid-response");
		return;
	}
	/* Closed before a response head.  A pooled connection may have been closed by the
	 * upstream just as we reused it: retry once on a fresh connection when nothing of
	 * the body was sent (RFC 9112 §9.3.1 allows it for such requests). */
	if (ex->uc != NULL && ex->uc->reused && !ex->req_started && !ex->retried_stale &&
	    stream_input_len(ex->uc->st) == 0) {
		ex->retried_stale = true;
		METRIC_INC(&w->metrics, upstream_rq_retry_stale);
		connpool_close(ex->uc);
		ex->uc = NULL;
		if (up_connect(ex, false) == UP_OK)
			return;
	}
	METRIC_INC(&w->metrics, upstream_rq_reset);
	up_failed(ex, RETRY_FAIL_RESET, 503, "UC", "upstream connection closed before response");
}

/* ---- HTTP/2 upstreams: the stream's callbacks (h2up.h) ---- */

static void h2_read_cb(void *arg)
{
	up_read_cb(NULL, arg);
}

static void h2_write_cb(void *arg)
{
	up_write_cb(NULL, arg);
}

/* "prefix: why" in the exchange's arena (the details outlive the stream); prefix alone when
 * the arena is full. */
static const char *h2_details(struct exchange *ex, const char *prefix, const char *why)
{
	char buf[160];
	int n = snprintf(buf, sizeof(buf), "%s: %s", prefix, why != NULL ? why : "?");
	const char *kept;

	if (n <= 0 || (size_t)n + 1 > EX_ARENA - ex->arena_used)
		return prefix;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	kept = exchange_keep(ex, buf, (size_t)n, NULL);
	exchange_keep(ex, "", 1, NULL);
	return kept;
}

static void h2_event_cb(void *arg, enum h2up_event ev, const char *why)
{
	struct exchange *ex = arg;
	struct worker *w = ex->c->w;
	const char *tls_why;
	int rc;

	switch (ev) {
	case H2UP_CONNECTED:
		if (ex->connect_timer != NULL)
			evtimer_del(ex->connect_timer);
		note_upstream_local(ex);
		return;
	case H2UP_FALLBACK:
		/* the TLS server chose HTTP/1.1 (h2up marked the host): the same try over
		 * HTTP/1.1, on a new connection */
		h2up_stream_close(ex->h2, false);
		ex->h2 = NULL;
		if (ex->connect_timer != NULL)
			evtimer_del(ex->connect_timer);
		rc = up_connect(ex, true);
		if (rc == UP_OVERFLOW)
			overflow(ex, "upstream overflow: too many pending requests");
		else if (rc != UP_OK)
			up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect error");
		return;
	case H2UP_CONNECT_FAILED:
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		if ((tls_why = connpool_tls_failure(h2up_stream_upconn(ex->h2), ex)) != NULL) {
			up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", tls_why);
			return;
		}
		CLUSTER_COUNT(ex->cl, w->id, CC_CX_CONNECT_FAIL);
		up_failed(ex, RETRY_FAIL_CONNECT, 503, "UF", "upstream connect error");
		return;
	case H2UP_REFUSED:
		/* Envoy: a refused stream was not processed, retried under refused-stream */
		METRIC_INC(&w->metrics, upstream_rq_reset);
		up_failed(ex, RETRY_FAIL_REFUSED, 503, "UR", "upstream refused stream");
		return;
	case H2UP_RESET:
		METRIC_INC(&w->metrics, upstream_rq_reset);
		if (ex->resp_head_sent)
			fail_abort(ex, "UR", h2_details(ex, "upstream reset mid-response", why));
		else
			up_failed(ex, RETRY_FAIL_RESET, 503, "UR",
				  h2_details(ex, "upstream reset before response", why));
		return;
	case H2UP_CLOSED:
		break;
	}
	if (ex->resp_head_sent) {
		METRIC_INC(&w->metrics, upstream_rq_reset);
		fail_abort(ex, "UC", "upstream reset mid-response");
		return;
	}
	/* as for a stale pooled HTTP/1.1 connection: once more on a new connection */
	if (ex->h2_reused && !ex->req_started && !ex->retried_stale) {
		ex->retried_stale = true;
		METRIC_INC(&w->metrics, upstream_rq_retry_stale);
		h2up_stream_close(ex->h2, false);
		ex->h2 = NULL;
		if (up_connect(ex, false) == UP_OK)
			return;
	}
	METRIC_INC(&w->metrics, upstream_rq_reset);
	up_failed(ex, RETRY_FAIL_RESET, 503, "UC", "upstream connection closed before response");
}

void proxy_abort(struct exchange *ex)
{
	up_release(ex, false);
}
