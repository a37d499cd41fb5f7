#!/usr/bin/env bash
# 25-retries: VirtualService retries through the real binary: Istio's default
# policy (no retries block: 2 retries on connect-failure and 503), explicit
# attempts/retryOn (5xx, gateway-error, retriable-4xx, reset, plain codes),
# retries exhausted (URX), a retry after a refused connect goes to the other
# endpoint, perTryTimeout, the route timeout bounding all tries, request
# bodies replayed (and not above the replay bound), attempts: 0.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
dead=$(mg_port) # nothing listens there: connects are refused

mg_start_config <<EOF
workers: 1
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: half
spec:
  hosts: [half.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $dead}
  - address: 127.0.0.1
    ports: {http: $UP_A_PORT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: half
spec:
  host: half
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: dead
spec:
  hosts: [dead.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $dead}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: five
    match: [{uri: {prefix: /five/}}]
    rewrite: {uri: /}
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: a}}]
  - name: gw-err
    match: [{uri: {prefix: /gwerr/}}]
    rewrite: {uri: /}
    retries: {attempts: 2, retryOn: gateway-error}
    route: [{destination: {host: a}}]
  - name: codes
    match: [{uri: {prefix: /codes/}}]
    rewrite: {uri: /}
    retries: {attempts: 2, retryOn: "retriable-4xx,418"}
    route: [{destination: {host: a}}]
  - name: reset
    match: [{uri: {prefix: /reset/}}]
    rewrite: {uri: /}
    retries: {attempts: 1, retryOn: reset}
    route: [{destination: {host: a}}]
  - name: per-try
    match: [{uri: {prefix: /pertry/}}]
    rewrite: {uri: /}
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: "5xx"}
    route: [{destination: {host: a}}]
  - name: bounded
    match: [{uri: {prefix: /bounded/}}]
    rewrite: {uri: /}
    timeout: 1s
    retries: {attempts: 5, perTryTimeout: 600ms, retryOn: "5xx"}
    route: [{destination: {host: a}}]
  - name: none
    match: [{uri: {prefix: /none/}}]
    rewrite: {uri: /}
    retries: {attempts: 0}
    route: [{destination: {host: a}}]
  - name: half
    match: [{uri: {prefix: /half/}}]
    rewrite: {uri: /}
    route: [{destination: {host: half}}]
  - name: dead
    match: [{uri: {prefix: /dead/}}]
    rewrite: {uri: /}
    route: [{destination: {host: dead}}]
  - name: default
    route: [{destination: {host: a}}]
EOF

mg_start

# count KEY: requests the upstream saw whose target carries key=KEY
count() { mg_upstream_count a "key=$1\$"; }

# --- Istio's default policy ---------------------------------------------------------------
assert_status GET "/flaky/1/status/503?key=d1" 200
assert_eq "$(count d1)" 2 "default policy: a 503 is retried once, the retry answers"
assert_status GET "/flaky/5/status/503?key=d2" 503
assert_eq "$(count d2)" 3 "default policy: 2 retries, then the 503 goes to the client"
assert_log_contains '"GET /flaky/5/status/503\?key=d2 HTTP/1.1" 503 URX ' "$MG_ACCESS_LOG"
assert_status GET "/flaky/1/status/500?key=d3" 500
assert_eq "$(count d3)" 1 "default policy: a 500 is not retried"

# --- explicit policies ----------------------------------------------------------------------
assert_status GET "/five/flaky/2/status/500?key=f1" 200
assert_eq "$(count f1)" 3 "5xx: two failures retried, the third try answers"
assert_status GET "/five/flaky/9/status/502?key=f2" 502
assert_eq "$(count f2)" 4 "5xx with attempts 3: four tries in all"
assert_log_contains '"GET /five/flaky/9/status/502\?key=f2 HTTP/1.1" 502 URX ' "$MG_ACCESS_LOG"
assert_status GET "/gwerr/flaky/1/status/504?key=g1" 200
assert_eq "$(count g1)" 2 "gateway-error retries a 504"
assert_status GET "/gwerr/flaky/1/status/500?key=g2" 500
assert_eq "$(count g2)" 1 "gateway-error does not retry a 500"
assert_status GET "/codes/flaky/1/status/409?key=c1" 200
assert_eq "$(count c1)" 2 "retriable-4xx retries a 409"
assert_status GET "/codes/flaky/1/status/418?key=c2" 200
assert_eq "$(count c2)" 2 "a plain code in retryOn is retriable"
assert_status GET "/codes/flaky/1/status/503?key=c3" 503
assert_eq "$(count c3)" 1 "retryOn replaces the default conditions (503 not listed)"
assert_status GET "/reset/flaky/1/reset?key=r1" 200
assert_eq "$(count r1)" 2 "reset: a connection reset before the response is retried"
assert_status GET "/none/flaky/1/status/503?key=n1" 503
assert_eq "$(count n1)" 1 "attempts: 0 disables retries"

# --- refused connects ---------------------------------------------------------------------
ok=0
for i in $(seq 1 10); do
	assert_status GET "/half/echo?i=$i" 200 >/dev/null
	[ "$MG_STATUS" = 200 ] && [ "$(mg_header x-upstream)" = a ] && ok=$((ok + 1))
done
assert_eq "$ok" 10 "a refused connect is retried on the other endpoint (default policy)"
t0=$(mg__now_ms)
assert_status GET /dead/echo 503
el=$(($(mg__now_ms) - t0))
assert_log_contains '"GET /dead/echo HTTP/1.1" 503 UF,URX ' "$MG_ACCESS_LOG"
assert_cmp "$el" -lt 3000 "retries of a refused connect back off briefly ($el ms)"

# --- perTryTimeout and the route timeout ----------------------------------------------------
t0=$(mg__now_ms)
assert_status GET "/pertry/flaky/1/delay/3000?key=p1" 200
el=$(($(mg__now_ms) - t0))
assert_eq "$(count p1)" 2 "perTryTimeout: the slow try is abandoned, the retry answers"
assert_cmp "$el" -lt 2500 "the retry answered before the slow try would have ($el ms)"
assert_status GET "/pertry/delay/3000?key=p2" 504
assert_eq "$(count p2)" 3 "perTryTimeout on every try: three tries"
assert_log_contains '"GET /pertry/delay/3000\?key=p2 HTTP/1.1" 504 UT,URX ' "$MG_ACCESS_LOG"
t0=$(mg__now_ms)
assert_status GET "/bounded/delay/3000?key=b1" 504
el=$(($(mg__now_ms) - t0))
assert_cmp "$el" -lt 2000 "the route timeout bounds all tries together ($el ms)"
assert_cmp "$(count b1)" -le 2 "no try starts after the route timeout"

# --- request bodies ------------------------------------------------------------------------
mg_make_file "$MG_DIR/small" 10K 3
mg_make_file "$MG_DIR/big" 200K 4
assert_status POST "/five/flaky/1/status/503?key=s1" 200 --data-binary "@$MG_DIR/small" \
	-H 'content-type: application/octet-stream'
assert_eq "$(mg_json body_sha256)" "$(mg_sha256 "$MG_DIR/small")" "the retry carries the whole body"
assert_eq "$(count s1)" 2 "a request with a small body is retried"
assert_status POST "/five/flaky/1/status/503?key=s2" 200 --data-binary "@$MG_DIR/small" \
	-H 'transfer-encoding: chunked'
assert_eq "$(mg_json body_sha256)" "$(mg_sha256 "$MG_DIR/small")" "a chunked body is replayed too"
assert_status POST "/five/flaky/1/status/503?key=s3" 503 --data-binary "@$MG_DIR/big" \
	-H 'content-type: application/octet-stream'
assert_eq "$(count s3)" 1 "a body above the replay bound is not retried"

assert_cmp "$(mg_metric upstream_rq_retry)" -ge 10 "meshgate_upstream_rq_retry counts the retries"
assert_cmp "$(mg_metric upstream_rq_retry_limit_exceeded)" -ge 3 "exhausted retries are counted"

assert_alive
mg_finish
