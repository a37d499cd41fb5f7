#!/usr/bin/env bash
# 50-fault: VirtualService fault injection (Istio's "fault injection" task with
# Envoy's fault filter behaviour). Abort: the gateway answers with the status,
# body "fault filter abort", flag FI, and the upstream never sees the request;
# a gRPC abort answers gRPC requests with HTTP 200 + grpc-status. Delay: the
# request is held, flag DI, then forwarded (body included) or answered
# directly; the delay does not count towards the route timeout. Percentages
# (50 % is statistically about half, an absent percentage is 0 % as in Istio),
# delay then abort on one route, a fault scoped to a header match (user jason),
# a client leaving during a delay (DC, nothing upstream, still alive), and the
# counters.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: faults
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: f-abort
    match: [{uri: {prefix: /abort}}]
    fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: f-delay
    match: [{uri: {prefix: /slow/}}]
    rewrite: {uri: /}
    fault:
      delay: {fixedDelay: 600ms, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: f-old-percent
    match: [{uri: {prefix: /oldpct}}]
    fault:
      delay: {fixedDelay: 300ms, percent: 100}
    route: [{destination: {host: a}}]
  - name: f-half
    match: [{uri: {prefix: /half}}]
    fault:
      abort: {httpStatus: 500, percentage: {value: 50}}
    route: [{destination: {host: a}}]
  - name: f-both
    match: [{uri: {prefix: /both}}]
    fault:
      delay: {fixedDelay: 400ms, percentage: {value: 100}}
      abort: {httpStatus: 418, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: f-never
    match: [{uri: {prefix: /never}}]
    fault:
      abort: {httpStatus: 500}
    route: [{destination: {host: a}}]
  - name: f-grpc
    match: [{uri: {prefix: /grpc}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: f-timeout
    match: [{uri: {prefix: /td/}}]
    rewrite: {uri: /}
    timeout: 500ms
    fault:
      delay: {fixedDelay: 800ms, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: f-direct
    match: [{uri: {prefix: /direct}}]
    fault:
      delay: {fixedDelay: 300ms, percentage: {value: 100}}
    directResponse: {status: 202, body: {string: "held, then answered"}}
  - name: f-long
    match: [{uri: {prefix: /long}}]
    fault:
      delay: {fixedDelay: 3s, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  # The Istio task: user jason gets the fault, everybody else the service.
  - name: ratings-jason
    match:
    - headers: {end-user: {exact: jason}}
      uri: {prefix: /ratings}
    fault:
      abort: {httpStatus: 500, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: ratings-jason-delay
    match:
    - headers: {end-user: {exact: jason}}
      uri: {prefix: /reviews}
    fault:
      delay: {fixedDelay: 700ms, percentage: {value: 100}}
    route: [{destination: {host: a}}]
  - name: ratings
    route: [{destination: {host: a}}]
EOF

mg_validate
assert_eq "$MG_VALIDATE_RC" 0 "fault routes are accepted by -t"
assert_contains "$MG_VALIDATE_OUT" "spec.http[5].fault.abort: no percentage: Istio injects this abort into no request" \
	"an abort without percentage is warned about"

mg_start

ms_since() { echo $(($(mg__now_ms) - $1)); }

# --- abort ------------------------------------------------------------------------------------
assert_status GET /abort/x 503
assert_eq "$(cat "$MG_BODY")" "fault filter abort" "abort body is Envoy's"
assert_header content-type text/plain
assert_status POST /abort/with-body 503 --data-binary 'some body'
assert_log_contains '"GET /abort/x HTTP/1\.1" 503 FI fault_filter_abort ' "$MG_ACCESS_LOG"
assert_log_contains '"POST /abort/with-body HTTP/1\.1" 503 FI ' "$MG_ACCESS_LOG"
assert_eq "$(mg_upstream_count a '^/abort')" 0 "aborted requests never reach the upstream"

# --- delay ------------------------------------------------------------------------------------
t0=$(mg__now_ms)
assert_status GET /slow/echo 200
el=$(ms_since "$t0")
assert_eq "$(mg_json path)" /echo "the delayed request reaches the upstream"
assert_cmp "$el" -ge 550 "held for the 600 ms delay ($el ms)"
assert_cmp "$el" -lt 3000 "and not much longer ($el ms)"
assert_log_contains '"GET /slow/echo HTTP/1\.1" 200 DI via_upstream ' "$MG_ACCESS_LOG"
assert_eq "$(mg_upstream_count a '^/echo$')" 1 "the upstream saw it once"

# the body waits with the request and arrives whole (2 MiB: more than the read buffers)
mg_make_file "$MG_DIR/body.bin" 2M 7
t0=$(mg__now_ms)
assert_status POST /slow/sha256 200 --data-binary "@$MG_DIR/body.bin" -H 'Content-Type: application/octet-stream'
el=$(ms_since "$t0")
assert_eq "$(mg_json sha256)" "$(mg_sha256 "$MG_DIR/body.bin")" "a 2 MiB body sent during the delay arrives intact"
assert_cmp "$el" -ge 550 "the body request was held too ($el ms)"
assert_status POST /slow/sha256 200 --data-binary 'chunked body' -H 'Transfer-Encoding: chunked'
assert_eq "$(mg_json length)" 12 "a chunked body after a delay"

# keep-alive goes on after a delayed exchange; pipelined requests are answered in order
out=$(printf 'GET /slow/p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT")
assert_match "$(grep -c '^HTTP/1.1 200' <<<"$out")" '^2$' "two pipelined answers behind a delayed one"
assert_match "$(tr -d '\r\n' <<<"$out")" '"path": ?"/p1".*"path": ?"/echo/p2"' "in order"

# deprecated integer percent
t0=$(mg__now_ms)
assert_status GET /oldpct/x 200
assert_cmp "$(ms_since "$t0")" -ge 250 "delay.percent: 100 (deprecated) delays too"

# --- delay then abort -------------------------------------------------------------------------
t0=$(mg__now_ms)
assert_status GET /both/x 418
el=$(ms_since "$t0")
assert_cmp "$el" -ge 350 "delay first ($el ms), then the abort"
assert_log_contains '"GET /both/x HTTP/1\.1" 418 DI,FI fault_filter_abort ' "$MG_ACCESS_LOG"
assert_eq "$(mg_upstream_count a '^/both')" 0 "delayed-then-aborted request never reached the upstream"

# --- the delay does not count towards the route timeout ---------------------------------------
t0=$(mg__now_ms)
assert_status GET /td/delay/200 200
assert_cmp "$(ms_since "$t0")" -ge 950 "800 ms delay + 200 ms upstream, timeout 500 ms: answered"
t0=$(mg__now_ms)
assert_status GET /td/delay/2000 504
el=$(ms_since "$t0")
assert_cmp "$el" -ge 1250 "the 500 ms timeout starts after the 800 ms delay ($el ms)"
assert_log_contains '"GET /td/delay/2000 HTTP/1\.1" 504 DI,UT ' "$MG_ACCESS_LOG"

# --- delay before a direct response -----------------------------------------------------------
t0=$(mg__now_ms)
assert_status GET /direct 202
assert_cmp "$(ms_since "$t0")" -ge 250 "a direct response is delayed too"
assert_body_contains "held, then answered"

# --- percentages ------------------------------------------------------------------------------
urls=()
for _ in $(seq 1 200); do urls+=(-o /dev/null "http://127.0.0.1:$MG_PORT/half/x"); done
codes=$(curl -s -w '%{http_code}\n' "${urls[@]}")
n500=$(grep -c '^500$' <<<"$codes")
n200=$(grep -c '^200$' <<<"$codes")
assert_eq "$((n500 + n200))" 200 "200 answers, each 200 or 500"
assert_cmp "$n500" -ge 60 "50 %: at least 30 % aborted ($n500 of 200)"
assert_cmp "$n500" -le 140 "50 %: at most 70 % aborted ($n500 of 200)"
assert_eq "$(mg_upstream_count a '^/half')" "$n200" "exactly the requests not aborted reached the upstream"

assert_status GET /never/x 200
assert_eq "$(mg_json path)" /never/x "an abort without percentage never fires (Istio: 0 %)"

# --- gRPC abort --------------------------------------------------------------------------------
assert_status POST /grpc/pkg.Svc/Method 200 -H 'Content-Type: application/grpc' --data-binary ''
assert_header grpc-status 14 "grpcStatus UNAVAILABLE -> grpc-status 14"
assert_header content-type application/grpc
assert_header grpc-message "fault filter abort"
assert_status POST /grpc/not-grpc 503 --data-binary 'x'
assert_eq "$(cat "$MG_BODY")" "fault filter abort" "a non-gRPC request gets Envoy's 503"
assert_eq "$(mg_upstream_count a '^/grpc')" 0 "gRPC aborts never reach the upstream"

# --- scoped to a header match (the Istio task) -------------------------------------------------
assert_status GET /ratings/1 500 -H 'end-user: jason'
assert_status GET /ratings/2 200 -H 'end-user: someone'
assert_eq "$(mg_json path)" /ratings/2 "another user reaches the service"
assert_status GET /ratings/3 200
t0=$(mg__now_ms)
assert_status GET /reviews/1 200 -H 'end-user: jason'
assert_cmp "$(ms_since "$t0")" -ge 650 "jason's reviews are delayed"
assert_status GET /reviews/2 200
assert_log_contains '"GET /reviews/1 HTTP/1\.1" 200 DI ' "$MG_ACCESS_LOG"
assert_log_contains '"GET /reviews/2 HTTP/1\.1" 200 - ' "$MG_ACCESS_LOG"
assert_eq "$(mg_upstream_count a '^/ratings/1')" 0 "jason's aborted request stayed at the gateway"
assert_log_not_contains '"GET /ratings/2 HTTP/1\.1" [0-9]+ FI' "$MG_ACCESS_LOG"

# --- a client leaving during a delay -----------------------------------------------------------
"$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, time
for path in (b"/long/gone", b"/long/gone-body"):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    if path.endswith(b"body"):
        s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    else:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.close()
EOF
assert_log_contains '"GET /long/gone HTTP/1\.1" 0 DI,DC ' "$MG_ACCESS_LOG"
assert_log_contains '"POST /long/gone-body HTTP/1\.1" 0 DI,DC ' "$MG_ACCESS_LOG"
sleep 3
assert_alive "alive after clients left during a delay (the timer was cancelled)"
assert_eq "$(mg_upstream_count a '^/long')" 0 "a request whose client left is never forwarded"
assert_status GET /echo/after 200

# --- counters ----------------------------------------------------------------------------------
m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
d=$(awk '$1 == "meshgate_fault_delays_injected" { print $2 }' <<<"$m")
a=$(awk '$1 == "meshgate_fault_aborts_injected" { print $2 }' <<<"$m")
assert_cmp "${d:-0}" -ge 12 "meshgate_fault_delays_injected counts the delays (${d:-none})"
assert_cmp "${a:-0}" -ge $((n500 + 6)) "meshgate_fault_aborts_injected counts the aborts (${a:-none})"

mg_finish
