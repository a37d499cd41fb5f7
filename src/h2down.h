/* HTTP/2 from clients (RFC 9113): ALPN "h2" on TLS listeners, the client preface on
 * plaintext ones (h2c with prior knowledge).  One nghttp2 server session per connection.
 * Worker thread only.
 *
 * Each request stream becomes a connection of its own for conn.c, over a pipe stream
 * (stream.h) instead of a socket: this module writes the request into the pipe as an
 * HTTP/1.1 head (h2head.h) and body (chunked when the client gave no content-length),
 * and turns what the exchange writes back, an HTTP/1.1 response, into HEADERS and DATA.
 * So routing, policies, the proxy, local replies and the access log are the ones HTTP/1.1
 * clients get, and the HTTP/1.1 path pays nothing.  The price is a second parse of heads
 * meshgate made itself, except for the common one: proxy.c hands the head of an
 * upstream's final response over as fields (h2down_head_begin).
 *
 * Back-pressure: a request body is acknowledged (WINDOW_UPDATE) only as the exchange reads
 * it; a response is taken from the pipe while less than 64 KiB waits for the client's
 * flow-control window, and proxy.c stops reading the upstream past 64 KiB in the pipe, so a
 * slow reader slows its upstream as over HTTP/1.1, and a connection's 100 streams hold a
 * few MiB at most.
 *
 * A reset from the client ends its exchange as a client close does (DC); an exchange that
 * ends before its response is whole resets the stream (INTERNAL_ERROR), never ends it as if
 * complete. */
#ifndef MG_H2DOWN_H
#define MG_H2DOWN_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct conn;
struct evbuffer;
struct h2down;
struct h2down_head;

/* Does a plaintext connection's input start with the HTTP/2 client preface?  1 yes, 0 too
 * few bytes to tell, -1 no. */
int h2down_sniff(struct evbuffer *in);
/* The connection speaks HTTP/2 from now on; what its input holds is the client's first
 * bytes.  Sets c->h2 and takes over the stream's callbacks.  -1 when out of memory (the
 * caller closes the connection). */
int h2down_start(struct conn *c);
/* conn_close() of an HTTP/2 connection: its streams' exchanges end (DC), the session goes. */
void h2down_free(struct h2down *h2);
/* Graceful shutdown: GOAWAY, then close once the streams in progress are done. */
void h2down_drain(struct h2down *h2);
/* The connection's idle timeout fired (no stream for that long): GOAWAY and close. */
void h2down_idle_timeout(struct h2down *h2);
/* The client connection a stream's connection belongs to. */
struct conn *h2down_conn(const struct h2down *h2);
/* A final response head for the HTTP/2 stream whose connection is c, given as fields
 * rather than written as HTTP/1.1 bytes: begin with its status and how many fields may
 * follow, add each field (name and value stay valid until the end call), then end it with
 * the framing of the body the exchange writes after it (HTTP1_BODY_LENGTH of remaining
 * bytes, HTTP1_BODY_CHUNKED, or HTTP1_BODY_NONE).  begin returns NULL when c is no HTTP/2
 * stream, when bytes it wrote before still wait (they must reach the client first), or
 * for a status outside 200-599: write the head as bytes then. */
struct h2down_head *h2down_head_begin(struct conn *c, int status, size_t fields);
void h2down_head_field(struct h2down_head *h, const char *name, size_t nlen, const char *value,
		       size_t vlen);
void h2down_head_end(struct h2down_head *h, enum http1_body_kind kind, uint64_t remaining);
/* Free the worker thread's scratch space (at thread exit). */
void h2down_thread_cleanup(void);

#endif
