/* Loading a config generation: the main file, then every resource file it names, each YAML
 * document dispatched by kind to its decoder (gateway.c, virtualservice.c, ...).
 * Side-effect free: nothing outside the returned set and the diagnostics is touched, so a
 * failed reload changes nothing. */
#ifndef MG_LOAD_H
#define MG_LOAD_H

#include "model.h"

struct pool;
struct diag;
struct node;

/* Load main_path and all resources into a new set allocated from p.  Returns the set
 * (possibly partial) and reports every problem into d; the caller checks d->nerrors. */
struct cfg_set *config_load(struct pool *p, struct diag *d, const char *main_path);
/* After link: free the documents that were read again for reports (VirtualService trees are
 * dropped while loading and rebuilt only when a message needs a field path).  Optional: they
 * go with p otherwise. */
void config_load_done(struct cfg_set *set);

/* Point a route's policies (a route destination's headers) at the shared empty ones: what
 * every route starts with, so none of those pointers is ever NULL (virtualservice.c). */
void cfg_vs_route_init(struct http_route *r);
void cfg_vs_dest_init(struct route_destination *rd);
void cfg_vs_match_init(struct http_match *m);

/* Main config decoder (mainconf.c): fills set->main from the main file's root map. */
void cfg_main_decode(struct pool *p, struct diag *d, struct node *root, const char *path,
		     struct cfg_main *m);

/* main config tlsDefaultHost for a listener port: the host, or NULL.  *at is the entry's
 * node when the port has an entry of its own (a host it does not serve deserves a
 * warning), NULL when the host comes from the every-port default. */
const char *cfg_main_default_host(const struct cfg_main *m, uint32_t port, struct node **at);

/* Per-kind decoders: each appends to set on success.  doc_root is the document's root map;
 * apiVersion/kind/metadata are already decoded into meta (the decoder owns `spec`).
 * Every decoder reports all its errors and marks what it read, so unknown fields surface. */
void cfg_gateway_decode(struct pool *p, struct diag *d, struct cfg_set *set,
			const struct cfg_meta *meta, struct node *spec);
void cfg_vs_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
void cfg_dr_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
void cfg_pa_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
/* PeerAuthentication on the served ISTIO_MUTUAL Gateway servers (peerauthentication.c):
 * the most specific policy that selects this appliance (workload, namespace, mesh-wide
 * in rootNamespace) decides per port, written to each such server's `mtls` (STRICT when
 * no policy decides); link calls it once the gateways are known. */
void pa_apply(struct diag *d, const struct cfg_set *set);
void cfg_ap_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
/* Sort the AuthorizationPolicies that apply to this appliance into set->ap_deny and
 * set->ap_allow (Istio's selection), the dry-run ones into set->ap_shadow_deny and
 * set->ap_shadow_allow; notes for those that do not apply. */
void ap_apply(struct diag *d, struct pool *p, struct cfg_set *set);
/* A policy's targetRef / targetRefs attach it to Kubernetes Gateway API resources, which an
 * appliance does not have: false, with an error naming `instead` (the selector field). */
bool cfg_no_target_ref(struct diag *d, struct node *spec, const char *instead);
/* Istio's workload selection of a security policy: in the appliance's namespace (or the
 * root namespace, mesh-wide), and every selector label among the main config's labels. */
bool cfg_policy_selects(const struct cfg_set *set, const struct cfg_meta *meta, bool has_selector,
			const struct kv_list *selector);
void cfg_ra_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
/* Gather the JWT rules of the RequestAuthentications that apply into set->ra_rules (one
 * per issuer, the first wins); notes for those that do not apply. */
void ra_apply(struct diag *d, struct pool *p, struct cfg_set *set);
/* EnvoyFilter: only the local rate limit patch of Istio's rate limit task. */
void cfg_ef_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);
/* The local rate limit of the first EnvoyFilter that selects this appliance. */
void ef_apply(struct diag *d, struct cfg_set *set);
/* Telemetry: access logging (accessLogging); metrics and tracing are warned about. */
void cfg_telemetry_decode(struct pool *p, struct diag *d, struct cfg_set *set,
			  const struct cfg_meta *meta, struct node *spec);
/* The access log of this generation into set->access_log_*: the Telemetries that select
 * this appliance, merged as Istio does for a gateway (provider "envoy", CLIENT mode), or
 * the main config's accessLog when none has accessLogging. */
void tel_apply(struct diag *d, struct pool *p, struct cfg_set *set);
/* A Telemetry's providers: [{name}], names lower-cased into out, their nodes (for
 * messages) into *nodes. */
bool tel_decode_providers(struct pool *p, struct diag *d, struct node *n, struct str_list *out,
			  struct node ***nodes);
/* telemetry_metrics.c: a Telemetry's `metrics` decoded, and the overrides of the ones
 * that select the appliance (levels, in istiod's order) applied to set. */
bool tel_metrics_decode(struct pool *p, struct diag *d, struct node *n, struct cfg_telemetry *t);
void tel_metrics_apply(struct diag *d, struct pool *p, struct cfg_set *set,
		       const struct cfg_telemetry *const *levels, size_t nlevels);
const char *tel_metric_name(enum tel_metric m); /* "REQUEST_COUNT" */
/* What a listener does with plaintext, from its merged servers (after pa_apply):
 * PA_PERMISSIVE (TLS or plaintext, told apart by the first byte) or PA_DISABLE (plaintext
 * only) when every server on it is an HTTPS ISTIO_MUTUAL server with that mode; PA_UNSET
 * (as the servers' tls says) otherwise, with a warning when a PERMISSIVE or DISABLE port
 * is shared with other servers, which keep it STRICT.  lkey names the listener. */
enum pa_mode pa_listener_mode(struct diag *d, const struct gw_server *const *servers, size_t n,
			      const char *lkey);
void cfg_se_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec);

/* Helpers shared by the decoders (decode_util.c). */
bool cfg_decode_string_match(struct pool *p, struct diag *d, struct node *n,
			     struct string_match *out, bool caseless);
bool cfg_decode_str_list(struct pool *p, struct diag *d, struct node *n, struct str_list *out,
			 bool lower);
bool cfg_decode_kv_map(struct pool *p, struct diag *d, struct node *n, struct kv_list *out);
/* Istio short-name expansion: "reviews" -> "reviews.NS.svc.cluster.local"; names with a dot
 * or a wildcard are kept (lower-cased). */
const char *cfg_expand_host(struct pool *p, const char *host, const char *ns);

/* ---- Decoder helpers (decode_util.c), added by the decoder work ----
 * Conventions shared by every decoder: a NULL node means "absent" and decodes to the
 * default without a report; every helper reports its own errors at the offending node and
 * returns false when it did. */

/* Value of a required key; reports `missing required field "key"` at map when absent. */
struct node *cfg_require(struct diag *d, struct node *map, const char *key);
/* Integer in [min, max] into a uint32_t. */
bool cfg_decode_u32(struct diag *d, struct node *n, uint32_t min, uint32_t max, uint32_t *out);
/* Port number 1..65535. */
bool cfg_decode_port(struct diag *d, struct node *n, uint32_t *out);
/* Kubernetes labels (qualified-name keys, 63-character values) or selectors ("*" refused). */
bool cfg_decode_labels(struct pool *p, struct diag *d, struct node *n, struct kv_list *out);
/* Istio Headers {request, response: {set, add, remove}}; names lower-cased. */
bool cfg_decode_headers_ops(struct pool *p, struct diag *d, struct node *n,
			    struct headers_ops *out);
/* Istio Percent {value: 0 | [0.0001, 100]}. */
bool cfg_decode_percent(struct diag *d, struct node *n, struct percent *out);
/* exportTo: ".", "*", namespaces, and "~" when allow_none (ServiceEntry only). */
bool cfg_decode_export_to(struct pool *p, struct diag *d, struct node *n, const char *ns,
			  bool allow_none, struct str_list *out);
/* Duration in microseconds with Istio's rules: at least min_us (0 allows "0s"), whole
 * milliseconds (whole seconds when seconds_only). */
bool cfg_decode_duration(struct diag *d, struct node *n, uint64_t min_us, bool seconds_only,
			 uint64_t *out_us);
/* Room for element n of a pool array of n elements that only ever grows through this
 * function (the cfg_set resource arrays): doubles at powers of two, so appending N costs
 * O(N) time and pool memory.  Returns the (possibly moved) array. */
#define CFG_APPEND_MIN 16 /* a power of two */
void *cfg_append(struct pool *p, void *arr, size_t n, size_t size);
/* s lower-cased: s itself when it has no upper-case letter, else a pool copy. */
const char *cfg_lower(struct pool *p, const char *s);

/* Host name syntax (Istio's ValidateWildcardDomain / ValidateFQDN) on an already lower-cased
 * name.  On failure writes the reason into why. */
#define CFG_HOST_WILDCARD 0x1 /* "*" or "*.suffix" allowed */
#define CFG_HOST_IP 0x2       /* an IPv4 or IPv6 literal is accepted too */
bool cfg_check_host(const char *host, unsigned flags, char *why, size_t whylen);
/* Istio host.Name.Matches: equal, or one wildcard covers the other. */
bool cfg_hosts_overlap(const char *a, const char *b);
bool cfg_is_dns_label(const char *s);
bool cfg_is_dns_subdomain(const char *s);
bool cfg_is_ip(const char *s);
/* "a.b.c.d", "a.b.c.d/nn", IPv6 and IPv6/nn. */
bool cfg_is_ip_or_cidr(const char *s);
/* RFC 9110 token: a header name. */
bool cfg_is_token(const char *s);
/* True if a resources[] entry of the main config is usable (a non-empty string): mainconf.c
 * keeps exactly these, in order, so load.c can pair resolved paths with their nodes. */
bool cfg_resource_entry_ok(const struct node *n);

#endif
