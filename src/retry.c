#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

#define RETRY_DEFAULT_BACKOFF_US 25000 /* Envoy's base interval */

static const struct {
	const char *name;
	uint32_t bit;
} retry_names[] = {
    {"5xx", RETRY_ON_5XX},
    {"gateway-error", RETRY_ON_GATEWAY_ERROR},
    {"reset", RETRY_ON_RESET},
    {"reset-before-request", RETRY_ON_RESET_BEFORE_REQUEST},
    {"connect-failure", RETRY_ON_CONNECT_FAILURE},
    {"envoy-ratelimited", RETRY_ON_ENVOY_RATELIMITED},
    {"retriable-4xx", RETRY_ON_RETRIABLE_4XX},
    {"refused-stream", RETRY_ON_REFUSED_STREAM},
    {"retriable-status-codes", RETRY_ON_STATUS_CODES},
    {"retriable-headers", RETRY_ON_RETRIABLE_HEADERS},
    {"http3-post-connect-failure", RETRY_ON_HTTP3_POST_CONNECT},
    {"cancelled", RETRY_ON_GRPC_CANCELLED},
    {"deadline-exceeded", RETRY_ON_GRPC_DEADLINE_EXCEEDED},
    {"internal", RETRY_ON_GRPC_INTERNAL},
    {"resource-exhausted", RETRY_ON_GRPC_RESOURCE_EXHAUSTED},
    {"unavailable", RETRY_ON_GRPC_UNAVAILABLE},
};

static bool retry_token(const char *p, size_t len, struct retry_policy *rp)
{
	unsigned code = 0;

	for (size_t i = 0; i < sizeof(retry_names) / sizeof(retry_names[0]); i++) {
		if (strlen(retry_names[i].name) == len &&
		    memcmp(retry_names[i].name, p, len) == 0) {
			rp->on |= retry_names[i].bit;
			return true;
		}
	}
	if (len != 3)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		code = code * 10 + (unsigned)(p[i] - '0');
	}
	if (code < 100 || code > 599)
		return false;
	/* Istio adds retriable-status-codes when plain codes are listed. */
	rp->on |= RETRY_ON_STATUS_CODES;
	for (size_t i = 0; i < rp->ncodes; i++)
		if (rp->codes[i] == code)
			return true;
	if (rp->ncodes < RETRY_MAX_CODES)
		rp->codes[rp->ncodes++] = (uint16_t)code;
	return true;
}

int retry_on_parse(const char *s, struct retry_policy *rp, const char **bad, size_t *badlen)
{
	const char *p = s;

	rp->on = 0;
	rp->ncodes = 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);

		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!retry_token(p, len, rp)) {
			*bad = p;
			*badlen = len;
			return -1;
		}
		if (e == NULL)
			return 0;
		p = e + 1;
	}
}

void retry_policy_default(struct retry_policy *rp)
{
	memset(rp, 0, sizeof(*rp));
	rp->num_retries = 2;
	rp->on = RETRY_ON_CONNECT_FAILURE | RETRY_ON_REFUSED_STREAM | RETRY_ON_GRPC_UNAVAILABLE |
		 RETRY_ON_GRPC_CANCELLED | RETRY_ON_STATUS_CODES;
	rp->codes[0] = 503;
	rp->ncodes = 1;
	rp->backoff_base_us = RETRY_DEFAULT_BACKOFF_US;
	rp->ignore_previous_hosts = true;
}

void retry_policy_compile(const struct http_retry *rt, struct retry_policy *rp)
{
	const char *bad;
	size_t badlen;

	retry_policy_default(rp);
	if (!rt->given)
		return;
	if (rt->attempts <= 0) {
		rp->num_retries = 0; /* Istio: attempts 0 (or absent) disables retries */
		return;
	}
	rp->num_retries = (uint32_t)rt->attempts;
	if (rt->retry_on != NULL && retry_on_parse(rt->retry_on, rp, &bad, &badlen) != 0) {
		/* the decoder refused it already; keep the default conditions */
		retry_policy_default(rp);
		rp->num_retries = (uint32_t)rt->attempts;
	}
	rp->per_try_timeout_us = rt->per_try_timeout_us;
	if (rt->backoff_us > 0)
		rp->backoff_base_us = rt->backoff_us;
	if (rt->ignore_previous_hosts == 0)
		rp->ignore_previous_hosts = false;
	rp->remote_localities = rt->retry_remote_localities;
}

static bool retry_code_listed(const struct retry_policy *rp, int status)
{
	for (size_t i = 0; i < rp->ncodes; i++)
		if (rp->codes[i] == status)
			return true;
	return false;
}

bool retry_on_status(const struct retry_policy *rp, int status, int grpc_status)
{
	uint32_t on = rp->on;

	if ((on & RETRY_ON_5XX) && status >= 500 && status <= 599)
		return true;
	if ((on & RETRY_ON_GATEWAY_ERROR) && status >= 502 && status <= 504)
		return true;
	if ((on & RETRY_ON_RETRIABLE_4XX) && status == 409)
		return true;
	if ((on & RETRY_ON_STATUS_CODES) && retry_code_listed(rp, status))
		return true;
	switch (grpc_status) {
	case 1:
		return (on & RETRY_ON_GRPC_CANCELLED) != 0;
	case 4:
		return (on & RETRY_ON_GRPC_DEADLINE_EXCEEDED) != 0;
	case 8:
		return (on & RETRY_ON_GRPC_RESOURCE_EXHAUSTED) != 0;
	case 13:
		return (on & RETRY_ON_GRPC_INTERNAL) != 0;
	case 14:
		return (on & RETRY_ON_GRPC_UNAVAILABLE) != 0;
	default:
		return false;
	}
}

bool retry_on_failure(const struct retry_policy *rp, enum retry_failure f)
{
	/* Envoy: 5xx and gateway-error cover "no response at all" (connect failure, reset,
	 * per-try timeout); reset covers everything but a failed connect is also a reset
	 * before the request. */
	uint32_t any = RETRY_ON_5XX | RETRY_ON_GATEWAY_ERROR | RETRY_ON_RESET;

	switch (f) {
	case RETRY_FAIL_CONNECT:
		return (rp->on &
			(any | RETRY_ON_CONNECT_FAILURE | RETRY_ON_RESET_BEFORE_REQUEST)) != 0;
	case RETRY_FAIL_RESET:
	case RETRY_FAIL_PER_TRY:
		return (rp->on & any) != 0;
	case RETRY_FAIL_REFUSED:
		return (rp->on & (any | RETRY_ON_REFUSED_STREAM)) != 0;
	}
	return false;
}

uint64_t retry_backoff_us(const struct retry_policy *rp, unsigned n, uint64_t rnd)
{
	uint64_t base = rp->backoff_base_us > 0 ? rp->backoff_base_us : RETRY_DEFAULT_BACKOFF_US;
	uint64_t cap = base * 10;
	uint64_t span;

	if (n == 0)
		n = 1;
	if (n > 10)
		n = 10;
	span = ((UINT64_C(1) << n) - 1) * base;
	if (span > cap)
		span = cap;
	return rnd % span;
}
