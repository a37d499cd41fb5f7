#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "authz.h"
#include "authzpb.h"
#include "clock.h"
#include "clusterstate.h"
#include "proxy.h"
#include "conn.h"
#include "connpool.h"
#include "errors.h"
#include "exchange.h"
#include "extauthz.h"
#include "h2down.h"
#include "h2up.h"
#include "http1.h"
#include "locality.h"
#include "log.h"
#include "metrics.h"
#include "outlier.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "stream.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

/* ok_response's header entries take a slot of the request's each (extauthz.h). */
_Static_assert(AUTHZPB_HEADERS_MAX <= EXTAUTHZ_HEADERS_MAX, "room for the authorizer's fields");

/* The authorizer's answer is bounded: its head, its fields and its body. */
#define XA_MAX_HEAD (64 * 1024)
#define XA_MAX_HEADERS 100
#define XA_MAX_BODY (64 * 1024)

struct extauthz {
	struct exchange *ex;
	const struct ext_authz *x;
	bool grpc;              /* envoyExtAuthzGrpc: a gRPC call on an HTTP/2 stream */
	struct h2up_stream *hs; /* gRPC: the stream (uc NULL) */
	bool h2_reused;         /* ... on a connection that was up already */
	const struct cluster *cl;
	const struct endpoint *ep;
	struct upstream_host *uh;
	struct upconn *uc;
	struct event *timer;
	struct evbuffer *check; /* the check request, kept for a retry on a stale connection */
	struct evbuffer *body;  /* the answer's body (a denial's goes to the client) */
	uint64_t deadline_us;   /* monotonic: timeout */
	size_t head_len;        /* of the client's head, waiting in its input */
	bool head_method;       /* a HEAD check: the answer has no body */
	bool connected, retried, head_seen, resp_close, active, done;
	enum http1_body_kind resp_kind;
	uint64_t resp_left;
	struct http1_chunked resp_chunk;
	enum extauthz_verdict verdict;
	int status;
	const char *why; /* an error's reason, for the debug log */
	/* gRPC: the grpc-status of the head (trailers-only) or the trailers (-1 none), whether
	 * the head said application/grpc, the trailer field lines, the CheckResponse (pointing
	 * into body), and a denial's status */
	int grpc_status;
	bool grpc_ct;
	struct evbuffer *trailers;
	struct authzpb_response *pb;
	int deny_status;
	/* kept from the answer's head: fields for the upstream (allowed), and header lines
	 * for the client (denied: headersToDownstreamOnDeny; allowed: ...OnAllow) */
	struct http1_header up[EXTAUTHZ_HEADERS_MAX];
	size_t nup;
	char *up_text;
	char *down; /* "name: value\r\n"..., NUL-terminated, or NULL */
};

static void xa_read_cb(struct stream *st, void *arg);
static void xa_event_cb(struct stream *st, short what, void *arg);

static bool xa_listed(const struct str_list *l, const char *name, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (authz_value_match(l->v[i], name, len, true))
			return true;
	return false;
}

/* Fields whose meaning is the connection's or the framing's: never copied from one
 * message to another (the check request, the request forwarded, the client's reply). */
static bool xa_framing(const char *n, size_t len)
{
	return HTTP1_NAME_IS(n, len, "host") || HTTP1_NAME_IS(n, len, "content-length") ||
	       HTTP1_NAME_IS(n, len, "transfer-encoding") || HTTP1_NAME_IS(n, len, "connection") ||
	       HTTP1_NAME_IS(n, len, "keep-alive") || HTTP1_NAME_IS(n, len, "proxy-connection") ||
	       HTTP1_NAME_IS(n, len, "te") || HTTP1_NAME_IS(n, len, "trailer") ||
	       HTTP1_NAME_IS(n, len, "upgrade") || HTTP1_NAME_IS(n, len, "expect");
}

static bool xa_additional(const struct ext_authz *x, const char *name, size_t len)
{
	for (size_t i = 0; i < x->additional_headers.n; i++)
		if (strlen(x->additional_headers.v[i].key) == len &&
		    http1_caseeq(name, x->additional_headers.v[i].key, len))
			return true;
	return false;
}

/* The check request: the client's method, pathPrefix + its (normalised) path and query,
 * Host, Content-Length: 0, and the fields Envoy's HTTP ext_authz client sends: always
 * Authorization, plus those includeRequestHeadersInCheck names, then the fixed
 * includeAdditionalHeadersInCheck ones (which win over the client's of the same name). */
static int xa_build(struct extauthz *xa, const struct http1_request *req,
		    const struct route_request *rq)
{
	const struct ext_authz *x = xa->x;
	struct evbuffer *b = xa->check;
	int rc = 0;

	rc |= evbuffer_add(b, rq->method, rq->method_len);
	rc |= evbuffer_add_printf(b, " %s", x->path_prefix) < 0;
	rc |= evbuffer_add(b, rq->path, rq->path_len);
	if (rq->query != NULL) {
		rc |= evbuffer_add(b, "?", 1);
		rc |= evbuffer_add(b, rq->query, rq->query_len);
	}
	rc |= evbuffer_add(b, " HTTP/1.1\r\nhost: ", 17);
	rc |= evbuffer_add(b, rq->authority, rq->authority_len);
	rc |= evbuffer_add(b, "\r\ncontent-length: 0\r\n", 21);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		if (xa_framing(h->name, h->name_len) || xa_additional(x, h->name, h->name_len) ||
		    (!HTTP1_NAME_IS(h->name, h->name_len, "authorization") &&
		     !xa_listed(&x->request_headers, h->name, h->name_len)))
			continue;
		rc |= evbuffer_add(b, h->name, h->name_len);
		rc |= evbuffer_add(b, ": ", 2);
		rc |= evbuffer_add(b, h->value, h->value_len);
		rc |= evbuffer_add(b, "\r\n", 2);
	}
	for (size_t i = 0; i < x->additional_headers.n; i++)
		rc |= evbuffer_add_printf(b, "%s: %s\r\n", x->additional_headers.v[i].key,
					  x->additional_headers.v[i].value) < 0;
	rc |= evbuffer_add(b, "\r\n", 2);
	return rc != 0 ? -1 : 0;
}

/* Fields Envoy's connection manager removes or sets itself before its filters run: they
 * are not in the CheckRequest's map as the client sent them. */
static bool xa_grpc_skip(const char *n, size_t len)
{
	return HTTP1_NAME_IS(n, len, "host") || HTTP1_NAME_IS(n, len, "connection") ||
	       HTTP1_NAME_IS(n, len, "keep-alive") || HTTP1_NAME_IS(n, len, "proxy-connection") ||
	       HTTP1_NAME_IS(n, len, "transfer-encoding") || HTTP1_NAME_IS(n, len, "upgrade") ||
	       HTTP1_NAME_IS(n, len, "te") || HTTP1_NAME_IS(n, len, "expect") ||
	       HTTP1_NAME_IS(n, len, "x-forwarded-for") ||
	       HTTP1_NAME_IS(n, len, "x-forwarded-proto") ||
	       HTTP1_NAME_IS(n, len, "x-request-id") ||
	       HTTP1_NAME_IS(n, len, "x-forwarded-client-cert");
}

static uint32_t xa_port(const union conn_addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return ntohs(a->in.sin_port);
	if (a->sa.sa_family == AF_INET6)
		return ntohs(a->in6.sin6_port);
	return 0;
}

static void xa_field(struct authzpb_field *f, const char *name, const char *v, size_t vlen)
{
	f->name = name;
	f->name_len = strlen(name);
	f->value = v;
	f->value_len = vlen;
}

/* The gRPC check: a unary call of envoy.service.auth.v3.Authorization/Check whose
 * CheckRequest has what Envoy's ext_authz filter puts there: the peer (address, and the
 * client certificate's identity) and the local address, the time the request came, and
 * the request: id (x-request-id), method, the normalised path and query, host, scheme,
 * protocol, and every header as Envoy's connection manager hands them to its filters --
 * the pseudo-headers, the client's fields, then x-forwarded-for with the peer appended,
 * x-forwarded-proto, x-request-id and x-forwarded-client-cert as meshgate forwards them.
 * Written as an HTTP/1.1 request carrying the prefixed message, for h2up.c. */
static int xa_build_grpc(struct extauthz *xa, const struct http1_request *req,
			 const struct route_request *rq)
{
	struct exchange *ex = xa->ex;
	struct conn *c = ex->c, *owner = c->h2_stream ? h2down_conn(c->h2) : c;
	char peer[CONN_ADDR_TEXT], local[CONN_ADDR_TEXT], principal[1024] = "";
	char *path = NULL, *xff = NULL;
	size_t nf = 0, plen, xlen, room = 1024;
	struct authzpb_field *f = calloc(req->nheaders + 8, sizeof(*f));
	const char *xfcc = c->ssl != NULL ? conn_xfcc(c) : NULL;
	size_t slen = strlen(rq->scheme);
	struct authzpb_check ck;
	uint8_t *msg = NULL;
	ssize_t mlen = -1;
	uint64_t ms = xa->x->timeout_us / 1000;
	int rc = -1;

	memset(&ck, 0, sizeof(ck));
	conn_peer_text(c, false, peer);
	conn_local_text(owner, local); /* reads the address once per connection */
	conn_addr_format(&owner->local, false, local);
	plen = rq->path_len + (rq->query != NULL ? 1 + rq->query_len : 0);
	xlen = (ex->xff != NULL ? ex->xff_len + 2 : 0) + strlen(peer);
	path = malloc(plen + 1);
	xff = malloc(xlen + 1);
	if (f == NULL || path == NULL || xff == NULL)
		goto out;
	memcpy(path, rq->path, rq->path_len);
	if (rq->query != NULL) {
		path[rq->path_len] = '?';
		memcpy(path + rq->path_len + 1, rq->query, rq->query_len);
	}
	snprintf(xff, xlen + 1, "%.*s%s%s", ex->xff != NULL ? (int)ex->xff_len : 0,
		 ex->xff != NULL ? ex->xff : "", ex->xff != NULL ? ", " : "", peer);
	xa_field(&f[nf++], ":authority", rq->authority, rq->authority_len);
	xa_field(&f[nf++], ":path", path, plen);
	xa_field(&f[nf++], ":method", rq->method, rq->method_len);
	xa_field(&f[nf++], ":scheme", rq->scheme, slen);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		if (xa_grpc_skip(h->name, h->name_len))
			continue;
		f[nf].name = h->name;
		f[nf].name_len = h->name_len;
		f[nf].value = h->value;
		f[nf++].value_len = h->value_len;
	}
	xa_field(&f[nf++], "x-forwarded-for", xff, xlen);
	xa_field(&f[nf++], "x-forwarded-proto", rq->scheme, slen);
	xa_field(&f[nf++], "x-request-id", ex->request_id, ex->request_id_len);
	if (xfcc != NULL)
		xa_field(&f[nf++], "x-forwarded-client-cert", xfcc, strlen(xfcc));

	ck.source.address = peer;
	ck.source.port = xa_port(&c->peer);
	if (tls_peer_identity(c->ssl, principal, sizeof(principal)) > 0)
		ck.source.principal = principal;
	if (owner->local.sa.sa_family == AF_INET || owner->local.sa.sa_family == AF_INET6) {
		ck.destination.address = local;
		ck.destination.port = xa_port(&owner->local);
	}
	ck.has_time = true;
	ck.time_sec = ex->start_wall.tv_sec;
	ck.time_nsec = (int32_t)ex->start_wall.tv_nsec;
	ck.id = (struct authzpb_str){ex->request_id, ex->request_id_len};
	ck.method = (struct authzpb_str){rq->method, rq->method_len};
	ck.path = (struct authzpb_str){path, plen};
	ck.host = (struct authzpb_str){rq->authority, rq->authority_len};
	ck.scheme = (struct authzpb_str){rq->scheme, slen};
	ck.protocol.p = c->h2_stream ? "HTTP/2" : ex->minor_version == 0 ? "HTTP/1.0" : "HTTP/1.1";
	ck.protocol.len = strlen(ck.protocol.p);
	ck.headers = f;
	ck.nheaders = nf;
	/* room: every string once, with the path and authority thrice, plus the framing */
	room += 3 * (plen + rq->authority_len) + xlen + strlen(principal) + 2 * CONN_ADDR_TEXT;
	for (size_t i = 0; i < nf; i++)
		room += f[i].name_len + f[i].value_len + 16;
	if ((msg = malloc(AUTHZPB_GRPC_PREFIX + room)) == NULL ||
	    (mlen = authzpb_check_encode(&ck, msg + AUTHZPB_GRPC_PREFIX, room)) < 0)
		goto out;
	authzpb_grpc_prefix((size_t)mlen, msg);
	/* grpc-timeout takes 8 digits at most: milliseconds, else seconds */
	if (evbuffer_add_printf(
		xa->check,
		"POST /envoy.service.auth.v3.Authorization/Check HTTP/1.1\r\n"
		"host: %s\r\ncontent-type: application/grpc\r\nte: trailers\r\n"
		"grpc-timeout: %llu%c\r\ncontent-length: %zu\r\n\r\n",
		xa->x->service, (unsigned long long)(ms <= 99999999 ? ms : ms / 1000),
		ms <= 99999999 ? 'm' : 'S', (size_t)mlen + AUTHZPB_GRPC_PREFIX) < 0 ||
	    evbuffer_add(xa->check, msg, (size_t)mlen + AUTHZPB_GRPC_PREFIX) != 0)
		goto out;
	rc = 0;
out:
	free(msg);
	free(xff);
	free(path);
	free(f);
	return rc;
}

static void xa_timer_arm(struct extauthz *xa, uint64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(xa->timer, &tv);
}

static uint64_t xa_time_left(const struct extauthz *xa)
{
	uint64_t now = clock_mono_us();

	return xa->deadline_us > now ? xa->deadline_us - now : 1;
}

/* Give the connection back (reusable) or close it, or end the gRPC stream (complete, or
 * cancelled); the endpoint's request count too. */
static void xa_detach(struct extauthz *xa, bool reusable)
{
	struct upconn *uc = xa->uc;
	struct h2up_stream *hs = xa->hs;

	evtimer_del(xa->timer);
	if (xa->active && xa->uh->active_rq > 0)
		xa->uh->active_rq--;
	xa->active = false;
	xa->uc = NULL;
	xa->hs = NULL;
	if (hs != NULL)
		h2up_stream_close(hs, reusable); /* no callback runs after */
	if (uc == NULL)
		return;
	if (reusable)
		connpool_release(uc);
	else
		connpool_close(uc);
}

/* The verdict: counted, the connection let go, then request.c takes over (and may end
 * the exchange, which frees xa). */
static void xa_finish(struct extauthz *xa, enum extauthz_verdict v, bool reusable)
{
	struct exchange *ex = xa->ex;
	struct worker *w = ex->c->w;

	if (xa->done)
		return;
	xa->done = true;
	xa->verdict = v;
	if (xa->cl != NULL && xa->cl->outlier != NULL && xa->ep != NULL)
		outlier_report(xa->cl, xa->ep,
			       v == EXTAUTHZ_ERROR && !xa->head_seen ? 0 : xa->status,
			       clock_mono_us());
	switch (v) {
	case EXTAUTHZ_ALLOWED:
		METRIC_INC(&w->metrics, ext_authz_ok);
		break;
	case EXTAUTHZ_DENIED:
		METRIC_INC(&w->metrics, ext_authz_denied);
		break;
	case EXTAUTHZ_ERROR:
		METRIC_INC(&w->metrics, ext_authz_error);
		if (xa->x->fail_open)
			METRIC_INC(&w->metrics, ext_authz_failure_mode_allowed);
		log_debug("ext_authz %s: %s", xa->x->name, xa->why != NULL ? xa->why : "error");
		break;
	}
	xa_detach(xa, reusable);
	request_extauthz_done(ex);
}

static void xa_error(struct extauthz *xa, const char *why)
{
	xa->why = why;
	xa_finish(xa, EXTAUTHZ_ERROR, false);
}

/* An endpoint of the cluster in service, as proxy.c picks one (no hash key: a check is
 * not a client request of that service). */
static const struct endpoint *xa_pick(struct worker *w, const struct cluster *cl)
{
	const struct endpoint *ep;

	if (cl->nlevels > 1)
		return locality_pick(w, cl, clock_mono_us());
	ep = upstream_pick(w, cl);
	if (ep != NULL && (cl->outlier != NULL || cl->health_check != NULL))
		ep = outlier_pick(w, cl, ep, clock_mono_us());
	return ep;
}

/* A pooled connection, or a new one within the cluster's maxConnections; the check
 * request queued on it.  -1 with xa->why set when none can be had. */
static int xa_connect(struct extauthz *xa, bool allow_pooled, struct upconn *replacing)
{
	struct worker *w = xa->ex->c->w;
	struct cluster_state *counted = NULL;
	const struct conn_pool_settings *lim = xa->cl->pool_limits;
	uint64_t left = xa_time_left(xa), connect_us;
	struct upconn *uc = allow_pooled ? connpool_get_idle(w->pool, xa->uh) : NULL;

	xa->connected = uc != NULL;
	if (uc != NULL) {
		xa_timer_arm(xa, left);
	} else {
		if (replacing != NULL && replacing->counted != NULL) {
			counted = replacing->counted;
			replacing->counted = NULL;
		} else if (!connpool_admit(xa->uh, xa->cl->state, lim, &counted)) {
			xa->why = "the authorizer's cluster is at maxConnections";
			return -1;
		}
		uc = connpool_connect(w->pool, xa->uh);
		if (uc == NULL) {
			if (counted != NULL)
				clusterstate_release(&counted->cx_active);
			xa->why = "connect error";
			CLUSTER_COUNT(xa->cl, w->id, CC_CX_CONNECT_FAIL);
			return -1;
		}
		connpool_setup(uc, counted, lim);
		connect_us = lim != NULL && lim->connect_timeout_us > 0
				 ? lim->connect_timeout_us
				 : xa->ex->ws->snap->set->main.timeouts.upstream_connect_us;
		xa_timer_arm(xa, connect_us < left ? connect_us : left);
	}
	xa->uc = uc;
	stream_setcb(uc->st, xa_read_cb, NULL, xa_event_cb, xa);
	stream_setwatermark(uc->st, EV_READ, 0, 0);
	stream_setwatermark(uc->st, EV_WRITE, 0, 0);
	stream_set_read_timeout(uc->st, NULL);
	stream_enable(uc->st, EV_READ | EV_WRITE);
	evbuffer_add(stream_output(uc->st), evbuffer_pullup(xa->check, -1),
		     evbuffer_get_length(xa->check));
	return 0;
}

static void xa_h2_read(void *arg);
static void xa_h2_write(void *arg);
static void xa_h2_event(void *arg, enum h2up_event ev, const char *why);
static const struct h2up_cb xa_h2_cbs = {xa_h2_read, xa_h2_write, xa_h2_event};

/* gRPC: a stream on a connection of the cluster's HTTP/2 pool with room (shared with the
 * requests routed there, as proxy.c finds them), else on a new connection within the
 * cluster's maxConnections; the call queued on it.  -1 with xa->why when none can be
 * had. */
static int xa_connect_h2(struct extauthz *xa)
{
	struct worker *w = xa->ex->c->w;
	const struct conn_pool_settings *lim = xa->cl->pool_limits;
	const void *owner =
	    xa->cl->state != NULL ? (const void *)xa->cl->state : (const void *)xa->cl;
	struct h2up_conn *hc;
	uint64_t left = xa_time_left(xa), connect_us = left;
	bool ready = false;

	if (xa->uh->h2_off) {
		xa->why = "the authorizer's TLS server chose HTTP/1.1, and gRPC needs HTTP/2";
		return -1;
	}
	if ((hc = h2up_find(xa->uh, owner, lim)) == NULL) {
		struct cluster_state *counted = NULL;

		if (!connpool_admit(xa->uh, xa->cl->state, lim, &counted)) {
			xa->why = "the authorizer's cluster is at maxConnections";
			return -1;
		}
		hc = h2up_connect(w->pool, xa->uh, owner, lim);
		if (hc == NULL) {
			if (counted != NULL)
				clusterstate_release(&counted->cx_active);
			xa->why = "connect error";
			CLUSTER_COUNT(xa->cl, w->id, CC_CX_CONNECT_FAIL);
			return -1;
		}
		connpool_setup(h2up_conn_upconn(hc), counted, lim);
		connect_us = lim != NULL && lim->connect_timeout_us > 0
				 ? lim->connect_timeout_us
				 : xa->ex->ws->snap->set->main.timeouts.upstream_connect_us;
	}
	if ((xa->hs = h2up_stream_open(hc, &xa_h2_cbs, xa, &ready)) == NULL) {
		xa->why = "out of memory";
		return -1;
	}
	xa->connected = ready;
	xa->h2_reused = ready;
	xa_timer_arm(xa, ready || connect_us > left ? left : connect_us);
	evbuffer_add(h2up_stream_output(xa->hs), evbuffer_pullup(xa->check, -1),
		     evbuffer_get_length(xa->check));
	return 0;
}

/* The timer: the timeout, or (before anything was sent) a start that failed at once,
 * whose verdict waits for the event loop. */
static void xa_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct extauthz *xa = arg;

	(void)fd;
	(void)what;
	if (xa->why == NULL) {
		xa->why = xa->connected ? "timeout" : "connect timeout";
		if (xa->cl != NULL)
			CLUSTER_COUNT(xa->cl, xa->ex->c->w->id,
				      xa->connected ? CC_RQ_TIMEOUT : CC_CX_CONNECT_FAIL);
	}
	xa_finish(xa, EXTAUTHZ_ERROR, false);
}

/* Keep what the verdict needs from the answer's head: the upstream fields (200) or the
 * client's header lines. */
static int xa_keep_head(struct extauthz *xa, const struct http1_response *resp)
{
	const struct ext_authz *x = xa->x;
	struct evbuffer *lines = evbuffer_new();
	size_t total = 0, at = 0, len;
	bool allowed = resp->status == 200;
	int rc = 0;

	if (lines == NULL)
		return -1;
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];
		bool to_client;

		if (xa_framing(h->name, h->name_len))
			continue;
		if (allowed) {
			if (xa_listed(&x->upstream_on_allow, h->name, h->name_len) &&
			    xa->nup < EXTAUTHZ_HEADERS_MAX) {
				xa->up[xa->nup].name = h->name; /* rebased below */
				xa->up[xa->nup].name_len = h->name_len;
				xa->up[xa->nup].value = h->value;
				xa->up[xa->nup].value_len = h->value_len;
				xa->nup++;
				total += h->name_len + h->value_len;
			}
			to_client = xa_listed(&x->downstream_on_allow, h->name, h->name_len);
		} else if (x->downstream_on_deny.n == 0) {
			/* Envoy: every field but the authority; meshgate writes its own
			 * date, server and x-request-id */
			to_client = !HTTP1_NAME_IS(h->name, h->name_len, "date") &&
				    !HTTP1_NAME_IS(h->name, h->name_len, "server") &&
				    !HTTP1_NAME_IS(h->name, h->name_len, "x-request-id");
		} else {
			/* Envoy adds Location and WWW-Authenticate to a list given */
			to_client = xa_listed(&x->downstream_on_deny, h->name, h->name_len) ||
				    HTTP1_NAME_IS(h->name, h->name_len, "location") ||
				    HTTP1_NAME_IS(h->name, h->name_len, "www-authenticate");
		}
		if (to_client) {
			rc |= evbuffer_add(lines, h->name, h->name_len);
			rc |= evbuffer_add(lines, ": ", 2);
			rc |= evbuffer_add(lines, h->value, h->value_len);
			rc |= evbuffer_add(lines, "\r\n", 2);
		}
	}
	if (xa->nup > 0 && (xa->up_text = malloc(total)) == NULL)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < xa->nup; i++) {
		struct http1_header *u = &xa->up[i];

		memcpy(xa->up_text + at, u->name, u->name_len);
		u->name = xa->up_text + at;
		at += u->name_len;
		memcpy(xa->up_text + at, u->value, u->value_len);
		u->value = xa->up_text + at;
		at += u->value_len;
	}
	len = evbuffer_get_length(lines);
	if (rc == 0 && len > 0) {
		if ((xa->down = malloc(len + 1)) == NULL)
			rc = -1;
		else {
			evbuffer_remove(lines, xa->down, len);
			xa->down[len] = '\0';
		}
	}
	evbuffer_free(lines);
	return rc != 0 ? -1 : 0;
}

/* gRPC: what the head says -- its content-type, and the grpc-status of a trailers-only
 * answer. */
static void xa_grpc_head(struct extauthz *xa, const struct http1_response *resp)
{
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (HTTP1_NAME_IS(h->name, h->name_len, "grpc-status"))
			xa->grpc_status = authzpb_grpc_status(h->value, h->value_len);
		else if (HTTP1_NAME_IS(h->name, h->name_len, "content-type"))
			xa->grpc_ct =
			    h->value_len >= 16 && http1_caseeq(h->value, "application/grpc", 16) &&
			    (h->value_len == 16 || h->value[16] == '+' || h->value[16] == ';');
	}
}

/* 1: the head was parsed (interim ones skipped), 0: more bytes needed, -1: ended. */
static int xa_response_head(struct extauthz *xa, struct evbuffer *in)
{
	struct http1_limits lim = {XA_MAX_HEAD, XA_MAX_HEAD, XA_MAX_HEADERS};
	struct http1_header hdrs[XA_MAX_HEADERS];
	struct http1_response resp = {.headers = hdrs};
	const char *why = NULL;

	for (;;) {
		int n = proxy_response_head(in, &lim, xa->head_method ? "HEAD" : "GET",
					    xa->head_method ? 4 : 3, &resp, &xa->resp_kind,
					    &xa->resp_left, &why);

		if (n == MG_AGAIN)
			return 0;
		if (n < 0) {
			xa_error(xa, why != NULL ? why : "invalid response");
			return -1;
		}
		if (resp.status >= 100 && resp.status < 200) {
			evbuffer_drain(in, (size_t)n);
			continue; /* interim: the final head follows */
		}
		xa->head_seen = true;
		xa->status = resp.status;
		xa->resp_close = resp.conn_close;
		if (xa->resp_kind == HTTP1_BODY_LENGTH && xa->resp_left > XA_MAX_BODY) {
			xa_error(xa, "the authorizer's answer is too large");
			return -1;
		}
		if (xa->grpc) {
			xa_grpc_head(xa, &resp);
		} else if (resp.status < 500 && xa_keep_head(xa, &resp) != 0) {
			xa_error(xa, "out of memory");
			return -1;
		}
		evbuffer_drain(in, (size_t)n);
		return 1;
	}
}

/* Collect the body (bounded): 1 complete, 0 more needed, -1 ended. */
static int xa_response_body(struct extauthz *xa, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);

	switch (xa->resp_kind) {
	case HTTP1_BODY_NONE:
		return 1;
	case HTTP1_BODY_LENGTH: {
		size_t n = avail < xa->resp_left ? avail : (size_t)xa->resp_left;

		evbuffer_remove_buffer(in, xa->body, n);
		xa->resp_left -= n;
		return xa->resp_left == 0;
	}
	case HTTP1_BODY_UNTIL_CLOSE:
		evbuffer_remove_buffer(in, xa->body, avail);
		if (evbuffer_get_length(xa->body) > XA_MAX_BODY) {
			xa_error(xa, "the authorizer's answer is too large");
			return -1;
		}
		return 0; /* ends at EOF */
	case HTTP1_BODY_CHUNKED:
		while (avail > 0 && !xa->resp_chunk.done) {
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)chunk);

			while (off < chunk && !xa->resp_chunk.done) {
				const char *data, *why = NULL;
				size_t dlen = 0;
				ssize_t k = http1_chunked_step(&xa->resp_chunk, buf + off,
							       chunk - off, &data, &dlen, &why);

				if (k < 0) {
					xa_error(xa, why != NULL ? why : "bad chunked answer");
					return -1;
				}
				if (dlen > 0)
					evbuffer_add(xa->body, data, dlen);
				if (xa->trailers != NULL && xa->resp_chunk.trailers_len > 0)
					evbuffer_add(xa->trailers, xa->resp_chunk.trailers,
						     xa->resp_chunk.trailers_len);
				off += (size_t)k;
				if (k == 0)
					break;
			}
			evbuffer_drain(in, off);
			if (evbuffer_get_length(xa->body) > XA_MAX_BODY) {
				xa_error(xa, "the authorizer's answer is too large");
				return -1;
			}
			avail = evbuffer_get_length(in);
			if (off < chunk && !xa->resp_chunk.done)
				break;
		}
		return xa->resp_chunk.done ? 1 : 0;
	}
	return 0;
}

/* Header lines for the client, "name: value\r\n" (names lower-cased already), minus what
 * meshgate writes itself: the framing, date, server and x-request-id. */
static int xa_grpc_lines(struct evbuffer *lines, const struct authzpb_header *h, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		const struct authzpb_str *k = &h[i].key, *v = &h[i].value;

		if (xa_framing(k->p, k->len) || HTTP1_NAME_IS(k->p, k->len, "date") ||
		    HTTP1_NAME_IS(k->p, k->len, "server") ||
		    HTTP1_NAME_IS(k->p, k->len, "x-request-id"))
			continue;
		rc |= evbuffer_add(lines, k->p, k->len);
		rc |= evbuffer_add(lines, ": ", 2);
		rc |= evbuffer_add(lines, v->p, v->len);
		rc |= evbuffer_add(lines, "\r\n", 2);
	}
	return rc;
}

/* Header names in lower case, as Envoy keeps them: in place, in the answer's bytes (ours,
 * in xa->body). */
static void xa_lower(const struct authzpb_str *s)
{
	char *p = (char *)s->p;

	for (size_t i = 0; i < s->len; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] + ('a' - 'A'));
}

/* The trailers' grpc-status (when the head had none): whole "name: value\r\n" lines. */
static void xa_grpc_trailers(struct extauthz *xa)
{
	size_t len = evbuffer_get_length(xa->trailers), at = 0;
	const char *t = (const char *)evbuffer_pullup(xa->trailers, -1);

	while (t != NULL && at < len) {
		const char *eol = memchr(t + at, '\r', len - at);
		size_t end = eol != NULL ? (size_t)(eol - t) : len;
		const char *colon = memchr(t + at, ':', end - at);

		if (colon != NULL && HTTP1_NAME_IS(t + at, (size_t)(colon - t) - at, "grpc-status"))
			xa->grpc_status =
			    authzpb_grpc_status(colon + 1, end - (size_t)(colon - t) - 1);
		at = end + 2;
	}
}

/* The gRPC answer, complete.  A call that failed is an error, as Envoy's gRPC client
 * reports it: an HTTP status other than 200, no grpc-status or one other than 0, not
 * application/grpc, not exactly one CheckResponse, a malformed one.  Then the
 * CheckResponse's status says allowed (OK) or denied (any other code), as Envoy's
 * ext_authz filter reads it. */
static void xa_grpc_verdict(struct extauthz *xa)
{
	struct evbuffer *lines;
	struct authzpb_response *pb;
	const uint8_t *msg = NULL, *buf;
	size_t len = evbuffer_get_length(xa->body), mlen = 0;
	const char *why = NULL;
	bool allowed, has_ct = false;
	ssize_t n;
	int rc;

	if (xa->status != 200) {
		xa_error(xa, "the authorizer's HTTP status is not 200");
		return;
	}
	if (xa->grpc_status < 0)
		xa_grpc_trailers(xa);
	if (xa->grpc_status < 0) {
		xa_error(xa, "the authorizer's answer has no grpc-status");
		return;
	}
	if (xa->grpc_status != 0) {
		xa_error(xa, "the authorizer's call failed (grpc-status not 0)");
		return;
	}
	if (!xa->grpc_ct) {
		xa_error(xa, "the authorizer's answer is not application/grpc");
		return;
	}
	buf = evbuffer_pullup(xa->body, -1);
	n = buf != NULL ? authzpb_grpc_frame(buf, len, XA_MAX_BODY, &msg, &mlen, &why) : 0;
	if (n <= 0 || (size_t)n != len) {
		xa_error(xa, n < 0    ? why
			     : n == 0 ? "the authorizer's answer has no complete message"
				      : "the authorizer's answer has more than one message");
		return;
	}
	if ((pb = malloc(sizeof(*pb))) == NULL) {
		xa_error(xa, "out of memory");
		return;
	}
	xa->pb = pb;
	if (authzpb_response_parse(msg, mlen, pb, &why) != 0) {
		xa_error(xa, why);
		return;
	}
	for (size_t i = 0; i < pb->nheaders; i++)
		xa_lower(&pb->headers[i].key);
	for (size_t i = 0; i < pb->nresponse_headers; i++)
		xa_lower(&pb->response_headers[i].key);
	for (size_t i = 0; i < pb->nremove; i++)
		xa_lower(&pb->remove[i]);
	allowed = pb->code == 0;
	if (!allowed) {
		/* Envoy: 403 unless the denied_response names a status */
		if (pb->kind != AUTHZPB_DENIED)
			pb->nheaders = 0;
		xa->deny_status = pb->http_status != 0 ? (int)pb->http_status : 403;
		if (pb->http_status > 599 || xa->deny_status < 200) {
			xa_error(xa, "the authorizer's denied_response status is not 200..599");
			return;
		}
	}
	if ((lines = evbuffer_new()) == NULL) {
		xa_error(xa, "out of memory");
		return;
	}
	if (allowed) {
		rc = pb->kind == AUTHZPB_OK
			 ? xa_grpc_lines(lines, pb->response_headers, pb->nresponse_headers)
			 : 0;
	} else {
		rc = xa_grpc_lines(lines, pb->headers, pb->nheaders);
		for (size_t i = 0; i < pb->nheaders; i++)
			has_ct |= HTTP1_NAME_IS(pb->headers[i].key.p, pb->headers[i].key.len,
						"content-type");
		/* Envoy's local reply types a body it is given */
		if (!has_ct && pb->body.len > 0)
			rc |= evbuffer_add(lines, "content-type: text/plain\r\n", 26);
	}
	len = evbuffer_get_length(lines);
	if (rc == 0 && len > 0 && (xa->down = malloc(len + 1)) != NULL) {
		evbuffer_remove(lines, xa->down, len);
		xa->down[len] = '\0';
	}
	evbuffer_free(lines);
	if (rc != 0 || (len > 0 && xa->down == NULL)) {
		xa_error(xa, "out of memory");
		return;
	}
	xa_finish(xa, allowed ? EXTAUTHZ_ALLOWED : EXTAUTHZ_DENIED, true);
}

static void xa_verdict(struct extauthz *xa, bool reusable)
{
	CLUSTER_COUNT(xa->cl, xa->ex->c->w->id,
		      xa->status < 300   ? CC_RQ_2XX
		      : xa->status < 400 ? CC_RQ_3XX
		      : xa->status < 500 ? CC_RQ_4XX
					 : CC_RQ_5XX);
	if (xa->grpc)
		xa_grpc_verdict(xa);
	else if (xa->status == 200)
		xa_finish(xa, EXTAUTHZ_ALLOWED, reusable);
	else if (xa->status >= 500) /* Envoy: the authorizer failed */
		xa_error(xa, "the authorizer answered 5xx");
	else
		xa_finish(xa, EXTAUTHZ_DENIED, reusable);
}

static void xa_read_cb(struct stream *st, void *arg)
{
	struct extauthz *xa = arg;
	struct evbuffer *in = stream_input(st);
	bool reusable;

	if (!xa->head_seen && xa_response_head(xa, in) <= 0)
		return;
	if (xa_response_body(xa, in) <= 0)
		return;
	reusable = !xa->resp_close && stream_output_len(st) == 0 && evbuffer_get_length(in) == 0;
	xa_verdict(xa, reusable);
}

static void xa_event_cb(struct stream *st, short what, void *arg)
{
	struct extauthz *xa = arg;
	struct evbuffer *in = stream_input(st);

	if (what & BEV_EVENT_CONNECTED) {
		xa->connected = true;
		xa_timer_arm(xa, xa_time_left(xa));
		return;
	}
	if (xa->head_seen && xa->resp_kind == HTTP1_BODY_UNTIL_CLOSE && (what & BEV_EVENT_EOF)) {
		xa_verdict(xa, false);
		return;
	}
	/* A pooled connection the authorizer closed as we reused it: once more on a new one. */
	if (!xa->head_seen && xa->uc->reused && !xa->retried && evbuffer_get_length(in) == 0) {
		struct upconn *stale = xa->uc;

		xa->retried = true;
		xa->uc = NULL;
		if (xa_connect(xa, false, stale) != 0) {
			xa->uc = stale;
			xa_error(xa, xa->why);
			return;
		}
		connpool_close(stale);
		return;
	}
	if (!xa->connected)
		CLUSTER_COUNT(xa->cl, xa->ex->c->w->id, CC_CX_CONNECT_FAIL);
	xa_error(xa, (what & BEV_EVENT_EOF) ? "connection closed before a complete answer"
					    : "connection error");
}

/* ---- gRPC: the stream's callbacks (h2up.h) ---- */

/* The answer comes as HTTP/1.1 (chunked, its trailers in the last chunk), read as a
 * connection's is; a complete one ends the stream cleanly. */
static void xa_h2_read(void *arg)
{
	struct extauthz *xa = arg;
	struct evbuffer *in = h2up_stream_input(xa->hs);

	if (!xa->head_seen && xa_response_head(xa, in) <= 0)
		return;
	if (xa_response_body(xa, in) <= 0)
		return;
	xa_verdict(xa, true);
}

/* The call is written whole at once: a drained output asks for nothing. */
static void xa_h2_write(void *arg)
{
	(void)arg;
}

static void xa_h2_event(void *arg, enum h2up_event ev, const char *why)
{
	struct extauthz *xa = arg;

	switch (ev) {
	case H2UP_CONNECTED:
		xa->connected = true;
		xa_timer_arm(xa, xa_time_left(xa));
		return;
	case H2UP_CONNECT_FAILED:
		CLUSTER_COUNT(xa->cl, xa->ex->c->w->id, CC_CX_CONNECT_FAIL);
		xa_error(xa, "connect error");
		return;
	case H2UP_FALLBACK:
		xa_error(xa, "the authorizer's TLS server chose HTTP/1.1, and gRPC needs HTTP/2");
		return;
	case H2UP_REFUSED:
	case H2UP_CLOSED:
		/* not processed (refused), or a reused connection that closed under it: once
		 * more on another stream */
		if (!xa->head_seen && !xa->retried && (ev == H2UP_REFUSED || xa->h2_reused)) {
			struct h2up_stream *old = xa->hs;

			xa->retried = true;
			xa->hs = NULL;
			h2up_stream_close(old, false);
			if (xa_connect_h2(xa) != 0)
				xa_error(xa, xa->why);
			return;
		}
		break;
	case H2UP_RESET:
		break;
	}
	xa_error(xa, why != NULL ? why : "the authorizer's stream was reset");
}

int extauthz_start(struct exchange *ex, const struct ext_authz *x, const struct http1_request *req,
		   const struct route_request *rq, size_t head_len)
{
	struct worker *w = ex->c->w;
	struct extauthz *xa = calloc(1, sizeof(*xa));

	if (xa == NULL)
		return -1;
	xa->ex = ex;
	xa->x = x;
	xa->head_len = head_len;
	xa->grpc = x->kind == EXT_AUTHZ_GRPC;
	xa->grpc_status = -1;
	xa->head_method = !xa->grpc && rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
	xa->timer = evtimer_new(w->base, xa_timer_cb, xa);
	xa->check = evbuffer_new();
	xa->body = evbuffer_new();
	if (xa->grpc)
		xa->trailers = evbuffer_new();
	if (xa->timer == NULL || xa->check == NULL || xa->body == NULL ||
	    (xa->grpc && xa->trailers == NULL) ||
	    (xa->grpc ? xa_build_grpc(xa, req, rq) : xa_build(xa, req, rq)) != 0) {
		ex->xa = xa;
		extauthz_free(ex);
		return -1;
	}
	ex->xa = xa;
	xa->deadline_us = clock_mono_us() + x->timeout_us;
	xa->cl = x->dest.cluster;
	if (xa->cl == NULL || xa->cl->nendpoints == 0 || (xa->ep = xa_pick(w, xa->cl)) == NULL) {
		xa->why = "no healthy upstream";
	} else if ((xa->uh = connpool_host(w->pool, xa->ep)) == NULL) {
		xa->why = "out of memory";
	} else {
		xa->uh->active_rq++;
		xa->active = true;
		CLUSTER_COUNT(xa->cl, w->id, CC_RQ_TOTAL);
		if ((xa->grpc ? xa_connect_h2(xa) : xa_connect(xa, true, NULL)) == 0)
			return 0;
	}
	/* the verdict (an error) comes from the loop, as every other one does */
	xa_timer_arm(xa, 0);
	return 0;
}

/* ---- gRPC allowed: ok_response's header mutations ---- */

static bool xa_pb_named(const struct authzpb_str *s, const char *name, size_t len)
{
	return s->len == len && http1_caseeq(name, s->p, len);
}

static bool xa_pb_removed(const struct authzpb_response *pb, const char *name, size_t len)
{
	for (size_t i = 0; i < pb->nremove; i++)
		if (xa_pb_named(&pb->remove[i], name, len))
			return true;
	return false;
}

/* headers entries: append true appends, anything else sets (Envoy's gRPC client) */
static bool xa_pb_appends(const struct authzpb_header *h)
{
	return h->has_append && h->append;
}

static bool xa_pb_set(const struct authzpb_response *pb, const char *name, size_t len)
{
	for (size_t i = 0; i < pb->nheaders; i++)
		if (!xa_pb_appends(&pb->headers[i]) && xa_pb_named(&pb->headers[i].key, name, len))
			return true;
	return false;
}

/* Envoy's order: the set entries replace the request's fields of their name (the last of
 * several wins), the append entries join their value to an existing field's with ","
 * (none: nothing), then headers_to_remove go.  Host and the framing fields are left
 * alone, as Envoy leaves :authority and the pseudo-headers. */
static void xa_grpc_upstream(struct exchange *ex, const struct authzpb_response *pb,
			     struct http1_header *h, size_t *n)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		const char *name = h[i].name;
		size_t len = h[i].name_len;

		if (xa_framing(name, len) ||
		    (!xa_pb_set(pb, name, len) && !xa_pb_removed(pb, name, len)))
			h[k++] = h[i];
	}
	for (size_t j = 0; j < pb->nheaders; j++) {
		const struct authzpb_header *e = &pb->headers[j];
		bool later = false;

		if (xa_pb_appends(e) || xa_framing(e->key.p, e->key.len) ||
		    xa_pb_removed(pb, e->key.p, e->key.len))
			continue;
		for (size_t l = j + 1; l < pb->nheaders && !later; l++)
			later = !xa_pb_appends(&pb->headers[l]) &&
				xa_pb_named(&pb->headers[l].key, e->key.p, e->key.len);
		if (later)
			continue;
		h[k].name = e->key.p;
		h[k].name_len = e->key.len;
		h[k].value = e->value.p;
		h[k++].value_len = e->value.len;
	}
	for (size_t j = 0; j < pb->nheaders; j++) {
		const struct authzpb_header *e = &pb->headers[j];
		char joined[8192];
		size_t i, jl, kept;

		if (!xa_pb_appends(e) || xa_framing(e->key.p, e->key.len) ||
		    xa_pb_removed(pb, e->key.p, e->key.len))
			continue;
		for (i = 0; i < k && !xa_pb_named(&e->key, h[i].name, h[i].name_len); i++)
			;
		if (i == k)
			continue;
		jl = h[i].value_len + 1 + e->value.len;
		if (jl <= sizeof(joined)) {
			const char *v;

			memcpy(joined, h[i].value, h[i].value_len);
			joined[h[i].value_len] = ',';
			memcpy(joined + h[i].value_len + 1, e->value.p, e->value.len);
			v = exchange_keep(ex, joined, jl, &kept);
			if (kept == jl) {
				h[i].value = v;
				h[i].value_len = jl;
				continue;
			}
		}
		/* no room to join them: the value goes as a field of its own, which HTTP
		 * reads the same for a list */
		h[k].name = e->key.p;
		h[k].name_len = e->key.len;
		h[k].value = e->value.p;
		h[k++].value_len = e->value.len;
	}
	*n = k;
}

/* response_headers_to_add on allow: append false, or the append_action
 * OVERWRITE_IF_EXISTS(_OR_ADD), replace the response's field of that name. */
static bool xa_grpc_replaces(const struct authzpb_response *pb, const char *name, size_t len)
{
	for (size_t i = 0; i < pb->nresponse_headers; i++) {
		const struct authzpb_header *e = &pb->response_headers[i];
		bool sets = e->has_append ? !e->append : e->append_action >= 2;

		if (sets && xa_pb_named(&e->key, name, len))
			return true;
	}
	return false;
}

enum extauthz_verdict extauthz_verdict(const struct exchange *ex)
{
	return ex->xa->verdict;
}

bool extauthz_fail_open(const struct exchange *ex)
{
	return ex->xa->x->fail_open;
}

size_t extauthz_head_len(const struct exchange *ex)
{
	return ex->xa->head_len;
}

int extauthz_denied_reply(const struct exchange *ex, const char **body, size_t *body_len,
			  const char **headers)
{
	struct extauthz *xa = ex->xa;

	*headers = xa->down;
	if (xa->grpc) {
		*body = xa->pb->kind == AUTHZPB_DENIED ? xa->pb->body.p : NULL;
		*body_len = xa->pb->kind == AUTHZPB_DENIED ? xa->pb->body.len : 0;
		return xa->deny_status;
	}
	*body_len = evbuffer_get_length(xa->body);
	*body = (const char *)evbuffer_pullup(xa->body, -1);
	return xa->status;
}

void extauthz_upstream_headers(struct exchange *ex, struct http1_header *h, size_t *n)
{
	const struct extauthz *xa = ex->xa;
	size_t k = 0;

	if (xa != NULL && xa->grpc && xa->verdict == EXTAUTHZ_ALLOWED && xa->pb != NULL &&
	    xa->pb->kind == AUTHZPB_OK) {
		xa_grpc_upstream(ex, xa->pb, h, n);
		return;
	}
	if (xa == NULL || xa->nup == 0 || xa->verdict != EXTAUTHZ_ALLOWED)
		return;
	for (size_t i = 0; i < *n; i++) {
		bool replaced = false;

		for (size_t j = 0; j < xa->nup && !replaced; j++)
			replaced = h[i].name_len == xa->up[j].name_len &&
				   http1_caseeq(h[i].name, xa->up[j].name, h[i].name_len);
		if (!replaced)
			h[k++] = h[i];
	}
	for (size_t j = 0; j < xa->nup; j++)
		h[k++] = xa->up[j];
	*n = k;
}

bool extauthz_replaces(const struct exchange *ex, const char *name, size_t len)
{
	const struct extauthz *xa = ex->xa;

	if (xa == NULL || xa->verdict != EXTAUTHZ_ALLOWED || xa->down == NULL)
		return false;
	if (xa->grpc)
		return xa_grpc_replaces(xa->pb, name, len);
	return xa_listed(&xa->x->downstream_on_allow, name, len);
}

void extauthz_response_headers(const struct exchange *ex, struct evbuffer *out)
{
	const struct extauthz *xa = ex->xa;

	if (xa != NULL && xa->verdict == EXTAUTHZ_ALLOWED && xa->down != NULL)
		evbuffer_add(out, xa->down, strlen(xa->down));
}

void extauthz_free(struct exchange *ex)
{
	struct extauthz *xa = ex->xa;

	if (xa == NULL)
		return;
	ex->xa = NULL;
	if (xa->timer != NULL) {
		xa_detach(xa, false); /* a check still running: its connection is closed */
		event_free(xa->timer);
	}
	if (xa->check != NULL)
		evbuffer_free(xa->check);
	if (xa->body != NULL)
		evbuffer_free(xa->body);
	if (xa->trailers != NULL)
		evbuffer_free(xa->trailers);
	free(xa->pb);
	free(xa->up_text);
	free(xa->down);
	free(xa);
}
