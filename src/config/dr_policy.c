#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "dr_policy.h"
#include "load.h"
#include "node.h"

static const char *const dr_h2_upgrade[] = {"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL};

static bool dr_tcp_keepalive(struct diag *d, struct node *n, struct conn_pool_settings *cp)
{
	bool ok = true;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	cp->keepalive.given = true;
	ok &= cfg_decode_u32(d, node_get(n, "probes"), 0, UINT32_MAX, &cp->keepalive.probes);
	ok &= cfg_decode_duration(d, node_get(n, "time"), 1000000, true, &cp->keepalive.time_us);
	ok &= cfg_decode_duration(d, node_get(n, "interval"), 1000000, true,
				  &cp->keepalive.interval_us);
	node_check_unknown(d, n);
	return ok;
}

static bool dr_tcp(struct diag *d, struct node *n, struct conn_pool_settings *cp)
{
	bool ok = true;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ok &= cfg_decode_u32(d, node_get(n, "maxConnections"), 0, INT32_MAX, &cp->max_connections);
	ok &= cfg_decode_duration(d, node_get(n, "connectTimeout"), 1000, false,
				  &cp->connect_timeout_us);
	ok &= cfg_decode_duration(d, node_get(n, "maxConnectionDuration"), 1000, false,
				  &cp->max_connection_duration_us);
	ok &=
	    cfg_decode_duration(d, node_get(n, "idleTimeout"), 0, false, &cp->tcp_idle_timeout_us);
	ok &= dr_tcp_keepalive(d, node_get(n, "tcpKeepalive"), cp);
	node_check_unknown(d, n);
	return ok;
}

static bool dr_http(struct diag *d, struct node *n, struct conn_pool_settings *cp)
{
	struct node *x;
	uint32_t ignored;
	bool b, ok = true;
	int i;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ok &= cfg_decode_u32(d, node_get(n, "http1MaxPendingRequests"), 0, INT32_MAX,
			     &cp->max_pending);
	ok &= cfg_decode_u32(d, node_get(n, "http2MaxRequests"), 0, INT32_MAX, &cp->max_requests);
	ok &= cfg_decode_u32(d, node_get(n, "maxRequestsPerConnection"), 0, INT32_MAX,
			     &cp->max_requests_per_connection);
	ok &= cfg_decode_u32(d, node_get(n, "maxRetries"), 0, INT32_MAX, &cp->max_retries);
	ok &= cfg_decode_duration(d, node_get(n, "idleTimeout"), 1000, false,
				  &cp->http_idle_timeout_us);
	/* HTTP/2 towards upstreams is not spoken yet: these are valid and have nothing to act
	 * on; said once so nobody expects them to. */
	if ((x = node_get(n, "h2UpgradePolicy")) != NULL) {
		if (!node_enum(d, x, dr_h2_upgrade, &i))
			ok = false;
		else if (i == 2)
			diag_warn(d, x, "UPGRADE has no effect: upstream connections are HTTP/1.1");
	}
	if ((x = node_get(n, "useClientProtocol")) != NULL && !node_bool(d, x, &b))
		ok = false;
	ok &= cfg_decode_u32(d, node_get(n, "maxConcurrentStreams"), 0, INT32_MAX, &ignored);
	node_check_unknown(d, n);
	return ok;
}

bool dr_policy_connection_pool(struct diag *d, struct node *n, struct conn_pool_settings *cp)
{
	bool ok = true;

	memset(cp, 0, sizeof(*cp));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	cp->given = true;
	cp->node = n;
	ok &= dr_tcp(d, node_get(n, "tcp"), cp);
	ok &= dr_http(d, node_get(n, "http"), cp);
	node_check_unknown(d, n);
	return ok;
}

bool dr_policy_outlier(struct diag *d, struct node *n, struct outlier_settings *od)
{
	struct node *c5, *old;
	bool ok = true;

	memset(od, 0, sizeof(*od));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	od->given = true;
	od->node = n;
	/* Istio's (and Envoy's) defaults; consecutiveErrors is the deprecated spelling of
	 * consecutive5xxErrors. */
	od->consecutive_5xx = 5;
	od->consecutive_local = 5;
	od->interval_us = 10000000;
	od->base_ejection_us = 30000000;
	od->max_ejection_percent = 10;
	c5 = node_get(n, "consecutive5xxErrors");
	old = node_get(n, "consecutiveErrors");
	if (c5 != NULL)
		ok &= cfg_decode_u32(d, c5, 0, INT32_MAX, &od->consecutive_5xx);
	else if (old != NULL)
		ok &= cfg_decode_u32(d, old, 0, INT32_MAX, &od->consecutive_5xx);
	ok &= cfg_decode_u32(d, node_get(n, "consecutiveGatewayErrors"), 0, INT32_MAX,
			     &od->consecutive_gateway);
	ok &= cfg_decode_u32(d, node_get(n, "consecutiveLocalOriginFailures"), 0, INT32_MAX,
			     &od->consecutive_local);
	if (node_get(n, "splitExternalLocalOriginErrors") != NULL)
		ok &= node_bool(d, node_get(n, "splitExternalLocalOriginErrors"),
				&od->split_local_origin);
	ok &= cfg_decode_duration(d, node_get(n, "interval"), 1000, false, &od->interval_us);
	ok &= cfg_decode_duration(d, node_get(n, "baseEjectionTime"), 1000, false,
				  &od->base_ejection_us);
	ok &=
	    cfg_decode_u32(d, node_get(n, "maxEjectionPercent"), 0, 100, &od->max_ejection_percent);
	ok &= cfg_decode_u32(d, node_get(n, "minHealthPercent"), 0, 100, &od->min_health_percent);
	node_check_unknown(d, n);
	return ok;
}
