#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "h2conv.h"
#include "h2head.h"
#include "headbuf.h"

#define NAME_IS(p, n, lit) ((n) == sizeof(lit) - 1 && memcmp((p), (lit), (n)) == 0)

/* Sets of ASCII characters, a bit per character (0-127): tested per byte of every field
 * name and :authority, so a lookup rather than a search of a string. */
struct charset {
	uint64_t w[2];
};

static inline bool in_charset(const struct charset *cs, unsigned char ch)
{
	return ch < 128 && ((cs->w[ch >> 6] >> (ch & 63)) & 1) != 0;
}

/* tchar of RFC 9110 §5.6.2, without upper-case letters (RFC 9113 §8.2.1):
 * a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~ */
static const struct charset lower_tchar = {{0x03ff6cfa00000000ULL, 0x57ffffffc0000000ULL}};
/* :authority (RFC 3986 §3.2.2 host and port): a-z A-Z 0-9 - . _ ~ % ! $ & ' ( ) * + , ; = :
 * [ ] */
static const struct charset authority_char = {{0x2fff7ff200000000ULL, 0x47fffffeaffffffeULL}};

static bool valid_name(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!in_charset(&lower_tchar, (unsigned char)p[i]))
			return false;
	return true;
}

/* RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing whitespace.  Other controls
 * are refused too, as http1.c refuses them. */
static bool valid_value(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t i = 0;

	if (n > 0 && (p[0] == ' ' || p[0] == '\t' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		return false;
	/* eight bytes at a time while none is below 0x20 or 0x7f (a borrow can only flag
	 * bytes above a true hit, so "none" is exact); a word with one is looked at bytewise,
	 * since HTAB is allowed */
	for (; n - i >= 8; i += 8) {
		uint64_t x, del;

		memcpy(&x, p + i, 8);
		del = x ^ (ones * 0x7f);
		if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs)
			break;
	}
	for (; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

/* A method, path or authority goes into the request line: visible characters only. */
static bool valid_line_part(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch <= 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/* host [ ":" port ] of RFC 3986 §3.2.2: unreserved, pct-encoded, sub-delims, ":" and the
 * brackets of an IPv6 literal; no userinfo (RFC 9113 §8.3.1). */
static bool valid_authority(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!in_charset(&authority_char, (unsigned char)p[i]))
			return false;
	return true;
}

static int fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

/* A regular field of a request head or trailer section: -1 (*why) when invalid. */
static int check_field(const struct h2head_field *h, const char **why)
{
	if (!valid_name(h->name, h->name_len))
		return fail(why, "invalid header name");
	if (!valid_value(h->value, h->value_len))
		return fail(why, "invalid header value");
	if (h2conv_conn_specific(h->name, h->name_len))
		return fail(why, "connection-specific header field");
	if (NAME_IS(h->name, h->name_len, "te") &&
	    !(h->value_len == 8 && strncasecmp(h->value, "trailers", 8) == 0))
		return fail(why, "TE other than trailers");
	return 0;
}

int h2head_request(const struct h2head_field *f, size_t n, bool end_stream, struct evbuffer *out,
		   struct h2head_req *info, const char **why)
{
	const struct h2head_field *method = NULL, *path = NULL, *authority = NULL, *scheme = NULL;
	const struct h2head_field *host = NULL;
	bool regular = false, has_length = false, cookie = false;
	struct headbuf hb;
	size_t i;

	memset(info, 0, sizeof(*info));
	for (i = 0; i < n; i++) {
		const struct h2head_field *h = &f[i];
		const struct h2head_field **slot = NULL;

		if (h->name_len > 0 && h->name[0] == ':') {
			if (regular)
				return fail(why, "pseudo-header after a regular field");
			if (NAME_IS(h->name, h->name_len, ":method"))
				slot = &method;
			else if (NAME_IS(h->name, h->name_len, ":path"))
				slot = &path;
			else if (NAME_IS(h->name, h->name_len, ":authority"))
				slot = &authority;
			else if (NAME_IS(h->name, h->name_len, ":scheme"))
				slot = &scheme;
			else
				return fail(why, "unknown pseudo-header");
			if (*slot != NULL)
				return fail(why, "repeated pseudo-header");
			*slot = h;
			continue;
		}
		regular = true;
		if (check_field(h, why) != 0)
			return -1;
		if (NAME_IS(h->name, h->name_len, "host")) {
			if (host != NULL)
				return fail(why, "more than one host field");
			host = h;
		} else if (NAME_IS(h->name, h->name_len, "content-length")) {
			has_length = true;
		}
	}
	if (method == NULL || !valid_line_part(method->value, method->value_len))
		return fail(why, "missing or invalid :method");
	if (NAME_IS(method->value, method->value_len, "CONNECT")) {
		/* RFC 9113 §8.5: :authority only; extended CONNECT is not offered */
		if (path != NULL || scheme != NULL || authority == NULL)
			return fail(why, "malformed CONNECT request");
	} else {
		if (path == NULL || scheme == NULL ||
		    !valid_line_part(path->value, path->value_len))
			return fail(why, "missing or invalid :path or :scheme");
		if (path->value[0] != '/' &&
		    !(path->value_len == 1 && path->value[0] == '*' &&
		      NAME_IS(method->value, method->value_len, "OPTIONS")))
			return fail(why, "invalid :path");
	}
	if (authority != NULL) {
		if (!valid_authority(authority->value, authority->value_len))
			return fail(why, "invalid :authority");
		/* RFC 9113 §8.3.1: a host field naming another entity makes it malformed */
		if (host != NULL &&
		    (host->value_len != authority->value_len ||
		     strncasecmp(host->value, authority->value, host->value_len) != 0))
			return fail(why, "host field differs from :authority");
	}
	if (authority == NULL)
		authority = host;
	info->head = NAME_IS(method->value, method->value_len, "HEAD");

	/* one copy into a stack buffer, one evbuffer_add (headbuf.h) */
	headbuf_init(&hb, out);
	headbuf_add(&hb, method->value, method->value_len);
	HEADBUF_LIT(&hb, " ");
	if (path != NULL)
		headbuf_add(&hb, path->value, path->value_len);
	else
		headbuf_add(&hb, authority->value, authority->value_len);
	HEADBUF_LIT(&hb, " HTTP/1.1\r\n");
	if (authority != NULL)
		headbuf_header(&hb, "host", 4, authority->value, authority->value_len);
	for (i = 0; i < n; i++) {
		const struct h2head_field *h = &f[i];

		if (h->name[0] == ':' || h == host)
			continue;
		if (NAME_IS(h->name, h->name_len, "cookie")) {
			cookie = true;
			continue;
		}
		headbuf_header(&hb, h->name, h->name_len, h->value, h->value_len);
	}
	if (cookie) {
		const char *sep = "cookie: ";

		for (i = 0; i < n; i++)
			if (NAME_IS(f[i].name, f[i].name_len, "cookie")) {
				headbuf_str(&hb, sep);
				headbuf_add(&hb, f[i].value, f[i].value_len);
				sep = "; ";
			}
		HEADBUF_LIT(&hb, "\r\n");
	}
	if (!end_stream && !has_length) {
		HEADBUF_LIT(&hb, "transfer-encoding: chunked\r\n");
		info->chunked = true;
	}
	HEADBUF_LIT(&hb, "connection: close\r\n\r\n");
	headbuf_flush(&hb);
	return 0;
}

int h2head_trailers(const struct h2head_field *f, size_t n, struct evbuffer *out, const char **why)
{
	struct headbuf hb;

	for (size_t i = 0; i < n; i++) {
		if (f[i].name_len > 0 && f[i].name[0] == ':')
			return fail(why, "pseudo-header in trailers");
		if (check_field(&f[i], why) != 0)
			return -1;
	}
	headbuf_init(&hb, out);
	for (size_t i = 0; i < n; i++)
		headbuf_header(&hb, f[i].name, f[i].name_len, f[i].value, f[i].value_len);
	headbuf_flush(&hb);
	return 0;
}

/* n bytes of src to dst, A-Z lowered: eight at a time, a flag in bit 7 of each byte for
 * the ones in 'A'..'Z' (computed on their low seven bits, so no carry crosses a byte),
 * shifted down to the 0x20 that lowers them. */
static void copy_lower(char *dst, const uint8_t *src, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t k = 0;

	for (; n - k >= 8; k += 8) {
		uint64_t x, low, ge_a, gt_z;

		memcpy(&x, src + k, 8);
		low = x & ~highs;
		ge_a = low + ones * (0x80 - 'A');
		gt_z = low + ones * (0x7f - 'Z');
		x ^= ((ge_a ^ gt_z) & ~x & highs) >> 2;
		memcpy(dst + k, &x, 8);
	}
	for (; k < n; k++)
		dst[k] = (char)(src[k] >= 'A' && src[k] <= 'Z' ? src[k] - 'A' + 'a' : src[k]);
}

size_t h2head_lower_fields(nghttp2_nv *nv, size_t first, size_t n, char *lower)
{
	size_t at = 0, kept = first;

	for (size_t i = first; i < n; i++) {
		char *name = lower + at;
		size_t len = nv[i].namelen;

		copy_lower(name, nv[i].name, len);
		if (h2conv_conn_specific(name, len))
			continue;
		at += len;
		nv[kept] = nv[i];
		nv[kept++].name = (uint8_t *)name;
	}
	return kept;
}

int h2head_response(const struct http1_response *resp, char *status, char *lower, nghttp2_nv *nv,
		    size_t max)
{
	size_t n = 0;
	int s = resp->status;

	if (max == 0 || resp->nheaders > max - 1)
		return -1;
	status[0] = (char)('0' + s / 100 % 10);
	status[1] = (char)('0' + s / 10 % 10);
	status[2] = (char)('0' + s % 10);
	nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		nv[n++] = (nghttp2_nv){(uint8_t *)h->name, (uint8_t *)h->value, h->name_len,
				       h->value_len, NGHTTP2_NV_FLAG_NONE};
	}
	return (int)h2head_lower_fields(nv, 1, n, lower);
}
