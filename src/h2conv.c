#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <event2/buffer.h>

#include "errors.h"
#include "h2conv.h"
#include "http1.h"

#define H2CONV_MAX_HEADERS 256

#define NAME_IS(n, len, lit) HTTP1_NAME_IS((const char *)(n), len, lit)

bool h2conv_conn_specific(const char *name, size_t len)
{
	return NAME_IS(name, len, "connection") || NAME_IS(name, len, "keep-alive") ||
	       NAME_IS(name, len, "proxy-connection") || NAME_IS(name, len, "transfer-encoding") ||
	       NAME_IS(name, len, "upgrade");
}

static void h2conv_nv(nghttp2_nv *nv, const char *name, size_t nlen, const char *value, size_t vlen)
{
	nv->name = (uint8_t *)(uintptr_t)name;
	nv->namelen = nlen;
	nv->value = (uint8_t *)(uintptr_t)value;
	nv->valuelen = vlen;
	nv->flags = NGHTTP2_NV_FLAG_NONE;
}

int h2conv_request(const char *head, size_t len, const char *scheme, char *lower, nghttp2_nv *nv,
		   size_t max, struct h2conv_req *info)
{
	struct http1_limits lim = {len, len, H2CONV_MAX_HEADERS};
	struct http1_header hdrs[H2CONV_MAX_HEADERS];
	struct http1_request req;
	const char *why = NULL;
	int status = 0;
	size_t n = 0, used = 0;

	memset(&req, 0, sizeof(req));
	req.headers = hdrs;
	if (http1_parse_request(head, len, &lim, &req, &status, &why) <= 0 || req.host_index < 0 ||
	    max < 4)
		return -1;
	info->kind = HTTP1_BODY_NONE;
	info->length = 0;
	if (http1_request_framing(&req, &info->kind, &info->length, &status, &why) != 0)
		return -1;
	h2conv_nv(&nv[n++], ":method", 7, req.method, req.method_len);
	h2conv_nv(&nv[n++], ":scheme", 7, scheme, strlen(scheme));
	h2conv_nv(&nv[n++], ":authority", 10, hdrs[req.host_index].value,
		  hdrs[req.host_index].value_len);
	h2conv_nv(&nv[n++], ":path", 5, req.target, req.target_len);
	for (size_t i = 0; i < req.nheaders; i++) {
		const struct http1_header *h = &hdrs[i];

		if ((int)i == req.host_index || h2conv_conn_specific(h->name, h->name_len) ||
		    (NAME_IS(h->name, h->name_len, "te") &&
		     !NAME_IS(h->value, h->value_len, "trailers")))
			continue;
		if (n == max)
			return -1;
		for (size_t k = 0; k < h->name_len; k++) {
			char c = h->name[k];

			lower[used + k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		}
		h2conv_nv(&nv[n++], lower + used, h->name_len, h->value, h->value_len);
		used += h->name_len;
	}
	return (int)n;
}

/* RFC 9113 §8.2.1: lower-case token characters only. */
static bool h2conv_name_ok(const uint8_t *s, size_t len)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (c != 0 && strchr(extra, c) != NULL)))
			return false;
	}
	return true;
}

/* No NUL, CR or LF anywhere (they would split the HTTP/1.1 head); no leading or trailing
 * white space. */
static bool h2conv_value_ok(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == 0 || s[i] == '\r' || s[i] == '\n' || s[i] == 0x7f ||
		    (s[i] < 0x20 && s[i] != '\t'))
			return false;
	return len == 0 || (s[0] != ' ' && s[0] != '\t' && s[len - 1] != ' ' && s[len - 1] != '\t');
}

static bool h2conv_digits(const uint8_t *s, size_t len)
{
	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int h2conv_resp_field(struct h2conv_resp *r, struct evbuffer *fields, const uint8_t *name,
		      size_t nlen, const uint8_t *value, size_t vlen)
{
	if (nlen > 0 && name[0] == ':') {
		if (r->trailers || !NAME_IS(name, nlen, ":status") || r->status != 0) {
			r->why = "unexpected pseudo-header";
			return -1;
		}
		/* http1.c takes 100..599 only: the head made here must parse there */
		if (vlen != 3 || !h2conv_digits(value, 3) || value[0] < '1' || value[0] > '5') {
			r->why = "bad :status";
			return -1;
		}
		r->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
		return 0;
	}
	if (!h2conv_name_ok(name, nlen) || !h2conv_value_ok(value, vlen)) {
		r->why = "bad header field";
		return -1;
	}
	if (!r->trailers && r->status == 0) {
		r->why = "header field before :status";
		return -1;
	}
	if (h2conv_conn_specific((const char *)name, nlen) || NAME_IS(name, nlen, "te"))
		return 0;
	if (NAME_IS(name, nlen, "content-length")) {
		if (r->trailers)
			return 0;
		if (!h2conv_digits(value, vlen)) {
			r->why = "bad content-length";
			return -1;
		}
		r->has_length = true;
	}
	if (evbuffer_add(fields, name, nlen) != 0 || evbuffer_add(fields, ": ", 2) != 0 ||
	    evbuffer_add(fields, value, vlen) != 0 || evbuffer_add(fields, "\r\n", 2) != 0) {
		r->why = "out of memory";
		return -1;
	}
	return 0;
}

int h2conv_resp_head(struct h2conv_resp *r, struct evbuffer *fields, bool end_stream,
		     struct evbuffer *out)
{
	bool no_body = r->status == 204 || r->status == 304 || r->status < 200;
	int chunked = 0;

	if (r->status == 0) {
		r->why = "no :status";
		return -1;
	}
	evbuffer_add_printf(out, "HTTP/1.1 %d \r\n", r->status);
	evbuffer_add_buffer(out, fields);
	if (!no_body && !r->has_length) {
		if (end_stream) {
			evbuffer_add(out, "content-length: 0\r\n", 19);
		} else {
			evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
			chunked = 1;
		}
	}
	evbuffer_add(out, "\r\n", 2);
	return chunked;
}
