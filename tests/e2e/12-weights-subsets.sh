#!/usr/bin/env bash
# 12-weights-subsets: weighted destinations split traffic in proportion
# (80/20 over 400 requests, 3/1 relative weights, 0/100), DestinationRule
# subsets select ServiceEntry endpoints by labels, and the load balancer
# spreads a subset's requests over all its endpoints.
#
# Tolerances: 400 draws at p = 0.8 have a standard deviation of 8 requests;
# +-40 (10 points) is five of them, a false failure about once in 1.7 million.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream v1a
mg_upstream v2a
mg_upstream v2b
mg_upstream canary

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc
spec:
  hosts: [svc.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_V1A_PORT}
    labels: {version: v1}
  - address: 127.0.0.1
    ports: {http: $UP_V2A_PORT}
    labels: {version: v2, track: stable}
  - address: 127.0.0.1
    ports: {http: $UP_V2B_PORT}
    labels: {version: v2, track: stable}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: canary
spec:
  hosts: [canary.internal]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: web, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {web: $UP_CANARY_PORT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
spec:
  host: svc
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: stable-v2
    labels: {version: v2, track: stable}
  - name: random
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: split-80-20
    match: [{uri: {prefix: /split/}}]
    route:
    - destination: {host: svc, subset: v1}
      weight: 80
    - destination: {host: canary.internal, port: {number: 8080}}
      weight: 20
  - name: relative
    match: [{uri: {prefix: /relative/}}]
    route:
    - destination: {host: svc, subset: v1}
      weight: 3
    - destination: {host: canary.internal}
      weight: 1
  - name: zero
    match: [{uri: {prefix: /zero/}}]
    route:
    - destination: {host: svc, subset: v1}
      weight: 0
    - destination: {host: canary.internal}
      weight: 100
  - name: v2
    match: [{uri: {prefix: /v2/}}]
    route:
    - destination: {host: svc, subset: v2}
  - name: stable
    match: [{uri: {prefix: /stable/}}]
    route:
    - destination: {host: svc.default.svc.cluster.local, subset: stable-v2}
  - name: random
    match: [{uri: {prefix: /random/}}]
    route:
    - destination: {host: svc, subset: random}
  - name: whole
    match: [{uri: {prefix: /whole/}}]
    route:
    - destination: {host: svc}
EOF

assert_valid
mg_start

# burst PATH N: N GETs of PATH/1..N, spread over 4 client connections (so
# both workers take part); prints how many did not answer 200.
burst() {
	local path=$1 n=$2 i out
	out="$MG_DIR/burst.codes"
	: >"$out"
	for i in 0 1 2 3; do
		curl -s --max-time 60 -o /dev/null -w '%{http_code}\n' \
			"http://127.0.0.1:$MG_PORT$path/[$((i * n / 4 + 1))-$(((i + 1) * n / 4))]" >>"$out" &
	done
	wait
	grep -vc '^200$' "$out"
}

# between N LO HI DESC
between() {
	if [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; then
		mg_ok "$4: $1 in [$2, $3]"
	else
		mg_fail "$4: $1 not in [$2, $3]"
	fi
}

# --- 80/20 over 400 requests ----------------------------------------------------------
assert_eq "$(burst /split 400)" 0 "400 split requests all 200"
v1=$(mg_upstream_count v1a '^/split/')
can=$(mg_upstream_count canary '^/split/')
assert_eq "$((v1 + can))" 400 "every split request reached v1 or canary"
between "$v1" 280 360 "80% weight to subset v1"
between "$can" 40 120 "20% weight to canary"
assert_eq "$(mg_upstream_count v2a '^/split/')$(mg_upstream_count v2b '^/split/')" 00 \
	"subset v1 never reaches v2 endpoints"

# --- relative weights 3:1 (do not sum to 100) --------------------------------------------
assert_eq "$(burst /relative 400)" 0 "400 relative requests all 200"
v1=$(mg_upstream_count v1a '^/relative/')
between "$v1" 260 340 "weight 3 of 4 (75%)"

# --- weight 0 never chosen --------------------------------------------------------------------
assert_eq "$(burst /zero 100)" 0 "100 zero-weight requests all 200"
assert_eq "$(mg_upstream_count canary '^/zero/')" 100 "weight 100 takes everything"
assert_eq "$(mg_upstream_count v1a '^/zero/')" 0 "weight 0 takes nothing"

# --- subsets by labels, ROUND_ROBIN over the subset's endpoints ------------------------------
assert_eq "$(burst /v2 100)" 0 "100 subset v2 requests all 200"
a=$(mg_upstream_count v2a '^/v2/')
b=$(mg_upstream_count v2b '^/v2/')
assert_eq "$((a + b))" 100 "subset v2 requests reach only v2 endpoints"
assert_eq "$(mg_upstream_count v1a '^/v2/')" 0 "subset v2 never reaches v1"
# Round robin per worker: every worker alternates, so the split is near even
# however the kernel spread the four connections.
between "$a" 40 60 "ROUND_ROBIN: v2a's share of 100"

# two labels must both match
assert_eq "$(burst /stable 40)" 0 "40 stable-v2 requests all 200"
assert_eq "$(($(mg_upstream_count v2a '^/stable/') + $(mg_upstream_count v2b '^/stable/')))" 40 \
	"subset with two labels selects the endpoints carrying both"

# a subset's own trafficPolicy (RANDOM) still stays in the subset and uses both
assert_eq "$(burst /random 100)" 0 "100 RANDOM requests all 200"
a=$(mg_upstream_count v2a '^/random/')
b=$(mg_upstream_count v2b '^/random/')
assert_eq "$((a + b))" 100 "RANDOM stays within the subset"
between "$a" 15 85 "RANDOM uses both endpoints"

# --- no subset: every endpoint of the host (default LB of the DR: ROUND_ROBIN) -------------
assert_eq "$(burst /whole 90)" 0 "90 whole-service requests all 200"
for u in v1a v2a v2b; do
	between "$(mg_upstream_count "$u" '^/whole/')" 20 40 "no subset: $u gets about a third"
done

# --- the chosen upstream is logged: cluster names carry the subset ----------------------------
assert_log_contains 'outbound\|80\|v1\|svc\.default\.svc\.cluster\.local' "$MG_ACCESS_LOG"
assert_log_contains 'outbound\|8080\|\|canary\.internal' "$MG_ACCESS_LOG"
out=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/clusters")
assert_contains "$out" "outbound|80|v2|svc.default.svc.cluster.local::127.0.0.1:$UP_V2B_PORT" \
	"/clusters lists the subset's endpoints"

assert_alive
mg_finish
