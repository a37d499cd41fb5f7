#!/usr/bin/env bash
# 37-warmup: DestinationRule loadBalancer.warmupDurationSecs (slow start)
# through the real binary: an endpoint added by a reload starts with a small
# share of the traffic (the ramp to its full share is test_upstream's); the
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
	for p in "$@"; do eps+=$(mg_yaml_endpoint "$p")$'\n'; done
	mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service_head svc "[svc.example]")
$eps
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 60s}
$(mg_yaml_routes)
  - route: [{destination: {host: svc.example}}]
EOF
}

write_config "$UP_OLD_PORT" "$UP_NEW_PORT"
mg_start
assert_cmp "$(mg_share new "$(mg_owners 40 /echo)")" -ge 14 "endpoints present at startup share at once"

mg_upstream_stop new
mg_upstream new2 --quiet
write_config "$UP_OLD_PORT" "$UP_NEW2_PORT"
assert_reload applied
n=$(mg_share new2 "$(mg_owners 40 /echo)")
# a minute's window: even a slow test run stays in its first sixth (the formula, up to the
# full weight, is test_upstream's)
assert_cmp "$n" -le 12 "a new endpoint starts with a small share ($n of 40; 20 without slow start)"
assert_cmp "$n" -ge 1 "... but it does get some"

assert_alive
mg_finish
