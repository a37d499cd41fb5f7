/* libFuzzer target for the request side of src/h2head.c: an HTTP/2 client's header block
 * turned into the HTTP/1.1 head the exchange parses.
 *
 * Input: a flags byte (bit 0: the block ends the stream, bit 1: treat it as a trailer
 * section), then fields, one a line ('\n'), name and value split at the first ':' after
 * the name's first byte (so ":method:GET" is the pseudo-header).  Invariant: a head that
 * h2head_request writes parses with http1.c's strict request parser as one whole head,
 * with the same method, a Host when the block named an authority, framing that is the
 * one announced (chunked exactly when info.chunked), and nothing smuggled: no second
 * request after it.  Trailer lines written by h2head_trailers end a chunked body that
 * http1.c's chunked decoder accepts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "errors.h"
#include "h2head.h"
#include "http1.h"
#include "fuzz_check.h"

#define MAX_FIELDS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(struct evbuffer *out, const struct h2head_field *f, size_t n,
			  const struct h2head_req *info)
{
	size_t hl = evbuffer_get_length(out);
	char *head = malloc(hl + 1);
	struct http1_header hdrs[MAX_FIELDS + 8];
	struct http1_limits lim = {hl + 1, hl + 1, MAX_FIELDS + 8};
	struct http1_request req;
	enum http1_body_kind kind;
	uint64_t length;
	const char *why = NULL;
	int status = 0, r;
	const struct h2head_field *method = NULL;

	CHECK(head != NULL);
	evbuffer_remove(out, head, hl);
	memset(&req, 0, sizeof(req));
	req.headers = hdrs;
	r = http1_parse_request(head, hl, &lim, &req, &status, &why);
	for (size_t i = 0; i < n; i++)
		if (f[i].name_len == 7 && memcmp(f[i].name, ":method", 7) == 0)
			method = &f[i];
	/* The parser may refuse what HTTP/1.1 forbids and HTTP/2 allows (a method that is
	 * not a token...), but never finds the head incomplete, never ends it early. */
	CHECK(r != MG_AGAIN);
	if (r > 0) {
		CHECK((size_t)r == hl);
		CHECK(method != NULL && req.method_len == method->value_len &&
		      memcmp(req.method, method->value, req.method_len) == 0);
		CHECK(req.conn_close);
		if (http1_request_framing(&req, &kind, &length, &status, &why) == 0)
			CHECK((kind == HTTP1_BODY_CHUNKED) == info->chunked);
	}
	free(head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *out = evbuffer_new();
	struct h2head_field f[MAX_FIELDS];
	struct h2head_req info;
	const char *why = NULL;
	size_t off = 1, n = 0;
	bool end, trailers;

	if (out == NULL || size == 0)
		goto done;
	end = (data[0] & 1) != 0;
	trailers = (data[0] & 2) != 0;
	while (off < size && n < MAX_FIELDS) {
		const uint8_t *line = data + off, *nl = memchr(line, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - line) : size - off;
		const uint8_t *colon = len > 1 ? memchr(line + 1, ':', len - 1) : NULL;

		off += len + 1;
		if (colon == NULL)
			continue;
		f[n++] = (struct h2head_field){(const char *)line, (size_t)(colon - line),
					       (const char *)colon + 1,
					       len - (size_t)(colon - line) - 1};
	}
	if (trailers) {
		if (h2head_trailers(f, n, out, &why) == 0) {
			struct http1_chunked ck;
			const char *d = NULL;
			size_t dlen = 0;
			ssize_t k;
			char *buf;
			size_t bl;

			evbuffer_prepend(out, "0\r\n", 3);
			evbuffer_add(out, "\r\n", 2);
			bl = evbuffer_get_length(out);
			buf = (char *)evbuffer_pullup(out, (ev_ssize_t)bl);
			memset(&ck, 0, sizeof(ck));
			k = http1_chunked_step(&ck, buf, bl, &d, &dlen, &why);
			/* a section over HTTP1_TRAILER_MAX is refused, never misread */
			CHECK(k == MG_EBAD || (k == (ssize_t)bl && ck.done));
		} else {
			CHECK(why != NULL);
		}
	} else if (h2head_request(f, n, end, out, &info, &why) == 0) {
		check_request(out, f, n, &info);
	} else {
		CHECK(why != NULL);
	}
done:
	if (out != NULL)
		evbuffer_free(out);
	return 0;
}
