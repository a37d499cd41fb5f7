#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <nghttp2/nghttp2.h>

#include "clock.h"
#include "config/model.h"
#include "connpool.h"
#include "h2conv.h"
#include "h2up.h"
#include "http1.h"
#include "log.h"
#include "memcache.h"
#include "metrics.h"
#include "snapshot.h"
#include "stream.h"
#include "worker.h"

/* Flow control is the back-pressure: a stream holds at most STREAM_WINDOW response bytes
 * the exchange has not taken, a connection CONN_WINDOW. */
#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW (4 * 1024 * 1024)
/* Request body decoded and waiting for the send window, per stream: past it the bytes stay
 * in the output, whose length proxy.c watches. */
#define BODY_CAP (256 * 1024)
/* The output drained to this: the exchange may add more (proxy.c's BP_LOW). */
#define OUT_LOW (256 * 1024)
/* Frames queued on the socket before we wait for it to drain. */
#define SEND_HIGH (512 * 1024)
#define MAX_NV 300

struct h2up_stream {
	struct h2up_conn *hc;
	TAILQ_ENTRY(h2up_stream) entry;  /* hc->streams, then hc->gc */
	TAILQ_ENTRY(h2up_stream) notify; /* hc->notify while a callback is due */
	bool queued;                     /* on hc->notify */
	const struct h2up_cb *cb;        /* NULL once the exchange closed it */
	void *arg;
	int32_t id; /* 0 until HEADERS is submitted */
	struct evbuffer *out, *in;
	struct evbuffer *body;   /* decoded request body waiting for DATA */
	struct evbuffer *fields; /* response header block being translated */

	/* request: the HTTP/1.1 framing proxy.c writes */
	bool head_done, body_eof, deferred;
	struct h2conv_req req;
	uint64_t remaining;
	struct http1_chunked chunk;
	bool out_taken; /* bytes left the output since the last write callback */

	/* response */
	struct h2conv_resp resp;
	bool resp_head_done, resp_chunked, ended, bad;
	bool reading;
	size_t unconsumed; /* DATA bytes given to the exchange's input, not yet consumed */

	bool h2_closed, refused, reused;
	bool want_read, want_write;
	int event; /* pending enum h2up_event, -1 none */
	const char *why;
};

TAILQ_HEAD(h2up_stream_list, h2up_stream);

struct h2up_conn {
	struct upconn *uc;
	struct upstream_host *host;
	struct worker *w;
	struct h2up_conn *next; /* host->h2conns */
	const void *owner;      /* the cluster whose pool it is in */
	nghttp2_session *sess;
	struct h2up_stream_list streams, gc, notify;
	unsigned nstreams; /* open on this connection (attached or still on the wire) */
	unsigned total;    /* streams ever opened (maxRequestsPerConnection) */
	uint32_t max_streams, max_requests;
	uint64_t max_duration_us;
	bool ready, retired, dead, linked;
	bool settings_seen; /* the peer's first SETTINGS arrived: its stream limit is known */
	unsigned busy;      /* depth of this module's handlers: frees wait for 0 */
	unsigned wakeup;    /* stream slots freed: waiters to tell */
	struct event *flush_ev, *idle_ev;
};

static void h2up_pump(struct h2up_conn *hc);

/* Streams at once: the peer's SETTINGS_MAX_CONCURRENT_STREAMS, or maxConcurrentStreams
 * when lower. */
static uint32_t h2up_stream_limit(struct h2up_conn *hc)
{
	uint32_t peer =
	    nghttp2_session_get_remote_settings(hc->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	return hc->max_streams > 0 && hc->max_streams < peer ? hc->max_streams : peer;
}
static void h2up_leave(struct h2up_conn *hc);

/* ---- connection list of a host ---- */

static void h2up_unlink(struct h2up_conn *hc)
{
	struct h2up_conn **pp;

	if (!hc->linked)
		return;
	for (pp = &hc->host->h2conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == hc) {
			*pp = hc->next;
			break;
		}
	hc->linked = false;
}

static void h2up_schedule(struct h2up_conn *hc)
{
	event_active(hc->flush_ev, EV_TIMEOUT, 0);
}

static void h2up_queue(struct h2up_stream *hs)
{
	if (!hs->queued && hs->cb != NULL) {
		TAILQ_INSERT_TAIL(&hs->hc->notify, hs, notify);
		hs->queued = true;
	}
}

static void h2up_post(struct h2up_stream *hs, enum h2up_event ev, const char *why)
{
	if (hs->event == -1) {
		hs->event = (int)ev;
		hs->why = why;
	}
	h2up_queue(hs);
}

static void h2up_stream_free(struct h2up_stream *hs)
{
	evbuffer_free(hs->out);
	evbuffer_free(hs->in);
	evbuffer_free(hs->body);
	evbuffer_free(hs->fields);
	free(hs);
}

/* The stream is gone from the wire or never got there, and the exchange left it: its memory
 * goes when no handler of ours is on the stack. */
static void h2up_retire_stream(struct h2up_stream *hs)
{
	struct h2up_conn *hc = hs->hc;

	TAILQ_REMOVE(&hc->streams, hs, entry);
	TAILQ_INSERT_TAIL(&hc->gc, hs, entry);
	if (hs->id != 0 && !hs->h2_closed && !hc->dead)
		nghttp2_session_set_stream_user_data(hc->sess, hs->id, NULL);
	hc->nstreams--;
	hc->wakeup++;
}

/* ---- nghttp2 callbacks: they only record; the exchanges hear of it in h2up_notify ---- */

static ssize_t h2up_data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			      uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2up_stream *hs = src->ptr;
	int n = evbuffer_remove(hs->body, buf, len);

	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (hs->body_eof && evbuffer_get_length(hs->body) == 0) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return n;
	}
	if (n == 0) {
		hs->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return n;
}

static struct h2up_stream *h2up_user(nghttp2_session *s, int32_t id)
{
	struct h2up_stream *hs = nghttp2_session_get_stream_user_data(s, id);

	return hs != NULL && hs->cb != NULL ? hs : NULL;
}

static int h2up_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2up_stream *hs = h2up_user(s, f->hd.stream_id);

	if (hs == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	memset(&hs->resp, 0, sizeof(hs->resp));
	hs->resp.trailers = hs->resp_head_done;
	evbuffer_drain(hs->fields, evbuffer_get_length(hs->fields));
	return 0;
}

static int h2up_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
			  size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	struct h2up_stream *hs = h2up_user(s, f->hd.stream_id);

	if (hs == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (h2conv_resp_field(&hs->resp, hs->fields, name, nlen, value, vlen) != 0) {
		hs->bad = true;
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_PROTOCOL_ERROR);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

static void h2up_end(struct h2up_stream *hs)
{
	if (hs->ended)
		return;
	hs->ended = true;
	if (hs->resp_chunked) {
		/* the last chunk, with the trailers if the block before END_STREAM was one */
		evbuffer_add(hs->in, "0\r\n", 3);
		if (hs->resp.trailers)
			evbuffer_add_buffer(hs->in, hs->fields);
		evbuffer_add(hs->in, "\r\n", 2);
	}
	hs->want_read = true;
	h2up_queue(hs);
}

static int h2up_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2up_conn *hc = ud;
	struct h2up_stream *hs;
	bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !hc->settings_seen) {
			uint32_t max = h2up_stream_limit(hc);

			/* more slots than the one assumed until now: as many waiters may try */
			hc->settings_seen = true;
			if (max > hc->nstreams)
				hc->wakeup += max - hc->nstreams < 64 ? max - hc->nstreams : 64;
		}
		return 0;
	case NGHTTP2_GOAWAY:
		/* no new stream here; nghttp2 closes those above last_stream_id as refused */
		hc->retired = true;
		METRIC_INC(&hc->w->metrics, upstream_cx_http2_goaway);
		return 0;
	case NGHTTP2_HEADERS:
		if ((hs = h2up_user(s, f->hd.stream_id)) == NULL || hs->bad)
			return 0;
		if (!hs->resp_head_done) {
			int chunked;

			if (hs->resp.status >= 100 && hs->resp.status < 200 && !end)
				return 0; /* interim: 100-continue was answered by us */
			chunked = h2conv_resp_head(&hs->resp, hs->fields, end, hs->in);
			if (chunked < 0) {
				hs->bad = true;
				nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
							  NGHTTP2_PROTOCOL_ERROR);
				return 0;
			}
			hs->resp_head_done = true;
			hs->resp_chunked = chunked == 1;
			hs->want_read = true;
			h2up_queue(hs);
		}
		if (end)
			h2up_end(hs);
		return 0;
	case NGHTTP2_DATA:
		if (end && (hs = h2up_user(s, f->hd.stream_id)) != NULL && !hs->bad)
			h2up_end(hs);
		return 0;
	default:
		return 0;
	}
}

static int h2up_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			size_t len, void *ud)
{
	struct h2up_stream *hs = h2up_user(s, id);

	if (hs == NULL || !hs->resp_head_done || hs->bad) {
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	if (hs->resp_chunked) {
		char line[HTTP1_CHUNK_SIZE_LINE];

		evbuffer_add(hs->in, line, http1_chunk_size_line(len, line));
		evbuffer_add(hs->in, data, len);
		evbuffer_add(hs->in, "\r\n", 2);
	} else {
		evbuffer_add(hs->in, data, len);
	}
	hs->unconsumed += len;
	hs->want_read = true;
	h2up_queue(hs);
	return 0;
}

static int h2up_on_not_send(nghttp2_session *s, const nghttp2_frame *f, int err, void *ud)
{
	struct h2up_stream *hs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	/* a request that never left (GOAWAY came first): not processed */
	if (hs != NULL && f->hd.type == NGHTTP2_HEADERS)
		hs->refused = true;
	return 0;
}

static int h2up_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct h2up_stream *hs = nghttp2_session_get_stream_user_data(s, id);
	struct h2up_conn *hc = ud;

	if (hs == NULL)
		return 0;
	hs->h2_closed = true;
	if (hs->cb == NULL) {
		h2up_retire_stream(hs);
		return 0;
	}
	if (hs->ended && code == NGHTTP2_NO_ERROR)
		return 0; /* the exchange reads the end from its input */
	if (hs->refused || code == NGHTTP2_REFUSED_STREAM) {
		METRIC_INC(&hc->w->metrics, upstream_rq_refused_stream);
		h2up_post(hs, H2UP_REFUSED, "upstream refused the stream");
	} else if (hs->bad) {
		h2up_post(hs, H2UP_RESET, hs->resp.why != NULL ? hs->resp.why : "bad response");
		hs->event = (int)H2UP_RESET;
	} else {
		METRIC_INC(&hc->w->metrics, upstream_rq_rx_reset);
		h2up_post(hs, H2UP_RESET, nghttp2_http2_strerror(code));
	}
	return 0;
}

/* ---- request: HTTP/1.1 bytes from the exchange -> HEADERS and DATA ---- */

static void h2up_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct h2up_stream *hs = arg;

	if (info->n_added > 0 && hs->cb != NULL)
		h2up_schedule(hs->hc);
}

static void h2up_submit(struct h2up_conn *hc, struct h2up_stream *hs)
{
	struct evbuffer_ptr p = evbuffer_search(hs->out, "\r\n\r\n", 4, NULL);
	nghttp2_nv nv[MAX_NV];
	nghttp2_data_provider prd;
	size_t hl;
	const char *head;
	char *lower;
	int n;
	int32_t id;

	if (p.pos < 0)
		return;
	hl = (size_t)p.pos + 4;
	head = (const char *)evbuffer_pullup(hs->out, (ev_ssize_t)hl);
	lower = malloc(hl);
	n = lower != NULL && head != NULL
		? h2conv_request(head, hl, hc->uc->ssl != NULL ? "https" : "http", lower, nv,
				 MAX_NV, &hs->req)
		: -1;
	if (n < 0) {
		free(lower);
		h2up_post(hs, H2UP_RESET, "request head not translatable to HTTP/2");
		return;
	}
	hs->head_done = true;
	hs->remaining = hs->req.length;
	hs->body_eof = hs->req.kind == HTTP1_BODY_NONE ||
		       (hs->req.kind == HTTP1_BODY_LENGTH && hs->req.length == 0);
	prd.source.ptr = hs;
	prd.read_callback = h2up_data_read;
	id = nghttp2_submit_request(hc->sess, NULL, nv, (size_t)n, hs->body_eof ? NULL : &prd, hs);
	free(lower);
	evbuffer_drain(hs->out, hl);
	hs->out_taken = true;
	if (id < 0) {
		h2up_post(hs, H2UP_REFUSED, "upstream connection takes no new stream");
		return;
	}
	hs->id = id;
}

/* Decode what the exchange wrote after the head (its framing) into the body waiting for
 * DATA, up to BODY_CAP. */
static void h2up_feed(struct h2up_conn *hc, struct h2up_stream *hs)
{
	bool more = false;

	if (!hs->head_done) {
		h2up_submit(hc, hs);
		if (!hs->head_done || hs->id == 0)
			return;
	}
	while (!hs->body_eof && evbuffer_get_length(hs->out) > 0 &&
	       evbuffer_get_length(hs->body) < BODY_CAP) {
		size_t room = BODY_CAP - evbuffer_get_length(hs->body);
		size_t avail = evbuffer_get_length(hs->out);

		if (hs->req.kind == HTTP1_BODY_LENGTH) {
			size_t n = avail < room ? avail : room;

			if (n > hs->remaining)
				n = (size_t)hs->remaining;
			evbuffer_remove_buffer(hs->out, hs->body, n);
			hs->remaining -= n;
			hs->body_eof = hs->remaining == 0;
			more = true;
		} else {
			/* proxy.c's own chunk encoding: never fails, may stop mid-line */
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(hs->out, (ev_ssize_t)chunk);

			while (off < chunk && !hs->chunk.done) {
				const char *data = NULL, *why = NULL;
				size_t dlen = 0;
				ssize_t k = http1_chunked_step(&hs->chunk, buf + off, chunk - off,
							       &data, &dlen, &why);

				if (k <= 0)
					break;
				if (dlen > 0)
					evbuffer_add(hs->body, data, dlen);
				off += (size_t)k;
			}
			evbuffer_drain(hs->out, off);
			hs->body_eof = hs->chunk.done != 0;
			more = true;
			if (off == 0)
				break;
		}
		hs->out_taken = true;
	}
	if (more && hs->deferred) {
		hs->deferred = false;
		nghttp2_session_resume_data(hc->sess, hs->id);
	}
}

/* ---- connection ---- */

static void h2up_kill(struct h2up_conn *hc, enum h2up_event ev, const char *why)
{
	struct h2up_stream *hs;

	if (hc->dead)
		return;
	hc->dead = true;
	h2up_unlink(hc);
	TAILQ_FOREACH(hs, &hc->streams, entry)
	if (hs->cb != NULL)
		h2up_post(hs, ev, why);
}

static void h2up_send(struct h2up_conn *hc)
{
	while (!hc->dead && stream_output_len(hc->uc->st) < SEND_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(hc->sess, &data);

		if (n < 0) {
			h2up_kill(hc, H2UP_CLOSED, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		evbuffer_add(stream_output(hc->uc->st), data, (size_t)n);
	}
}

/* Tell the exchanges what happened, in order: bytes to read, then the output drained, then
 * an event.  A callback may close its stream (or others): they are only unlinked then. */
static void h2up_notify(struct h2up_conn *hc)
{
	struct h2up_stream *hs;

	while ((hs = TAILQ_FIRST(&hc->notify)) != NULL) {
		TAILQ_REMOVE(&hc->notify, hs, notify);
		hs->queued = false;
		if (hs->want_read && hs->reading && hs->cb != NULL &&
		    evbuffer_get_length(hs->in) > 0) {
			hs->want_read = false;
			hs->cb->read(hs->arg);
		}
		if (hs->cb != NULL && hs->reading && hs->unconsumed > 0 && !hc->dead &&
		    hs->id != 0 && !hs->h2_closed) {
			nghttp2_session_consume(hc->sess, hs->id, hs->unconsumed);
			hs->unconsumed = 0;
		}
		if (hs->want_write && hs->cb != NULL) {
			hs->want_write = false;
			hs->cb->write(hs->arg);
		}
		if (hs->event != -1 && hs->cb != NULL) {
			int ev = hs->event;

			hs->event = -1;
			hs->cb->event(hs->arg, (enum h2up_event)ev, hs->why);
		}
	}
}

static uint64_t h2up_idle_us(const struct h2up_conn *hc)
{
	const struct snapshot *s = hc->w->cur != NULL ? hc->w->cur->snap : NULL;

	if (hc->uc->idle_us > 0)
		return hc->uc->idle_us;
	return s != NULL ? s->set->main.timeouts.upstream_idle_us : 60000000;
}

static void h2up_destroy(struct h2up_conn *hc)
{
	struct h2up_stream *hs;

	h2up_unlink(hc);
	while ((hs = TAILQ_FIRST(&hc->streams)) != NULL) {
		TAILQ_REMOVE(&hc->streams, hs, entry);
		h2up_stream_free(hs);
	}
	while ((hs = TAILQ_FIRST(&hc->gc)) != NULL) {
		TAILQ_REMOVE(&hc->gc, hs, entry);
		h2up_stream_free(hs);
	}
	nghttp2_session_del(hc->sess);
	event_free(hc->flush_ev);
	event_free(hc->idle_ev);
	connpool_close(hc->uc); /* last: it may wake a waiter that looks for a connection */
	free(hc);
}

/* The end of each of this module's handlers: free what was let go, close a connection
 * that is done, wake requests that wait for a stream slot. */
static void h2up_leave(struct h2up_conn *hc)
{
	struct h2up_stream *hs;
	struct upstream_host *h = hc->host;
	unsigned wake;

	if (--hc->busy > 0)
		return;
	while ((hs = TAILQ_FIRST(&hc->gc)) != NULL) {
		TAILQ_REMOVE(&hc->gc, hs, entry);
		h2up_stream_free(hs);
	}
	if (!hc->dead && hc->nstreams == 0) {
		if (hc->retired) {
			h2up_kill(hc, H2UP_CLOSED, "upstream connection retired");
		} else if (!evtimer_pending(hc->idle_ev, NULL)) {
			uint64_t us = h2up_idle_us(hc);
			struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

			evtimer_add(hc->idle_ev, &tv);
		}
	}
	wake = hc->wakeup;
	hc->wakeup = 0;
	if (hc->dead && TAILQ_EMPTY(&hc->streams)) {
		h2up_destroy(hc); /* wakes one waiter itself */
		if (wake > 0)
			wake--;
	}
	/* a freed slot: the first request waiting for a connection to h looks again */
	while (wake-- > 0 && connpool_wake(h))
		;
}

static void h2up_pump(struct h2up_conn *hc)
{
	struct h2up_stream *hs;
	bool again = false;

	if (!hc->dead && hc->ready) {
		TAILQ_FOREACH(hs, &hc->streams, entry)
		if (hs->cb != NULL && hs->event == -1)
			h2up_feed(hc, hs);
		h2up_send(hc);
		TAILQ_FOREACH(hs, &hc->streams, entry)
		{
			if (hs->cb == NULL || hs->event != -1)
				continue;
			if (!hs->body_eof && hs->head_done &&
			    evbuffer_get_length(hs->body) < BODY_CAP &&
			    evbuffer_get_length(hs->out) > 0)
				again = true;
			if (hs->out_taken && !hs->body_eof &&
			    evbuffer_get_length(hs->out) <= OUT_LOW) {
				hs->out_taken = false;
				hs->want_write = true;
				h2up_queue(hs);
			}
		}
	}
	h2up_notify(hc);
	if (again && !hc->dead)
		h2up_schedule(hc);
}

static void h2up_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2up_conn *hc = arg;

	hc->busy++;
	h2up_pump(hc);
	h2up_leave(hc);
}

static void h2up_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2up_conn *hc = arg;

	hc->busy++;
	if (hc->nstreams == 0)
		h2up_kill(hc, H2UP_CLOSED, "idle");
	h2up_leave(hc);
}

static void h2up_read_cb(struct stream *st, void *arg)
{
	struct h2up_conn *hc = arg;
	struct evbuffer *in = stream_input(st);

	hc->busy++;
	while (!hc->dead && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = nghttp2_session_mem_recv(hc->sess, v.iov_base, v.iov_len);
		if (n < 0) {
			log_info("HTTP/2 upstream %s: %s", hc->host->name,
				 nghttp2_strerror((int)n));
			h2up_kill(hc, H2UP_CLOSED, "upstream HTTP/2 protocol error");
			break;
		}
		evbuffer_drain(in, (size_t)n);
	}
	h2up_pump(hc);
	h2up_leave(hc);
}

static void h2up_write_cb(struct stream *st, void *arg)
{
	struct h2up_conn *hc = arg;

	hc->busy++;
	h2up_pump(hc);
	h2up_leave(hc);
}

/* Over TLS: did the server pick h2? */
static bool h2up_alpn_h2(const struct h2up_conn *hc)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;

	if (hc->uc->ssl == NULL)
		return true; /* h2c with prior knowledge */
	SSL_get0_alpn_selected(hc->uc->ssl, &p, &len);
	return len == 2 && memcmp(p, "h2", 2) == 0;
}

static void h2up_event_cb(struct stream *st, short what, void *arg)
{
	struct h2up_conn *hc = arg;
	struct h2up_stream *hs;

	hc->busy++;
	if (what & BEV_EVENT_CONNECTED) {
		if (!h2up_alpn_h2(hc)) {
			/* Envoy's auto protocol: the server speaks HTTP/1.1 only */
			hc->host->h2_off = true;
			METRIC_INC(&hc->w->metrics, upstream_cx_http2_alpn_fallback);
			log_info("upstream %s did not choose h2 by ALPN: HTTP/1.1 from now on",
				 hc->host->name);
			h2up_kill(hc, H2UP_FALLBACK, "upstream chose HTTP/1.1");
		} else {
			hc->ready = true;
			TAILQ_FOREACH(hs, &hc->streams, entry)
			if (hs->cb != NULL)
				h2up_post(hs, H2UP_CONNECTED, NULL);
		}
	} else {
		h2up_kill(hc, hc->ready ? H2UP_CLOSED : H2UP_CONNECT_FAILED,
			  hc->ready ? "upstream connection closed" : "upstream connect error");
	}
	h2up_pump(hc);
	h2up_leave(hc);
}

/* The session copies them: made per connection, freed at once. */
static nghttp2_session_callbacks *h2up_callbacks(void)
{
	nghttp2_session_callbacks *cbs = NULL;

	if (nghttp2_session_callbacks_new(&cbs) == 0) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2up_on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cbs, h2up_on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2up_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2up_on_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2up_on_close);
		nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, h2up_on_not_send);
	}
	return cbs;
}

static void h2up_limits(struct h2up_conn *hc, const struct conn_pool_settings *lim)
{
	hc->max_streams = lim != NULL ? lim->max_concurrent_streams : 0;
	hc->max_requests = lim != NULL ? lim->max_requests_per_connection : 0;
	hc->max_duration_us = lim != NULL ? lim->max_connection_duration_us : 0;
}

struct h2up_conn *h2up_connect(struct connpool *p, struct upstream_host *h, const void *owner,
			       const struct conn_pool_settings *lim)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	};
	struct h2up_conn *hc = calloc(1, sizeof(*hc));
	nghttp2_session_callbacks *cbs = h2up_callbacks();
	nghttp2_option *opt = NULL;
	struct worker *w = connpool_worker(p);

	if (hc == NULL || cbs == NULL || nghttp2_option_new(&opt) != 0)
		goto fail;
	/* window updates follow what the exchanges take: that is the back-pressure */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_client_new3(&hc->sess, cbs, hc, opt, memcache_nghttp2()) != 0) {
		hc->sess = NULL;
		goto fail;
	}
	nghttp2_session_callbacks_del(cbs);
	cbs = NULL;
	nghttp2_option_del(opt);
	opt = NULL;
	if (nghttp2_submit_settings(hc->sess, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(hc->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	hc->w = w;
	hc->host = h;
	TAILQ_INIT(&hc->streams);
	TAILQ_INIT(&hc->gc);
	TAILQ_INIT(&hc->notify);
	hc->owner = owner;
	h2up_limits(hc, lim);
	hc->flush_ev = event_new(w->base, -1, 0, h2up_flush_cb, hc);
	hc->idle_ev = evtimer_new(w->base, h2up_idle_cb, hc);
	if (hc->flush_ev == NULL || hc->idle_ev == NULL)
		goto fail;
	if ((hc->uc = connpool_connect(p, h)) == NULL)
		goto fail;
	/* the ClientHello leaves once the connect completes, in a later loop round */
	if (hc->uc->ssl != NULL)
		SSL_set_alpn_protos(hc->uc->ssl, alpn, sizeof(alpn) - 1);
	stream_setcb(hc->uc->st, h2up_read_cb, h2up_write_cb, h2up_event_cb, hc);
	stream_setwatermark(hc->uc->st, EV_WRITE, SEND_HIGH / 2, 0);
	stream_enable(hc->uc->st, EV_READ | EV_WRITE);
	hc->next = h->h2conns;
	h->h2conns = hc;
	hc->linked = true;
	METRIC_INC(&w->metrics, upstream_cx_http2_total);
	return hc;
fail:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	if (hc != NULL) {
		nghttp2_session_del(hc->sess);
		if (hc->flush_ev != NULL)
			event_free(hc->flush_ev);
		if (hc->idle_ev != NULL)
			event_free(hc->idle_ev);
		free(hc);
	}
	return NULL;
}

struct upconn *h2up_conn_upconn(struct h2up_conn *hc)
{
	return hc->uc;
}

static bool h2up_room(struct h2up_conn *hc)
{
	uint32_t max = h2up_stream_limit(hc);

	/* Until the peer's SETTINGS arrive its limit is unknown (the protocol default is
	 * unlimited): one stream on a new connection, so that requests of a burst do not
	 * queue behind a peer that turns out to allow one at a time. */
	if (!hc->settings_seen && max > 1)
		max = 1;

	if (hc->max_duration_us > 0 && clock_mono_us() - hc->uc->created_us >= hc->max_duration_us)
		hc->retired = true;
	return !hc->dead && !hc->retired && hc->nstreams < max &&
	       nghttp2_session_check_request_allowed(hc->sess);
}

struct h2up_conn *h2up_find(struct upstream_host *h, const void *owner,
			    const struct conn_pool_settings *lim)
{
	struct h2up_conn *hc;

	for (hc = h->h2conns; hc != NULL; hc = hc->next) {
		if (hc->owner != owner)
			continue;
		h2up_limits(hc, lim); /* a reload may have changed them */
		if (h2up_room(hc))
			return hc;
	}
	return NULL;
}

void h2up_host_close(struct upstream_host *h)
{
	while (h->h2conns != NULL) {
		struct h2up_conn *hc = h->h2conns;

		hc->dead = true;
		h2up_destroy(hc);
	}
}

struct h2up_stream *h2up_stream_open(struct h2up_conn *hc, const struct h2up_cb *cb, void *arg,
				     bool *ready)
{
	struct h2up_stream *hs = calloc(1, sizeof(*hs));

	if (hs == NULL)
		return NULL;
	hs->out = evbuffer_new();
	hs->in = evbuffer_new();
	hs->body = evbuffer_new();
	hs->fields = evbuffer_new();
	if (hs->out == NULL || hs->in == NULL || hs->body == NULL || hs->fields == NULL) {
		h2up_stream_free(hs);
		return NULL;
	}
	evbuffer_add_cb(hs->out, h2up_out_cb, hs);
	hs->hc = hc;
	hs->cb = cb;
	hs->arg = arg;
	hs->event = -1;
	hs->reading = true;
	hs->reused = hc->ready;
	TAILQ_INSERT_TAIL(&hc->streams, hs, entry);
	hc->nstreams++;
	hc->total++;
	if (hc->max_requests > 0 && hc->total >= hc->max_requests)
		hc->retired = true; /* maxRequestsPerConnection: this is its last stream */
	evtimer_del(hc->idle_ev);
	METRIC_INC(&hc->w->metrics, upstream_rq_http2_total);
	*ready = hc->ready;
	return hs;
}

struct evbuffer *h2up_stream_output(struct h2up_stream *hs)
{
	return hs->out;
}

struct evbuffer *h2up_stream_input(struct h2up_stream *hs)
{
	return hs->in;
}

struct upconn *h2up_stream_upconn(struct h2up_stream *hs)
{
	return hs->hc->uc;
}

void h2up_stream_read(struct h2up_stream *hs, bool on)
{
	if (hs->reading == on)
		return;
	hs->reading = on;
	if (on) {
		/* what arrived meanwhile, and the window updates held back */
		hs->want_read = evbuffer_get_length(hs->in) > 0;
		h2up_queue(hs);
		h2up_schedule(hs->hc);
	}
}

void h2up_stream_close(struct h2up_stream *hs, bool complete)
{
	struct h2up_conn *hc = hs->hc;

	if (hs->cb == NULL)
		return;
	hs->cb = NULL;
	if (hs->queued) {
		TAILQ_REMOVE(&hc->notify, hs, notify);
		hs->queued = false;
	}
	evbuffer_remove_cb(hs->out, h2up_out_cb, hs);
	if (hs->id == 0 || hs->h2_closed || hc->dead) {
		h2up_retire_stream(hs);
	} else {
		/* what the exchange did not take is consumed now: the window stays open */
		if (hs->unconsumed > 0)
			nghttp2_session_consume(hc->sess, hs->id, hs->unconsumed);
		hs->unconsumed = 0;
		/* A complete response whose END_STREAM is still on its way ends by itself;
		 * anything else is cancelled.  Either way the stream counts until closed. */
		if (!complete || !hs->body_eof)
			nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, hs->id,
						  NGHTTP2_CANCEL);
	}
	h2up_schedule(hc);
}
