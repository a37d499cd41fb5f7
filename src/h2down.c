#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <nghttp2/nghttp2.h>

#include "conn.h"
#include "errors.h"
#include "exchange.h"
#include "h2conv.h"
#include "h2down.h"
#include "h2head.h"
#include "http1.h"
#include "log.h"
#include "memcache.h"
#include "metrics.h"
#include "request.h"
#include "snapshot.h"
#include "stream.h"
#include "worker.h"

/* SETTINGS_MAX_CONCURRENT_STREAMS, HAProxy's and nginx's default. */
#define MAX_STREAMS 100
/* Streams whose exchange is still ending may outlive their HTTP/2 state (a reset): past
 * this many live ones new streams are refused. */
#define MAX_LIVE (2 * MAX_STREAMS)
/* Request body the client may send ahead of the exchange reading it: per stream, and for
 * the whole connection (this bounds the memory of a connection's uploads). */
#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW (1024 * 1024)
/* Response bytes taken from an exchange that wait for the client's window, per stream:
 * past it the exchange's output stays full, and it stops reading its upstream. */
#define BODY_CAP (64 * 1024)
/* Frames queued on the socket before we wait for it to drain. */
#define SEND_HIGH (256 * 1024)
/* Response heads come from meshgate itself (proxy.c, local_reply.c): these only bound a
 * bug. */
#define RESP_HEAD_MAX (1024 * 1024)
#define RESP_HEADERS_MAX 512
/* Request body still coming after the response ended is read and dropped up to this
 * much, so the client can finish its upload, as nginx lets it (curl 7.88 fails a transfer
 * whose stream is reset before its upload ends, even after a whole response); past it the
 * stream is reset (NO_ERROR, RFC 9113 §8.1). */
#define DISCARD_MAX (1024 * 1024)
/* Fields of one request header block, at most (maxHeaders applies below it). */
#define REQ_FIELDS_MAX 512

struct h2down_stream {
	struct h2down *h2;
	TAILQ_ENTRY(h2down_stream) entry;
	struct stream_pipe pipe; /* the callbacks of the exchange's side */
	struct stream *st;       /* the pipe, NULL once its connection closed */
	struct conn *c;          /* that connection */
	int32_t id;

	/* request */
	struct h2head_req req;
	bool trailers_sent; /* the last chunk went into the pipe */
	size_t unconsumed;  /* DATA bytes in the pipe not yet acknowledged to the client */
	size_t discarded;   /* DATA bytes dropped: nobody reads them */

	/* response */
	struct evbuffer *body;     /* waiting for DATA frames */
	struct evbuffer *trailers; /* field lines of a chunked response's trailer section */
	struct http1_chunked chunk;
	enum http1_body_kind resp_kind;
	uint64_t resp_remaining;
	bool resp_head_done, resp_ended, deferred;
	bool end_sent;  /* our END_STREAM left */
	bool h2_closed; /* nghttp2 is done with the stream */
};

TAILQ_HEAD(h2down_streams, h2down_stream);

/* A field of the header block being received: offsets into h2down.blk. */
struct blk_field {
	uint32_t name, name_len, value, value_len;
};

struct h2down {
	struct conn *c;
	nghttp2_session *sess;
	struct h2down_streams streams;
	unsigned nstreams; /* live: in nghttp2, or with an exchange still ending */
	unsigned busy;     /* depth of this module's handlers */
	bool dead;         /* close the connection once the output is flushed */
	bool closing;      /* h2down_free runs: the pipes' closed callbacks do nothing */
	bool scheduled, idle;
	struct event *flush_ev;
	const char *why;

	/* the header block being received (HEADERS and CONTINUATION of one stream arrive
	 * together, but may span reads) */
	char *blk;
	size_t blk_len, blk_cap;
	struct blk_field *fields;
	size_t nfields, fields_cap;
	bool blk_too_large;
	size_t blk_max_bytes, blk_max_fields; /* the limits, read when the block began */
};

static __thread struct http1_header resp_slots[RESP_HEADERS_MAX];
static __thread nghttp2_nv resp_nv[RESP_HEADERS_MAX + 1];
static __thread char *resp_lower;
static __thread size_t resp_lower_cap;

static void h2down_leave(struct h2down *h2);

static const struct cfg_main *h2down_main(const struct h2down *h2)
{
	const struct snapshot *s = h2->c->w->cur != NULL ? h2->c->w->cur->snap : NULL;

	return s != NULL ? &s->set->main : NULL;
}

static void h2down_schedule(struct h2down *h2)
{
	if (!h2->scheduled && !h2->closing) {
		h2->scheduled = true;
		event_active(h2->flush_ev, EV_TIMEOUT, 0);
	}
}

static void h2down_reset(struct h2down_stream *hs, uint32_t code)
{
	if (!hs->h2_closed)
		nghttp2_submit_rst_stream(hs->h2->sess, NGHTTP2_FLAG_NONE, hs->id, code);
	hs->resp_ended = true;
	h2down_schedule(hs->h2);
}

static void h2down_stream_free(struct h2down_stream *hs)
{
	struct h2down *h2 = hs->h2;

	TAILQ_REMOVE(&h2->streams, hs, entry);
	h2->nstreams--;
	if (hs->body != NULL)
		evbuffer_free(hs->body);
	if (hs->trailers != NULL)
		evbuffer_free(hs->trailers);
	memcache_free(hs);
}

/* ---- response: the HTTP/1.1 bytes the exchange writes -> HEADERS and DATA ---- */

/* Send the trailer section (lines http1.c validated, proxy.c filtered) as HEADERS with
 * END_STREAM.  False when there is none to send. */
static bool h2down_submit_trailers(struct h2down_stream *hs)
{
	nghttp2_nv nv[64];
	size_t n = 0, len;
	char *p, *end;

	if (hs->trailers == NULL || (len = evbuffer_get_length(hs->trailers)) == 0)
		return false;
	p = (char *)evbuffer_pullup(hs->trailers, (ev_ssize_t)len);
	end = p + len;
	while (p < end && n < sizeof(nv) / sizeof(nv[0])) {
		char *eol = memchr(p, '\r', (size_t)(end - p)), *colon, *v, *ve;

		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL) {
			for (char *k = p; k < colon; k++)
				if (*k >= 'A' && *k <= 'Z')
					*k = (char)(*k - 'A' +
						    'a'); /* HTTP/2 names are lower case */
			v = colon + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, (size_t)(colon - p),
					       (size_t)(ve - v), NGHTTP2_NV_FLAG_NONE};
		}
		p = eol + 2;
	}
	return n > 0 && nghttp2_submit_trailer(hs->h2->sess, hs->id, nv, n) == 0;
}

static ssize_t h2down_data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
				uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2down_stream *hs = src->ptr;
	int n = evbuffer_remove(hs->body, buf, len);

	(void)s;
	(void)id;
	(void)ud;
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (hs->st != NULL && evbuffer_get_length(hs->body) < BODY_CAP / 2)
		stream_pipe_writable(hs->st); /* the exchange may write more */
	if (hs->resp_ended && evbuffer_get_length(hs->body) == 0) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		/* gRPC's status comes here: the trailers end the stream instead */
		if (h2down_submit_trailers(hs))
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		return n;
	}
	if (n == 0) {
		hs->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return n;
}

/* Submit the final response head in resp_nv[0..n) (":status" first), the body framed as
 * hs->resp_kind says.  False when out of memory. */
static bool h2down_submit_head(struct h2down_stream *hs, size_t n)
{
	nghttp2_data_provider prd;
	bool end = hs->resp_kind == HTTP1_BODY_NONE ||
		   (hs->resp_kind == HTTP1_BODY_LENGTH && hs->resp_remaining == 0);

	if (!end && hs->body == NULL && (hs->body = evbuffer_new()) == NULL)
		return false;
	prd.source.ptr = hs;
	prd.read_callback = h2down_data_read;
	/* nghttp2 copies the fields: the scratch space is free again on return */
	if (nghttp2_submit_response(hs->h2->sess, hs->id, resp_nv, n, end ? NULL : &prd) != 0)
		end = true; /* the stream is gone: what follows is dropped */
	hs->resp_head_done = true;
	hs->resp_ended = end;
	return true;
}

/* resp_lower holds at least n bytes.  False when out of memory. */
static bool h2down_lower_room(size_t n)
{
	char *p;

	if (resp_lower_cap >= n)
		return true;
	if ((p = realloc(resp_lower, n)) == NULL)
		return false;
	resp_lower = p;
	resp_lower_cap = n;
	return true;
}

/* Parse the response head at the front of out and submit it.  1: done, 0: incomplete, -1:
 * not a response head (a bug: the stream is reset). */
static int h2down_response_head(struct h2down_stream *hs, struct evbuffer *out)
{
	struct http1_limits lim = {RESP_HEAD_MAX, RESP_HEAD_MAX, RESP_HEADERS_MAX};
	struct http1_response resp;
	size_t len = evbuffer_get_length(out);
	const char *buf, *why = NULL;
	char status[3];
	int hl, n;

	if (len > RESP_HEAD_MAX)
		len = RESP_HEAD_MAX;
	buf = (const char *)evbuffer_pullup(out, (ev_ssize_t)len);
	memset(&resp, 0, sizeof(resp));
	resp.headers = resp_slots;
	hl = http1_parse_response(buf, len, &lim, &resp, &why);
	if (hl == MG_AGAIN)
		return 0;
	if (hl < 0 ||
	    http1_response_framing(&resp, hs->req.head ? "HEAD" : "GET", hs->req.head ? 4 : 3,
				   &hs->resp_kind, &hs->resp_remaining, &why) != 0) {
		log_warnx("HTTP/2 stream %d: unreadable response head: %s", hs->id,
			  why != NULL ? why : "?");
		return -1;
	}
	if (!h2down_lower_room((size_t)hl))
		return -1;
	n = h2head_response(&resp, status, resp_lower, resp_nv, RESP_HEADERS_MAX + 1);
	if (n < 0)
		return -1;
	if (resp.status >= 100 && resp.status < 200) {
		/* interim: only 100-continue means something to an HTTP/2 client */
		if (resp.status == 100)
			nghttp2_submit_headers(hs->h2->sess, NGHTTP2_FLAG_NONE, hs->id, NULL,
					       resp_nv, (size_t)n, NULL);
		evbuffer_drain(out, (size_t)hl);
		return 1;
	}
	if (!h2down_submit_head(hs, (size_t)n))
		return -1;
	evbuffer_drain(out, (size_t)hl);
	return 1;
}

/* Decode the body bytes at the front of out into hs->body, up to cap waiting.  False when
 * the framing is broken (a bug: the stream is reset). */
static bool h2down_response_body(struct h2down_stream *hs, struct evbuffer *out, size_t cap)
{
	while (!hs->resp_ended && evbuffer_get_length(out) > 0 &&
	       evbuffer_get_length(hs->body) < cap) {
		size_t room = cap - evbuffer_get_length(hs->body);
		size_t avail = evbuffer_get_length(out), n = avail < room ? avail : room;

		if (hs->resp_kind == HTTP1_BODY_LENGTH) {
			if (n > hs->resp_remaining)
				n = (size_t)hs->resp_remaining;
			evbuffer_remove_buffer(out, hs->body, n);
			hs->resp_remaining -= n;
			hs->resp_ended = hs->resp_remaining == 0;
		} else if (hs->resp_kind == HTTP1_BODY_CHUNKED) {
			size_t chunk = avail < 65536 ? avail : 65536, off = 0;
			const char *buf = (const char *)evbuffer_pullup(out, (ev_ssize_t)chunk);

			while (off < chunk && !hs->chunk.done) {
				const char *data = NULL, *why = NULL;
				size_t dlen = 0;
				ssize_t k = http1_chunked_step(&hs->chunk, buf + off, chunk - off,
							       &data, &dlen, &why);

				if (k < 0)
					return false;
				if (k == 0)
					break;
				if (dlen > 0)
					evbuffer_add(hs->body, data, dlen);
				if (hs->chunk.trailers_len > 0) {
					if (hs->trailers == NULL &&
					    (hs->trailers = evbuffer_new()) == NULL)
						return false;
					evbuffer_add(hs->trailers, hs->chunk.trailers,
						     hs->chunk.trailers_len);
				}
				off += (size_t)k;
			}
			evbuffer_drain(out, off);
			hs->resp_ended = hs->chunk.done != 0;
			if (off == 0)
				break;
		} else {
			evbuffer_remove_buffer(out, hs->body, n); /* until the exchange ends */
		}
	}
	return true;
}

/* Take what the exchange wrote: the head, then body bytes while fewer than cap wait. */
static void h2down_take(struct h2down_stream *hs, struct evbuffer *out, size_t cap)
{
	size_t before = hs->body != NULL ? evbuffer_get_length(hs->body) : 0;

	while (!hs->resp_head_done && evbuffer_get_length(out) > 0) {
		int r = h2down_response_head(hs, out);

		if (r == 0)
			return;
		if (r < 0) {
			h2down_reset(hs, NGHTTP2_INTERNAL_ERROR);
			break;
		}
	}
	if (hs->resp_head_done && hs->body != NULL && !h2down_response_body(hs, out, cap))
		h2down_reset(hs, NGHTTP2_INTERNAL_ERROR);
	if (hs->resp_ended)
		evbuffer_drain(out, evbuffer_get_length(out)); /* nothing may follow a response */
	if (hs->deferred &&
	    (hs->resp_ended || (hs->body != NULL && evbuffer_get_length(hs->body) > before))) {
		hs->deferred = false;
		nghttp2_session_resume_data(hs->h2->sess, hs->id);
	}
	h2down_schedule(hs->h2);
}

/* ---- a response head handed over as fields (h2down.h) ---- */

struct h2down_head {
	struct h2down_stream *hs;
	size_t n;          /* fields in resp_nv, ":status" first */
	size_t name_bytes; /* their names' length */
	char status[3];
};

static __thread struct h2down_head head_builder;

static struct h2down_stream *pipe_stream(struct stream_pipe *p);

struct h2down_head *h2down_head_begin(struct conn *c, int status, size_t fields)
{
	struct h2down_head *h = &head_builder;
	struct stream_pipe *p;

	/* bytes the exchange wrote before (an interim head) must reach the client first */
	if (!c->h2_stream || status < 200 || status > 599 || fields >= RESP_HEADERS_MAX ||
	    (p = stream_pipe_of(c->st)) == NULL || stream_output_len(c->st) > 0)
		return NULL;
	h->hs = pipe_stream(p);
	if (h->hs->resp_head_done || h->hs->h2_closed)
		return NULL; /* the byte path drops what a reset stream is sent */
	h->status[0] = (char)('0' + status / 100);
	h->status[1] = (char)('0' + status / 10 % 10);
	h->status[2] = (char)('0' + status % 10);
	resp_nv[0] =
	    (nghttp2_nv){(uint8_t *)":status", (uint8_t *)h->status, 7, 3, NGHTTP2_NV_FLAG_NONE};
	h->n = 1;
	h->name_bytes = 0;
	return h;
}

void h2down_head_field(struct h2down_head *h, const char *name, size_t nlen, const char *value,
		       size_t vlen)
{
	if (h->n > RESP_HEADERS_MAX)
		return; /* begin() was told fewer fields: h2down_head_end() resets the stream */
	resp_nv[h->n++] =
	    (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
	h->name_bytes += nlen;
}

void h2down_head_end(struct h2down_head *h, enum http1_body_kind kind, uint64_t remaining)
{
	struct h2down_stream *hs = h->hs;
	size_t n;

	hs->resp_kind = kind;
	hs->resp_remaining = remaining;
	if (h->n > RESP_HEADERS_MAX || !h2down_lower_room(h->name_bytes)) {
		hs->resp_head_done = true; /* what follows in the pipe is dropped */
		h2down_reset(hs, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	/* HTTP/2 field names are lower case (RFC 9113 §8.2.1); the upstream's may not be */
	n = h2head_lower_fields(resp_nv, 1, h->n, resp_lower);
	if (!h2down_submit_head(hs, n)) {
		hs->resp_head_done = true;
		h2down_reset(hs, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	h2down_schedule(hs->h2);
}

/* ---- the pipe's callbacks (the exchange's side of a stream) ---- */

static struct h2down_stream *pipe_stream(struct stream_pipe *p)
{
	return (struct h2down_stream *)((char *)p - offsetof(struct h2down_stream, pipe));
}

static void pipe_output(struct stream_pipe *p, struct evbuffer *out)
{
	struct h2down_stream *hs = pipe_stream(p);

	if (hs->h2_closed) {
		evbuffer_drain(out, evbuffer_get_length(out)); /* the client reset it */
		return;
	}
	h2down_take(hs, out, BODY_CAP);
}

static void pipe_drained(struct stream_pipe *p, size_t n)
{
	struct h2down_stream *hs = pipe_stream(p);
	size_t credit = n < hs->unconsumed ? n : hs->unconsumed;

	/* n counts the chunk framing too: the window opens up to a few bytes per DATA frame
	 * early, which the exchange's own back-pressure (it stops reading) bounds */
	if (credit == 0 || hs->h2_closed)
		return;
	hs->unconsumed -= credit;
	nghttp2_session_consume(hs->h2->sess, hs->id, credit);
	h2down_schedule(hs->h2);
}

static void pipe_closed(struct stream_pipe *p, struct evbuffer *out)
{
	struct h2down_stream *hs = pipe_stream(p);
	struct h2down *h2 = hs->h2;

	if (hs->st == NULL)
		return; /* never handed to a connection (a refused request) */
	hs->st = NULL;
	hs->c = NULL;
	if (h2->closing)
		return;
	if (!hs->h2_closed) {
		h2down_take(hs, out, SIZE_MAX);
		if (!hs->resp_ended && hs->resp_head_done &&
		    hs->resp_kind == HTTP1_BODY_UNTIL_CLOSE) {
			hs->resp_ended = true; /* the close is the end of such a body */
			if (hs->deferred) {
				hs->deferred = false;
				nghttp2_session_resume_data(h2->sess, hs->id);
			}
		}
		if (!hs->resp_ended) /* the exchange failed mid-response */
			h2down_reset(hs, NGHTTP2_INTERNAL_ERROR);
		if (hs->unconsumed > 0) {
			/* body bytes nobody will read: give the connection window back */
			nghttp2_session_consume(h2->sess, hs->id, hs->unconsumed);
			hs->unconsumed = 0;
		}
		h2down_schedule(h2);
		return;
	}
	h2down_stream_free(hs);
	h2down_schedule(h2);
}

/* ---- request: HEADERS and DATA -> HTTP/1.1 bytes for the exchange ---- */

static int h2down_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2down *h2 = ud;
	struct h2down_stream *hs;

	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	h2->blk_len = 0;
	h2->nfields = 0;
	h2->blk_too_large = false;
	if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		/* the limits of an HTTP/1.1 head, read once per block: maxHeaderBytes counts
		 * names and values here, maxHeaders the fields, the pseudo-headers aside */
		const struct cfg_main *m = h2down_main(h2);
		size_t fields = (m != NULL ? m->limits.max_headers : 100) + 4;

		h2->blk_max_bytes = m != NULL ? m->limits.max_header_bytes : 65536;
		h2->blk_max_fields = fields < REQ_FIELDS_MAX ? fields : REQ_FIELDS_MAX;
	}
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (h2->nstreams >= MAX_LIVE || (hs = memcache_calloc(1, sizeof(*hs))) == NULL) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	hs->h2 = h2;
	hs->id = f->hd.stream_id;
	hs->pipe.output = pipe_output;
	hs->pipe.drained = pipe_drained;
	hs->pipe.closed = pipe_closed;
	TAILQ_INSERT_TAIL(&h2->streams, hs, entry);
	h2->nstreams++;
	nghttp2_session_set_stream_user_data(s, hs->id, hs);
	return 0;
}

static int h2down_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
			    size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	struct h2down *h2 = ud;
	size_t need = h2->blk_len + nlen + vlen;

	(void)s;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    nghttp2_session_get_stream_user_data(s, f->hd.stream_id) == NULL || h2->blk_too_large)
		return 0;
	if (need > h2->blk_max_bytes || h2->nfields >= h2->blk_max_fields) {
		h2->blk_too_large = true;
		return 0;
	}
	if (need > h2->blk_cap) {
		size_t cap = h2->blk_cap > 0 ? h2->blk_cap : 4096;
		char *p;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(h2->blk, cap)) == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		h2->blk = p;
		h2->blk_cap = cap;
	}
	if (h2->nfields == h2->fields_cap) {
		size_t cap = h2->fields_cap > 0 ? h2->fields_cap * 2 : 32;
		struct blk_field *p = realloc(h2->fields, cap * sizeof(*p));

		if (p == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		h2->fields = p;
		h2->fields_cap = cap;
	}
	h2->fields[h2->nfields++] = (struct blk_field){
	    (uint32_t)h2->blk_len, (uint32_t)nlen, (uint32_t)(h2->blk_len + nlen), (uint32_t)vlen};
	memcpy(h2->blk + h2->blk_len, name, nlen);
	memcpy(h2->blk + h2->blk_len + nlen, value, vlen);
	h2->blk_len = need;
	return 0;
}

/* The received block as fields (pointing into h2->blk), in a scratch array. */
static size_t h2down_block(struct h2down *h2, struct h2head_field *out, size_t max)
{
	size_t n = h2->nfields < max ? h2->nfields : max;

	for (size_t i = 0; i < n; i++) {
		const struct blk_field *b = &h2->fields[i];

		out[i] = (struct h2head_field){h2->blk + b->name, b->name_len, h2->blk + b->value,
					       b->value_len};
	}
	return n;
}

/* The access log line of a request refused before it became an exchange: its method and
 * path when the block named them, flag DPE (a downstream protocol error, as Envoy says). */
static void h2down_log_refused(struct h2down *h2, int status, const char *why)
{
	struct exchange *ex = request_new(h2->c);

	if (ex == NULL)
		return;
	for (size_t i = 0; i < h2->nfields; i++) { /* those before the limit */
		const struct blk_field *b = &h2->fields[i];
		const char *name = h2->blk + b->name, *value = h2->blk + b->value;

		if (b->name_len == 7 && memcmp(name, ":method", 7) == 0)
			ex->method = exchange_keep(ex, value, b->value_len < 64 ? b->value_len : 64,
						   &ex->method_len);
		else if (b->name_len == 5 && memcmp(name, ":path", 5) == 0)
			ex->path = exchange_keep(
			    ex, value, b->value_len < 1024 ? b->value_len : 1024, &ex->path_len);
	}
	ex->status = status;
	ex->details = why;
	exchange_flag(ex, "DPE");
	request_finish(ex);
}

/* Answer a request the exchange never sees: a header block over the limits (431, as an
 * HTTP/1.1 client gets) or a malformed one (400, then the stream is reset: RFC 9113
 * §8.1.1 makes it a stream error). */
static void h2down_refuse(struct h2down_stream *hs, int status, const char *why)
{
	char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
			(char)('0' + status % 10)};
	nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, NGHTTP2_NV_FLAG_NONE},
	};
	struct worker *w = hs->h2->c->w;

	METRIC_INC(&w->metrics, downstream_rq_total);
	METRIC_INC(&w->metrics, downstream_rq_bad_request);
	log_info("HTTP/2 stream %d refused with %d: %s", hs->id, status, why);
	h2down_log_refused(hs->h2, status, why);
	nghttp2_submit_response(hs->h2->sess, hs->id, nv, 2, NULL);
	hs->resp_head_done = hs->resp_ended = true;
}

/* nghttp2 refused a request's header block (a field RFC 9113 §8.2 forbids, a bad
 * content-length, pseudo-headers out of order...) and resets the stream: no exchange will
 * log it, so log it here, with the fields read before the bad one. */
static int h2down_on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int lib_error,
				   void *ud)
{
	struct h2down *h2 = ud;
	struct h2down_stream *hs;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST ||
	    (hs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) == NULL ||
	    hs->st != NULL || hs->resp_head_done)
		return 0;
	hs->resp_head_done = true; /* once */
	METRIC_INC(&h2->c->w->metrics, downstream_rq_total);
	METRIC_INC(&h2->c->w->metrics, downstream_rq_bad_request);
	log_info("HTTP/2 stream %d reset: %s", hs->id, nghttp2_strerror(lib_error));
	h2down_log_refused(h2, 0, "http2_malformed_header_block");
	return 0;
}

static void h2down_request(struct h2down *h2, struct h2down_stream *hs, bool end)
{
	struct h2head_field f[REQ_FIELDS_MAX];
	size_t n;
	const char *why = NULL;
	struct stream *st;
	struct conn *c;

	if (h2->blk_too_large) {
		h2down_refuse(hs, 431, "request headers too large");
		return;
	}
	n = h2down_block(h2, f, sizeof(f) / sizeof(f[0]));
	st = stream_pipe_new(h2->c->w->sloop, &hs->pipe);
	if (st == NULL) {
		h2down_reset(hs, NGHTTP2_REFUSED_STREAM);
		return;
	}
	if (h2head_request(f, n, end, stream_input(st), &hs->req, &why) != 0) {
		stream_free(st); /* hs->st is still NULL: pipe_closed does nothing */
		h2down_refuse(hs, 400, why);
		h2down_reset(hs, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	c = conn_h2_stream_new(h2->c, st, h2);
	if (c == NULL) {
		h2down_reset(hs, NGHTTP2_REFUSED_STREAM); /* st was freed */
		return;
	}
	hs->st = st;
	hs->c = c;
	METRIC_INC(&h2->c->w->metrics, downstream_rq_http2_total);
	stream_pipe_readable(st);
}

/* The client's END_STREAM: a chunked body gets its last chunk (and trailers). */
static void h2down_request_end(struct h2down *h2, struct h2down_stream *hs, bool trailers)
{
	struct evbuffer *in;
	struct h2head_field f[REQ_FIELDS_MAX];
	const char *why = NULL;

	if (hs->st == NULL || !hs->req.chunked || hs->trailers_sent)
		return;
	hs->trailers_sent = true;
	in = stream_input(hs->st);
	evbuffer_add(in, "0\r\n", 3);
	if (trailers &&
	    h2head_trailers(f, h2down_block(h2, f, sizeof(f) / sizeof(f[0])), in, &why) != 0) {
		h2down_reset(hs, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	evbuffer_add(in, "\r\n", 2);
	stream_pipe_readable(hs->st);
}

static int h2down_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2down *h2 = ud;
	struct h2down_stream *hs;
	bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (f->hd.type == NGHTTP2_RST_STREAM)
		METRIC_INC(&h2->c->w->metrics, downstream_rq_rx_reset);
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	hs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (hs == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		h2down_request(h2, hs, end);
	else if (end)
		h2down_request_end(h2, hs, f->hd.type == NGHTTP2_HEADERS);
	return 0;
}

static int h2down_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			  size_t len, void *ud)
{
	struct h2down_stream *hs = nghttp2_session_get_stream_user_data(s, id);
	struct evbuffer *in;

	(void)flags;
	(void)ud;
	if (hs == NULL || hs->st == NULL || hs->trailers_sent) {
		/* nobody reads it */
		if (hs != NULL && (hs->discarded += len) > DISCARD_MAX) {
			/* the connection's window stays open for the other streams */
			nghttp2_session_consume_connection(s, len);
			if (hs->end_sent)
				nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id,
							  NGHTTP2_NO_ERROR);
			return 0;
		}
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	in = stream_input(hs->st);
	if (hs->req.chunked) {
		char line[HTTP1_CHUNK_SIZE_LINE];

		evbuffer_add(in, line, http1_chunk_size_line(len, line));
		evbuffer_add(in, data, len);
		evbuffer_add(in, "\r\n", 2);
	} else {
		evbuffer_add(in, data, len);
	}
	hs->unconsumed += len;
	stream_pipe_readable(hs->st);
	return 0;
}

static int h2down_on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2down *h2 = ud;
	struct h2down_stream *hs;

	/* nghttp2 ends a connection that breaks its limits with GOAWAY, among them a flood of
	 * streams the client resets at once (CVE-2023-44487, "rapid reset"): say so. */
	if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
	    !h2->dead /* h2down_read_cb logged the error it found */) {
		char peer[CONN_ADDR_TEXT];

		conn_peer_text(h2->c, true, peer);
		log_info("HTTP/2 client %s: GOAWAY %s sent after stream %d (a protocol error or a "
			 "flood of resets)",
			 peer, nghttp2_http2_strerror(f->goaway.error_code),
			 f->goaway.last_stream_id);
		METRIC_INC(&h2->c->w->metrics, downstream_cx_http2_goaway_error);
		h2->why = "HTTP/2 GOAWAY with an error sent";
	}
	/* nghttp2 resets a stream whose frames break RFC 9113 (a body longer or shorter than
	 * its content-length, a bad trailer section): its exchange ends as a downstream
	 * protocol error, not as a client that went away. */
	if (f->hd.type == NGHTTP2_RST_STREAM &&
	    f->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR &&
	    (hs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) != NULL &&
	    hs->c != NULL)
		hs->c->h2_malformed = true;
	if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
	    (hs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) == NULL)
		return 0;
	hs->end_sent = true;
	/* RFC 9113 §8.1: the response is complete while the request body still comes: past
	 * what is worth reading, RST_STREAM NO_ERROR tells the client to stop sending it. */
	if (hs->discarded > DISCARD_MAX &&
	    nghttp2_session_get_stream_remote_close(s, f->hd.stream_id) == 0)
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static int h2down_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct h2down_stream *hs = nghttp2_session_get_stream_user_data(s, id);

	(void)code;
	(void)ud;
	if (hs == NULL)
		return 0;
	hs->h2_closed = true;
	hs->deferred = false;
	if (hs->st == NULL) {
		h2down_stream_free(hs);
		return 0;
	}
	/* A reset, or our own end before the exchange is done with its connection: the
	 * exchange ends as if its client had gone (DC), when the loop round ends. */
	stream_pipe_fail(hs->st);
	return 0;
}

/* ---- the connection ---- */

static void h2down_send(struct h2down *h2)
{
	struct stream *st = h2->c->st;

	while (!h2->closing && stream_output_len(st) < SEND_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h2->sess, &data);

		if (n < 0) {
			h2->dead = true;
			h2->why = nghttp2_strerror((int)n);
			return;
		}
		if (n == 0)
			break;
		evbuffer_add(stream_output(st), data, (size_t)n);
	}
}

static void h2down_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2down *h2 = arg;

	(void)fd;
	(void)what;
	h2->scheduled = false;
	h2->busy++;
	h2down_send(h2);
	h2down_leave(h2);
}

/* The end of each of this module's handlers: the idle timeout follows the stream count,
 * and a finished session closes its connection once the output is flushed. */
static void h2down_leave(struct h2down *h2)
{
	struct conn *c = h2->c;

	if (--h2->busy > 0)
		return;
	if (!h2->dead && !nghttp2_session_want_read(h2->sess) &&
	    !nghttp2_session_want_write(h2->sess)) {
		h2->dead = true;
		h2->why = "HTTP/2 session over";
	}
	if (h2->dead) {
		if (stream_output_len(c->st) == 0) {
			conn_close(c, h2->why != NULL ? h2->why : "HTTP/2 connection closed");
			return;
		}
		/* the write callback closes it once the output is sent; the idle timeout if
		 * that never happens */
		if (!h2->idle) {
			h2->idle = true;
			conn_h2_idle(c, true);
		}
		return;
	}
	if ((h2->nstreams == 0) != h2->idle) {
		h2->idle = h2->nstreams == 0;
		conn_h2_idle(c, h2->idle);
	}
}

static void h2down_read_cb(struct stream *st, void *arg)
{
	struct h2down *h2 = arg;
	struct evbuffer *in = stream_input(st);

	h2->busy++;
	while (!h2->dead && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = nghttp2_session_mem_recv(h2->sess, v.iov_base, v.iov_len);
		if (n < 0) {
			char peer[CONN_ADDR_TEXT];

			conn_peer_text(h2->c, true, peer);
			log_info("HTTP/2 client %s: %s", peer, nghttp2_strerror((int)n));
			/* a GOAWAY may be queued: it goes out before the close */
			h2->dead = true;
			h2->why = "HTTP/2 protocol error";
			break;
		}
		evbuffer_drain(in, (size_t)n);
	}
	if (h2->dead)
		evbuffer_drain(in, evbuffer_get_length(in));
	h2down_send(h2);
	h2down_leave(h2);
}

static void h2down_write_cb(struct stream *st, void *arg)
{
	struct h2down *h2 = arg;

	(void)st;
	h2->busy++;
	h2down_send(h2);
	h2down_leave(h2);
}

static void h2down_event_cb(struct stream *st, short what, void *arg)
{
	struct h2down *h2 = arg;

	(void)st;
	h2->busy++;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if (what & BEV_EVENT_EOF)
			METRIC_INC(&h2->c->w->metrics, downstream_cx_destroy_remote);
		h2->dead = true;
		h2->why = (what & BEV_EVENT_EOF) ? "client closed" : "client error";
		stream_disable(h2->c->st, EV_READ);
		/* nothing more can reach the client: do not wait for the output */
		evbuffer_drain(stream_output(h2->c->st), stream_output_len(h2->c->st));
	}
	h2down_leave(h2);
}

int h2down_sniff(struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in),
	       n = len < NGHTTP2_CLIENT_MAGIC_LEN ? len : NGHTTP2_CLIENT_MAGIC_LEN;
	const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);

	if (p == NULL || memcmp(p, NGHTTP2_CLIENT_MAGIC, n) != 0)
		return -1;
	return n == NGHTTP2_CLIENT_MAGIC_LEN ? 1 : 0;
}

/* The session copies them: made per connection, freed at once. */
static nghttp2_session_callbacks *h2down_callbacks(void)
{
	nghttp2_session_callbacks *cbs = NULL;

	if (nghttp2_session_callbacks_new(&cbs) == 0) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
									h2down_on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cbs, h2down_on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2down_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2down_on_data);
		nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2down_on_frame_send);
		nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
		    cbs, h2down_on_invalid_frame);
		nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2down_on_close);
	}
	return cbs;
}

int h2down_start(struct conn *c)
{
	const struct cfg_main *m;
	nghttp2_session_callbacks *cbs = h2down_callbacks();
	nghttp2_option *opt = NULL;
	struct h2down *h2 = calloc(1, sizeof(*h2));
	nghttp2_settings_entry iv[3];
	int rc;

	if (h2 == NULL || cbs == NULL || nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		free(h2);
		return -1;
	}
	h2->c = c;
	TAILQ_INIT(&h2->streams);
	m = h2down_main(h2);
	/* window updates follow the exchanges' reading (back-pressure) */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	rc = nghttp2_session_server_new3(&h2->sess, cbs, h2, opt, memcache_nghttp2());
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	h2->flush_ev = rc == 0 ? event_new(c->w->base, -1, 0, h2down_flush_cb, h2) : NULL;
	if (h2->flush_ev == NULL) {
		if (rc == 0)
			nghttp2_session_del(h2->sess);
		free(h2);
		return -1;
	}
	iv[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS};
	iv[1] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW};
	iv[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
					 m != NULL ? (uint32_t)m->limits.max_header_bytes : 65536};
	nghttp2_submit_settings(h2->sess, NGHTTP2_FLAG_NONE, iv, 3);
	nghttp2_session_set_local_window_size(h2->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	c->h2 = h2;
	METRIC_INC(&c->w->metrics, downstream_cx_http2_total);
	stream_setcb(c->st, h2down_read_cb, h2down_write_cb, h2down_event_cb, h2);
	stream_enable(c->st, EV_READ | EV_WRITE);
	/* the preface, maybe more, is already in the input */
	h2down_read_cb(c->st, h2);
	return 0;
}

void h2down_free(struct h2down *h2)
{
	struct h2down_stream *hs;

	if (h2 == NULL)
		return;
	h2->closing = true;
	/* the exchanges end as when a client goes away mid-request (DC) */
	while ((hs = TAILQ_FIRST(&h2->streams)) != NULL) {
		TAILQ_REMOVE(&h2->streams, hs, entry);
		if (hs->c != NULL)
			conn_abort(hs->c, "client connection closed");
		if (hs->body != NULL)
			evbuffer_free(hs->body);
		if (hs->trailers != NULL)
			evbuffer_free(hs->trailers);
		memcache_free(hs);
	}
	nghttp2_session_del(h2->sess);
	event_free(h2->flush_ev);
	free(h2->blk);
	free(h2->fields);
	h2->c->h2 = NULL;
	free(h2);
}

void h2down_drain(struct h2down *h2)
{
	h2->busy++;
	nghttp2_submit_goaway(h2->sess, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h2->sess), NGHTTP2_NO_ERROR,
			      NULL, 0);
	h2down_send(h2);
	h2down_leave(h2);
}

void h2down_idle_timeout(struct h2down *h2)
{
	if (h2->dead) {
		/* the last frames never left: the client does not read */
		conn_close(h2->c, "timeout sending the last HTTP/2 frames");
		return;
	}
	h2->busy++;
	if (h2->nstreams == 0)
		nghttp2_session_terminate_session(h2->sess, NGHTTP2_NO_ERROR);
	h2down_send(h2);
	h2down_leave(h2);
}

struct conn *h2down_conn(const struct h2down *h2)
{
	return h2->c;
}

void h2down_thread_cleanup(void)
{
	free(resp_lower);
	resp_lower = NULL;
	resp_lower_cap = 0;
}
