/* libFuzzer target for the response side of src/h2conv.c: an upstream's HTTP/2 header
 * block turned into the HTTP/1.1 head proxy.c parses.
 *
 * Input: a flags byte (bit 0: the block ends the stream, bit 1: it is a trailer section),
 * then fields, one a line ('\n'), name and value split at the first ':' after the name's
 * first byte (so ":status:200" is the pseudo-header).  Fields are fed until one is refused,
 * as h2up.c resets the stream then.  Invariant: a head that h2conv writes parses with
 * http1.c's strict response parser, with the same status, and its framing is the one
 * h2conv_resp_head announced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "errors.h"
#include "h2conv.h"
#include "http1.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *fields = evbuffer_new(), *out = evbuffer_new();
	struct h2conv_resp r;
	bool end, ok = true;
	size_t off = 1;

	if (fields == NULL || out == NULL || size == 0)
		goto done;
	end = (data[0] & 1) != 0;
	memset(&r, 0, sizeof(r));
	r.trailers = (data[0] & 2) != 0;
	while (off < size && ok) {
		const uint8_t *line = data + off, *nl = memchr(line, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - line) : size - off;
		const uint8_t *colon = len > 1 ? memchr(line + 1, ':', len - 1) : NULL;

		off += len + 1;
		if (colon == NULL)
			continue;
		ok = h2conv_resp_field(&r, fields, line, (size_t)(colon - line), colon + 1,
				       len - (size_t)(colon - line) - 1) == 0;
		CHECK(ok || r.why != NULL);
	}
	if (ok && !r.trailers) {
		int chunked = h2conv_resp_head(&r, fields, end, out);

		if (chunked >= 0) {
			size_t hl = evbuffer_get_length(out);
			char *head = malloc(hl);
			struct http1_header hdrs[512];
			struct http1_limits lim = {hl, hl, 512};
			struct http1_response resp;
			enum http1_body_kind kind;
			uint64_t length;
			const char *why = NULL;
			int n;

			CHECK(head != NULL);
			evbuffer_remove(out, head, hl);
			memset(&resp, 0, sizeof(resp));
			resp.headers = hdrs;
			n = http1_parse_response(head, hl, &lim, &resp, &why);
			if (n != MG_EBAD || why == NULL || strstr(why, "many") == NULL) {
				CHECK(n == (int)hl);
				CHECK(resp.status == r.status);
				if (http1_response_framing(&resp, "GET", 3, &kind, &length, &why) ==
				    0)
					CHECK((kind == HTTP1_BODY_CHUNKED) == (chunked == 1));
			}
			free(head);
		}
	}
done:
	if (fields != NULL)
		evbuffer_free(fields);
	if (out != NULL)
		evbuffer_free(out);
	return 0;
}
