#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "dr_policy.h"
#include "load.h"
#include "node.h"
#include "pool.h"

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
	/* What they change is decided per cluster by link.c (with the port's protocol). */
	if ((x = node_get(n, "h2UpgradePolicy")) != NULL) {
		if (!node_enum(d, x, dr_h2_upgrade, &i))
			ok = false;
		else
			cp->h2_upgrade = (enum dr_h2_upgrade)i;
	}
	if ((x = node_get(n, "useClientProtocol")) != NULL) {
		if (!node_bool(d, x, &b))
			ok = false;
		else
			cp->use_client_protocol = b;
	}
	ok &= cfg_decode_u32(d, node_get(n, "maxConcurrentStreams"), 0, INT32_MAX,
			     &cp->max_concurrent_streams);
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

/* An optional positive integer up to max. */
static bool dr_u64(struct diag *d, struct node *n, int64_t max, uint64_t *out)
{
	int64_t v;

	if (n == NULL)
		return true;
	if (!node_int(d, n, 1, max, &v))
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool dr_is_prime(uint64_t n)
{
	if (n < 2)
		return false;
	for (uint64_t i = 2; i * i <= n; i++)
		if (n % i == 0)
			return false;
	return true;
}

/* A cookie-av value (RFC 6265 4.1.1): no control characters and no ';'. */
static bool dr_cookie_value_ok(struct diag *d, struct node *at, const char *what, const char *v)
{
	for (const unsigned char *c = (const unsigned char *)v; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f || *c == ';') {
			diag_error(d, at, "%s must not contain control characters or ';'", what);
			return false;
		}
	return true;
}

/* httpCookie.attributes: [{name, value}] into "; name=value; name" (a bare name when the
 * value is absent or empty), in order, as Envoy appends them after Path. */
static bool dr_cookie_attributes(struct pool *p, struct diag *d, struct node *n,
				 struct consistent_hash *ch)
{
	const char *attrs = "";
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	for (size_t i = 0; i < n->n; i++) {
		struct node *it = n->vals[i], *name;
		const char *nm = NULL, *val = "";

		if (!node_want_map(d, it)) {
			ok = false;
			continue;
		}
		name = cfg_require(d, it, "name");
		if (name == NULL || !node_str(d, name, &nm)) {
			ok = false;
		} else if (!cfg_is_token(nm)) {
			diag_error(d, name, "cookie attribute name must be a token, got \"%s\"",
				   nm);
			ok = false;
		}
		if (node_get(it, "value") != NULL &&
		    (!node_str(d, node_get(it, "value"), &val) ||
		     !dr_cookie_value_ok(d, node_get(it, "value"), "a cookie attribute value",
					 val)))
			ok = false;
		node_check_unknown(d, it);
		if (ok)
			attrs =
			    pool_printf(p, "%s; %s%s%s", attrs, nm, *val != '\0' ? "=" : "", val);
	}
	if (ok && *attrs != '\0')
		ch->cookie_attrs = attrs;
	return ok;
}

static bool dr_hash_cookie(struct pool *p, struct diag *d, struct node *n,
			   struct consistent_hash *ch)
{
	struct node *name, *ttl, *x;
	bool ok = true;
	size_t line;

	if (!node_want_map(d, n))
		return false;
	name = cfg_require(d, n, "name");
	if (name != NULL && node_str(d, name, &ch->name) && !cfg_is_token(ch->name)) {
		diag_error(d, name, "cookie name must be a token, got \"%s\"", ch->name);
		ok = false;
	} else if (name == NULL || ch->name == NULL) {
		ok = false;
	}
	if ((x = node_get(n, "path")) != NULL)
		ok &= node_str(d, x, &ch->cookie_path) &&
		      dr_cookie_value_ok(d, x, "the cookie path", ch->cookie_path);
	if ((ttl = node_get(n, "ttl")) != NULL) {
		ch->cookie_ttl_given = true;
		ok &= cfg_decode_duration(d, ttl, 0, true, &ch->cookie_ttl_us);
	}
	if ((x = node_get(n, "attributes")) != NULL)
		ok &= dr_cookie_attributes(p, d, x, ch);
	node_check_unknown(d, n);
	/* "set-cookie: NAME=\"16 hex\"; Max-Age=20 digits; Path=PATH ATTRS; HttpOnly\r\n" */
	line = 80 + (ch->name != NULL ? strlen(ch->name) : 0) +
	       (ch->cookie_path != NULL ? strlen(ch->cookie_path) : 0) +
	       (ch->cookie_attrs != NULL ? strlen(ch->cookie_attrs) : 0);
	if (ok && line > COOKIE_LINE_MAX) {
		diag_error(d, n,
			   "the cookie's name, path and attributes are too long (%zu bytes, "
			   "at most %d)",
			   line - 80, COOKIE_LINE_MAX - 80);
		ok = false;
	}
	return ok;
}

bool dr_policy_consistent_hash(struct pool *p, struct diag *d, struct node *n,
			       struct consistent_hash *ch)
{
	static const char *const keys[] = {"httpHeaderName", "httpCookie", "useSourceIp",
					   "httpQueryParameterName"};
	struct node *ring, *maglev, *min_old, *x;
	bool ok = true, b;
	int nkeys = 0;

	memset(ch, 0, sizeof(*ch));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ch->given = true;
	ch->node = n;
	ch->table_size = 65537;
	ch->minimum_ring_size = 1024;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (node_get(n, keys[i]) != NULL)
			nkeys++;
	if (nkeys != 1) {
		diag_error(d, n,
			   "consistentHash needs exactly one of httpHeaderName, httpCookie, "
			   "useSourceIp, httpQueryParameterName");
		ok = false;
	}
	if ((x = node_get(n, "httpHeaderName")) != NULL) {
		ch->source = HASH_HEADER;
		/* compared case-insensitively: no lower-cased copy needed */
		if (!node_str(d, x, &ch->name) || *ch->name == '\0') {
			if (ch->name != NULL)
				diag_error(d, x, "httpHeaderName must not be empty");
			ok = false;
		}
	}
	if ((x = node_get(n, "httpCookie")) != NULL) {
		ch->source = HASH_COOKIE;
		ok &= dr_hash_cookie(p, d, x, ch);
	}
	if ((x = node_get(n, "useSourceIp")) != NULL) {
		ch->source = HASH_SOURCE_IP;
		if (!node_bool(d, x, &b))
			ok = false;
		else if (!b && nkeys == 1) {
			diag_error(d, x, "useSourceIp: false selects no hash key");
			ok = false;
		}
	}
	if ((x = node_get(n, "httpQueryParameterName")) != NULL) {
		ch->source = HASH_QUERY_PARAM;
		ok &= node_str(d, x, &ch->name);
	}
	ring = node_get(n, "ringHash");
	maglev = node_get(n, "maglev");
	min_old = node_get(n, "minimumRingSize");
	if (ring != NULL && maglev != NULL) {
		diag_error(d, maglev, "only one of ringHash or maglev may be set");
		ok = false;
	}
	if (ring != NULL && node_want_map(d, ring)) {
		ok &= dr_u64(d, node_get(ring, "minimumRingSize"), 8388608, &ch->minimum_ring_size);
		node_check_unknown(d, ring);
	}
	if (min_old != NULL)
		ok &= dr_u64(d, min_old, 8388608, &ch->minimum_ring_size);
	if (maglev != NULL && node_want_map(d, maglev)) {
		ch->maglev = true;
		if (node_get(maglev, "tableSize") != NULL) {
			ok &= dr_u64(d, node_get(maglev, "tableSize"), 5000011, &ch->table_size);
			if (!dr_is_prime(ch->table_size)) {
				diag_error(d, node_get(maglev, "tableSize"),
					   "maglev tableSize must be a prime number");
				ok = false;
			}
		}
		node_check_unknown(d, maglev);
	}
	node_check_unknown(d, n);
	return ok;
}

/* "region/zone/subzone" with at most three parts; "*" alone or as the last part. */
static bool dr_locality_ok(const char *s, bool wildcard)
{
	int parts = 1;

	if (*s == '\0')
		return false;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c == '/') {
			if (c == s || c[1] == '\0' || ++parts > 3)
				return false;
		} else if (*c == '*' && (!wildcard || c[1] != '\0' || (c != s && c[-1] != '/'))) {
			return false;
		}
	}
	return true;
}

static bool dr_locality_str(struct diag *d, struct node *n, bool wildcard, const char **out)
{
	if (n == NULL || !node_str(d, n, out))
		return false;
	if (!dr_locality_ok(*out, wildcard)) {
		diag_error(d, n, "invalid locality \"%s\": want region[/zone[/subzone]]%s", *out,
			   wildcard ? " with an optional trailing *" : "");
		return false;
	}
	return true;
}

static bool dr_distribute(struct pool *p, struct diag *d, struct node *n,
			  struct locality_distribute *ld)
{
	struct node *to;
	bool ok = true;
	uint32_t sum = 0;

	if (!node_want_map(d, n))
		return false;
	ok &= dr_locality_str(d, cfg_require(d, n, "from"), true, &ld->from);
	to = cfg_require(d, n, "to");
	if (to != NULL && cfg_decode_kv_map(p, d, to, &ld->to)) {
		for (size_t i = 0; i < ld->to.n; i++) {
			const char *w = ld->to.v[i].value;
			char *end;
			unsigned long v = strtoul(w, &end, 10);

			if (!dr_locality_ok(ld->to.v[i].key, true)) {
				diag_error(d, node_get(to, ld->to.v[i].key),
					   "invalid locality \"%s\"", ld->to.v[i].key);
				ok = false;
			}
			if (*w == '\0' || *end != '\0' || v > 100) {
				diag_error(d, node_get(to, ld->to.v[i].key),
					   "weight must be an integer 0..100, got \"%s\"", w);
				ok = false;
			}
			sum += (uint32_t)v;
		}
		if (ok && sum != 100) {
			diag_error(d, to, "locality weights must sum to 100, got %u", sum);
			ok = false;
		}
	} else {
		ok = false;
	}
	node_check_unknown(d, n);
	return ok;
}

/* failoverPriority as Istio validates it: labels (or label=value), no topology label
 * together with failover (the locality order already covers it); with distribute it is
 * ignored, as by Istio. */
static bool dr_failover_priority(struct diag *d, struct node *n, struct locality_lb *ll,
				 bool distribute)
{
	static const char *const topology[] = {"topology.kubernetes.io/region",
					       "topology.kubernetes.io/zone",
					       "topology.istio.io/subzone"};
	bool ok = true;

	for (size_t i = 0; i < ll->failover_priority.n; i++) {
		const char *k = ll->failover_priority.v[i];

		if (*k == '\0' || *k == '=') {
			diag_error(d, n->vals[i], "a failoverPriority entry needs a label name");
			ok = false;
			continue;
		}
		for (size_t t = 0; ll->nfailover > 0 && t < sizeof(topology) / sizeof(*topology);
		     t++)
			if (strcmp(k, topology[t]) == 0) {
				diag_error(d, n->vals[i],
					   "can not simultaneously set failover and topology label "
					   "\"%s\" in failoverPriority",
					   k);
				ok = false;
			}
	}
	if (ok && distribute)
		diag_warn(d, n, "failoverPriority has no effect with distribute (as in Istio)");
	return ok;
}

bool dr_policy_locality(struct pool *p, struct diag *d, struct node *n, struct locality_lb *ll)
{
	struct node *dist, *fo, *x;
	bool ok = true;

	memset(ll, 0, sizeof(*ll));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ll->given = true;
	ll->enabled = true;
	ll->node = n;
	if ((x = node_get(n, "enabled")) != NULL)
		ok &= node_bool(d, x, &ll->enabled);
	dist = node_get(n, "distribute");
	fo = node_get(n, "failover");
	if (dist != NULL && fo != NULL) {
		diag_error(d, fo, "failover and distribute cannot be set together");
		ok = false;
	}
	if (dist != NULL && node_want_seq(d, dist)) {
		ll->distribute = pool_calloc(p, dist->n ? dist->n : 1, sizeof(*ll->distribute));
		for (size_t i = 0; i < dist->n; i++)
			ok &=
			    dr_distribute(p, d, dist->vals[i], &ll->distribute[ll->ndistribute++]);
	}
	if (fo != NULL && node_want_seq(d, fo)) {
		ll->failover = pool_calloc(p, fo->n ? fo->n : 1, sizeof(*ll->failover));
		for (size_t i = 0; i < fo->n; i++) {
			struct node *it = fo->vals[i];
			struct locality_failover *f = &ll->failover[ll->nfailover++];

			if (!node_want_map(d, it)) {
				ok = false;
				continue;
			}
			ok &= dr_locality_str(d, cfg_require(d, it, "from"), false, &f->from);
			ok &= dr_locality_str(d, cfg_require(d, it, "to"), false, &f->to);
			if (f->from != NULL && strchr(f->from, '/') != NULL) {
				diag_error(d, node_get(it, "from"),
					   "failover from must be a region");
				ok = false;
			}
			if (f->to != NULL && strchr(f->to, '/') != NULL) {
				diag_error(d, node_get(it, "to"), "failover to must be a region");
				ok = false;
			}
			node_check_unknown(d, it);
		}
	}
	if ((x = node_get(n, "failoverPriority")) != NULL &&
	    cfg_decode_str_list(p, d, x, &ll->failover_priority, false))
		ok &= dr_failover_priority(d, x, ll, dist != NULL);
	else if (x != NULL)
		ok = false;
	node_check_unknown(d, n);
	return ok;
}
