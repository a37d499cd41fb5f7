/* Counters, declared once in the X-macro list below: the enum, the Prometheus output and
 * the documentation come from it.  Each worker writes only its own shard (plain stores, no
 * atomics needed for the writer; readers on the admin thread tolerate torn-free 64-bit
 * reads on the platforms we build for). */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stdint.h>
#include <stdio.h>

/* name, type, help */
/* clang-format off */
#define MG_METRICS(X)                                                                              \
	X(downstream_cx_total, counter, "Client connections accepted")                            \
	X(downstream_cx_overflow, counter, "Client connections refused at maxConnections")        \
	X(downstream_rq_total, counter, "Requests received")                                       \
	X(downstream_rq_1xx, counter, "Responses with a 1xx status")                              \
	X(downstream_rq_2xx, counter, "Responses with a 2xx status")                              \
	X(downstream_rq_3xx, counter, "Responses with a 3xx status")                              \
	X(downstream_rq_4xx, counter, "Responses with a 4xx status")                              \
	X(downstream_rq_5xx, counter, "Responses with a 5xx status")                              \
	X(downstream_rq_bad_request, counter, "Requests rejected as malformed (400/414/431/501/505)") \
	X(downstream_rq_timeout, counter, "Requests answered 408 (header or body timeout)")       \
	X(downstream_rq_no_route, counter, "Requests with no matching vhost or route (404 NR)")   \
	X(downstream_rq_rbac_denied, counter, "Requests denied by an AuthorizationPolicy (403)")   \
	X(downstream_rq_rbac_istio_dry_run_deny_shadow_allowed, counter,                           \
	  "Requests no dry-run DENY AuthorizationPolicy matched")                                  \
	X(downstream_rq_rbac_istio_dry_run_deny_shadow_denied, counter,                            \
	  "Requests a dry-run DENY AuthorizationPolicy would have denied")                         \
	X(downstream_rq_rbac_istio_dry_run_allow_shadow_allowed, counter,                          \
	  "Requests a dry-run ALLOW AuthorizationPolicy matched")                                  \
	X(downstream_rq_rbac_istio_dry_run_allow_shadow_denied, counter,                           \
	  "Requests the dry-run ALLOW AuthorizationPolicies would have denied (none matched)")     \
	X(downstream_rq_jwt_denied, counter,                                                       \
	  "Requests with a JWT that RequestAuthentication refused (401)")                          \
	X(downstream_rq_jwt_verified, counter, "Requests with a verified JWT")                     \
	X(downstream_rq_rate_limited, counter, "Requests refused by the local rate limit (429 RL)") \
	X(downstream_rq_rate_limit_shadow, counter,                                                \
	  "Requests over the local rate limit let through (filter_enforced)")                     \
	X(downstream_cx_rbac_denied, counter,                                                      \
	  "TCP and TLS passthrough connections closed by an AuthorizationPolicy")                  \
	X(downstream_cx_rbac_istio_dry_run_deny_shadow_allowed, counter,                           \
	  "TCP and TLS passthrough connections no dry-run DENY AuthorizationPolicy matched")       \
	X(downstream_cx_rbac_istio_dry_run_deny_shadow_denied, counter,                            \
	  "TCP and TLS passthrough connections a dry-run DENY AuthorizationPolicy would have "     \
	  "closed")                                                                                \
	X(downstream_cx_rbac_istio_dry_run_allow_shadow_allowed, counter,                          \
	  "TCP and TLS passthrough connections a dry-run ALLOW AuthorizationPolicy matched")       \
	X(downstream_cx_rbac_istio_dry_run_allow_shadow_denied, counter,                           \
	  "TCP and TLS passthrough connections the dry-run ALLOW AuthorizationPolicies would have " \
	  "closed (none matched)")                                                                 \
	X(downstream_rq_direct_response, counter, "Requests answered by directResponse/redirect") \
	X(upstream_cx_websocket, counter, "WebSocket upgrades the upstream accepted (101)")      \
	X(ext_authz_ok, counter, "Requests the external authorizer allowed (CUSTOM policies)")   \
	X(ext_authz_denied, counter, "Requests the external authorizer denied (UAEX)")           \
	X(ext_authz_error, counter,                                                               \
	  "Checks that got no answer, or a 5xx, from the external authorizer")                   \
	X(ext_authz_failure_mode_allowed, counter,                                                \
	  "Requests let through on an authorizer error (failOpen)")                              \
	X(fault_delays_injected, counter, "Requests held by an injected fault delay (DI)")       \
	X(fault_aborts_injected, counter, "Requests answered by an injected fault abort (FI)")  \
	X(downstream_cx_http2_total, counter, "Client connections that speak HTTP/2")             \
	X(downstream_rq_http2_total, counter, "Requests received as HTTP/2 streams")              \
	X(downstream_rq_rx_reset, counter, "HTTP/2 streams the client reset (RST_STREAM)")         \
	X(downstream_cx_http2_goaway_error, counter,                                               \
	  "HTTP/2 client connections ended by our GOAWAY with an error (reason in the log)")       \
	X(downstream_cx_destroy_remote, counter, "Client connections closed by the client")      \
	X(downstream_cx_ssl_handshake_error, counter, "Failed TLS handshakes (reason in the log)") \
	X(upstream_cx_total, counter, "Upstream connections opened")                              \
	X(downstream_cx_passthrough, counter, "TLS passthrough connections relayed by SNI")       \
	X(downstream_cx_tcp, counter, "Connections relayed by a VirtualService tcp route")        \
	X(downstream_cx_no_route, counter, "L4 connections closed for want of a route (NR)")     \
	X(downstream_cx_hello_fail, counter, "Passthrough connections without a ClientHello in time") \
	X(downstream_cx_proxy_proto_error, counter,                                                \
	  "Connections closed for a missing or invalid PROXY protocol header")                     \
	X(upstream_cx_connect_fail, counter, "Upstream connect failures (503 UF, or UF,URX at L4)") \
	X(upstream_cx_reuse, counter, "Requests sent on a reused pooled upstream connection")     \
	X(upstream_cx_ssl_handshake, counter, "Upstream TLS handshakes completed")                \
	X(upstream_cx_ssl_session_reused, counter, "Upstream TLS handshakes that resumed a session") \
	X(upstream_cx_ssl_handshake_error, counter, "Upstream TLS handshakes failed (503 UF)")    \
	X(upstream_rq_timeout, counter, "Route timeouts (504 UT)")                                \
	X(upstream_rq_reset, counter, "Upstream resets/closes before a complete response")       \
	X(upstream_rq_bad_response, counter, "Upstream responses rejected as malformed (502)")    \
	X(upstream_rq_mirror_sent, counter, "Mirror copies sent to a mirror destination")         \
	X(upstream_rq_mirror_failed, counter, "Mirror copies failed (connect, timeout, reply)")    \
	X(upstream_rq_mirror_dropped, counter, "Mirror copies dropped (cap) or abandoned (bound)") \
	X(upstream_rq_no_healthy, counter, "Requests to a cluster without endpoints (503 UH)")   \
	X(upstream_rq_retry, counter, "Retries of a request (route retries policy)")               \
	X(upstream_rq_retry_overflow, counter, "Retries refused by connectionPool maxRetries")     \
	X(upstream_rq_overflow, counter, "Requests refused by a circuit breaker (503 UO)")        \
	X(upstream_rq_retry_limit_exceeded, counter, "Retries wanted but exhausted (URX)")         \
	X(upstream_rq_per_try_timeout, counter, "Tries that hit perTryTimeout")                   \
	X(upstream_rq_retry_stale, counter, "Requests retried after a stale pooled connection")     \
	X(upstream_cx_http2_total, counter, "Upstream HTTP/2 connections opened")                 \
	X(upstream_cx_http2_goaway, counter, "GOAWAY frames received from HTTP/2 upstreams")       \
	X(upstream_cx_http2_alpn_fallback, counter,                                                \
	  "HTTP/2 upstream connections whose TLS server chose HTTP/1.1")                           \
	X(upstream_rq_http2_total, counter, "Requests sent as HTTP/2 streams")                     \
	X(upstream_rq_refused_stream, counter, "HTTP/2 streams refused by upstreams (not processed)") \
	X(upstream_rq_rx_reset, counter, "HTTP/2 streams reset by upstreams")
/* clang-format on */

enum metric_id {
#define MG_METRIC_ENUM(name, type, help) M_##name,
	MG_METRICS(MG_METRIC_ENUM)
#undef MG_METRIC_ENUM
	    M__COUNT
};

/* Failed downstream TLS handshakes by reason (enum tls_fail, tls.h): one labelled family. */
#define METRICS_TLS_FAIL_KINDS 8

/* Connections on PeerAuthentication PERMISSIVE ports by what they spoke: [0] plaintext,
 * [1] TLS (mutual TLS, or a failed handshake counted by tls_fail too). */
#define METRICS_PERMISSIVE_PLAINTEXT 0
#define METRICS_PERMISSIVE_TLS 1

struct metrics_shard {
	uint64_t v[M__COUNT];
	uint64_t tls_fail[METRICS_TLS_FAIL_KINDS];
	uint64_t permissive[2];
};

#define METRIC_INC(shard, id) ((shard)->v[M_##id]++)

/* Sum every worker's shard and write Prometheus text exposition (admin thread). */
void metrics_write_prometheus(FILE *out);

#endif
