#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/model.h"
#include "fault.h"

#define FAULT_BODY "fault filter abort" /* Envoy's local reply body, kept for clients' tests */

bool fault_hit(const struct percent *p, uint64_t r)
{
	uint32_t per_million;

	if (!p->given)
		return false;
	/* Istio sends uint32(value * 10000) over a denominator of a million; Envoy fires when
	 * the random number modulo the denominator is below the numerator. */
	per_million = (uint32_t)(p->value * 10000.0);
	return r % 1000000 < per_million;
}

uint64_t fault_delay_us(const struct http_fault *f, uint64_t r)
{
	if (!f->given || !f->delay.given || f->delay.fixed_delay_us == 0)
		return 0;
	return fault_hit(&f->delay.percentage, r) ? f->delay.fixed_delay_us : 0;
}

bool fault_is_grpc(const char *ct, size_t len)
{
	static const char g[] = "application/grpc";
	size_t n = sizeof(g) - 1;

	if (ct == NULL || len < n || strncasecmp(ct, g, n) != 0)
		return false;
	return len == n || ct[n] == '+' || ct[n] == ';';
}

int fault_http_to_grpc(int status)
{
	switch (status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

bool fault_abort(const struct http_fault *f, uint64_t r, bool grpc, struct fault_reply *out)
{
	int http_status, grpc_code;

	if (!f->given || !f->abort.given)
		return false;
	if (f->abort.http_status != 0) {
		http_status = (int)f->abort.http_status;
		grpc_code = fault_http_to_grpc(http_status);
	} else if (f->abort.grpc_status != NULL) {
		/* Envoy: a gRPC abort is a 503 local reply carrying the gRPC status */
		http_status = 503;
		grpc_code = f->abort.grpc_code;
	} else {
		return false;
	}
	if (!fault_hit(&f->abort.percentage, r))
		return false;
	memset(out, 0, sizeof(*out));
	out->grpc_status = grpc ? grpc_code : -1;
	if (grpc) {
		/* A gRPC client reads the outcome from grpc-status, never from the HTTP status:
		 * Envoy answers such requests "trailers-only", HTTP 200 without a body. */
		out->status = 200;
		snprintf(
		    out->headers, sizeof(out->headers),
		    "content-type: application/grpc\r\ngrpc-status: %d\r\ngrpc-message: %s\r\n",
		    grpc_code, FAULT_BODY);
		return true;
	}
	out->status = http_status;
	out->content_type = "text/plain";
	out->body = FAULT_BODY;
	out->body_len = sizeof(FAULT_BODY) - 1;
	return true;
}
