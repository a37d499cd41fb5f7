#!/usr/bin/env bash
# 53-retry-remote-localities: VirtualService retries.retryRemoteLocalities with
# locality load balancing. The appliance runs in region1/zone1; the endpoint in
# its zone answers 503. With retryRemoteLocalities a retry leaves the locality
# ranks already tried (Envoy's previous_priorities, which Istio sets): the next
# zone of the region answers, and with a second retry the next region. Without
# it every retry goes where the balancer sends the traffic: the local zone.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream zone1bad --quiet --fail-status 503
mg_upstream zone2bad --quiet --fail-status 503
mg_upstream zone2 --quiet
mg_upstream region2 --quiet

mg_start_config <<EOF
workers: 1
locality: region1/zone1/sub1
EOF

ep() { mg_yaml_endpoint "$1" locality "$2"; }

svc() { # svc NAME ZONE2-PORT: endpoints in zone1 (failing), zone2 and region2, locality LB
	cat <<EOF
$(mg_yaml_service_head "$1" "[$1.example]")
$(ep "$UP_ZONE1BAD_PORT" region1/zone1/sub1)
$(ep "$2" region1/zone2/sub1)
$(ep "$UP_REGION2_PORT" region2/zone1/sub1)
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1}
spec:
  host: $1.example
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting: {enabled: true}
    # locality failover needs outlier detection (as in Istio); it never ejects here
    outlierDetection: {consecutive5xxErrors: 1000, interval: 1m, baseEjectionTime: 1m}
EOF
}

route() { # route PREFIX HOST RETRIES-FLOW-MAP
	cat <<EOF
  - match: [{uri: {prefix: /$1/}}]
    rewrite: {uri: /}
    retries: $3
    route: [{destination: {host: $2.example}}]
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(svc hop "$UP_ZONE2_PORT")
$(svc far "$UP_ZONE2BAD_PORT")
$(mg_yaml_routes)
$(route hop-remote hop "{attempts: 1, retryOn: 5xx, retryRemoteLocalities: true}")
$(route hop-local hop "{attempts: 1, retryOn: 5xx}")
$(route far-remote far "{attempts: 2, retryOn: 5xx, retryRemoteLocalities: true}")
$(route far-local far "{attempts: 2, retryOn: 5xx, retryRemoteLocalities: false}")
EOF

mg_start

# --- one retry: the next zone of the region ---------------------------------------------------
assert_status GET /hop-remote/echo 200
assert_header x-upstream zone2 "retryRemoteLocalities: the retry goes to the region's other zone"
assert_eq "$(mg_owners 10 /hop-remote/echo)" zone2=10 "every time"
assert_eq "$(mg_upstream_count zone1bad)" 11 "each request tried the local zone first"
assert_eq "$(mg_upstream_count region2)" 0 "the other region was not needed"

# --- without it the retry stays in the local zone ---------------------------------------------
assert_status GET /hop-local/echo 503
assert_eq "$(mg_upstream_count zone1bad)" 13 "without retryRemoteLocalities both tries stay local"
assert_eq "$(mg_upstream_count zone2)" 11 "the other zone got nothing more"
assert_log_contains '"GET /hop-local/echo HTTP/1.1" 503 URX ' "$MG_ACCESS_LOG"

# --- two retries: zone, then region -----------------------------------------------------------
assert_status GET /far-remote/echo 200
assert_header x-upstream region2 "the second retry leaves the region too"
assert_eq "$(mg_upstream_count zone2bad)" 1 "the region's other zone was tried once"
assert_status GET /far-local/echo 503
assert_eq "$(mg_upstream_count zone1bad)" 17 "retryRemoteLocalities false: all three tries local"
assert_eq "$(mg_upstream_count zone2bad)" 1 "... none in the other zone"
assert_eq "$(mg_upstream_count region2)" 1 "... nor in the other region"

assert_alive
mg_finish
