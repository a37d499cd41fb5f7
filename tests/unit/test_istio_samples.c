/* Every file of the shared Istio sample corpus (../shared/istio-samples, or $MG_ISTIO_SAMPLES)
 * goes through what `meshgate -t` does: config_load(), then link_compile() when decoding was
 * clean.  A VM has no Kubernetes registry, so the test first reads the sample to find the
 * service hosts it references (destinations, DestinationRule hosts) but does not declare
 * itself, and writes a ServiceEntry file declaring just those, per sample (two
 * ServiceEntries for one host and port would be a link error of their own).
 *
 * The expected outcome per file is written down in the table below: accepted or refused,
 * and the diagnostics, each as level + substring.  Every diagnostic line must be matched by
 * an expected one and every expected one must match, so a new warning cannot slip in
 * unnoticed; each line must also carry the `path:line:col: ` prefix of a file that exists.
 * A sample without an entry fails the test too.  Exit 77 (skipped) when the corpus is absent.
 *
 * Samples are loaded with the appliance labels their Gateways select (`istio:
 * ingressgateway` unless the entry says otherwise), so their Gateways are served and the
 * link stage checks listeners, bindings and destinations for real.  A snippet that only
 * makes sense next to an earlier snippet of the same task (a VirtualService whose Gateway
 * is declared there) is loaded with that file (`with`).
 *
 * MG_SAMPLES_DUMP=1 prints each sample's actual diagnostics, to help update the table. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw(), open_memstream() */
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool.h"
#include "snapshot.h"
#include "config/diag.h"
#include "config/link.h"
#include "config/load.h"

struct expect_line {
	enum diag_level level;
	const char *text; /* substring of the line; NULL ends the list */
};

/* clang-format off */
#define ERR(t) {DIAG_ERROR, t}
#define WARN(t) {DIAG_WARNING, t}
#define NOTE(t) {DIAG_NOTICE, t}
/* clang-format on */
#define MAX_LINES 12

struct sample {
	const char *file;
	const char *labels; /* appliance labels (main file), NULL: {istio: ingressgateway} */
	const char *with;   /* corpus file of the same task loaded first, or NULL */
	bool refused;       /* `meshgate -t` must exit 1 */
	struct expect_line lines[MAX_LINES];
};

/* Messages that recur across the table. */
#define MESH_ONLY "bound to mesh only and is not served by a gateway"
#define UNDELEGATED "has no hosts and no route delegates to it: not served"
#define NO_LISTENER "no listener is configured"
#define NOT_SELECTED "does not select this appliance"
/* A terminating HTTPS server's credentialName names a Kubernetes Secret; on a VM it is a
 * directory under the main config's credentialsDir, which these samples cannot have. */
#define NEEDS_CREDS "credentialName \"" /* ...\" needs credentialsDir in the main config */
#define EGRESS "{istio: egressgateway}"
/* The expected outcome per file.  "mesh only": a VirtualService without `gateways` applies
 * to sidecars in Istio (the implicit `mesh` gateway), so an appliance accepts it and serves
 * none of it.  "no listener": the sample serves no Gateway on this appliance, which -t
 * points out once.  What meshgate cannot serve is refused with a message that says so
 * rather than half-served. */
static const struct sample samples[] = {
    /* ---- clean: Gateway + VirtualService served, destinations resolved ---- */
    {"samples_bookinfo_networking__bookinfo-gateway.yaml", NULL, NULL, false, {{0, NULL}}},
    {"samples_bookinfo_networking__certmanager-gateway.yaml", NULL, NULL, false, {{0, NULL}}},
    {"samples_helloworld__helloworld-gateway.yaml", NULL, NULL, false, {{0, NULL}}},
    {"samples_httpbin__httpbin-gateway.yaml", NULL, NULL, false, {{0, NULL}}},
    {"samples_websockets__route.yaml", NULL, NULL, false, {{0, NULL}}},
    {"istio.io_tasks_traffic-management_ingress_ingress-control__snip_accessing_ingress_"
     "services_using_a_browser_1.yaml",
     NULL,
     NULL,
     false,
     {{0, NULL}}},
    /* A Gateway alone: a listener with no virtual host (every request gets 404). */
    {"istio.io_tasks_traffic-management_ingress_ingress-control__snip_configuring_ingress_using_"
     "a_gateway_1.yaml",
     NULL,
     NULL,
     false,
     {{0, NULL}}},
    /* Its VirtualService, applied after the Gateway of snippet 1. */
    {"istio.io_tasks_traffic-management_ingress_ingress-control__snip_configuring_ingress_using_"
     "a_gateway_2.yaml",
     NULL,
     "istio.io_tasks_traffic-management_ingress_ingress-control__snip_configuring_ingress_using_"
     "a_gateway_1.yaml",
     false,
     {{0, NULL}}},

    /* ---- accepted, mesh only ---- */
    {"istio.io_blog_2017_0.1-canary__canary-90-10.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/helloworld: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"istio.io_blog_2017_0.1-canary__focused-canary-cookie-regex.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/helloworld: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    /* External host httpbin.org (declared by egress-control snippet 1, here by the test). */
    {"istio.io_tasks_traffic-management_egress_egress-control__snip_manage_traffic_to_external_"
     "services_2.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/httpbin-ext: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    /* tls route on SNI edition.cnn.com: mesh only, so no TLS listener is asked for. */
    {"istio.io_tasks_traffic-management_egress_egress-tls-origination__snip_apply_simple.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/edition-cnn-com: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_mirroring__snip_creating_a_default_routing_policy_1."
     "yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/httpbin: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_mirroring__snip_mirroring_traffic_to_v2_1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/httpbin: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_request-timeouts__snip_request_timeouts_3.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    /* The unreachable second rule after an unconditional one is not reported: the VS is
     * mesh only, and -t checks reachability on served vhosts. */
    {"samples_bookinfo_networking__fault-injection-details-v1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/details: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-all-v1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/productpage: spec: " MESH_ONLY),
      NOTE("VirtualService default/reviews: spec: " MESH_ONLY),
      NOTE("VirtualService default/ratings: spec: " MESH_ONLY),
      NOTE("VirtualService default/details: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-details-v2.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/details: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-ratings-test-abort.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/ratings: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-ratings-test-delay.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/ratings: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-50-v3.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-80-20.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-jason-v2-v3.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-test-v2.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-v2-v3.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__virtual-service-reviews-v3.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/reviews: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    /* IST0101 (subset "bogus" in a route and a mirror) is not reported: every VS here is
     * mesh only, and destinations are resolved for served VirtualServices. */
    {"pkg_config_analysis_analyzers_testdata__virtualservice_destinationrules.yaml",
     NULL,
     NULL,
     false,
     /* no hosts: Istio reads them as delegates, and nothing delegates to them */
     {NOTE("VirtualService default/reviews: spec: " UNDELEGATED),
      NOTE("VirtualService default/reviews-bogussubset: spec: " UNDELEGATED),
      NOTE("VirtualService default/reviews-fqdn: spec: " UNDELEGATED),
      NOTE("VirtualService default/reviews-mirror: spec: " UNDELEGATED),
      NOTE("VirtualService default/reviews-mirror-bogussubset: spec: " UNDELEGATED),
      WARN(NO_LISTENER)}},

    /* ---- accepted: registry and DestinationRules only (no Gateway) ---- */
    {"istio.io_tasks_traffic-management_egress_egress-control__snip_access_an_external_http_"
     "service_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_egress-control__snip_access_an_external_https_"
     "service_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_http_"
     "traffic_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_https_"
     "traffic_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_wildcard-egress-hosts__snip_configure_direct_"
     "traffic_to_a_wildcard_host_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_wildcard-egress-hosts__snip_configure_egress_"
     "gateway_traffic_to_a_wildcard_host_3.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"samples_external__github.yaml", NULL, NULL, false, {WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__destination-rule-all.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__destination-rule-reviews.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    /* Kubernetes objects next to the ServiceEntries: skipped with a notice each. */
    {"samples_extauthz__local-ext-authz.yaml",
     NULL,
     NULL,
     false,
     {NOTE("skipping non-Istio kind Deployment"), NOTE("skipping non-Istio kind Service"),
      NOTE("skipping non-Istio kind ServiceAccount"), WARN(NO_LISTENER)}},

    /* ---- circuit breaking and outlier detection: enforced ---- */
    {"istio.io_tasks_traffic-management_circuit-breaking__snip_configuring_the_circuit_breaker_"
     "1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    /* Upstream mTLS origination: no VirtualService uses the rule, so its credential is
     * never looked up (a served route would need credentialsDir). */
    {"istio.io_tasks_traffic-management_egress_egress-gateway-tls-origination__snip_configure_"
     "mutual_tls_origination_for_egress_traffic_4.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_traffic-management_egress_egress-tls-origination__snip_apply_origination."
     "yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/edition-cnn-com: spec: " MESH_ONLY), WARN(NO_LISTENER)}},
    {"samples_bookinfo_networking__egress-rule-google-apis.yaml",
     NULL,
     NULL,
     false,
     {NOTE("VirtualService default/rewrite-port-for-googleapis: spec: " MESH_ONLY),
      WARN(NO_LISTENER)}},
    /* ISTIO_MUTUAL is the sidecars' mesh mTLS; no served route uses these rules, so the
     * missing meshIdentity of the main config does not matter. */
    {"samples_bookinfo_networking__destination-rule-all-mtls.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    /* Istio still accepts the deprecated integer `percent`. */
    {"istio.io_tasks_traffic-management_request-timeouts__snip_request_timeouts_2.yaml",
     NULL,
     NULL,
     false,
     {WARN("VirtualService default/ratings: spec.http[0].fault.delay.percent: percent is "
	   "deprecated, use percentage"),
      NOTE("VirtualService default/ratings: spec: " MESH_ONLY), WARN(NO_LISTENER)}},

    /* ---- egress gateway (appliance labelled istio: egressgateway) ---- */
    /* The egress Gateway for edition.cnn.com and the DestinationRule for the egress
     * gateway's own service: no VirtualService yet, so an empty listener. */
    {"istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_http_"
     "traffic_3.yaml",
     EGRESS,
     NULL,
     false,
     {{0, NULL}}},
    /* The two-leg VirtualService: the gateway leg (match gateways: [istio-egressgateway])
     * is served and routes to edition.cnn.com:80; the mesh leg's match never applies on
     * the gateway.  (link.c still resolves the mesh leg's destination, the egress gateway's
     * own Kubernetes service: the generated ServiceEntry declares it, as every referenced
     * host, which hides that; reported to the link owner.) */
    {"istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_http_"
     "traffic_5.yaml",
     EGRESS,
     "istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_http_"
     "traffic_3.yaml",
     false,
     {{0, NULL}}},
    /* TLS origination on the gateway leg (edition.cnn.com:443 with portLevelSettings tls
     * SIMPLE, verified with the system CAs): served.  The task's Gateway is the one of
     * egress-gateway snippet 3. */
    {"istio.io_tasks_traffic-management_egress_egress-gateway-tls-origination__snip_perform_tls_"
     "origination_with_an_egress_gateway_4.yaml",
     EGRESS,
     "istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_http_"
     "traffic_3.yaml",
     false,
     {{0, NULL}}},
    /* SNI passthrough egress (TLS and HTTPS servers with tls.mode PASSTHROUGH): the tls
     * route whose match names the egress gateway is served, the one for `mesh` is not (its
     * destination, the egress gateway's own service, is never resolved). */
    {"istio.io_tasks_traffic-management_egress_egress-gateway__snip_egress_gateway_for_https_"
     "traffic_3.yaml",
     EGRESS,
     NULL,
     false,
     {{0, NULL}}},
    {"istio.io_tasks_traffic-management_egress_wildcard-egress-hosts__snip_configure_egress_"
     "gateway_traffic_to_a_wildcard_host_1.yaml",
     EGRESS,
     NULL,
     false,
     {{0, NULL}}},

    /* ---- TLS ingress: PASSTHROUGH is served by SNI; terminating servers need their
     * credentialName under credentialsDir ---- */
    /* The task's Gateway alone: nothing routes its SNI yet (its snippet 2 does). */
    {"istio.io_tasks_traffic-management_ingress_ingress-sni-passthrough__snip_configure_an_"
     "ingress_gateway_1.yaml",
     NULL,
     NULL,
     false,
     {WARN("Gateway default/mygateway: spec.servers[0]: no VirtualService tls route reaches "
	   "this PASSTHROUGH server: its connections are closed (NR)")}},
    {"istio.io_tasks_traffic-management_ingress_ingress-sni-passthrough__snip_configure_an_"
     "ingress_gateway_2.yaml",
     NULL,
     "istio.io_tasks_traffic-management_ingress_ingress-sni-passthrough__snip_configure_an_"
     "ingress_gateway_1.yaml",
     false,
     {{0, NULL}}},
    {"istio.io_tasks_traffic-management_ingress_secure-ingress__snip_configure_a_mutual_tls_"
     "ingress_gateway_2.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway default/mygateway: spec.servers[0].tls.credentialName: " NEEDS_CREDS)}},
    {"istio.io_tasks_traffic-management_ingress_secure-ingress__snip_configure_a_tls_ingress_"
     "gateway_for_a_single_host_2.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway default/mygateway: spec.servers[0].tls.credentialName: " NEEDS_CREDS)}},
    {"istio.io_tasks_traffic-management_ingress_secure-ingress__snip_configure_a_tls_ingress_"
     "gateway_for_multiple_hosts_4.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway default/mygateway: spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway default/mygateway: spec.servers[1].tls.credentialName: " NEEDS_CREDS)}},
    {"istio.io_tasks_traffic-management_ingress_secure-ingress__snip_configure_a_tls_ingress_"
     "gateway_for_multiple_hosts_5.yaml",
     NULL,
     "istio.io_tasks_traffic-management_ingress_secure-ingress__snip_configure_a_tls_ingress_"
     "gateway_for_multiple_hosts_4.yaml",
     true,
     {ERR("Gateway default/mygateway: spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway default/mygateway: spec.servers[1].tls.credentialName: " NEEDS_CREDS)}},
    /* Mesh-only east-west mode AUTO_PASSTHROUGH (INDEX.md): refused.  Today the refusal is
     * the generic one for TLS servers; the TLS work must keep refusing this mode. */
    {"samples_multicluster__expose-services.yaml",
     "{istio: eastwestgateway}",
     NULL,
     true,
     /* AUTO_PASSTHROUGH routes SNI to mesh clusters (east-west): mesh-only. */
     {ERR("Gateway default/cross-network-gateway: spec.servers[0].tls.mode: AUTO_PASSTHROUGH "
	  "is a mesh-only mode")}},
    /* IST0138 (one credentialName for different hosts) needs the TLS work to matter; the
     * Gateways with selector type: internal are for another appliance. */
    {"pkg_config_analysis_analyzers_testdata__gateway-duplicate-certificate.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway istio-system/gateway-01-test-01: "
	  "spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway istio-system/gateway-02-test-01: "
	  "spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway istio-system/gateway-01-test-02: "
	  "spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway default/gateway-01-test-03: spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("-test-04: spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("Gateway istio-system/gateway-01-test-05: "
	  "spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      ERR("-test-06: spec.servers[0].tls.credentialName: " NEEDS_CREDS),
      NOTE("selector {istio: ingressgateway, type: internal} does not match this appliance's "
	   "labels {istio: ingressgateway}"),
      NOTE("skipping non-Istio kind Pod"), NOTE("skipping non-Istio kind Secret")}},

    /* ---- TCP: a TCP server and its tcp route (subset v1 of the DestinationRule) ---- */
    {"samples_tcp-echo__tcp-echo-all-v1.yaml", NULL, NULL, false, {{0, NULL}}},
    /* Applied over tcp-echo-all-v1 (kubectl apply replaces its VirtualService tcp-echo), so
     * it cannot be loaded next to it (duplicate resource) and alone its Gateway is missing;
     * a VirtualService bound to nothing is refused (DESIGN.md §4). */
    {"samples_tcp-echo__tcp-echo-20-v2.yaml",
     NULL,
     NULL,
     true,
     {ERR("VirtualService default/tcp-echo: spec.gateways[0]: gateway "
	  "default/tcp-echo-gateway not found"),
      WARN(NO_LISTENER)}},

    /* ---- analyzer negative cases (istioctl analyze test data) ---- */
    /* IST0145: two Gateways on port 80 for foo.bar, TCP and HTTP.  Istio keeps one
     * silently; meshgate refuses the protocol clash (and notes that no tcp route serves the
     * TCP server). */
    {"pkg_config_analysis_analyzers_testdata__conflicting-gateways.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway default/alpha: spec.servers[0].port.protocol: protocol HTTP on 0.0.0.0:80 "
	  "differs from protocol TCP of the server at "),
      WARN("Gateway default/beta: spec.servers[0]: no VirtualService tcp route reaches this TCP "
	   "server: its connections are closed (NR)")}},
    /* IST0130/0131 live in mesh-only VirtualServices; the tcp ones name a Gateway the file
     * does not declare, which meshgate refuses (Istio's analyzer reports IST0101). */
    {"pkg_config_analysis_analyzers_testdata__virtualservice_dupmatches.yaml",
     NULL,
     NULL,
     true,
     {NOTE("VirtualService foo/sample-foo-cluster01: spec: " MESH_ONLY),
      NOTE("VirtualService default/duplicate-match: spec: " MESH_ONLY),
      NOTE("VirtualService default/almost-duplicate-match: spec: " MESH_ONLY),
      NOTE("VirtualService none/tls-routing: spec: " MESH_ONLY),
      NOTE("VirtualService none/tls-routing-almostmatch: spec: " MESH_ONLY),
      ERR("VirtualService default/duplicate-tcp-match: spec.gateways[0]: gateway "
	  "default/tcp-echo-gateway not found"),
      ERR("VirtualService default/duplicate-empty-tcp: spec.gateways[0]: gateway "
	  "default/tcp-echo-gateway not found"),
      ERR("VirtualService default/almost-duplicate-tcp-match: spec.gateways[0]: gateway "
	  "default/tcp-echo-gateway not found"),
      WARN(NO_LISTENER)}},
    /* Broken on purpose: Gateways without servers, VirtualServices without routes, and
     * host * on a mesh VirtualService (all refused by Istio's validation too). */
    {"pkg_config_analysis_analyzers_testdata__virtualservice_gateways.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway default/httpbin-gateway: spec: a gateway needs at least one server"),
      ERR("Gateway another/crossnamespace-gw: spec: a gateway needs at least one server"),
      ERR("VirtualService default/httpbin: spec: http, tcp or tls must be provided"),
      ERR("VirtualService default/httpbin-bogus: spec: http, tcp or tls must be provided"),
      ERR("VirtualService default/httpbin-mesh: spec.hosts[0]: wildcard host * is not "
	  "allowed for virtual services bound to the mesh gateway"),
      ERR("VirtualService default/httpbin-mesh: spec: http, tcp or tls must be provided"),
      ERR("VirtualService default/cross-test: spec: http, tcp or tls must be provided")}},
    /* Istio's validation refuses two servers with the same port name in one Gateway. */
    {"pkg_config_analysis_analyzers_testdata__virtualservice_host_not_found_gateway.yaml",
     NULL,
     NULL,
     true,
     {ERR("Gateway istio-system/testing-gateway-01-test-04: spec.servers[1].port.name: port "
	  "names in servers must be unique: duplicate name http")}},
    /* IST0149: routing on a JWT claim with no RequestAuthentication: a warning, as Istio's
     * analyzer gives. */
    {"pkg_config_analysis_analyzers_testdata__virtualservice_jwtclaimroute.yaml",
     NULL,
     NULL,
     false,
     {WARN("VirtualService default/foo: spec.http[0].match[0].headers[\"@request.auth.claims."
	   "foo\"]: routing on a JWT claim (@request.auth.claims.foo), but no "
	   "RequestAuthentication applies here")}},
    /* Claim routing again, in namespace foo whose Gateway httpbin-gateway the task takes
     * from elsewhere (no corpus file declares it); its RequestAuthentication is snippet 1. */
    {"istio.io_tasks_security_authentication_jwt-route__snip_configuring_ingress_routing_based_"
     "on_jwt_claims_2.yaml",
     NULL,
     NULL,
     true,
     {ERR("VirtualService foo/httpbin: spec.gateways[0]: gateway foo/httpbin-gateway not "
	  "found"),
      WARN(NO_LISTENER)}},

    /* ---- PeerAuthentication: loaded, applied to ISTIO_MUTUAL Gateway servers ---- */
    {"istio.io_tasks_security_authentication_authn-policy__snip_enable_mutual_tls_per_workload_"
     "5.yaml",
     NULL,
     NULL,
     false,
     {NOTE("PeerAuthentication bar/httpbin: spec: does not select this appliance"),
      WARN(NO_LISTENER)}},
    /* ---- RequestAuthentication: jwksUri is fetched when serving, not by -t ---- */
    {"istio.io_tasks_security_authentication_authn-policy__snip_enduser_authentication_4.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authentication_authn-policy__snip_globally_enabling_istio_mutual_"
     "tls_in_strict_mode_1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("PeerAuthentication istio-system/default: spec: applies to ISTIO_MUTUAL Gateway "
	   "servers; none is served"),
      WARN(NO_LISTENER)}},

    /* ---- AuthorizationPolicy: loaded, applied when it selects the appliance ---- */
    /* DENY without a request principal on /headers: alone (its RequestAuthentication is
     * another snippet) no request has one, so every /headers request is denied (fails
     * closed), as -t warns. */
    {"istio.io_tasks_security_authentication_authn-policy__snip_require_valid_tokens_perpath_1."
     "yaml",
     NULL,
     NULL,
     false,
     {WARN("AuthorizationPolicy istio-system/frontend-ingress: spec: rules[0] looks at the "
	   "request's JWT, but no RequestAuthentication applies here"),
      WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authentication_jwt-route__snip_configuring_ingress_routing_based_"
     "on_jwt_claims_1.yaml",
     NULL,
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authorization_authz-custom__snip_enable_with_external_"
     "authorization_1.yaml",
     NULL,
     NULL,
     true,
     /* the provider it names is the main config's, which these samples have not */
     {ERR("AuthorizationPolicy default/ext-authz: spec.provider.name: no extension provider "
	  "sample-ext-authz-grpc: the main config has no extensionProviders")}},
    {"istio.io_tasks_security_authorization_authz-deny__snip_explicitly_deny_a_request_1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("AuthorizationPolicy foo/deny-method-get: spec: " NOT_SELECTED), WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authorization_authz-deny__snip_explicitly_deny_a_request_4.yaml",
     NULL,
     NULL,
     false,
     {NOTE("AuthorizationPolicy foo/deny-method-get: spec: " NOT_SELECTED), WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authorization_authz-deny__snip_explicitly_deny_a_request_7.yaml",
     NULL,
     NULL,
     false,
     {NOTE("AuthorizationPolicy foo/allow-path-ip: spec: " NOT_SELECTED), WARN(NO_LISTENER)}},
    /* The ingress gateway's labels select these (from the root namespace). */
    {"istio.io_tasks_security_authorization_authz-ingress__snip_ipbased_allow_list_and_deny_"
     "list_1.yaml",
     "{app: istio-ingressgateway}",
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    /* The task's shell placeholder, kept in the file: not an address. */
    {"istio.io_tasks_security_authorization_authz-ingress__snip_ipbased_allow_list_and_deny_"
     "list_10.yaml",
     "{app: istio-ingressgateway}",
     NULL,
     true,
     {ERR("AuthorizationPolicy istio-system/ingress-policy: spec.rules[0].from[0].source."
	  "remoteIpBlocks[0]: \"$CLIENT_IP\" is not an IP address or CIDR prefix")}},
    {"istio.io_tasks_security_authorization_authz-ingress__snip_ipbased_allow_list_and_deny_"
     "list_2.yaml",
     "{app: istio-ingressgateway}",
     NULL,
     false,
     {WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authorization_authz-jwt__snip_allow_requests_with_valid_jwt_and_"
     "listtyped_claims_1.yaml",
     NULL,
     NULL,
     false,
     {NOTE("RequestAuthentication foo/jwt-example: spec: " NOT_SELECTED), WARN(NO_LISTENER)}},
    {"istio.io_tasks_security_authorization_authz-jwt__snip_allow_requests_with_valid_jwt_and_"
     "listtyped_claims_8.yaml",
     NULL,
     NULL,
     false,
     {NOTE("AuthorizationPolicy foo/require-jwt: spec: " NOT_SELECTED), WARN(NO_LISTENER)}},
};

#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* The services the samples name, as an operator of a VM would declare them: a STATIC
 * ServiceEntry with loopback endpoints labelled by version (v1..v3 and bookinfo's
 * v2-mysql*).  Kubernetes services match by short name in any namespace (their host is
 * NAME.NS.svc.cluster.local); external hosts match exactly.  The port is the one a
 * destination names, else the service's own. */
struct service {
	const char *name;     /* short name (Kubernetes service) or full external host */
	uint32_t port;        /* default port */
	const char *protocol; /* of the default port; 443 is always HTTPS */
};

static const struct service k8s_services[] = {
    {"productpage", 9080, "HTTP"},
    {"reviews", 9080, "HTTP"},
    {"ratings", 9080, "HTTP"},
    {"details", 9080, "HTTP"},
    {"httpbin", 8000, "HTTP"},
    {"helloworld", 5000, "HTTP"},
    {"tornado", 8888, "HTTP"},
    {"tcp-echo", 9000, "TCP"},
    {"my-nginx", 443, "HTTPS"},
    {"cert-manager-resolver", 8089, "HTTP"},
    {"istio-egressgateway", 80, "HTTP"},
    {"istiod", 15010, "GRPC"},
    {"sample", 80, "HTTP"},
};

static const struct service external_services[] = {
    {"edition.cnn.com", 80, "HTTP"},       {"httpbin.org", 80, "HTTP"},
    {"www.google.com", 443, "HTTPS"},      {"www.googleapis.com", 443, "HTTPS"},
    {"www1.googleapis.com", 443, "HTTPS"}, {"api1.facebook.com", 443, "HTTPS"},
    {"www.wikipedia.org", 443, "HTTPS"},
};

static const char *const versions[] = {"v1", "v2", "v3", "v2-mysql", "v2-mysql-vm"};

#define K8S_SUFFIX ".svc.cluster.local"
#define MAX_REFS 64
#define MAX_PORTS 4

/* A host a sample references, with the ports its destinations name. */
struct ref {
	const char *host;
	uint32_t ports[MAX_PORTS];
	size_t nports;
};

static char samples_dir[PATH_MAX];
static char scratch_dir[PATH_MAX];
static bool dump;

static void write_main(const char *path, const struct sample *s, bool with_services)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "labels: %s\nresources:\n", s->labels ? s->labels : "{istio: ingressgateway}");
	if (with_services)
		fputs("- services.yaml\n", f);
	if (s->with != NULL)
		fprintf(f, "- '%s/%s'\n", samples_dir, s->with);
	fprintf(f, "- '%s/%s'\n", samples_dir, s->file);
	assert_int_equal(fclose(f), 0);
}

/* The known service behind host, or NULL; *ns gets a Kubernetes host's namespace. */
static const struct service *find_service(const char *host, char *ns, size_t nslen)
{
	size_t hl = strlen(host), sl = strlen(K8S_SUFFIX), i;
	const char *dot;

	snprintf(ns, nslen, "default");
	for (i = 0; i < sizeof(external_services) / sizeof(external_services[0]); i++)
		if (strcmp(external_services[i].name, host) == 0)
			return &external_services[i];
	if (hl <= sl || strcmp(host + hl - sl, K8S_SUFFIX) != 0 ||
	    (dot = strchr(host, '.')) == NULL || dot + 1 >= host + hl - sl)
		return NULL;
	snprintf(ns, nslen, "%.*s", (int)(host + hl - sl - dot - 1), dot + 1);
	for (i = 0; i < sizeof(k8s_services) / sizeof(k8s_services[0]); i++)
		if (strlen(k8s_services[i].name) == (size_t)(dot - host) &&
		    strncmp(k8s_services[i].name, host, (size_t)(dot - host)) == 0)
			return &k8s_services[i];
	return NULL;
}

static void add_ref(struct ref *refs, size_t *nrefs, const char *host, uint32_t port)
{
	struct ref *r = NULL;
	size_t i;

	if (host == NULL || host[0] == '*')
		return; /* a wildcard names no service to declare */
	for (i = 0; i < *nrefs && r == NULL; i++)
		if (strcmp(refs[i].host, host) == 0)
			r = &refs[i];
	if (r == NULL) {
		assert_true(*nrefs < MAX_REFS);
		r = &refs[(*nrefs)++];
		memset(r, 0, sizeof(*r));
		r->host = host;
	}
	if (port == 0)
		return;
	for (i = 0; i < r->nports; i++)
		if (r->ports[i] == port)
			return;
	assert_true(r->nports < MAX_PORTS);
	r->ports[r->nports++] = port;
}

static void add_dests(struct ref *refs, size_t *nrefs, const struct route_destination *rd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		add_ref(refs, nrefs, rd[i].dest.fqdn, rd[i].dest.port);
}

static bool declared(const struct cfg_set *set, const char *host)
{
	for (size_t i = 0; i < set->nses; i++)
		for (size_t h = 0; h < set->ses[i]->hosts.n; h++)
			if (strcmp(set->ses[i]->hosts.v[h], host) == 0)
				return true;
	return false;
}

static void write_se(FILE *f, int idx, const char *ns, const char *host, const char *app,
		     const uint32_t *ports, size_t nports, const char *protocol)
{
	size_t p, v;

	fprintf(f,
		"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
		"metadata: {name: mg-test-%d, namespace: %s}\nspec:\n  hosts: [%s]\n"
		"  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n",
		idx, ns, host);
	for (p = 0; p < nports; p++) {
		const char *proto = ports[p] == 443 ? "HTTPS" : protocol;

		fprintf(f, "  - {number: %u, name: %s-%u, protocol: %s}\n", ports[p],
			strcmp(proto, "TCP") == 0 ? "tcp" : "http", ports[p], proto);
	}
	fputs("  endpoints:\n", f);
	for (v = 0; v < sizeof(versions) / sizeof(versions[0]); v++)
		fprintf(f, "  - {address: 127.0.0.%zu, labels: {app: %s, version: %s}}\n", v + 1,
			app, versions[v]);
}

/* Reads the sample (and its companion) alone and writes services.yaml declaring every
 * service host they reference and do not declare. */
static void write_services_for(const struct sample *s)
{
	struct pool *p = pool_new();
	struct ref refs[MAX_REFS];
	size_t nrefs = 0, i, k;
	struct cfg_set *set;
	struct diag d;
	int idx = 0;
	FILE *f;

	write_main("discover.yaml", s, false);
	diag_init(&d);
	set = config_load(p, &d, "discover.yaml");
	assert_non_null(set);
	for (i = 0; i < set->nvss; i++) {
		const struct cfg_vs *vs = set->vss[i];

		for (k = 0; k < vs->nhttp; k++) {
			add_dests(refs, &nrefs, vs->http[k].route, vs->http[k].nroute);
			for (size_t m = 0; m < vs->http[k].more->nmirrors; m++)
				add_ref(refs, &nrefs, vs->http[k].more->mirrors[m].dest.fqdn,
					vs->http[k].more->mirrors[m].dest.port);
		}
		for (k = 0; k < vs->ntls; k++)
			add_dests(refs, &nrefs, vs->tls[k].route, vs->tls[k].nroute);
		for (k = 0; k < vs->ntcp; k++)
			add_dests(refs, &nrefs, vs->tcp[k].route, vs->tcp[k].nroute);
	}
	for (i = 0; i < set->ndrs; i++)
		add_ref(refs, &nrefs, set->drs[i]->fqdn, 0);

	f = fopen("services.yaml", "w");
	assert_non_null(f);
	fputs("# hosts referenced by the sample and declared by none of its ServiceEntries\n", f);
	for (i = 0; i < nrefs; i++) {
		const struct service *svc;
		char ns[64], app[64];
		uint32_t dflt[1];

		if (declared(set, refs[i].host))
			continue;
		svc = find_service(refs[i].host, ns, sizeof(ns));
		if (svc == NULL)
			fail_msg("%s references host %s: add it to the services of this test",
				 s->file, refs[i].host);
		snprintf(app, sizeof(app), "%.*s", (int)strcspn(svc->name, "."), svc->name);
		dflt[0] = svc->port;
		write_se(f, idx++, ns, refs[i].host, app, refs[i].nports ? refs[i].ports : dflt,
			 refs[i].nports ? refs[i].nports : 1, svc->protocol);
	}
	assert_int_equal(fclose(f), 0);
	diag_fini(&d);
	pool_free(p);
}

/* "path:line:col: " with path naming a file that exists (relative to the scratch dir). */
static bool has_position(const char *line)
{
	const char *c;

	for (c = strchr(line, ':'); c != NULL; c = strchr(c + 1, ':')) {
		const char *q = c + 1;
		char path[PATH_MAX];

		if (!isdigit((unsigned char)*q))
			continue;
		while (isdigit((unsigned char)*q))
			q++;
		if (*q++ != ':' || !isdigit((unsigned char)*q))
			continue;
		while (isdigit((unsigned char)*q))
			q++;
		if (q[0] != ':' || q[1] != ' ' || c == line || (size_t)(c - line) >= sizeof(path))
			continue;
		snprintf(path, sizeof(path), "%.*s", (int)(c - line), line);
		return access(path, R_OK) == 0;
	}
	return false;
}

static const char *level_name(enum diag_level l)
{
	return l == DIAG_ERROR ? "ERR" : l == DIAG_WARNING ? "WARN" : "NOTE";
}

/* load + link as `meshgate -t` does; the diagnostics stay in d. */
static void run_check(struct diag *d)
{
	struct pool *p = pool_new();
	struct snapshot *snap = NULL;
	struct cfg_set *set;

	set = config_load(p, d, "main.yaml");
	assert_non_null(set);
	if (d->nerrors == 0)
		snap = link_compile(p, d, set);
	if (snap != NULL) {
		assert_int_equal(d->nerrors, 0);
		atomic_store(&snap->refs, 1);
		snapshot_unref(snap); /* frees p */
	} else {
		pool_free(p);
	}
}

static void test_sample(void **state)
{
	const struct sample *s = *state;
	bool matched[MAX_LINES] = {false};
	int bad = 0;
	struct diag d;
	size_t i, k;

	write_services_for(s);
	write_main("main.yaml", s, true);
	diag_init(&d);
	run_check(&d);
	if (dump) {
		fprintf(stderr, "== %s (%s)\n", s->file, d.nerrors ? "refused" : "accepted");
		for (i = 0; i < d.n; i++)
			fprintf(stderr, "   %s %s\n", level_name(d.v[i].level), d.v[i].text);
	}
	if ((d.nerrors > 0) != s->refused) {
		print_error("%s: expected the config to be %s, it was %s\n", s->file,
			    s->refused ? "refused" : "accepted",
			    d.nerrors ? "refused" : "accepted");
		bad++;
	}
	for (i = 0; i < d.n; i++) {
		bool ok = false;

		if (!has_position(d.v[i].text)) {
			print_error("%s: no path:line:col: prefix naming a file: %s\n", s->file,
				    d.v[i].text);
			bad++;
		}
		for (k = 0; k < MAX_LINES && s->lines[k].text != NULL; k++) {
			if (s->lines[k].level == d.v[i].level &&
			    strstr(d.v[i].text, s->lines[k].text) != NULL) {
				matched[k] = ok = true;
			}
		}
		if (!ok) {
			print_error("%s: unexpected %s: %s\n", s->file, level_name(d.v[i].level),
				    d.v[i].text);
			bad++;
		}
	}
	for (k = 0; k < MAX_LINES && s->lines[k].text != NULL; k++) {
		if (!matched[k]) {
			print_error("%s: expected %s containing \"%s\" was not reported\n", s->file,
				    level_name(s->lines[k].level), s->lines[k].text);
			bad++;
		}
	}
	diag_fini(&d);
	if (bad > 0)
		fail_msg("%s: %d mismatch(es) with the expected outcome", s->file, bad);
}

/* Every known service declared at once links cleanly: the declarations the samples get
 * are valid on their own. */
static void test_services_file(void **state)
{
	uint32_t ports[1];
	struct diag d;
	size_t i;
	int idx = 0;
	FILE *f;

	(void)state;
	f = fopen("services.yaml", "w");
	assert_non_null(f);
	for (i = 0; i < sizeof(k8s_services) / sizeof(k8s_services[0]); i++) {
		char host[128];

		snprintf(host, sizeof(host), "%s.default" K8S_SUFFIX, k8s_services[i].name);
		ports[0] = k8s_services[i].port;
		write_se(f, idx++, "default", host, k8s_services[i].name, ports, 1,
			 k8s_services[i].protocol);
	}
	for (i = 0; i < sizeof(external_services) / sizeof(external_services[0]); i++) {
		ports[0] = external_services[i].port;
		write_se(f, idx++, "default", external_services[i].name, "external", ports, 1,
			 external_services[i].protocol);
	}
	assert_int_equal(fclose(f), 0);
	f = fopen("main.yaml", "w");
	assert_non_null(f);
	fputs("resources: [services.yaml]\n", f);
	assert_int_equal(fclose(f), 0);
	diag_init(&d);
	run_check(&d);
	/* Only the appliance-level warning: no Gateway, so no listener. */
	if (d.n != 1 || d.nerrors != 0 || strstr(d.v[0].text, NO_LISTENER) == NULL) {
		for (i = 0; i < d.n; i++)
			print_error("%s\n", d.v[i].text);
		fail_msg("services.yaml alone does not link cleanly");
	}
	diag_fini(&d);
}

static void test_table_covers_corpus(void **state)
{
	struct dirent *e;
	int missing = 0;
	size_t i, seen = 0;
	DIR *dp;

	(void)state;
	dp = opendir(samples_dir);
	assert_non_null(dp);
	while ((e = readdir(dp)) != NULL) {
		size_t len = strlen(e->d_name);
		bool found = false;

		if (len <= 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		seen++;
		for (i = 0; i < NSAMPLES && !found; i++)
			found = strcmp(samples[i].file, e->d_name) == 0;
		if (!found) {
			print_error("%s: no expected outcome in test_istio_samples.c\n", e->d_name);
			missing++;
		}
	}
	closedir(dp);
	assert_int_equal(missing, 0);
	/* And every table entry names a file that exists (each once). */
	assert_int_equal(seen, NSAMPLES);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	const char *env = getenv("MG_ISTIO_SAMPLES");
	struct CMUnitTest *tests;
	size_t i, n = 0;
	struct stat st;
	int rc;

	if (env == NULL || *env == '\0')
		env = "../shared/istio-samples";
	if (stat(env, &st) != 0 || !S_ISDIR(st.st_mode) || realpath(env, samples_dir) == NULL) {
		fprintf(stderr, "test_istio_samples: %s not found, skipping\n", env);
		return 77;
	}
	dump = getenv("MG_SAMPLES_DUMP") != NULL && *getenv("MG_SAMPLES_DUMP") != '\0';
	snprintf(scratch_dir, sizeof(scratch_dir), "%s/mg-test-samples-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(scratch_dir) == NULL || chdir(scratch_dir) != 0) {
		perror("test_istio_samples: scratch directory");
		return 1;
	}

	tests = calloc(NSAMPLES + 2, sizeof(*tests));
	if (tests == NULL)
		abort();
	tests[n].name = "services file";
	tests[n++].test_func = test_services_file;
	tests[n].name = "table covers the corpus";
	tests[n++].test_func = test_table_covers_corpus;
	for (i = 0; i < NSAMPLES; i++) {
		tests[n].name = samples[i].file;
		tests[n].test_func = test_sample;
		tests[n++].initial_state = (void *)&samples[i];
	}
	rc = _cmocka_run_group_tests("istio-samples", tests, n, NULL, NULL);
	if (chdir("/") != 0 || nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "test_istio_samples: could not remove %s\n", scratch_dir);
	free(tests);
	return rc;
}
