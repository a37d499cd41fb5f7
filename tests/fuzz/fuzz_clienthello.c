/* libFuzzer target for src/clienthello.c.
 *
 * The input is used two ways (corpus files are raw ClientHello records as a client sends
 * them, e.g. captured from `openssl s_client`):
 * - as the byte stream itself: parsed whole and cut at a split position picked by a hash of
 *   the input; a prefix must give MG_AGAIN or the same answer as the whole;
 * - as a handshake message body: wrapped into a ClientHello message and carried in one
 *   record and in records of a size picked by the hash (so the mutations reach the
 *   extension parser, which random record framing rarely does); both forms must give the
 *   same verdict, SNI and ALPN.
 * Invariants on success: pointers lie inside the input or the scratch buffer, the SNI is a
 * valid host name, ALPN walks to its end, wire_len <= len.  Buffers are exact-size heap
 * copies so ASan catches any read past the end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"
#include "errors.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[CLIENTHELLO_SCRATCH];

static bool inside(const void *p, size_t n, const void *buf, size_t len)
{
	const uint8_t *x = p, *b = buf;

	return x >= b && n <= len && (size_t)(x - b) <= len - n;
}

struct result {
	int rc;
	struct clienthello ch;
	uint8_t sni[256];
	uint8_t alpn[CLIENTHELLO_MAX];
};

static void run(const uint8_t *src, size_t len, struct result *r)
{
	uint8_t *buf = malloc(len ? len : 1);
	const char *why = NULL;

	CHECK(buf != NULL);
	if (len > 0)
		memcpy(buf, src, len);
	r->rc = clienthello_parse(buf, len, scratch, &r->ch, &why);
	CHECK(r->rc == MG_OK || r->rc == MG_AGAIN || r->rc == MG_EBAD);
	CHECK(r->rc != MG_EBAD || why != NULL);
	if (r->rc == MG_OK) {
		const struct clienthello *ch = &r->ch;
		const uint8_t *name;
		size_t off = 0, nlen, seen = 0;

		CHECK(ch->wire_len >= 9 && ch->wire_len <= len);
		if (ch->sni != NULL) {
			CHECK(inside(ch->sni, ch->sni_len, buf, len) ||
			      inside(ch->sni, ch->sni_len, scratch, sizeof(scratch)));
			CHECK(clienthello_host_valid((const uint8_t *)ch->sni, ch->sni_len));
			memcpy(r->sni, ch->sni, ch->sni_len);
		}
		if (ch->alpn != NULL) {
			CHECK(ch->alpn_len >= 2 && ch->alpn_len <= sizeof(r->alpn));
			CHECK(inside(ch->alpn, ch->alpn_len, buf, len) ||
			      inside(ch->alpn, ch->alpn_len, scratch, sizeof(scratch)));
			while (clienthello_alpn_next(ch, &off, &name, &nlen)) {
				CHECK(nlen > 0 && inside(name, nlen, ch->alpn, ch->alpn_len));
				seen += 1 + nlen;
			}
			CHECK(seen == ch->alpn_len);
			memcpy(r->alpn, ch->alpn, ch->alpn_len);
		}
	}
	free(buf);
}

static void same(const struct result *a, const struct result *b)
{
	CHECK(a->rc == b->rc);
	if (a->rc != MG_OK)
		return;
	CHECK((a->ch.sni == NULL) == (b->ch.sni == NULL));
	CHECK(a->ch.sni_len == b->ch.sni_len && memcmp(a->sni, b->sni, a->ch.sni_len) == 0);
	CHECK(a->ch.alpn_len == b->ch.alpn_len && memcmp(a->alpn, b->alpn, a->ch.alpn_len) == 0);
	CHECK(a->ch.tls13 == b->ch.tls13 && a->ch.version == b->ch.version);
}

/* body wrapped as a ClientHello message, in records of at most `rec` bytes. */
static size_t wrap(const uint8_t *body, size_t n, size_t rec, uint8_t *out)
{
	uint8_t hdr[4] = {1, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	size_t mlen = n + 4, off = 0, o = 0;

	while (off < mlen) {
		size_t k = mlen - off < rec ? mlen - off : rec;

		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		for (size_t i = 0; i < k; i++, off++)
			out[o++] = off < 4 ? hdr[off] : body[off - 4];
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct result whole, part;
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i, split, rec;

	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	split = size ? h % (size + 1) : 0;

	run(data, size, &whole);
	run(data, split, &part);
	if (whole.rc == MG_AGAIN)
		CHECK(part.rc == MG_AGAIN);
	else if (split < size && part.rc != MG_AGAIN)
		same(&part, &whole);

	if (size <= CLIENTHELLO_MAX) {
		size_t cap = (size + 4) * 6 + 16;
		uint8_t *one = malloc(cap), *many = malloc(cap);
		size_t n1, n2;

		CHECK(one != NULL && many != NULL);
		rec = 1 + (h >> 8) % 512;
		n1 = wrap(data, size, 16384, one);
		n2 = wrap(data, size, rec, many);
		run(one, n1, &whole);
		run(many, n2, &part);
		CHECK(whole.rc != MG_AGAIN);
		/* Splitting into many records can only add "spans too many records". */
		if (part.rc != MG_EBAD || n2 < CLIENTHELLO_WIRE_MAX)
			same(&whole, &part);
		free(one);
		free(many);
	}
	return 0;
}
