#!/usr/bin/env bash
# 27-outlier-detection: DestinationRule outlierDetection through the real
# binary: an endpoint answering 5xx is ejected after consecutive5xxErrors,
# gets no traffic for baseEjectionTime, comes back, and is ejected for twice as
# long the second time; refused connects count as 5xx; with every endpoint ejected
# the answer is 503 UH, unless minHealthPercent puts the cluster in panic mode.
# /clusters shows the state.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream good
mg_upstream bad --fail-status 500
dead=$(mg_port)

mg_start_config <<EOF
workers: 2
EOF

se() { # se NAME PORT...: a ServiceEntry with one endpoint per port
	local name=$1 p
	shift
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: $name
spec:
  hosts: [$name.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
EOF
	for p in "$@"; do
		printf '  - address: 127.0.0.1\n    ports: {http: %s}\n' "$p"
	done
}

dr() { # dr NAME OUTLIER-FLOW-MAP
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: $1
spec:
  host: $1
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: $2
EOF
}

route() { # route NAME: /NAME/... -> host NAME, no retries (each failure is seen)
	cat <<EOF
  - match: [{uri: {prefix: /$1/}}]
    rewrite: {uri: /}
    retries: {attempts: 0}
    route: [{destination: {host: $1}}]
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(se mixed "$UP_GOOD_PORT" "$UP_BAD_PORT")
$(dr mixed "{consecutive5xxErrors: 3, interval: 30s, baseEjectionTime: 5s, maxEjectionPercent: 100}")
$(se refused "$UP_GOOD_PORT" "$dead")
$(dr refused "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}")
$(se lonely "$UP_BAD_PORT")
$(dr lonely "{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}")
$(se panic "$UP_BAD_PORT")
$(dr panic "{consecutive5xxErrors: 1, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 50}")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
$(route mixed)
$(route refused)
$(route lonely)
$(route panic)
EOF

mg_start

bad_ep="127.0.0.1:$UP_BAD_PORT"

# --- an endpoint answering 500 is ejected after 3 in a row -----------------------------------
codes=$(mg_statuses 20 /mixed/echo)
assert_eq "$(grep -c '^500$' <<<"$codes")" 3 "three 500s, then the failing endpoint is ejected ($(paste -sd' ' <<<"$codes"))"
assert_eq "$(tail -n 10 <<<"$codes" | sort -u)" 200 "while ejected, every request goes to the healthy endpoint"
assert_match "$(mg_clusters)" "mixed.*::$bad_ep::health_flags::/failed_outlier_check" \
	"/clusters shows the ejection"
assert_match "$(mg_clusters)" "mixed.*::outlier::ejected::1::ejections_total::1" "/clusters counts it"
assert_log_contains "outlier detection: $bad_ep ejected from outbound\|80\|\|mixed" "$MG_LOG"

# --- it comes back after baseEjectionTime, and the next ejection lasts longer ----------------
sleep 5.3
codes=$(mg_statuses 12 /mixed/echo)
assert_eq "$(grep -c '^500$' <<<"$codes")" 3 "back after 5s: it gets traffic again until ejected again ($(paste -sd' ' <<<"$codes"))"
assert_match "$(mg_clusters)" "mixed.*::$bad_ep::consecutive_5xx::0::consecutive_gateway::0::consecutive_local::0::ejections::2" \
	"second ejection counted"
assert_log_contains "$bad_ep ejected from outbound\|80\|\|mixed.default.svc.cluster.local for 10000 ms \(consecutive 5xx, ejection 2\)" "$MG_LOG"
codes=$(mg_statuses 6 /mixed/echo)
assert_eq "$(grep -c '^500$' <<<"$codes")" 0 "ejected again: no traffic ($(paste -sd' ' <<<"$codes"))"

# --- refused connects count as 5xx -------------------------------------------------------------
codes=$(mg_statuses 10 /refused/echo)
assert_eq "$(grep -c '^503$' <<<"$codes")" 2 "two refused connects, then the dead endpoint is ejected ($(paste -sd' ' <<<"$codes"))"

# --- every endpoint ejected: 503 UH; minHealthPercent: panic mode ------------------------------
codes=$(mg_statuses 3 /lonely/echo)
assert_eq "$(paste -sd' ' <<<"$codes")" "500 503 503" "the only endpoint ejected: no healthy upstream"
assert_log_contains '"GET /lonely/echo\?i=2 HTTP/1.1" 503 UH ' "$MG_ACCESS_LOG"
codes=$(mg_statuses 3 /panic/echo)
assert_eq "$(paste -sd' ' <<<"$codes")" "500 500 500" "below minHealthPercent the ejection is ignored"

assert_alive
mg_finish
