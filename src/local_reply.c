#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "conn.h"
#include "exchange.h"
#include "extauthz.h"
#include "local_reply.h"
#include "logfilter.h"
#include "request.h"
#include "snapshot.h"
#include "stream.h"
#include "worker.h"

const char *http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 200   ? "Informational"
		       : status < 300 ? "OK"
		       : status < 400 ? "Redirect"
		       : status < 500 ? "Client Error"
				      : "Server Error";
	}
}

/* RFC 9110 Date, cached per second per thread. */
static const char *http_date(void)
{
	static __thread char buf[40];
	static __thread time_t last;
	time_t now = time(NULL);
	struct tm tm;

	if (now != last) {
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return buf;
}

/* The access log reads response header fields by name: a local answer's are its content
 * type and the extra lines ("name: value\r\n" each). */
static void local_reply_keep_headers(struct exchange *ex, const char *content_type,
				     const char *extra)
{
	struct http1_header h[16];
	size_t n = 0;

	if (content_type != NULL)
		h[n++] =
		    (struct http1_header){"content-type", 12, content_type, strlen(content_type)};
	while (extra != NULL && n < sizeof(h) / sizeof(h[0])) {
		const char *colon = strchr(extra, ':');
		const char *eol = strstr(extra, "\r\n");
		const char *v;

		if (colon == NULL || eol == NULL || colon > eol)
			break;
		for (v = colon + 1; *v == ' '; v++)
			;
		h[n++] =
		    (struct http1_header){extra, (size_t)(colon - extra), v, (size_t)(eol - v)};
		extra = eol + 2;
	}
	logfilter_keep_headers(ex, ex->ws->snap->set, LOGFILTER_RESPONSE, h, n);
}

void local_reply(struct exchange *ex, int status, const char *content_type, const char *body,
		 size_t body_len, const char *extra_headers, bool close)
{
	struct conn *c = ex->c;
	struct evbuffer *out = stream_output(c->st);
	bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);

	if (close)
		ex->client_keepalive = false;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nserver: meshgate\r\ndate: %s\r\n", status,
			    http_reason(status), http_date());
	if (content_type != NULL && body_len > 0)
		evbuffer_add_printf(out, "content-type: %s\r\n", content_type);
	if (ex->request_id != NULL)
		evbuffer_add_printf(out, "x-request-id: %.*s\r\n", (int)ex->request_id_len,
				    ex->request_id);
	if (!no_body)
		evbuffer_add_printf(out, "content-length: %zu\r\n", body_len);
	if (extra_headers != NULL)
		evbuffer_add(out, extra_headers, strlen(extra_headers));
	if (ex->log_hdr_kept && ex->ws != NULL)
		local_reply_keep_headers(ex, body_len > 0 ? content_type : NULL, extra_headers);
	request_cors_response(ex, out); /* Envoy's CORS filter also sees local replies */
	if (ex->xa != NULL)
		extauthz_response_headers(ex, out); /* and its ext_authz filter */
	if (!ex->client_keepalive || c->w->draining)
		evbuffer_add(out, "connection: close\r\n", 19);
	else if (ex->minor_version == 0)
		evbuffer_add(out, "connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
	if (body_len > 0 && !no_body && !ex->head_request) {
		evbuffer_add(out, body, body_len);
		ex->bytes_out += body_len; /* body bytes, as Envoy's BYTES_SENT */
	}
	ex->status = status;
}

void local_reply_error(struct conn *c, int status, const char *details)
{
	struct exchange *ex;
	char body[128];
	int n;

	ex = request_new(c);
	if (ex == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	c->ex = ex;
	ex->details = details;
	ex->client_keepalive = false;
	if (status != 408)
		exchange_flag(ex, "DPE"); /* the request itself was malformed */
	n = snprintf(body, sizeof(body), "%s\n", http_reason(status));
	local_reply(ex, status, "text/plain", body, (size_t)n, NULL, true);
	conn_exchange_end(c);
}
