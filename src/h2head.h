/* HTTP/2 <-> HTTP/1.1 heads for HTTP/2 clients (h2down.c): a request's header list becomes
 * the HTTP/1.1 head the exchange parses, the HTTP/1.1 response head the exchange writes
 * becomes the HEADERS field list.  Pure functions over caller-owned bytes.
 *
 * The request side reads a client's bytes: nghttp2 validates the header block first
 * (RFC 9113 §8.2, §8.3), and the checks here do not rely on it (fuzzed:
 * tests/fuzz/fuzz_h2head.c): whatever passes must make a head that http1.c's strict parser
 * reads back as the same request. */
#ifndef MG_H2HEAD_H
#define MG_H2HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

#include "http1.h"

struct evbuffer;

struct h2head_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct h2head_req {
	bool head;    /* the method is HEAD: the response has no body */
	bool chunked; /* the head says "transfer-encoding: chunked": DATA goes as chunks */
};

/* Write the HTTP/1.1 head of a request (the fields of one HEADERS block, in order) to out:
 * the request line from :method and :path, Host from :authority (or the host field), the
 * fields (cookie fields joined into one, RFC 9113 §8.2.3), "transfer-encoding: chunked"
 * when a body may follow (end_stream false) without content-length, and
 * "connection: close" (one exchange per stream).  Returns 0, or -1 with *why for a
 * malformed request (answer 400): a missing, repeated or unknown pseudo-header, one after
 * a regular field, an upper-case or invalid name, an invalid value, a connection-specific
 * field, TE other than "trailers", a host field that differs from :authority. */
int h2head_request(const struct h2head_field *f, size_t n, bool end_stream, struct evbuffer *out,
		   struct h2head_req *info, const char **why);

/* The chunked trailer section of a request (the fields of a trailing HEADERS block) as
 * HTTP/1.1 trailer lines, to out.  Returns 0, or -1 (*why) for a pseudo-header or an
 * invalid field. */
int h2head_trailers(const struct h2head_field *f, size_t n, struct evbuffer *out, const char **why);

/* The field list of a response: ":status" (its three digits written to status, which
 * needs 3 bytes), then the head's fields with lower-cased names (written into lower,
 * which needs as many bytes as the names), without the connection-specific ones
 * (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade).  Entries point
 * into resp's bytes, status and lower.  Returns the count, or -1 when nv's max entries
 * cannot hold ":status" and every field of the head. */
int h2head_response(const struct http1_response *resp, char *status, char *lower, nghttp2_nv *nv,
		    size_t max);
/* The fields nv[first..n) with their names lower-cased into lower (as many bytes as the
 * names), without the connection-specific ones: the count kept from first on is returned,
 * the kept entries moved down and pointing into lower. */
size_t h2head_lower_fields(nghttp2_nv *nv, size_t first, size_t n, char *lower);

#endif
