#!/usr/bin/env bash
# 26-circuit-breaking: DestinationRule connectionPool through the real binary,
# as in Istio's circuit-breaking task: maxConnections with
# http1MaxPendingRequests queues a bounded number of requests and answers the
# rest 503 UO at once; waiting requests get the next free connection;
# http2MaxRequests caps requests in flight; maxRequestsPerConnection: 1 turns
# keep-alive off; maxRetries caps concurrent retries.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 1
EOF

se() { # se NAME: a ServiceEntry for host NAME on upstream a
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: $1
spec:
  hosts: [$1.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_A_PORT}
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(se breaker)
$(se queue)
$(se inflight)
$(se oneshot)
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: breaker
spec:
  host: breaker
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: queue
spec:
  host: queue
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 10}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: inflight
spec:
  host: inflight
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: oneshot
spec:
  host: oneshot
  trafficPolicy:
    connectionPool:
      http: {maxRequestsPerConnection: 1, idleTimeout: 30s}
      tcp: {tcpKeepalive: {time: 60s, interval: 10s, probes: 3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /breaker/}}]
    rewrite: {uri: /}
    route: [{destination: {host: breaker}}]
  - match: [{uri: {prefix: /queue/}}]
    rewrite: {uri: /}
    route: [{destination: {host: queue}}]
  - match: [{uri: {prefix: /inflight/}}]
    rewrite: {uri: /}
    route: [{destination: {host: inflight}}]
  - match: [{uri: {prefix: /oneshot/}}]
    rewrite: {uri: /}
    route: [{destination: {host: oneshot}}]
EOF

mg_start

# burst N PATH: N concurrent requests; prints the status codes, one per line
burst() {
	local i
	for i in $(seq 1 "$1"); do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 "$(mg_url "$2?i=$i")" &
	done
	wait
}

# --- maxConnections 1 + http1MaxPendingRequests 1 (Istio's task) -----------------------------
codes=$(burst 10 /breaker/delay/600)
ok=$(grep -c '^200$' <<<"$codes")
uo=$(grep -c '^503$' <<<"$codes")
assert_eq "$((ok + uo))" 10 "every request answered 200 or 503 ($(paste -sd' ' <<<"$codes"))"
assert_cmp "$ok" -ge 1 "some requests pass the breaker ($ok)"
assert_cmp "$ok" -le 3 "one connection and one pending slot let about two through ($ok)"
assert_cmp "$uo" -ge 7 "the overflow is answered 503 ($uo)"
assert_log_contains '"GET /breaker/delay/600\?i=[0-9]+ HTTP/1.1" 503 UO ' "$MG_ACCESS_LOG"
# after the burst, single requests pass again
assert_status GET /breaker/echo 200

# --- waiting requests get the next free connection ------------------------------------------
before=$(mg_upstream_count a)
codes=$(burst 4 /queue/delay/300)
assert_eq "$(grep -c '^200$' <<<"$codes")" 4 "all queued requests are served ($(paste -sd' ' <<<"$codes"))"
assert_eq "$(($(mg_upstream_count a) - before))" 4 "the upstream saw the four requests"
n=$(awk '$5 ~ /delay\/300/ { print $2 }' "$MG_STATS" | sort -u | wc -l)
assert_eq "$n" 1 "maxConnections 1: the four requests shared one connection ($n)"

# --- http2MaxRequests: requests in flight -----------------------------------------------------
codes=$(burst 6 /inflight/delay/600)
assert_eq "$(grep -c '^200$' <<<"$codes")" 2 "two requests in flight at most ($(paste -sd' ' <<<"$codes"))"
assert_eq "$(grep -c '^503$' <<<"$codes")" 4 "the others are refused at once"

# --- maxRequestsPerConnection: 1 ---------------------------------------------------------------
assert_status GET /oneshot/echo 200
c1=$(mg_header x-upstream-conn)
assert_status GET /oneshot/echo 200
c2=$(mg_header x-upstream-conn)
assert_ne "$c1" "$c2" "maxRequestsPerConnection 1: a new upstream connection per request"

assert_cmp "$(mg_metric upstream_rq_overflow)" -ge 11 "meshgate_upstream_rq_overflow counts the 503 UO"

assert_alive
mg_finish
