/* Fault injection decisions for a route (Istio HTTPFaultInjection as Envoy's fault filter
 * applies it): whether this request is delayed or aborted, and what the abort answers.
 * Pure functions over the decoded fault and a random draw; request.c holds the request for
 * the delay (a per-exchange timer) and writes the reply.
 *
 * Percentages follow Istio's translation: percentage.value becomes a fraction per million
 * (truncated), the deprecated delay.percent a fraction per hundred; an absent percentage is
 * 0 % (Envoy's default for an unset fraction), so such a fault never fires.  Delay and abort
 * are drawn independently, the abort after the delay (Envoy's order). */
#ifndef MG_FAULT_H
#define MG_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct percent;
struct http_fault;

/* Whether a fault with percentage p fires for the uniform random number r. */
bool fault_hit(const struct percent *p, uint64_t r);

/* The delay to inject for draw r, in microseconds; 0 = none. */
uint64_t fault_delay_us(const struct http_fault *f, uint64_t r);

/* What an injected abort answers. */
struct fault_reply {
	int status;
	const char *content_type; /* NULL with an empty body */
	const char *body;
	size_t body_len;
	char headers[96]; /* extra header lines, CRLF-terminated ("" for none) */
	int grpc_status;  /* the grpc-status among them, -1 for a plain HTTP answer */
};

/* Whether the fault aborts for draw r; if so, fills out.  grpc: the request is gRPC
 * (fault_is_grpc), which Envoy answers "trailers-only": HTTP 200 with grpc-status. An abort
 * without httpStatus or grpcStatus never fires (Istio drops it). */
bool fault_abort(const struct http_fault *f, uint64_t r, bool grpc, struct fault_reply *out);

/* Content-Type value of a gRPC request: application/grpc, optionally +format or ;params. */
bool fault_is_grpc(const char *content_type, size_t len);

/* Envoy's mapping of an HTTP status to a gRPC status code, for gRPC local replies. */
int fault_http_to_grpc(int status);

#endif
