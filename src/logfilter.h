/* The access log filter of a Telemetry (accessLogging[].filter.expression, Envoy's CEL
 * access log filter): judged over the fields of one finished exchange or relayed
 * connection, after they are gathered for the log line and before it is written. */
#ifndef MG_LOGFILTER_H
#define MG_LOGFILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http1.h"

struct accesslog_entry;
struct cfg_set;
struct exchange;
struct ssl_st;

enum logfilter_side { LOGFILTER_REQUEST = 0, LOGFILTER_RESPONSE = 1 };

/* Copy into ex the header fields of one side that the access log reads by name: the
 * filter's request.headers['x'], response.headers['x'], request.referer, the format's
 * %REQ(X)% and %RESP(X)%; a no-op when it reads none. */
void logfilter_keep_headers(struct exchange *ex, const struct cfg_set *set,
			    enum logfilter_side side, const struct http1_header *h, size_t n);

/* Whether the line passes set's filter (true when there is none).  ex: the exchange the
 * entry is of (NULL for a TCP or TLS passthrough connection); ssl: the client's TLS
 * connection when meshgate terminates it, else NULL. */
bool logfilter_pass(const struct cfg_set *set, const struct accesslog_entry *e,
		    const struct exchange *ex, const struct ssl_st *ssl);

#endif
