/* A buffered, non-blocking byte stream over a socket, plain or TLS: the one transport the
 * HTTP data path (client connections, upstream connections, mirrors) reads and writes
 * through.
 *
 * It replaces libevent's bufferevents, which cost a syscall or more per operation that a
 * proxy does not need: the socket one asks the kernel how much is readable (ioctl FIONREAD)
 * before every read and reads at most 4 KiB at a time; both register and unregister the
 * socket for writability around every write (two epoll_ctl per response); the OpenSSL one
 * writes each buffer chain as its own record and reads a record in two reads.  Here a read
 * takes up to 32 KiB at once (TLS: read-ahead, every record the kernel holds), and what a
 * loop round adds to the output is written when the round ends, in one writev (TLS: one
 * record per 16 KiB), before the loop polls again; the socket is watched for writability
 * only while the kernel refuses bytes, a connect or a handshake is in progress.
 *
 * Semantics follow bufferevents where they overlap, so the event flags are libevent's
 * BEV_EVENT_*: the read callback runs after bytes were added to the input; reading stops
 * (without disabling) while the input holds the read high watermark or more, and resumes
 * when it drains below it; the write callback runs when a write leaves the output at or
 * below the write low watermark; EOF, errors and read timeouts reach the event callback,
 * with reading (or writing) disabled; BEV_EVENT_CONNECTED follows a connect (TLS: the
 * handshake, both sides).  A stream may be freed from inside its callbacks. */
#ifndef MG_STREAM_H
#define MG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/util.h>

struct event_base;
struct evbuffer;
struct ssl_st;
struct stream;
struct stream_loop;
struct timeval;

typedef void (*stream_data_cb)(struct stream *s, void *arg);
typedef void (*stream_event_cb)(struct stream *s, short what, void *arg);

/* The streams of one event loop (one per worker): where their end-of-round work is queued.
 * Free it after its streams. */
struct stream_loop *stream_loop_new(struct event_base *base);
void stream_loop_free(struct stream_loop *l);
/* Empty buffers the loop keeps for its streams to take (tests). */
unsigned stream_loop_spare_buffers(const struct stream_loop *l);

/* A stream over a connected socket, or over no socket yet (fd -1) for stream_connect().
 * Takes fd (closed by stream_free). NULL when out of memory (fd is then closed). */
struct stream *stream_socket_new(struct stream_loop *loop, evutil_socket_t fd);
/* A TLS stream: accepting (server side, fd connected; the handshake starts at once) or
 * connecting (client side, fd -1, then stream_connect).  Takes fd and ssl (freed with the
 * stream), also on failure.  A close without close_notify reads as EOF. */
struct stream *stream_tls_new(struct stream_loop *loop, evutil_socket_t fd, struct ssl_st *ssl,
			      bool accepting);
/* A pipe: a stream over no socket, whose other end is code in the same loop (an HTTP/2
 * stream of a client connection, h2down.c).  The stream's user reads and writes it like
 * any other; the owner writes into its input (stream_input) then calls
 * stream_pipe_readable(), and takes its output when the loop round ends. */
struct stream_pipe {
	/* The round ended with bytes in out: take what fits.  Bytes left there hold the
	 * stream back (the user sees a full output) until stream_pipe_writable(). */
	void (*output)(struct stream_pipe *p, struct evbuffer *out);
	/* The user consumed n bytes of the input (the owner's flow control opens). */
	void (*drained)(struct stream_pipe *p, size_t n);
	/* The stream is being freed: out holds what the user wrote last.  No call after. */
	void (*closed)(struct stream_pipe *p, struct evbuffer *out);
};

/* A pipe stream with p's callbacks (p outlives it).  NULL when out of memory. */
struct stream *stream_pipe_new(struct stream_loop *loop, struct stream_pipe *p);
/* The callbacks of a pipe stream; NULL for a socket's, and once the pipe is closing. */
struct stream_pipe *stream_pipe_of(const struct stream *s);
/* The owner added bytes to the input: the read callback runs when the round ends (when
 * reading is enabled).  A read timeout restarts. */
void stream_pipe_readable(struct stream *s);
/* The owner can take output again. */
void stream_pipe_writable(struct stream *s);
/* The other end is gone (a reset): the event callback gets BEV_EVENT_ERROR when the round
 * ends. */
void stream_pipe_fail(struct stream *s);

/* Start a non-blocking connect (creating the socket when the stream has none, with
 * TCP_NODELAY).  BEV_EVENT_CONNECTED (after the TLS handshake for TLS streams) or
 * BEV_EVENT_ERROR follows through the event callback, also for a refused connect.
 * -1 on an immediate failure (no socket, no route). */
int stream_connect(struct stream *s, const struct sockaddr *sa, socklen_t len);
void stream_free(struct stream *s);

void stream_setcb(struct stream *s, stream_data_cb readcb, stream_data_cb writecb,
		  stream_event_cb eventcb, void *arg);
/* EV_READ and/or EV_WRITE. */
void stream_enable(struct stream *s, short what);
void stream_disable(struct stream *s, short what);
/* EV_READ: high (0: none; low must be 0); EV_WRITE: low (high must be 0). */
void stream_setwatermark(struct stream *s, short what, size_t low, size_t high);
/* Reading with no byte for tv ends with BEV_EVENT_READING|BEV_EVENT_TIMEOUT; NULL: never. */
void stream_set_read_timeout(struct stream *s, const struct timeval *tv);

/* The buffers, valid until the current callback returns: keep no pointer to them across
 * loop rounds, since a stream gives its empty buffers back to the loop between exchanges
 * and takes others when it next reads or writes. */
struct evbuffer *stream_input(struct stream *s);
/* The output, for writing: what the current loop round adds is sent when the round ends. */
struct evbuffer *stream_output(struct stream *s);
/* Bytes received and not consumed, and bytes not yet sent (without taking a buffer or
 * scheduling a write). */
size_t stream_input_len(const struct stream *s);
size_t stream_output_len(const struct stream *s);
evutil_socket_t stream_getfd(const struct stream *s);
/* A TLS stream's SSL, or NULL. */
struct ssl_st *stream_ssl(const struct stream *s);
/* Move n bytes (all present) from the front of in to the end of to's output, for
 * forwarding a body: into a pipe, small runs are copied, so that the read buffer they came
 * in is freed when its bytes are consumed instead of travelling on with them (stream.c). */
void stream_move(struct stream *to, struct evbuffer *in, size_t n);

#endif
