/* Strict RFC 9112 HTTP/1.1 message parsing: request/status line, header section, body
 * framing decisions and an incremental chunked decoder.
 *
 * Design notes:
 * - Every check is a left-to-right decision over bytes already seen, so a prefix of a message
 *   either yields MG_AGAIN or the very same error as the whole message.  Limits are checked
 *   against what is already buffered, so an incomplete head that cannot fit is refused at
 *   once instead of letting a slow client grow our buffers.
 * - Character classes come from one static table; header values and request-targets (the
 *   bulk of a head) are scanned eight bytes at a time.
 * - Nothing allocates; parsed names/values point into the caller's buffer. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "http1.h"
#include "errors.h"

/* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
 * We skip a few (clients that send a stray CRLF after a POST body) but not an unbounded run. */
#define HTTP1_MAX_EMPTY_LINES 4

/* Character classes (bit flags). */
#define C_TCHAR 0x01  /* RFC 9110 §5.6.2 tchar */
#define C_VCHAR 0x02  /* field-vchar: VCHAR / obs-text (RFC 9110 §5.5) */
#define C_WS 0x04     /* SP / HTAB */
#define C_TARGET 0x08 /* visible ASCII 0x21-0x7E allowed in a request-target */
#define C_HEX 0x10    /* HEXDIG */
#define C_DIGIT 0x20  /* DIGIT */
#define C_HOST 0x40   /* RFC 3986 unreserved / sub-delims (reg-name without pct-encoded) */
#define C_FVALUE (C_VCHAR | C_WS)

/* obs-text 0x80-0xFF: allowed in field values only. */
#define OBS8 C_VCHAR, C_VCHAR, C_VCHAR, C_VCHAR, C_VCHAR, C_VCHAR, C_VCHAR, C_VCHAR

/* Derived from the RFC 9110 / RFC 3986 ABNF; each row names its characters. */
// clang-format off
static const uint8_t cls[256] = {
	/* 0x00 CTL              */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x08 CTL (0x09 HTAB)  */ 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x10 CTL              */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x18 CTL              */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x20 SP ! " # $ % & ' */ 0x04, 0x4b, 0x0a, 0x0b, 0x4b, 0x0b, 0x4b, 0x4b,
	/* 0x28 ( ) * + , - . /  */ 0x4a, 0x4a, 0x4b, 0x4b, 0x4a, 0x4b, 0x4b, 0x0a,
	/* 0x30 0 1 2 3 4 5 6 7  */ 0x7b, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b,
	/* 0x38 8 9 : ; < = > ?  */ 0x7b, 0x7b, 0x0a, 0x4a, 0x0a, 0x4a, 0x0a, 0x0a,
	/* 0x40 @ A B C D E F G  */ 0x0a, 0x5b, 0x5b, 0x5b, 0x5b, 0x5b, 0x5b, 0x4b,
	/* 0x48 H I J K L M N O  */ 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b,
	/* 0x50 P Q R S T U V W  */ 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b,
	/* 0x58 X Y Z [ \ ] ^ _  */ 0x4b, 0x4b, 0x4b, 0x0a, 0x0a, 0x0a, 0x0b, 0x4b,
	/* 0x60 ` a b c d e f g  */ 0x0b, 0x5b, 0x5b, 0x5b, 0x5b, 0x5b, 0x5b, 0x4b,
	/* 0x68 h i j k l m n o  */ 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b,
	/* 0x70 p q r s t u v w  */ 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b,
	/* 0x78 x y z { | } ~ DEL */ 0x4b, 0x4b, 0x4b, 0x0a, 0x0b, 0x0a, 0x4b, 0x00,
	OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, /* 0x80-0xbf */
	OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, OBS8, /* 0xc0-0xff */
};
// clang-format on

#define IS(c, f) ((cls[(unsigned char)(c)] & (f)) != 0)

/* SWAR helpers: HAS_LESS(x, n) is non-zero iff some byte of x is < n (n <= 128); a borrow
 * can only cause false hits above a true one, so "any byte?" is answered exactly. */
// clang-format off
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_LESS(x, n) (((x) - ONES * (n)) & ~(x) & HIGHS)
#define HAS_BYTE(x, v) HAS_LESS((x) ^ (ONES * (v)), 1)
// clang-format on

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(HTTP1_PORTABLE)
/* Offset of the first flagged byte in a non-zero HAS_LESS/HIGHS mask: on little-endian the
 * lowest set bit is the earliest byte in memory, and it is never a false hit.  Elsewhere we
 * fall back to a byte loop over the flagged word (-DHTTP1_PORTABLE forces it, for tests). */
#define FIRST_HIT(m) ((size_t)__builtin_ctzll(m) >> 3)
#endif

/* First index in [p, end) that is not field-content (HTAB / SP / VCHAR / obs-text). */
static size_t skip_fvalue(const unsigned char *b, size_t p, size_t end)
{
	while (end - p >= 8) {
		uint64_t x = load64(b + p);
		uint64_t m = HAS_LESS(x, 0x20) | HAS_BYTE(x, 0x7f); /* CTL (incl. HTAB) or DEL */

		if (m == 0) {
			p += 8;
			continue;
		}
#ifdef FIRST_HIT
		p += FIRST_HIT(m);
		if (b[p] != '\t')
			return p;
		p++;
#else
		for (size_t stop = p + 8; p < stop; p++)
			if (!IS(b[p], C_FVALUE))
				return p;
#endif
	}
	while (p < end && IS(b[p], C_FVALUE))
		p++;
	return p;
}

/* First index in [p, end) that is not a request-target character (0x21-0x7E). */
static size_t skip_target(const unsigned char *b, size_t p, size_t end)
{
	while (end - p >= 8) {
		uint64_t x = load64(b + p);
		uint64_t m = HAS_LESS(x, 0x21) | HAS_BYTE(x, 0x7f) | (x & HIGHS);

		if (m != 0) {
#ifdef FIRST_HIT
			return p + FIRST_HIT(m);
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end && IS(b[p], C_TARGET))
		p++;
	return p;
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static inline unsigned hexval(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(lower(c) - 'a' + 10);
}

static int eq_nocase(const char *a, const char *lit, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)lit[i]))
			return 0;
	return 1;
}

/* Header name check against a lower-case literal, length known at compile time. */
#define NAME_IS(h, lit) HTTP1_NAME_IS((h)->name, (h)->name_len, lit)

int http1_name_eq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);

	return alen == n && eq_nocase(a, lit, n);
}

int http1_list_has(const char *value, size_t len, const char *token)
{
	size_t tlen = strlen(token), i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		s = i;
		while (i < len && value[i] != ',')
			i++;
		e = i;
		while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
			e--;
		if (e > s && e - s == tlen && eq_nocase(value + s, token, tlen))
			return 1;
	}
	return 0;
}

/* Connection options we act on (RFC 9110 §7.6.1), found in one pass over the list. */
#define CONN_CLOSE 1
#define CONN_KEEPALIVE 2
#define CONN_UPGRADE 4

static int conn_tokens(const char *v, size_t len)
{
	size_t i = 0, s, e;
	int found = 0;

	/* nearly every Connection field is one of these alone */
	if (HTTP1_NAME_IS(v, len, "keep-alive"))
		return CONN_KEEPALIVE;
	if (HTTP1_NAME_IS(v, len, "close"))
		return CONN_CLOSE;

	while (i < len) {
		while (i < len && (v[i] == ',' || IS(v[i], C_WS)))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		for (e = i; e > s && IS(v[e - 1], C_WS); e--)
			;
		if (HTTP1_NAME_IS(v + s, e - s, "close"))
			found |= CONN_CLOSE;
		else if (HTTP1_NAME_IS(v + s, e - s, "keep-alive"))
			found |= CONN_KEEPALIVE;
		else if (HTTP1_NAME_IS(v + s, e - s, "upgrade"))
			found |= CONN_UPGRADE;
	}
	return found;
}

static int fail(int *status, const char **why, int st, const char *msg)
{
	if (status != NULL)
		*status = st;
	if (why != NULL)
		*why = msg;
	return MG_EBAD;
}

/* Ran out of buffered bytes.  If the buffer already holds max_head bytes the head is
 * provably too large (RFC 9112 §2.3 leaves the bound to us; RFC 6585 §5 says 431). */
static int need_more(int capped, int *status, const char **why)
{
	if (capped)
		return fail(status, why, 431, "header section too large");
	return MG_AGAIN;
}

static size_t add_sat(size_t a, size_t b)
{
	return b > SIZE_MAX - a ? SIZE_MAX : a + b;
}

/* "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3; HTTP-name is case-sensitive).  Checks the bytes
 * that are present so garbage is refused early.  Returns 1 when all 8 bytes are present
 * and well-formed, 0 when more are needed, -1 on garbage, -2 when the line limit (rle)
 * cuts through it. */
static int scan_version(const unsigned char *b, size_t p, size_t end, size_t rle)
{
	static const char pat[] = "HTTP/x.y";
	int i;

	/* what nearly every message says, in one compare */
	if (p + 8 <= end && p + 8 <= rle && memcmp(b + p, "HTTP/1.1", 8) == 0)
		return 1;
	for (i = 0; i < 8; i++, p++) {
		if (p >= rle)
			return -2;
		if (p >= end)
			return 0;
		if (i == 5 || i == 7) {
			if (!IS(b[p], C_DIGIT))
				return -1;
		} else if (b[p] != (unsigned char)pat[i]) {
			return -1;
		}
	}
	return 1;
}

/* Header section after the start line (RFC 9112 §5, RFC 9110 §5.5).  Returns the index just
 * past the empty line, MG_AGAIN or MG_EBAD. */
static int parse_fields(const unsigned char *b, size_t p, size_t end, int capped, size_t max,
			struct http1_header *hdr, size_t *nhdr, int *status, const char **why)
{
	size_t n = 0;

	for (;;) {
		size_t ns, nl, vs, ve;

		if (p >= end)
			return need_more(capped, status, why);
		if (b[p] == '\r') {
			if (p + 1 >= end)
				return need_more(capped, status, why);
			if (b[p + 1] != '\n')
				return fail(status, why, 400, "bare CR in header section");
			*nhdr = n;
			return (int)(p + 2);
		}
		if (n >= max)
			return fail(status, why, 431, "too many header fields");
		/* RFC 9112 §5.2: obs-fold is deprecated; a server may reject it with 400, and a
		 * proxy that let it through would hand its peer an ambiguous field. */
		if (IS(b[p], C_WS))
			return fail(status, why, 400, "obsolete line folding");
		ns = p;
		while (p < end && IS(b[p], C_TCHAR))
			p++;
		if (p >= end)
			return need_more(capped, status, why);
		if (b[p] != ':') {
			/* RFC 9112 §5.1: no whitespace between field name and colon (400). */
			if (IS(b[p], C_WS))
				return fail(status, why, 400, "whitespace before colon");
			if (b[p] == '\n')
				return fail(status, why, 400, "bare LF in header section");
			return fail(status, why, 400, "invalid header field name");
		}
		if (p == ns)
			return fail(status, why, 400, "empty header field name");
		nl = p - ns;
		p++;
		while (p < end && IS(b[p], C_WS))
			p++;
		vs = p;
		p = skip_fvalue(b, p, end);
		if (p >= end)
			return need_more(capped, status, why);
		if (b[p] != '\r') {
			if (b[p] == '\n')
				return fail(status, why, 400, "bare LF in header section");
			return fail(status, why, 400, "invalid character in header value");
		}
		if (p + 1 >= end)
			return need_more(capped, status, why);
		if (b[p + 1] != '\n')
			return fail(status, why, 400, "bare CR in header section");
		ve = p;
		while (ve > vs && IS(b[ve - 1], C_WS))
			ve--;
		hdr[n].name = (const char *)b + ns;
		hdr[n].name_len = nl;
		hdr[n].value = (const char *)b + vs;
		hdr[n].value_len = ve - vs;
		n++;
		p += 2;
	}
}

/* RFC 3986 §3.2 authority as allowed in Host and request-targets: uri-host [":" port], no
 * userinfo (RFC 9110 §4.2.4).  We also refuse an empty host (RFC 9110 §4.2.1: an "http"
 * URI with an empty host is invalid) and IPvFuture.  An empty port ("host:") is valid
 * (RFC 3986 port = *DIGIT) except where a port is needed (CONNECT). */
static int valid_authority(const unsigned char *s, size_t n, int need_port)
{
	size_t i = 0, port_digits = 0;
	unsigned long port = 0;

	if (n == 0)
		return 0;
	if (s[0] == '[') {
		char tmp[INET6_ADDRSTRLEN];
		unsigned char addr[16];

		while (i < n && s[i] != ']')
			i++;
		if (i == n || i - 1 == 0 || i - 1 >= sizeof(tmp))
			return 0;
		memcpy(tmp, s + 1, i - 1);
		tmp[i - 1] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			return 0;
		i++;
	} else {
		while (i < n && s[i] != ':') {
			if (IS(s[i], C_HOST))
				i++;
			else if (s[i] == '%' && n - i >= 3 && IS(s[i + 1], C_HEX) &&
				 IS(s[i + 2], C_HEX))
				i += 3;
			else
				return 0;
		}
		if (i == 0)
			return 0;
	}
	if (i == n)
		return !need_port;
	if (s[i++] != ':')
		return 0;
	for (; i < n; i++) {
		if (!IS(s[i], C_DIGIT) || ++port_digits > 5)
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return (port_digits > 0 || !need_port) && port <= 65535;
}

/* A field name that reads as Content-Length or Transfer-Encoding once its '_' are taken for
 * '-'.  It is no framing field (RFC 9110 §5.1), but gateways that speak CGI (RFC 3875
 * §4.1.18) or PHP-style environments map both characters to '_', so an origin behind us
 * could frame the body by it while we framed it without. */
static int framing_alias(const struct http1_header *h)
{
	const char *lit;
	int alias = 0;

	if (h->name_len == 14)
		lit = "content-length";
	else if (h->name_len == 17)
		lit = "transfer-encoding";
	else
		return 0;
	for (size_t i = 0; i < h->name_len; i++) {
		unsigned char c = lower((unsigned char)h->name[i]);

		if (c == '_' && lit[i] == '-')
			alias = 1;
		else if (c != (unsigned char)lit[i])
			return 0;
	}
	return alias;
}

/* RFC 9112 §3.2: origin-form for everyone, absolute-form (http/https only: we are an HTTP
 * gateway), authority-form only for CONNECT, asterisk-form only for OPTIONS. */
static const char *check_target(const char *m, size_t mlen, const char *t, size_t tlen)
{
	size_t skip, i;

	/* RFC 9112 §3.2: no form has a fragment.  Where it ends the path for one peer and
	 * not for another, the two route different paths. */
	if (memchr(t, '#', tlen) != NULL)
		return "fragment in request-target";
	if (mlen == 7 && memcmp(m, "CONNECT", 7) == 0)
		return valid_authority((const unsigned char *)t, tlen, 1)
			   ? NULL
			   : "CONNECT needs an authority-form target";
	if (t[0] == '/')
		return NULL;
	if (tlen == 1 && t[0] == '*')
		return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0
			   ? NULL
			   : "asterisk-form only with OPTIONS";
	if (tlen >= 7 && eq_nocase(t, "http://", 7))
		skip = 7;
	else if (tlen >= 8 && eq_nocase(t, "https://", 8))
		skip = 8;
	else
		return "invalid request-target";
	for (i = skip; i < tlen && t[i] != '/' && t[i] != '?'; i++)
		;
	if (!valid_authority((const unsigned char *)t + skip, i - skip, 0))
		return "invalid authority in absolute-form target";
	return NULL;
}

int http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
			struct http1_request *req, int *status, const char **why)
{
	const unsigned char *b = (const unsigned char *)buf;
	size_t maxh = lim->max_head > INT_MAX ? INT_MAX : lim->max_head;
	size_t end = len < maxh ? len : maxh, p = 0, ls, rle, se, ts, i;
	int capped = len >= maxh, rc, nempty, conn = 0, has_upgrade = 0, expect = 0;
	const char *err;

	/* Skip a bounded number of empty lines (RFC 9112 §2.2); they count in the head. */
	for (nempty = 0;; nempty++) {
		if (p >= end)
			return need_more(capped, status, why);
		if (b[p] != '\r')
			break;
		if (p + 1 >= end)
			return need_more(capped, status, why);
		if (b[p + 1] != '\n')
			return fail(status, why, 400, "bare CR before request-line");
		if (nempty == HTTP1_MAX_EMPTY_LINES)
			return fail(status, why, 400, "too many empty lines before request-line");
		p += 2;
	}

	/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3).  Its
	 * bytes (without CRLF) must fit in [ls, rle); the CR may sit at rle. */
	ls = p;
	rle = add_sat(ls, lim->max_request_line);
	se = end < rle ? end : rle;
	while (p < se && IS(b[p], C_TCHAR))
		p++;
	if (p == se)
		return se == rle ? fail(status, why, 414, "request-line too long")
				 : need_more(capped, status, why);
	if (p == ls || b[p] != ' ')
		return fail(status, why, 400, b[p] == '\n' ? "bare LF" : "invalid method");
	req->method = buf + ls;
	req->method_len = p - ls;
	ts = ++p;
	p = skip_target(b, p, se);
	if (p == se)
		return se == rle ? fail(status, why, 414, "request-line too long")
				 : need_more(capped, status, why);
	if (p == ts || b[p] != ' ')
		return fail(status, why, 400, "invalid request-target");
	req->target = buf + ts;
	req->target_len = p - ts;
	p++;
	rc = scan_version(b, p, end, rle);
	if (rc == -2)
		return fail(status, why, 414, "request-line too long");
	if (rc == -1)
		return fail(status, why, 400, "invalid HTTP version");
	if (rc == 0)
		return need_more(capped, status, why);
	p += 8;
	if (p >= end)
		return need_more(capped, status, why);
	if (b[p] != '\r')
		return fail(status, why, 400, b[p] == '\n' ? "bare LF" : "invalid HTTP version");
	if (p + 1 >= end)
		return need_more(capped, status, why);
	if (b[p + 1] != '\n')
		return fail(status, why, 400, "bare CR in request-line");
	/* RFC 9110 §6.2: we speak 1.0 and 1.1 only; other versions get 505. */
	if (b[p - 3] != '1' || (b[p - 1] != '0' && b[p - 1] != '1'))
		return fail(status, why, 505, "HTTP version not supported");
	req->minor_version = b[p - 1] - '0';
	err = check_target(req->method, req->method_len, req->target, req->target_len);
	if (err != NULL)
		return fail(status, why, 400, err);

	rc = parse_fields(b, p + 2, end, capped, lim->max_headers, req->headers, &req->nheaders,
			  status, why);
	if (rc < 0)
		return rc;

	/* One pass over the fields for what the proxy needs on every request. */
	req->host_index = -1;
	for (i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		switch (h->name_len) {
		case 4:
			if (!NAME_IS(h, "host"))
				break;
			/* RFC 9112 §3.2: more than one Host line -> 400. */
			if (req->host_index >= 0)
				return fail(status, why, 400, "multiple Host headers");
			req->host_index = (int)i;
			break;
		case 6:
			if (NAME_IS(h, "expect") &&
			    http1_list_has(h->value, h->value_len, "100-continue"))
				expect = 1;
			break;
		case 7:
			if (NAME_IS(h, "upgrade"))
				has_upgrade = 1;
			break;
		case 10:
			if (NAME_IS(h, "connection"))
				conn |= conn_tokens(h->value, h->value_len);
			break;
		case 14:
		case 17:
			if (framing_alias(h))
				return fail(status, why, 400, "framing field name with '_'");
			break;
		}
	}
	if (req->host_index < 0 && req->minor_version == 1)
		return fail(status, why, 400, "missing Host header");
	if (req->host_index >= 0) {
		const struct http1_header *h = &req->headers[req->host_index];

		if (!valid_authority((const unsigned char *)h->value, h->value_len, 0))
			return fail(status, why, 400, "invalid Host header");
	}
	/* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 closes unless "keep-alive". */
	req->conn_close = req->minor_version == 0 ? (conn & CONN_CLOSE) || !(conn & CONN_KEEPALIVE)
						  : (conn & CONN_CLOSE) != 0;
	/* RFC 9110 §10.1.1 and §7.8: Expect and Upgrade are ignored on HTTP/1.0. */
	req->expect_continue = req->minor_version == 1 && expect;
	req->upgrade = req->minor_version == 1 && (conn & CONN_UPGRADE) && has_upgrade;
	return rc;
}

int http1_parse_response(const char *buf, size_t len, const struct http1_limits *lim,
			 struct http1_response *resp, const char **why)
{
	const unsigned char *b = (const unsigned char *)buf;
	size_t maxh = lim->max_head > INT_MAX ? INT_MAX : lim->max_head;
	size_t end = len < maxh ? len : maxh, p = 0, rle, i;
	int capped = len >= maxh, rc, conn = 0;

	/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4).
	 * No leading empty lines: §2.2 only grants that leniency to requests. */
	rle = lim->max_request_line;
	rc = scan_version(b, 0, end, rle);
	if (rc == -2)
		return fail(NULL, why, 0, "status-line too long");
	if (rc == -1)
		return fail(NULL, why, 0, "invalid status-line version");
	if (rc == 0)
		return need_more(capped, NULL, why);
	if (b[5] != '1' || (b[7] != '0' && b[7] != '1'))
		return fail(NULL, why, 0, "unsupported HTTP version");
	resp->minor_version = b[7] - '0';
	/* SP 3DIGIT */
	for (p = 8; p < 12; p++) {
		if (p >= rle)
			return fail(NULL, why, 0, "status-line too long");
		if (p >= end)
			return need_more(capped, NULL, why);
		if (p == 8 ? b[p] != ' ' : !IS(b[p], C_DIGIT))
			return fail(NULL, why, 0, "invalid status-line");
	}
	resp->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	if (resp->status < 100 || resp->status > 599)
		return fail(NULL, why, 0, "invalid status code");
	if (p >= end)
		return need_more(capped, NULL, why);
	resp->reason = buf + p;
	resp->reason_len = 0;
	/* Some servers omit the reason phrase, with or without its SP: tolerate both. */
	if (b[p] == ' ') {
		size_t q = skip_fvalue(b, p + 1, end < add_sat(rle, 1) ? end : add_sat(rle, 1));

		if (q > rle)
			return fail(NULL, why, 0, "status-line too long");
		if (q >= end)
			return need_more(capped, NULL, why);
		resp->reason = buf + p + 1;
		resp->reason_len = q - p - 1;
		p = q;
	}
	if (b[p] != '\r')
		return fail(NULL, why, 0, b[p] == '\n' ? "bare LF" : "invalid status-line");
	if (p + 1 >= end)
		return need_more(capped, NULL, why);
	if (b[p + 1] != '\n')
		return fail(NULL, why, 0, "bare CR in status-line");

	rc = parse_fields(b, p + 2, end, capped, lim->max_headers, resp->headers, &resp->nheaders,
			  NULL, why);
	if (rc < 0)
		return rc;
	for (i = 0; i < resp->nheaders; i++) {
		const struct http1_header *h = &resp->headers[i];

		if (NAME_IS(h, "connection"))
			conn |= conn_tokens(h->value, h->value_len);
	}
	resp->conn_close = resp->minor_version == 0
			       ? (conn & CONN_CLOSE) || !(conn & CONN_KEEPALIVE)
			       : (conn & CONN_CLOSE) != 0;
	return rc;
}

/* What the Transfer-Encoding lines of a message say, taken as one combined list
 * (RFC 9110 §5.3). */
struct te_info {
	int present;  /* at least one Transfer-Encoding line */
	int invalid;  /* syntax we refuse to interpret */
	int ncodings; /* non-empty list elements */
	int nchunked;
	int last_chunked;
};

static void scan_te(const struct http1_header *hdr, size_t n, struct te_info *te)
{
	size_t i;

	memset(te, 0, sizeof(*te));
	for (i = 0; i < n; i++) {
		const char *v = hdr[i].value;
		size_t len = hdr[i].value_len, p = 0, ts;
		int chunked;

		if (!NAME_IS(&hdr[i], "transfer-encoding"))
			continue;
		te->present = 1;
		while (p < len) {
			/* RFC 9110 §5.6.1: tolerate empty list elements. */
			if (v[p] == ',' || IS(v[p], C_WS)) {
				p++;
				continue;
			}
			ts = p;
			while (p < len && IS(v[p], C_TCHAR))
				p++;
			if (p == ts) {
				te->invalid = 1;
				return;
			}
			chunked = p - ts == 7 && eq_nocase(v + ts, "chunked", 7);
			while (p < len && IS(v[p], C_WS))
				p++;
			if (p < len && v[p] == ';') {
				/* transfer-parameters: chunked takes none; for others we only
				 * need to find the next comma, so refuse quoted-strings (which
				 * could hide one) and anything that is not token-ish. */
				if (chunked) {
					te->invalid = 1;
					return;
				}
				while (p < len && v[p] != ',') {
					if (!IS(v[p], C_TCHAR | C_WS) && v[p] != ';' &&
					    v[p] != '=') {
						te->invalid = 1;
						return;
					}
					p++;
				}
			}
			if (p < len && v[p] != ',') {
				te->invalid = 1;
				return;
			}
			te->ncodings++;
			te->nchunked += chunked;
			te->last_chunked = chunked;
		}
	}
}

/* Content-Length (RFC 9110 §8.6, RFC 9112 §6.3 rule 5): 1*DIGIT, possibly repeated as a
 * list or over several lines; every value must be identical.  Returns 0 when absent,
 * 1 with *out set, -1 when invalid. */
static int scan_cl(const struct http1_header *hdr, size_t n, uint64_t *out)
{
	size_t i;
	int found = 0;

	for (i = 0; i < n; i++) {
		const char *v = hdr[i].value;
		size_t len = hdr[i].value_len, p = 0;

		if (!NAME_IS(&hdr[i], "content-length"))
			continue;
		for (;;) {
			uint64_t val = 0;
			size_t ds = p;

			while (p < len && IS(v[p], C_DIGIT)) {
				unsigned d = (unsigned)(v[p++] - '0');

				if (val > ((uint64_t)INT64_MAX - d) / 10)
					return -1;
				val = val * 10 + d;
			}
			if (p == ds || (found && val != *out))
				return -1;
			*out = val;
			found = 1;
			while (p < len && IS(v[p], C_WS))
				p++;
			if (p == len)
				break;
			if (v[p++] != ',')
				return -1;
			while (p < len && IS(v[p], C_WS))
				p++;
		}
	}
	return found;
}

int http1_request_framing(const struct http1_request *req, enum http1_body_kind *kind,
			  uint64_t *length, int *status, const char **why)
{
	struct te_info te;
	uint64_t cl = 0;
	int rc = scan_cl(req->headers, req->nheaders, &cl);

	*kind = HTTP1_BODY_NONE;
	*length = 0;
	scan_te(req->headers, req->nheaders, &te);
	if (te.present) {
		/* RFC 9112 §6.1: TE in a 1.0 message means faulty framing; TE plus CL is the
		 * classic smuggling vector, which a gateway must not forward (§6.3 rule 3). */
		if (req->minor_version == 0)
			return fail(status, why, 400, "Transfer-Encoding in HTTP/1.0 request");
		if (rc != 0)
			return fail(status, why, 400, "both Transfer-Encoding and Content-Length");
		if (te.invalid || te.ncodings == 0)
			return fail(status, why, 400, "invalid Transfer-Encoding");
		if (te.nchunked > 1)
			return fail(status, why, 400, "chunked applied more than once");
		/* §6.3 rule 4: a request whose final coding is not chunked -> 400. */
		if (!te.last_chunked)
			return fail(status, why, 400, "final transfer coding is not chunked");
		/* RFC 9112 §6.1: a coding we do not understand -> 501. */
		if (te.ncodings > 1)
			return fail(status, why, 501, "unsupported transfer coding");
		*kind = HTTP1_BODY_CHUNKED;
		return MG_OK;
	}
	if (rc < 0)
		return fail(status, why, 400, "invalid Content-Length");
	if (rc > 0) {
		*kind = HTTP1_BODY_LENGTH;
		*length = cl;
	}
	return MG_OK;
}

int http1_response_framing(const struct http1_response *resp, const char *method, size_t method_len,
			   enum http1_body_kind *kind, uint64_t *length, const char **why)
{
	struct te_info te;
	uint64_t cl = 0;
	int rc;

	*kind = HTTP1_BODY_NONE;
	*length = 0;
	/* RFC 9112 §6.3 rules 1 and 2 (methods are case-sensitive, RFC 9110 §9.1). */
	if ((method_len == 4 && memcmp(method, "HEAD", 4) == 0) || resp->status < 200 ||
	    resp->status == 204 || resp->status == 304)
		return MG_OK;
	if (method_len == 7 && memcmp(method, "CONNECT", 7) == 0 && resp->status < 300)
		return MG_OK;
	rc = scan_cl(resp->headers, resp->nheaders, &cl);
	scan_te(resp->headers, resp->nheaders, &te);
	if (te.present) {
		if (resp->minor_version == 0)
			return fail(NULL, why, 0, "Transfer-Encoding in HTTP/1.0 response");
		if (rc != 0)
			return fail(NULL, why, 0, "both Transfer-Encoding and Content-Length");
		if (te.invalid || te.ncodings == 0)
			return fail(NULL, why, 0, "invalid Transfer-Encoding");
		if (te.nchunked > 1)
			return fail(NULL, why, 0, "chunked applied more than once");
		/* Rule 4: final chunked -> chunked; otherwise read until close. */
		*kind = te.last_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_UNTIL_CLOSE;
		return MG_OK;
	}
	if (rc < 0)
		return fail(NULL, why, 0, "invalid Content-Length");
	if (rc > 0) {
		*kind = HTTP1_BODY_LENGTH;
		*length = cl;
		return MG_OK;
	}
	*kind = HTTP1_BODY_UNTIL_CLOSE; /* rule 8 */
	return MG_OK;
}

/* Chunked decoder states (RFC 9112 §7.1).  CK_SIZE must be 0: callers zero-initialise. */
enum {
	CK_SIZE = 0,     /* chunk-size hex digits; remaining accumulates the value */
	CK_SIZE_BWS,     /* BWS after the size or an extension: only ';' may follow */
	CK_EXT_NAME0,    /* after ';': BWS, then chunk-ext-name */
	CK_EXT_NAME,     /* in chunk-ext-name */
	CK_EXT_NAME_BWS, /* BWS after a name: '=' or ';' may follow */
	CK_EXT_VAL0,     /* after '=': BWS, then a token or a quoted-string */
	CK_EXT_TOKEN,    /* in a token value */
	CK_EXT_QUOTED,   /* in a quoted-string value */
	CK_EXT_QPAIR,    /* after a backslash in a quoted-string */
	CK_EXT_QEND,     /* after the closing quote */
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TR_START, /* start of a trailer line, or the final CRLF */
	CK_TR_NAME,
	CK_TR_VALUE,
	CK_TR_LF,
	CK_END_LF,
	CK_DONE,
	CK_ERROR,
};

static ssize_t ck_fail(struct http1_chunked *st, const char **why, const char *msg)
{
	st->state = CK_ERROR;
	return fail(NULL, why, 0, msg);
}

/* One byte of a chunk-ext (RFC 9112 §7.1.1), up to and including the CR that ends the line:
 *   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-val = token / quoted-string
 * BWS only where the ABNF has it: not before the CR.  Returns 0 when c cannot come next. */
static int ck_ext_byte(struct http1_chunked *st, unsigned char c)
{
	switch (st->state) {
	case CK_SIZE_BWS:
		if (c == ';')
			st->state = CK_EXT_NAME0;
		return c == ';' || IS(c, C_WS);
	case CK_EXT_NAME0:
		if (IS(c, C_TCHAR))
			st->state = CK_EXT_NAME;
		return IS(c, C_TCHAR | C_WS);
	case CK_EXT_NAME:
		if (IS(c, C_TCHAR))
			return 1;
		if (c == '\r') {
			st->state = CK_SIZE_LF;
			return 1;
		}
		/* what may follow BWS may follow the name */
		/* fall through */
	case CK_EXT_NAME_BWS:
		if (c == '=')
			st->state = CK_EXT_VAL0;
		else if (c == ';')
			st->state = CK_EXT_NAME0;
		else if (IS(c, C_WS))
			st->state = CK_EXT_NAME_BWS;
		else
			return 0;
		return 1;
	case CK_EXT_VAL0:
		if (c == '"')
			st->state = CK_EXT_QUOTED;
		else if (IS(c, C_TCHAR))
			st->state = CK_EXT_TOKEN;
		else if (!IS(c, C_WS))
			return 0;
		return 1;
	case CK_EXT_TOKEN:
		if (IS(c, C_TCHAR))
			return 1;
		/* a token value ends as a quoted one does */
		/* fall through */
	case CK_EXT_QEND:
		if (c == ';')
			st->state = CK_EXT_NAME0;
		else if (c == '\r')
			st->state = CK_SIZE_LF;
		else if (IS(c, C_WS))
			st->state = CK_SIZE_BWS;
		else
			return 0;
		return 1;
	case CK_EXT_QUOTED:
		/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
		if (c == '"')
			st->state = CK_EXT_QEND;
		else if (c == '\\')
			st->state = CK_EXT_QPAIR;
		else if (!IS(c, C_FVALUE))
			return 0;
		return 1;
	default: /* CK_EXT_QPAIR: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
		st->state = CK_EXT_QUOTED;
		return IS(c, C_FVALUE);
	}
}

ssize_t http1_chunked_step(struct http1_chunked *st, const char *buf, size_t len, const char **data,
			   size_t *data_len, const char **why)
{
	const unsigned char *b = (const unsigned char *)buf;
	size_t p = 0, q;
	size_t tb = 0, te = 0; /* the trailer field-line bytes of this call: buf[tb..te) */

	*data = NULL;
	*data_len = 0;
	st->trailers = NULL;
	st->trailers_len = 0;
	if (st->state == CK_ERROR)
		return ck_fail(st, why, "chunked decoder already failed");
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (p < len && !st->done) {
		unsigned char c = b[p];

		switch (st->state) {
		case CK_SIZE:
			if (IS(c, C_HEX)) {
				/* 16 hex digits fill a uint64_t: refuse more rather than wrap. */
				if (st->line_len == 16)
					return ck_fail(st, why, "chunk size too large");
				st->remaining = st->remaining << 4 | hexval(c);
				st->line_len++;
				p++;
				continue;
			}
			if (st->line_len == 0)
				return ck_fail(st, why, "missing chunk size");
			if (c == '\r')
				st->state = CK_SIZE_LF;
			else if (c == ';')
				st->state = CK_EXT_NAME0;
			else if (IS(c, C_WS)) /* BWS before ';' (RFC 9112 §7.1.1) */
				st->state = CK_SIZE_BWS;
			else
				return ck_fail(st, why, "invalid chunk size");
			st->line_len++;
			p++;
			break;
		case CK_SIZE_BWS:
		case CK_EXT_NAME0:
		case CK_EXT_NAME:
		case CK_EXT_NAME_BWS:
		case CK_EXT_VAL0:
		case CK_EXT_TOKEN:
		case CK_EXT_QUOTED:
		case CK_EXT_QPAIR:
		case CK_EXT_QEND:
			/* We drop extensions when we re-frame, but a line we cannot parse
			 * is one another parser may read differently (where the line ends,
			 * where the data starts), so the whole grammar is enforced. */
			if (c != '\r' && ++st->line_len > HTTP1_CHUNK_LINE_MAX)
				return ck_fail(st, why, "chunk line too long");
			if (!ck_ext_byte(st, c))
				return ck_fail(st, why, "invalid chunk extension");
			p++;
			break;
		case CK_SIZE_LF:
			if (c != '\n')
				return ck_fail(st, why, "bare CR in chunk line");
			p++;
			st->line_len = 0;
			st->state = st->remaining ? CK_DATA : CK_TR_START;
			break;
		case CK_DATA:
			/* Report one run of payload and stop, so data always reaches the caller
			 * before any later framing error. */
			q = len - p;
			if ((uint64_t)q > st->remaining)
				q = (size_t)st->remaining;
			*data = buf + p;
			*data_len = q;
			st->remaining -= q;
			if (st->remaining == 0)
				st->state = CK_DATA_CR;
			return (ssize_t)(p + q);
		case CK_DATA_CR:
			if (c != '\r')
				return ck_fail(st, why, "chunk data not followed by CRLF");
			st->state = CK_DATA_LF;
			p++;
			break;
		case CK_DATA_LF:
			if (c != '\n')
				return ck_fail(st, why, "chunk data not followed by CRLF");
			st->state = CK_SIZE;
			p++;
			break;
		case CK_TR_START:
		case CK_TR_NAME:
		case CK_TR_VALUE:
		case CK_TR_LF:
		case CK_END_LF: {
			/* trailer-section = *( field-line CRLF ) CRLF, same rules as headers.  All
			 * but the final CRLF is field lines, handed back as one run per call: the
			 * final CRLF ends the section, so the field-line bytes of a call are
			 * contiguous. */
			int field =
			    st->state != CK_END_LF && !(st->state == CK_TR_START && c == '\r');

			if (++st->trailer_len > HTTP1_TRAILER_MAX)
				return ck_fail(st, why, "trailer section too large");
			p++;
			switch (st->state) {
			case CK_TR_START:
				if (c == '\r')
					st->state = CK_END_LF;
				else if (IS(c, C_TCHAR))
					st->state = CK_TR_NAME;
				else
					return ck_fail(st, why, "invalid trailer field");
				break;
			case CK_TR_NAME:
				if (c == ':')
					st->state = CK_TR_VALUE;
				else if (!IS(c, C_TCHAR))
					return ck_fail(st, why, "invalid trailer field name");
				break;
			case CK_TR_VALUE:
				if (c == '\r')
					st->state = CK_TR_LF;
				else if (!IS(c, C_FVALUE))
					return ck_fail(st, why, "invalid trailer field value");
				break;
			case CK_TR_LF:
				if (c != '\n')
					return ck_fail(st, why, "bare CR in trailer section");
				st->state = CK_TR_START;
				break;
			default: /* CK_END_LF */
				if (c != '\n')
					return ck_fail(st, why, "bare CR in trailer section");
				st->state = CK_DONE;
				st->done = 1;
				break;
			}
			if (field) {
				if (te == tb)
					tb = p - 1;
				te = p;
			}
			break;
		}
		default:
			return ck_fail(st, why, "invalid chunked decoder state");
		}
	}
	if (te > tb) {
		st->trailers = buf + tb;
		st->trailers_len = te - tb;
	}
	return (ssize_t)p;
}

size_t http1_chunk_size_line(uint64_t n, char *out)
{
	size_t k = 0;

	do {
		out[k++] = "0123456789abcdef"[n & 15];
		n >>= 4;
	} while (n != 0);
	for (size_t i = 0; i < k / 2; i++) {
		char t = out[i];

		out[i] = out[k - 1 - i];
		out[k - 1 - i] = t;
	}
	out[k++] = '\r';
	out[k++] = '\n';
	return k;
}
