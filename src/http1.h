/* RFC 9112 HTTP/1.1 message head parsing and body framing.
 *
 * Pure functions over caller-owned bytes: nothing here allocates, nothing keeps state
 * between calls except the explicit struct http1_chunked.  Parsed names and values point
 * into the caller's buffer (zero-copy), so the buffer must outlive the parsed head. */
#ifndef MG_HTTP1_H
#define MG_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http1_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading/trailing OWS already stripped */
	size_t value_len;
};

struct http1_limits {
	size_t max_head;         /* whole head incl. request line, bytes (431 when exceeded) */
	size_t max_request_line; /* request line, bytes (414 when exceeded) */
	size_t max_headers;      /* header field count (431 when exceeded) */
};

struct http1_request {
	const char *method;
	size_t method_len;
	const char *target; /* request-target exactly as sent */
	size_t target_len;
	int minor_version;            /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
	struct http1_header *headers; /* caller-provided array of capacity max_headers */
	size_t nheaders;
	/* Filled by http1_parse_request when it succeeds (so the proxy need not rescan): */
	int host_index;      /* index of the one Host header, -1 if none */
	int conn_close;      /* Connection: close (1.1) or no keep-alive (1.0) */
	int expect_continue; /* Expect: 100-continue */
	int upgrade;         /* Connection: upgrade + Upgrade header present */
};

struct http1_response {
	int minor_version;
	int status;
	const char *reason;
	size_t reason_len;
	struct http1_header *headers;
	size_t nheaders;
	int conn_close;
};

/* Parse a request head from buf[0..len).
 * Returns the head length in bytes (> 0, including the final CRLF CRLF) when complete,
 * MG_AGAIN when more bytes are needed (and no limit is exceeded yet), or MG_EBAD with
 * *why set to a static reason and *status set to the HTTP status to answer
 * (400, 414, 431, 501 for unknown transfer coding, 505 for an unsupported version).
 * Strict: no obs-fold, no bare CR or LF, no whitespace before ':', no NUL/CTL in values,
 * token grammar for method and field names, single SP separators, at most one Host. */
int http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
			struct http1_request *req, int *status, const char **why);

/* Parse a response head (from an upstream).  Same return convention; *why is set on
 * MG_EBAD. Accepts 1xx..5xx three-digit codes only; reason phrase may be empty. */
int http1_parse_response(const char *buf, size_t len, const struct http1_limits *lim,
			 struct http1_response *resp, const char **why);

enum http1_body_kind {
	HTTP1_BODY_NONE = 0,    /* no body */
	HTTP1_BODY_LENGTH,      /* Content-Length bytes */
	HTTP1_BODY_CHUNKED,     /* chunked transfer coding */
	HTTP1_BODY_UNTIL_CLOSE, /* responses only: read until the connection closes */
};

/* Decide request body framing per RFC 9112 §6.  Rejects (MG_EBAD + *why, answer 400 and
 * close) every case where framing is in doubt: Transfer-Encoding together with
 * Content-Length, Transfer-Encoding whose final coding is not chunked or that lists
 * chunked twice, any Transfer-Encoding on HTTP/1.0, Content-Length that is not 1*DIGIT,
 * overflows, or several Content-Length values that differ (identical repeats are allowed).
 * A non-chunked coding before chunked ("gzip, chunked") is 501 (*status). */
int http1_request_framing(const struct http1_request *req, enum http1_body_kind *kind,
			  uint64_t *length, int *status, const char **why);

/* Decide response body framing (RFC 9112 §6.3) given the request method and status:
 * HEAD, 1xx, 204, 304 -> NONE; 2xx to CONNECT -> NONE (tunnel handled by caller);
 * chunked -> CHUNKED; Content-Length -> LENGTH; otherwise UNTIL_CLOSE.
 * Invalid/conflicting framing -> MG_EBAD (caller answers 502). */
int http1_response_framing(const struct http1_response *resp, const char *method, size_t method_len,
			   enum http1_body_kind *kind, uint64_t *length, const char **why);

/* Incremental chunked-body decoder. Zero-initialise, then feed bytes. */
struct http1_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk's data */
	size_t line_len;    /* bytes seen in the current size/extension or trailer line */
	size_t trailer_len; /* bytes of trailer section so far */
	int done;           /* 1 once the last-chunk and trailer section are consumed */
	/* Set by every http1_chunked_step call (NULL and 0 when none): the trailer field-line
	 * bytes that call consumed, a run of its buf.  The runs of the calls up to done, put
	 * end to end, are the trailer section without its final CRLF: whole field lines, each
	 * ending in CRLF, that passed the checks below.  Bytes of a call that fails are not
	 * reported, so a caller that keeps the runs uses them only once done is set. */
	const char *trailers;
	size_t trailers_len;
};

#define HTTP1_CHUNK_LINE_MAX 4096 /* chunk-size line incl. extensions */
#define HTTP1_TRAILER_MAX 16384   /* whole trailer section */

/* Consume bytes from buf[0..len).  Returns bytes consumed (>= 0) or MG_EBAD (*why).
 * At most one run of chunk payload is reported per call through *data and *data_len (pointing
 * into buf; *data_len == 0 when the call consumed only framing).  The caller loops until
 * all input is consumed or st->done.  Trailer fields are validated as header fields are
 * (token name, no whitespace before ':', field-content values, CRLF only, at most
 * HTTP1_TRAILER_MAX bytes in all) and handed back through st->trailers; a call reports
 * payload or trailer bytes, never both.  Bytes after the end of the body are not consumed. */
ssize_t http1_chunked_step(struct http1_chunked *st, const char *buf, size_t len, const char **data,
			   size_t *data_len, const char **why);

/* The line before a chunk of n bytes, "<n in hex>\r\n", at out (HTTP1_CHUNK_SIZE_LINE
 * bytes of room); returns its length.  For every writer of chunked framing (no printf). */
#define HTTP1_CHUNK_SIZE_LINE 18
size_t http1_chunk_size_line(uint64_t n, char *out);

/* Case-insensitive ASCII compare helpers used by every module dealing with header names. */
int http1_name_eq(const char *a, size_t alen, const char *lit);

/* Eight bytes, ASCII upper case folded to lower, all at once: a byte is upper case when
 * adding 0x3f to its low seven bits carries into bit 7 (>= 'A') and adding 0x25 does not
 * (<= 'Z'); bytes >= 0x80 are left alone. */
static inline uint64_t http1_lower8(uint64_t x)
{
	uint64_t low7 = x & 0x7f7f7f7f7f7f7f7fULL;
	uint64_t upper = ((low7 + 0x3f3f3f3f3f3f3f3fULL) ^ (low7 + 0x2525252525252525ULL)) & ~x &
			 0x8080808080808080ULL;

	return x | (upper >> 2);
}

/* a[0..n) equals lit[0..n) ignoring ASCII case, lit in lower case.  Exact for any bytes; a
 * word at a time because header names are compared on every request (a byte loop, or
 * strncasecmp through the PLT, was ~3% of a proxied request's instructions). */
static inline int http1_caseeq(const char *a, const char *lit, size_t n)
{
	uint64_t x, y;

	for (; n >= 8; a += 8, lit += 8, n -= 8) {
		__builtin_memcpy(&x, a, 8);
		__builtin_memcpy(&y, lit, 8);
		if (http1_lower8(x) != y)
			return 0;
	}
	if (n == 0)
		return 1;
	x = y = 0;
	__builtin_memcpy(&x, a, n);
	__builtin_memcpy(&y, lit, n);
	return http1_lower8(x) == y;
}

/* A name (or token) of known length against a lower-case string literal. */
#define HTTP1_NAME_IS(p, len, lit)                                                                 \
	((len) == sizeof(lit) - 1 && http1_caseeq((p), (lit), sizeof(lit) - 1))
/* Does the comma-separated list value contain token (case-insensitive, OWS-trimmed)? */
int http1_list_has(const char *value, size_t len, const char *token);

#endif
