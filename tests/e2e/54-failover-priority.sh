#!/usr/bin/env bash
# 54-failover-priority: DestinationRule localityLbSetting.failoverPriority
# through the real binary. The appliance's own labels (main config `labels`)
# are net=n1, rack=a. Endpoints sharing both labels get the traffic; when they
# fail (outlier detection ejects them), those sharing the first label take
# over, then the rest. A "key=value" entry prefers the endpoints with that
# value whatever the appliance's labels say. No locality is needed.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
for u in both net none; do mg_upstream "$u" --quiet; done

mg_start_config <<EOF
workers: 1
labels: {net: n1, rack: a}
EOF

ep() { mg_yaml_endpoint "$1" labels "$2"; }

svc() { # svc NAME FAILOVER-PRIORITY-FLOW-SEQ
	cat <<EOF
$(mg_yaml_service_head "$1" "[$1.example]")
$(ep "$UP_NONE_PORT" "{net: n2, rack: a}")
$(ep "$UP_NET_PORT" "{net: n1, rack: b}")
$(ep "$UP_BOTH_PORT" "{net: n1, rack: a}")
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1}
spec:
  host: $1.example
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        failoverPriority: $2
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1m, maxEjectionPercent: 100}
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(svc labels "[net, rack]")
$(svc value "[rack=b]")
$(mg_yaml_routes)
  - match: [{uri: {prefix: /value/}}]
    rewrite: {uri: /}
    route: [{destination: {host: value.example}}]
  - route: [{destination: {host: labels.example}}]
EOF

mg_start

assert_eq "$(mg_owners 10 /value/echo)" net=10 "key=value: the endpoints with that value first"
assert_eq "$(mg_owners 10 /echo)" both=10 "the endpoint sharing every listed label gets the traffic"
mg_upstream_stop both
assert_eq "$(mg_owners 10 /echo)" net=10 "it fails: the one sharing the first label takes over"
mg_upstream_stop net
assert_eq "$(mg_owners 10 /echo)" none=10 "then the rest"
assert_eq "$(mg_owners 10 /value/echo)" none=10 "key=value: the others when those fail"

assert_alive
mg_finish
