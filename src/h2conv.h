/* HTTP/1.1 <-> HTTP/2 message translation for HTTP/2 upstreams (h2up.c): the request head
 * proxy.c builds becomes an HTTP/2 header list, an upstream's HTTP/2 response header block
 * becomes the HTTP/1.1 head proxy.c parses.  Pure functions over caller-owned bytes.
 *
 * The response side reads an upstream's bytes: nghttp2 validates the block first, and the
 * checks here do not rely on it (fuzzed: tests/fuzz/fuzz_h2conv.c). */
#ifndef MG_H2CONV_H
#define MG_H2CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "http1.h"

struct evbuffer;

/* RFC 9113 §8.2.2: a field that only means something on an HTTP/1.1 connection
 * (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade; any case). */
bool h2conv_conn_specific(const char *name, size_t len);

/* Request framing of a translated head. */
struct h2conv_req {
	enum http1_body_kind kind; /* NONE, LENGTH or CHUNKED */
	uint64_t length;           /* LENGTH: bytes */
};

/* Translate an HTTP/1.1 request head (request line to the blank line, as proxy.c builds
 * it) into nv: :method, :scheme, :authority (from Host), :path, then the fields with
 * lower-cased names (written into lower, which needs len bytes), without Host and the
 * connection-specific fields (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
 * Upgrade, and TE unless it is "trailers").  The entries point into head and lower.
 * Returns the number of entries, or -1 (not a request head, more than max entries). */
int h2conv_request(const char *head, size_t len, const char *scheme, char *lower, nghttp2_nv *nv,
		   size_t max, struct h2conv_req *info);

/* A response header block being translated (zero it before the block). */
struct h2conv_resp {
	int status;      /* :status, 0 until seen */
	bool has_length; /* content-length among the fields */
	bool trailers;   /* the block is a trailer section: no pseudo-header allowed */
	const char *why; /* set when a call fails */
};

/* One field of the block: :status is kept in r, any other field is appended to fields as
 * "name: value\r\n".  Connection-specific fields are dropped.  Returns 0, or -1 with r->why
 * (an unknown or repeated pseudo-header, a bad name or value, a bad status). */
int h2conv_resp_field(struct h2conv_resp *r, struct evbuffer *fields, const uint8_t *name,
		      size_t nlen, const uint8_t *value, size_t vlen);

/* Write the HTTP/1.1 response head to out: status line, the fields (moved out of fields),
 * and the framing: a content-length of the upstream is kept; a response that ends with
 * its header block (end_stream) gets "content-length: 0"; any other gets chunked framing
 * (the caller then writes DATA as chunks).  Returns 1 when the body is chunked, 0 when
 * not, -1 (r->why) without a :status. */
int h2conv_resp_head(struct h2conv_resp *r, struct evbuffer *fields, bool end_stream,
		     struct evbuffer *out);

#endif
