#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "stream.h"

/* One read asks for this much room: a 16 KiB body and its head arrive in one read, while a
 * small request costs one buffer chain of this size (allocated from the free lists once
 * the heap is warm, and freed when the request has been consumed). */
#define STREAM_READ_SIZE (32 * 1024 - 64)
/* Reads per readiness event when each one fills its room: enough to take a large burst
 * without starving the other connections of the worker. */
#define STREAM_READS_PER_EVENT 4

/* Work deferred to the end of the current callback round (see stream_later). */
#define LATER_FLUSH 0x01
#define LATER_CONNECTED 0x02
#define LATER_ERROR 0x04

struct stream {
	struct bufferevent *bev; /* TLS: the stream is a thin shell around it */
	struct evbuffer *in, *out;
	evutil_socket_t fd;
	stream_data_cb readcb, writecb;
	stream_event_cb eventcb;
	void *cbarg;
	size_t rd_high, wr_low;
	struct timeval rd_tv;
	struct event rd, wr, later;
	short enabled;
	unsigned later_what;
	int later_errno;
	bool rd_timeout_set;
	bool rd_added, wr_added, later_armed;
	bool rd_suspended; /* input at its high watermark */
	bool connecting;
	/* Callback depth and a free requested inside a callback: the stream is freed when
	 * the outermost callback returns. */
	unsigned busy;
	bool dead;
};

static void stream_destroy(struct stream *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
	} else {
		event_del(&s->rd);
		event_del(&s->wr);
		event_del(&s->later);
		evbuffer_free(s->in);
		evbuffer_free(s->out);
		if (s->fd >= 0)
			evutil_closesocket(s->fd);
	}
	free(s);
}

/* Around every user callback: returns false when the stream was freed inside it (the
 * caller must then not touch it). */
static void stream_enter(struct stream *s)
{
	s->busy++;
}

static bool stream_leave(struct stream *s)
{
	if (--s->busy == 0 && s->dead) {
		stream_destroy(s);
		return false;
	}
	return !s->dead;
}

void stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	if (s->busy > 0) {
		/* Inside one of its callbacks: stop everything now, free on the way out. */
		s->dead = true;
		s->readcb = s->writecb = NULL;
		s->eventcb = NULL;
		if (s->bev != NULL) {
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		} else {
			event_del(&s->rd);
			event_del(&s->wr);
			event_del(&s->later);
		}
		return;
	}
	stream_destroy(s);
}

static void stream_event(struct stream *s, short what)
{
	if (s->eventcb == NULL)
		return;
	stream_enter(s);
	s->eventcb(s, what, s->cbarg);
	stream_leave(s);
}

/* ---- plain sockets ---- */

static void stream_later(struct stream *s, unsigned what)
{
	s->later_what |= what;
	if (!s->later_armed) {
		/* Runs after the callbacks already active in this loop round, before the
		 * next poll: no syscall. */
		s->later_armed = true;
		event_active(&s->later, EV_WRITE, 1);
	}
}

static void stream_rd_update(struct stream *s)
{
	bool want = (s->enabled & EV_READ) && !s->rd_suspended && !s->connecting && s->fd >= 0;

	if (want && !s->rd_added) {
		event_add(&s->rd, s->rd_timeout_set ? &s->rd_tv : NULL);
		s->rd_added = true;
	} else if (!want && s->rd_added) {
		event_del(&s->rd);
		s->rd_added = false;
	}
}

static void stream_wr_watch(struct stream *s, bool on)
{
	if (on && !s->wr_added) {
		event_add(&s->wr, NULL);
		s->wr_added = true;
	} else if (!on && s->wr_added) {
		event_del(&s->wr);
		s->wr_added = false;
	}
}

/* Write what the output holds; watch for writability while bytes remain.  Then the write
 * callback when at or below the low watermark.  Returns false when the stream is gone or
 * failed. */
static bool stream_flush(struct stream *s)
{
	size_t left;

	while ((left = evbuffer_get_length(s->out)) > 0) {
		int n = evbuffer_write(s->out, s->fd);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			stream_wr_watch(s, false);
			s->enabled &= ~EV_WRITE;
			stream_event(s, BEV_EVENT_WRITING | BEV_EVENT_ERROR);
			return false;
		}
		if ((size_t)n < left)
			break; /* the socket buffer is full */
	}
	left = evbuffer_get_length(s->out);
	stream_wr_watch(s, left > 0);
	if (left <= s->wr_low && s->writecb != NULL) {
		stream_enter(s);
		s->writecb(s, s->cbarg);
		return stream_leave(s);
	}
	return true;
}

static void stream_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	unsigned todo = s->later_what;

	(void)fd;
	(void)what;
	s->later_armed = false;
	s->later_what = 0;
	if (todo & LATER_ERROR) {
		errno = s->later_errno;
		s->connecting = false;
		stream_event(s, BEV_EVENT_ERROR);
		return;
	}
	if (todo & LATER_CONNECTED) {
		stream_enter(s);
		stream_event(s, BEV_EVENT_CONNECTED);
		if (!stream_leave(s))
			return;
		stream_rd_update(s);
	}
	if ((todo & LATER_FLUSH) && (s->enabled & EV_WRITE) && !s->connecting)
		stream_flush(s);
}

/* Bytes added to the output are written at the end of the round (one writev for all). */
static void stream_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *s = arg;

	(void)buf;
	if (info->n_added > 0 && (s->enabled & EV_WRITE) && !s->connecting && !s->wr_added)
		stream_later(s, LATER_FLUSH);
}

/* The input drained below its high watermark: read again. */
static void stream_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *s = arg;

	if (s->rd_suspended && info->n_deleted > 0 && evbuffer_get_length(buf) < s->rd_high) {
		s->rd_suspended = false;
		stream_rd_update(s);
	}
}

static void stream_connect_done(struct stream *s)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EINTR)
		return; /* spurious wake-up */
	s->connecting = false;
	stream_wr_watch(s, false);
	if (err != 0) {
		errno = err;
		stream_event(s, BEV_EVENT_ERROR);
		return;
	}
	if (evbuffer_get_length(s->out) > 0)
		stream_later(s, LATER_FLUSH);
	stream_enter(s);
	stream_event(s, BEV_EVENT_CONNECTED);
	if (stream_leave(s))
		stream_rd_update(s);
}

static void stream_wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	(void)what;
	if (s->connecting) {
		stream_connect_done(s);
		return;
	}
	stream_flush(s);
}

static void stream_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	int nv, reads = 0;
	ssize_t n;
	bool got = false;

	if (what & EV_TIMEOUT) {
		s->enabled &= ~EV_READ;
		stream_rd_update(s);
		stream_event(s, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
		return;
	}
	for (;;) {
		size_t have = evbuffer_get_length(s->in), want = STREAM_READ_SIZE;

		if (s->rd_high > 0) {
			if (have >= s->rd_high) {
				s->rd_suspended = true;
				stream_rd_update(s);
				break;
			}
			if (s->rd_high - have < want)
				want = s->rd_high - have;
		}
		nv = evbuffer_reserve_space(s->in, (ev_ssize_t)want, v, 2);
		if (nv <= 0)
			break;
		/* the room given may be larger than asked: read no more than asked */
		for (int i = 0, room = (int)want; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len < (size_t)room ? v[i].iov_len : (size_t)room;
			room -= (int)iov[i].iov_len;
		}
		n = readv(fd, iov, nv);
		if (n <= 0) {
			short ev = BEV_EVENT_READING;

			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			ev |= n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
			if (got) {
				/* deliver the bytes first; the close shows on the next read */
				break;
			}
			s->enabled &= ~EV_READ;
			stream_rd_update(s);
			stream_event(s, ev);
			return;
		}
		for (int i = 0; i < nv; i++) {
			size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;

			v[i].iov_len = take;
			n -= (ssize_t)take;
		}
		evbuffer_commit_space(s->in, v, nv);
		got = true;
		/* A short read emptied the socket; a full one may have left more. */
		if (evbuffer_get_length(s->in) - have < want || ++reads >= STREAM_READS_PER_EVENT)
			break;
	}
	if (got && s->readcb != NULL) {
		stream_enter(s);
		s->readcb(s, s->cbarg);
		stream_leave(s);
	}
}

struct stream *stream_socket_new(struct event_base *base, evutil_socket_t fd)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->in = evbuffer_new()) == NULL || (s->out = evbuffer_new()) == NULL) {
		if (s != NULL)
			evbuffer_free(s->in);
		free(s);
		if (fd >= 0)
			evutil_closesocket(fd);
		return NULL;
	}
	s->fd = fd;
	event_assign(&s->rd, base, fd, EV_READ | EV_PERSIST, stream_rd_cb, s);
	event_assign(&s->wr, base, fd, EV_WRITE | EV_PERSIST, stream_wr_cb, s);
	event_assign(&s->later, base, -1, 0, stream_later_cb, s);
	evbuffer_add_cb(s->out, stream_out_cb, s);
	evbuffer_add_cb(s->in, stream_in_cb, s);
	return s;
}

/* ---- TLS: the bufferevent's callbacks, passed on ---- */

static void stream_bev_read(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;

	(void)bev;
	if (s->readcb != NULL) {
		stream_enter(s);
		s->readcb(s, s->cbarg);
		stream_leave(s);
	}
}

static void stream_bev_write(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;

	(void)bev;
	if (s->writecb != NULL) {
		stream_enter(s);
		s->writecb(s, s->cbarg);
		stream_leave(s);
	}
}

static void stream_bev_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	stream_event(arg, what);
}

struct stream *stream_tls_new(struct event_base *base, evutil_socket_t fd, struct ssl_st *ssl,
			      bool accepting)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		SSL_free(ssl);
		if (fd >= 0)
			evutil_closesocket(fd);
		return NULL;
	}
	/* With BEV_OPT_CLOSE_ON_FREE libevent owns ssl (and fd) from here, also on failure. */
	s->bev = bufferevent_openssl_socket_new(
	    base, fd, ssl, accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		free(s);
		return NULL;
	}
	/* A close without close_notify ends a body like a TCP close does (as in Envoy). */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	s->fd = fd;
	bufferevent_setcb(s->bev, stream_bev_read, stream_bev_write, stream_bev_event, s);
	return s;
}

/* ---- the interface ---- */

int stream_connect(struct stream *s, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	if (s->bev != NULL) {
		evutil_socket_t fd;

		if (bufferevent_socket_connect(s->bev, sa, (int)len) != 0)
			return -1;
		if ((fd = bufferevent_getfd(s->bev)) >= 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
		s->fd = fd;
		return 0;
	}
	if (s->fd < 0) {
		s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0)
			return -1;
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		event_assign(&s->rd, event_get_base(&s->later), s->fd, EV_READ | EV_PERSIST,
			     stream_rd_cb, s);
		event_assign(&s->wr, event_get_base(&s->later), s->fd, EV_WRITE | EV_PERSIST,
			     stream_wr_cb, s);
	}
	if (connect(s->fd, sa, len) == 0) {
		stream_later(s, LATER_CONNECTED | LATER_FLUSH);
		return 0;
	}
	if (errno == EINPROGRESS || errno == EINTR) {
		s->connecting = true;
		stream_rd_update(s);
		stream_wr_watch(s, true);
		return 0;
	}
	if (errno == ECONNREFUSED) {
		/* reported like a refusal that arrives later, as libevent does */
		s->later_errno = errno;
		stream_later(s, LATER_ERROR);
		return 0;
	}
	return -1;
}

void stream_setcb(struct stream *s, stream_data_cb readcb, stream_data_cb writecb,
		  stream_event_cb eventcb, void *arg)
{
	s->readcb = readcb;
	s->writecb = writecb;
	s->eventcb = eventcb;
	s->cbarg = arg;
}

void stream_enable(struct stream *s, short what)
{
	if (s->bev != NULL) {
		bufferevent_enable(s->bev, what);
		return;
	}
	s->enabled |= what & (EV_READ | EV_WRITE);
	if (what & EV_READ)
		stream_rd_update(s);
	if ((what & EV_WRITE) && !s->connecting && !s->wr_added && evbuffer_get_length(s->out) > 0)
		stream_later(s, LATER_FLUSH);
}

void stream_disable(struct stream *s, short what)
{
	if (s->bev != NULL) {
		bufferevent_disable(s->bev, what);
		return;
	}
	s->enabled &= ~(what & (EV_READ | EV_WRITE));
	if (what & EV_READ)
		stream_rd_update(s);
	if ((what & EV_WRITE) && !s->connecting)
		stream_wr_watch(s, false);
}

void stream_setwatermark(struct stream *s, short what, size_t low, size_t high)
{
	if (s->bev != NULL) {
		bufferevent_setwatermark(s->bev, what, low, high);
		return;
	}
	if (what & EV_WRITE)
		s->wr_low = low;
	if (what & EV_READ) {
		s->rd_high = high;
		if (s->rd_suspended && (high == 0 || evbuffer_get_length(s->in) < high)) {
			s->rd_suspended = false;
			stream_rd_update(s);
		}
	}
}

void stream_set_read_timeout(struct stream *s, const struct timeval *tv)
{
	if (s->bev != NULL) {
		bufferevent_set_timeouts(s->bev, tv, NULL);
		return;
	}
	s->rd_timeout_set = tv != NULL;
	if (tv != NULL)
		s->rd_tv = *tv;
	if (!s->rd_added)
		return;
	if (tv != NULL)
		event_add(&s->rd, &s->rd_tv);
	else
		event_remove_timer(&s->rd);
}

struct evbuffer *stream_input(struct stream *s)
{
	return s->bev != NULL ? bufferevent_get_input(s->bev) : s->in;
}

struct evbuffer *stream_output(struct stream *s)
{
	return s->bev != NULL ? bufferevent_get_output(s->bev) : s->out;
}

evutil_socket_t stream_getfd(const struct stream *s)
{
	return s->bev != NULL ? bufferevent_getfd(s->bev) : s->fd;
}

struct ssl_st *stream_ssl(const struct stream *s)
{
	return s->bev != NULL ? bufferevent_openssl_get_ssl(s->bev) : NULL;
}
