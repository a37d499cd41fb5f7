/* Istio's standard metrics, as an Istio gateway's proxy reports them (reporter "source"):
 * istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes and
 * istio_response_bytes (HTTP), istio_tcp_connections_opened_total, _closed_total,
 * istio_tcp_sent_bytes_total and _received_bytes_total (tcp routes and TLS passthrough:
 * open relays add their bytes every Telemetry reportingInterval, 15 s by default),
 * with Istio's label names and histogram buckets, so Istio's dashboards and queries work on
 * meshgate's /stats/prometheus.
 *
 * Each worker counts into series of its own (a small open-addressing table keyed by the
 * cluster's state, the response code, flags, gRPC status and protocol): one lookup and a
 * few increments per request, no lock, an allocation only for a series' first request.
 * Series are published on a list the admin thread reads and sums across workers; their
 * destination labels come from the cluster's name and the live configuration. */
#ifndef MG_ISTIOMETRICS_H
#define MG_ISTIOMETRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cluster_state;
struct istio_table;
struct snapshot;

/* Series a worker keeps at most; beyond, requests are counted in one overflow series
 * (destination "unknown", response_flags "overflow") and said so in the log once. */
#define ISTIOM_MAX_SERIES 4096

enum istiom_proto { ISTIOM_HTTP = 0, ISTIOM_GRPC, ISTIOM_TCP };

struct istio_table *istiom_table_new(void);
void istiom_table_free(struct istio_table *t);

/* One finished HTTP exchange: cs its cluster's state (NULL: no upstream, e.g. no route or
 * a direct response), status 0 when none was sent, flags "-" or Envoy's, grpc the gRPC
 * status or -1; body bytes each way. */
void istiom_request(struct istio_table *t, const struct cluster_state *cs, int status,
		    const char *flags, int grpc, enum istiom_proto proto, uint64_t duration_us,
		    uint64_t request_bytes, uint64_t response_bytes);

/* A relayed connection opened towards cs; bytes from and to its client while it is open
 * (every reporting interval, as Istio reports them); its close, with the bytes since the
 * last report. */
void istiom_tcp_opened(struct istio_table *t, const struct cluster_state *cs);
void istiom_tcp_bytes(struct istio_table *t, const struct cluster_state *cs, uint64_t received,
		      uint64_t sent);
void istiom_tcp_closed(struct istio_table *t, const struct cluster_state *cs, const char *flags,
		       uint64_t received, uint64_t sent);

/* Admin thread: every worker's series, summed, in Prometheus text; s (may be NULL) gives
 * the appliance's labels and the clusters' service namespaces and versions. */
void istiom_write_prometheus(FILE *out, const struct snapshot *s);

#endif
