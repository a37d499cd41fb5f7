#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "authzpb.h"
#include "errors.h"

/* Wire types (protobuf encoding). */
enum {
	WT_VARINT = 0,
	WT_I64 = 1,
	WT_LEN = 2,
	WT_SGROUP = 3,
	WT_EGROUP = 4,
	WT_I32 = 5,
};

/* ---- encoding ---- */

struct pbw {
	uint8_t *p;
	size_t cap, len;
	bool full; /* something did not fit: the result is -1 */
};

static bool pbw_room(struct pbw *w, size_t n)
{
	if (w->full || w->cap - w->len < n) {
		w->full = true;
		return false;
	}
	return true;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void varint_put(uint8_t *at, uint64_t v)
{
	while (v >= 0x80) {
		*at++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*at = (uint8_t)v;
}

static void pbw_varint(struct pbw *w, uint64_t v)
{
	size_t n = varint_len(v);

	if (!pbw_room(w, n))
		return;
	varint_put(w->p + w->len, v);
	w->len += n;
}

static void pbw_tag(struct pbw *w, uint32_t field, int wt)
{
	pbw_varint(w, (uint64_t)field << 3 | (uint64_t)wt);
}

/* The length of a valid UTF-8 sequence at s[0..n), or 0 when none starts there (overlong
 * forms, surrogates and code points above U+10FFFF are not valid). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t k;
	uint8_t lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4;
	else
		return 0;
	if (n < k)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

/* Copy s[0..n) to at, each byte that starts no valid UTF-8 sequence as '!', lower-cased
 * when lower (same length). */
static void copy_utf8(uint8_t *at, const char *s, size_t n, bool lower)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_seq(u + i, n - i);

		if (k == 0) {
			*at++ = '!';
			i++;
			continue;
		}
		if (k == 1 && lower && u[i] >= 'A' && u[i] <= 'Z') {
			*at++ = (uint8_t)(u[i] + ('a' - 'A'));
		} else {
			memcpy(at, u + i, k);
			at += k;
		}
		i += k;
	}
}

/* A string field; empty ones are left out (proto3). */
static void pbw_string(struct pbw *w, uint32_t field, const char *s, size_t n)
{
	if (n == 0)
		return;
	pbw_tag(w, field, WT_LEN);
	pbw_varint(w, n);
	if (!pbw_room(w, n))
		return;
	copy_utf8(w->p + w->len, s, n, false);
	w->len += n;
}

static void pbw_str(struct pbw *w, uint32_t field, const struct authzpb_str *s)
{
	if (s->p != NULL)
		pbw_string(w, field, s->p, s->len);
}

/* An embedded message: its tag and one byte reserved for its length; pbw_close writes the
 * length, moving the content on when it needs more than one byte. */
static size_t pbw_open(struct pbw *w, uint32_t field)
{
	pbw_tag(w, field, WT_LEN);
	if (pbw_room(w, 1))
		w->len++;
	return w->len;
}

static void pbw_close(struct pbw *w, size_t start)
{
	size_t body, k;

	if (w->full)
		return;
	body = w->len - start;
	k = varint_len(body);
	if (k > 1) {
		if (!pbw_room(w, k - 1))
			return;
		memmove(w->p + start + k - 1, w->p + start, body);
		w->len += k - 1;
	}
	varint_put(w->p + start - 1, body);
}

static void pbw_peer(struct pbw *w, uint32_t field, const struct authzpb_peer *peer)
{
	size_t at, addr, sock;

	if (peer->address == NULL && peer->principal == NULL)
		return;
	at = pbw_open(w, field);
	if (peer->address != NULL) {
		addr = pbw_open(w, 1); /* Peer.address: Address */
		sock = pbw_open(w, 1); /* Address.socket_address: SocketAddress */
		pbw_string(w, 2, peer->address, strlen(peer->address));
		if (peer->port != 0) {
			pbw_tag(w, 3, WT_VARINT); /* port_value */
			pbw_varint(w, peer->port);
		}
		pbw_close(w, sock);
		pbw_close(w, addr);
	}
	if (peer->principal != NULL)
		pbw_string(w, 4, peer->principal, strlen(peer->principal));
	pbw_close(w, at);
}

static bool name_eq(const struct authzpb_field *a, const struct authzpb_field *b)
{
	if (a->name_len != b->name_len)
		return false;
	for (size_t i = 0; i < a->name_len; i++) {
		char x = a->name[i], y = b->name[i];

		if (x >= 'A' && x <= 'Z')
			x = (char)(x + ('a' - 'A'));
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + ('a' - 'A'));
		if (x != y)
			return false;
	}
	return true;
}

/* request.http.headers: one map entry {key 1, value 2} per name, the values of its fields
 * joined with ",". */
static void pbw_headers(struct pbw *w, const struct authzpb_field *h, size_t n)
{
	static const struct authzpb_field partial = {"x-envoy-auth-partial-body", 25, NULL, 0};

	for (size_t i = 0; i < n; i++) {
		size_t vlen = 0, at, j;
		bool seen = false;

		if (h[i].name_len == 0 || name_eq(&h[i], &partial))
			continue;
		for (j = 0; j < i && !seen; j++)
			seen = name_eq(&h[i], &h[j]);
		if (seen)
			continue; /* merged into the entry of its first field */
		for (j = i; j < n; j++)
			if (name_eq(&h[i], &h[j]))
				vlen += (j > i ? 1 : 0) + h[j].value_len;
		at = pbw_open(w, 3);
		pbw_tag(w, 1, WT_LEN);
		pbw_varint(w, h[i].name_len);
		if (pbw_room(w, h[i].name_len)) {
			copy_utf8(w->p + w->len, h[i].name, h[i].name_len, true);
			w->len += h[i].name_len;
		}
		if (vlen > 0) {
			pbw_tag(w, 2, WT_LEN);
			pbw_varint(w, vlen);
			for (j = i; j < n && pbw_room(w, 0); j++) {
				if (!name_eq(&h[i], &h[j]))
					continue;
				if (j > i && pbw_room(w, 1))
					w->p[w->len++] = ',';
				if (pbw_room(w, h[j].value_len)) {
					copy_utf8(w->p + w->len, h[j].value, h[j].value_len, false);
					w->len += h[j].value_len;
				}
			}
		}
		pbw_close(w, at);
	}
}

ssize_t authzpb_check_encode(const struct authzpb_check *c, uint8_t *out, size_t cap)
{
	struct pbw w = {out, cap, 0, false};
	size_t attrs, req, http, t;

	attrs = pbw_open(&w, 1); /* CheckRequest.attributes */
	pbw_peer(&w, 1, &c->source);
	pbw_peer(&w, 2, &c->destination);
	req = pbw_open(&w, 4); /* AttributeContext.request */
	if (c->has_time) {
		t = pbw_open(&w, 1); /* Request.time: Timestamp */
		if (c->time_sec != 0) {
			pbw_tag(&w, 1, WT_VARINT);
			pbw_varint(&w, (uint64_t)c->time_sec);
		}
		if (c->time_nsec != 0) {
			pbw_tag(&w, 2, WT_VARINT);
			pbw_varint(&w, (uint64_t)(int64_t)c->time_nsec);
		}
		pbw_close(&w, t);
	}
	http = pbw_open(&w, 2); /* Request.http: HttpRequest */
	pbw_str(&w, 1, &c->id);
	pbw_str(&w, 2, &c->method);
	pbw_headers(&w, c->headers, c->nheaders);
	pbw_str(&w, 4, &c->path);
	pbw_str(&w, 5, &c->host);
	pbw_str(&w, 6, &c->scheme);
	if (c->size != 0) {
		pbw_tag(&w, 9, WT_VARINT);
		pbw_varint(&w, (uint64_t)c->size);
	}
	pbw_str(&w, 10, &c->protocol);
	pbw_close(&w, http);
	pbw_close(&w, req);
	pbw_close(&w, attrs);
	return w.full ? -1 : (ssize_t)w.len;
}

/* ---- decoding ---- */

struct pbr {
	const uint8_t *p, *end;
	const char *why;
};

static int pbr_fail(struct pbr *r, const char *why)
{
	if (r->why == NULL)
		r->why = why;
	return -1;
}

static int pbr_varint(struct pbr *r, uint64_t *v)
{
	uint64_t x = 0;

	/* ten bytes at most, the tenth holding the 64th bit only */
	for (unsigned shift = 0;; shift += 7) {
		uint8_t b;

		if (r->p >= r->end)
			return pbr_fail(r, "truncated varint");
		b = *r->p++;
		if (shift == 63 && b > 1)
			return pbr_fail(r, "varint overflows 64 bits");
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
}

/* The next field's number and wire type; 0 at the end, 1 when read, -1 malformed. */
static int pbr_tag(struct pbr *r, uint32_t *field, int *wt)
{
	uint64_t t;

	if (r->p == r->end)
		return 0;
	if (pbr_varint(r, &t) != 0)
		return -1;
	if (t > 0xffffffffu || (t >> 3) == 0)
		return pbr_fail(r, "bad field number");
	*field = (uint32_t)(t >> 3);
	*wt = (int)(t & 7);
	if (*wt > WT_I32)
		return pbr_fail(r, "bad wire type");
	return 1;
}

static int pbr_len(struct pbr *r, struct pbr *sub)
{
	uint64_t n;

	if (pbr_varint(r, &n) != 0)
		return -1;
	if (n > (uint64_t)(r->end - r->p))
		return pbr_fail(r, "length beyond the message");
	sub->p = r->p;
	sub->end = r->p + n;
	sub->why = NULL;
	r->p += n;
	return 0;
}

static int pbr_fixed(struct pbr *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return pbr_fail(r, "truncated fixed-size field");
	r->p += n;
	return 0;
}

/* Skip a field of wire type wt whose tag was read (a group up to its end). */
static int pbr_skip(struct pbr *r, uint32_t field, int wt, int depth)
{
	struct pbr sub;
	uint64_t v;

	switch (wt) {
	case WT_VARINT:
		return pbr_varint(r, &v);
	case WT_I64:
		return pbr_fixed(r, 8);
	case WT_I32:
		return pbr_fixed(r, 4);
	case WT_LEN:
		return pbr_len(r, &sub);
	case WT_SGROUP:
		if (depth >= AUTHZPB_DEPTH_MAX)
			return pbr_fail(r, "groups nested too deep");
		for (;;) {
			uint32_t f;
			int w, rc = pbr_tag(r, &f, &w);

			if (rc == 0)
				return pbr_fail(r, "unterminated group");
			if (rc < 0)
				return -1;
			if (w == WT_EGROUP)
				return f == field ? 0 : pbr_fail(r, "mismatched end of group");
			if (pbr_skip(r, f, w, depth + 1) != 0)
				return -1;
		}
	default: /* an end of group with no start */
		return pbr_fail(r, "unexpected end of group");
	}
}

/* A known field must come with its wire type. */
static int pbr_want(struct pbr *r, int wt, int want)
{
	return wt == want ? 0 : pbr_fail(r, "wire type does not match the field");
}

/* Walk the fields of a message: each known one is handed to fn, unknown ones (fn returns
 * 1) skipped. */
typedef int (*pbr_field_fn)(struct pbr *r, uint32_t field, int wt, void *arg);

static int pbr_message(struct pbr *r, pbr_field_fn fn, void *arg)
{
	for (;;) {
		uint32_t field;
		int wt, rc = pbr_tag(r, &field, &wt);

		if (rc <= 0)
			return rc;
		rc = fn(r, field, wt, arg);
		if (rc < 0)
			return -1;
		if (rc > 0 && pbr_skip(r, field, wt, 0) != 0)
			return -1;
	}
}

/* Parse an embedded message with fn; errors are reported on the outer reader. */
static int pbr_embedded(struct pbr *r, int wt, pbr_field_fn fn, void *arg)
{
	struct pbr sub;

	if (pbr_want(r, wt, WT_LEN) != 0 || pbr_len(r, &sub) != 0)
		return -1;
	if (pbr_message(&sub, fn, arg) != 0)
		return pbr_fail(r, sub.why != NULL ? sub.why : "malformed message");
	return 0;
}

static int pbr_string(struct pbr *r, int wt, struct authzpb_str *s)
{
	struct pbr sub;

	if (pbr_want(r, wt, WT_LEN) != 0 || pbr_len(r, &sub) != 0)
		return -1;
	s->p = (const char *)sub.p;
	s->len = (size_t)(sub.end - sub.p);
	return 0;
}

static int pbr_uint(struct pbr *r, int wt, uint64_t *v)
{
	return pbr_want(r, wt, WT_VARINT) != 0 ? -1 : pbr_varint(r, v);
}

static bool is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const struct authzpb_str *s)
{
	if (s->len == 0)
		return false;
	for (size_t i = 0; i < s->len; i++)
		if (!is_tchar((uint8_t)s->p[i]))
			return false;
	return true;
}

/* Field content: visible bytes, spaces and tabs within, obs-text; nothing at either end. */
static bool is_value(const struct authzpb_str *s)
{
	for (size_t i = 0; i < s->len; i++) {
		uint8_t c = (uint8_t)s->p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return s->len == 0 || (s->p[0] != ' ' && s->p[0] != '\t' && s->p[s->len - 1] != ' ' &&
			       s->p[s->len - 1] != '\t');
}

/* google.rpc.Status {code 1, message 2, details 3} */
static int rd_status(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_response *res = arg;
	uint64_t v;

	switch (field) {
	case 1:
		if (pbr_uint(r, wt, &v) != 0)
			return -1;
		res->code = (int32_t)(uint32_t)v; /* int32: negative ones come sign-extended */
		return 0;
	case 2:
		return pbr_string(r, wt, &res->message);
	default:
		return 1;
	}
}

/* envoy.type.v3.HttpStatus {code 1} */
static int rd_http_status(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_response *res = arg;
	uint64_t v;

	if (field != 1)
		return 1;
	if (pbr_uint(r, wt, &v) != 0)
		return -1;
	res->http_status = (uint32_t)v;
	return 0;
}

/* google.protobuf.BoolValue {value 1} */
static int rd_bool_value(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_header *h = arg;
	uint64_t v;

	if (field != 1)
		return 1;
	if (pbr_uint(r, wt, &v) != 0)
		return -1;
	h->append = v != 0;
	return 0;
}

/* envoy.config.core.v3.HeaderValue {key 1, value 2, raw_value 3} */
static int rd_header_value(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_header *h = arg;

	switch (field) {
	case 1:
		return pbr_string(r, wt, &h->key);
	case 2:
		return pbr_string(r, wt, &h->value);
	default:
		return 1;
	}
}

/* envoy.config.core.v3.HeaderValueOption {header 1, append 2, append_action 3} */
static int rd_header_option(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_header *h = arg;
	uint64_t v;

	switch (field) {
	case 1:
		return pbr_embedded(r, wt, rd_header_value, h);
	case 2:
		h->has_append = true;
		return pbr_embedded(r, wt, rd_bool_value, h);
	case 3:
		if (pbr_uint(r, wt, &v) != 0)
			return -1;
		h->append_action = (uint32_t)v;
		return 0;
	default:
		return 1;
	}
}

static int rd_header_into(struct pbr *r, int wt, struct authzpb_header *list, size_t *n)
{
	struct authzpb_header *h;

	if (*n >= AUTHZPB_HEADERS_MAX)
		return pbr_fail(r, "too many headers");
	h = &list[*n];
	memset(h, 0, sizeof(*h));
	if (pbr_embedded(r, wt, rd_header_option, h) != 0)
		return -1;
	if (!is_token(&h->key))
		return pbr_fail(r, "a header name that is not a token");
	if (!is_value(&h->value))
		return pbr_fail(r, "a header value that is not field content");
	(*n)++;
	return 0;
}

/* envoy.service.auth.v3.DeniedHttpResponse {status 1, headers 2, body 3} */
static int rd_denied(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_response *res = arg;

	switch (field) {
	case 1:
		return pbr_embedded(r, wt, rd_http_status, res);
	case 2:
		return rd_header_into(r, wt, res->headers, &res->nheaders);
	case 3:
		return pbr_string(r, wt, &res->body);
	default:
		return 1;
	}
}

/* envoy.service.auth.v3.OkHttpResponse {headers 2, dynamic_metadata 3, headers_to_remove
 * 5, response_headers_to_add 6, query_parameters_to_set 7, query_parameters_to_remove 8};
 * the metadata and the query parameters are skipped. */
static int rd_ok(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_response *res = arg;
	struct authzpb_str *s;

	switch (field) {
	case 2:
		return rd_header_into(r, wt, res->headers, &res->nheaders);
	case 5:
		if (res->nremove >= AUTHZPB_HEADERS_MAX)
			return pbr_fail(r, "too many headers to remove");
		s = &res->remove[res->nremove];
		if (pbr_string(r, wt, s) != 0)
			return -1;
		if (!is_token(s))
			return pbr_fail(r, "a header name to remove that is not a token");
		res->nremove++;
		return 0;
	case 6:
		return rd_header_into(r, wt, res->response_headers, &res->nresponse_headers);
	default:
		return 1;
	}
}

/* CheckResponse {status 1, denied_response 2, ok_response 3, dynamic_metadata 4}: the
 * members of the oneof http_response replace each other, the last one given wins. */
static int rd_response(struct pbr *r, uint32_t field, int wt, void *arg)
{
	struct authzpb_response *res = arg;

	switch (field) {
	case 1:
		return pbr_embedded(r, wt, rd_status, res);
	case 2:
	case 3: {
		enum authzpb_kind kind = field == 2 ? AUTHZPB_DENIED : AUTHZPB_OK;

		if (res->kind != kind) {
			res->http_status = 0;
			res->body.p = NULL;
			res->body.len = 0;
			res->nheaders = res->nremove = res->nresponse_headers = 0;
			res->kind = kind;
		}
		return pbr_embedded(r, wt, field == 2 ? rd_denied : rd_ok, res);
	}
	default:
		return 1;
	}
}

int authzpb_response_parse(const uint8_t *buf, size_t len, struct authzpb_response *r,
			   const char **why)
{
	struct pbr rd = {buf, buf + len, NULL};

	memset(r, 0, sizeof(*r));
	if (pbr_message(&rd, rd_response, r) != 0) {
		*why = rd.why != NULL ? rd.why : "malformed CheckResponse";
		return MG_EBAD;
	}
	return 0;
}

/* ---- gRPC framing ---- */

void authzpb_grpc_prefix(size_t len, uint8_t out[AUTHZPB_GRPC_PREFIX])
{
	out[0] = 0; /* not compressed */
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

ssize_t authzpb_grpc_frame(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			   size_t *msg_len, const char **why)
{
	uint32_t n;

	if (len < AUTHZPB_GRPC_PREFIX)
		return 0;
	if (buf[0] != 0) {
		*why = buf[0] == 1 ? "a compressed gRPC message" : "bad gRPC message flag";
		return MG_EBAD;
	}
	n = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (n > max) {
		*why = "the gRPC message is too large";
		return MG_EBAD;
	}
	if (len - AUTHZPB_GRPC_PREFIX < n)
		return 0;
	*msg = buf + AUTHZPB_GRPC_PREFIX;
	*msg_len = n;
	return (ssize_t)(AUTHZPB_GRPC_PREFIX + n);
}

int authzpb_grpc_status(const char *v, size_t len)
{
	size_t i = 0, end = len;
	long code = 0;

	while (i < end && (v[i] == ' ' || v[i] == '\t'))
		i++;
	while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	if (i == end || end - i > 10)
		return -1;
	for (; i < end; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		code = code * 10 + (v[i] - '0');
	}
	return code <= 0x7fffffffL ? (int)code : -1;
}
