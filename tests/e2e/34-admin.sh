#!/usr/bin/env bash
# 34-admin: the admin endpoint. /ready names the live generation and follows
# reloads; /metrics (and /stats/prometheus) is valid Prometheus text whose
# counters, summed over the workers, move by exactly what the test did;
# /clusters lists every endpoint of every routed cluster (subsets, weights) and
# follows reloads; /listeners; unknown paths 404; admin.address "" disables it.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_upstream b
DOWN_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
EOF

resources() { # resources B-WEIGHT
	cat <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc
spec:
  hosts: [svc.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_A_PORT}
    labels: {version: v1}
  - address: 127.0.0.1
    ports: {http: $UP_B_PORT}
    labels: {version: v2}
    weight: $1
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: down
spec:
  hosts: [down.internal]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $DOWN_PORT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
spec:
  host: svc
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 200, body: {string: "d"}}
  - match: [{uri: {prefix: /down}}]
    route: [{destination: {host: down.internal}}]
  - match: [{uri: {prefix: /echo}, statPrefix: echo-v1}]
    route: [{destination: {host: svc, subset: v1}}]
  - match: [{uri: {prefix: /whole}}]
    route: [{destination: {host: svc}}]
EOF
}
resources 3 | mg_resource all
mg_start
ADMIN="http://127.0.0.1:$MG_ADMIN_PORT"

# --- /ready ---------------------------------------------------------------------------------
assert_status GET "$ADMIN/ready" 200
assert_match "$(cat "$MG_BODY")" 'LIVE generation [0-9]+' "/ready: LIVE generation N"
g1=$(grep -o '[0-9][0-9]*' "$MG_BODY" | tail -1)

# --- /metrics ----------------------------------------------------------------------------------
assert_status GET "$ADMIN/metrics" 200
cp "$MG_BODY" "$MG_DIR/m0"
bad=$(awk '
	/^# (HELP|TYPE) / { if ($2 == "TYPE") typed[$3] = 1; next }
	/^$/ { next }
	{
		name = $1; sub(/\{.*/, "", name)
		if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+$/ && $0 !~ / (NaN|[+-]Inf)$/) print "syntax: " $0
		else if (!(name in typed)) print "untyped: " name
	}' "$MG_DIR/m0")
assert_eq "$bad" "" "/metrics is valid Prometheus text, every sample has a # TYPE"
assert_status GET "$ADMIN/stats/prometheus" 200
assert_contains "$(cat "$MG_BODY")" "meshgate_downstream_rq_total" "/stats/prometheus serves the same counters"

# m FILE NAME: the value of sample NAME (without labels: summed over label sets).
m() { awk -v n="$2" '{ s = $1; sub(/\{.*/, "", s) } s == n { v += $2; f = 1 } END { print f ? v : "none" }' "$1"; }

# Exactly known traffic, each request on its own connection (both workers).
for i in 1 2 3 4 5 6; do curl -s -o /dev/null "http://127.0.0.1:$MG_PORT/echo/$i"; done
for i in 1 2; do curl -s -o /dev/null "http://127.0.0.1:$MG_PORT/direct"; done
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$MG_PORT/nothing"; done
curl -s -o /dev/null "http://127.0.0.1:$MG_PORT/down"
# and four more on one kept-alive connection
u="http://127.0.0.1:$MG_PORT/echo/ka"
curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null "$u/1" "$u/2" "$u/3" "$u/4"
printf 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n' | mg_raw "$MG_PORT" >/dev/null
sleep 0.5
curl -s -o "$MG_DIR/m1" "$ADMIN/metrics"

# delta NAME EXPECTED [DESC]
delta() {
	local a b
	a=$(m "$MG_DIR/m0" "$1")
	b=$(m "$MG_DIR/m1" "$1")
	if [ "$a" = none ] || [ "$b" = none ]; then
		mg_fail "metric $1 missing"
		return 1
	fi
	assert_eq "$((b - a))" "$2" "${3:-$1 +$2}"
}
delta meshgate_downstream_cx_total 14 "14 client connections"
delta meshgate_downstream_rq_total 17 "17 requests, the rejected one included (2xx + 4xx + 5xx = 17)"
delta meshgate_downstream_rq_2xx 12 "12 2xx (10 proxied + 2 direct)"
delta meshgate_downstream_rq_4xx 4 "4 4xx (3 no route + 1 bad request)"
delta meshgate_downstream_rq_5xx 1 "1 5xx (upstream down)"
delta meshgate_downstream_rq_no_route 3
delta meshgate_downstream_rq_direct_response 2
delta meshgate_downstream_rq_bad_request 1
# the connect to down fails three times: Istio's default policy retries twice
delta meshgate_upstream_cx_connect_fail 3
up_new=$(($(m "$MG_DIR/m1" meshgate_upstream_cx_total) - $(m "$MG_DIR/m0" meshgate_upstream_cx_total)))
reuse=$(($(m "$MG_DIR/m1" meshgate_upstream_cx_reuse) - $(m "$MG_DIR/m0" meshgate_upstream_cx_reuse)))
# 10 proxied requests to svc succeed: each used a new or a reused connection
assert_eq "$((up_new + reuse))" 13 "upstream connections opened + reused = 10 proxied + 3 attempts to down ($up_new + $reuse)"
assert_cmp "$reuse" -ge 3 "reuse counted on the kept-alive client connection ($reuse)"

# --- /clusters -----------------------------------------------------------------------------------
assert_status GET "$ADMIN/clusters" 200
cl=$(cat "$MG_BODY")
assert_contains "$cl" "outbound|80||svc.default.svc.cluster.local::127.0.0.1:$UP_A_PORT::weight::1" "whole-service cluster, endpoint a"
assert_contains "$cl" "outbound|80||svc.default.svc.cluster.local::127.0.0.1:$UP_B_PORT::weight::3" "endpoint weight shown"
assert_contains "$cl" "outbound|80|v1|svc.default.svc.cluster.local::127.0.0.1:$UP_A_PORT::" "subset cluster, its endpoint"
assert_not_contains "$cl" "outbound|80|v1|svc.default.svc.cluster.local::127.0.0.1:$UP_B_PORT::" "subset excludes other labels"
assert_contains "$cl" "outbound|8080||down.internal::127.0.0.1:$DOWN_PORT::" "cluster of another ServiceEntry"
assert_eq "$(grep '::weight::' <<<"$cl" | grep -Evc '^[^ :]+::[0-9.]+:[0-9]+::weight::[0-9]+$')" 0 "every endpoint line is cluster::address:port::weight::n"
assert_contains "$cl" "outbound|80||svc.default.svc.cluster.local::cx_active::" "cluster gauges shown"
# the 10 proxied requests went to subset v1; the 503 to down (after 2 retries)
assert_contains "$cl" "outbound|80|v1|svc.default.svc.cluster.local::stats::rq_total::10::rq_2xx::10::" \
	"per-cluster request counters"
assert_contains "$cl" "outbound|8080||down.internal::stats::rq_total::1::rq_2xx::0::rq_3xx::0::rq_4xx::0::rq_5xx::1::rq_retry::2::rq_timeout::0::cx_connect_fail::3" \
	"per-cluster failures, retries and connect failures"
prom=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
assert_contains "$prom" 'meshgate_cluster_rq_total{cluster="outbound|80|v1|svc.default.svc.cluster.local"} 10' \
	"per-cluster counters in Prometheus form"
assert_contains "$prom" 'meshgate_route_rq_2xx{route="echo-v1"} 10' "per-route counters under statPrefix"

# --- /listeners, unknown paths --------------------------------------------------------------------
assert_status GET "$ADMIN/listeners" 200
assert_match "$(cat "$MG_BODY")" "127\\.0\\.0\\.1:$MG_PORT.* 1 " "the listener with its virtual host count"
assert_status GET "$ADMIN/no-such-page" 404

# --- after a reload -----------------------------------------------------------------------------------
resources 7 | mg_resource all
assert_reload applied
assert_status GET "$ADMIN/ready" 200
g2=$(grep -o '[0-9][0-9]*' "$MG_BODY" | tail -1)
assert_cmp "$g2" -gt "$g1" "/ready follows the reload (generation $g1 -> $g2)"
assert_status GET "$ADMIN/clusters" 200
assert_contains "$(cat "$MG_BODY")" "127.0.0.1:$UP_B_PORT::weight::7" "/clusters follows the reload"
curl -s -o "$MG_DIR/m2" "$ADMIN/metrics"
assert_cmp "$(m "$MG_DIR/m2" meshgate_downstream_rq_total)" -ge "$(m "$MG_DIR/m1" meshgate_downstream_rq_total)" \
	"counters survive a reload"

assert_alive
mg_stop

# --- admin.address "" disables the admin endpoint ----------------------------------------------------
sed -i "s/^  address: \"127.0.0.1:$MG_ADMIN_PORT\"\$/  address: \"\"/" "$MG_CONFIG"
assert_contains "$(cat "$MG_CONFIG")" 'address: ""' "config rewritten without admin"
"$MESHGATE" -c "$MG_CONFIG" >>"$MG_OUT" 2>>"$MG_LOG" &
pid=$!
mg__track "$pid"
# shellcheck disable=SC2317 # called through mg_wait_until
served() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$MG_PORT/direct")" = 200 ]; }
if mg_wait_until 10 served; then mg_ok "serves without an admin endpoint"; else mg_fail "did not start without admin"; fi
curl -s -o /dev/null --max-time 2 "$ADMIN/ready"
assert_eq "$?" 7 "no admin listener"
kill -TERM "$pid"
mg_wait_until 10 mg__dead "$pid"
wait "$pid"
assert_eq "$?" 0 "exit 0"

mg_finish
