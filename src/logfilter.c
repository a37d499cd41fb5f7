#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "accesslog.h"
#include "cel.h"
#include "config/model.h"
#include "exchange.h"
#include "logfilter.h"

_Static_assert(EX_LOG_HEADERS == CFG_LOG_HEADERS, "one bound for both sides");

struct logfilter_ctx {
	const struct cfg_set *set;
	const struct accesslog_entry *e;
	const struct exchange *ex;
	const struct ssl_st *ssl;
};

void logfilter_keep_headers(struct exchange *ex, const struct cfg_set *set,
			    enum logfilter_side side, const struct http1_header *h, size_t n)
{
	const struct str_list *names = &set->access_log_headers[side];

	if (side == LOGFILTER_REQUEST) { /* the first call of an exchange */
		if (names->n == 0 && set->access_log_headers[LOGFILTER_RESPONSE].n == 0)
			return;
		memset(ex->log_hdr, 0, sizeof(ex->log_hdr));
		ex->log_hdr_kept = true;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < names->n; k++) {
			const char *old = ex->log_hdr[side][k];
			size_t len, oldlen = ex->log_hdr_len[side][k];
			const char *v;

			if (strlen(names->v[k]) != h[i].name_len ||
			    strncasecmp(names->v[k], h[i].name, h[i].name_len) != 0)
				continue;
			/* Several fields of one name read as one, joined with "," (Envoy's
			 * header map); a copy of the first one joined to the next. */
			if (old != NULL) {
				v = exchange_keep(ex, old, oldlen, &len);
				exchange_keep(ex, ",", 1, NULL);
				exchange_keep(ex, h[i].value, h[i].value_len, NULL);
				len = ex->arena + ex->arena_used - v;
			} else {
				v = exchange_keep(ex, h[i].value, h[i].value_len, &len);
			}
			ex->log_hdr[side][k] = v;
			ex->log_hdr_len[side][k] = (uint32_t)len;
		}
}

static bool logfilter_str(const char *s, size_t len, struct cel_value *out)
{
	if (s == NULL)
		return false;
	out->type = CEL_STRING;
	out->v.str.s = s;
	out->v.str.len = len;
	return true;
}

static bool logfilter_int(int64_t i, struct cel_value *out)
{
	out->type = CEL_INT;
	out->v.i = i;
	return true;
}

/* "ip:port" or "[ip6]:port": the port, or -1. */
static int64_t logfilter_port(const char *addr)
{
	const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
	int64_t port = 0;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	for (const char *p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		port = port * 10 + (*p - '0');
	}
	return port;
}

static uint64_t logfilter_flags(const char *flags)
{
	uint64_t bits = 0;

	while (flags != NULL && *flags != '\0' && strcmp(flags, "-") != 0) {
		size_t len = strcspn(flags, ",");
		int bit = accesslog_flag_index(flags, len); /* Envoy's bit numbers */

		if (bit >= 0)
			bits |= (uint64_t)1 << bit;
		flags += len;
		if (*flags == ',')
			flags++;
	}
	return bits;
}

/* request.headers[key]: the fields the log line holds already, else a kept copy. */
static bool logfilter_header(const struct logfilter_ctx *x, enum logfilter_side side,
			     const char *key, size_t keylen, struct cel_value *out)
{
	const struct accesslog_entry *e = x->e;
	const struct str_list *names = &x->set->access_log_headers[side];

#define KEY_IS(lit) (keylen == sizeof(lit) - 1 && strncasecmp(key, lit, keylen) == 0)
	if (side == LOGFILTER_REQUEST) {
		if (KEY_IS(":authority") || KEY_IS("host"))
			return logfilter_str(e->authority, e->authority_len, out);
		if (KEY_IS(":method"))
			return logfilter_str(e->method, e->method_len, out);
		if (KEY_IS(":path"))
			return logfilter_str(e->path, e->path_len, out);
		if (KEY_IS("user-agent"))
			return logfilter_str(e->user_agent, e->user_agent_len, out);
		if (KEY_IS("x-request-id"))
			return logfilter_str(e->request_id, e->request_id_len, out);
	}
#undef KEY_IS
	if (x->ex == NULL || !x->ex->log_hdr_kept)
		return false;
	for (size_t k = 0; k < names->n; k++)
		if (strlen(names->v[k]) == keylen && strncasecmp(names->v[k], key, keylen) == 0)
			return logfilter_str(x->ex->log_hdr[side][k], x->ex->log_hdr_len[side][k],
					     out);
	return false;
}

static bool logfilter_lookup(void *arg, enum cel_attr attr, const char *key, size_t keylen,
			     struct cel_value *out)
{
	const struct logfilter_ctx *x = arg;
	const struct accesslog_entry *e = x->e;
	const char *q;

	switch (attr) {
	case CEL_REQ_PATH:
		return logfilter_str(e->path, e->path_len, out);
	case CEL_REQ_URL_PATH:
		if (e->path == NULL)
			return false;
		q = memchr(e->path, '?', e->path_len);
		return logfilter_str(e->path, q != NULL ? (size_t)(q - e->path) : e->path_len, out);
	case CEL_REQ_HOST:
		return logfilter_str(e->authority, e->authority_len, out);
	case CEL_REQ_SCHEME:
		if (e->method == NULL)
			return false;
		return logfilter_str(x->ssl != NULL ? "https" : "http", x->ssl != NULL ? 5 : 4,
				     out);
	case CEL_REQ_METHOD:
		return logfilter_str(e->method, e->method_len, out);
	case CEL_REQ_HEADERS:
		return logfilter_header(x, LOGFILTER_REQUEST, key, keylen, out);
	case CEL_REQ_REFERER:
		return logfilter_header(x, LOGFILTER_REQUEST, "referer", 7, out);
	case CEL_REQ_USERAGENT:
		return logfilter_str(e->user_agent, e->user_agent_len, out);
	case CEL_REQ_ID:
		return logfilter_str(e->request_id, e->request_id_len, out);
	case CEL_REQ_PROTOCOL:
		if (e->method == NULL)
			return false;
		return logfilter_str(e->protocol, strlen(e->protocol), out);
	case CEL_REQ_DURATION:
		out->type = CEL_DURATION;
		out->v.duration_ns = (int64_t)e->duration_us * 1000;
		return true;
	case CEL_REQ_SIZE:
		return logfilter_int((int64_t)e->bytes_received, out);
	case CEL_RESP_CODE:
		/* a TCP relay has no response code: Envoy leaves it unset */
		return e->status > 0 && logfilter_int(e->status, out);
	case CEL_RESP_CODE_DETAILS:
		return logfilter_str(e->details, strlen(e->details), out);
	case CEL_RESP_FLAGS:
		return logfilter_int((int64_t)logfilter_flags(e->flags), out);
	case CEL_RESP_GRPC_STATUS:
		return e->grpc_status >= 0 && logfilter_int(e->grpc_status, out);
	case CEL_RESP_HEADERS:
		return logfilter_header(x, LOGFILTER_RESPONSE, key, keylen, out);
	case CEL_RESP_SIZE:
		return logfilter_int((int64_t)e->bytes_sent, out);
	case CEL_SRC_ADDRESS:
		return logfilter_str(e->downstream_remote,
				     e->downstream_remote ? strlen(e->downstream_remote) : 0, out);
	case CEL_SRC_PORT:
		return logfilter_port(e->downstream_remote) >= 0 &&
		       logfilter_int(logfilter_port(e->downstream_remote), out);
	case CEL_DST_ADDRESS:
		return logfilter_str(e->downstream_local,
				     e->downstream_local ? strlen(e->downstream_local) : 0, out);
	case CEL_DST_PORT:
		return logfilter_port(e->downstream_local) >= 0 &&
		       logfilter_int(logfilter_port(e->downstream_local), out);
	case CEL_CONN_MTLS:
		out->type = CEL_BOOL;
		out->v.b = x->ssl != NULL && SSL_get0_peer_certificate(x->ssl) != NULL;
		return true;
	case CEL_CONN_SNI:
		return logfilter_str(e->requested_server_name, e->requested_server_name_len, out);
	case CEL_CONN_TLS_VERSION:
		return logfilter_str(
		    e->downstream_tls_version,
		    e->downstream_tls_version ? strlen(e->downstream_tls_version) : 0, out);
	case CEL_UPSTREAM_ADDRESS:
		return logfilter_str(e->upstream_host,
				     e->upstream_host ? strlen(e->upstream_host) : 0, out);
	case CEL_XDS_CLUSTER:
		return logfilter_str(e->upstream_cluster,
				     e->upstream_cluster ? strlen(e->upstream_cluster) : 0, out);
	case CEL_XDS_ROUTE:
		return logfilter_str(e->route_name, e->route_name ? strlen(e->route_name) : 0, out);
	default:
		/* request/response total sizes: not counted here; absent, so the
		 * expression fails (no line) rather than judging a wrong figure */
		return false;
	}
}

bool logfilter_pass(const struct cfg_set *set, const struct accesslog_entry *e,
		    const struct exchange *ex, const struct ssl_st *ssl)
{
	struct logfilter_ctx x = {set, e, ex, ssl};

	if (set->access_log_filter == NULL)
		return true;
	return cel_eval(set->access_log_filter, logfilter_lookup, &x);
}
