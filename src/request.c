#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "accesslog.h"
#include "authz.h"
#include "clock.h"
#include "clusterstate.h"
#include "conn.h"
#include "cors.h"
#include "exchange.h"
#include "extauthz.h"
#include "errors.h"
#include "fault.h"
#include "geoip.h"
#include "jwtauth.h"
#include "h2down.h"
#include "http1.h"
#include "local_reply.h"
#include "logfilter.h"
#include "istiometrics.h"
#include "log.h"
#include "mirror.h"
#include "proxy.h"
#include "ratelimit.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"
#include "xff.h"

_Static_assert(sizeof(struct msg_header) == sizeof(struct http1_header),
	       "msg_header and http1_header must share a layout");

/* Parsed header slots: the head is routed and serialised synchronously, so one array per
 * worker thread is enough (no per-request allocation). */
static __thread struct http1_header *hdr_slots;
static __thread size_t hdr_nslots;

void request_thread_cleanup(void)
{
	free(hdr_slots);
	hdr_slots = NULL;
	hdr_nslots = 0;
	jwtauth_thread_cleanup();
}

const char *exchange_keep(struct exchange *ex, const char *s, size_t len, size_t *out_len)
{
	size_t room = EX_ARENA - ex->arena_used;
	char *d = ex->arena + ex->arena_used;

	if (len > room)
		len = room; /* log fields are truncated, never grown */
	memcpy(d, s, len);
	ex->arena_used += len;
	if (out_len != NULL)
		*out_len = len;
	return d;
}

void exchange_flag(struct exchange *ex, const char *flag)
{
	size_t n = strlen(ex->flags);

	if (n + strlen(flag) + 2 > sizeof(ex->flags))
		return;
	if (n > 0)
		ex->flags[n++] = ',';
	strcpy(ex->flags + n, flag);
}

/* Exchanges are recycled per worker (with their timers and head buffer), so a request
 * costs no malloc here; the arena, after the fields, is not cleared.  As many are kept as
 * a worker may run at once under common loads (h2load -c16 -m32 is 512 streams), at
 * about 5 KiB each. */
#define EX_FREE_MAX 1024

struct exchange *request_new(struct conn *c)
{
	struct worker *w = c->w;
	struct exchange *ex = w->ex_free;

	if (ex != NULL) {
		struct event *ct = ex->connect_timer, *rt = ex->route_timer, *ft = ex->fault_timer;
		struct event *tt = ex->try_timer, *bt = ex->backoff_timer;
		struct evbuffer *uh = ex->up_head, *rb = ex->replay, *tr = ex->resp_trailers;

		w->ex_free = ex->next_free;
		w->nex_free--;
		memset(ex, 0, offsetof(struct exchange, arena));
		ex->connect_timer = ct;
		ex->route_timer = rt;
		ex->try_timer = tt;
		ex->backoff_timer = bt;
		ex->fault_timer = ft;
		ex->up_head = uh;
		ex->replay = rb;
		ex->resp_trailers = tr;
	} else {
		ex = calloc(1, sizeof(*ex));
		if (ex == NULL)
			return NULL;
	}
	ex->c = c;
	ex->start_us = clock_mono_us();
	clock_gettime(CLOCK_REALTIME, &ex->start_wall);
	ex->upstream_time_us = -1;
	ex->grpc_status = -1;
	ex->minor_version = 1;
	return ex;
}

/* Per-cluster and per-route (statPrefix) counters of a finished exchange. */
static void request_count(struct cluster_state *cs, int wid, int status)
{
	static const enum cluster_counter by_class[6] = {CC_RQ_TOTAL, CC_RQ_TOTAL, CC_RQ_2XX,
							 CC_RQ_3XX,   CC_RQ_4XX,   CC_RQ_5XX};
	int cls = status / 100;

	clusterstate_bump(cs, wid, CC_RQ_TOTAL);
	if (cls >= 2 && cls <= 5)
		clusterstate_bump(cs, wid, by_class[cls]);
}

/* The exchange's access log line, gathered only when a log is written. */
static void request_log(struct exchange *ex, const struct cfg_set *set, uint64_t duration_us)
{
	struct conn *c = ex->c;
	struct worker *w = c->w;
	struct accesslog_entry e;
	char local[CONN_ADDR_TEXT], remote[CONN_ADDR_TEXT];

	memset(&e, 0, sizeof(e));
	e.start = ex->start_wall;
	e.duration_us = duration_us;
	e.upstream_time_us = ex->upstream_time_us;
	e.method = ex->method;
	e.method_len = ex->method_len;
	e.path = ex->path;
	e.path_len = ex->path_len;
	e.protocol = ex->method == NULL       ? "-"
		     : ex->c->h2 != NULL      ? "HTTP/2"
		     : ex->minor_version == 0 ? "HTTP/1.0"
					      : "HTTP/1.1";
	e.authority = ex->authority;
	e.authority_len = ex->authority_len;
	e.user_agent = ex->user_agent;
	e.user_agent_len = ex->user_agent_len;
	e.xff = ex->xff;
	e.xff_len = ex->xff_len;
	e.request_id = ex->request_id;
	e.request_id_len = ex->request_id_len;
	e.status = ex->status;
	e.flags = ex->flags[0] ? ex->flags : "-";
	e.details = ex->details != NULL ? ex->details : "-";
	e.bytes_received = ex->bytes_in;
	e.bytes_sent = ex->bytes_out;
	e.upstream_host = ex->ep != NULL ? ex->ep->name : NULL;
	e.upstream_local = ex->upstream_local[0] ? ex->upstream_local : NULL;
	e.upstream_cluster = ex->cl != NULL ? ex->cl->name : NULL;
	e.route_name = ex->route != NULL ? ex->route->name : NULL;
	e.grpc_status = ex->grpc_status;
	e.attempts = ex->tries;
	if (ex->shadow_kept)
		e.shadow = &ex->shadow;
	if (ex->log_hdr_kept)
		for (int side = 0; side < 2; side++) {
			e.kept[side] = ex->log_hdr[side];
			e.kept_len[side] = ex->log_hdr_len[side];
		}
	conn_local_text(c, local);
	conn_peer_text(c, true, remote);
	e.downstream_local = local;
	e.downstream_remote = remote;
	if (c->ssl != NULL) {
		/* Checked by the SNI callback (tls_sni.c) before the handshake went on. */
		const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
		unsigned int alen = 0;

		e.requested_server_name = sni;
		e.requested_server_name_len = sni != NULL ? strlen(sni) : 0;
		SSL_get0_alpn_selected(c->ssl, &e.downstream_alpn, &alen);
		e.downstream_alpn_len = alen;
		e.downstream_tls_version = SSL_get_version(c->ssl); /* a static string */
		e.ssl = c->ssl;
	}
	if (set == NULL)
		accesslog_write(w->alog, &e, NULL);
	else if (set->access_log_filter == NULL || logfilter_pass(set, &e, ex, c->ssl))
		accesslog_write(w->alog, &e, set->access_log_custom);
}

void request_finish(struct exchange *ex)
{
	struct conn *c = ex->c;
	struct worker *w = c->w;
	/* an exchange refused before it was routed has no generation: the current one's */
	const struct cfg_set *set = ex->ws != NULL   ? ex->ws->snap->set
				    : w->cur != NULL ? w->cur->snap->set
						     : NULL;
	bool metrics = set != NULL && !set->metrics_http_off;

	if (metrics || accesslog_enabled()) {
		uint64_t duration_us = clock_mono_us() - ex->start_us;

		if (accesslog_enabled())
			request_log(ex, set, duration_us);
		if (metrics)
			istiom_request(w->istio, ex->cl != NULL ? ex->cl->state : NULL, ex->status,
				       ex->flags[0] ? ex->flags : "-", ex->grpc_status,
				       ex->grpc_request || ex->grpc_status >= 0 ? ISTIOM_GRPC
										: ISTIOM_HTTP,
				       duration_us, ex->bytes_in, ex->bytes_out);
	}
	if (ex->cl != NULL)
		request_count(ex->cl->state, w->id, ex->status);
	if (ex->route != NULL && ex->route->more->stats != NULL)
		request_count(ex->route->more->stats, w->id, ex->status);
	switch (ex->status / 100) {
	case 1:
		METRIC_INC(&w->metrics, downstream_rq_1xx);
		break;
	case 2:
		METRIC_INC(&w->metrics, downstream_rq_2xx);
		break;
	case 3:
		METRIC_INC(&w->metrics, downstream_rq_3xx);
		break;
	case 4:
		METRIC_INC(&w->metrics, downstream_rq_4xx);
		break;
	case 5:
		METRIC_INC(&w->metrics, downstream_rq_5xx);
		break;
	default:
		break;
	}
	mirror_exchange_end(ex); /* before the exchange is recycled */
	if (ex->xa != NULL)
		extauthz_free(ex); /* a check still running: a client that left */
	worker_snap_unpin(ex->ws);
	ex->ws = NULL;
	if (w->nex_free < EX_FREE_MAX) {
		if (ex->connect_timer != NULL)
			evtimer_del(ex->connect_timer);
		if (ex->route_timer != NULL)
			evtimer_del(ex->route_timer);
		if (ex->try_timer != NULL)
			evtimer_del(ex->try_timer);
		if (ex->backoff_timer != NULL)
			evtimer_del(ex->backoff_timer);
		if (ex->fault_timer != NULL)
			evtimer_del(ex->fault_timer); /* a client that left during a delay */
		if (ex->up_head != NULL)
			evbuffer_drain(ex->up_head, evbuffer_get_length(ex->up_head));
		if (ex->replay != NULL)
			evbuffer_drain(ex->replay, evbuffer_get_length(ex->replay));
		if (ex->resp_trailers != NULL)
			evbuffer_drain(ex->resp_trailers, evbuffer_get_length(ex->resp_trailers));
		ex->next_free = w->ex_free;
		w->ex_free = ex;
		w->nex_free++;
		return;
	}
	request_exchange_free(ex);
}

void request_exchange_free(struct exchange *ex)
{
	if (ex->connect_timer != NULL)
		event_free(ex->connect_timer);
	if (ex->route_timer != NULL)
		event_free(ex->route_timer);
	if (ex->try_timer != NULL)
		event_free(ex->try_timer);
	if (ex->backoff_timer != NULL)
		event_free(ex->backoff_timer);
	if (ex->fault_timer != NULL)
		event_free(ex->fault_timer);
	if (ex->up_head != NULL)
		evbuffer_free(ex->up_head);
	if (ex->replay != NULL)
		evbuffer_free(ex->replay);
	if (ex->resp_trailers != NULL)
		evbuffer_free(ex->resp_trailers);
	free(ex);
}

static const struct listener_cfg *find_listener(const struct snapshot *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->nlisteners; i++)
		if (strcmp(s->listeners[i].key, key) == 0)
			return &s->listeners[i];
	return NULL;
}

/* Host header or absolute-form authority without the port (RFC 9110 §7.2). */
static void split_host_port(const char *a, size_t len, size_t *host_len)
{
	size_t i;

	if (len > 0 && a[0] == '[') {
		for (i = 0; i < len && a[i] != ']'; i++)
			;
		*host_len = i < len ? i + 1 : len;
		return;
	}
	for (i = len; i > 0; i--) {
		if (a[i - 1] == ':') {
			*host_len = i - 1;
			return;
		}
		if (a[i - 1] < '0' || a[i - 1] > '9')
			break;
	}
	*host_len = len;
}

/* RFC 3986 §5.2.4 dot-segment removal plus slash merging is what Istio's default path
 * normalisation does before routing; without it "/public/../admin" would be routed as
 * /public.  Writes into out (at least len bytes); returns the new length, 0 on escape
 * above the root (which is clamped to "/"). */
static size_t path_normalize(const char *p, size_t len, char *out)
{
	size_t o = 0, i = 0;

	while (i < len) {
		size_t seg_start, seg_len;

		/* p[i] == '/' here (paths start with '/') */
		while (i < len && p[i] == '/')
			i++;
		seg_start = i;
		while (i < len && p[i] != '/')
			i++;
		seg_len = i - seg_start;
		if (seg_len == 1 && p[seg_start] == '.') {
			if (i == len)
				out[o++] = '/';
			continue;
		}
		if (seg_len == 2 && p[seg_start] == '.' && p[seg_start + 1] == '.') {
			/* pop the last output segment, its slash included */
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			if (i == len)
				out[o++] = '/';
			continue;
		}
		out[o++] = '/';
		memcpy(out + o, p + seg_start, seg_len);
		o += seg_len;
	}
	if (o == 0)
		out[o++] = '/';
	else if (len > 0 && p[len - 1] == '/' && out[o - 1] != '/')
		out[o++] = '/';
	return o;
}

/* Two hex digits per byte value, for the request id: one 16-bit copy a byte. */
static const char hex_pairs[256][2] = {
#define HD(d) ((d) < 10 ? '0' + (d) : 'a' + (d)-10)
#define HP(n)                                                                                      \
	{                                                                                          \
		HD((n) >> 4), HD((n)&15)                                                           \
	}
#define HP4(n) HP(n), HP(n + 1), HP(n + 2), HP(n + 3)
#define HP16(n) HP4(n), HP4(n + 4), HP4(n + 8), HP4(n + 12)
    HP16(0),   HP16(16),  HP16(32),  HP16(48),  HP16(64),  HP16(80),  HP16(96),  HP16(112),
    HP16(128), HP16(144), HP16(160), HP16(176), HP16(192), HP16(208), HP16(224), HP16(240),
#undef HP16
#undef HP4
#undef HP
#undef HD
};

/* A random UUID (version 4), as Envoy makes x-request-id: 36 characters and a NUL. */
static void gen_request_id(struct worker *w, char *out)
{
	/* where each byte's two digits go in 8-4-4-4-12 */
	static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
	uint64_t a = worker_random(w), b = worker_random(w);
	unsigned char r[16];

	memcpy(r, &a, 8);
	memcpy(r + 8, &b, 8);
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* UUID version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0; i < 16; i++)
		memcpy(out + at[i], hex_pairs[r[i]], 2);
	out[8] = out[13] = out[18] = out[23] = '-';
	out[36] = '\0';
}

/* Route response header ops apply to local answers too (Envoy adds
 * response_headers_to_add to direct responses and redirects). */
static const char *route_response_headers(const struct http_route *route, const char *prefix,
					  char *buf, size_t size)
{
	const struct header_op_list *ops = &route->headers->response;
	size_t at = 0, i;
	int n;

	n = snprintf(buf, size, "%s", prefix != NULL ? prefix : "");
	at = n > 0 && (size_t)n < size ? (size_t)n : 0;
	for (i = 0; i < ops->set.n + ops->add.n; i++) {
		const struct kv *h = i < ops->set.n ? &ops->set.v[i] : &ops->add.v[i - ops->set.n];

		n = snprintf(buf + at, size - at, "%s: %s\r\n", h->key, h->value);
		if (n < 0 || (size_t)n >= size - at)
			break; /* header ops beyond the buffer are dropped, never truncated */
		at += (size_t)n;
	}
	buf[at] = '\0';
	return at > 0 ? buf : NULL;
}

static void build_redirect(struct exchange *ex, const struct http_redirect *rd,
			   const struct route_request *rq)
{
	char loc[4096], hdrs[8192];
	const char *scheme = rd->scheme != NULL ? rd->scheme : rq->scheme;
	const char *host = rq->host;
	size_t host_len = rq->host_len;
	char port[16] = "";
	int n;

	if (rd->authority != NULL) {
		host = rd->authority;
		host_len = strlen(host);
	} else if (rd->port == 0) {
		/* keep the request's authority, port included, unless the scheme changes */
		if (rd->scheme == NULL) {
			host = rq->authority;
			host_len = rq->authority_len;
		}
	}
	if (rd->port != 0)
		snprintf(port, sizeof(port), ":%u", rd->port);
	else if (rd->derive_port_from_request)
		snprintf(port, sizeof(port), ":%u", rq->port);
	if (rd->uri != NULL) {
		n = snprintf(loc, sizeof(loc), "location: %s://%.*s%s%s%s%.*s\r\n", scheme,
			     (int)host_len, host, port, rd->uri,
			     strchr(rd->uri, '?') == NULL && rq->query != NULL ? "?" : "",
			     strchr(rd->uri, '?') == NULL && rq->query != NULL ? (int)rq->query_len
									       : 0,
			     rq->query != NULL ? rq->query : "");
	} else {
		n = snprintf(
		    loc, sizeof(loc), "location: %s://%.*s%s%.*s%s%.*s\r\n", scheme, (int)host_len,
		    host, port, (int)rq->path_len, rq->path, rq->query != NULL ? "?" : "",
		    rq->query != NULL ? (int)rq->query_len : 0, rq->query != NULL ? rq->query : "");
	}
	if (n < 0 || (size_t)n >= sizeof(loc)) {
		local_reply(ex, 500, "text/plain", "redirect location too long\n", 27, NULL, false);
		return;
	}
	local_reply(ex, (int)(rd->redirect_code ? rd->redirect_code : 301), NULL, NULL, 0,
		    route_response_headers(ex->route, loc, hdrs, sizeof(hdrs)), false);
}

/* tls.httpsRedirect: the same URL over https.  Envoy's require_tls copies the Host as is;
 * its https_redirect route action (which this follows) drops a ":80" that would be wrong
 * for https and keeps any other port, which the operator chose on purpose. */
static void build_https_redirect(struct exchange *ex, const struct route_request *rq, bool has_body)
{
	char loc[4096];
	size_t alen = rq->authority_len;
	int n;

	if (alen >= 3 && memcmp(rq->authority + alen - 3, ":80", 3) == 0 &&
	    rq->host_len == alen - 3)
		alen -= 3;
	if (alen == 0) {
		/* HTTP/1.0 without Host: there is no URL to send the client to */
		ex->details = "https_redirect_without_host";
		local_reply(ex, 400, "text/plain", "a Host is required\n", 19, NULL, has_body);
		return;
	}
	n = snprintf(loc, sizeof(loc), "location: https://%.*s%.*s%s%.*s\r\n", (int)alen,
		     rq->authority, (int)rq->path_len, rq->path, rq->query != NULL ? "?" : "",
		     rq->query != NULL ? (int)rq->query_len : 0,
		     rq->query != NULL ? rq->query : "");
	if (n < 0 || (size_t)n >= sizeof(loc)) {
		ex->details = "https_redirect_location_too_long";
		local_reply(ex, 500, "text/plain", "redirect location too long\n", 27, NULL,
			    has_body);
		return;
	}
	ex->details = "https_redirect";
	local_reply(ex, (int)ex->ws->snap->set->main.https_redirect_code, NULL, NULL, 0, loc,
		    has_body);
}

/* Several x-forwarded-for fields form one list (RFC 9110 §5.3); the proxy appends the peer to
 * the joined list, so keep it whole (bounded by the arena: a longer chain is cut, which
 * only loses the oldest-forged entries' tail). */
static void xff_join(struct exchange *ex, const char *v, size_t len)
{
	size_t room = EX_ARENA - ex->arena_used;

	if (ex->xff == NULL) {
		ex->xff = exchange_keep(ex, v, len < 1024 ? len : 1024, &ex->xff_len);
		return;
	}
	/* the previous value is the last thing in the arena unless something came between */
	if (ex->xff + ex->xff_len != ex->arena + ex->arena_used || len + 2 > room ||
	    ex->xff_len + len + 2 > 2048)
		return;
	exchange_keep(ex, ", ", 2, NULL);
	exchange_keep(ex, v, len, NULL);
	ex->xff_len += 2 + len;
}

/* ---- route policies applied before the router: fault injection, then CORS (Istio's
 * filter order: fault, cors, router) ---- */

/* Longest Origin kept for the response headers: a real one is scheme://host:port. */
#define CORS_ORIGIN_MAX 1024

static bool keep_whole(struct exchange *ex, const struct http1_header *h, size_t max,
		       const char **out, size_t *out_len)
{
	if (h->value_len > max || h->value_len > EX_ARENA - ex->arena_used)
		return false; /* never a truncated copy: it would go into a response header */
	*out = exchange_keep(ex, h->value, h->value_len, out_len);
	return true;
}

/* What the route's fault and CORS policies need from the request, found in one pass over
 * the headers; routes without either policy never come here. */
static void note_route_policies(struct exchange *ex, const struct http1_request *req)
{
	const struct http_route *route = ex->route;
	const struct cors_policy *cp = route->more->cors;
	const struct http1_header *origin = NULL, *acrm = NULL, *acrh = NULL;
	bool want_ct = route->more->fault->given && route->more->fault->abort.given;
	enum cors_kind kind;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		if (cp->given) {
			if (origin == NULL && HTTP1_NAME_IS(h->name, h->name_len, "origin"))
				origin = h;
			else if (HTTP1_NAME_IS(h->name, h->name_len,
					       "access-control-request-method"))
				acrm = h;
			else if (HTTP1_NAME_IS(h->name, h->name_len,
					       "access-control-request-headers"))
				acrh = h;
		}
		if (want_ct && HTTP1_NAME_IS(h->name, h->name_len, "content-type"))
			ex->grpc_request = fault_is_grpc(h->value, h->value_len);
	}
	if (!cp->given || origin == NULL)
		return;
	kind = cors_classify(cp, req->method, req->method_len, origin->value, origin->value_len,
			     acrm != NULL ? acrm->value_len : 0);
	if ((kind == CORS_ACTUAL || kind == CORS_PREFLIGHT) &&
	    !keep_whole(ex, origin, CORS_ORIGIN_MAX, &ex->cors_origin, &ex->cors_origin_len))
		kind = CORS_NONE; /* an Origin too long to echo is served as if absent */
	if ((kind == CORS_PREFLIGHT || kind == CORS_PREFLIGHT_IGNORE) && acrh != NULL &&
	    cp->allow_headers.n == 1 && strcmp(cp->allow_headers.v[0], "*") == 0)
		keep_whole(ex, acrh, 1024, &ex->cors_request_headers,
			   &ex->cors_request_headers_len);
	ex->cors = (unsigned char)kind;
}

/* Draw the route's abort and answer with it; false when it does not fire. */
static bool fault_answer(struct exchange *ex, bool close)
{
	struct fault_reply r;

	if (!fault_abort(ex->route->more->fault, worker_random(ex->c->w), ex->grpc_request, &r))
		return false;
	METRIC_INC(&ex->c->w->metrics, fault_aborts_injected);
	exchange_flag(ex, "FI");
	ex->details = "fault_filter_abort";
	ex->grpc_status = r.grpc_status;
	/* The fault filter runs before the CORS filter: its answer carries no CORS headers. */
	ex->cors = CORS_NONE;
	local_reply(ex, r.status, r.content_type, r.body, r.body_len,
		    r.headers[0] != '\0' ? r.headers : NULL, close);
	return true;
}

/* Answer a preflight the policy decides here; false for every other request. */
static bool cors_answer(struct exchange *ex, bool close)
{
	char hdrs[8192];
	bool with_origin = ex->cors == CORS_PREFLIGHT;

	if (ex->cors != CORS_PREFLIGHT && ex->cors != CORS_PREFLIGHT_IGNORE)
		return false;
	ex->cors = CORS_NONE; /* a preflight answer gets no actual-response headers */
	ex->details = "cors_response";
	if (cors_preflight_headers(ex->route->more->cors, with_origin, ex->cors_origin,
				   ex->cors_origin_len, ex->cors_request_headers,
				   ex->cors_request_headers_len, hdrs, sizeof(hdrs)) < 0) {
		ex->details = "cors_headers_too_long";
		local_reply(ex, 500, "text/plain", "CORS headers too long\n", 22, NULL, close);
		return true;
	}
	local_reply(ex, 200, NULL, NULL, 0, hdrs[0] != '\0' ? hdrs : NULL, close);
	return true;
}

static void answer_direct(struct exchange *ex, bool close)
{
	const struct http_route *route = ex->route;
	char hdrs[8192];

	METRIC_INC(&ex->c->w->metrics, downstream_rq_direct_response);
	ex->details = "direct_response";
	local_reply(ex, (int)route->more->direct_response->status, "text/plain",
		    route->more->direct_response->body, route->more->direct_response->body_len,
		    route_response_headers(route, NULL, hdrs, sizeof(hdrs)), close);
}

/* The injected delay is over: the rest of what request_route() would have done.  The head
 * was drained when the delay began (the upstream head was built then); the body, if any,
 * is still unread in the client's input buffer. */
static void fault_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *ex = arg;
	struct conn *c = ex->c;
	bool unread = !ex->req_done; /* then a local answer must close the connection */

	(void)fd;
	(void)what;
	/* The decoder refuses fault with redirect, so a held route forwards or answers
	 * directly. */
	if (fault_answer(ex, unread) || cors_answer(ex, unread)) {
		conn_exchange_done(c);
		return;
	}
	if (ex->route->more->direct_response->given) {
		answer_direct(ex, unread);
		conn_exchange_done(c);
		return;
	}
	/* The route timeout starts here: in Envoy the delay does not count towards it. */
	if (proxy_start(ex, NULL, NULL) != 0) {
		if (unread)
			ex->client_keepalive = false;
		conn_exchange_done(c);
		return;
	}
	if (unread)
		proxy_client_readable(ex);
}

/* Hold the request for an injected delay: build what needs the parsed head now, drain the
 * head, and leave the body unread (the input buffer's high-water mark stops reading from
 * the client) until fault_delay_done().  Nothing is sent upstream before. */
static enum request_result fault_hold(struct exchange *ex, const struct http1_request *req,
				      const struct route_request *rq, size_t head_len,
				      bool has_body, uint64_t delay_us)
{
	const struct http_route *route = ex->route;
	struct worker *w = ex->c->w;
	struct evbuffer *in = stream_input(ex->c->st);
	struct timeval tv;
	bool ok;

	if (ex->fault_timer == NULL)
		ex->fault_timer =
		    evtimer_new(w->base, fault_delay_done, ex); /* kept on recycling */
	ok = ex->fault_timer != NULL;
	if (ok && route->nroute > 0) {
		ex->rd = router_pick_destination(
		    route,
		    route->total_weight ? (uint32_t)(worker_random(w) % route->total_weight) : 0);
		ok = proxy_prepare(ex, req, rq) == 0;
	}
	evbuffer_drain(in, head_len);
	if (!ok) {
		ex->details = "out of memory";
		local_reply(ex, 503, "text/plain", "out of memory\n", 14, NULL, has_body);
		return has_body ? REQ_CLOSED : REQ_DONE;
	}
	ex->req_done = !has_body;
	METRIC_INC(&w->metrics, fault_delays_injected);
	exchange_flag(ex, "DI");
	tv.tv_sec = (time_t)(delay_us / 1000000);
	tv.tv_usec = (suseconds_t)(delay_us % 1000000);
	evtimer_add(ex->fault_timer, &tv);
	return REQ_STARTED;
}

void request_cors_response(const struct exchange *ex, struct evbuffer *out)
{
	char hdrs[4096];
	int n;

	if (ex->cors != CORS_ACTUAL)
		return;
	n = cors_response_headers(ex->route->more->cors, ex->cors_origin, ex->cors_origin_len, hdrs,
				  sizeof(hdrs));
	if (n > 0)
		evbuffer_add(out, hdrs, (size_t)n);
}

/* After fields were dropped or appended: the parse's Host index and the routing view. */
static void request_fields_changed(struct http1_request *req, struct route_request *rq)
{
	rq->nheaders = req->nheaders;
	req->host_index = -1;
	for (size_t i = 0; i < req->nheaders && req->host_index < 0; i++)
		if (HTTP1_NAME_IS(req->headers[i].name, req->headers[i].name_len, "host"))
			req->host_index = (int)i;
}

/* RequestAuthentication: verify the request's JWTs; answer 401 and say true for a bad one
 * (Envoy's jwt_authn: its words in the body and in the details). */
static bool request_jwt_refused(struct exchange *ex, struct http1_request *req,
				struct route_request *rq, struct jwtauth *auth)
{
	struct timespec now;
	enum jwt_status st;
	char details[160], hdr[1400];
	const char *text;
	size_t i, n;

	clock_gettime(CLOCK_REALTIME, &now);
	st = jwtauth_request(ex->ws->snap->set, ex->ws->snap->generation, req->headers,
			     &req->nheaders, rq->query, rq->query_len, (int64_t)now.tv_sec, auth);
	if (st == JWT_OK) {
		request_fields_changed(req, rq);
		if (auth->jwt != NULL) {
			if (!ex->xa_resumed) /* counted on the first pass */
				METRIC_INC(&ex->c->w->metrics, downstream_rq_jwt_verified);
			rq->jwt = auth->jwt;
		}
		return false;
	}
	METRIC_INC(&ex->c->w->metrics, downstream_rq_jwt_denied);
	text = jwt_status_text(st);
	n = (size_t)snprintf(details, sizeof(details), "jwt_authn_access_denied{%s}", text);
	for (i = 0; i < n && i < sizeof(details); i++)
		if (details[i] == ' ')
			details[i] = '_';
	ex->details = exchange_keep(ex, details, strlen(details), NULL);
	/* RFC 6750 §3: the challenge names the resource and the error; the request's bytes
	 * go into a quoted string, so quotes, backslashes and controls become '_'. */
	n = (size_t)snprintf(hdr, sizeof(hdr), "www-authenticate: Bearer realm=\"%s://%.*s%.*s",
			     rq->scheme, (int)(rq->authority_len < 256 ? rq->authority_len : 256),
			     rq->authority, (int)(rq->path_len < 1024 ? rq->path_len : 1024),
			     rq->path);
	for (i = 32; i < n; i++)
		if ((unsigned char)hdr[i] < 0x20 || hdr[i] == 0x7f || hdr[i] == '"' ||
		    hdr[i] == '\\')
			hdr[i] = '_';
	snprintf(hdr + n, sizeof(hdr) - n, "\", error=\"invalid_token\"\r\n");
	local_reply(ex, 401, "text/plain", text, strlen(text), hdr,
		    ex->req_kind != HTTP1_BODY_NONE);
	return true;
}

/* The EnvoyFilter local rate limit, first in the chain as Istio's task inserts it: 429
 * and true when the bucket is empty.  filter_enabled picks the requests that take a
 * token, filter_enforced those that are refused without one (else only counted). */
static bool request_rate_limited(struct exchange *ex, const struct snapshot *snap)
{
	const struct local_rate_limit *rl = snap->set->rate_limit;
	struct worker *w = ex->c->w;
	char hdrs[1024];
	size_t n = 0;

	if (rl->enabled_ppm < 1000000 && worker_random(w) % 1000000 >= rl->enabled_ppm)
		return false;
	if (ratelimit_take(snap->rate_bucket, clock_mono_us()))
		return false;
	if (rl->enforced_ppm < 1000000 && worker_random(w) % 1000000 >= rl->enforced_ppm) {
		METRIC_INC(&w->metrics, downstream_rq_rate_limit_shadow);
		return false;
	}
	METRIC_INC(&w->metrics, downstream_rq_rate_limited);
	exchange_flag(ex, "RL");
	ex->details = "local_rate_limited";
	for (size_t i = 0; i < rl->response_headers.n && n < sizeof(hdrs); i++) {
		int k = snprintf(hdrs + n, sizeof(hdrs) - n, "%s: %s\r\n",
				 rl->response_headers.v[i].key, rl->response_headers.v[i].value);

		n = k > 0 && (size_t)k < sizeof(hdrs) - n ? n + (size_t)k : n;
	}
	hdrs[n] = '\0';
	local_reply(ex, 429, "text/plain", "local_rate_limited", 18, n > 0 ? hdrs : NULL,
		    ex->req_kind != HTTP1_BODY_NONE);
	return true;
}

/* One shadow engine's verdict in Envoy's RBAC debug words. */
static void request_shadow_log(const struct conn *c, const char *prefix,
			       const struct authz_engine *e)
{
	char id[AUTHZ_POLICY_ID_MAX];

	if (e->verdict != AUTHZ_NOT_EVALUATED)
		log_debug("conn %llu: %sshadow %s, matched policy %s", (unsigned long long)c->id,
			  prefix, authz_verdict_text(e->verdict),
			  authz_policy_id(e, id, sizeof(id)));
}

/* Dry-run AuthorizationPolicies: Envoy's shadow counters and debug lines; the verdicts
 * stay with the exchange for its access-log line. */
static void request_shadow(struct conn *c, struct exchange *ex, const struct authz_shadow *sh)
{
	struct metrics_shard *m = &c->w->metrics;

	if (sh->deny.verdict == AUTHZ_DENIED)
		METRIC_INC(m, downstream_rq_rbac_istio_dry_run_deny_shadow_denied);
	else if (sh->deny.verdict == AUTHZ_ALLOWED)
		METRIC_INC(m, downstream_rq_rbac_istio_dry_run_deny_shadow_allowed);
	if (sh->allow.verdict == AUTHZ_DENIED)
		METRIC_INC(m, downstream_rq_rbac_istio_dry_run_allow_shadow_denied);
	else if (sh->allow.verdict == AUTHZ_ALLOWED)
		METRIC_INC(m, downstream_rq_rbac_istio_dry_run_allow_shadow_allowed);
	if (log_debug_enabled()) {
		request_shadow_log(c, AUTHZ_DRY_RUN_DENY, &sh->deny);
		request_shadow_log(c, AUTHZ_DRY_RUN_ALLOW, &sh->allow);
	}
	ex->shadow = *sh;
	ex->shadow_kept = true;
}

/* The request's attributes for AuthorizationPolicy rules (principal: room for the client
 * certificate's identity). */
static void request_authz_attrs(struct conn *c, const struct cfg_set *set,
				const struct route_request *rq, const struct sockaddr *remote,
				const struct jwtauth *auth, struct authz_request *ar,
				char principal[512])
{
	memset(ar, 0, sizeof(*ar));
	authz_request_http(ar, rq);
	ar->auth = auth;
	ar->peer = &c->peer.sa;
	ar->remote = remote; /* NULL: the peer */
	if (c->ssl != NULL) {
		ar->sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
		if (set->ap_needs_principal && tls_peer_principal(c->ssl, principal, 512) > 0)
			ar->principal = principal;
	}
	if (set->ap_needs_local) {
		struct conn *owner = c->h2_stream ? h2down_conn(c->h2) : c;
		char text[CONN_ADDR_TEXT];

		conn_local_text(owner, text); /* reads the address once per connection */
		ar->local = &owner->local.sa;
	}
}

/* AuthorizationPolicy: answer 403 and say true when the request may not pass. */
static bool request_denied(struct conn *c, struct exchange *ex, const struct route_request *rq,
			   const struct sockaddr *remote, const struct jwtauth *auth)
{
	const struct cfg_set *set = ex->ws->snap->set;
	struct authz_request ar;
	struct authz_shadow sh;
	char principal[512];
	const char *why;

	if (!authz_any(set))
		return false;
	request_authz_attrs(c, set, rq, remote, auth, &ar, principal);
	memset(&sh, 0, sizeof(sh));
	why = authz_check(set, &ar, &sh);
	if (authz_dry_run(set))
		request_shadow(c, ex, &sh);
	if (why == NULL)
		return false;
	METRIC_INC(&c->w->metrics, downstream_rq_rbac_denied);
	ex->details = why; /* the snapshot's, pinned by the exchange */
	local_reply(ex, 403, "text/plain", "RBAC: access denied", 19, NULL,
		    ex->req_kind != HTTP1_BODY_NONE);
	return true;
}

/* CUSTOM policies (Istio: before DENY and ALLOW): when one matches, the check starts and
 * the request is held, its head left in the input, until request_extauthz_done().  0: no
 * CUSTOM policy matches; 1: held; -1: answered (out of memory). */
static int request_custom(struct conn *c, struct exchange *ex, const struct route_request *rq,
			  const struct http1_request *req, size_t head_len,
			  const struct sockaddr *remote, const struct jwtauth *auth)
{
	const struct cfg_set *set = ex->ws->snap->set;
	struct authz_request ar;
	char principal[512];

	request_authz_attrs(c, set, rq, remote, auth, &ar, principal);
	if (authz_custom(set, &ar) == NULL)
		return 0;
	if (extauthz_start(ex, set->ap_provider, req, rq, head_len) != 0) {
		exchange_flag(ex, "UAEX");
		ex->details = "ext_authz_error";
		local_reply(ex, 503, "text/plain", "out of memory\n", 14, NULL, true);
		return -1;
	}
	return 1;
}

/* Everything from a parsed head up to "routed": returns what conn.c should do next. */
static enum request_result request_route(struct conn *c, struct exchange *ex,
					 struct http1_request *req, size_t head_len)
{
	struct worker *w = c->w;
	struct evbuffer *in = stream_input(c->st);
	struct route_request rq;
	struct sockaddr_storage remote;
	struct jwtauth auth = {NULL, NULL};
	const struct vhost *vh;
	const struct http_route *route;
	const char *target = req->target;
	size_t tlen = req->target_len, i, host_len;
	char norm[8192];
	int status;
	const char *why;
	bool has_body, resumed = ex->xa_resumed;

	ex->minor_version = req->minor_version;
	ex->head_request = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	ex->client_keepalive = !req->conn_close;
	ex->expect_continue = req->expect_continue;
	/* Again after an external authorizer allowed it: what the first pass kept stays. */
	if (!resumed) {
		ex->method = exchange_keep(ex, req->method, req->method_len, &ex->method_len);
		ex->path = exchange_keep(ex, target, tlen < 1024 ? tlen : 1024, &ex->path_len);
	}
	for (i = 0; i < req->nheaders && !resumed; i++) {
		const struct http1_header *h = &req->headers[i];

		if (HTTP1_NAME_IS(h->name, h->name_len, "user-agent"))
			ex->user_agent =
			    exchange_keep(ex, h->value, h->value_len < 256 ? h->value_len : 256,
					  &ex->user_agent_len);
		else if (HTTP1_NAME_IS(h->name, h->name_len, "x-forwarded-for"))
			xff_join(ex, h->value, h->value_len);
		else if (HTTP1_NAME_IS(h->name, h->name_len, "te") &&
			 http1_list_has(h->value, h->value_len, "trailers"))
			ex->te_trailers = true; /* response trailers may go to this client */
		else if (HTTP1_NAME_IS(h->name, h->name_len, "x-request-id") &&
			 ex->request_id == NULL && h->value_len > 0 && h->value_len <= 128)
			ex->request_id =
			    exchange_keep(ex, h->value, h->value_len, &ex->request_id_len);
	}
	if (ex->request_id == NULL) { /* kept by a first pass, when resumed */
		char id[40];

		gen_request_id(w, id);
		ex->request_id = exchange_keep(ex, id, 36, &ex->request_id_len);
	}

	if (http1_request_framing(req, &ex->req_kind, &ex->req_remaining, &status, &why) != 0) {
		METRIC_INC(&w->metrics, downstream_rq_bad_request);
		evbuffer_drain(in, head_len);
		exchange_flag(ex, "DPE"); /* downstream protocol error, as Envoy flags it */
		ex->details = why;
		local_reply(ex, status, "text/plain", NULL, 0, NULL, true);
		return REQ_CLOSED;
	}
	has_body = ex->req_kind == HTTP1_BODY_CHUNKED ||
		   (ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining > 0);

	/* Request target forms (RFC 9112 §3.2). */
	memset(&rq, 0, sizeof(rq));
	rq.method = req->method;
	rq.method_len = req->method_len;
	rq.scheme = c->ssl != NULL ? "https" : "http";
	rq.port = c->port;
	rq.headers = (const struct msg_header *)req->headers;
	rq.nheaders = req->nheaders;
	if (req->host_index >= 0) {
		rq.authority = req->headers[req->host_index].value;
		rq.authority_len = req->headers[req->host_index].value_len;
	}
	if (tlen > 0 && target[0] != '/') {
		if (tlen == 1 && target[0] == '*') {
			rq.path = "*";
			rq.path_len = 1;
		} else if (tlen > 7 && (strncasecmp(target, "http://", 7) == 0 ||
					strncasecmp(target, "https://", 8) == 0)) {
			/* absolute-form: its authority replaces Host (RFC 9112 §3.2.2) */
			size_t s = target[4] == ':' ? 7 : 8, e = s;

			while (e < tlen && target[e] != '/' && target[e] != '?')
				e++;
			rq.authority = target + s;
			rq.authority_len = e - s;
			target += e;
			tlen -= e;
			/* Left: a path, a query whose empty path means "/" (RFC 9110 §4.2.3; the
			 * query must not be lost), or nothing, which means "/" too. */
			if (tlen == 0) {
				target = "/";
				tlen = 1;
			}
		} else {
			/* authority-form (CONNECT) is for the egress work; refuse it clearly. */
			evbuffer_drain(in, head_len);
			ex->details = "connect_not_supported";
			local_reply(ex, 501, "text/plain", "CONNECT is not supported here\n", 30,
				    NULL, true);
			return REQ_CLOSED;
		}
	}
	if (rq.path == NULL) {
		const char *q = memchr(target, '?', tlen);
		size_t plen = q != NULL ? (size_t)(q - target) : tlen;

		if (plen > sizeof(norm)) {
			evbuffer_drain(in, head_len);
			ex->details = "path_too_long";
			local_reply(ex, 414, "text/plain", NULL, 0, NULL, true);
			return REQ_CLOSED;
		}
		rq.path_len = path_normalize(target, plen, norm);
		rq.path = norm;
		if (q != NULL) {
			rq.query = q + 1;
			rq.query_len = tlen - plen - 1;
		}
	}
	if (rq.authority == NULL) {
		/* HTTP/1.0 without Host: route on "" (only a "*" virtual host can take it). */
		rq.authority = "";
		rq.authority_len = 0;
	}
	if (!resumed)
		ex->authority =
		    exchange_keep(ex, rq.authority, rq.authority_len < 256 ? rq.authority_len : 256,
				  &ex->authority_len);
	split_host_port(rq.authority, rq.authority_len, &host_len);
	rq.host = rq.authority;
	rq.host_len = host_len;

	if (!resumed) /* the check ran under this snapshot: the request goes on under it */
		ex->ws = worker_snap_pin(w);
	/* GeoIP headers, then access policy, before routing: Envoy's geoip and RBAC filters
	 * run before its router. */
	if (ex->ws != NULL) {
		const struct snapshot *snap = ex->ws->snap;
		const struct cfg_main *m = &snap->set->main;
		/* The client: behind trusted proxies, the one x-forwarded-for names. */
		bool behind = m->num_trusted_proxies > 0 && ex->xff != NULL &&
			      xff_client(rq.headers, rq.nheaders, m->num_trusted_proxies, &remote);
		const struct sockaddr *client =
		    behind ? (const struct sockaddr *)&remote : &c->peer.sa;

		if (!resumed && (snap->set->access_log_headers[0].n > 0 ||
				 snap->set->access_log_headers[1].n > 0))
			logfilter_keep_headers(ex, snap->set, LOGFILTER_REQUEST, req->headers,
					       req->nheaders);
		if (!resumed && snap->rate_bucket != NULL && request_rate_limited(ex, snap)) {
			evbuffer_drain(in, head_len);
			return has_body ? REQ_CLOSED : REQ_DONE;
		}

		if (m->geoip.database != NULL) {
			geoip_apply(snap->geoip, &m->geoip, client, ex, req->headers,
				    &req->nheaders);
			request_fields_changed(req, &rq);
		}
		if (snap->set->nra_rules > 0 && request_jwt_refused(ex, req, &rq, &auth)) {
			evbuffer_drain(in, head_len);
			return has_body ? REQ_CLOSED : REQ_DONE;
		}
		/* CUSTOM, then DENY and ALLOW (Istio's order); no cost without CUSTOM policies */
		if (snap->set->nap_custom > 0 && !resumed) {
			int held = request_custom(c, ex, &rq, req, head_len, behind ? client : NULL,
						  &auth);

			if (held > 0)
				return REQ_STARTED; /* the head stays until the verdict */
			if (held < 0) {
				evbuffer_drain(in, head_len);
				return REQ_CLOSED;
			}
		} else if (resumed) {
			extauthz_upstream_headers(ex, req->headers, &req->nheaders);
			request_fields_changed(req, &rq);
		}
		if (request_denied(c, ex, &rq, behind ? client : NULL, &auth)) {
			evbuffer_drain(in, head_len);
			return has_body ? REQ_CLOSED : REQ_DONE;
		}
	}
	ex->lc = ex->ws != NULL ? find_listener(ex->ws->snap, c->lkey) : NULL;
	vh = ex->lc != NULL ? router_find_vhost(ex->lc, rq.host, rq.host_len) : NULL;
	if (vh != NULL && vh->gateway != NULL)
		rq.gateway = vh->gateway->key; /* built once at link time */
	if (vh != NULL && vh->https_redirect && c->ssl == NULL) {
		METRIC_INC(&w->metrics, downstream_rq_direct_response);
		build_https_redirect(ex, &rq, has_body);
		evbuffer_drain(in, head_len);
		return has_body ? REQ_CLOSED : REQ_DONE;
	}
	route = vh != NULL ? router_match(vh, &rq) : NULL;
	if (route == NULL) {
		METRIC_INC(&w->metrics, downstream_rq_no_route);
		evbuffer_drain(in, head_len);
		exchange_flag(ex, "NR");
		ex->details = vh == NULL ? "route_not_found: no virtual host" : "route_not_found";
		local_reply(ex, 404, NULL, NULL, 0, NULL, has_body);
		return has_body ? REQ_CLOSED : REQ_DONE;
	}
	ex->route = route;
	if (route->more->fault->given || route->more->cors->given)
		note_route_policies(ex, req);
	if (route->more->fault->given) {
		uint64_t delay_us = fault_delay_us(route->more->fault, worker_random(w));

		if (delay_us > 0)
			return fault_hold(ex, req, &rq, head_len, has_body, delay_us);
	}
	if ((route->more->fault->given && fault_answer(ex, has_body)) ||
	    cors_answer(ex, has_body)) {
		evbuffer_drain(in, head_len);
		return has_body ? REQ_CLOSED : REQ_DONE;
	}
	if (route->more->direct_response->given || route->more->redirect != NULL) {
		if (route->more->redirect != NULL) {
			METRIC_INC(&w->metrics, downstream_rq_direct_response);
			ex->details = "redirect";
			build_redirect(ex, route->more->redirect, &rq);
		} else {
			answer_direct(ex, has_body);
		}
		evbuffer_drain(in, head_len);
		if (has_body) {
			/* We did not read the body: the connection cannot be reused. */
			ex->client_keepalive = false;
			return REQ_CLOSED;
		}
		return REQ_DONE;
	}
	ex->rd = router_pick_destination(
	    route, route->total_weight ? (uint32_t)(worker_random(w) % route->total_weight) : 0);
	if (proxy_start(ex, req, &rq) != 0) {
		/* answered locally (e.g. 503 UH); the body, if any, was not read */
		evbuffer_drain(in, head_len);
		return has_body ? REQ_CLOSED : REQ_DONE;
	}
	evbuffer_drain(in, head_len);
	if (ex->req_kind == HTTP1_BODY_NONE ||
	    (ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0))
		ex->req_done = true;
	else
		proxy_client_readable(ex);
	return REQ_STARTED;
}

/* The authorizer answered (extauthz.h).  Denied or failed: the head is drained and the
 * client answered, as for a 403 of the DENY policies.  Allowed (or failed open): the head
 * still waiting in the input is parsed again and request_route() runs once more, past
 * what the first pass did (log fields, rate limit, the check itself). */
static int request_parse(struct conn *c, struct http1_request *req, int *status, const char **why);

void request_extauthz_done(struct exchange *ex)
{
	struct conn *c = ex->c;
	enum extauthz_verdict v = extauthz_verdict(ex);
	size_t head_len = extauthz_head_len(ex);
	bool unread = !(ex->req_kind == HTTP1_BODY_NONE ||
			(ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0));
	struct http1_request req;
	const char *why = NULL;
	int status = 400, n;

	if (v == EXTAUTHZ_DENIED || (v == EXTAUTHZ_ERROR && !extauthz_fail_open(ex))) {
		const char *body = NULL, *hdrs = NULL;
		size_t blen = 0;

		evbuffer_drain(stream_input(c->st), head_len);
		exchange_flag(ex, "UAEX");
		if (v == EXTAUTHZ_DENIED) {
			status = extauthz_denied_reply(ex, &body, &blen, &hdrs);
			ex->details = "ext_authz_denied";
		} else {
			status = (int)ex->ws->snap->set->ap_provider->status_on_error;
			ex->details = "ext_authz_error";
		}
		local_reply(ex, status, NULL, body, blen, hdrs, unread);
		conn_exchange_done(c);
		return;
	}
	ex->xa_resumed = true;
	n = request_parse(c, &req, &status, &why);
	if (n != (int)head_len) {
		/* a reload in between changed the limits the head was read under */
		evbuffer_drain(stream_input(c->st), head_len);
		ex->details = "ext_authz_head_changed";
		local_reply(ex, 503, "text/plain", NULL, 0, NULL, true);
		conn_exchange_done(c);
		return;
	}
	switch (request_route(c, ex, &req, (size_t)n)) {
	case REQ_STARTED:
		return;
	case REQ_CLOSED:
		ex->client_keepalive = false;
		/* fall through */
	default:
		conn_exchange_done(c);
	}
}

/* Parse the request head at the start of c's input into req, under the current config's
 * limits, with the thread's scratch header slots: http1_parse_request's result, or
 * REQ_PARSE_NOMEM. */
#define REQ_PARSE_NOMEM (-1000)
static int request_parse(struct conn *c, struct http1_request *req, int *status, const char **why)
{
	struct evbuffer *in = stream_input(c->st);
	struct snapshot *s = c->w->cur != NULL ? c->w->cur->snap : NULL;
	struct http1_limits lim = {65536, 16384, 100};
	size_t len = evbuffer_get_length(in), want;
	const char *buf;

	if (s != NULL) {
		lim.max_head = s->set->main.limits.max_header_bytes;
		lim.max_request_line = s->set->main.limits.max_request_line_bytes;
		lim.max_headers = s->set->main.limits.max_headers;
	}
	if (hdr_nslots < lim.max_headers) {
		free(hdr_slots);
		/* room for the fields geoip_apply, jwtauth_request and an authorizer append */
		hdr_slots = calloc(lim.max_headers + GEOIP_HEADERS_MAX + JWTAUTH_HEADERS_MAX +
				       EXTAUTHZ_HEADERS_MAX,
				   sizeof(*hdr_slots));
		hdr_nslots = hdr_slots != NULL ? lim.max_headers : 0;
		if (hdr_slots == NULL)
			return REQ_PARSE_NOMEM;
	}
	want = len < lim.max_head + 4 ? len : lim.max_head + 4;
	buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	memset(req, 0, sizeof(*req));
	req->headers = hdr_slots;
	return http1_parse_request(buf, want, &lim, req, status, why);
}

/* The access log line of a request that ended before any exchange read it: an HTTP/2
 * stream whose reset came in the same read as its header block.  Method, path, authority
 * and user agent come from the head waiting in c's input; status 0. */
void request_log_unread(struct conn *c, const char *flag, const char *details)
{
	struct http1_request req;
	struct exchange *ex;
	const char *why = NULL;
	int status = 400;
	int n = request_parse(c, &req, &status, &why);

	if (n == MG_AGAIN || n == REQ_PARSE_NOMEM || (ex = request_new(c)) == NULL)
		return;
	METRIC_INC(&c->w->metrics, downstream_rq_total);
	if (n > 0) {
		ex->method = exchange_keep(ex, req.method, req.method_len, &ex->method_len);
		ex->path = exchange_keep(
		    ex, req.target, req.target_len < 1024 ? req.target_len : 1024, &ex->path_len);
		if (req.host_index >= 0) {
			const struct http1_header *h = &req.headers[req.host_index];

			ex->authority =
			    exchange_keep(ex, h->value, h->value_len < 256 ? h->value_len : 256,
					  &ex->authority_len);
		}
		for (size_t i = 0; i < req.nheaders; i++)
			if (HTTP1_NAME_IS(req.headers[i].name, req.headers[i].name_len,
					  "user-agent"))
				ex->user_agent =
				    exchange_keep(ex, req.headers[i].value,
						  req.headers[i].value_len, &ex->user_agent_len);
	}
	exchange_flag(ex, flag);
	ex->details = details;
	request_finish(ex);
}

enum request_result request_begin(struct conn *c)
{
	struct http1_request req;
	struct exchange *ex;
	const char *why = NULL;
	int status = 400, n = request_parse(c, &req, &status, &why);

	if (n == REQ_PARSE_NOMEM) {
		conn_close(c, "out of memory");
		return REQ_CLOSED;
	}
	if (n == MG_AGAIN)
		return REQ_AGAIN;
	METRIC_INC(&c->w->metrics, downstream_rq_total);
	if (n < 0) {
		METRIC_INC(&c->w->metrics, downstream_rq_bad_request);
		local_reply_error(c, status, why);
		return REQ_CLOSED;
	}
	ex = request_new(c);
	if (ex == NULL) {
		conn_close(c, "out of memory");
		return REQ_CLOSED;
	}
	c->ex = ex; /* so local_reply and conn_close see it */
	switch (request_route(c, ex, &req, (size_t)n)) {
	case REQ_STARTED:
		return REQ_STARTED;
	case REQ_CLOSED:
		ex->client_keepalive = false;
		conn_exchange_end(c);
		return REQ_CLOSED;
	default:
		return conn_exchange_end(c) ? REQ_DONE : REQ_CLOSED;
	}
}
