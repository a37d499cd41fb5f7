/* Access log: one line per exchange (per connection for TLS passthrough and TCP relays,
 * as Envoy's tcp_proxy logs: no method or path, status 0), buffered per worker and written with one
 * write(2) per flush on an O_APPEND descriptor, so lines from workers never interleave. */
#ifndef MG_ACCESSLOG_H
#define MG_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config/model.h"

struct accesslog_buf;
struct authz_shadow;
struct exchange;
struct logformat;
struct ssl_st;

/* Longest line written; a longer one is cut (and still ends with its newline). */
#define ACCESSLOG_LINE_MAX 4096

/* Control thread: (re)open the target (NULL path = off, "-" = stdout). */
int accesslog_open(const char *path, enum accesslog_format fmt);
void accesslog_close(void);

struct accesslog_buf *accesslog_buf_new(void);
void accesslog_buf_free(struct accesslog_buf *b);
void accesslog_flush(struct accesslog_buf *b);

/* Fields of one exchange, filled by the proxy. Strings need not be NUL-terminated. */
struct accesslog_entry {
	struct timespec start; /* wall clock at request start */
	uint64_t duration_us;
	int64_t upstream_time_us; /* -1 when no upstream answered */
	const char *method, *path, *protocol, *authority, *user_agent, *xff, *request_id;
	size_t method_len, path_len, authority_len, user_agent_len, xff_len, request_id_len;
	int status;
	const char *flags;   /* "-" or "NR", "UF,URX", ... */
	const char *details; /* response code details, e.g. "route_not_found" */
	uint64_t bytes_received, bytes_sent;
	const char *upstream_host, *upstream_cluster, *route_name, *upstream_local;
	const char *downstream_local, *downstream_remote;
	const char *requested_server_name; /* SNI, validated (clienthello_host_valid) */
	size_t requested_server_name_len;
	/* ALPN protocol the client's TLS handshake negotiated (our pick among its offers);
	 * JSON only: the text format stays Istio's field for field */
	const unsigned char *downstream_alpn;
	size_t downstream_alpn_len;
	/* "TLSv1.3", "TLSv1.2" on a TLS connection, NULL on plaintext (Envoy's
	 * DOWNSTREAM_TLS_VERSION); JSON only, like the ALPN */
	const char *downstream_tls_version;
	/* the gRPC status the response carried, in its head or trailers (Envoy's GRPC_STATUS,
	 * as a number); -1 none.  JSON only, like the ALPN */
	int grpc_status;
	/* the dry-run AuthorizationPolicies' verdicts, or NULL: the RBAC filters' dynamic
	 * metadata (istio_dry_run_{deny,allow}_shadow_engine_result and _effective_policy_id),
	 * JSON only, like the ALPN, and only the engines that were evaluated */
	const struct authz_shadow *shadow;
	/* For the formats an operator writes (logformat.h): the client's TLS connection when
	 * meshgate terminates it, the upstream tries made, and the header fields kept for the
	 * log (names: the generation's access_log_headers), NULL when none were. */
	const struct ssl_st *ssl;
	unsigned attempts;
	const char *const *kept[2];
	const uint32_t *kept_len[2];
};

/* Envoy's response flags in its order (StreamInfo::CoreResponseFlag: the index is the
 * flag's bit), each as {short name, long name}; and the index of the one named s. */
#define ACCESSLOG_NFLAGS 27
extern const char *const accesslog_flags[ACCESSLOG_NFLAGS][2];
int accesslog_flag_index(const char *s, size_t len);

/* Whether lines are written at all (fields costly to make can be skipped when not). */
bool accesslog_enabled(void);
/* fmt: the generation's custom format, or NULL for the built-in one accesslog_open set. */
void accesslog_write(struct accesslog_buf *b, const struct accesslog_entry *e,
		     const struct logformat *fmt);

/* Line writers, for logformat.c: each appends at `at` of a line of ACCESSLOG_LINE_MAX
 * bytes and returns the new end, stopping short of the end.  put: a value, escaped for a
 * quoted field (JSON's escapes when json), "-" when empty in text; lit: text as is. */
size_t accesslog_put(char *o, size_t at, const char *s, size_t len, bool json);
size_t accesslog_lit(char *o, size_t at, const char *s);
size_t accesslog_lit_n(char *o, size_t at, const char *s, size_t n);
size_t accesslog_num(char *o, size_t at, long long v);
/* Envoy's default START_TIME, "2026-05-01T10:20:30.123Z", and its RESPONSE_CODE_DETAILS
 * (spaces as underscores), into out; each returns the length. */
size_t accesslog_time(const struct timespec *t, char *out, size_t cap);
size_t accesslog_details(const char *details, char *out, size_t cap);

#endif
