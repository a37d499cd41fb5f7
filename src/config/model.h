/* The decoded config model: one struct per Istio kind, as close to Istio's field names as C
 * allows.  Decoders (one file per kind) fill these from the node tree; link.c resolves
 * references (VS -> Gateway, destination -> ServiceEntry cluster, subset -> DestinationRule)
 * and compiles the snapshot.  Route-level structs are shared with the router: the compiled
 * route table points at them instead of copying, so they carry a few "resolved" fields that
 * only link.c writes.  Everything is allocated from the config generation's pool. */
#ifndef MG_MODEL_H
#define MG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"

struct node;
struct node_rebuild;
struct cluster;
struct cluster_state;
struct tls_server_ctx;
struct pcre2_real_code_8;

/* ---- shared small types ---- */

struct kv {
	const char *key;
	const char *value;
};

struct kv_list {
	struct kv *v;
	size_t n;
};

struct str_list {
	const char **v;
	size_t n;
};

/* The annotation that makes an AuthorizationPolicy a dry run (Istio's "istio.io/dry-run"). */
#define CFG_DRY_RUN_ANNOTATION "istio.io/dry-run"

/* Common to every resource. */
struct cfg_meta {
	const char *kind;
	const char *api_version;
	const char *ns;    /* metadata.namespace, or the main config's default namespace */
	const char *name;  /* metadata.name (required) */
	struct node *node; /* the document root, for positions in link-time errors */
	struct kv_list labels;
	/* metadata.annotations["istio.io/dry-run"] as written, or NULL; only an
	 * AuthorizationPolicy may have it (other annotations are ignored) */
	const char *dry_run;
	int order; /* load order across all files; merge and first-wins rules use it */
};

/* Istio StringMatch: exact | prefix | regex (RE2 syntax, whole-string match). */
enum string_match_kind {
	SM_NONE = 0,
	SM_EXACT,
	SM_PREFIX,
	SM_REGEX,
};

struct string_match {
	enum string_match_kind kind;
	uint32_t len; /* of value; a config file is at most 64 MiB */
	const char *value;
	struct pcre2_real_code_8 *re; /* compiled (anchored, JIT) when kind == SM_REGEX */
	struct node *node;
};

struct header_match {
	const char *name; /* lower-cased */
	struct string_match m;
	bool present_only;       /* `{}` : match on presence alone */
	const char **claim_path; /* "@request.auth.claims...": the JWT claim's member names */
	size_t nclaim_path;
};

struct header_op_list {
	struct kv_list set;
	struct kv_list add;
	struct str_list remove; /* lower-cased names */
};

struct headers_ops {
	struct header_op_list request;
	struct header_op_list response;
};

struct percent {
	bool given;
	double value; /* 0..100 */
};

/* ---- main config (meshgate's own file) ---- */

struct cfg_limits {
	uint32_t max_header_bytes;       /* default 65536 (431 beyond) */
	uint32_t max_headers;            /* default 100 */
	uint32_t max_request_line_bytes; /* default 16384 (414 beyond) */
	uint32_t max_connections;        /* per appliance; default 10000 */
};

struct cfg_timeouts {
	uint64_t idle_us;              /* keep-alive idle, default 60s */
	uint64_t request_headers_us;   /* whole head must arrive within, default 10s */
	uint64_t request_body_idle_us; /* no body byte for this long -> 408, default 30s */
	uint64_t upstream_connect_us;  /* default 5s (Envoy's connectTimeout default is 10s) */
	uint64_t upstream_idle_us;     /* pooled upstream connection idle, default 60s */
	uint64_t drain_us;             /* SIGTERM drain, default 15s */
};

enum accesslog_format {
	ACCESSLOG_TEXT = 0,
	ACCESSLOG_JSON,
};

/* Active health checking (meshgate's own, main config `healthChecks`): not in Istio's API,
 * so it lives beside it and the Istio resources stay portable. */
struct cfg_health_check {
	const char *host; /* a ServiceEntry host, as destinations name it (expanded) */
	uint32_t port;    /* 0 = every port of the host */
	bool http;        /* false: a TCP connect is the check */
	const char *path; /* http: request path, default "/" */
	const char *authority;
	uint32_t *statuses; /* http: healthy answers; default 200 */
	size_t nstatuses;
	uint64_t interval_us, timeout_us;
	uint32_t healthy_threshold, unhealthy_threshold;
	struct node *node;
};

/* main config tlsDefaultHost: the host a TLS client without SNI is taken to name on a port
 * (port 0: every port without an entry of its own). */
struct cfg_default_host {
	uint32_t port;
	const char *host; /* lower-case; "*.x" and "*" allowed */
	struct node *node;
};

/* Main config `geoip`: MaxMind databases and the request headers they fill. */
struct cfg_geoip {
	const char *database;     /* GeoIP2/GeoLite2 City or Country; NULL: no geoip */
	const char *asn_database; /* GeoLite2-ASN, or NULL (then the AS number, if asked
				   * for, comes from `database`) */
	const char *country, *city, *region, *asn; /* header names (lower-case) or NULL */
	struct node *database_node, *asn_node;
};

struct destination {
	const char *host; /* as written */
	const char *fqdn; /* expanded (short name -> name.ns.svc.cluster.local), lower-cased */
	const char *subset;
	uint32_t port;           /* 0 = not given */
	struct cluster *cluster; /* resolved by link */
	struct node *node;
};

/* Main config `extensionProviders`: Istio's MeshConfig.ExtensionProvider, of which meshgate
 * serves the external authorizers of AuthorizationPolicy action CUSTOM: Envoy's ext_authz
 * HTTP service (envoyExtAuthzHttp) and gRPC service (envoyExtAuthzGrpc,
 * envoy.service.auth.v3.Authorization/Check).  Header name lists take Istio's patterns:
 * "abc" exact, "abc*" prefix, "*abc" suffix (lower-case, matched without case). */
enum ext_authz_kind {
	EXT_AUTHZ_HTTP = 0, /* envoyExtAuthzHttp */
	EXT_AUTHZ_GRPC,     /* envoyExtAuthzGrpc: the service's port speaks HTTP/2 */
};

struct ext_authz {
	const char *name;
	enum ext_authz_kind kind;
	const char *service; /* the host (a ServiceEntry's), lower-case, "ns/" left out */
	uint32_t port;
	uint64_t timeout_us; /* default 600s (Istio's) */
	bool fail_open;
	uint32_t status_on_error; /* default 403 */
	/* envoyExtAuthzHttp only */
	const char *path_prefix;             /* "" when none */
	struct str_list request_headers;     /* includeRequestHeadersInCheck */
	struct kv_list additional_headers;   /* includeAdditionalHeadersInCheck (names lower) */
	struct str_list upstream_on_allow;   /* headersToUpstreamOnAllow */
	struct str_list downstream_on_deny;  /* headersToDownstreamOnDeny (n 0: all but Host) */
	struct str_list downstream_on_allow; /* headersToDownstreamOnAllow */
	struct destination dest;             /* service and port; link resolves the cluster */
	struct node *node, *service_node, *port_node;
};

/* An envoyFileAccessLog extension provider: a file (path "-" standard output) and a
 * format: Istio's text or JSON one (format), or the operator's (custom, logformat.h). */
struct logformat;
struct file_log_provider {
	const char *name;
	const char *path;
	enum accesslog_format format;
	struct logformat *custom;
	struct node *node;
};

struct cfg_main {
	const char *path; /* the main file */
	const char *dir;  /* its directory, for relative resource paths */
	int workers;      /* 0 = auto */
	struct kv_list labels;
	const char *ns;              /* default "default" */
	const char *admin_address;   /* "127.0.0.1:15000"; "" disables */
	struct str_list resources;   /* absolute paths (files or dirs) */
	const char *access_log_path; /* NULL: off; "-": stdout */
	enum accesslog_format access_log_format;
	/* accessLog.logFormat (Envoy's format strings, logformat.h), or NULL: the built-in
	 * format named by access_log_format */
	struct logformat *access_log_custom;
	const char *credentials_dir;
	const char
	    *user; /* drop to this user when started as root; default "meshgate" if it exists */
	uint32_t https_redirect_code; /* Gateway tls.httpsRedirect answer: 301 (Envoy's), 302,
				       * 307 or 308 */
	/* The appliance's own mesh workload identity, for ISTIO_MUTUAL: its certificate chain,
	 * key and the mesh root CA (paths resolved); all NULL when not configured. */
	struct {
		const char *certificate, *private_key, *ca_certificates;
		struct node *node;
	} mesh_identity;
	struct cfg_limits limits;
	struct cfg_timeouts timeouts;
	struct cfg_health_check *health_checks;
	size_t nhealth_checks;
	const char *locality;       /* where this appliance runs: "region/zone/subzone", or NULL */
	const char *root_namespace; /* Istio's mesh-wide policy namespace, "istio-system" */
	/* Proxies in front of the appliance that append to x-forwarded-for (Istio's
	 * gatewayTopology.numTrustedProxies): the client (remote.ip) is the entry that many
	 * places from the right of the x-forwarded-for received; 0: the peer. */
	uint32_t num_trusted_proxies;
	/* proxyProtocol (Istio's gatewayTopology.proxyProtocol): every connection starts with
	 * a PROXY protocol header (v1 or v2) telling the client's address */
	bool proxy_protocol;
	uint64_t dns_refresh_us; /* dnsRefreshRate: resolution DNS names resolved again */
	struct cfg_geoip geoip;
	bool tls_no_resumption; /* tlsSessionResumption: false (default: tickets on) */
	/* tlsTicketKeyFile: shared session ticket keys (tls_ticket.h); NULL: automatic keys */
	const char *tls_ticket_key_file;
	struct tls_ticket_keys *tls_ticket_keys;
	struct cfg_default_host *tls_default_hosts; /* see cfg_main_default_host() */
	size_t ntls_default_hosts;
	struct ext_authz *ext_authz; /* extensionProviders (the authorizers) */
	size_t next_authz;
	/* names of the extension providers of kinds meshgate does not serve (tracers, access
	 * loggers...): loaded with a warning, refused where a policy names one */
	struct str_list unserved_providers;
	/* extensionProviders of kind envoyFileAccessLog: access logs a Telemetry may name */
	struct file_log_provider *file_logs;
	size_t nfile_logs;
	struct node *node;
};

/* ---- Gateway ---- */

enum gw_protocol {
	GWP_HTTP = 0,
	GWP_HTTPS,
	GWP_HTTP2,
	GWP_GRPC,
	GWP_TLS,
	GWP_TCP,
	GWP_MONGO, /* accepted by Istio; refused by meshgate with a message */
};

enum tls_mode {
	TLSM_PASSTHROUGH = 0,
	TLSM_SIMPLE,
	TLSM_MUTUAL,
	TLSM_AUTO_PASSTHROUGH,
	TLSM_ISTIO_MUTUAL,
	TLSM_OPTIONAL_MUTUAL,
};

struct gw_tls {
	bool given;
	enum tls_mode mode;
	bool https_redirect;
	const char *server_certificate, *private_key, *ca_certificates, *ca_crl;
	const char *credential_name;
	struct str_list credential_names;
	struct str_list subject_alt_names, verify_spki, verify_hash;
	int min_version, max_version; /* 0 = default; 12, 13 (TLSV1_0=10 ... TLSV1_3=13) */
	struct str_list cipher_suites;
	struct node *node;
};

/* PeerAuthentication mTLS mode (security.istio.io). */
enum pa_mode {
	PA_UNSET = 0, /* inherit from the less specific policy; Istio's default is PERMISSIVE */
	PA_DISABLE,
	PA_PERMISSIVE,
	PA_STRICT,
};

struct gw_host {
	const char *ns;   /* "*" or a namespace; from "ns/host", default "*" */
	const char *host; /* "*", "*.suffix" or exact, lower-cased */
};

struct gw_server {
	uint32_t port;
	const char *port_name;
	enum gw_protocol protocol;
	const char *bind; /* NULL = 0.0.0.0 */
	const char *name;
	struct gw_host *hosts;
	size_t nhosts;
	struct gw_tls tls;
	struct node *node;
	struct tls_server_ctx *tls_ctx; /* built by link when this server terminates TLS */
	/* ISTIO_MUTUAL servers: the PeerAuthentication mode of the port (pa_apply; STRICT
	 * when no policy decides) and the node that set it (for diagnostics) */
	enum pa_mode mtls;
	struct node *mtls_node;
};

struct cfg_gateway {
	struct cfg_meta meta;
	struct kv_list selector;
	struct gw_server *servers;
	size_t nservers;
	bool served;     /* selector is a subset of the appliance labels (set by link) */
	const char *key; /* "ns/name", set by link: match.gateways compares against it */
};

/* ---- VirtualService ---- */

/* The conditions few match blocks have. */
struct http_match_more {
	struct string_match scheme, method, authority;
	struct header_match *without_headers;
	size_t nwithout_headers;
	struct header_match *query_params; /* name = parameter name (case kept) */
	size_t nquery_params;
	struct str_list gateways; /* per-match gateway restriction, "ns/name" resolved by link */
	struct kv_list source_labels; /* mesh-only: refused by link when used on a gateway */
	const char *source_namespace;
};

struct http_match {
	const char *name;
	struct string_match uri;
	struct header_match *headers;
	size_t nheaders;
	uint32_t port; /* 0 = any */
	bool ignore_uri_case;
	/* Never NULL once decoded (cfg_vs_match_init): blocks with none of those conditions
	 * share a read-only empty one (80 bytes a block instead of 272). */
	struct http_match_more *more;
	struct node *node;
};

struct route_destination {
	struct destination dest;
	uint32_t weight; /* 0 when not given; link normalises (single destination = 100) */
	struct headers_ops *headers; /* never NULL: see struct http_route */
};

struct http_redirect {
	const char *uri;
	const char *authority;
	uint32_t port; /* 0 = not given */
	bool derive_port_from_request;
	const char *scheme;
	uint32_t redirect_code; /* default 301 */
};

struct http_rewrite {
	const char *uri; /* replaces the matched prefix (or the whole path for exact/regex) */
	const char *authority;
	struct {
		const char *match;   /* regex */
		const char *rewrite; /* with \1 .. \9 backreferences */
		struct pcre2_real_code_8 *re;
	} uri_regex;
	bool given;
};

struct direct_response {
	uint32_t status;
	const char *body; /* string or decoded bytes */
	size_t body_len;
	bool given;
};

#define RETRY_MAX_CODES 16

/* A route's retry behaviour, compiled by retry_policy_compile() (src/retry.h). */
struct retry_policy {
	uint32_t num_retries; /* retries after the first try; 0 = none */
	uint32_t on;          /* enum retry_on bits */
	uint64_t per_try_timeout_us;
	uint64_t backoff_base_us;
	bool ignore_previous_hosts;
	bool remote_localities; /* retryRemoteLocalities: a retry leaves the ranks tried */
	uint8_t ncodes;
	uint16_t codes[RETRY_MAX_CODES]; /* retriable status codes */
};

struct http_retry {
	bool given;
	int32_t attempts; /* -1 = not given */
	uint64_t per_try_timeout_us;
	const char *retry_on;
	bool retry_remote_localities;
	int ignore_previous_hosts;  /* -1 not given (Istio's default: true) */
	uint64_t backoff_us;        /* 0 = not given (Envoy's default base: 25 ms) */
	struct retry_policy policy; /* compiled by the decoder, or Istio's default by link */
};

struct http_fault {
	bool given;
	struct {
		bool given;
		uint64_t fixed_delay_us;
		struct percent percentage;
	} delay;
	struct {
		bool given;
		uint32_t http_status;
		const char *grpc_status;
		int grpc_code; /* grpc_status as a code, set with it by the decoder */
		struct percent percentage;
	} abort;
};

struct http_mirror {
	struct destination dest;
	struct percent percentage;
};

struct cors_policy {
	bool given;
	struct string_match *allow_origins;
	size_t nallow_origins;
	struct str_list allow_methods, allow_headers, expose_headers;
	uint64_t max_age_us;
	int allow_credentials;            /* -1 unset, 0, 1 */
	const char *unmatched_preflights; /* FORWARD | IGNORE */
};

/* What few routes have: redirect, directResponse, delegate, rewrite, fault, mirrors,
 * corsPolicy and a statPrefix.  Routes with none of them share one read-only empty block
 * (cfg_vs_route_init), so a table of 100 000 routes does not carry 80 bytes of unused
 * pointers each. */
struct http_route_more {
	struct http_redirect *redirect;          /* NULL = none */
	struct direct_response *direct_response; /* never NULL: ->given */
	struct {
		const char *name, *ns;
	} delegate;
	struct http_rewrite *rewrite; /* never NULL: ->given */
	struct http_fault *fault;     /* never NULL: ->given */
	struct http_mirror *mirrors;
	size_t nmirrors;
	struct cors_policy *cors; /* never NULL: ->given */
	/* the first match's name, or NULL; its counters are resolved by clusterstate.c */
	const char *stat_prefix;
	struct cluster_state *stats;
};

/* The policies most routes do not have are pointers that are never NULL once decoded
 * (cfg_vs_route_init): routes without one share a read-only empty one, so a table of
 * 100 000 routes does not carry 400 bytes of unused policy each.  Link points routes without
 * retries at one per generation that holds Istio's default policy. */
struct http_route {
	const char *name;
	struct http_match *matches; /* OR; none = match everything */
	struct route_destination *route;
	uint32_t nmatches;
	uint32_t nroute;
	struct http_route_more *more; /* never NULL */
	struct http_retry *retries;
	struct headers_ops *headers;
	uint64_t timeout_us; /* 0 = none (Istio's default: disabled) */
	struct cfg_vs *vs;   /* owner */
	struct node *node;
	int index; /* position in vs->http */
	bool timeout_given;
	/* resolved by link */
	uint32_t total_weight;
};

/* L4 routes: VirtualService tls (SNI passthrough) and tcp routes. */
struct l4_match {
	struct str_list destination_subnets;
	uint32_t port;
	struct str_list sni_hosts;
	struct str_list gateways;
	struct kv_list source_labels;
	struct node *node;
};

struct l4_route {
	struct l4_match *matches;
	size_t nmatches;
	struct route_destination *route;
	size_t nroute;
	struct node *node;
	/* resolved by link */
	uint32_t total_weight;
};

struct cfg_vs {
	struct cfg_meta meta;
	struct str_list hosts;    /* lower-cased; short names kept as written (Istio expands) */
	struct str_list gateways; /* as written; "mesh" or empty = mesh only */
	struct str_list export_to;
	struct http_route *http;
	size_t nhttp;
	struct l4_route *tls, *tcp;
	size_t ntls, ntcp;
	bool delegated; /* no hosts, and a root route delegates to it (set by link) */
};

/* ---- DestinationRule ---- */

enum lb_simple {
	LB_UNSPECIFIED = 0,
	LB_LEAST_REQUEST, /* Istio's default (LEAST_CONN is its deprecated alias) */
	LB_ROUND_ROBIN,
	LB_RANDOM,
	LB_PASSTHROUGH,
};

struct port_traffic_policy;
enum dr_h2_upgrade {
	DR_H2_DEFAULT = 0,
	DR_H2_DO_NOT_UPGRADE,
	DR_H2_UPGRADE,
};

/* DestinationRule connectionPool (circuit breaking), enforced per appliance: see
 * src/clusterstate.h.  0 = not set (unlimited / the main config's default). */
struct conn_pool_settings {
	bool given;
	uint32_t max_connections; /* tcp.maxConnections */
	uint64_t connect_timeout_us;
	uint64_t max_connection_duration_us;
	uint64_t tcp_idle_timeout_us;
	struct {
		bool given;
		uint32_t probes;
		uint64_t time_us, interval_us;
	} keepalive;
	uint32_t max_pending;  /* http.http1MaxPendingRequests */
	uint32_t max_requests; /* http.http2MaxRequests (Envoy's max_requests, any protocol) */
	uint32_t max_requests_per_connection;
	uint32_t max_retries; /* concurrent retries towards the cluster */
	uint64_t http_idle_timeout_us;
	enum dr_h2_upgrade h2_upgrade;   /* http.h2UpgradePolicy */
	bool use_client_protocol;        /* http.useClientProtocol */
	uint32_t max_concurrent_streams; /* http.maxConcurrentStreams, 0 = the peer's */
	struct node *node;
};

/* DestinationRule outlierDetection with Istio's defaults filled in by the decoder. */
struct outlier_settings {
	bool given;
	uint32_t consecutive_5xx;     /* 0 = off; default 5 */
	uint32_t consecutive_gateway; /* 0 = off (the default) */
	uint32_t consecutive_local;   /* with split_local_origin; default 5 */
	bool split_local_origin;
	uint64_t interval_us;          /* default 10s */
	uint64_t base_ejection_us;     /* default 30s */
	uint32_t max_ejection_percent; /* default 10 */
	uint32_t min_health_percent;   /* default 0 */
	struct node *node;
};

/* DestinationRule loadBalancer.consistentHash: what the hash is taken from, and the
 * table that maps it to an endpoint (ring hash, Istio's default, or Maglev). */
enum hash_source {
	HASH_HEADER = 1,
	HASH_COOKIE,
	HASH_SOURCE_IP,
	HASH_QUERY_PARAM,
};

#define COOKIE_LINE_MAX 512 /* the longest Set-Cookie line an affinity cookie may need */

struct consistent_hash {
	bool given;
	enum hash_source source;
	const char *name;        /* header (lower-cased), cookie or query parameter name */
	const char *cookie_path; /* httpCookie.path, NULL = none */
	/* httpCookie.attributes, ready to append: "; SameSite=Strict; Secure" (NULL = none) */
	const char *cookie_attrs;
	bool cookie_ttl_given;  /* without a ttl no cookie is ever set */
	uint64_t cookie_ttl_us; /* 0 = a session cookie */
	bool maglev;
	uint64_t table_size;        /* maglev.tableSize: a prime; default 65537 */
	uint64_t minimum_ring_size; /* ringHash.minimumRingSize; default 1024 */
	struct node *node;
};

/* DestinationRule loadBalancer.localityLbSetting (Istio's LocalityLoadBalancerSetting).
 * Localities are "region/zone/subzone" with "*" wildcards in from/to. */
struct locality_distribute {
	const char *from;
	struct kv_list to; /* locality pattern -> weight (decimal) */
};

struct locality_failover {
	const char *from, *to; /* regions */
};

struct locality_lb {
	bool given;
	bool enabled; /* `enabled`, default true */
	struct locality_distribute *distribute;
	size_t ndistribute;
	struct locality_failover *failover;
	size_t nfailover;
	/* failoverPriority: label keys ("key" = the appliance's own value, "key=value" = that
	 * value); endpoints matching more leading keys rank higher */
	struct str_list failover_priority;
	struct node *node;
};

struct traffic_policy {
	bool given;
	struct {
		enum lb_simple simple;
		struct consistent_hash hash;
		struct locality_lb locality;
		uint64_t warmup_us;
	} lb;
	struct conn_pool_settings connection_pool;
	struct outlier_settings outlier;
	struct node *tls; /* ClientTLSSettings: mode checked here, the rest decoded (files
			   * loaded) by link for the clusters a gateway serves */
	struct node *port_level_settings;
	struct port_traffic_policy *ports; /* portLevelSettings, decoded */
	size_t nports;
	struct node *proxy_protocol;
	struct node *tunnel;
};

/* One portLevelSettings entry: for the service port it names it replaces loadBalancer,
 * connectionPool, outlierDetection and tls as a whole (absent ones fall back to defaults,
 * not to the policy it sits in: Istio's merge). */
struct port_traffic_policy {
	uint32_t port;
	struct traffic_policy policy;
	struct node *node;
};

struct dr_subset {
	const char *name;
	struct kv_list labels;
	struct traffic_policy policy;
	struct node *node;
};

struct cfg_dr {
	struct cfg_meta meta;
	const char *host; /* as written */
	const char *fqdn; /* expanded, lower-cased */
	struct traffic_policy policy;
	struct dr_subset *subsets;
	size_t nsubsets;
	struct str_list export_to;
	struct kv_list workload_selector;
};

/* ---- ServiceEntry ---- */

enum se_resolution {
	SE_RES_NONE = 0,
	SE_RES_STATIC,
	SE_RES_DNS,
	SE_RES_DNS_ROUND_ROBIN,
};

enum se_location {
	SE_MESH_EXTERNAL = 0,
	SE_MESH_INTERNAL,
};

struct se_port {
	uint32_t number;
	const char *protocol; /* upper-cased: HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MONGO, ... */
	const char *name;
	uint32_t target_port; /* 0 = same as number */
};

struct se_endpoint {
	const char *address;
	struct kv_list ports; /* port name -> number (value as decimal string) */
	struct kv_list labels;
	const char *network;
	const char *locality;
	uint32_t weight; /* 0 = not given */
	const char *service_account;
	struct node *node;
	/* resolution DNS without endpoints: the host whose name this endpoint's address was
	 * resolved from; only that host's clusters use it (dnsresolve.c) */
	const char *dns_host;
};

struct cfg_se {
	struct cfg_meta meta;
	struct str_list hosts; /* lower-cased */
	struct str_list addresses;
	struct se_port *ports;
	size_t nports;
	enum se_location location;
	enum se_resolution resolution;
	struct se_endpoint *endpoints;
	size_t nendpoints;
	/* resolution DNS, once resolved (dnsresolve.c): one endpoint per address */
	struct se_endpoint *resolved;
	size_t nresolved;
	struct str_list export_to;
	struct kv_list workload_selector;
	struct str_list subject_alt_names;
};

/* ---- PeerAuthentication (security.istio.io) ---- */

struct pa_port {
	uint32_t port;
	enum pa_mode mode;
	struct node *node;
};

struct cfg_pa {
	struct cfg_meta meta;
	bool has_selector;
	struct kv_list selector; /* selector.matchLabels */
	enum pa_mode mode;       /* mtls.mode */
	struct node *mode_node;
	struct pa_port *ports; /* portLevelMtls */
	size_t nports;
};

/* ---- AuthorizationPolicy (security.istio.io) ---- */

enum ap_action { AP_ALLOW, AP_DENY, AP_AUDIT, AP_CUSTOM };

/* IP prefixes of ipBlocks, remoteIpBlocks and IP conditions (struct cidr of cidr.h). */
struct ap_cidrs {
	struct cidr *v;
	size_t n;
};

/* Value lists use Istio's matching: "*" (any value present), "pre*", "*suf", or exact. */
struct ap_source {
	struct ap_cidrs ip_blocks, not_ip_blocks, remote_ip_blocks, not_remote_ip_blocks;
	struct str_list principals, not_principals, request_principals, not_request_principals;
	struct str_list namespaces, not_namespaces;
};

struct ap_operation {
	struct str_list hosts, not_hosts; /* lower-case */
	struct str_list ports, not_ports; /* decimal text */
	struct str_list methods, not_methods, paths, not_paths;
};

enum ap_key {
	APK_HEADER,           /* request.headers[name] */
	APK_SOURCE_IP,        /* source.ip */
	APK_REMOTE_IP,        /* remote.ip */
	APK_SOURCE_PRINCIPAL, /* source.principal */
	APK_SOURCE_NAMESPACE, /* source.namespace */
	APK_DEST_IP,          /* destination.ip */
	APK_DEST_PORT,        /* destination.port */
	APK_SNI,              /* connection.sni */
	APK_AUTH_PRINCIPAL,   /* request.auth.principal: the token's "iss/sub" */
	APK_AUTH_AUDIENCES,   /* request.auth.audiences: its aud */
	APK_AUTH_PRESENTER,   /* request.auth.presenter: its azp */
	APK_AUTH_CLAIM,       /* request.auth.claims[a][b]...: any claim (claim_path) */
};

struct ap_condition {
	enum ap_key key;
	const char *header; /* APK_HEADER: the lower-case field name */
	struct str_list values, not_values;
	struct ap_cidrs ips, not_ips; /* the IP keys: values and notValues as prefixes */
	const char **claim_path;      /* APK_AUTH_CLAIM: member names, outermost first */
	size_t nclaim_path;
};

struct ap_rule {
	struct ap_source *from;
	size_t nfrom;
	struct ap_operation *to;
	size_t nto;
	struct ap_condition *when;
	size_t nwhen;
	bool http_only; /* uses a field only HTTP requests have (hosts, methods, paths,
			 * request principals, headers, request.auth) */
};

struct cfg_ap {
	struct cfg_meta meta;
	bool has_selector;
	struct kv_list selector; /* selector.matchLabels */
	enum ap_action action;
	struct ap_rule *rules;
	size_t nrules;
	const char *denied; /* access-log details: "rbac_access_denied_matched_policy[ns.name]" */
	bool dry_run;       /* istio.io/dry-run "true": evaluated, reported, never enforced */
	const struct ext_authz *provider; /* CUSTOM: provider.name's extension provider */
	struct node *provider_node;
};

/* ---- RequestAuthentication (security.istio.io) ---- */

/* Where a token is looked for: a request field (its value after prefix), a query
 * parameter or a cookie. */
struct ra_header_loc {
	const char *name; /* lower-case */
	const char *prefix;
};

/* outputClaimToHeaders: a claim's value copied into a request field for the upstream. */
struct ra_claim_header {
	const char *header; /* lower-case */
	const char **path;  /* the claim's member names ("a.b" nests) */
	size_t npath;
};

struct jwks;

struct ra_rule {
	const char *issuer;
	struct str_list audiences;
	const char *jwks; /* inline key set (JSON text), or NULL */
	const char *jwks_uri;
	struct node *node, *jwks_node, *jwks_uri_node;
	uint64_t fetch_timeout_us; /* timeout: fetching jwksUri */
	struct ra_header_loc *headers;
	size_t nheaders;
	struct str_list params, cookies;
	const char *payload_header; /* outputPayloadToHeader, lower-case, or NULL */
	struct ra_claim_header *claim_headers;
	size_t nclaim_headers;
	bool forward_token; /* forwardOriginalToken */
	/* Link time (inline) or serving (jwksUri): the keys; NULL: every token of this
	 * issuer is refused, and the log said why. */
	struct jwks *keys;
};

struct cfg_ra {
	struct cfg_meta meta;
	bool has_selector;
	struct kv_list selector; /* selector.matchLabels */
	struct ra_rule *rules;
	size_t nrules;
};

/* ---- EnvoyFilter (networking.istio.io): the local rate limit patch only ---- */

/* envoy.filters.http.local_ratelimit as Istio's rate limit task inserts it: one token
 * bucket for the appliance's HTTP requests. */
struct local_rate_limit {
	const char *stat_prefix;
	uint32_t max_tokens, tokens_per_fill;
	uint64_t fill_interval_us;
	uint32_t enabled_ppm, enforced_ppm; /* filter_enabled / filter_enforced, per million */
	struct kv_list response_headers;    /* response_headers_to_add, on 429s */
	struct node *node;
};

struct cfg_ef {
	struct cfg_meta meta;
	bool has_selector;
	struct kv_list selector; /* workloadSelector.labels */
	struct local_rate_limit *rl;
};

/* ---- Telemetry (telemetry.istio.io): access logging ---- */

struct cel_expr;

#define CFG_LOG_HEADERS 8 /* header names per side a log filter and format may read */

/* One accessLogging entry.  A gateway is a CLIENT in Istio's workload modes. */
enum tel_mode { TEL_CLIENT_AND_SERVER = 0, TEL_CLIENT, TEL_SERVER };

struct tel_access_log {
	struct str_list providers; /* provider names, lower-cased (Istio compares them so) */
	struct node **provider_nodes;
	bool disabled;
	enum tel_mode mode;
	const char *filter;           /* filter.expression (CEL), or NULL */
	struct cel_expr *filter_expr; /* ... compiled */
	struct node *node;
};

/* Istio's standard metrics a Telemetry's metrics overrides name (MetricSelector). */
enum tel_metric {
	TM_REQUEST_COUNT = 0,
	TM_REQUEST_DURATION,
	TM_REQUEST_SIZE,
	TM_RESPONSE_SIZE,
	TM_TCP_OPENED_CONNECTIONS,
	TM_TCP_CLOSED_CONNECTIONS,
	TM_TCP_SENT_BYTES,
	TM_TCP_RECEIVED_BYTES,
	TM_GRPC_REQUEST_MESSAGES, /* meshgate does not count gRPC messages */
	TM_GRPC_RESPONSE_MESSAGES,
	TM__COUNT
};
#define TM_HTTP_MASK                                                                               \
	((1u << TM_REQUEST_COUNT) | (1u << TM_REQUEST_DURATION) | (1u << TM_REQUEST_SIZE) |        \
	 (1u << TM_RESPONSE_SIZE))
#define TM_TCP_MASK                                                                                \
	((1u << TM_TCP_OPENED_CONNECTIONS) | (1u << TM_TCP_CLOSED_CONNECTIONS) |                   \
	 (1u << TM_TCP_SENT_BYTES) | (1u << TM_TCP_RECEIVED_BYTES))

/* One metrics[].overrides[] entry. */
struct tel_metric_override {
	uint32_t metrics; /* the enum tel_metric bits match.metric selects (ALL_METRICS: all) */
	enum tel_mode mode;
	int disabled;           /* -1 not given, else 0 or 1 */
	struct str_list remove; /* tagOverrides with operation REMOVE: label names */
	struct node *node;
};

/* One metrics[] entry: for the providers named (none: the default one, "prometheus"). */
struct tel_metrics {
	struct str_list providers; /* lower-cased */
	struct node **provider_nodes;
	uint64_t reporting_interval_us; /* reportingInterval, 0 when not given */
	struct tel_metric_override *overrides;
	size_t noverrides;
	struct node *node;
};

struct cfg_telemetry {
	struct cfg_meta meta;
	bool has_selector;
	struct kv_list selector; /* selector.matchLabels */
	struct tel_access_log *logs;
	size_t nlogs;
	struct tel_metrics *metrics;
	size_t nmetrics;
	struct node *tracing; /* not applied: warned about when it selects us */
};

/* ---- everything loaded for one generation ---- */

struct cfg_set {
	struct cfg_main main;
	struct cfg_gateway **gateways;
	size_t ngateways;
	struct cfg_vs **vss;
	size_t nvss;
	struct cfg_dr **drs;
	size_t ndrs;
	struct cfg_se **ses;
	size_t nses;
	struct cfg_pa **pas;
	size_t npas;
	struct cfg_ap **aps; /* every AuthorizationPolicy loaded */
	size_t naps;
	/* Those that apply to this appliance (ap_apply), by action, in load order; the
	 * dry-run ones (istio.io/dry-run) apart: Envoy's shadow rules, which decide nothing. */
	const struct cfg_ap **ap_deny, **ap_allow, **ap_custom;
	size_t nap_deny, nap_allow, nap_custom;
	const struct cfg_ap **ap_shadow_deny, **ap_shadow_allow;
	size_t nap_shadow_deny, nap_shadow_allow;
	/* the one extension provider the CUSTOM policies here ask (Istio allows one per
	 * workload), or NULL */
	const struct ext_authz *ap_provider;
	bool ap_needs_principal; /* some applied rule looks at the client certificate's identity */
	bool ap_needs_local;     /* ... or at the address the client connected to */
	struct cfg_ra **ras;     /* every RequestAuthentication loaded */
	size_t nras;
	/* The rules of those that apply to this appliance (ra_apply), in load order. */
	struct ra_rule **ra_rules;
	size_t nra_rules;
	struct cfg_ef **efs; /* every EnvoyFilter loaded (each a local rate limit) */
	size_t nefs;
	const struct local_rate_limit *rate_limit; /* the one that applies here, or NULL */
	struct cfg_telemetry **tels;               /* every Telemetry loaded */
	size_t ntels;
	/* The access log this generation writes (tel_apply): the main config's accessLog,
	 * unless a Telemetry that selects this appliance decides it (Istio's provider
	 * "envoy", or an envoyFileAccessLog provider), with its filter.  path NULL: no
	 * access log. */
	const char *access_log_path;
	enum accesslog_format access_log_format;
	struct logformat *access_log_custom; /* the provider's own format, or NULL */
	const char *access_log_provider;     /* the provider's name */
	const struct cel_expr *access_log_filter;
	const char *access_log_filter_src;
	/* the header names (lower case) the filter and the format read from copies kept
	 * while the exchange runs: request side (referer included when the filter reads
	 * request.referer), response side; at most CFG_LOG_HEADERS each */
	struct str_list access_log_headers[2];
	const struct cfg_telemetry *access_log_by; /* the Telemetry that decided, or NULL */
	/* Istio's standard metrics as the Telemetries' metrics overrides leave them
	 * (tel_metrics_apply): the enum tel_metric bits turned off, the labels removed from
	 * each; http_off / tcp_off: none of a kind is written, so none is counted */
	uint32_t metrics_disabled;
	struct str_list metrics_removed[TM__COUNT];
	bool metrics_http_off, metrics_tcp_off;
	/* how often open relays add their bytes to the TCP metrics (reportingInterval,
	 * Istio's 15 s by default); at close they add the rest */
	uint64_t metrics_tcp_interval_us;
	/* resolution DNS endpoint names were resolved (serving): link drops names that gave
	 * no address; otherwise (-t) they wait for serving, with a notice */
	bool dns_resolved;
	int order_counter;
	struct node_rebuild *rebuild; /* trees of dropped documents rebuilt for reports */
};

#endif
