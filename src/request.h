/* Client side of an exchange: parse the next request head from a connection, check its
 * framing, route it, and either answer locally (404, directResponse, redirect, errors) or
 * hand it to the proxy.  Also the exchange's end: access log line, counters, release. */
#ifndef MG_REQUEST_H
#define MG_REQUEST_H

struct conn;
struct exchange;
struct evbuffer;

enum request_result {
	REQ_AGAIN = 0, /* head incomplete */
	REQ_STARTED,   /* an exchange now owns the connection (c->ex) */
	REQ_DONE,      /* answered locally and finished; the connection stays open */
	REQ_CLOSED,    /* answered with an error; the connection closes after the flush */
};

enum request_result request_begin(struct conn *c);
/* The external authorizer's verdict on ex (extauthz.h): a denial or an error answered, an
 * allowed request routed and forwarded. */
void request_extauthz_done(struct exchange *ex);
/* Log, count and free the exchange (does not touch the connection's state). */
void request_finish(struct exchange *ex);
/* The access log line (flag, details, status 0) of a request whose head waits in c's
 * input and that ended before any exchange read it (an HTTP/2 stream reset at once). */
void request_log_unread(struct conn *c, const char *flag, const char *details);
/* A bare exchange for replies that precede any parsed head (408, 400...). */
struct exchange *request_new(struct conn *c);
/* Really free an exchange (recycled ones are freed at worker exit). */
void request_exchange_free(struct exchange *ex);
/* The CORS header lines for the response to ex, appended to out: only for a request from an
 * origin the route's corsPolicy allows (cors.h), nothing otherwise. */
void request_cors_response(const struct exchange *ex, struct evbuffer *out);
/* Free the worker thread's parsing scratch space (at thread exit). */
void request_thread_cleanup(void);

#endif
