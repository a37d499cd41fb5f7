#!/usr/bin/env bash
# 52-mirror: HTTPRoute mirror / mirrors / mirrorPercentage.  The mirror upstream gets a copy
# of the request (method, rewritten path, headers, body) with Host "<host>-shadow" (before a
# port); the client gets the main upstream's answer only.  mirrorPercentage 50 mirrors about
# half, 0 none; `mirrors:` feeds two destinations; a mirror that is down, slow (past the
# route timeout) or does not read changes nothing for the client and only counts; a reload
# with a mirror in flight is safe; SIGTERM is not held past the drain timeout by a slow
# mirror; the mirror cluster's connectionPool limits and outlierDetection apply to the
# copies, and its /clusters counters count them; its DestinationRule tls originates TLS
# for the copies.  Mirrored
# requests are seen through the upstreams' --record-file (their responses
# are discarded by meshgate).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
REC="$MG_DIR/records"
: >"$REC"
mg_upstream main
mg_upstream shadow --record-file "$REC"
mg_upstream shadow2 --record-file "$REC"
mg_upstream slow --record-file "$REC" --delay-all 3000
mg_upstream failing --fail-status 500
# a TLS mirror (DestinationRule tls originates TLS for the copies too)
mg_pki
mg_upstream tlsm --record-file "$REC" --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key"
DOWN_PORT=$(mg_port) # nothing listens there

# A mirror that accepts connections (the kernel does) but never reads: its bytes pile up.
SINK_PORT=$(mg_port)
"$PYTHON" -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
time.sleep(600)' "$SINK_PORT" &
mg__track $!

mg_start_config <<EOF
workers: 2
timeouts:
  drain: 1s
EOF

vs_routes() {
	cat <<EOF
  - name: mirrored
    match: [{uri: {prefix: /m/}}]
    rewrite: {uri: /rw/}
    route: [{destination: {host: main}}]
    mirror: {host: shadow}
  - name: half
    match: [{uri: {prefix: /half/}}]
    route: [{destination: {host: main}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
  - name: zero
    match: [{uri: {prefix: /zero/}}]
    route: [{destination: {host: main}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 0}
  - name: two
    match: [{uri: {prefix: /two/}}]
    route: [{destination: {host: main}}]
    mirrors:
    - destination: {host: shadow}
    - destination: {host: shadow2, port: {number: 80}}
      percentage: {value: 100}
  - name: down
    match: [{uri: {prefix: /down/}}]
    route: [{destination: {host: main}}]
    mirror: {host: down}
  - name: slow
    match: [{uri: {prefix: /slow/}}]
    route: [{destination: {host: main}}]
    mirror: {host: slow}
  - name: slow-timed
    match: [{uri: {prefix: /slowt/}}]
    timeout: 1s
    route: [{destination: {host: main}}]
    mirror: {host: slow}
  - name: parallel
    match: [{uri: {prefix: /delay/}}]
    route: [{destination: {host: main}}]
    mirror: {host: shadow}
  - name: retried
    match: [{uri: {prefix: /flaky/}}]
    route: [{destination: {host: main}}]
    retries: {attempts: 2, retryOn: "503"}
    mirror: {host: shadow}
  - name: to-tls
    match: [{uri: {prefix: /tls/}}]
    route: [{destination: {host: main}}]
    mirror: {host: tlsm}
  - name: ejecting
    match: [{uri: {prefix: /ej/}}]
    route: [{destination: {host: main}}]
    mirror: {host: failing}
  - name: breaker
    match: [{uri: {prefix: /cb/}}]
    route: [{destination: {host: main}}]
    mirror: {host: slowcb}
  - name: sink
    match: [{uri: {prefix: /sink/}}]
    route: [{destination: {host: main}}]
    mirror: {host: sink}
EOF
}

write_resources() {
	mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service main "$UP_MAIN_PORT")
$(mg_yaml_service shadow "$UP_SHADOW_PORT")
$(mg_yaml_service shadow2 "$UP_SHADOW2_PORT")
$(mg_yaml_service slow "$UP_SLOW_PORT")
$(mg_yaml_service down "$DOWN_PORT")
$(mg_yaml_service sink "$SINK_PORT")
$(mg_yaml_service slowcb "$UP_SLOW_PORT")
$(mg_yaml_service failing "$UP_FAILING_PORT")
$(mg_yaml_service tlsm "$UP_TLSM_PORT")
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tlsm
spec:
  host: tlsm
  trafficPolicy:
    tls: {mode: SIMPLE, insecureSkipVerify: true}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: failing
spec:
  host: failing
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: slowcb
spec:
  host: slowcb
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
$(vs_routes)
$1
EOF
}
write_resources ""

# A mirror to an undeclared host is refused like a route destination.
cp "$MG_RESOURCES/all.yaml" "$MG_DIR/good.yaml"
cat >>"$MG_RESOURCES/all.yaml" <<EOF
  - name: nowhere
    match: [{uri: {prefix: /nowhere/}}]
    route: [{destination: {host: main}}]
    mirror: {host: nowhere}
EOF
assert_invalid "destination host nowhere.default.svc.cluster.local is not declared by any ServiceEntry" \
	"meshgate -t refuses a mirror to an undeclared host"
cp "$MG_DIR/good.yaml" "$MG_RESOURCES/all.yaml"
assert_valid "meshgate -t accepts the mirror routes"
assert_not_contains "$MG_VALIDATE_OUT" "warning" "no warning about the mirror routes"

mg_start

# rec_count NAME ERE, rec_get NAME TARGET FIELD: this test's records (lib.sh)
# shellcheck disable=SC2317 # also called through mg_wait_until
rec_count() { mg_rec_count "$REC" "$@"; }
rec_get() { mg_rec_get "$REC" "$@"; }

# shellcheck disable=SC2317 # called through mg_wait_until
rec_has() { mg_rec_has "$REC" "$@"; }


ms_since() { echo $(($(mg__now_ms) - $1)); }

# metric_gt NAME N: the counter is above N now (for mg_wait_until).
# shellcheck disable=SC2317 # called through mg_wait_until
stats_has() { [ "$(mg_upstream_count "$1" "$2")" -ge 1 ]; }

# shellcheck disable=SC2317 # called through mg_wait_until
metric_gt() { [ "$(mg_metric "$1")" -gt "${2:-0}" ]; }

# --- GET: rewritten path, shadow Host, same request id -------------------------------------
assert_status GET '/m/echo?x=1' 200 -H 'Host: a.example'
assert_header x-upstream main "the client gets the main upstream's answer"
assert_eq "$(mg_json path)" "/rw/echo?x=1" "main upstream sees the rewritten path"
rid=$(mg_json headers.x-request-id)
assert_eq "$(mg_json headers.host)" a.example "main upstream sees the client's Host"
mg_wait_until 5 rec_has shadow '^/rw/echo\?x=1$' || mg_fail "the mirror did not receive the GET"
assert_eq "$(rec_get shadow '/rw/echo?x=1' method)" GET "mirror: method"
assert_eq "$(rec_get shadow '/rw/echo?x=1' host)" a.example-shadow "mirror: Host suffixed -shadow"
assert_eq "$(rec_get shadow '/rw/echo?x=1' request_id)" "$rid" "mirror: the same x-request-id"

# Host with a port: "-shadow" goes before the port (Envoy)
assert_status GET /m/echo/port 200 -H 'Host: a.example:8080'
mg_wait_until 5 rec_has shadow '^/rw/echo/port$' || mg_fail "the mirror did not receive /m/echo/port"
assert_eq "$(rec_get shadow /rw/echo/port host)" a.example-shadow:8080 "mirror: a.example:8080 -> a.example-shadow:8080"

# HEAD is mirrored too (the mirror's answer has no body)
assert_status HEAD /m/echo/head 200 -H 'Host: a.example'
mg_wait_until 5 rec_has shadow '^/rw/echo/head$' || mg_fail "the mirror did not receive the HEAD"
assert_eq "$(rec_get shadow /rw/echo/head method)" HEAD "mirror: HEAD"

# --- POST bodies: Content-Length and chunked, same bytes ------------------------------------
mg_make_file "$MG_DIR/body" 300K 7
sum=$(mg_sha256 "$MG_DIR/body")
mg_check_mirrored_bodies "$REC" shadow /rw "$MG_DIR/body"

# --- the copy goes out with the main request, not after its answer ---------------------------
t0=$(mg__now_ms)
curl -s -o "$MG_DIR/parallel.body" --max-time 10 -H 'Host: a.example' \
	"http://127.0.0.1:$MG_PORT/delay/1500" &
cpid=$!
mg_wait_until 5 rec_has shadow '^/delay/1500$' || mg_fail "the mirror did not receive /delay/1500"
el=$(ms_since "$t0")
assert_cmp "$el" -lt 1200 "the mirror got its copy while the main upstream still works ($el ms)"
wait "$cpid"
assert_eq "$(mg_json path "$MG_DIR/parallel.body")" /delay/1500 "the main answer came after 1.5 s"

# --- a retried request is mirrored once (Envoy shadows the request, not each try) -----------
assert_status GET '/flaky/1/status/503?key=m1' 200 -H 'Host: a.example'
assert_eq "$(mg_upstream_count main '^/flaky/1/status/503')" 2 "the main upstream saw a 503, then the retry"
mg_wait_until 5 rec_has shadow '^/flaky/1/status/503' || mg_fail "the mirror did not receive the retried request"
sleep 0.3
assert_eq "$(rec_count shadow '^/flaky/1/status/503')" 1 "one copy for a request tried twice"

# --- mirrorPercentage -----------------------------------------------------------------------
urls=()
for i in $(seq 1 200); do urls+=("http://127.0.0.1:$MG_PORT/half/echo/$i"); done
curl -s -o /dev/null --max-time 60 -H 'Host: a.example' "${urls[@]}"
assert_eq "$(mg_upstream_count main '^/half/')" 200 "all 200 requests reached the main upstream"
sleep 1 # let the last mirrors land
n=$(rec_count shadow '^/half/')
assert_cmp "$n" -ge 60 "mirrorPercentage 50: at least 30% of 200 mirrored ($n)"
assert_cmp "$n" -le 140 "mirrorPercentage 50: at most 70% of 200 mirrored ($n)"

urls=()
for i in $(seq 1 20); do urls+=("http://127.0.0.1:$MG_PORT/zero/echo/$i"); done
curl -s -o /dev/null --max-time 60 -H 'Host: a.example' "${urls[@]}"
assert_eq "$(mg_upstream_count main '^/zero/')" 20 "all 20 /zero/ requests reached the main upstream"
sleep 0.5
assert_eq "$(rec_count shadow '^/zero/')" 0 "mirrorPercentage 0: nothing mirrored"

# --- a mirror whose DestinationRule originates TLS gets its copy over TLS ---------------------
assert_status POST /tls/sha256 200 -H 'Host: a.example' --data-binary "@$MG_DIR/body"
mg_wait_until 5 rec_has tlsm '^/tls/sha256$' || mg_fail "the TLS mirror did not receive its copy"
assert_eq "$(rec_get tlsm /tls/sha256 body_sha256)" "$sum" "TLS mirror: same body"
assert_eq "$(rec_get tlsm /tls/sha256 host)" a.example-shadow "TLS mirror: shadow Host"

# --- mirrors: two destinations ------------------------------------------------------------
assert_status GET /two/echo 200 -H 'Host: b.example'
mg_wait_until 5 rec_has shadow '^/two/echo$' || mg_fail "mirrors[0] did not receive /two/echo"
mg_wait_until 5 rec_has shadow2 '^/two/echo$' || mg_fail "mirrors[1] did not receive /two/echo"
assert_eq "$(rec_get shadow2 /two/echo host)" b.example-shadow "mirrors[1]: shadow Host"
# the mirror cluster's own counters count the copy (shadow2 gets nothing else)
sleep 0.3
assert_contains "$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/clusters")" \
	"outbound|80||shadow2.default.svc.cluster.local::stats::rq_total::1::rq_2xx::1::" \
	"/clusters counts the copy in the mirror cluster's stats"

# --- a mirror that is down, slow, or does not read changes nothing for the client ---------
failed0=$(mg_metric upstream_rq_mirror_failed)
t0=$(mg__now_ms)
assert_status GET /down/echo 200 -H 'Host: a.example'
el=$(ms_since "$t0")
assert_header x-upstream main "mirror down: the client still gets the main answer"
assert_cmp "$el" -lt 2000 "mirror down: answered quickly ($el ms)"
mg_wait_until 5 metric_gt upstream_rq_mirror_failed "$failed0" ||
	mg_fail "mirror down: counted in upstream_rq_mirror_failed"

t0=$(mg__now_ms)
assert_status POST /slow/sha256 200 -H 'Host: a.example' --data-binary "@$MG_DIR/body"
el=$(ms_since "$t0")
assert_eq "$(mg_json body_sha256)" "$sum" "slow mirror: the main answer is complete"
assert_cmp "$el" -lt 2000 "slow mirror (3 s): client latency unaffected ($el ms)"
mg_wait_until 5 rec_has slow '^/slow/sha256$' || mg_fail "the slow mirror did not receive the POST"
assert_eq "$(rec_get slow /slow/sha256 body_sha256)" "$sum" "slow mirror: same body"

# past the route timeout the mirror is given up and counted
failed1=$(mg_metric upstream_rq_mirror_failed)
assert_status GET /slowt/echo 200 -H 'Host: a.example'
mg_wait_until 5 metric_gt upstream_rq_mirror_failed "$failed1" ||
	mg_fail "a mirror past the route timeout is counted as failed"
assert_log_not_contains 'mirror.*(failed|abandoned)' # debug level only

# a client that leaves mid-body: the copy cannot be completed, it is abandoned (counted)
dropped1=$(mg_metric upstream_rq_mirror_dropped)
"$PYTHON" -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /m/echo/cut HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
time.sleep(0.5)
s.close()' "$MG_PORT"
mg_wait_until 5 metric_gt upstream_rq_mirror_dropped "$dropped1" ||
	mg_fail "a copy whose request was cut short is counted in upstream_rq_mirror_dropped"
mg_wait_until 5 stats_has shadow '^/rw/echo/cut$' ||
	mg_fail "the cut request's copy had started (its head reached the mirror)"

# a mirror that never reads: abandoned at the bound, the 8 MiB upload still goes through
mg_make_file "$MG_DIR/big" 8M 3
bigsum=$(mg_sha256 "$MG_DIR/big")
dropped0=$(mg_metric upstream_rq_mirror_dropped)
t0=$(mg__now_ms)
assert_status POST /sink/sha256 200 -H 'Host: a.example' --data-binary "@$MG_DIR/big"
el=$(ms_since "$t0")
assert_eq "$(mg_json body_sha256)" "$bigsum" "mirror not reading: the main upload is complete"
assert_cmp "$el" -lt 10000 "mirror not reading: no back-pressure on the client ($el ms)"
assert_cmp "$(mg_metric upstream_rq_mirror_dropped)" -gt "${dropped0:-0}" \
	"mirror over the 1 MiB bound counted in upstream_rq_mirror_dropped"

# --- the mirror cluster's connectionPool applies to the copies (they never wait) -----------
dropped2=$(mg_metric upstream_rq_mirror_dropped)
assert_status GET /cb/echo/1 200 -H 'Host: a.example'
mg_wait_until 5 stats_has slow '^/cb/echo/1$' || mg_fail "the first /cb/ copy did not reach the mirror"
assert_status GET /cb/echo/2 200 -H 'Host: a.example'
assert_header x-upstream main "a copy over the mirror's limit changes nothing for the client"
mg_wait_until 5 metric_gt upstream_rq_mirror_dropped "$dropped2" ||
	mg_fail "a copy over the mirror cluster's http2MaxRequests (1) is dropped"
sleep 0.3
assert_eq "$(mg_upstream_count slow '^/cb/echo/2$')" 0 "the copy over http2MaxRequests never reached the mirror"

# --- the mirror cluster's outlierDetection sees the copies' answers ------------------------
failed3=$(mg_metric upstream_rq_mirror_failed)
for i in 1 2; do
	assert_status GET "/ej/echo/$i" 200 -H 'Host: a.example'
	mg_wait_until 5 stats_has failing "^/ej/echo/$i\$" || mg_fail "copy $i did not reach the failing mirror"
	sleep 0.3 # its 500 is read and reported
done
for i in 3 4; do
	assert_status GET "/ej/echo/$i" 200 -H 'Host: a.example'
	assert_header x-upstream main "the mirror's ejection changes nothing for the client"
done
mg_wait_until 5 metric_gt upstream_rq_mirror_failed "$((${failed3:-0} + 1))" ||
	mg_fail "copies to an ejected mirror endpoint are counted as failed"
assert_eq "$(mg_upstream_count failing '^/ej/')" 2 "after 2 answers of 500 the mirror endpoint is ejected: no more copies"
assert_match "$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/clusters")" "failing.*::health_flags::/failed_outlier_check" \
	"/clusters shows the mirror endpoint ejected"
assert_contains "$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/clusters")" \
	"outbound|80||failing.default.svc.cluster.local::stats::rq_total::2::rq_2xx::0::rq_3xx::0::rq_4xx::0::rq_5xx::2::" \
	"/clusters counts the copies' 500s in the mirror cluster's stats"

# --- reload while a mirror is in flight ------------------------------------------------------
before=$(mg_upstream_count slow)
failed2=$(mg_metric upstream_rq_mirror_failed)
assert_status GET /slow/echo/reload 200 -H 'Host: a.example'
mg_wait_until 5 rec_has slow '^/slow/echo/reload$' || mg_fail "the slow mirror did not receive /slow/echo/reload"
write_resources "  - name: added
    match: [{uri: {prefix: /added/}}]
    route: [{destination: {host: main}}]"
assert_reload applied
assert_status GET /added/echo 200 -H 'Host: a.example'
# the old generation's mirror finishes (its answer comes at 3 s) without failing
mg_wait_until 6 grep -q 'GET /slow/echo/reload -> 200' "$MG_DIR/upstream-slow.log" ||
	mg_fail "the slow mirror answered after the reload"
sleep 0.3
assert_eq "$(mg_metric upstream_rq_mirror_failed)" "${failed2:-0}" "the mirror across the reload did not fail"
assert_cmp "$(mg_upstream_count slow)" -gt "$before" "the slow upstream saw the mirrored request"

# --- the access log has the main requests only -------------------------------------------
assert_log_contains '"GET /m/echo\?x=1 HTTP/1.1" 200 ' "$MG_ACCESS_LOG"
assert_log_not_contains 'shadow' "$MG_ACCESS_LOG"
assert_cmp "$(grep -c '/half/echo/' "$MG_ACCESS_LOG")" -eq 200 "one access log line per /half/ request"
sent=$(mg_metric upstream_rq_mirror_sent)
assert_cmp "${sent:-0}" -ge 100 "upstream_rq_mirror_sent counts the copies ($sent)"
assert_alive

# --- SIGTERM with a slow mirror in flight: bounded by the drain timeout (1 s) ----------------
assert_status GET /slow/echo/term 200 -H 'Host: a.example'
mg_wait_until 5 rec_has slow '^/slow/echo/term$' || mg_fail "the slow mirror did not receive /slow/echo/term"
t0=$(mg__now_ms)
mg_stop
el=$(ms_since "$t0")
assert_cmp "$el" -lt 2800 "SIGTERM: exit within the drain timeout, not after the 3 s mirror ($el ms)"

mg_finish
