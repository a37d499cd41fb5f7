#!/usr/bin/env bash
# 36-locality: locality load balancing through the real binary, as in Istio's
# "locality failover" and "locality weighted distribution" tasks: the
# appliance runs in region1/zone1; traffic stays in its zone, fails over to
# the same region and then to the failover region as endpoints fail (outlier
# detection ejects them), and distribute splits traffic by percentages.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
for u in z1 z2 r2 r3 sz1 sr2 sr3; do mg_upstream "$u" --quiet; done

mg_start_config <<EOF
workers: 1
locality: region1/zone1/sub1
EOF

ep() { mg_yaml_endpoint "$1" locality "$2"; }

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service_head helloworld "[helloworld.example]")
$(ep "$UP_Z1_PORT" region1/zone1/sub1)
$(ep "$UP_Z2_PORT" region1/zone2/sub1)
$(ep "$UP_R2_PORT" region2/zone1/sub1)
$(ep "$UP_R3_PORT" region3/zone1/sub1)
$(mg_yaml_service_head split "[split.example]")
$(ep "$UP_SZ1_PORT" region1/zone1/sub1)
$(ep "$UP_SR2_PORT" region2/zone1/sub1)
$(ep "$UP_SR3_PORT" region3/zone1/sub1)
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld}
spec:
  host: helloworld.example
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover: [{from: region1, to: region3}]
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 1m
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: split}
spec:
  host: split.example
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: region1/zone1/*
          to: {"region1/zone1/*": 70, "region2/*": 30}
$(mg_yaml_routes)
  - match: [{uri: {prefix: /split/}}]
    rewrite: {uri: /}
    route: [{destination: {host: split.example}}]
  - route: [{destination: {host: helloworld.example}}]
EOF

mg_start

assert_eq "$(mg_owners 10 /hello)" "z1=10" "traffic stays in the appliance's zone"
mg_upstream_stop z1
assert_eq "$(mg_owners 10 /hello)" "z2=10" "zone down: the same region's other zone takes over"
mg_upstream_stop z2
assert_eq "$(mg_owners 10 /hello)" "r3=10" "region down: the failover region (region3), not region2"
mg_upstream_stop r3
assert_eq "$(mg_owners 10 /hello)" "r2=10" "failover region down: any other region"

# --- distribute ---------------------------------------------------------------------------
out=$(mg_owners 200 /split/x)
sr2=$(mg_share sr2 "$out")
assert_cmp "$sr2" -ge 35 "distribute: region2 gets about 30% ($out)"
assert_cmp "$sr2" -le 85 "distribute: region2 gets about 30% ($out)"
assert_contains "$out" "sz1=" "distribute: the appliance's zone gets the rest"
assert_not_contains "$out" "sr3=" "distribute: a locality without a share gets nothing"

assert_alive
mg_finish
