#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "authz.h"
#include "clock.h"
#include "clusterstate.h"
#include "conn.h"
#include "connpool.h"
#include "errors.h"
#include "exchange.h"
#include "extauthz.h"
#include "http1.h"
#include "locality.h"
#include "log.h"
#include "metrics.h"
#include "outlier.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "stream.h"
#include "upstream.h"
#include "worker.h"

/* The authorizer's answer is bounded: its head, its fields and its body. */
#define XA_MAX_HEAD (64 * 1024)
#define XA_MAX_HEADERS 100
#define XA_MAX_BODY (64 * 1024)

struct extauthz {
	struct exchange *ex;
	const struct ext_authz *x;
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

/* Give the connection back (reusable) or close it; the endpoint's request count too. */
static void xa_detach(struct extauthz *xa, bool reusable)
{
	struct upconn *uc = xa->uc;

	evtimer_del(xa->timer);
	if (xa->active && xa->uh->active_rq > 0)
		xa->uh->active_rq--;
	xa->active = false;
	xa->uc = NULL;
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

/* 1: the head was parsed (interim ones skipped), 0: more bytes needed, -1: ended. */
static int xa_response_head(struct extauthz *xa, struct evbuffer *in)
{
	struct http1_limits lim = {XA_MAX_HEAD, XA_MAX_HEAD, XA_MAX_HEADERS};
	struct http1_header hdrs[XA_MAX_HEADERS];
	struct http1_response resp;
	const char *why = NULL;

	for (;;) {
		size_t len = evbuffer_get_length(in);
		size_t want = len < XA_MAX_HEAD + 4 ? len : XA_MAX_HEAD + 4;
		const char *buf;
		int n;

		if (len == 0)
			return 0;
		buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		memset(&resp, 0, sizeof(resp));
		resp.headers = hdrs;
		n = http1_parse_response(buf, want, &lim, &resp, &why);
		if (n == MG_AGAIN)
			return 0;
		if (n < 0 || http1_response_framing(&resp, xa->head_method ? "HEAD" : "GET",
						    xa->head_method ? 4 : 3, &xa->resp_kind,
						    &xa->resp_left, &why) != 0) {
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
		if (resp.status < 500 && xa_keep_head(xa, &resp) != 0) {
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

static void xa_verdict(struct extauthz *xa, bool reusable)
{
	CLUSTER_COUNT(xa->cl, xa->ex->c->w->id,
		      xa->status < 300   ? CC_RQ_2XX
		      : xa->status < 400 ? CC_RQ_3XX
		      : xa->status < 500 ? CC_RQ_4XX
					 : CC_RQ_5XX);
	if (xa->status == 200)
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
	xa->head_method = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
	xa->timer = evtimer_new(w->base, xa_timer_cb, xa);
	xa->check = evbuffer_new();
	xa->body = evbuffer_new();
	if (xa->timer == NULL || xa->check == NULL || xa->body == NULL ||
	    xa_build(xa, req, rq) != 0) {
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
		if (xa_connect(xa, true, NULL) == 0)
			return 0;
	}
	/* the verdict (an error) comes from the loop, as every other one does */
	xa_timer_arm(xa, 0);
	return 0;
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

	*body_len = evbuffer_get_length(xa->body);
	*body = (const char *)evbuffer_pullup(xa->body, -1);
	*headers = xa->down;
	return xa->status;
}

void extauthz_upstream_headers(const struct exchange *ex, struct http1_header *h, size_t *n)
{
	const struct extauthz *xa = ex->xa;
	size_t k = 0;

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

	return xa != NULL && xa->verdict == EXTAUTHZ_ALLOWED && xa->down != NULL &&
	       xa_listed(&xa->x->downstream_on_allow, name, len);
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
	free(xa->up_text);
	free(xa->down);
	free(xa);
}
