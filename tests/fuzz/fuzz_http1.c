/* libFuzzer target for src/http1.c.
 *
 * The input is used as is (so corpus files are plain HTTP messages); a hash of it picks the
 * limits profile, the request method for response framing and a split position.  Each input
 * goes through the request parser, the response parser and the chunked decoder, and we
 * check invariants rather than outcomes:
 * - return values are in range, consumed never exceeds len, every pointer handed back lies
 *   inside the bytes that were given;
 * - a prefix of the input gives MG_AGAIN or the same answer as the whole (no parser state
 *   may depend on where reads stopped);
 * - the chunked decoder yields the same payload, trailer bytes and verdict whether fed
 *   whole, in two pieces or byte by byte, and the trailer bytes it hands back are field
 *   lines (name ':' value CRLF).
 * Buffers are exact-size heap copies so ASan catches any read past the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "errors.h"
#include "fuzz_check.h"

#define MAXH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http1_limits profiles[4] = {
    {8192, 4096, MAXH},
    {256, 64, 8},
    {64, 32, 2},
    {65536, 65536, MAXH},
};

static const char *const methods[4] = {"GET", "HEAD", "CONNECT", "POST"};

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static char *dup_exact(const char *src, size_t n)
{
	char *p = malloc(n ? n : 1);

	CHECK(p != NULL);
	memcpy(p, src, n);
	return p;
}

/* ---- chunked ------------------------------------------------------------------------ */

struct ck_res {
	int err, done;
	size_t consumed, plen, tlen;
	char *payload;  /* capacity: input length */
	char *trailers; /* the runs of st.trailers end to end; capacity: input length */
};

/* Feed buf[0..n) in pieces: the first of `first` bytes, then pieces of `step` bytes
 * (0 = the rest at once).  Every piece is its own exact-size allocation. */
static void ck_feed(const char *buf, size_t n, size_t first, size_t step, struct ck_res *r)
{
	struct http1_chunked st;
	size_t off = 0;

	memset(&st, 0, sizeof(st));
	r->err = r->done = 0;
	r->plen = r->tlen = 0;
	while (off < n && !r->err && !st.done) {
		size_t sz = off == 0 && first > 0 ? first : step ? step : n - off, pos = 0;
		char *piece;

		if (sz > n - off)
			sz = n - off;
		piece = dup_exact(buf + off, sz);
		while (pos < sz && !st.done) {
			const char *d = NULL, *why = NULL;
			size_t dlen = 0;
			ssize_t rc =
			    http1_chunked_step(&st, piece + pos, sz - pos, &d, &dlen, &why);

			if (rc < 0) {
				CHECK(rc == MG_EBAD && why != NULL);
				CHECK(st.trailers == NULL && st.trailers_len == 0);
				r->err = 1;
				break;
			}
			CHECK((size_t)rc <= sz - pos);
			CHECK(rc > 0 || st.done); /* always progress */
			CHECK(dlen <= (size_t)rc);
			if (dlen > 0) {
				CHECK(inside(d, dlen, piece + pos, (size_t)rc));
				CHECK(r->plen + dlen <= n);
				memcpy(r->payload + r->plen, d, dlen);
				r->plen += dlen;
			}
			CHECK((st.trailers == NULL) == (st.trailers_len == 0));
			if (st.trailers_len > 0) {
				CHECK(dlen == 0);
				CHECK(
				    inside(st.trailers, st.trailers_len, piece + pos, (size_t)rc));
				CHECK(r->tlen + st.trailers_len <= n);
				CHECK(r->tlen + st.trailers_len <= HTTP1_TRAILER_MAX);
				memcpy(r->trailers + r->tlen, st.trailers, st.trailers_len);
				r->tlen += st.trailers_len;
			}
			pos += (size_t)rc;
		}
		free(piece);
		off += pos;
	}
	r->consumed = off;
	r->done = st.done;
	if (st.done) {
		const char *d, *why;
		size_t dlen;

		CHECK(http1_chunked_step(&st, "0\r\n\r\n", 5, &d, &dlen, &why) == 0);
		CHECK(st.trailers == NULL);
	}
}

/* A finished trailer section: field lines only, each name ':' value CRLF, a token name. */
static void check_trailer_lines(const char *t, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t name = i;

		while (i < n && t[i] != ':') {
			CHECK(t[i] > 0x20 && t[i] < 0x7f && t[i] != '\r' && t[i] != '\n');
			i++;
		}
		CHECK(i < n && i > name);
		while (i < n && t[i] != '\r') {
			CHECK(t[i] != '\n' && t[i] != '\0');
			i++;
		}
		CHECK(i + 1 < n && t[i + 1] == '\n');
		i += 2;
	}
}

static void check_chunked(const char *buf, size_t n, size_t split)
{
	struct ck_res a, b;

	a.payload = malloc(n ? n : 1);
	b.payload = malloc(n ? n : 1);
	a.trailers = malloc(n ? n : 1);
	b.trailers = malloc(n ? n : 1);
	CHECK(a.payload != NULL && b.payload != NULL && a.trailers != NULL && b.trailers != NULL);
	ck_feed(buf, n, 0, 0, &a);
	CHECK(a.consumed <= n);
	CHECK(a.err || a.done || a.consumed == n);
	if (a.done)
		check_trailer_lines(a.trailers, a.tlen);
	ck_feed(buf, n, split, 0, &b);
	CHECK(a.err == b.err && a.done == b.done && a.plen == b.plen);
	CHECK(memcmp(a.payload, b.payload, a.plen) == 0);
	CHECK(!a.done || a.consumed == b.consumed);
	/* a failing call hands back none of its bytes: before a failure, the split decides */
	CHECK(a.err || (a.tlen == b.tlen && memcmp(a.trailers, b.trailers, a.tlen) == 0));
	if (n <= 512) {
		ck_feed(buf, n, 0, 1, &b);
		CHECK(a.err == b.err && a.done == b.done && a.plen == b.plen);
		CHECK(memcmp(a.payload, b.payload, a.plen) == 0);
		CHECK(!a.done || a.consumed == b.consumed);
		CHECK(a.err || (a.tlen == b.tlen && memcmp(a.trailers, b.trailers, a.tlen) == 0));
	}
	free(a.payload);
	free(b.payload);
	free(a.trailers);
	free(b.trailers);
}

/* ---- heads -------------------------------------------------------------------------- */

static void check_fields(const struct http1_header *h, size_t nh, const char *buf, size_t len)
{
	size_t i, j;

	for (i = 0; i < nh; i++) {
		CHECK(h[i].name_len > 0);
		CHECK(inside(h[i].name, h[i].name_len, buf, len));
		CHECK(inside(h[i].value, h[i].value_len, buf, len));
		CHECK(h[i].value > h[i].name);
		for (j = 0; j < h[i].name_len; j++)
			CHECK(h[i].name[j] > 0x20 && h[i].name[j] < 0x7f && h[i].name[j] != ':');
		for (j = 0; j < h[i].value_len; j++) {
			unsigned char c = (unsigned char)h[i].value[j];

			CHECK(c == '\t' || (c >= 0x20 && c != 0x7f)); /* field-content */
		}
		if (h[i].value_len > 0) {
			char f = h[i].value[0], l = h[i].value[h[i].value_len - 1];

			CHECK(f != ' ' && f != '\t' && l != ' ' && l != '\t');
		}
		/* Exercise the helpers on whatever the fuzzer produced. */
		(void)http1_list_has(h[i].value, h[i].value_len, "close");
		(void)http1_list_has(h[i].value, h[i].value_len, "");
		(void)http1_name_eq(h[i].name, h[i].name_len, "transfer-encoding");
	}
}

static int same_fields(const struct http1_header *a, const char *abuf, const struct http1_header *b,
		       const char *bbuf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i].name - abuf != b[i].name - bbuf || a[i].name_len != b[i].name_len ||
		    a[i].value - abuf != b[i].value - bbuf || a[i].value_len != b[i].value_len)
			return 0;
	return 1;
}

static int parse_req(const char *buf, size_t n, const struct http1_limits *lim,
		     struct http1_request *req, struct http1_header *hdr, int *st)
{
	const char *why = NULL;
	int rc;

	memset(req, 0, sizeof(*req));
	req->headers = hdr;
	*st = 0;
	rc = http1_parse_request(buf, n, lim, req, st, &why);
	CHECK(rc > 0 || rc == MG_AGAIN || rc == MG_EBAD);
	if (rc == MG_EBAD)
		CHECK(why != NULL && (*st == 400 || *st == 414 || *st == 431 || *st == 505));
	return rc;
}

static void check_request(const char *buf, size_t n, size_t split, const struct http1_limits *lim)
{
	struct http1_header hdr[MAXH], hdr2[MAXH];
	struct http1_request req, req2;
	enum http1_body_kind kind;
	uint64_t blen;
	const char *why = NULL;
	int st, st2, rc, rc2;
	size_t i;

	rc = parse_req(buf, n, lim, &req, hdr, &st);
	if (rc > 0) {
		size_t h = (size_t)rc;

		CHECK(h <= n && h <= lim->max_head && h >= 16);
		CHECK(memcmp(buf + h - 4, "\r\n\r\n", 4) == 0);
		CHECK(inside(req.method, req.method_len, buf, h) && req.method_len > 0);
		CHECK(inside(req.target, req.target_len, buf, h) && req.target_len > 0);
		for (i = 0; i < req.target_len; i++)
			CHECK(req.target[i] > 0x20 && req.target[i] < 0x7f);
		CHECK(req.minor_version == 0 || req.minor_version == 1);
		CHECK(req.nheaders <= lim->max_headers);
		CHECK(req.host_index >= -1 && req.host_index < (int)req.nheaders);
		CHECK(req.minor_version == 0 || req.host_index >= 0);
		CHECK((req.conn_close | req.expect_continue | req.upgrade) <= 1);
		check_fields(hdr, req.nheaders, buf, h);

		st = 0;
		if (http1_request_framing(&req, &kind, &blen, &st, &why) == MG_EBAD) {
			CHECK(why != NULL && (st == 400 || st == 501));
		} else {
			CHECK(kind == HTTP1_BODY_NONE || kind == HTTP1_BODY_LENGTH ||
			      kind == HTTP1_BODY_CHUNKED);
			CHECK(kind == HTTP1_BODY_LENGTH || blen == 0);
			CHECK(blen <= INT64_MAX);
			if (kind == HTTP1_BODY_CHUNKED)
				check_chunked(buf + h, n - h, split > h ? split - h : 0);
		}
	}

	/* The same bytes cut at `split` must agree with the whole. */
	rc2 = parse_req(buf, split, lim, &req2, hdr2, &st2);
	if (rc == MG_AGAIN) {
		CHECK(rc2 == MG_AGAIN);
	} else if (rc == MG_EBAD) {
		CHECK(rc2 == MG_AGAIN || (rc2 == MG_EBAD && st2 == st));
	} else if (split < (size_t)rc) {
		CHECK(rc2 == MG_AGAIN);
	} else {
		CHECK(rc2 == rc);
		CHECK(req2.method == req.method && req2.method_len == req.method_len);
		CHECK(req2.target == req.target && req2.target_len == req.target_len);
		CHECK(req2.nheaders == req.nheaders && req2.host_index == req.host_index);
		CHECK(req2.conn_close == req.conn_close && req2.upgrade == req.upgrade);
		CHECK(same_fields(hdr, buf, hdr2, buf, req.nheaders));
	}
}

static int parse_resp(const char *buf, size_t n, const struct http1_limits *lim,
		      struct http1_response *resp, struct http1_header *hdr)
{
	const char *why = NULL;
	int rc;

	memset(resp, 0, sizeof(*resp));
	resp->headers = hdr;
	rc = http1_parse_response(buf, n, lim, resp, &why);
	CHECK(rc > 0 || rc == MG_AGAIN || rc == MG_EBAD);
	CHECK(rc != MG_EBAD || why != NULL);
	return rc;
}

static void check_response(const char *buf, size_t n, size_t split, const struct http1_limits *lim,
			   const char *method)
{
	struct http1_header hdr[MAXH], hdr2[MAXH];
	struct http1_response resp, resp2;
	enum http1_body_kind kind;
	uint64_t blen;
	const char *why = NULL;
	int rc, rc2;

	rc = parse_resp(buf, n, lim, &resp, hdr);
	if (rc > 0) {
		size_t h = (size_t)rc;

		CHECK(h <= n && h <= lim->max_head && h >= 16);
		CHECK(memcmp(buf + h - 4, "\r\n\r\n", 4) == 0);
		CHECK(resp.status >= 100 && resp.status <= 599);
		CHECK(resp.minor_version == 0 || resp.minor_version == 1);
		CHECK(inside(resp.reason, resp.reason_len, buf, h));
		CHECK(resp.nheaders <= lim->max_headers);
		CHECK(resp.conn_close == 0 || resp.conn_close == 1);
		check_fields(hdr, resp.nheaders, buf, h);
		if (http1_response_framing(&resp, method, strlen(method), &kind, &blen, &why) ==
		    MG_EBAD) {
			CHECK(why != NULL);
		} else {
			CHECK(kind >= HTTP1_BODY_NONE && kind <= HTTP1_BODY_UNTIL_CLOSE);
			CHECK(kind == HTTP1_BODY_LENGTH || blen == 0);
			if (kind == HTTP1_BODY_CHUNKED)
				check_chunked(buf + h, n - h, split > h ? split - h : 0);
		}
	}
	rc2 = parse_resp(buf, split, lim, &resp2, hdr2);
	if (rc == MG_AGAIN || (rc > 0 && split < (size_t)rc)) {
		CHECK(rc2 == MG_AGAIN);
	} else if (rc == MG_EBAD) {
		CHECK(rc2 == MG_AGAIN || rc2 == MG_EBAD);
	} else {
		CHECK(rc2 == rc && resp2.status == resp.status);
		CHECK(resp2.reason == resp.reason && resp2.reason_len == resp.reason_len);
		CHECK(resp2.nheaders == resp.nheaders && resp2.conn_close == resp.conn_close);
		CHECK(same_fields(hdr, buf, hdr2, buf, resp.nheaders));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i, split;
	char *buf;

	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	split = size ? h % (size + 1) : 0;
	buf = dup_exact((const char *)data, size);

	check_request(buf, size, split, &profiles[(h >> 24) & 3]);
	check_response(buf, size, split, &profiles[(h >> 26) & 3], methods[(h >> 28) & 3]);
	/* The raw input as a chunked body, too: most mutations never make a valid head. */
	check_chunked(buf, size, split);
	free(buf);
	return 0;
}
