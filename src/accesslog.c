#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "authz.h"
#include "log.h"
#include "logformat.h"

#define ALOG_BUF (64 * 1024)
#define ALOG_LINE_MAX ACCESSLOG_LINE_MAX

struct accesslog_buf {
	size_t len;
	char data[ALOG_BUF];
};

/* The descriptor workers write to.  Re-targeting it (reload) uses dup2() onto the same
 * number, so a worker never sees a closed descriptor. */
static atomic_int alog_fd = -1;
static atomic_int alog_format = ACCESSLOG_TEXT;

int accesslog_open(const char *path, enum accesslog_format fmt)
{
	int fd, cur = atomic_load(&alog_fd);

	atomic_store(&alog_format, (int)fmt);
	if (path == NULL) {
		atomic_store(&alog_fd, -1); /* the old descriptor is left open: harmless */
		return 0;
	}
	if (strcmp(path, "-") == 0)
		fd = dup(STDOUT_FILENO);
	else
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_warn("access log %s", path);
		return -1;
	}
	if (cur >= 0) {
		if (dup2(fd, cur) < 0) {
			log_warn("dup2 access log");
			close(fd);
			return -1;
		}
		close(fd);
	} else {
		atomic_store(&alog_fd, fd);
	}
	return 0;
}

void accesslog_close(void)
{
	int fd = atomic_exchange(&alog_fd, -1);

	if (fd >= 0)
		close(fd);
}

struct accesslog_buf *accesslog_buf_new(void)
{
	struct accesslog_buf *b = calloc(1, sizeof(*b));

	if (b == NULL)
		fatal("calloc");
	return b;
}

void accesslog_buf_free(struct accesslog_buf *b)
{
	free(b);
}

void accesslog_flush(struct accesslog_buf *b)
{
	int fd = atomic_load_explicit(&alog_fd, memory_order_relaxed);
	size_t off = 0;

	while (fd >= 0 && off < b->len) {
		ssize_t n = write(fd, b->data + off, b->len - off);

		if (n <= 0)
			break; /* a full disk must not stall the data path: the lines are lost */
		off += (size_t)n;
	}
	b->len = 0;
}

/* Append s to the line: quoted-field safe (no quotes, backslashes or control bytes), with
 * "-" for empty values, as Envoy prints missing fields. */
size_t accesslog_put(char *o, size_t at, const char *s, size_t len, bool json)
{
	size_t i;

	if (s == NULL || len == 0) {
		if (!json && at < ALOG_LINE_MAX - 1)
			o[at++] = '-';
		return at;
	}
	for (i = 0; i < len && at < ALOG_LINE_MAX - 8; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			o[at++] = '\\';
			o[at++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			at += (size_t)snprintf(o + at, 8, json ? "\\u%04x" : "\\x%02x", ch);
		} else {
			o[at++] = (char)ch;
		}
	}
	return at;
}

static size_t puts0(char *o, size_t at, const char *s, bool json)
{
	return accesslog_put(o, at, s, s != NULL ? strlen(s) : 0, json);
}

size_t accesslog_lit_n(char *o, size_t at, const char *s, size_t n)
{
	if (at + n >= ALOG_LINE_MAX - 1)
		n = ALOG_LINE_MAX - 1 - at;
	memcpy(o + at, s, n);
	return at + n;
}

size_t accesslog_lit(char *o, size_t at, const char *s)
{
	return accesslog_lit_n(o, at, s, strlen(s));
}

size_t accesslog_num(char *o, size_t at, long long v)
{
	char t[32];

	snprintf(t, sizeof(t), "%lld", v);
	return accesslog_lit(o, at, t);
}

/* One shadow engine's dynamic metadata as JSON members, when it was evaluated: the
 * result, and the policy that matched if one did (Envoy sets the id only then). */
static size_t shadow_json(char *o, size_t at, const char *prefix, const struct authz_engine *e)
{
	char id[AUTHZ_POLICY_ID_MAX];

	if (e->verdict == AUTHZ_NOT_EVALUATED)
		return at;
	at = accesslog_lit(o, at, ",\"");
	at = accesslog_lit(o, at, prefix);
	at = accesslog_lit(o, at, "shadow_engine_result\":\"");
	at = accesslog_lit(o, at, authz_verdict_text(e->verdict));
	at = accesslog_lit(o, at, "\"");
	if (e->ap != NULL) {
		at = accesslog_lit(o, at, ",\"");
		at = accesslog_lit(o, at, prefix);
		at = accesslog_lit(o, at, "shadow_effective_policy_id\":\"");
		at = puts0(o, at, authz_policy_id(e, id, sizeof(id)), true);
		at = accesslog_lit(o, at, "\"");
	}
	return at;
}

const char *const accesslog_flags[ACCESSLOG_NFLAGS][2] = {
    {"LH", "FailedLocalHealthCheck"},
    {"UH", "NoHealthyUpstream"},
    {"UT", "UpstreamRequestTimeout"},
    {"LR", "LocalReset"},
    {"UR", "UpstreamRemoteReset"},
    {"UF", "UpstreamConnectionFailure"},
    {"UC", "UpstreamConnectionTermination"},
    {"UO", "UpstreamOverflow"},
    {"NR", "NoRouteFound"},
    {"DI", "DelayInjected"},
    {"FI", "FaultInjected"},
    {"RL", "RateLimited"},
    {"UAEX", "UnauthorizedExternalService"},
    {"RLSE", "RateLimitServiceError"},
    {"DC", "DownstreamConnectionTermination"},
    {"URX", "UpstreamRetryLimitExceeded"},
    {"SI", "StreamIdleTimeout"},
    {"IH", "InvalidEnvoyRequestHeaders"},
    {"DPE", "DownstreamProtocolError"},
    {"UMSDR", "UpstreamMaxStreamDurationReached"},
    {"RFCF", "ResponseFromCacheFilter"},
    {"NFCF", "NoFilterConfigFound"},
    {"DT", "DurationTimeout"},
    {"UPE", "UpstreamProtocolError"},
    {"NC", "NoClusterFound"},
    {"OM", "OverloadManagerTerminated"},
    {"DF", "DnsResolutionFailed"},
};

int accesslog_flag_index(const char *s, size_t len)
{
	for (int i = 0; i < ACCESSLOG_NFLAGS; i++)
		if (strlen(accesslog_flags[i][0]) == len &&
		    memcmp(accesslog_flags[i][0], s, len) == 0)
			return i;
	return -1;
}

bool accesslog_enabled(void)
{
	return atomic_load_explicit(&alog_fd, memory_order_relaxed) >= 0;
}

/* One finished line into the worker's buffer, flushed first when it would not fit. */
static void accesslog_append(struct accesslog_buf *b, const char *line, size_t len)
{
	if (b->len + len > sizeof(b->data))
		accesslog_flush(b);
	memcpy(b->data + b->len, line, len);
	b->len += len;
}

size_t accesslog_time(const struct timespec *t, char *out, size_t cap)
{
	struct tm tm;
	size_t n;

	gmtime_r(&t->tv_sec, &tm);
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(out + n, cap - n, ".%03ldZ", t->tv_nsec / 1000000);
	return n < cap ? n : cap - 1;
}

size_t accesslog_details(const char *details, char *out, size_t cap)
{
	size_t n;

	snprintf(out, cap, "%s", details);
	n = strlen(out);
	for (size_t i = 0; i < n; i++)
		if (out[i] == ' ')
			out[i] = '_';
	return n;
}

/* A line in an operator's format: it carries its own newline, kept when cut. */
static void accesslog_custom(struct accesslog_buf *b, const struct accesslog_entry *e,
			     const struct logformat *fmt)
{
	char line[ALOG_LINE_MAX];
	size_t at = logformat_render(fmt, e, line);

	if (at == 0 || line[at - 1] != '\n')
		line[at++] = '\n';
	accesslog_append(b, line, at);
}

void accesslog_write(struct accesslog_buf *b, const struct accesslog_entry *e,
		     const struct logformat *fmt)
{
	char line[ALOG_LINE_MAX];
	char ts[40];
	size_t at = 0;
	bool json = atomic_load_explicit(&alog_format, memory_order_relaxed) == ACCESSLOG_JSON;
	char details[128];

	if (atomic_load_explicit(&alog_fd, memory_order_relaxed) < 0)
		return;
	if (fmt != NULL) {
		accesslog_custom(b, e, fmt);
		return;
	}
	accesslog_time(&e->start, ts, sizeof(ts));
	accesslog_details(e->details, details, sizeof(details));

	if (!json) {
		at = accesslog_lit(line, at, "[");
		at = accesslog_lit(line, at, ts);
		at = accesslog_lit(line, at, "] \"");
		at = accesslog_put(line, at, e->method, e->method_len, false);
		at = accesslog_lit(line, at, " ");
		at = accesslog_put(line, at, e->path, e->path_len, false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->protocol, false);
		at = accesslog_lit(line, at, "\" ");
		at = accesslog_num(line, at, e->status);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->flags, false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, details, false);
		at = accesslog_lit(line, at, " - \"-\" ");
		at = accesslog_num(line, at, (long long)e->bytes_received);
		at = accesslog_lit(line, at, " ");
		at = accesslog_num(line, at, (long long)e->bytes_sent);
		at = accesslog_lit(line, at, " ");
		at = accesslog_num(line, at, (long long)(e->duration_us / 1000));
		at = accesslog_lit(line, at, " ");
		if (e->upstream_time_us >= 0)
			at = accesslog_num(line, at, (long long)(e->upstream_time_us / 1000));
		else
			at = accesslog_lit(line, at, "-");
		at = accesslog_lit(line, at, " \"");
		at = accesslog_put(line, at, e->xff, e->xff_len, false);
		at = accesslog_lit(line, at, "\" \"");
		at = accesslog_put(line, at, e->user_agent, e->user_agent_len, false);
		at = accesslog_lit(line, at, "\" \"");
		at = accesslog_put(line, at, e->request_id, e->request_id_len, false);
		at = accesslog_lit(line, at, "\" \"");
		at = accesslog_put(line, at, e->authority, e->authority_len, false);
		at = accesslog_lit(line, at, "\" \"");
		at = puts0(line, at, e->upstream_host, false);
		at = accesslog_lit(line, at, "\" ");
		at = puts0(line, at, e->upstream_cluster, false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->upstream_local, false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->downstream_local, false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->downstream_remote, false);
		at = accesslog_lit(line, at, " ");
		at = accesslog_put(line, at, e->requested_server_name, e->requested_server_name_len,
				   false);
		at = accesslog_lit(line, at, " ");
		at = puts0(line, at, e->route_name, false);
	} else {
		at = accesslog_lit(line, at, "{\"start_time\":\"");
		at = accesslog_lit(line, at, ts);
		at = accesslog_lit(line, at, "\",\"method\":\"");
		at = accesslog_put(line, at, e->method, e->method_len, true);
		at = accesslog_lit(line, at, "\",\"path\":\"");
		at = accesslog_put(line, at, e->path, e->path_len, true);
		at = accesslog_lit(line, at, "\",\"protocol\":\"");
		at = puts0(line, at, e->protocol, true);
		at = accesslog_lit(line, at, "\",\"response_code\":");
		at = accesslog_num(line, at, e->status);
		at = accesslog_lit(line, at, ",\"response_flags\":\"");
		at = puts0(line, at, e->flags, true);
		at = accesslog_lit(line, at, "\",\"response_code_details\":\"");
		at = puts0(line, at, details, true);
		at =
		    accesslog_lit(line, at,
				  "\",\"connection_termination_details\":null,"
				  "\"upstream_transport_failure_reason\":null,\"bytes_received\":");
		at = accesslog_num(line, at, (long long)e->bytes_received);
		at = accesslog_lit(line, at, ",\"bytes_sent\":");
		at = accesslog_num(line, at, (long long)e->bytes_sent);
		at = accesslog_lit(line, at, ",\"duration\":");
		at = accesslog_num(line, at, (long long)(e->duration_us / 1000));
		at = accesslog_lit(line, at, ",\"upstream_service_time\":");
		at = accesslog_num(
		    line, at,
		    e->upstream_time_us >= 0 ? (long long)(e->upstream_time_us / 1000) : -1);
		at = accesslog_lit(line, at, ",\"x_forwarded_for\":\"");
		at = accesslog_put(line, at, e->xff, e->xff_len, true);
		at = accesslog_lit(line, at, "\",\"user_agent\":\"");
		at = accesslog_put(line, at, e->user_agent, e->user_agent_len, true);
		at = accesslog_lit(line, at, "\",\"request_id\":\"");
		at = accesslog_put(line, at, e->request_id, e->request_id_len, true);
		at = accesslog_lit(line, at, "\",\"authority\":\"");
		at = accesslog_put(line, at, e->authority, e->authority_len, true);
		at = accesslog_lit(line, at, "\",\"upstream_host\":\"");
		at = puts0(line, at, e->upstream_host, true);
		at = accesslog_lit(line, at, "\",\"upstream_cluster\":\"");
		at = puts0(line, at, e->upstream_cluster, true);
		at = accesslog_lit(line, at, "\",\"upstream_local_address\":\"");
		at = puts0(line, at, e->upstream_local, true);
		at = accesslog_lit(line, at, "\",\"downstream_local_address\":\"");
		at = puts0(line, at, e->downstream_local, true);
		at = accesslog_lit(line, at, "\",\"downstream_remote_address\":\"");
		at = puts0(line, at, e->downstream_remote, true);
		if (e->requested_server_name_len > 0) {
			at = accesslog_lit(line, at, "\",\"requested_server_name\":\"");
			at = accesslog_put(line, at, e->requested_server_name,
					   e->requested_server_name_len, true);
			at = accesslog_lit(line, at, "\",\"route_name\":\"");
		} else {
			at = accesslog_lit(line, at,
					   "\",\"requested_server_name\":null,\"route_name\":\"");
		}
		at = puts0(line, at, e->route_name, true);
		if (e->downstream_alpn_len > 0) {
			at = accesslog_lit(line, at, "\",\"downstream_tls_alpn\":\"");
			at = accesslog_put(line, at, (const char *)e->downstream_alpn,
					   e->downstream_alpn_len, true);
			at = accesslog_lit(line, at, "\"");
		} else {
			at = accesslog_lit(line, at, "\",\"downstream_tls_alpn\":null");
		}
		if (e->downstream_tls_version != NULL) {
			at = accesslog_lit(line, at, ",\"downstream_tls_version\":\"");
			at = puts0(line, at, e->downstream_tls_version, true);
			at = accesslog_lit(line, at, "\",\"grpc_status\":");
		} else {
			at = accesslog_lit(line, at,
					   ",\"downstream_tls_version\":null,\"grpc_status\":");
		}
		if (e->grpc_status >= 0)
			at = accesslog_num(line, at, e->grpc_status);
		else
			at = accesslog_lit(line, at, "null");
		if (e->shadow != NULL) {
			at = shadow_json(line, at, AUTHZ_DRY_RUN_DENY, &e->shadow->deny);
			at = shadow_json(line, at, AUTHZ_DRY_RUN_ALLOW, &e->shadow->allow);
		}
		at = accesslog_lit(line, at, "}");
	}
	line[at++] = '\n';
	accesslog_append(b, line, at);
}
