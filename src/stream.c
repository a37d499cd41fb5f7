#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "memcache.h"
#include "stream.h"

/* One read asks for this much room: a 16 KiB body and its head arrive in one read, while a
 * small request costs one buffer chain of this size (allocated from the free lists once
 * the heap is warm, and freed when the request has been consumed). */
#define STREAM_READ_SIZE (32 * 1024 - 64)
/* Plain reads per readiness event when each one fills its room: enough to take a large
 * burst without starving the other connections of the worker. */
#define STREAM_READS_PER_EVENT 4
/* stream_move() copies runs up to this size instead of moving their buffer chains. */
#define STREAM_COPY_MAX 4096
/* Plaintext per SSL_write: one full TLS record. */
#define STREAM_TLS_RECORD 16384

/* SSL_get_error() needs this thread's error queue empty before each SSL call. OpenSSL 3's
 * ERR_clear_error() walks all sixteen slots (about 800 instructions, twice a request);
 * peeking first costs only the lookup of the thread's queue, and the queue is almost
 * always empty already. */
static inline void tls_error_queue_empty(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* Work deferred to the end of the current callback round (see stream_later). */
#define LATER_FLUSH 0x01
#define LATER_CONNECTED 0x02
#define LATER_ERROR 0x04
#define LATER_READ 0x08 /* TLS: plaintext or an EOF already inside the SSL */

enum stream_hs {
	HS_NONE = 0, /* plain, or the handshake is done */
	HS_WANT_READ,
	HS_WANT_WRITE,
};

/* Empty buffers a loop keeps for its streams (see stream_lean). */
#define STREAM_SPARE_BUFFERS 64

/* Streams with work deferred to the end of the loop round: one event per loop rather than
 * one per stream (a struct event is 128 bytes of every idle connection). */
struct stream_loop {
	struct event_base *base;
	struct event ev;
	TAILQ_HEAD(stream_queue, stream) queue;
	bool armed;
	unsigned nspare;
	struct evbuffer *spare[STREAM_SPARE_BUFFERS];
};

/* Packed (bit fields, 32-bit sizes): every connection has one or two of these. */
struct stream {
	struct stream_loop *loop;
	TAILQ_ENTRY(stream) later_entry; /* in loop->queue while later_what != 0 */
	SSL *ssl;                        /* TLS streams */
	struct evbuffer *in, *out;       /* NULL while empty between exchanges (stream_lean) */
	evutil_socket_t fd;
	uint32_t rd_high, wr_low;
	uint32_t rd_timeout_ms; /* 0: none */
	stream_data_cb readcb, writecb;
	stream_event_cb eventcb;
	void *cbarg;
	struct event rd; /* pipes: the read timeout only */
	union {
		struct event *wr; /* made when first needed: most client streams never wait */
		struct stream_pipe *pipe; /* pipe streams (no socket, no write event) */
	};
	struct evbuffer_cb_entry *in_cb; /* while suspended; pipes: always */
	uint8_t later_errno;    /* errno of a deferred connect failure (Linux's are < 256) */
	uint16_t tls_retry_len; /* an SSL_write to repeat with this length (0: none) */
	/* Callback depth and a free requested inside a callback: the stream is freed when
	 * the outermost callback returns. */
	uint8_t busy;
	unsigned enabled : 3;    /* EV_READ | EV_WRITE */
	unsigned later_what : 4; /* LATER_* */
	unsigned hs : 2;         /* enum stream_hs: TLS handshake in progress */
	bool dead : 1;
	bool rd_added : 1;
	bool wr_added : 1;
	bool rd_suspended : 1;   /* input at its high watermark */
	bool wr_blocked : 1;     /* output waits for writability */
	bool connecting : 1;     /* TCP connect in progress */
	bool rd_wants_write : 1; /* TLS: SSL_read needs the socket writable */
	bool wr_wants_read : 1;  /* TLS: SSL_write needs the socket readable */
	bool is_pipe : 1;
	bool pipe_fed : 1; /* the owner added input the read callback has not been told of */
	bool tls_eof : 1;  /* TLS: the socket read its end (sock_bio) */
};

static void stream_wr_cb(evutil_socket_t fd, short what, void *arg);

static void stream_rd_add(struct stream *s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(s->rd_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(s->rd_timeout_ms % 1000) * 1000;
	event_add(&s->rd, s->rd_timeout_ms != 0 ? &tv : NULL);
}

static void stream_unqueue(struct stream *s)
{
	if (s->later_what != 0) {
		TAILQ_REMOVE(&s->loop->queue, s, later_entry);
		s->later_what = 0;
	}
}

/* ---- buffers ---- */

/* The buffer in *slot, taken from the loop's spares (or made) when the stream has none. */
static struct evbuffer *stream_buf(struct stream *s, struct evbuffer **slot)
{
	struct stream_loop *l = s->loop;

	if (*slot == NULL) {
		*slot = l->nspare > 0 ? l->spare[--l->nspare] : evbuffer_new();
		if (*slot == NULL)
			abort(); /* 144 bytes: the worker cannot go on without them */
	}
	return *slot;
}

static void stream_buf_drop(struct stream_loop *l, struct evbuffer **slot)
{
	if (l->nspare < STREAM_SPARE_BUFFERS)
		l->spare[l->nspare++] = *slot;
	else
		evbuffer_free(*slot);
	*slot = NULL;
}

static size_t stream_len(const struct evbuffer *b)
{
	return b != NULL ? evbuffer_get_length(b) : 0;
}

/* A stream between exchanges holds no buffers: empty ones go back to the loop once a
 * round's output is written.  Only at the top of the loop (no caller can hold a pointer
 * from stream_input/stream_output there); an idle keep-alive connection is 288 bytes
 * smaller. */
static void stream_lean(struct stream *s)
{
	if (s->busy > 0 || s->dead)
		return;
	if (s->out != NULL && evbuffer_get_length(s->out) == 0 && s->tls_retry_len == 0)
		stream_buf_drop(s->loop, &s->out);
	if (s->in != NULL && s->in_cb == NULL && evbuffer_get_length(s->in) == 0)
		stream_buf_drop(s->loop, &s->in);
}

static void stream_destroy(struct stream *s)
{
	event_del(&s->rd);
	if (!s->is_pipe && s->wr != NULL)
		event_free(s->wr);
	stream_unqueue(s);
	if (s->in != NULL)
		evbuffer_free(s->in);
	if (s->out != NULL)
		evbuffer_free(s->out);
	if (s->ssl != NULL)
		SSL_free(s->ssl);
	if (s->fd >= 0)
		evutil_closesocket(s->fd);
	memcache_free(s); /* any malloc block: pipes come from the cache */
}

/* Around every user callback; stream_leave returns false when the stream was freed inside
 * it (the caller must then not touch it). */
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
	if (s->is_pipe && s->pipe != NULL) {
		struct stream_pipe *p = s->pipe;

		s->pipe = NULL; /* its callbacks end here */
		p->closed(p, stream_buf(s, &s->out));
	}
	if (s->busy > 0) {
		/* Inside one of its callbacks: stop everything now, free on the way out. */
		s->dead = true;
		s->readcb = s->writecb = NULL;
		s->eventcb = NULL;
		event_del(&s->rd);
		if (!s->is_pipe && s->wr != NULL)
			event_del(s->wr);
		stream_unqueue(s);
		return;
	}
	stream_destroy(s);
}

/* False when the stream was freed inside the callback. */
static bool stream_event(struct stream *s, short what)
{
	if (s->eventcb == NULL)
		return true;
	stream_enter(s);
	s->eventcb(s, what, s->cbarg);
	return stream_leave(s);
}

static void stream_later(struct stream *s, unsigned what)
{
	struct stream_loop *l = s->loop;

	if (s->later_what == 0)
		TAILQ_INSERT_TAIL(&l->queue, s, later_entry);
	s->later_what |= what;
	if (!l->armed) {
		/* Runs after the callbacks already active in this loop round, before the
		 * next poll: no syscall. */
		l->armed = true;
		event_active(&l->ev, EV_WRITE, 1);
	}
}

static void stream_watch_rd(struct stream *s, bool rd)
{
	if (rd != s->rd_added) {
		if (rd)
			stream_rd_add(s);
		else
			event_del(&s->rd);
		s->rd_added = rd;
	}
}

/* Register the socket with the loop for exactly what the stream waits for. */
static void stream_watch(struct stream *s)
{
	bool rd, wr;

	if (s->is_pipe && !s->dead) {
		/* a pipe's read event is its read timeout */
		stream_watch_rd(s, (s->enabled & EV_READ) && s->rd_timeout_ms != 0);
		return;
	}
	if (s->fd < 0 || s->dead)
		return;
	if (s->connecting) {
		rd = false;
		wr = true;
	} else if (s->hs != HS_NONE) {
		rd = s->hs == HS_WANT_READ;
		wr = s->hs == HS_WANT_WRITE;
	} else {
		rd = ((s->enabled & EV_READ) && !s->rd_suspended) || s->wr_wants_read;
		wr = s->rd_wants_write || (s->wr_blocked && (s->enabled & EV_WRITE));
	}
	stream_watch_rd(s, rd);
	if (wr != s->wr_added) {
		if (wr && s->wr == NULL) {
			s->wr =
			    event_new(s->loop->base, s->fd, EV_WRITE | EV_PERSIST, stream_wr_cb, s);
			if (s->wr == NULL) {
				s->later_errno = ENOMEM;
				stream_later(s, LATER_ERROR);
				return;
			}
		}
		if (wr)
			event_add(s->wr, NULL);
		else
			event_del(s->wr);
		s->wr_added = wr;
	}
}

/* ---- writing ---- */

/* One SSL_write of up to a record's worth; >0 bytes taken, 0 blocked (the stream waits
 * for the socket), -1 failed. */
static int stream_tls_write(struct stream *s, size_t left)
{
	int len = s->tls_retry_len > 0 ? s->tls_retry_len
				       : (int)(left < STREAM_TLS_RECORD ? left : STREAM_TLS_RECORD);
	unsigned char *p = evbuffer_pullup(s->out, len);
	int n;

	if (p == NULL)
		return -1; /* the output lost bytes OpenSSL still has to send */
	tls_error_queue_empty();
	n = SSL_write(s->ssl, p, len);
	if (n > 0) {
		s->tls_retry_len = 0;
		s->wr_wants_read = false;
		evbuffer_drain(s->out, (size_t)n);
		return n;
	}
	/* OpenSSL wants the same call again: the bytes stay first in the output, moved
	 * maybe (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), but the length must not shrink. */
	switch (SSL_get_error(s->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
		s->tls_retry_len = len;
		return 0;
	case SSL_ERROR_WANT_READ:
		s->tls_retry_len = len;
		s->wr_wants_read = true;
		return 0;
	default:
		return -1;
	}
}

/* Sockets are read and written with recv/send (recvmsg/sendmsg for several pieces), not
 * readv/writev: those go through the VFS layer (file position, LSM and fsnotify hooks) on
 * every call.  A 64-byte write and read over loopback cost 6.0 us that way and 5.75 us
 * with send/recv; a proxied HTTP/1.1 request, 4% less CPU (interleaved A/B runs). */
#define STREAM_WRITE_IOV 16

/* One send of the output's first pieces; what was sent is drained.  As write(2). */
static int stream_sock_write(struct evbuffer *out, int fd)
{
	struct evbuffer_iovec v[STREAM_WRITE_IOV];
	struct iovec iov[STREAM_WRITE_IOV];
	struct msghdr msg = {.msg_iov = iov};
	int nv = evbuffer_peek(out, -1, NULL, v, STREAM_WRITE_IOV);
	ssize_t n;

	if (nv > STREAM_WRITE_IOV)
		nv = STREAM_WRITE_IOV;
	if (nv == 1) {
		n = send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
	} else {
		for (int i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		msg.msg_iovlen = (size_t)nv;
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	}
	if (n > 0)
		evbuffer_drain(out, (size_t)n);
	return (int)n;
}

/* Write what the output holds; wait for writability while bytes remain.  Then the write
 * callback when at or below the low watermark.  False when the stream was freed inside a
 * callback. */
static bool stream_flush(struct stream *s)
{
	size_t left = stream_len(s->out);
	bool blocked = false;

	if (left == 0 && !s->wr_blocked)
		return true; /* nothing was written: no write callback */
	if (s->is_pipe) {
		if (left > 0 && s->pipe != NULL)
			s->pipe->output(s->pipe, s->out);
		s->wr_blocked = stream_len(s->out) > 0;
		goto written;
	}

	while ((left = stream_len(s->out)) > 0) {
		int n;

		if (s->ssl != NULL) {
			n = stream_tls_write(s, left);
			if (n == 0) {
				blocked = true;
				break;
			}
		} else {
			n = stream_sock_write(s->out, s->fd);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				blocked = true;
				break;
			}
			if (n >= 0 && (size_t)n < left) {
				blocked = true; /* the socket buffer is full */
				break;
			}
		}
		if (n < 0) {
			s->wr_blocked = false;
			s->enabled &= ~EV_WRITE;
			stream_watch(s);
			return stream_event(s, BEV_EVENT_WRITING | BEV_EVENT_ERROR);
		}
	}
	s->wr_blocked = blocked && !s->wr_wants_read;
	stream_watch(s);
written:
	if (stream_len(s->out) <= s->wr_low && s->writecb != NULL) {
		stream_enter(s);
		s->writecb(s, s->cbarg);
		return stream_leave(s);
	}
	return true;
}

/* ---- reading ---- */

static void stream_resume(struct stream *s)
{
	s->rd_suspended = false;
	if (s->in_cb != NULL) {
		evbuffer_remove_cb_entry(s->in, s->in_cb);
		s->in_cb = NULL;
	}
	stream_watch(s);
	if (s->ssl != NULL && SSL_has_pending(s->ssl))
		stream_later(s, LATER_READ);
}

/* The input drained below its high watermark: read again. */
static void stream_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *s = arg;

	if (s->rd_suspended && info->n_deleted > 0 && evbuffer_get_length(buf) < s->rd_high)
		stream_resume(s);
}

/* Reading pauses with the input at its high watermark.  Only then does the input carry a
 * callback (to see it drain): evbuffer callbacks cost on every change of the buffer. */
static void stream_suspend(struct stream *s)
{
	s->rd_suspended = true;
	if (s->in_cb == NULL)
		s->in_cb = evbuffer_add_cb(s->in, stream_in_cb, s);
	stream_watch(s);
}

/* Reading stops at the high watermark; how much the next read may take, 0 for none. */
static size_t stream_read_room(struct stream *s)
{
	size_t have = stream_len(s->in);

	if (s->rd_high == 0)
		return STREAM_READ_SIZE;
	if (have >= s->rd_high) {
		stream_suspend(s);
		return 0;
	}
	return s->rd_high - have < STREAM_READ_SIZE ? s->rd_high - have : STREAM_READ_SIZE;
}

/* One read into the input: >0 bytes, 0 nothing now, or -1 with *ev the end (EOF/ERROR). */
static ssize_t stream_read_once(struct stream *s, size_t want, short *ev)
{
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	int nv = evbuffer_reserve_space(stream_buf(s, &s->in), (ev_ssize_t)want, v,
					s->ssl != NULL ? 1 : 2);
	ssize_t n;

	if (nv <= 0)
		return 0;
	/* the room given may be larger than asked: read no more than asked */
	for (int i = 0, room = (int)want; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len < (size_t)room ? v[i].iov_len : (size_t)room;
		room -= (int)iov[i].iov_len;
	}
	if (s->ssl != NULL) {
		tls_error_queue_empty();
		n = SSL_read(s->ssl, iov[0].iov_base, (int)iov[0].iov_len);
		if (n <= 0) {
			s->rd_wants_write = false;
			switch (SSL_get_error(s->ssl, (int)n)) {
			case SSL_ERROR_WANT_READ:
				return 0;
			case SSL_ERROR_WANT_WRITE:
				s->rd_wants_write = true;
				return 0;
			case SSL_ERROR_ZERO_RETURN: /* close_notify, or a bare close: see below */
				*ev = BEV_EVENT_READING | BEV_EVENT_EOF;
				return -1;
			default:
				*ev = BEV_EVENT_READING | BEV_EVENT_ERROR;
				return -1;
			}
		}
		s->rd_wants_write = false;
	} else {
		if (nv == 1) {
			n = recv(s->fd, iov[0].iov_base, iov[0].iov_len, 0);
		} else {
			struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)nv};

			n = recvmsg(s->fd, &msg, 0);
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		if (n <= 0) {
			*ev = BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
			return -1;
		}
	}
	for (int i = 0, left = (int)n; i < nv; i++) {
		size_t take = (size_t)left < iov[i].iov_len ? (size_t)left : iov[i].iov_len;

		v[i].iov_len = take;
		left -= (int)take;
	}
	evbuffer_commit_space(s->in, v, nv);
	return n;
}

static void stream_read(struct stream *s)
{
	size_t want;
	ssize_t n;
	short ev = 0;
	int reads = 0;
	bool got = false;

	while ((want = stream_read_room(s)) > 0) {
		n = stream_read_once(s, want, &ev);
		if (n <= 0)
			break;
		got = true;
		/* Plain: a short read emptied the socket.  TLS: records already read (read
		 * ahead) are inside the SSL where the poller cannot see them: take them all;
		 * what is still in the kernel wakes the poller again. */
		if (s->ssl != NULL ? !SSL_has_pending(s->ssl)
				   : ((size_t)n < want || ++reads >= STREAM_READS_PER_EVENT))
			break;
	}
	if (s->ssl != NULL && s->rd_wants_write)
		stream_watch(s);
	if (got && s->readcb != NULL) {
		stream_enter(s);
		s->readcb(s, s->cbarg);
		if (!stream_leave(s))
			return;
	}
	if (ev == 0)
		return;
	if (got && s->ssl == NULL)
		return; /* a plain socket reports its end again on the next poll */
	if (got && !(s->enabled & EV_READ)) {
		/* TLS: the end is inside the SSL; tell it when reading resumes */
		return;
	}
	s->enabled &= ~EV_READ;
	stream_watch(s);
	stream_event(s, ev);
}

/* ---- TLS over the socket: an OpenSSL BIO with send/recv ----
 * OpenSSL's own socket BIO calls read(2) and write(2), the VFS path that stream_sock_write()
 * avoids.  This BIO is the stream's socket itself: its data is the stream, so it costs no
 * allocation beyond the BIO, as SSL_set_fd's did. */

static bool sock_would_block(void)
{
	/* what OpenSSL's socket BIO retries too (BIO_sock_non_fatal_error) */
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == EINPROGRESS ||
	       errno == EALREADY || errno == ENOTCONN;
}

static int sock_bio_write(BIO *b, const char *data, size_t len, size_t *done)
{
	struct stream *s = BIO_get_data(b);
	ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (n < 0) {
		if (sock_would_block())
			BIO_set_retry_write(b);
		*done = 0;
		return 0;
	}
	*done = (size_t)n;
	return 1;
}

static int sock_bio_read(BIO *b, char *data, size_t len, size_t *done)
{
	struct stream *s = BIO_get_data(b);
	ssize_t n = recv(s->fd, data, len, 0);

	BIO_clear_retry_flags(b);
	*done = 0;
	if (n > 0) {
		*done = (size_t)n;
		return 1;
	}
	if (n == 0)
		s->tls_eof = true; /* BIO_eof(): SSL_OP_IGNORE_UNEXPECTED_EOF needs to know */
	else if (sock_would_block())
		BIO_set_retry_read(b);
	return 0;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct stream *s = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH: /* writes are not buffered here */
	case BIO_CTRL_DUP:
		return 1;
	case BIO_CTRL_EOF:
		return s != NULL && s->tls_eof;
	case BIO_C_GET_FD:
		if (s == NULL)
			return -1;
		if (ptr != NULL)
			*(int *)ptr = s->fd;
		return s->fd;
	default:
		return 0;
	}
}

static BIO_METHOD *sock_bio_method;

static void sock_bio_method_init(void)
{
	BIO_METHOD *m =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
			 "meshgate stream socket");

	if (m != NULL &&
	    (!BIO_meth_set_write_ex(m, sock_bio_write) || !BIO_meth_set_read_ex(m, sock_bio_read) ||
	     !BIO_meth_set_ctrl(m, sock_bio_ctrl))) {
		BIO_meth_free(m);
		m = NULL;
	}
	sock_bio_method = m;
}

/* The SSL reads and writes the stream's socket through a sock_bio. */
static bool stream_tls_attach(struct stream *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	BIO *b;

	pthread_once(&once, sock_bio_method_init);
	if (sock_bio_method == NULL || (b = BIO_new(sock_bio_method)) == NULL)
		return false;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	SSL_set_bio(s->ssl, b, b);
	return true;
}

/* ---- TLS handshake and connect ---- */

static void stream_tls_handshake(struct stream *s)
{
	int r;

	tls_error_queue_empty();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->hs = HS_NONE;
		if (stream_len(s->out) > 0)
			stream_later(s, LATER_FLUSH);
		stream_enter(s);
		stream_event(s, BEV_EVENT_CONNECTED);
		if (!stream_leave(s))
			return;
		stream_watch(s);
		/* the client's first request may have come with its last handshake flight */
		if (SSL_has_pending(s->ssl))
			stream_later(s, LATER_READ);
		return;
	}
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		s->hs = HS_WANT_READ;
		stream_watch(s);
		return;
	case SSL_ERROR_WANT_WRITE:
		s->hs = HS_WANT_WRITE;
		stream_watch(s);
		return;
	default:
		s->hs = HS_NONE;
		s->enabled = 0;
		stream_watch(s);
		stream_event(s, BEV_EVENT_ERROR);
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
	if (err != 0) {
		stream_watch(s);
		errno = err;
		stream_event(s, BEV_EVENT_ERROR);
		return;
	}
	if (s->ssl != NULL) {
		stream_tls_handshake(s);
		return;
	}
	if (stream_len(s->out) > 0)
		stream_later(s, LATER_FLUSH);
	stream_enter(s);
	stream_event(s, BEV_EVENT_CONNECTED);
	if (stream_leave(s))
		stream_watch(s);
}

/* ---- loop callbacks ---- */

static void stream_later_run(struct stream *s, unsigned todo)
{
	if (todo & LATER_ERROR) {
		errno = s->later_errno;
		s->connecting = false;
		stream_event(s, BEV_EVENT_ERROR);
		return;
	}
	if (todo & LATER_CONNECTED) {
		if (s->ssl != NULL) {
			stream_tls_handshake(s);
			return;
		}
		stream_enter(s);
		stream_event(s, BEV_EVENT_CONNECTED);
		if (!stream_leave(s))
			return;
		stream_watch(s);
	}
	if ((todo & LATER_READ) && (s->enabled & EV_READ) && s->hs == HS_NONE) {
		stream_enter(s);
		if (!s->is_pipe)
			stream_read(s);
		else if (s->pipe_fed && stream_len(s->in) > 0 && s->readcb != NULL) {
			s->pipe_fed = false;
			s->readcb(s, s->cbarg);
		}
		if (!stream_leave(s))
			return;
	}
	if ((todo & LATER_FLUSH) && (s->enabled & EV_WRITE) && !s->connecting && s->hs == HS_NONE &&
	    (s->fd >= 0 || s->is_pipe) && !stream_flush(s))
		return;
	stream_lean(s);
}

static void stream_loop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream_loop *l = arg;
	struct stream *s;

	(void)fd;
	(void)what;
	l->armed = false;
	/* Streams queued while this runs are served in the same pass. */
	while ((s = TAILQ_FIRST(&l->queue)) != NULL) {
		unsigned todo = s->later_what;

		TAILQ_REMOVE(&l->queue, s, later_entry);
		s->later_what = 0;
		stream_later_run(s, todo);
	}
}

struct stream_loop *stream_loop_new(struct event_base *base)
{
	struct stream_loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->base = base;
	TAILQ_INIT(&l->queue);
	event_assign(&l->ev, base, -1, 0, stream_loop_cb, l);
	return l;
}

unsigned stream_loop_spare_buffers(const struct stream_loop *l)
{
	return l->nspare;
}

void stream_loop_free(struct stream_loop *l)
{
	if (l == NULL)
		return;
	event_del(&l->ev);
	while (l->nspare > 0)
		evbuffer_free(l->spare[--l->nspare]);
	free(l);
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
	if (s->hs != HS_NONE) {
		stream_tls_handshake(s);
		return;
	}
	if (s->rd_wants_write) {
		stream_enter(s);
		stream_read(s);
		if (!stream_leave(s))
			return;
	}
	if (stream_len(s->out) > 0 || s->wr_blocked)
		stream_flush(s);
}

static void stream_rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		s->enabled &= ~EV_READ;
		stream_watch(s);
		stream_event(s, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
		return;
	}
	if (s->hs != HS_NONE) {
		stream_tls_handshake(s);
		return;
	}
	if (s->wr_wants_read) {
		s->wr_wants_read = false;
		stream_enter(s);
		stream_flush(s);
		if (!stream_leave(s))
			return;
	}
	if (s->enabled & EV_READ)
		stream_read(s);
}

/* ---- the interface ---- */

static void stream_assign(struct stream *s, struct event_base *base)
{
	event_assign(&s->rd, base, s->fd, EV_READ | EV_PERSIST, stream_rd_cb, s);
	if (s->wr != NULL) {
		event_free(s->wr);
		s->wr = NULL;
	}
}

struct stream *stream_socket_new(struct stream_loop *loop, evutil_socket_t fd)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		if (fd >= 0)
			evutil_closesocket(fd);
		return NULL;
	}
	s->fd = fd;
	s->loop = loop;
	stream_assign(s, loop->base);
	return s;
}

struct stream *stream_tls_new(struct stream_loop *loop, evutil_socket_t fd, struct ssl_st *ssl,
			      bool accepting)
{
	struct stream *s = stream_socket_new(loop, fd);

	if (s == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	s->ssl = ssl;
	/* Read ahead: one read(2) takes every record the kernel holds, not a header and then
	 * a body.  A peer that closes without close_notify ends the stream like a TCP close
	 * (as in Envoy); truncation attacks matter to framing, which HTTP checks itself. */
	SSL_set_read_ahead(ssl, 1);
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (accepting) {
		SSL_set_accept_state(ssl);
		if (fd < 0 || !stream_tls_attach(s)) {
			stream_destroy(s);
			return NULL;
		}
		s->hs = HS_WANT_READ; /* the ClientHello */
		stream_watch(s);
	} else {
		SSL_set_connect_state(ssl);
	}
	return s;
}

/* The user consumed pipe input: the owner opens its flow control by as much. */
static void stream_pipe_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *s = arg;

	(void)buf;
	if (info->n_deleted > 0 && s->pipe != NULL)
		s->pipe->drained(s->pipe, info->n_deleted);
}

struct stream *stream_pipe_new(struct stream_loop *loop, struct stream_pipe *p)
{
	/* One per exchange behind HTTP/2, at request rate: from the worker's cache. */
	struct stream *s = memcache_calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->fd = -1;
	s->loop = loop;
	s->is_pipe = true;
	s->pipe = p;
	event_assign(&s->rd, loop->base, -1, 0, stream_rd_cb, s);
	/* The input keeps its buffer (and the callback that sees it drain) for the stream's
	 * life: a pipe lives for one exchange. */
	s->in = evbuffer_new();
	if (s->in == NULL || (s->in_cb = evbuffer_add_cb(s->in, stream_pipe_in_cb, s)) == NULL) {
		if (s->in != NULL)
			evbuffer_free(s->in);
		memcache_free(s);
		return NULL;
	}
	return s;
}

struct stream_pipe *stream_pipe_of(const struct stream *s)
{
	return s->is_pipe ? s->pipe : NULL;
}

void stream_pipe_readable(struct stream *s)
{
	s->pipe_fed = true;
	if (s->rd_added)
		stream_rd_add(s); /* a byte came: the read timeout starts again */
	stream_later(s, LATER_READ);
}

void stream_pipe_writable(struct stream *s)
{
	if (s->wr_blocked)
		stream_later(s, LATER_FLUSH); /* offers the owner what waits */
}

void stream_pipe_fail(struct stream *s)
{
	s->later_errno = ECONNRESET;
	stream_later(s, LATER_ERROR);
}

int stream_connect(struct stream *s, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	if (s->fd < 0) {
		s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0)
			return -1;
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		stream_assign(s, s->loop->base);
		if (s->ssl != NULL && !stream_tls_attach(s))
			return -1;
	}
	if (connect(s->fd, sa, len) == 0) {
		stream_later(s, LATER_CONNECTED | LATER_FLUSH);
		return 0;
	}
	if (errno == EINPROGRESS || errno == EINTR) {
		s->connecting = true;
		stream_watch(s);
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
	s->enabled |= what & (EV_READ | EV_WRITE);
	stream_watch(s);
	if (s->connecting || s->hs != HS_NONE)
		return;
	if ((what & EV_WRITE) && !s->wr_blocked && stream_len(s->out) > 0)
		stream_later(s, LATER_FLUSH);
	if ((what & EV_READ) && s->is_pipe && s->pipe_fed)
		stream_later(s, LATER_READ);
	/* TLS: plaintext (or the end) already inside the SSL will not wake the poller */
	if ((what & EV_READ) && s->ssl != NULL && !s->rd_suspended &&
	    (SSL_has_pending(s->ssl) || (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN)))
		stream_later(s, LATER_READ);
}

void stream_disable(struct stream *s, short what)
{
	s->enabled &= ~(what & (EV_READ | EV_WRITE));
	stream_watch(s);
}

void stream_setwatermark(struct stream *s, short what, size_t low, size_t high)
{
	if (what & EV_WRITE)
		s->wr_low = low < UINT32_MAX ? (uint32_t)low : UINT32_MAX;
	if (what & EV_READ) {
		s->rd_high = high < UINT32_MAX ? (uint32_t)high : UINT32_MAX;
		if (s->rd_suspended && (high == 0 || stream_len(s->in) < high))
			stream_resume(s);
	}
}

void stream_set_read_timeout(struct stream *s, const struct timeval *tv)
{
	s->rd_timeout_ms = 0;
	if (tv != NULL) {
		uint64_t ms = (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000;

		/* whole milliseconds, at least one: the timeouts are configured in them */
		if (ms == 0)
			ms = 1;
		s->rd_timeout_ms = ms < UINT32_MAX ? (uint32_t)ms : UINT32_MAX;
	}
	if (s->is_pipe) {
		if (s->rd_added) {
			event_del(&s->rd);
			s->rd_added = false;
		}
		stream_watch(s);
		return;
	}
	if (!s->rd_added)
		return;
	if (tv != NULL)
		stream_rd_add(s);
	else
		event_remove_timer(&s->rd);
}

struct evbuffer *stream_input(struct stream *s)
{
	return stream_buf(s, &s->in);
}

/* evbuffer_remove_buffer() moves whole chains: a 64-byte body that arrived with its head in
 * one read moves the read's 32 KiB chain.  A socket's output sends and frees it at the end
 * of the round, but a pipe's output waits for its reader, the HTTP/2 session: behind a
 * connection with hundreds of streams in flight, hundreds of mostly empty 32 KiB chains,
 * each a miss of the allocator's caches.  So into a pipe a small run is copied (cheaper than
 * that), and the read chain goes back to the cache when the head and body are consumed.
 * Large runs, and everything going to a socket, move without a copy. */
void stream_move(struct stream *to, struct evbuffer *in, size_t n)
{
	struct evbuffer *out = stream_output(to);
	struct evbuffer_iovec v;
	int got;

	if (n == 0)
		return;
	if (!to->is_pipe || n > STREAM_COPY_MAX ||
	    evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) != 1) {
		evbuffer_remove_buffer(in, out, n);
		return;
	}
	got = evbuffer_remove(in, v.iov_base, n);
	v.iov_len = got > 0 ? (size_t)got : 0;
	evbuffer_commit_space(out, &v, 1);
}

struct evbuffer *stream_output(struct stream *s)
{
	/* The caller is about to write: send it at the end of the round (one write for
	 * everything the round adds).  A round that adds nothing costs a callback. */
	if ((s->enabled & EV_WRITE) && !s->connecting && s->hs == HS_NONE && !s->wr_blocked &&
	    !s->wr_wants_read)
		stream_later(s, LATER_FLUSH);
	return stream_buf(s, &s->out);
}

size_t stream_input_len(const struct stream *s)
{
	return stream_len(s->in);
}

size_t stream_output_len(const struct stream *s)
{
	return stream_len(s->out);
}

evutil_socket_t stream_getfd(const struct stream *s)
{
	return s->fd;
}

struct ssl_st *stream_ssl(const struct stream *s)
{
	return s->ssl;
}
