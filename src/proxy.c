#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "connpool.h"
#include "exchange.h"
#include "errors.h"
#include "http1.h"
#include "local_reply.h"
#include "log.h"
#include "proxy.h"
#include "regex.h"
#include "router.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

/* Back-pressure: stop reading one side while the other side's output holds more than
 * HIGH bytes; resume when it drains to LOW.  Bounds memory per exchange to ~2 x HIGH. */
#define BP_HIGH (1024 * 1024)
#define BP_LOW (256 * 1024)
#define UP_MAX_HEAD (64 * 1024)
#define UP_MAX_HEADERS 256

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const struct cfg_main *ex_main(const struct exchange *ex)
{
	return &ex->ws->snap->set->main;
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
#define NAME_IS(n, len, lit)                                                                       \
	((len) == sizeof(lit) - 1 && strncasecmp((n), (lit), sizeof(lit) - 1) == 0)

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

static void add_header_ops(struct evbuffer *out, const struct header_op_list *ops)
{
	size_t i;

	for (i = 0; i < ops->set.n; i++)
		evbuffer_add_printf(out, "%s: %s\r\n", ops->set.v[i].key, ops->set.v[i].value);
	for (i = 0; i < ops->add.n; i++)
		evbuffer_add_printf(out, "%s: %s\r\n", ops->add.v[i].key, ops->add.v[i].value);
}

static bool ops_drop(const struct header_op_list *ops, const char *name, size_t len)
{
	return name_in(name, len, &ops->remove) || name_in_kv(name, len, &ops->set);
}

/* The path sent upstream: normalised request path, rewritten per route.rewrite. */
static size_t rewrite_path(const struct http_route *route, const struct route_request *rq,
			   char *out, size_t outsize)
{
	const struct http_rewrite *rw = &route->rewrite;
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
	struct evbuffer *b = ex->up_head;
	const struct http_route *route = ex->route;
	const struct headers_ops *dops = &ex->rd->headers;
	char path[8192];
	size_t plen = rewrite_path(route, rq, path, sizeof(path)), i;
	const char *authority = route->rewrite.authority;
	struct conn_tokens ct;
	size_t alen = authority != NULL ? strlen(authority) : 0;

	if (authority == NULL) {
		authority = rq->authority;
		alen = rq->authority_len;
	}
	conn_tokens_parse(req->headers, req->nheaders, &ct);
	evbuffer_add(b, req->method, req->method_len);
	evbuffer_add(b, " ", 1);
	evbuffer_add(b, path, plen);
	if (rq->query != NULL) {
		evbuffer_add(b, "?", 1);
		evbuffer_add(b, rq->query, rq->query_len);
	}
	evbuffer_add(b, " HTTP/1.1\r\nhost: ", 17);
	evbuffer_add(b, authority, alen);
	evbuffer_add(b, "\r\n", 2);
	for (i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		if (hop_by_hop(h->name, h->name_len) || NAME_IS(h->name, h->name_len, "host") ||
		    NAME_IS(h->name, h->name_len, "content-length") ||
		    NAME_IS(h->name, h->name_len, "expect") ||
		    NAME_IS(h->name, h->name_len, "x-forwarded-for") ||
		    NAME_IS(h->name, h->name_len, "x-forwarded-proto") ||
		    NAME_IS(h->name, h->name_len, "x-request-id") ||
		    ops_drop(&route->headers.request, h->name, h->name_len) ||
		    ops_drop(&dops->request, h->name, h->name_len) ||
		    listed_in_connection(&ct, h->name, h->name_len))
			continue;
		evbuffer_add(b, h->name, h->name_len);
		evbuffer_add(b, ": ", 2);
		evbuffer_add(b, h->value, h->value_len);
		evbuffer_add(b, "\r\n", 2);
	}
	/* Envoy at the edge (use_remote_address) appends the peer to x-forwarded-for and sets
	 * x-forwarded-proto from the listener. */
	if (ex->xff != NULL)
		evbuffer_add_printf(b, "x-forwarded-for: %.*s, %s\r\n", (int)ex->xff_len, ex->xff,
				    ex->c->peer_ip);
	else
		evbuffer_add_printf(b, "x-forwarded-for: %s\r\n", ex->c->peer_ip);
	evbuffer_add_printf(b, "x-forwarded-proto: %s\r\nx-request-id: %.*s\r\n", rq->scheme,
			    (int)ex->request_id_len, ex->request_id);
	add_header_ops(b, &route->headers.request);
	add_header_ops(b, &dops->request);
	if (ex->req_kind == HTTP1_BODY_LENGTH)
		evbuffer_add_printf(b, "content-length: %llu\r\n",
				    (unsigned long long)ex->req_remaining);
	else if (ex->req_kind == HTTP1_BODY_CHUNKED)
		evbuffer_add(b, "transfer-encoding: chunked\r\n", 28);
	evbuffer_add(b, "\r\n", 2);
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

/* Release the upstream side: keep the connection for reuse, or close it. */
static void up_release(struct exchange *ex, bool reusable)
{
	if (ex->connect_timer != NULL)
		evtimer_del(ex->connect_timer);
	if (ex->route_timer != NULL)
		evtimer_del(ex->route_timer);
	if (ex->uh != NULL && ex->uh->active_rq > 0)
		ex->uh->active_rq--;
	ex->uh = NULL;
	if (ex->uc == NULL)
		return;
	if (reusable)
		connpool_release(ex->uc);
	else
		connpool_close(ex->uc);
	ex->uc = NULL;
}

/* End the exchange with a local error reply (nothing sent to the client yet). */
static void fail_local(struct exchange *ex, int status, const char *flag, const char *details)
{
	struct conn *c = ex->c;
	char body[160];
	int n;

	up_release(ex, false);
	exchange_flag(ex, flag);
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

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;

	METRIC_INC(&ex->c->w->metrics, upstream_cx_connect_fail);
	fail_local(ex, 503, "UF", "upstream connect timeout");
}

static void route_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;

	METRIC_INC(&ex->c->w->metrics, upstream_rq_timeout);
	if (!ex->resp_head_sent)
		fail_local(ex, 504, "UT", "upstream request timeout");
	else
		fail_abort(ex, "UT", "upstream request timeout");
}

/* UPSTREAM_LOCAL_ADDRESS: the local end of the upstream connection.  Looked up once per
 * connection (getsockname is a syscall) and copied into each exchange that uses it. */
static void note_upstream_local(struct exchange *ex)
{
	struct upconn *uc = ex->uc;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	evutil_socket_t fd;

	if (uc == NULL)
		return;
	fd = bufferevent_getfd(uc->bev);
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
	bufferevent_setcb(uc->bev, up_read_cb, up_write_cb, up_event_cb, ex);
	bufferevent_setwatermark(uc->bev, EV_WRITE, BP_LOW, 0);
	bufferevent_setwatermark(uc->bev, EV_READ, 0, BP_HIGH / 4);
	bufferevent_set_timeouts(uc->bev, NULL, NULL);
	bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
}

/* Get a connection (pooled first) and queue the request head on it. */
static int up_connect(struct exchange *ex, bool allow_pooled)
{
	struct worker *w = ex->c->w;
	struct upconn *uc = allow_pooled ? connpool_get_idle(w->pool, ex->uh) : NULL;

	if (uc != NULL) {
		METRIC_INC(&w->metrics, upstream_cx_reuse);
		up_attach(ex, uc);
		note_upstream_local(ex);
	} else {
		uc = connpool_connect(w->pool, ex->uh);
		if (uc == NULL)
			return -1;
		METRIC_INC(&w->metrics, upstream_cx_total);
		timer_arm(ex, &ex->connect_timer, connect_timeout_cb,
			  ex_main(ex)->timeouts.upstream_connect_us);
		up_attach(ex, uc);
	}
	/* A copy, not a move: the head is kept until the response starts, for a stale retry. */
	evbuffer_add(bufferevent_get_output(uc->bev), evbuffer_pullup(ex->up_head, -1),
		     evbuffer_get_length(ex->up_head));
	ex->upstream_sent_us = mono_us();
	return 0;
}

int proxy_start(struct exchange *ex, const struct http1_request *req,
		const struct route_request *rq)
{
	struct worker *w = ex->c->w;
	const struct cluster *cl = ex->rd != NULL ? ex->rd->dest.cluster : NULL;

	ex->cl = cl;
	if (cl == NULL || cl->nendpoints == 0) {
		METRIC_INC(&w->metrics, upstream_rq_no_healthy);
		exchange_flag(ex, "UH");
		ex->details = "no healthy upstream";
		local_reply(ex, 503, "text/plain", "no healthy upstream\n", 20, NULL, false);
		return -1;
	}
	ex->ep = upstream_pick(w, cl);
	ex->uh = connpool_host(w->pool, ex->ep);
	if (ex->uh == NULL) {
		ex->details = "out of memory";
		local_reply(ex, 503, "text/plain", "out of memory\n", 14, NULL, false);
		return -1;
	}
	ex->uh->active_rq++;
	if (ex->up_head == NULL)
		ex->up_head = evbuffer_new(); /* kept with the recycled exchange */
	if (ex->up_head == NULL) {
		up_release(ex, false);
		local_reply(ex, 503, "text/plain", "out of memory\n", 14, NULL, false);
		return -1;
	}
	build_upstream_head(ex, req, rq);
	if (ex->route->timeout_us > 0)
		timer_arm(ex, &ex->route_timer, route_timeout_cb, ex->route->timeout_us);
	if (up_connect(ex, true) != 0) {
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		up_release(ex, false);
		exchange_flag(ex, "UF");
		ex->details = "upstream connect error";
		local_reply(ex, 503, "text/plain", "upstream connect error\n", 23, NULL, false);
		return -1;
	}
	ex->c->ex = ex;
	/* We answer 100-continue ourselves (and strip Expect): the client starts sending while
	 * the upstream connection is being set up. */
	if (ex->expect_continue && ex->req_kind != HTTP1_BODY_NONE &&
	    !(ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0))
		evbuffer_add(bufferevent_get_output(ex->c->bev), "HTTP/1.1 100 Continue\r\n\r\n",
			     25);
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
		bufferevent_set_timeouts(ex->c->bev, NULL, NULL);
		return;
	}
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	bufferevent_set_timeouts(ex->c->bev, &tv, NULL);
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

void proxy_client_readable(struct exchange *ex)
{
	struct conn *c = ex->c;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out;
	size_t avail;

	if (ex->req_done || ex->uc == NULL)
		return;
	body_idle_timer(ex, true);
	out = bufferevent_get_output(ex->uc->bev);
	while (!ex->req_done && (avail = evbuffer_get_length(in)) > 0) {
		if (evbuffer_get_length(out) > BP_HIGH) {
			bufferevent_disable(c->bev, EV_READ); /* resumed by up_write_cb */
			return;
		}
		if (ex->req_kind == HTTP1_BODY_LENGTH) {
			size_t n = avail < ex->req_remaining ? avail : (size_t)ex->req_remaining;

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
					evbuffer_add_printf(out, "%zx\r\n", dlen);
					evbuffer_add(out, data, dlen);
					evbuffer_add(out, "\r\n", 2);
					ex->req_started = true;
					ex->bytes_in += dlen;
				}
				off += (size_t)k;
				if (k == 0)
					break;
			}
			evbuffer_drain(in, off);
			if (ex->req_chunk.done) {
				evbuffer_add(out, "0\r\n\r\n", 5);
				ex->req_done = true;
			} else if (off < chunk) {
				break; /* need more bytes */
			}
		}
	}
	if (ex->req_done)
		body_idle_timer(ex, false);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
	struct exchange *ex = arg;

	/* Upstream output drained below BP_LOW: take more request body. */
	if (!ex->req_done) {
		conn_read_more(ex->c);
		proxy_client_readable(ex);
	}
}

/* ---- response: upstream -> client ---- */

static void write_response_head(struct exchange *ex, const struct http1_response *resp)
{
	struct conn *c = ex->c;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const struct headers_ops *dops = &ex->rd->headers;
	const struct header_op_list *rops = &ex->route->headers.response;
	size_t i;
	struct conn_tokens ct;
	bool keep_cl = ex->resp_kind == HTTP1_BODY_NONE && resp->status != 204 &&
		       !(resp->status >= 100 && resp->status < 200);

	conn_tokens_parse(resp->headers, resp->nheaders, &ct);
	evbuffer_add_printf(out, "HTTP/1.1 %d ", resp->status);
	if (resp->reason_len > 0)
		evbuffer_add(out, resp->reason, resp->reason_len);
	else
		evbuffer_add_printf(out, "%s", http_reason(resp->status));
	evbuffer_add(out, "\r\n", 2);
	for (i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (hop_by_hop(h->name, h->name_len) || NAME_IS(h->name, h->name_len, "server") ||
		    (!keep_cl && NAME_IS(h->name, h->name_len, "content-length")) ||
		    ops_drop(rops, h->name, h->name_len) ||
		    ops_drop(&dops->response, h->name, h->name_len) ||
		    listed_in_connection(&ct, h->name, h->name_len))
			continue;
		evbuffer_add(out, h->name, h->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, h->value, h->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add_printf(out, "server: meshgate\r\nx-envoy-upstream-service-time: %lld\r\n",
			    (long long)(ex->upstream_time_us / 1000));
	add_header_ops(out, rops);
	add_header_ops(out, &dops->response);
	if (ex->resp_kind == HTTP1_BODY_LENGTH) {
		evbuffer_add_printf(out, "content-length: %llu\r\n",
				    (unsigned long long)ex->resp_remaining);
	} else if (ex->resp_kind == HTTP1_BODY_CHUNKED || ex->resp_kind == HTTP1_BODY_UNTIL_CLOSE) {
		if (ex->minor_version >= 1) {
			evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
			ex->resp_chunked_out = true;
		} else {
			ex->resp_close_delimited = true; /* HTTP/1.0 client: body ends at close */
			ex->client_keepalive = false;
		}
	}
	if (!ex->req_done)
		ex->client_keepalive = false; /* the upstream answered before the body ended */
	if (!ex->client_keepalive || c->w->draining)
		evbuffer_add(out, "connection: close\r\n", 19);
	else if (ex->minor_version == 0)
		evbuffer_add(out, "connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
	ex->resp_head_sent = true;
	ex->status = resp->status;
}

static void response_done(struct exchange *ex)
{
	struct conn *c = ex->c;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool reusable = ex->upstream_reusable && ex->req_done && ex->uc != NULL &&
			evbuffer_get_length(bufferevent_get_input(ex->uc->bev)) == 0;

	if (ex->resp_chunked_out)
		evbuffer_add(out, "0\r\n\r\n", 5);
	up_release(ex, reusable);
	if (c->w->draining)
		ex->client_keepalive = false;
	conn_exchange_done(c);
}

/* Move response body bytes; returns true when the exchange ended (ex is gone). */
static bool move_body(struct exchange *ex)
{
	struct evbuffer *in = bufferevent_get_input(ex->uc->bev);
	struct evbuffer *out = bufferevent_get_output(ex->c->bev);
	size_t avail = evbuffer_get_length(in);

	switch (ex->resp_kind) {
	case HTTP1_BODY_NONE:
		response_done(ex);
		return true;
	case HTTP1_BODY_LENGTH: {
		size_t n = avail < ex->resp_remaining ? avail : (size_t)ex->resp_remaining;

		evbuffer_remove_buffer(in, out, n);
		ex->resp_remaining -= n;
		ex->bytes_out += n;
		if (ex->resp_remaining == 0) {
			response_done(ex);
			return true;
		}
		break;
	}
	case HTTP1_BODY_UNTIL_CLOSE:
		if (avail > 0) {
			if (ex->resp_chunked_out) {
				evbuffer_add_printf(out, "%zx\r\n", avail);
				evbuffer_remove_buffer(in, out, avail);
				evbuffer_add(out, "\r\n", 2);
			} else {
				evbuffer_remove_buffer(in, out, avail);
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
						evbuffer_add_printf(out, "%zx\r\n", dlen);
						evbuffer_add(out, data, dlen);
						evbuffer_add(out, "\r\n", 2);
					} else {
						evbuffer_add(out, data, dlen);
					}
					ex->bytes_out += dlen;
				}
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
	if (evbuffer_get_length(out) > BP_HIGH)
		bufferevent_disable(ex->uc->bev, EV_READ); /* resumed by proxy_client_drained */
	return false;
}

static void handle_response_head(struct exchange *ex)
{
	struct evbuffer *in = bufferevent_get_input(ex->uc->bev);
	struct http1_limits lim = {UP_MAX_HEAD, UP_MAX_HEAD, UP_MAX_HEADERS};
	struct http1_header hdrs[UP_MAX_HEADERS];
	struct http1_response resp;
	const char *why = NULL;

	for (;;) {
		size_t len = evbuffer_get_length(in);
		size_t want = len < UP_MAX_HEAD + 4 ? len : UP_MAX_HEAD + 4;
		const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		int n;

		memset(&resp, 0, sizeof(resp));
		resp.headers = hdrs;
		n = http1_parse_response(buf, want, &lim, &resp, &why);
		if (n == MG_AGAIN)
			return;
		if (n < 0 ||
		    http1_response_framing(&resp, ex->method, ex->method_len, &ex->resp_kind,
					   &ex->resp_remaining, &why) != 0) {
			METRIC_INC(&ex->c->w->metrics, upstream_rq_bad_response);
			log_info("bad response from %s: %s", ex->ep->name, why ? why : "?");
			fail_local(ex, 502, "UPE", "upstream sent an invalid response");
			return;
		}
		if (resp.status >= 100 && resp.status < 200) {
			/* Interim responses: 100 was answered by us already; 101 would need the
			 * upgrade support (stripped as hop-by-hop), so drop every 1xx. */
			evbuffer_drain(in, (size_t)n);
			continue;
		}
		ex->upstream_time_us = (int64_t)(mono_us() - ex->upstream_sent_us);
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

static void up_read_cb(struct bufferevent *bev, void *arg)
{
	struct exchange *ex = arg;

	if (!ex->resp_head_sent)
		handle_response_head(ex);
	else
		move_body(ex);
}

void proxy_client_drained(struct exchange *ex)
{
	if (ex->uc != NULL && ex->resp_head_sent)
		bufferevent_enable(ex->uc->bev, EV_READ);
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
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
	/* TLS origination whose handshake failed (bad certificate, alert): 503 UF, why logged */
	if (!ex->resp_head_sent && (tls_why = connpool_tls_failure(ex->uc, ex)) != NULL) {
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		fail_local(ex, 503, "UF", tls_why);
		return;
	}
	if (ex->connect_timer != NULL && evtimer_pending(ex->connect_timer, NULL)) {
		/* still connecting: the connect failed */
		METRIC_INC(&w->metrics, upstream_cx_connect_fail);
		log_debug("connect to %s failed", ex->ep->name);
		fail_local(ex, 503, "UF", "upstream connect error");
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
	    evbuffer_get_length(bufferevent_get_input(ex->uc->bev)) == 0) {
		ex->retried_stale = true;
		METRIC_INC(&w->metrics, upstream_rq_retry_stale);
		connpool_close(ex->uc);
		ex->uc = NULL;
		if (up_connect(ex, false) == 0)
			return;
	}
	METRIC_INC(&w->metrics, upstream_rq_reset);
	fail_local(ex, 503, "UC", "upstream connection closed before response");
}

void proxy_abort(struct exchange *ex)
{
	up_release(ex, false);
}
