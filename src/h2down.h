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
 * meshgate made itself.
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

struct conn;
struct evbuffer;
struct h2down;

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
/* Free the worker thread's scratch space (at thread exit). */
void h2down_thread_cleanup(void);

#endif
