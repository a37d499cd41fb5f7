/* libFuzzer target for src/authzpb.c: the gRPC authorizer's answer (CheckResponse, gRPC
 * framing, grpc-status) and the CheckRequest built from client bytes.
 *
 * The input is parsed as a CheckResponse: a parse that succeeds must leave every string
 * inside the input, every list within its bound, header names tokens and values free of
 * CR, LF and NUL, and only the fields of the oneof member it names; one that fails must
 * say why.  The same bytes go through the gRPC framer and the grpc-status reader, whose
 * results must stay within the input.  Then the input, cut at newlines into "name:value"
 * fields, is encoded as a CheckRequest's headers: the encoding must fit its buffer or say
 * it does not, and must be well-formed protobuf whose map entries carry lower-case names
 * and values that are valid UTF-8. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "authzpb.h"
#include "errors.h"
#include "fuzz_check.h"

#define MAXF 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const struct authzpb_str *s, const uint8_t *data, size_t size)
{
	return s->len == 0 ||
	       ((const uint8_t *)s->p >= data && (const uint8_t *)s->p + s->len <= data + size);
}

static void check_header(const struct authzpb_header *h, const uint8_t *data, size_t size)
{
	CHECK(h->key.len > 0 && inside(&h->key, data, size) && inside(&h->value, data, size));
	for (size_t i = 0; i < h->key.len; i++)
		CHECK(h->key.p[i] > ' ' && h->key.p[i] < 0x7f && h->key.p[i] != ':');
	for (size_t i = 0; i < h->value.len; i++)
		CHECK(h->value.p[i] != '\r' && h->value.p[i] != '\n' && h->value.p[i] != '\0');
}

static void check_response(const uint8_t *data, size_t size)
{
	static struct authzpb_response r;
	const char *why = NULL;
	int rc = authzpb_response_parse(data, size, &r, &why);

	if (rc != 0) {
		CHECK(rc == MG_EBAD && why != NULL);
		return;
	}
	CHECK(inside(&r.message, data, size) && inside(&r.body, data, size));
	CHECK(r.nheaders <= AUTHZPB_HEADERS_MAX && r.nremove <= AUTHZPB_HEADERS_MAX &&
	      r.nresponse_headers <= AUTHZPB_HEADERS_MAX);
	for (size_t i = 0; i < r.nheaders; i++)
		check_header(&r.headers[i], data, size);
	for (size_t i = 0; i < r.nresponse_headers; i++)
		check_header(&r.response_headers[i], data, size);
	for (size_t i = 0; i < r.nremove; i++)
		CHECK(r.remove[i].len > 0 && inside(&r.remove[i], data, size));
	if (r.kind != AUTHZPB_OK)
		CHECK(r.nremove == 0 && r.nresponse_headers == 0);
	if (r.kind != AUTHZPB_DENIED)
		CHECK(r.http_status == 0 && r.body.len == 0);
	if (r.kind == AUTHZPB_NONE)
		CHECK(r.nheaders == 0);
}

static void check_frame(const uint8_t *data, size_t size)
{
	const uint8_t *msg = NULL;
	size_t len = 0;
	const char *why = NULL;
	ssize_t n = authzpb_grpc_frame(data, size, 4096, &msg, &len, &why);

	CHECK(n == 0 || n == MG_EBAD || (n >= AUTHZPB_GRPC_PREFIX && (size_t)n <= size));
	if (n > 0)
		CHECK(msg == data + AUTHZPB_GRPC_PREFIX && len == (size_t)n - AUTHZPB_GRPC_PREFIX &&
		      len <= 4096);
	if (n == MG_EBAD)
		CHECK(why != NULL);
	CHECK(authzpb_grpc_status((const char *)data, size) >= -1);
}

/* ---- a well-formedness walker over the encoding ---- */

static bool rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;

		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return true;
	}
	return false;
}

static bool utf8_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k = c < 0x80                 ? 1
			   : c >= 0xc2 && c <= 0xdf ? 2
			   : c >= 0xe0 && c <= 0xef ? 3
			   : c >= 0xf0 && c <= 0xf4 ? 4
						    : 0;

		if (k == 0 || n - i < k)
			return false;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

/* Walk a message; depth names the level: 0 CheckRequest, 1 attributes, 2 request, 3 http,
 * 4 a map entry.  The fields that are messages at each level are walked in turn. */
static void walk(const uint8_t *p, const uint8_t *end, int depth)
{
	while (p < end) {
		uint64_t tag, len;
		unsigned field, wt;

		CHECK(rd_varint(&p, end, &tag));
		field = (unsigned)(tag >> 3);
		wt = (unsigned)(tag & 7);
		CHECK(field > 0 && (wt == 0 || wt == 2));
		if (wt == 0) {
			CHECK(rd_varint(&p, end, &len));
			continue;
		}
		CHECK(rd_varint(&p, end, &len) && len <= (uint64_t)(end - p));
		if ((depth == 0 && field == 1) || (depth == 1 && field == 4) ||
		    (depth == 2 && field == 2) || (depth == 3 && field == 3))
			walk(p, p + len, depth + 1);
		else if (depth >= 3)
			CHECK(utf8_ok(p, (size_t)len));
		if (depth == 4 && field == 1)
			for (uint64_t i = 0; i < len; i++)
				CHECK(!(p[i] >= 'A' && p[i] <= 'Z'));
		p += len;
	}
	CHECK(p == end);
}

static void check_encode(const uint8_t *data, size_t size)
{
	static struct authzpb_field f[MAXF];
	static uint8_t out[4 * 65536];
	struct authzpb_check c;
	size_t nf = 0, at = 0;
	ssize_t n;

	while (at < size && nf < MAXF) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t end = nl != NULL ? (size_t)(nl - data) : size;
		const uint8_t *colon = memchr(data + at, ':', end - at);
		size_t split = colon != NULL ? (size_t)(colon - data) : end;

		f[nf].name = (const char *)data + at;
		f[nf].name_len = split - at;
		f[nf].value = (const char *)data + (split < end ? split + 1 : end);
		f[nf].value_len = end - (split < end ? split + 1 : end);
		nf++;
		at = end + 1;
	}
	memset(&c, 0, sizeof(c));
	c.source.address = "127.0.0.1";
	c.source.port = 1;
	c.method = (struct authzpb_str){(const char *)data, size < 8 ? size : 8};
	c.headers = f;
	c.nheaders = nf;
	n = authzpb_check_encode(&c, out, sizeof(out));
	CHECK(n > 0 && (size_t)n <= sizeof(out));
	walk(out, out + n, 0);
	/* the same with too little room: refused, never written past */
	if (n > 1) {
		out[n - 1] = 0xee;
		CHECK(authzpb_check_encode(&c, out, (size_t)n - 1) == -1);
		CHECK(out[n - 1] == 0xee);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_response(data, size);
	check_frame(data, size);
	if (size <= 16384)
		check_encode(data, size);
	return 0;
}
