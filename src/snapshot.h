/* The compiled, immutable config snapshot the data path reads.
 *
 * Built by config/link.c on the control thread from a struct cfg_set, published with one
 * atomic pointer store, pinned by every exchange (refcount) and freed by whoever drops the
 * last reference.  Nothing here is written after publication. */
#ifndef MG_SNAPSHOT_H
#define MG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"
#include "config/model.h"
#include "upstream.h"

struct pool;
struct tls_sni_table;
struct tls_client_ctx;
struct cluster;
struct cluster_state;
struct endpoint_state;
struct lb_hash_table;

/* One upstream address of a cluster. */
struct endpoint {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *name; /* "10.0.0.1:8080", for logs */
	uint32_t weight;  /* >= 1 */
	struct kv_list labels;
	const char *locality;
	const struct cluster *cluster; /* owner: the pool reads its TLS settings */
	struct endpoint_state *state;  /* shared across workers and reloads (clusterstate.h) */
};

/* A cluster is what a destination resolves to: service host + port (+ subset).
 * Named as Envoy/Istio do: "outbound|PORT|SUBSET|HOST". */
struct cluster {
	const char *name;
	const char *host;
	uint32_t port;
	const char *subset; /* NULL = whole service */
	struct endpoint *endpoints;
	size_t nendpoints;
	enum lb_simple lb;
	uint32_t index; /* position in snapshot->clusters: per-worker state arrays use it */
	const struct cfg_se *se;
	const struct cfg_dr *dr;
	/* Upstream TLS (the DestinationRule's tls for this port and subset); NULL: plaintext.
	 * tls_name is the SNI and the name verified: tls->sni, else the ISTIO_MUTUAL
	 * "outbound_.PORT_.SUBSET_.HOST" name, else host.  tls_id keys the connection pools
	 * (tls_client_origin_id), so TLS and plaintext connections to one address never mix. */
	const struct tls_client_ctx *tls;
	const char *tls_name;
	uint64_t tls_id;
	/* DestinationRule policies in force (subset over top level), NULL when not set */
	const struct conn_pool_settings *pool_limits;
	/* HTTP/2 towards the endpoints (h2up.h): the port's protocol is HTTP2, GRPC or
	 * GRPC-WEB, or h2UpgradePolicy is UPGRADE; never with useClientProtocol, which
	 * follows each client (proxy.c) */
	bool http2;
	const struct outlier_settings *outlier;
	const struct consistent_hash *hash_policy;   /* loadBalancer.consistentHash */
	const struct lb_hash_table *hash_table;      /* built from the endpoints by link */
	const struct cfg_health_check *health_check; /* main config healthChecks, or NULL */
	uint64_t warmup_us; /* loadBalancer.warmupDurationSecs: slow start window, 0 = off */
	/* locality ranks (locality.h): endpoints[levels[i].start ...] has rank i */
	unsigned nlevels;
	struct {
		uint32_t start, count;
		bool uniform; /* every endpoint of the rank has the same weight */
	} levels[LB_RANKS];
	/* Weighted picks without a sum per request (upstream_prepare, at link time):
	 * cum[i] is the weight of endpoints[0 .. i-1], cum[nendpoints] the total, so any
	 * range (a locality rank) is searched in O(log n).  uniform: every weight is the
	 * same (the pick is then O(1)). */
	const uint64_t *cum;
	bool uniform;
	struct cluster_state *state; /* attached before publication (clusterstate.h) */
};

/* The routes one host gets on one listener: VirtualServices for that host merged in load
 * order (first match wins over the concatenation, as Istio merges them). */
struct vhost {
	const char *name; /* the VS host pattern, e.g. "*.example.com" */
	struct http_route **routes;
	size_t nroutes;
	const struct cfg_gateway *gateway;
	const struct gw_server *server;
	/* A server with tls.httpsRedirect contributes this host on a plain HTTP listener: every
	 * request gets a redirect to https before any route is looked at (Envoy's
	 * require_tls: ALL, which Istio sets). */
	bool https_redirect;
};

/* Host -> vhost lookup for one listener: exact names in an open-addressing hash, wildcard
 * suffixes sorted longest first, then "*" (Istio/Envoy precedence). */
struct vhost_table {
	struct vhost **exact; /* hash slots; NULL = empty */
	uint32_t exact_mask;  /* slots - 1 (power of two) */
	struct {
		const char *suffix; /* ".example.com" (with the dot) */
		size_t len;
		struct vhost *vh;
	} * wild;
	size_t nwild;
	struct vhost *star;
	size_t nvhosts;
};

/* One L4 route as a listener serves it: a VirtualService tls or tcp route, reached through
 * one of its match blocks (NULL for a tcp route without any).  Link resolved the match's
 * port, gateways and SNI hosts; only its destinationSubnets are left for connection time. */
struct l4_target {
	const struct l4_route *route;
	const struct l4_match *match;
	const struct cfg_vs *vs;
	const struct cfg_gateway *gateway;
	const struct cidr *subnets; /* none: any destination address */
	size_t nsubnets;
};

/* Candidates in VirtualService load order, then route and match order: first applicable
 * wins (router_l4_select). */
struct l4_targets {
	struct l4_target *v;
	size_t n;
};

struct listener_cfg {
	const char *key; /* "bind:port", identity across reloads */
	const char *bind;
	uint32_t port;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum gw_protocol protocol;
	struct vhost_table vhosts;
	/* gateway servers merged on this port (for explain / config dump) */
	const struct gw_server **servers;
	size_t nservers;
	/* HTTPS/TLS listener: SNI -> server.  An entry with a context terminates TLS; one
	 * without is a passthrough SNI host whose `user` is its struct l4_targets. */
	struct tls_sni_table *tls;
	bool peek; /* some server is PASSTHROUGH: read SNI before choosing */
	/* PeerAuthentication on an ISTIO_MUTUAL port (pa_listener_mode): PA_PERMISSIVE peeks
	 * the first byte (TLS or plaintext), PA_DISABLE serves plaintext only, anything else
	 * is what the servers' tls says */
	enum pa_mode mtls;
	struct l4_targets tcp; /* TCP listener: its tcp routes */
};

struct geoip;
struct rate_bucket;

struct snapshot {
	atomic_uint refs;
	uint64_t generation;
	struct pool *pool; /* owns everything below, and the cfg_set it came from */
	struct cfg_set *set;
	struct listener_cfg *listeners;
	size_t nlisteners;
	struct cluster **clusters;
	size_t nclusters;
	struct geoip *geoip;             /* the main config's open GeoIP databases, or NULL */
	struct rate_bucket *rate_bucket; /* the EnvoyFilter local rate limit's, or NULL */
};

struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);
/* Publish (control thread); the previous one loses the publication reference. */
void snapshot_publish(struct snapshot *s);
/* The newest published snapshot with a reference taken (never NULL once published). */
struct snapshot *snapshot_current(void);
/* At exit: drop the publication reference so everything is freed (leak checkers). */
void snapshot_publish_none(void);
/* Generation of the newest published snapshot: one atomic load, for the per-exchange check. */
uint64_t snapshot_generation_hint(void);

#endif
