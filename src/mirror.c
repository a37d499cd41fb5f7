#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "clusterstate.h"
#include "conn.h"
#include "connpool.h"
#include "affinity.h"
#include "errors.h"
#include "exchange.h"
#include "h2up.h"
#include "http1.h"
#include "lb_hash.h"
#include "locality.h"
#include "log.h"
#include "metrics.h"
#include "mirror.h"
#include "outlier.h"
#include "proxy.h"
#include "snapshot.h"
#include "stream.h"
#include "upstream.h"
#include "worker.h"

#define MIRROR_MAX_HEAD (64 * 1024)
#define MIRROR_MAX_HEADERS 256
#define MIRROR_FREE_MAX 64 /* recycled mirrors (with their timer and head buffer) per worker */
#define SHADOW_SUFFIX "-shadow"
#define SHADOW_SUFFIX_LEN (sizeof(SHADOW_SUFFIX) - 1)

struct mirror {
	struct worker *w;
	struct wsnap *ws; /* pinned while in flight: cl and ep live in that snapshot */
	const struct cluster *cl;
	const struct endpoint *ep;
	struct upstream_host *uh;
	struct upconn *uc;      /* HTTP/1.1: the connection */
	struct h2up_stream *h2; /* HTTP/2: the stream (uc NULL) */
	/* the mirror cluster's circuit breakers (connectionPool), as Envoy applies them to
	 * shadow requests: cs outlives every snapshot, lim lives in the pinned one */
	struct cluster_state *cs;
	const struct conn_pool_settings *lim;
	struct evbuffer *head; /* the shadow head, kept until the response starts (stale retry) */
	struct event *timer;
	struct mirror *next;      /* the exchange's list, or the worker's free list */
	LIST_ENTRY(mirror) entry; /* the worker's in-flight list */
	uint64_t deadline_us;     /* monotonic */
	uint64_t connect_us;
	uint64_t req_left; /* Content-Length body bytes still to come from the exchange */
	enum http1_body_kind req_kind;
	enum http1_body_kind resp_kind;
	uint64_t resp_left;
	struct http1_chunked resp_chunk;
	bool attached;    /* in an exchange's list: body pieces may still come */
	bool inflight;    /* talking to its upstream; counted in the worker */
	bool body_done;   /* the whole request is in the output */
	bool body_sent;   /* some body byte is in the output (no stale retry then) */
	bool head_seen;   /* the response head was parsed */
	bool head_method; /* a HEAD request: the response has no body */
	bool resp_close;
	bool retried;
	bool connected;  /* the connection is established (pooled, or connect done) */
	bool h2_reused;  /* the stream went on a connection that was already up */
	bool rq_counted; /* admitted in cs->rq_active */
};

struct mirror_state {
	LIST_HEAD(mirror_list, mirror) inflight;
	unsigned ninflight;
	struct mirror *free;
	unsigned nfree;
};

/* mirror_connect's answers */
enum { MC_OK = 0, MC_FAILED = -1, MC_OVERFLOW = -2 };

enum mirror_outcome {
	MO_REUSE, /* complete response, connection back to the pool */
	MO_DONE,  /* complete response, connection closed */
	MO_FAIL,  /* connect error, timeout, reset, invalid response */
	MO_DROP,  /* abandoned: output over the bound, or the request ended early */
};

static void mirror_read_cb(struct stream *st, void *arg);
static void mirror_event_cb(struct stream *st, short what, void *arg);
static void mirror_timer_cb(evutil_socket_t fd, short what, void *arg);
static void mirror_h2_read(void *arg);
static void mirror_h2_write(void *arg);
static void mirror_h2_event(void *arg, enum h2up_event ev, const char *why);
static const struct h2up_cb mirror_h2_cbs = {mirror_h2_read, mirror_h2_write, mirror_h2_event};

/* ---- pure helpers ---- */

/* Where "-shadow" goes: before the port, found as Envoy finds it (the last ':' that is not
 * inside an IPv6 literal's brackets). */
static size_t shadow_split(const char *host, size_t len)
{
	size_t i = len;

	while (i > 0) {
		i--;
		if (host[i] == ']')
			return len;
		if (host[i] == ':')
			return i;
	}
	return len;
}

size_t mirror_shadow_host(const char *host, size_t len, char *out, size_t outsize)
{
	size_t at = shadow_split(host, len);

	if (len + SHADOW_SUFFIX_LEN > outsize)
		return 0;
	memcpy(out, host, at);
	memcpy(out + at, SHADOW_SUFFIX, SHADOW_SUFFIX_LEN);
	memcpy(out + at + SHADOW_SUFFIX_LEN, host + at, len - at);
	return len + SHADOW_SUFFIX_LEN;
}

static const char *find_crlf(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

int mirror_shadow_head(const char *head, size_t len, struct evbuffer *out)
{
	const char *end = head + len, *p, *e;

	p = find_crlf(head, end);
	if (p == NULL)
		return -1;
	for (p += 2; p < end && (e = find_crlf(p, end)) != NULL && e > p; p = e + 2) {
		const char *v, *ve;
		size_t at;

		if (e - p < 5 || strncasecmp(p, "host:", 5) != 0)
			continue;
		for (v = p + 5; v < e && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		at = shadow_split(v, (size_t)(ve - v));
		evbuffer_add(out, head, (size_t)(v - head) + at);
		evbuffer_add(out, SHADOW_SUFFIX, SHADOW_SUFFIX_LEN);
		evbuffer_add(out, v + at, (size_t)(end - (v + at)));
		return 0;
	}
	evbuffer_add(out, head, len); /* no Host field: nothing to mark */
	return 0;
}

bool mirror_sampled(const struct percent *p, uint64_t r)
{
	uint64_t ppm;

	if (p == NULL || !p->given)
		return true;
	/* Parts per million, as Istio hands the percentage to Envoy (FractionalPercent with
	 * a MILLION denominator). */
	ppm = (uint64_t)(p->value * 10000.0 + 0.5);
	if (ppm >= 1000000)
		return true;
	return r % 1000000 < ppm;
}

/* ---- per-worker state and recycling ---- */

static struct mirror_state *mirror_state(struct worker *w)
{
	if (w->mirror == NULL) {
		w->mirror = calloc(1, sizeof(*w->mirror));
		if (w->mirror != NULL)
			LIST_INIT(&w->mirror->inflight);
	}
	return w->mirror;
}

unsigned mirror_inflight(const struct worker *w)
{
	return w->mirror != NULL ? w->mirror->ninflight : 0;
}

static struct mirror *mirror_new(struct worker *w, struct mirror_state *ms)
{
	struct mirror *m = ms->free;
	struct event *timer;
	struct evbuffer *head;

	if (m != NULL) {
		ms->free = m->next;
		ms->nfree--;
		timer = m->timer;
		head = m->head;
	} else {
		/* The timer's argument is this struct, which keeps its address when recycled. */
		m = malloc(sizeof(*m));
		if (m == NULL)
			return NULL;
		timer = evtimer_new(w->base, mirror_timer_cb, m);
		head = evbuffer_new();
		if (timer == NULL || head == NULL) {
			if (timer != NULL)
				event_free(timer);
			if (head != NULL)
				evbuffer_free(head);
			free(m);
			return NULL;
		}
	}
	memset(m, 0, sizeof(*m));
	m->w = w;
	m->timer = timer;
	m->head = head;
	return m;
}

static void mirror_destroy(struct mirror *m)
{
	event_free(m->timer);
	evbuffer_free(m->head);
	free(m);
}

static void mirror_recycle(struct mirror *m)
{
	struct mirror_state *ms = m->w->mirror;

	evtimer_del(m->timer);
	evbuffer_drain(m->head, evbuffer_get_length(m->head));
	if (ms->nfree >= MIRROR_FREE_MAX) {
		mirror_destroy(m);
		return;
	}
	m->next = ms->free;
	ms->free = m;
	ms->nfree++;
}

/* Let go of everything but the connection, which is returned: the caller hands it back to
 * the pool or closes it as its very last step, because the pool may run a waiting
 * exchange's code right there (connectionPool waiters), and that may end this mirror's
 * own exchange and recycle the mirror. */
static struct upconn *mirror_detach(struct mirror *m)
{
	struct upconn *uc = m->uc;

	evtimer_del(m->timer);
	if (m->uh != NULL && m->uh->active_rq > 0)
		m->uh->active_rq--;
	if (m->rq_counted)
		clusterstate_release(&m->cs->rq_active);
	m->rq_counted = false;
	m->uc = NULL;
	m->uh = NULL;
	m->cl = NULL;
	m->ep = NULL;
	m->cs = NULL;
	m->lim = NULL;
	worker_snap_unpin(m->ws);
	m->ws = NULL;
	LIST_REMOVE(m, entry);
	m->w->mirror->ninflight--;
	m->inflight = false;
	return uc;
}

/* The mirror is over: count it, free what it holds; the struct itself waits for its
 * exchange to let go of it when still attached. */
static void mirror_end(struct mirror *m, enum mirror_outcome how, const char *why)
{
	struct worker *w = m->w;
	struct h2up_stream *hs = m->h2;
	struct upconn *uc;

	if (!m->inflight)
		return;
	switch (how) {
	case MO_FAIL:
		METRIC_INC(&w->metrics, upstream_rq_mirror_failed);
		log_debug("mirror to %s failed: %s", m->ep->name, why);
		break;
	case MO_DROP:
		METRIC_INC(&w->metrics, upstream_rq_mirror_dropped);
		log_debug("mirror to %s abandoned: %s", m->ep->name, why);
		break;
	case MO_REUSE:
	case MO_DONE:
		break;
	}
	m->h2 = NULL;
	uc = mirror_detach(m);
	if (!m->attached)
		mirror_recycle(m);
	/* an answered stream ends cleanly (h2up.c resets it when the request is unfinished);
	 * h2up.c runs no callback from here */
	if (hs != NULL)
		h2up_stream_close(hs, how == MO_REUSE || how == MO_DONE);
	/* m may be gone once the pool has the connection */
	if (uc != NULL) {
		if (how == MO_REUSE)
			connpool_release(uc);
		else
			connpool_close(uc);
	}
	if (w->draining)
		worker_check_drained(w);
}

/* ---- upstream connection ---- */

static void mirror_timer_arm(struct mirror *m, uint64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(m->timer, &tv);
}

static uint64_t mirror_time_left(const struct mirror *m)
{
	uint64_t now = clock_mono_us();

	return m->deadline_us > now ? m->deadline_us - now : 1;
}

/* Outlier detection of the mirror cluster sees the copies' outcomes, as Envoy's does for
 * shadow requests: a status, or 0 for a failure to get one (connect, reset, timeout). */
static void mirror_outlier(const struct mirror *m, int status)
{
	if (m->cl != NULL && m->cl->outlier != NULL)
		outlier_report(m->cl, m->ep, status, clock_mono_us());
}

/* The mirror cluster's own counters (/clusters, meshgate_cluster_*) count the copies, as
 * Envoy's shadow cluster stats do. */
static void mirror_count_status(const struct mirror *m, int status)
{
	static const enum cluster_counter cls[] = {CC_RQ_2XX, CC_RQ_3XX, CC_RQ_4XX, CC_RQ_5XX};

	if (status >= 200 && status < 600)
		CLUSTER_COUNT(m->cl, m->w->id, cls[status / 100 - 2]);
}

/* A copy that got no answer: outlier detection counts it as a failure (before any answer
 * head), the cluster's counters as a connect failure or a timeout. */
static void mirror_no_answer(struct mirror *m, bool timeout)
{
	if (!m->head_seen)
		mirror_outlier(m, 0);
	if (!m->connected)
		CLUSTER_COUNT(m->cl, m->w->id, CC_CX_CONNECT_FAIL);
	else if (timeout)
		CLUSTER_COUNT(m->cl, m->w->id, CC_RQ_TIMEOUT);
}

/* A new connection's settings from the mirror cluster's DestinationRule; the connect
 * timeout it asks for, else connect_us. */
static uint64_t mirror_cx_setup(const struct mirror *m, struct upconn *uc,
				struct cluster_state *counted, uint64_t connect_us)
{
	connpool_setup(uc, counted, m->lim);
	return m->lim != NULL && m->lim->connect_timeout_us > 0 ? m->lim->connect_timeout_us
								: connect_us;
}

/* HTTP/2 (h2up.h): a stream on a connection of the cluster's pool with room (shared with
 * the main requests, as proxy.c finds them), else on a new connection; the head is queued
 * on the stream as on a connection, and kept until the response starts for a retry of a
 * refused stream or the fall back to HTTP/1.1. */
static int mirror_connect_h2(struct mirror *m)
{
	const void *owner = m->cs != NULL ? (const void *)m->cs : (const void *)m->cl;
	struct h2up_conn *hc = h2up_find(m->uh, owner, m->lim);
	uint64_t left = mirror_time_left(m), connect_us = m->connect_us;
	bool ready = false;

	if (hc == NULL) {
		struct cluster_state *counted;

		/* a mirror never waits for a connection: over the limit it is dropped */
		if (!connpool_admit(m->uh, m->cs, m->lim, &counted))
			return MC_OVERFLOW;
		hc = h2up_connect(m->w->pool, m->uh, owner, m->lim);
		if (hc == NULL) {
			if (counted != NULL)
				clusterstate_release(&counted->cx_active);
			return MC_FAILED;
		}
		connect_us = mirror_cx_setup(m, h2up_conn_upconn(hc), counted, connect_us);
	}
	m->h2 = h2up_stream_open(hc, &mirror_h2_cbs, m, &ready);
	if (m->h2 == NULL)
		return MC_FAILED;
	m->connected = ready;
	m->h2_reused = ready;
	mirror_timer_arm(m, ready || connect_us > left ? left : connect_us);
	evbuffer_add(h2up_stream_output(m->h2), evbuffer_pullup(m->head, -1),
		     evbuffer_get_length(m->head));
	return MC_OK;
}

/* Take a pooled connection (or open one) and queue the head on it.  A new connection obeys
 * the cluster's maxConnections, but a mirror never waits for one (MC_OVERFLOW: dropped);
 * one that replaces a stale connection takes over that one's place in the count.  A
 * cluster that speaks HTTP/2 upstream takes a stream instead (until its TLS server chooses
 * HTTP/1.1). */
static int mirror_connect(struct mirror *m, bool allow_pooled, struct upconn *replacing)
{
	struct connpool *pool = m->w->pool;
	struct cluster_state *counted = NULL;
	struct upconn *uc;
	uint64_t left = mirror_time_left(m), connect_us = m->connect_us;

	if (m->cl->http2 && !m->uh->h2_off && replacing == NULL)
		return mirror_connect_h2(m);
	uc = allow_pooled ? connpool_get_idle(pool, m->uh) : NULL;
	m->connected = uc != NULL;
	if (uc != NULL) {
		mirror_timer_arm(m, left);
	} else {
		if (replacing != NULL && replacing->counted != NULL) {
			counted = replacing->counted;
			replacing->counted = NULL;
		} else if (!connpool_admit(m->uh, m->cs, m->lim, &counted)) {
			return MC_OVERFLOW; /* a mirror never waits for a connection */
		}
		uc = connpool_connect(pool, m->uh);
		if (uc == NULL) {
			if (counted != NULL)
				clusterstate_release(&counted->cx_active);
			return MC_FAILED;
		}
		connect_us = mirror_cx_setup(m, uc, counted, connect_us);
		mirror_timer_arm(m, connect_us < left ? connect_us : left);
	}
	m->uc = uc;
	stream_setcb(uc->st, mirror_read_cb, NULL, mirror_event_cb, m);
	stream_setwatermark(uc->st, EV_READ, 0, 0);
	stream_setwatermark(uc->st, EV_WRITE, 0, 0);
	stream_set_read_timeout(uc->st, NULL);
	stream_enable(uc->st, EV_READ | EV_WRITE);
	/* A copy: the head stays until the response starts, for a stale-connection retry. */
	evbuffer_add(stream_output(uc->st), evbuffer_pullup(m->head, -1),
		     evbuffer_get_length(m->head));
	return MC_OK;
}

static void mirror_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mirror *m = arg;

	mirror_no_answer(m, true);
	mirror_end(m, MO_FAIL, m->head_seen ? "timeout reading the response" : "timeout");
}

/* Returns 1 when the response head was parsed, 0 when more bytes are needed, -1 when the
 * mirror ended. */
static int mirror_response_head(struct mirror *m, struct evbuffer *in)
{
	struct http1_limits lim = {MIRROR_MAX_HEAD, MIRROR_MAX_HEAD, MIRROR_MAX_HEADERS};
	struct http1_header hdrs[MIRROR_MAX_HEADERS];
	struct http1_response resp = {.headers = hdrs};
	const char *why = NULL;

	for (;;) {
		int n = proxy_response_head(in, &lim, m->head_method ? "HEAD" : "GET",
					    m->head_method ? 4 : 3, &resp, &m->resp_kind,
					    &m->resp_left, &why);

		if (n == MG_AGAIN)
			return 0;
		if (n < 0) {
			mirror_end(m, MO_FAIL, why != NULL ? why : "invalid response");
			return -1;
		}
		evbuffer_drain(in, (size_t)n);
		if (resp.status >= 100 && resp.status < 200)
			continue; /* interim: the final head follows */
		m->head_seen = true;
		m->resp_close = resp.conn_close;
		mirror_outlier(m, resp.status);
		mirror_count_status(m, resp.status);
		evbuffer_drain(m->head, evbuffer_get_length(m->head));
		return 1;
	}
}

/* Read and drop response body bytes.  Returns 1 when the body is complete, 0 when more
 * are needed, -1 when the mirror ended. */
static int mirror_discard_body(struct mirror *m, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);

	switch (m->resp_kind) {
	case HTTP1_BODY_NONE:
		return 1;
	case HTTP1_BODY_LENGTH: {
		size_t n = avail < m->resp_left ? avail : (size_t)m->resp_left;

		evbuffer_drain(in, n);
		m->resp_left -= n;
		return m->resp_left == 0;
	}
	case HTTP1_BODY_UNTIL_CLOSE:
		evbuffer_drain(in, avail);
		return 0; /* ends at EOF */
	case HTTP1_BODY_CHUNKED:
		/* Decoded only to find where the body ends, so the connection can be reused. */
		while (avail > 0 && !m->resp_chunk.done) {
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)chunk);

			while (off < chunk && !m->resp_chunk.done) {
				const char *data, *why = NULL;
				size_t dlen = 0;
				ssize_t k = http1_chunked_step(&m->resp_chunk, buf + off,
							       chunk - off, &data, &dlen, &why);

				if (k < 0) {
					mirror_end(m, MO_FAIL,
						   why != NULL ? why : "bad chunked response body");
					return -1;
				}
				off += (size_t)k;
				if (k == 0)
					break;
			}
			evbuffer_drain(in, off);
			avail = evbuffer_get_length(in);
			if (off < chunk && !m->resp_chunk.done)
				break;
		}
		return m->resp_chunk.done ? 1 : 0;
	}
	return 0;
}

static void mirror_read_cb(struct stream *st, void *arg)
{
	struct mirror *m = arg;
	struct evbuffer *in = stream_input(st);
	bool reusable;

	if (!m->head_seen && mirror_response_head(m, in) <= 0)
		return;
	if (mirror_discard_body(m, in) <= 0)
		return;
	/* Reusable only when both directions ended cleanly: an upstream that answered before
	 * the whole request went out leaves the framing of the rest in doubt. */
	reusable = !m->resp_close && m->resp_kind != HTTP1_BODY_UNTIL_CLOSE && m->body_done &&
		   stream_output_len(st) == 0 && evbuffer_get_length(in) == 0;
	/* maxRequestsPerConnection and maxConnectionDuration, as for the main requests */
	if (reusable && m->lim != NULL &&
	    ((m->lim->max_requests_per_connection > 0 &&
	      m->uc->requests >= m->lim->max_requests_per_connection) ||
	     (m->lim->max_connection_duration_us > 0 &&
	      clock_mono_us() - m->uc->created_us >= m->lim->max_connection_duration_us)))
		reusable = false;
	mirror_end(m, reusable ? MO_REUSE : MO_DONE, NULL);
}

static void mirror_event_cb(struct stream *st, short what, void *arg)
{
	struct mirror *m = arg;
	struct evbuffer *in = stream_input(st);

	if (what & BEV_EVENT_CONNECTED) {
		m->connected = true;
		mirror_timer_arm(m, mirror_time_left(m));
		return;
	}
	if (m->head_seen && m->resp_kind == HTTP1_BODY_UNTIL_CLOSE && (what & BEV_EVENT_EOF)) {
		evbuffer_drain(in, evbuffer_get_length(in));
		mirror_end(m, MO_DONE, NULL);
		return;
	}
	/* A pooled connection the upstream closed just as we reused it: once more on a fresh
	 * one, when no body byte was lost with it (as the main request does). */
	if (!m->head_seen && m->uc->reused && !m->body_sent && !m->retried &&
	    evbuffer_get_length(in) == 0) {
		struct upconn *stale = m->uc;
		int rc;

		m->retried = true;
		m->uc = NULL;
		rc = mirror_connect(m, false, stale);
		if (rc != MC_OK) {
			if (rc == MC_FAILED)
				mirror_no_answer(m, false);
			m->uc = stale; /* closed by mirror_end */
			mirror_end(m, rc == MC_OVERFLOW ? MO_DROP : MO_FAIL,
				   rc == MC_OVERFLOW ? "cluster at maxConnections"
						     : "connect error");
			return;
		}
		connpool_close(stale); /* last: see mirror_detach */
		return;
	}
	mirror_no_answer(m, false);
	mirror_end(m, MO_FAIL,
		   (what & BEV_EVENT_EOF) ? "connection closed before a complete response"
					  : "connection error");
}

/* ---- HTTP/2: the stream's callbacks (h2up.h) ---- */

/* The synthesized HTTP/1.1 response is read and dropped as a connection's is; a complete
 * one ends the stream (h2up.c keeps the connection and its limits). */
static void mirror_h2_read(void *arg)
{
	struct mirror *m = arg;
	struct evbuffer *in = h2up_stream_input(m->h2);

	if (!m->head_seen && mirror_response_head(m, in) <= 0)
		return;
	if (mirror_discard_body(m, in) <= 0)
		return;
	mirror_end(m, MO_DONE, NULL);
}

/* The copy's body is written as the exchange's comes, bounded by MIRROR_MAX_PENDING: a
 * drained output asks for nothing. */
static void mirror_h2_write(void *arg)
{
	(void)arg;
}

/* The stream failed before it was processed (refused, or a reused connection closed
 * under it): once more, on a connection with room or a new one, when no body byte was
 * lost with it. */
static void mirror_h2_retry(struct mirror *m)
{
	struct h2up_stream *old = m->h2;
	int rc;

	m->retried = true;
	m->h2 = NULL;
	h2up_stream_close(old, false);
	rc = mirror_connect(m, true, NULL);
	if (rc != MC_OK) {
		if (rc == MC_FAILED)
			mirror_no_answer(m, false);
		mirror_end(m, rc == MC_OVERFLOW ? MO_DROP : MO_FAIL,
			   rc == MC_OVERFLOW ? "cluster at maxConnections" : "connect error");
	}
}

/* The TLS server chose HTTP/1.1 (h2up.c marked the host): the copy goes over HTTP/1.1, as
 * a main request does.  No byte left the stream before the connection was ready, so its
 * output holds the head and the body so far: the head is written again by mirror_connect,
 * the body follows it. */
static void mirror_h2_fallback(struct mirror *m)
{
	struct h2up_stream *old = m->h2;
	struct evbuffer *pending = h2up_stream_output(old);
	size_t hlen = evbuffer_get_length(m->head);
	int rc;

	m->h2 = NULL;
	rc = mirror_connect(m, true, NULL);
	if (rc == MC_OK && m->uc != NULL) {
		evbuffer_drain(pending, hlen);
		evbuffer_add_buffer(stream_output(m->uc->st), pending);
	}
	h2up_stream_close(old, false);
	if (rc != MC_OK) {
		if (rc == MC_FAILED)
			mirror_no_answer(m, false);
		mirror_end(m, rc == MC_OVERFLOW ? MO_DROP : MO_FAIL,
			   rc == MC_OVERFLOW ? "cluster at maxConnections" : "connect error");
	}
}

static void mirror_h2_event(void *arg, enum h2up_event ev, const char *why)
{
	struct mirror *m = arg;

	switch (ev) {
	case H2UP_CONNECTED:
		m->connected = true;
		mirror_timer_arm(m, mirror_time_left(m));
		return;
	case H2UP_FALLBACK:
		mirror_h2_fallback(m);
		return;
	case H2UP_CONNECT_FAILED:
		mirror_no_answer(m, false);
		mirror_end(m, MO_FAIL, "connect error");
		return;
	case H2UP_REFUSED:
	case H2UP_CLOSED:
		if (!m->head_seen && !m->body_sent && !m->retried &&
		    (ev == H2UP_REFUSED || m->h2_reused)) {
			mirror_h2_retry(m);
			return;
		}
		break;
	case H2UP_RESET:
		break;
	}
	mirror_no_answer(m, false);
	mirror_end(m, MO_FAIL, why != NULL ? why : "stream reset");
}

/* An endpoint of cl in service, chosen as proxy.c chooses one for a main request: by the
 * copy's hash key when the cluster is consistently hashed and the request has one, else by
 * locality ranks, then the balancer; ejected or unhealthy endpoints skipped.  NULL when
 * none is in service. */
static const struct endpoint *mirror_pick(struct worker *w, const struct cluster *cl, bool keyed,
					  uint64_t key)
{
	const struct endpoint *ep;

	if (cl->hash_table != NULL && keyed)
		ep = &cl->endpoints[lb_hash_pick(cl->hash_table, cl->nendpoints, key, 0)];
	else if (cl->nlevels > 1)
		return locality_pick(w, cl, clock_mono_us());
	else
		ep = upstream_pick(w, cl);
	if (cl->outlier != NULL || cl->health_check != NULL)
		ep = outlier_pick(w, cl, ep, clock_mono_us());
	return ep;
}

/* The key of one mirror: its own cluster's policy over the client's request.  Envoy sends
 * shadows with no hash policy (a hashed shadow cluster picks at random); Istio users ask
 * for the mirror's DestinationRule to hold, and a copy that lands where the same key
 * always lands is what a shadow cache or session store needs. */
static bool mirror_key(const struct exchange *ex, const struct consistent_hash *ch,
		       const struct http1_request *req, const struct route_request *rq,
		       uint64_t *key)
{
	const struct consistent_hash *main_ch = ex->rd != NULL && ex->rd->dest.cluster != NULL
						    ? ex->rd->dest.cluster->hash_policy
						    : NULL;
	char peer[CONN_ADDR_TEXT];

	/* the cookie the client gets with this answer: its next copies hash by it */
	if (ch->source == HASH_COOKIE && ex->new_cookie[0] != '\0' && main_ch != NULL &&
	    main_ch->source == HASH_COOKIE && strcmp(main_ch->name, ch->name) == 0) {
		*key = lb_hash_bytes(ex->new_cookie, strlen(ex->new_cookie));
		return true;
	}
	conn_peer_text(ex->c, true, peer);
	return affinity_key(ch, req, rq, peer, 0, key, NULL);
}

void mirror_prepare(struct exchange *ex, const struct http1_request *req,
		    const struct route_request *rq)
{
	const struct http_route *r = ex->route;

	ex->mirror_keyed = 0;
	if (r == NULL || req == NULL || rq == NULL)
		return;
	for (size_t i = 0; i < r->more->nmirrors && i < EX_MIRROR_KEYS; i++) {
		const struct cluster *cl = r->more->mirrors[i].dest.cluster;

		if (cl != NULL && cl->hash_table != NULL && cl->hash_policy != NULL &&
		    mirror_key(ex, cl->hash_policy, req, rq, &ex->mirror_key[i]))
			ex->mirror_keyed |= (uint8_t)(1u << i);
	}
}

/* ---- hooks ---- */

void mirror_start(struct exchange *ex)
{
	const struct http_route *r = ex->route;
	const struct cfg_timeouts *t;
	struct mirror **tail = &ex->mirrors;
	struct worker *w;
	const char *head;
	size_t hlen;

	/* A WebSocket handshake is not mirrored (Envoy neither): a second upstream would
	 * switch protocols for nobody. */
	if (r == NULL || r->more->nmirrors == 0 || ex->mirrors != NULL || ex->up_head == NULL ||
	    ex->ws == NULL || ex->upgrade)
		return;
	w = ex->c->w;
	t = &ex->ws->snap->set->main.timeouts;
	hlen = evbuffer_get_length(ex->up_head);
	head = (const char *)evbuffer_pullup(ex->up_head, -1);
	for (size_t i = 0; i < r->more->nmirrors; i++) {
		const struct http_mirror *hm = &r->more->mirrors[i];
		const struct cluster *cl = hm->dest.cluster;
		const struct endpoint *ep;
		struct mirror_state *ms;
		struct mirror *m;
		int rc;

		if (hm->percentage.given && !mirror_sampled(&hm->percentage, worker_random(w)))
			continue;
		ms = mirror_state(w);
		if (ms == NULL || ms->ninflight >= MIRROR_MAX_INFLIGHT) {
			METRIC_INC(&w->metrics, upstream_rq_mirror_dropped);
			log_debug("mirror to %s dropped: %u mirrors in flight on this worker",
				  cl != NULL ? cl->name : "?", ms != NULL ? ms->ninflight : 0);
			continue;
		}
		if (cl == NULL || cl->nendpoints == 0) {
			METRIC_INC(&w->metrics, upstream_rq_mirror_failed);
			log_debug("mirror to %s failed: no healthy upstream",
				  cl != NULL ? cl->name : "?");
			continue;
		}
		ep = mirror_pick(w, cl, i < EX_MIRROR_KEYS && (ex->mirror_keyed & (1u << i)),
				 i < EX_MIRROR_KEYS ? ex->mirror_key[i] : 0);
		if (ep == NULL) {
			METRIC_INC(&w->metrics, upstream_rq_mirror_failed);
			log_debug("mirror to %s failed: no endpoint in service", cl->name);
			continue;
		}
		m = mirror_new(w, ms);
		if (m == NULL) {
			METRIC_INC(&w->metrics, upstream_rq_mirror_dropped);
			continue;
		}
		m->cl = cl;
		m->ep = ep;
		m->uh = connpool_host(w->pool, m->ep);
		if (m->uh == NULL || mirror_shadow_head(head, hlen, m->head) != 0) {
			METRIC_INC(&w->metrics, upstream_rq_mirror_failed);
			mirror_recycle(m);
			continue;
		}
		/* connectionPool http2MaxRequests of the mirror cluster: over it, no copy */
		m->cs = cl->state;
		m->lim = cl->pool_limits;
		if (m->lim != NULL && m->lim->max_requests > 0 && m->cs != NULL) {
			if (!clusterstate_admit(&m->cs->rq_active, m->lim->max_requests)) {
				atomic_fetch_add_explicit(&m->cs->rq_overflow, 1,
							  memory_order_relaxed);
				METRIC_INC(&w->metrics, upstream_rq_mirror_dropped);
				log_debug("mirror to %s dropped: maxRequests reached", cl->name);
				mirror_recycle(m);
				continue;
			}
			m->rq_counted = true;
		}
		m->uh->active_rq++;
		m->ws = worker_snap_ref(ex->ws);
		m->connect_us = t->upstream_connect_us;
		m->deadline_us = clock_mono_us() +
				 (r->timeout_us > 0 ? r->timeout_us
						    : t->upstream_connect_us + t->upstream_idle_us);
		m->req_kind = ex->req_kind;
		m->req_left = ex->req_remaining;
		m->body_done = ex->req_kind == HTTP1_BODY_NONE ||
			       (ex->req_kind == HTTP1_BODY_LENGTH && ex->req_remaining == 0);
		m->head_method = ex->head_request;
		m->inflight = true;
		LIST_INSERT_HEAD(&ms->inflight, m, entry);
		ms->ninflight++;
		rc = mirror_connect(m, true, NULL);
		if (rc != MC_OK) {
			if (rc == MC_FAILED)
				mirror_no_answer(m, false);
			mirror_end(m, rc == MC_OVERFLOW ? MO_DROP : MO_FAIL,
				   rc == MC_OVERFLOW ? "maxConnections reached" : "connect error");
			continue;
		}
		METRIC_INC(&w->metrics, upstream_rq_mirror_sent);
		CLUSTER_COUNT(cl, w->id, CC_RQ_TOTAL);
		m->attached = true;
		*tail = m;
		tail = &m->next;
	}
}

/* Where the copy's request bytes go: the connection's output, or the HTTP/2 stream's. */
static struct evbuffer *mirror_output(const struct mirror *m)
{
	return m->h2 != NULL ? h2up_stream_output(m->h2) : stream_output(m->uc->st);
}

/* A mirror that cannot keep up is abandoned: the client and the main upstream set the pace,
 * never the mirror. */
static void mirror_check_pending(struct mirror *m)
{
	if (evbuffer_get_length(mirror_output(m)) > MIRROR_MAX_PENDING)
		mirror_end(m, MO_DROP, "more than 1 MiB of request pending");
}

static bool mirror_wants_body(const struct mirror *m)
{
	return m->inflight && !m->body_done;
}

void mirror_body_buffer(struct exchange *ex, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr pos;
	struct mirror *m;
	size_t left = n;

	if (ex->mirrors == NULL || n == 0)
		return;
	if (evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET) != 0)
		return;
	while (left > 0) {
		int k = evbuffer_peek(src, (ev_ssize_t)left, &pos, v, 16);
		size_t done = 0;

		if (k <= 0)
			break;
		for (int i = 0; i < k && i < 16 && done < left; i++) {
			size_t l = v[i].iov_len < left - done ? v[i].iov_len : left - done;

			for (m = ex->mirrors; m != NULL; m = m->next)
				if (mirror_wants_body(m) && m->req_kind == HTTP1_BODY_LENGTH)
					evbuffer_add(mirror_output(m), v[i].iov_base, l);
			done += l;
		}
		left -= done;
		if (left > 0 && evbuffer_ptr_set(src, &pos, done, EVBUFFER_PTR_ADD) != 0)
			break;
	}
	for (m = ex->mirrors; m != NULL; m = m->next) {
		if (!mirror_wants_body(m) || m->req_kind != HTTP1_BODY_LENGTH)
			continue;
		m->body_sent = true;
		m->req_left -= n < m->req_left ? n : m->req_left;
		if (m->req_left == 0)
			m->body_done = true;
		mirror_check_pending(m);
	}
}

void mirror_body(struct exchange *ex, const void *data, size_t len)
{
	struct mirror *m;

	if (len == 0)
		return;
	for (m = ex->mirrors; m != NULL; m = m->next) {
		char line[HTTP1_CHUNK_SIZE_LINE];
		struct evbuffer *out;

		if (!mirror_wants_body(m) || m->req_kind != HTTP1_BODY_CHUNKED)
			continue;
		out = mirror_output(m);
		evbuffer_add(out, line, http1_chunk_size_line(len, line));
		evbuffer_add(out, data, len);
		evbuffer_add(out, "\r\n", 2);
		m->body_sent = true;
		mirror_check_pending(m);
	}
}

void mirror_body_end(struct exchange *ex)
{
	struct mirror *m;

	for (m = ex->mirrors; m != NULL; m = m->next) {
		if (!mirror_wants_body(m) || m->req_kind != HTTP1_BODY_CHUNKED)
			continue;
		evbuffer_add(mirror_output(m), "0\r\n\r\n", 5);
		m->body_done = true;
	}
}

void mirror_exchange_end(struct exchange *ex)
{
	struct mirror *m = ex->mirrors, *next;

	ex->mirrors = NULL;
	for (; m != NULL; m = next) {
		next = m->next;
		m->next = NULL;
		m->attached = false;
		if (!m->inflight)
			mirror_recycle(m);
		else if (!m->body_done)
			mirror_end(m, MO_DROP, "the request ended before its body");
	}
}

void mirror_worker_free(struct worker *w)
{
	struct mirror_state *ms = w->mirror;
	struct mirror *m;

	if (ms == NULL)
		return;
	/* The loop has ended, so every connection, and every exchange with it, is gone: no
	 * list still points at these. */
	while ((m = LIST_FIRST(&ms->inflight)) != NULL) {
		struct h2up_stream *hs = m->h2;

		m->h2 = NULL;
		connpool_close(mirror_detach(m));
		if (hs != NULL)
			h2up_stream_close(hs, false); /* freed with its connection, next */
		mirror_destroy(m);
	}
	while ((m = ms->free) != NULL) {
		ms->free = m->next;
		mirror_destroy(m);
	}
	free(ms);
	w->mirror = NULL;
}
