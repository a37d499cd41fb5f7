/* Active health checking (main config `healthChecks`): the control thread probes every
 * endpoint of the clusters a health check names - a TCP connect, or an HTTP/1.1 GET whose
 * status must be one of the expected ones - every interval, each probe bounded by the
 * timeout.  unhealthyThreshold failures in a row take an endpoint out of service (the
 * shared endpoint state's hc_failed, read by the workers' picks with outlier detection:
 * src/outlier.h), healthyThreshold successes bring it back.  Endpoints start healthy.
 * The state survives reloads; the probes are rebuilt from each published snapshot. */
#ifndef MG_HEALTHCHECK_H
#define MG_HEALTHCHECK_H

struct event_base;
struct snapshot;

/* Rebuild the probes for snapshot s (control thread, after it is attached and published). */
void healthcheck_apply(struct event_base *base, struct snapshot *s);
/* Stop every probe and drop the snapshot reference (at exit). */
void healthcheck_stop(void);

#endif
