#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clienthello.h"
#include "errors.h"

#define CH_RECORD_HEADER 5
#define CH_RECORD_MAX 16384 /* TLSPlaintext.length, 2^14 */
#define CH_CT_HANDSHAKE 22
#define CH_HS_CLIENT_HELLO 1
#define CH_EXT_SERVER_NAME 0
#define CH_EXT_ALPN 16
#define CH_EXT_SUPPORTED_VERSIONS 43
#define CH_HOST_MAX 255

/* A bounds-checked reader over one buffer: every get fails once the data runs out, so the
 * parsing code below reads like the RFC's structures. */
struct ch_rd {
	const uint8_t *p;
	size_t len, off;
};

static bool ch_u8(struct ch_rd *r, size_t *v)
{
	if (r->len - r->off < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

static bool ch_u16(struct ch_rd *r, size_t *v)
{
	if (r->len - r->off < 2)
		return false;
	*v = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
	r->off += 2;
	return true;
}

/* A length-prefixed vector <lo..hi> with a width-byte length: its contents in *sub. */
static bool ch_vec(struct ch_rd *r, int width, size_t lo, size_t hi, struct ch_rd *sub)
{
	size_t n;

	if (!(width == 1 ? ch_u8(r, &n) : ch_u16(r, &n)))
		return false;
	if (n < lo || n > hi || r->len - r->off < n)
		return false;
	sub->p = r->p + r->off;
	sub->len = n;
	sub->off = 0;
	r->off += n;
	return true;
}

bool clienthello_is_tls(const uint8_t *buf, size_t len)
{
	return len >= 1 && buf[0] == CH_CT_HANDSHAKE;
}

int clienthello_sni_ext(const uint8_t *p, size_t len, const uint8_t **name, size_t *nlen)
{
	struct ch_rd r = {p, len, 0}, list, host;
	size_t type;

	/* ServerNameList server_name_list<1..2^16-1>, exactly filling the extension. */
	if (!ch_vec(&r, 2, 1, 65535, &list) || r.off != r.len)
		return MG_EBAD;
	/* One entry: more names of one type are forbidden (RFC 6066), and host_name is the only
	 * type there is, so a second entry of any type is refused as OpenSSL does. */
	if (!ch_u8(&list, &type) || type != 0 || !ch_vec(&list, 2, 1, 65535, &host) ||
	    list.off != list.len)
		return MG_EBAD;
	*name = host.p;
	*nlen = host.len;
	return MG_OK;
}

bool clienthello_host_valid(const uint8_t *s, size_t n)
{
	size_t i;

	if (n == 0 || n > CH_HOST_MAX)
		return false;
	for (i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* ProtocolNameList protocol_name_list<2..2^16-1>; ProtocolName<1..2^8-1>. */
static bool ch_alpn_check(const uint8_t *p, size_t len, const uint8_t **list, size_t *llen)
{
	struct ch_rd r = {p, len, 0}, l, name;

	if (!ch_vec(&r, 2, 2, 65535, &l) || r.off != r.len)
		return false;
	while (l.off < l.len)
		if (!ch_vec(&l, 1, 1, 255, &name))
			return false;
	*list = l.p;
	*llen = l.len;
	return true;
}

/* supported_versions (client): ProtocolVersion versions<2..254>. */
static bool ch_versions(const uint8_t *p, size_t len, bool *tls13)
{
	struct ch_rd r = {p, len, 0}, l;
	size_t v;

	if (!ch_vec(&r, 1, 2, 254, &l) || r.off != r.len || l.len % 2 != 0)
		return false;
	while (ch_u16(&l, &v))
		if (v == 0x0304)
			*tls13 = true;
	return true;
}

/* The message body (after the 4-byte handshake header), complete. */
static int ch_body(const uint8_t *p, size_t len, struct clienthello *ch, const char **why)
{
	struct ch_rd r = {p, len, 0}, v, exts;
	size_t ver, type;
	bool seen_sni = false, seen_alpn = false, seen_versions = false;

	if (!ch_u16(&r, &ver) || (ver >> 8) != 3) {
		*why = "ClientHello: not a TLS version";
		return MG_EBAD;
	}
	ch->version = (uint16_t)ver;
	if (r.len - r.off < 32) {
		*why = "ClientHello: truncated random";
		return MG_EBAD;
	}
	r.off += 32;
	if (!ch_vec(&r, 1, 0, 32, &v)) {
		*why = "ClientHello: bad session id";
		return MG_EBAD;
	}
	if (!ch_vec(&r, 2, 2, 65534, &v) || v.len % 2 != 0) {
		*why = "ClientHello: bad cipher suite list";
		return MG_EBAD;
	}
	if (!ch_vec(&r, 1, 1, 255, &v)) {
		*why = "ClientHello: bad compression method list";
		return MG_EBAD;
	}
	if (r.off == r.len)
		return MG_OK; /* no extensions (allowed before TLS 1.3): no SNI */
	if (!ch_vec(&r, 2, 0, 65535, &exts) || r.off != r.len) {
		*why = "ClientHello: bad extensions length";
		return MG_EBAD;
	}
	while (exts.off < exts.len) {
		struct ch_rd data;

		if (!ch_u16(&exts, &type) || !ch_vec(&exts, 2, 0, 65535, &data)) {
			*why = "ClientHello: truncated extension";
			return MG_EBAD;
		}
		switch (type) {
		case CH_EXT_SERVER_NAME: {
			const uint8_t *name;
			size_t n;

			if (seen_sni) {
				*why = "ClientHello: server_name sent twice";
				return MG_EBAD;
			}
			seen_sni = true;
			if (clienthello_sni_ext(data.p, data.len, &name, &n) != MG_OK) {
				*why = "ClientHello: malformed server_name extension";
				return MG_EBAD;
			}
			if (!clienthello_host_valid(name, n)) {
				*why = "ClientHello: invalid SNI host name";
				return MG_EBAD;
			}
			ch->sni = (const char *)name;
			ch->sni_len = n;
			break;
		}
		case CH_EXT_ALPN:
			if (seen_alpn) {
				*why = "ClientHello: ALPN sent twice";
				return MG_EBAD;
			}
			seen_alpn = true;
			if (!ch_alpn_check(data.p, data.len, &ch->alpn, &ch->alpn_len)) {
				*why = "ClientHello: malformed ALPN extension";
				return MG_EBAD;
			}
			break;
		case CH_EXT_SUPPORTED_VERSIONS:
			if (seen_versions || !ch_versions(data.p, data.len, &ch->tls13)) {
				*why = "ClientHello: malformed supported_versions extension";
				return MG_EBAD;
			}
			seen_versions = true;
			break;
		default:
			break;
		}
	}
	return MG_OK;
}

/* One record header at buf[off]: MG_OK with its payload length, MG_AGAIN or MG_EBAD. */
static int ch_record(const uint8_t *buf, size_t len, size_t off, size_t *plen, const char **why)
{
	size_t avail = len - off;

	/* Refuse as early as the first byte tells: a port scan or plain HTTP is not TLS. */
	if (avail >= 1 && buf[off] != CH_CT_HANDSHAKE) {
		*why = off == 0 ? "not a TLS handshake record"
				: "ClientHello interleaved with "
				  "another record type";
		return MG_EBAD;
	}
	if (avail >= 2 && buf[off + 1] != 3) {
		*why = "not a TLS record version";
		return MG_EBAD;
	}
	if (avail < CH_RECORD_HEADER)
		return MG_AGAIN;
	*plen = (size_t)buf[off + 3] << 8 | buf[off + 4];
	if (*plen == 0 || *plen > CH_RECORD_MAX) {
		*why = "bad TLS record length";
		return MG_EBAD;
	}
	return MG_OK;
}

/* The handshake header once its 4 bytes are known: MG_OK with the message length. */
static int ch_header(const uint8_t *h, size_t have, size_t *need, const char **why)
{
	size_t body;

	if (have >= 1 && h[0] != CH_HS_CLIENT_HELLO) {
		*why = "first handshake message is not a ClientHello";
		return MG_EBAD;
	}
	if (have < 4)
		return MG_AGAIN;
	body = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	if (body > CLIENTHELLO_MAX) {
		*why = "ClientHello too large";
		return MG_EBAD;
	}
	*need = 4 + body;
	return MG_OK;
}

static int ch_again(size_t len, const char **why)
{
	if (len >= CLIENTHELLO_WIRE_MAX) {
		*why = "ClientHello spans too many records";
		return MG_EBAD;
	}
	return MG_AGAIN;
}

int clienthello_parse(const uint8_t *buf, size_t len, uint8_t *scratch, struct clienthello *ch,
		      const char **why)
{
	size_t off = 0, plen, have = 0, need = 0;
	int rc;

	memset(ch, 0, sizeof(*ch));
	*why = NULL;
	if ((rc = ch_record(buf, len, 0, &plen, why)) != MG_OK)
		return rc == MG_AGAIN ? ch_again(len, why) : rc;
	/* The common case: the whole message inside the first record, parsed where it lies. */
	rc = ch_header(buf + CH_RECORD_HEADER,
		       len - CH_RECORD_HEADER < plen ? len - CH_RECORD_HEADER : plen, &need, why);
	if (rc == MG_EBAD)
		return rc;
	if (rc == MG_OK && need <= plen) {
		if (len - CH_RECORD_HEADER < need)
			return ch_again(len, why);
		ch->wire_len = CH_RECORD_HEADER + need;
		return ch_body(buf + CH_RECORD_HEADER + 4, need - 4, ch, why);
	}
	/* Fragmented over records: gather the message into scratch. */
	need = 0;
	for (;;) {
		size_t avail, take;

		if (off == len)
			return ch_again(len, why);
		if ((rc = ch_record(buf, len, off, &plen, why)) != MG_OK)
			return rc == MG_AGAIN ? ch_again(len, why) : rc;
		avail = len - off - CH_RECORD_HEADER;
		if (avail > plen)
			avail = plen;
		take = avail;
		if (take > CLIENTHELLO_SCRATCH - have)
			take = CLIENTHELLO_SCRATCH - have;
		memcpy(scratch + have, buf + off + CH_RECORD_HEADER, take);
		have += take;
		if (need == 0 && (rc = ch_header(scratch, have, &need, why)) == MG_EBAD)
			return rc;
		if (need > 0 && have >= need) {
			/* The message ends in this record: what follows it is not ours. */
			ch->wire_len = off + CH_RECORD_HEADER + (take - (have - need));
			return ch_body(scratch + 4, need - 4, ch, why);
		}
		if (avail < plen)
			return ch_again(len, why);
		off += CH_RECORD_HEADER + plen;
	}
}

bool clienthello_alpn_next(const struct clienthello *ch, size_t *off, const uint8_t **name,
			   size_t *nlen)
{
	size_t n;

	if (ch->alpn == NULL || *off >= ch->alpn_len)
		return false;
	n = ch->alpn[*off];
	/* The list was checked by the parser; stay inside it regardless. */
	if (n == 0 || n > ch->alpn_len - *off - 1)
		return false;
	*name = ch->alpn + *off + 1;
	*nlen = n;
	*off += 1 + n;
	return true;
}
