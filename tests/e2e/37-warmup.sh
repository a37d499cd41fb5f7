#!/usr/bin/env bash
# 37-warmup: DestinationRule loadBalancer.warmupDurationSecs (slow start)
# through the real binary: an endpoint added by a reload starts with a small
# share of the traffic and reaches its full share after the window; the
# endpoints present at startup are not in slow start.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream old --quiet
mg_upstream new --quiet

mg_start_config <<EOF
workers: 1
EOF

write_config() { # write_config PORT...
	local p eps=""
	for p in "$@"; do eps+="  - address: 127.0.0.1"$'\n'"    ports: {http: $p}"$'\n'; done
	mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
$eps
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 6s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: svc.example}}]
EOF
}

# share N NAME: how many of N requests NAME answered
share() {
	local i urls=()
	for i in $(seq 1 "$1"); do urls+=(-D - -o /dev/null "$(mg_url "/echo?i=$i")"); done
	curl -s "${urls[@]}" | tr -d '\r' | awk -F': ' -v n="$2" 'tolower($1) == "x-upstream" && $2 == n { c++ } END { print c + 0 }'
}

write_config "$UP_OLD_PORT" "$UP_NEW_PORT"
mg_start
assert_cmp "$(share 40 new)" -ge 14 "endpoints present at startup share at once"

mg_upstream_stop new
mg_upstream new2 --quiet
write_config "$UP_OLD_PORT" "$UP_NEW2_PORT"
assert_reload applied
n=$(share 40 new2)
assert_cmp "$n" -le 14 "a new endpoint starts with a small share ($n of 40; 20 without slow start)"
sleep 6.5
n=$(share 100 new2)
assert_cmp "$n" -ge 35 "after the window it has its full share ($n of 100)"
assert_cmp "$n" -le 65 "after the window it has its full share ($n of 100)"

assert_alive
mg_finish
