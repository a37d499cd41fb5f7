#!/usr/bin/env bash
# 85-istio-metrics: Istio's standard metrics on /stats/prometheus, as an Istio gateway's
# proxy reports them (reporter "source"), so Istio's queries and dashboards work:
# istio_requests_total by destination service, version (the subset's), response code and
# flags; the request duration, request and response size histograms (Istio's buckets,
# cumulative, +Inf = count, sums); a no-route 404 with destination "unknown" and flags NR;
# a ServiceEntry host's own name and namespace; the source labels from the main config's
# labels and namespace; one line per series
# summed over two workers; the istio_tcp_* counters of a tcp route; a Telemetry's metrics
# overrides removing a label, turning a metric off, or all of them; an open relay's bytes
# counted every reportingInterval.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
TCP_PORT=$(mg_port)

mg_start_config <<EOF
workers: 2
namespace: istio-system
labels: {app: istio-ingressgateway, istio: ingressgateway}
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_server tcp TCP '["*"]' "" "$TCP_PORT")
$(mg_yaml_service_head a '[a.default.svc.cluster.local]')
$(mg_yaml_endpoint "$UP_A_PORT" labels '{version: v1}')
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: istio-system}
spec:
  host: a.default.svc.cluster.local
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: istio-system}
spec:
  hosts: [a.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: a.default.svc.cluster.local, subset: v1}}]
  tcp:
  - match: [{port: $TCP_PORT}]
    route: [{destination: {host: a.default.svc.cluster.local, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: egress}
spec:
  hosts: [ext.example.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $UP_A_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: istio-system}
spec:
  hosts: [ext.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: ext.example.org}}]
EOF
mg_start

H='Host: a.example.com'
sizes=0
for _ in 1 2 3 4 5; do
	n=$(curl -s -o /dev/null -w '%{size_download}' --max-time 5 -H "$H" "$(mg_url /status/200)")
	sizes=$((sizes + n))
done
for _ in 1 2; do curl -s -o /dev/null --max-time 5 -H "$H" "$(mg_url /status/500)"; done
head -c 1000 /dev/zero | tr '\0' x >"$MG_DIR/body"
curl -s -o /dev/null --max-time 5 -H "$H" --data-binary @"$MG_DIR/body" "$(mg_url /status/201)"
curl -s -o /dev/null --max-time 5 -H 'Host: nowhere.example.com' "$(mg_url /x)"
curl -s -o /dev/null --max-time 5 -H 'Host: ext.example.com' "$(mg_url /status/200)"
printf 'GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' | mg_raw "$TCP_PORT" >"$MG_DIR/tcp.out"
tcp_sent=$(wc -c <"$MG_DIR/tcp.out")

# scrape once the relay has closed too
# shellcheck disable=SC2317 # called through mg_wait_until
scrape() {
	curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/stats/prometheus" >"$MG_DIR/metrics"
	grep -q '^istio_tcp_connections_closed_total{.*} 1$' "$MG_DIR/metrics"
}
mg_wait_until 5 scrape || true

# series NAME LABEL=VALUE...: the values of NAME's samples whose labels include all given
series() {
	"$PYTHON" - "$MG_DIR/metrics" "$@" <<'EOF'
import re, sys
path, name, want = sys.argv[1], sys.argv[2], sys.argv[3:]
for line in open(path):
    m = re.match(r'([a-z_]+)\{(.*)\} (\S+)$', line.strip())
    if not m or m.group(1) != name:
        continue
    labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2)))
    if all(labels.get(k) == v for k, v in (w.split("=", 1) for w in want)):
        print(m.group(3))
EOF
}
ok200=(destination_service=a.default.svc.cluster.local response_code=200)

assert_eq "$(series istio_requests_total "${ok200[@]}")" 5 \
	"istio_requests_total: the five 200s, in one line over two workers"
assert_eq "$(series istio_requests_total reporter=source source_workload=istio-ingressgateway \
	source_workload_namespace=istio-system source_app=istio-ingressgateway \
	destination_service_name=a destination_service_namespace=default destination_version=v1 \
	request_protocol=http response_flags=- grpc_response_status= connection_security_policy=unknown \
	response_code=200)" 5 "Istio's labels: the source from the main config, the destination from the cluster and subset"
assert_eq "$(series istio_requests_total destination_service=a.default.svc.cluster.local response_code=500)" 2 \
	"the upstream's 500s: their own series"
assert_eq "$(series istio_requests_total destination_service=unknown response_code=404 response_flags=NR)" 1 \
	"no route: destination unknown, 404, NR"
assert_eq "$(series istio_requests_total destination_service=ext.example.org \
	destination_service_name=ext.example.org destination_service_namespace=egress \
	destination_version=unknown)" 1 \
	"a host outside .svc.: its own name, in its ServiceEntry's namespace"

# the duration histogram of the 200s: cumulative, +Inf is the count, a sum
buckets=$(series istio_request_duration_milliseconds_bucket "${ok200[@]}" | tr '\n' ' ')
assert_eq "$(wc -w <<<"$buckets")" 20 "19 of Istio's duration buckets and +Inf"
assert_eq "$(series istio_request_duration_milliseconds_bucket "${ok200[@]}" 'le=+Inf')" 5 "+Inf bucket = 5"
assert_eq "$(series istio_request_duration_milliseconds_count "${ok200[@]}")" 5 "_count = 5"
sorted=$(tr ' ' '\n' <<<"$buckets" | sed '/^$/d' | sort -n | tr '\n' ' ')
assert_eq "$sorted" "$buckets" "buckets are cumulative (never decreasing)"
assert_match "$(series istio_request_duration_milliseconds_sum "${ok200[@]}")" '^[0-9]+\.[0-9]{3}$' \
	"_sum in milliseconds"

# sizes: the response bodies summed; the 1000-byte request body in the le=1e+03 bucket
assert_eq "$(series istio_response_bytes_sum "${ok200[@]}")" "$sizes" \
	"istio_response_bytes_sum: the five bodies' bytes ($sizes)"
assert_eq "$(series istio_request_bytes_bucket response_code=201 'le=1e+02')" 0 "1000 bytes: not <= 100"
assert_eq "$(series istio_request_bytes_bucket response_code=201 'le=1e+03')" 1 "1000 bytes: <= 1000"
assert_eq "$(series istio_request_bytes_sum response_code=201)" 1000 "istio_request_bytes_sum 1000"

# the tcp route's connection
tcp=(destination_service=a.default.svc.cluster.local request_protocol=tcp)
assert_eq "$(series istio_tcp_connections_opened_total "${tcp[@]}")" 1 "istio_tcp_connections_opened_total 1"
assert_eq "$(series istio_tcp_connections_closed_total "${tcp[@]}")" 1 "istio_tcp_connections_closed_total 1"
assert_eq "$(series istio_tcp_received_bytes_total "${tcp[@]}")" 50 "istio_tcp_received_bytes_total: the request's 50 bytes"
assert_eq "$(series istio_tcp_sent_bytes_total "${tcp[@]}")" "$tcp_sent" "istio_tcp_sent_bytes_total: the answer's bytes"

# --- a Telemetry's metrics overrides: a label removed, a metric off, then all off ----------
mg_resource telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
      tagOverrides:
        grpc_response_status: {operation: REMOVE}
    - match: {metric: REQUEST_SIZE}
      disabled: true
    - match: {metric: RESPONSE_SIZE, mode: SERVER}
      disabled: true
EOF
assert_reload applied
curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/stats/prometheus" >"$MG_DIR/metrics"
assert_eq "$(series istio_requests_total "${ok200[@]}")" 5 "the counts go on over the reload"
assert_not_contains "$(grep '^istio_requests_total{' "$MG_DIR/metrics")" grpc_response_status \
	"tagOverrides REMOVE: istio_requests_total without grpc_response_status"
assert_contains "$(grep '^istio_response_bytes_sum{' "$MG_DIR/metrics")" 'grpc_response_status=""' \
	"... the other metrics keep it"
assert_not_contains "$(cat "$MG_DIR/metrics")" "istio_request_bytes" "REQUEST_SIZE disabled: not written"
assert_contains "$(cat "$MG_DIR/metrics")" "istio_response_bytes_bucket" \
	"a SERVER-mode override does not apply to a gateway (a CLIENT)"

mg_resource telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
EOF
assert_reload applied
for _ in 1 2 3; do curl -s -o /dev/null --max-time 5 -H "$H" "$(mg_url /status/200)"; done
curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/stats/prometheus" >"$MG_DIR/metrics"
assert_eq "$(grep -c -E '^(# (HELP|TYPE) )?istio_' "$MG_DIR/metrics")" 0 \
	"ALL_METRICS disabled: no Istio metric written"
assert_contains "$(cat "$MG_DIR/metrics")" "meshgate_downstream_rq_2xx" "meshgate's own metrics stay"
rm "$MG_RESOURCES/telemetry.yaml"
assert_reload applied
curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/stats/prometheus" >"$MG_DIR/metrics"
assert_eq "$(series istio_requests_total "${ok200[@]}")" 5 \
	"on again: the requests made while they were off were not counted"

# --- an open relay's bytes are counted every reportingInterval, before it closes -----------
mg_resource telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - reportingInterval: 1s
EOF
assert_reload applied
"$PYTHON" - "$TCP_PORT" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
s.recv(65536)
time.sleep(8)  # held open while the test reads the metrics
s.close()
EOF
holder=$!
# shellcheck disable=SC2317 # called through mg_wait_until
open_counted() {
	curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/stats/prometheus" >"$MG_DIR/metrics"
	[ "$(series istio_tcp_received_bytes_total "${tcp[@]}" response_flags=-)" = 81 ]
}
mg_wait_until 6 open_counted || true
assert_eq "$(series istio_tcp_received_bytes_total "${tcp[@]}" response_flags=-)" 81 \
	"an open relay's 31 request bytes are counted within the reporting interval"
assert_eq "$(series istio_tcp_connections_closed_total "${tcp[@]}")" 1 "... while it is still open"
assert_eq "$(series istio_tcp_connections_opened_total "${tcp[@]}")" 2 "... and counted as opened"
wait "$holder"

mg_stop
mg_finish
