/* Outlier detection (DestinationRule outlierDetection), Envoy's consecutive-errors
 * detectors: an endpoint that fails consecutive5xxErrors (or consecutiveGatewayErrors, or
 * with splitExternalLocalOriginErrors consecutiveLocalOriginFailures) times in a row is
 * ejected for baseEjectionTime x the number of times it was ejected, then returns.
 * maxEjectionPercent bounds the share ejected at once (one endpoint always may be);
 * below minHealthPercent healthy endpoints the ejections are ignored.
 *
 * State lives in clusterstate.h (shared by every worker, kept across reloads); only
 * atomics are touched, and only for clusters that configure outlierDetection.  Ejection
 * ends lazily: the first pick after the ejection time returns the endpoint to service. */
#ifndef MG_OUTLIER_H
#define MG_OUTLIER_H

#include <stdbool.h>
#include <stdint.h>

struct cluster;
struct endpoint;
struct worker;

/* The outcome of one try: an upstream status, or a failure of ours to get one
 * (connect failure, reset, timeout) when status is 0. */
void outlier_report(const struct cluster *cl, const struct endpoint *ep, int status,
		    uint64_t now_us);

/* Is ep out of service now: ejected, or failing active health checks (healthcheck.h), and
 * the cluster not in panic mode? */
bool outlier_ejected(const struct cluster *cl, const struct endpoint *ep, uint64_t now_us);

/* Out of service, the panic threshold not considered (locality ranks count with it). */
bool outlier_out(const struct cluster *cl, const struct endpoint *ep, uint64_t now_us);
/* When an endpoint that outlier_out found out of service returns by itself: the end of
 * its ejection; UINT64_MAX when only an event can bring it back (a health check verdict,
 * which bumps the cluster's generation). */
uint64_t outlier_back_at(const struct cluster *cl, const struct endpoint *ep);
/* Too few endpoints in service: Envoy's panic mode balances over all of them. */
bool outlier_panic(const struct cluster *cl);

/* Replace first (the balancer's pick) by an endpoint in service: first itself when it is,
 * else another (random start, then in order); NULL when every endpoint is ejected. */
const struct endpoint *outlier_pick(struct worker *w, const struct cluster *cl,
				    const struct endpoint *first, uint64_t now_us);

#endif
