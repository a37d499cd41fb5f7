#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "accesslog.h"
#include "conn.h"
#include "exchange.h"
#include "h2down.h"
#include "l4proxy.h"
#include "local_reply.h"
#include "log.h"
#include "memcache.h"
#include "proxy.h"
#include "request.h"
#include "snapshot.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

/* An idle connection is this, its stream (stream.c) and nothing else: keep it in the
 * 192-byte malloc chunk. */
_Static_assert(sizeof(struct conn) <= 184, "struct conn outgrew its malloc chunk");

/* Reading stops when this much is buffered and unconsumed (pipelined requests, or body
 * bytes the upstream is not taking yet): the client's TCP window does the rest. */
#define CONN_READ_HIGH_WM (256 * 1024)

static void conn_read_cb(struct stream *st, void *arg);
static void conn_write_cb(struct stream *st, void *arg);
static void conn_event_cb(struct stream *st, short what, void *arg);
static void conn_process(struct conn *c);

/* Decimal digits of v, at most 65535, at out; returns how many. */
static size_t fmt_u16(unsigned v, char *out)
{
	char tmp[5];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < sizeof(tmp));
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t conn_addr_format(const union conn_addr *a, bool with_port, char *out)
{
	size_t n = 0;
	unsigned port;

	if (a->sa.sa_family == AF_INET) {
		/* By hand: this runs for every request (forwarded headers, access log). */
		const unsigned char *b = (const unsigned char *)&a->in.sin_addr;

		for (int i = 0; i < 4; i++) {
			if (i > 0)
				out[n++] = '.';
			n += fmt_u16(b[i], out + n);
		}
		port = ntohs(a->in.sin_port);
	} else if (a->sa.sa_family == AF_INET6) {
		if (with_port)
			out[n++] = '[';
		if (inet_ntop(AF_INET6, &a->in6.sin6_addr, out + n, INET6_ADDRSTRLEN) == NULL)
			out[n] = '\0';
		n += strlen(out + n);
		if (with_port)
			out[n++] = ']';
		port = ntohs(a->in6.sin6_port);
	} else {
		memcpy(out, "?", 2);
		return 1;
	}
	if (with_port) {
		out[n++] = ':';
		n += fmt_u16(port, out + n);
	}
	out[n] = '\0';
	return n;
}

void conn_sockaddr_format(const struct sockaddr *sa, char *ip, size_t iplen, char *full,
			  size_t fulllen)
{
	union conn_addr a;
	char buf[CONN_ADDR_TEXT];

	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET)
		memcpy(&a.in, sa, sizeof(a.in));
	else if (sa->sa_family == AF_INET6)
		memcpy(&a.in6, sa, sizeof(a.in6));
	conn_addr_format(&a, true, buf);
	snprintf(full, fulllen, "%s", buf);
	conn_addr_format(&a, false, buf);
	snprintf(ip, iplen, "%s", buf);
}

size_t conn_peer_text(const struct conn *c, bool with_port, char *out)
{
	return conn_addr_format(&c->peer, with_port, out);
}

size_t conn_local_text(struct conn *c, char *out)
{
	if (!c->local_known) {
		socklen_t len = sizeof(c->local);
		int fd = c->st != NULL ? stream_getfd(c->st) : -1;

		c->local_known = true;
		if (fd < 0 || getsockname(fd, &c->local.sa, &len) != 0)
			c->local.sa.sa_family = AF_UNSPEC;
	}
	return conn_addr_format(&c->local, true, out);
}

static const struct cfg_main *conn_main(struct conn *c)
{
	struct snapshot *s = c->w->cur != NULL ? c->w->cur->snap : NULL;

	return s != NULL ? &s->set->main : NULL;
}

static void conn_arm_timer(struct conn *c, uint64_t us)
{
	deadline_arm(c->w->conn_timeouts, &c->timeout, us);
}

static void conn_wait_idle(struct conn *c)
{
	const struct cfg_main *m = conn_main(c);

	c->wait = CW_IDLE;
	conn_arm_timer(c, m != NULL ? m->timeouts.idle_us : 60000000);
}

static const struct listener_cfg *conn_listener(const struct snapshot *s, const char *key)
{
	for (size_t i = 0; s != NULL && i < s->nlisteners; i++)
		if (strcmp(s->listeners[i].key, key) == 0)
			return &s->listeners[i];
	return NULL;
}

void conn_accept(struct worker *w, struct wlistener *wl, int fd, struct sockaddr *sa,
		 socklen_t salen)
{
	const struct listener_cfg *lc;
	const struct cfg_main *m;
	struct wsnap *ws;

	if (w->draining) {
		evutil_closesocket(fd);
		return;
	}
	/* The newest snapshot decides what this listener is; a TLS handshake or an L4 relay
	 * keeps it pinned while it reads it. */
	ws = worker_snap_pin(w);
	m = ws != NULL ? &ws->snap->set->main : NULL;
	if (m != NULL && atomic_load_explicit(&mg_total_conns, memory_order_relaxed) >=
			     m->limits.max_connections) {
		METRIC_INC(&w->metrics, downstream_cx_overflow);
		evutil_closesocket(fd);
		worker_snap_unpin(ws);
		return;
	}
	METRIC_INC(&w->metrics, downstream_cx_total);
	lc = conn_listener(ws != NULL ? ws->snap : NULL, wl->key);
	/* A PERMISSIVE port peeks the first byte as the passthrough front peeks its
	 * ClientHello; a DISABLE port does not terminate TLS at all. */
	if (lc != NULL && (lc->peek || lc->protocol == GWP_TCP || lc->mtls == PA_PERMISSIVE ||
			   m->proxy_protocol)) {
		l4proxy_accept(w, wl->key, wl->port, fd, sa, ws, lc);
		return;
	}
	conn_start(w, wl->key, wl->port, fd, sa, NULL, ws,
		   lc != NULL && lc->mtls != PA_DISABLE ? lc->tls : NULL);
	(void)salen;
}

void conn_start(struct worker *w, const char *lkey, uint32_t port, int fd,
		const struct sockaddr *sa, const struct sockaddr *local, struct wsnap *ws,
		const struct tls_sni_table *tls)
{
	struct conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		worker_snap_unpin(ws);
		return;
	}
	c->w = w;
	c->id = ++w->next_conn_id;
	c->port = (uint16_t)port;
	c->lkey = lkey;
	if (sa->sa_family == AF_INET)
		memcpy(&c->peer.in, sa, sizeof(c->peer.in));
	else if (sa->sa_family == AF_INET6)
		memcpy(&c->peer.in6, sa, sizeof(c->peer.in6));
	if (local != NULL && (local->sa_family == AF_INET || local->sa_family == AF_INET6)) {
		memcpy(&c->local, local,
		       local->sa_family == AF_INET ? sizeof(c->local.in) : sizeof(c->local.in6));
		c->local_known = true;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	if (tls != NULL && tls->front != NULL) {
		/* Server SSLs come from the listener's one server context, or from its front
		 * context whose client-hello callback switches to the server the SNI
		 * selects (tls_sni.c). */
		ERR_clear_error();
		c->ssl = SSL_new(tls->direct != NULL ? tls->direct : tls->front);
		if (c->ssl == NULL)
			evutil_closesocket(fd);
		else
			c->st = stream_tls_new(w->sloop, fd, c->ssl, true);
	} else {
		c->st = stream_socket_new(w->sloop, fd);
	}
	if (c->st == NULL) {
		/* a failed stream_*_new closed fd */
		free(c);
		worker_snap_unpin(ws);
		return;
	}
	/* The SNI table the handshake reads is snapshot memory. */
	if (c->ssl != NULL)
		c->hs_ws = ws;
	else
		worker_snap_unpin(ws);
	stream_setcb(c->st, conn_read_cb, conn_write_cb, conn_event_cb, c);
	stream_setwatermark(c->st, EV_READ, 0, CONN_READ_HIGH_WM);
	stream_enable(c->st, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&w->conns, c, entry);
	w->nconns++;
	atomic_fetch_add_explicit(&mg_total_conns, 1, memory_order_relaxed);
	conn_wait_idle(c);
}

void conn_close(struct conn *c, const char *why)
{
	struct worker *w = c->w;

	if (c->ex != NULL) {
		proxy_abort(c->ex);
		request_finish(c->ex); /* logs and frees the exchange */
		c->ex = NULL;
	}
	if (log_debug_enabled()) {
		char peer[CONN_ADDR_TEXT];

		conn_peer_text(c, true, peer);
		log_debug("conn %llu from %s closed: %s", (unsigned long long)c->id, peer, why);
	}
	deadline_cancel(&c->timeout);
	if (c->h2_stream) {
		/* the pipe's end tells the HTTP/2 session (h2down.c) */
		stream_free(c->st);
		memcache_free(c); /* conn_h2_stream_new */
		return;
	}
	LIST_REMOVE(c, entry);
	w->nconns--;
	atomic_fetch_sub_explicit(&mg_total_conns, 1, memory_order_relaxed);
	h2down_free(c->h2); /* its streams' connections first */
	if (c->ssl != NULL && c->handshake_done) {
		/* A close_notify, best effort: an SSL freed without it marks its session as
		 * not resumable. */
		SSL_set_shutdown(c->ssl, SSL_RECEIVED_SHUTDOWN);
		SSL_shutdown(c->ssl);
	}
	stream_free(c->st);
	free(c->xfcc);
	worker_snap_unpin(c->hs_ws);
	free(c);
	worker_check_drained(w);
}

/* The client side ended mid-exchange: it went away (DC), or, for an HTTP/2 stream that
 * nghttp2 reset for breaking the protocol, sent a malformed request (DPE). */
static void conn_client_gone(struct conn *c)
{
	const char *flag = c->h2_malformed ? "DPE" : "DC";
	const char *details =
	    c->h2_malformed ? "http2_stream_protocol_error" : "downstream_remote_disconnect";

	if (c->ex != NULL) {
		exchange_flag(c->ex, flag);
		c->ex->details = details;
	} else if (c->h2_stream && c->nrequests == 0 && stream_input_len(c->st) > 0) {
		/* An HTTP/2 stream reset in the same read as its header block: its request
		 * waits unread in the pipe, and is logged all the same. */
		request_log_unread(c, flag, details);
	}
}

void conn_abort(struct conn *c, const char *why)
{
	conn_client_gone(c);
	conn_close(c, why);
}

struct conn *conn_h2_stream_new(struct conn *parent, struct stream *st, struct h2down *h2)
{
	struct worker *w = parent->w;
	/* One per HTTP/2 stream, at request rate: from the worker's cache (see conn_close). */
	struct conn *c = memcache_calloc(1, sizeof(*c));

	if (c == NULL) {
		stream_free(st);
		return NULL;
	}
	c->w = w;
	c->id = ++w->next_conn_id;
	c->st = st;
	c->lkey = parent->lkey;
	c->port = parent->port;
	c->ssl = parent->ssl; /* borrowed: SNI, the client certificate, the scheme */
	c->h2 = h2;
	c->h2_stream = true;
	c->handshake_done = true;
	c->peer = parent->peer;
	if (accesslog_enabled()) {
		char text[CONN_ADDR_TEXT];

		conn_local_text(parent, text); /* once per client connection */
	}
	c->local = parent->local;
	c->local_known = parent->local_known;
	stream_setcb(st, conn_read_cb, conn_write_cb, conn_event_cb, c);
	stream_setwatermark(st, EV_READ, 0, CONN_READ_HIGH_WM);
	stream_enable(st, EV_READ | EV_WRITE);
	c->wait = CW_IDLE;
	return c;
}

void conn_h2_idle(struct conn *c, bool idle)
{
	if (idle) {
		conn_wait_idle(c);
	} else {
		deadline_cancel(&c->timeout);
		c->wait = CW_EXCHANGE;
	}
}

void conn_drain(struct conn *c)
{
	if (c->h2 != NULL) {
		h2down_drain(c->h2);
		return;
	}
	if ((c->ex == NULL && stream_output_len(c->st) == 0) || c->wait == CW_LINGER)
		conn_close(c, "draining");
	/* else: the exchange in progress answers with Connection: close, then we close. */
}

const char *conn_xfcc(struct conn *c)
{
	char buf[8192];

	if (c->h2_stream)
		return conn_xfcc(h2down_conn(c->h2)); /* one per client connection */
	if (!c->xfcc_done) {
		c->xfcc_done = true;
		if (c->ssl != NULL && tls_xfcc(c->ssl, buf, sizeof(buf)) > 0)
			c->xfcc = strdup(buf);
	}
	return c->xfcc;
}

void conn_read_more(struct conn *c)
{
	stream_enable(c->st, EV_READ);
}

/* Parse and dispatch request heads from the input buffer while no exchange is running.
 * A loop, not recursion, so a long pipeline of local replies cannot grow the stack. */
static void conn_process(struct conn *c)
{
	struct evbuffer *in = stream_input(c->st);

	while (c->ex == NULL && !c->close_after_flush) {
		if (evbuffer_get_length(in) == 0) {
			if (c->peer_eof) {
				conn_close(c, "client closed");
				return;
			}
			if (c->wait != CW_IDLE)
				conn_wait_idle(c);
			return;
		}
		if (c->nrequests == 0 && c->ssl == NULL && !c->h2_stream &&
		    c->wait != CW_EXCHANGE) {
			/* HTTP/2 with prior knowledge (h2c) starts with its preface */
			int h2 = h2down_sniff(in);

			if (h2 == 0)
				return; /* a prefix of it: wait for more */
			if (h2 == 1) {
				deadline_cancel(&c->timeout);
				if (h2down_start(c) != 0)
					conn_close(c, "out of memory");
				return;
			}
		}
		if (c->wait == CW_IDLE) {
			const struct cfg_main *m = conn_main(c);

			c->wait = CW_HEAD;
			conn_arm_timer(c, m != NULL ? m->timeouts.request_headers_us : 10000000);
		}
		switch (request_begin(c)) {
		case REQ_AGAIN:
			if (c->peer_eof)
				conn_close(c, "client closed mid-head");
			return;
		case REQ_CLOSED:
			return; /* closes once the error reply is flushed */
		case REQ_STARTED:
			deadline_cancel(&c->timeout);
			c->wait = CW_EXCHANGE;
			return;
		case REQ_DONE:
			break; /* answered locally; look for a pipelined request */
		}
	}
}

/* How long a closing connection reads what its client still sends (see conn_finish). */
#define CONN_LINGER_US 2000000

/* The last response is out and the connection closes.  A socket closed with unread input
 * makes the kernel send a reset, which can destroy that response in the client's buffers
 * before it read it (a body behind a refused head, pipelined requests).  RFC 9112 §9.6:
 * close in stages, half-close first, then read until the client closes too.  So, when
 * the client may still be sending (bytes not yet consumed, or a request whose body was
 * not read to its end): shut the write side (after a close_notify over TLS), then read
 * and discard until the client closes, for CONN_LINGER_US at most.  Otherwise, as after
 * a whole request with Connection: close, or a client that closed, close at once. */
static void conn_finish(struct conn *c, const char *why)
{
	if (c->peer_eof || c->h2 != NULL || c->w->draining ||
	    (!c->linger && stream_input_len(c->st) == 0)) {
		conn_close(c, why);
		return;
	}
	if (c->ssl != NULL && c->handshake_done) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl); /* best effort: reading goes on until its reply */
	}
	if (shutdown(stream_getfd(c->st), SHUT_WR) != 0) {
		conn_close(c, why);
		return;
	}
	c->wait = CW_LINGER;
	conn_arm_timer(c, CONN_LINGER_US);
	evbuffer_drain(stream_input(c->st), stream_input_len(c->st));
	stream_enable(c->st, EV_READ);
}

bool conn_exchange_end(struct conn *c)
{
	struct exchange *ex = c->ex;
	bool keep =
	    ex->client_keepalive && !c->w->draining && !c->peer_eof && !c->close_after_flush;

	if (!keep && !ex->req_done)
		c->linger = true; /* its body may still be coming */
	request_finish(ex);
	c->ex = NULL;
	c->nrequests++;
	if (!keep) {
		/* The reply is in the output buffer; conn_write_cb closes once it is sent. */
		c->close_after_flush = true;
		stream_disable(c->st, EV_READ);
		return false;
	}
	conn_wait_idle(c);
	return true;
}

void conn_exchange_done(struct conn *c)
{
	if (!conn_exchange_end(c)) {
		if (stream_output_len(c->st) == 0)
			conn_finish(c, "exchange done, not keep-alive");
		return;
	}
	stream_enable(c->st, EV_READ);
	conn_process(c);
}

static void conn_read_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	if (c->wait == CW_LINGER) {
		evbuffer_drain(stream_input(st), stream_input_len(st));
		return;
	}
	if (c->ex != NULL) {
		proxy_client_readable(c->ex);
		return;
	}
	conn_process(c);
}

static void conn_write_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	if (c->close_after_flush) {
		if (c->wait != CW_LINGER)
			conn_finish(c, "response flushed");
		return;
	}
	if (c->ex != NULL)
		proxy_client_drained(c->ex);
}

static void conn_event_cb(struct stream *st, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		const unsigned char *alpn = NULL;
		unsigned int alpn_len = 0;

		c->handshake_done = true; /* a TLS handshake completed */
		worker_snap_unpin(c->hs_ws);
		c->hs_ws = NULL;
		SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
		if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0 && h2down_start(c) != 0)
			conn_close(c, "out of memory");
		return;
	}

	if (c->wait == CW_LINGER) {
		/* the client closed too (or failed): the close the lingering waited for */
		conn_close(c, "closed after the response");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->peer_eof = true;
		METRIC_INC(&c->w->metrics, downstream_cx_destroy_remote);
		if (c->ex == NULL) {
			/* A half-closed client may still read: answer what is buffered first. */
			if (!c->close_after_flush)
				conn_process(c);
			return;
		}
		/* A client that closes while its response is pending has gone away: Envoy
		 * resets the stream (DC) and so do we, so the upstream stops working for
		 * nobody.  Only when pipelined requests are still buffered is the close read
		 * as a half-close that waits for the answers. */
		if (c->ex->req_done && stream_input_len(c->st) > 0)
			return;
		if (c->ex->tunnel) { /* a WebSocket client closing: the tunnel's normal end */
			proxy_tunnel_client_closed(c->ex);
			return;
		}
		conn_client_gone(c);
		conn_close(c, "client closed mid-request");
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && c->ex != NULL && !c->ex->req_done) {
		proxy_client_timeout(c->ex);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && c->ssl != NULL && !c->handshake_done) {
		char peer[CONN_ADDR_TEXT];

		METRIC_INC(&c->w->metrics, downstream_cx_ssl_handshake_error);
		c->w->metrics.tls_fail[tls_failure_kind(c->ssl)]++;
		conn_peer_text(c, true, peer);
		log_info("TLS handshake from %s failed: %s", peer, tls_failure_reason(c->ssl));
		conn_close(c, "TLS handshake failed");
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		conn_client_gone(c);
		conn_close(c, (what & BEV_EVENT_TIMEOUT) ? "client timeout" : "client error");
	}
}

void conn_timeout_fire(struct deadline *d)
{
	struct conn *c = (struct conn *)((char *)d - offsetof(struct conn, timeout));

	if (c->h2 != NULL && !c->h2_stream) {
		h2down_idle_timeout(c->h2);
		return;
	}

	if (c->wait == CW_HEAD && c->ex == NULL) {
		METRIC_INC(&c->w->metrics, downstream_rq_timeout);
		local_reply_error(c, 408, "request_header_timeout");
		return;
	}
	if (c->wait == CW_IDLE && c->ex == NULL)
		conn_close(c, "idle timeout");
	else if (c->wait == CW_LINGER)
		conn_close(c, "client did not close after the response");
}
