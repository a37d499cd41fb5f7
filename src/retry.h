/* Retry policy: Istio's HTTPRetry compiled into flags (what Istio hands Envoy), and the
 * decisions the proxy asks for on each failed attempt.  Pure functions: unit-tested without
 * sockets.
 *
 * Semantics (Istio's conversion, then Envoy's router):
 *   - no `retries` block: Istio's default, 2 retries on connect-failure, refused-stream,
 *     unavailable, cancelled and retriable-status-codes with 503;
 *   - `attempts` absent or 0: no retries;
 *   - `retryOn` replaces the default conditions; plain status codes in it are retriable
 *     status codes (retriable-status-codes is implied);
 *   - the first try plus `attempts` retries; `perTryTimeout` bounds each try, the route
 *     `timeout` all of them together. */
#ifndef MG_RETRY_H
#define MG_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/model.h"

enum retry_on {
	RETRY_ON_5XX = 1u << 0,
	RETRY_ON_GATEWAY_ERROR = 1u << 1,
	RETRY_ON_RESET = 1u << 2,
	RETRY_ON_RESET_BEFORE_REQUEST = 1u << 3,
	RETRY_ON_CONNECT_FAILURE = 1u << 4,
	RETRY_ON_ENVOY_RATELIMITED = 1u << 5,
	RETRY_ON_RETRIABLE_4XX = 1u << 6,
	RETRY_ON_REFUSED_STREAM = 1u << 7,
	RETRY_ON_STATUS_CODES = 1u << 8,
	RETRY_ON_RETRIABLE_HEADERS = 1u << 9,
	RETRY_ON_HTTP3_POST_CONNECT = 1u << 10,
	RETRY_ON_GRPC_CANCELLED = 1u << 11,
	RETRY_ON_GRPC_DEADLINE_EXCEEDED = 1u << 12,
	RETRY_ON_GRPC_INTERNAL = 1u << 13,
	RETRY_ON_GRPC_RESOURCE_EXHAUSTED = 1u << 14,
	RETRY_ON_GRPC_UNAVAILABLE = 1u << 15,
};

/* The conditions that look at a response's grpc-status. */
#define RETRY_ON_GRPC_ANY                                                                          \
	(RETRY_ON_GRPC_CANCELLED | RETRY_ON_GRPC_DEADLINE_EXCEEDED | RETRY_ON_GRPC_INTERNAL |      \
	 RETRY_ON_GRPC_RESOURCE_EXHAUSTED | RETRY_ON_GRPC_UNAVAILABLE)

/* Why an attempt failed without a usable response. */
enum retry_failure {
	RETRY_FAIL_CONNECT, /* refused, unreachable, connect timeout */
	RETRY_FAIL_RESET,   /* closed or reset before the response head */
	RETRY_FAIL_PER_TRY, /* perTryTimeout expired before the response head */
	RETRY_FAIL_REFUSED, /* HTTP/2 stream refused (REFUSED_STREAM, above a GOAWAY) */
};

/* Parse a retryOn string ("5xx,gateway-error,503") into rp->on and rp->codes.  Returns 0, or
 * -1 with *bad and *badlen naming the first token that is neither a condition nor a status
 * code in 100..599. */
int retry_on_parse(const char *s, struct retry_policy *rp, const char **bad, size_t *badlen);

/* Istio's policy for routes that have no `retries` block. */
void retry_policy_default(struct retry_policy *rp);

/* Compile a decoded `retries` block (or its absence) into rp. */
void retry_policy_compile(const struct http_retry *rt, struct retry_policy *rp);

/* Is a response with this status (and grpc-status, -1 when absent) worth another try? */
bool retry_on_status(const struct retry_policy *rp, int status, int grpc_status);

/* Is a failure without a response worth another try? */
bool retry_on_failure(const struct retry_policy *rp, enum retry_failure f);

/* Wait before retry number n (1-based): Envoy's fully jittered exponential backoff, a
 * random value in [0, (2^n - 1) * base), capped at 10 * base.  rnd is a random 64-bit
 * value from the caller's generator. */
uint64_t retry_backoff_us(const struct retry_policy *rp, unsigned n, uint64_t rnd);

#endif
