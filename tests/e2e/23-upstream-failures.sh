#!/usr/bin/env bash
# 23-upstream-failures: every upstream fault maps to the right answer and
# flag, never a hang, never a crash, never a truncated response that looks
# complete. Refused -> 503 UF; connect timeout -> 503 UF; reset or close
# before the response -> 503 UC; invalid response -> 502 UPE; failure after
# the head was sent -> the client connection is aborted; an upstream that dies
# while pooled or mid-request; upstream 5xx passes through; the pool recovers.
# Routes keep Istio's default retry policy (connect failures and 503 are
# retried twice), hence URX where the retries ran out.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_upstream victim
mg_upstream dying
DOWN_PORT=$(mg_port) || mg_fatal "no free port" # nothing listens there

# A listener that never accepts, its accept queue filled: further SYNs are
# dropped, so a connect to it can only time out (a routed "blackhole" address
# is not reliable in sandboxes whose egress is intercepted).
BH_PORT=$(mg_port) || mg_fatal "no free port"
"$PYTHON" -c '
import socket, sys, time
ls = socket.socket()
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(0)
fill = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", int(sys.argv[1])))
    fill.append(c)
time.sleep(0.5)
print("READY", flush=True)
time.sleep(3600)' "$BH_PORT" >"$MG_DIR/blackhole.out" 2>&1 &
mg__track $!
mg_wait_until 5 grep -q READY "$MG_DIR/blackhole.out" || mg_fatal "blackhole listener did not start"

mg_start_config <<EOF
workers: 2
timeouts:
  upstreamConnect: 1s
EOF

se() { # se NAME ADDRESS PORT
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
  - address: $2
    ports: {http: $3}
EOF
}

{
	cat <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: all
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: down
    match: [{uri: {prefix: /down}}]
    route: [{destination: {host: down}}]
  - name: blackhole
    match: [{uri: {prefix: /blackhole}}]
    retries: {attempts: 0} # one connect timeout, not three (retries: 25-retries)
    route: [{destination: {host: blackhole}}]
  - name: victim
    match: [{uri: {prefix: /victim/}}]
    rewrite: {uri: /}
    route: [{destination: {host: victim}}]
  - name: dying
    match: [{uri: {prefix: /dying/}}]
    rewrite: {uri: /}
    route: [{destination: {host: dying}}]
  - name: to-a
    route: [{destination: {host: a}}]
EOF
	se a 127.0.0.1 "$UP_A_PORT"
	se down 127.0.0.1 "$DOWN_PORT"
	se blackhole 127.0.0.1 "$BH_PORT"
	se victim 127.0.0.1 "$UP_VICTIM_PORT"
	se dying 127.0.0.1 "$UP_DYING_PORT"
} | mg_resource all

mg_start


# --- connect failures: 503 UF ---------------------------------------------------------------
assert_status GET /down 503
assert_log_contains '"GET /down HTTP/1.1" 503 UF,URX ' "$MG_ACCESS_LOG"
assert_status POST /down/post 503 -d 'a body for nobody'
t0=$(mg__now_ms)
assert_status GET /blackhole 503
assert_cmp "$(($(mg__now_ms) - t0))" -lt 4000 "unreachable endpoint: 503 within upstreamConnect (1s) + slack"
assert_log_contains '"GET /blackhole HTTP/1.1" 503 UF ' "$MG_ACCESS_LOG"
assert_cmp "$(mg_metric upstream_cx_connect_fail)" -ge 3 "meshgate_upstream_cx_connect_fail counted"

# a 503 UF does not cost the client its connection
out=$(printf 'GET /down HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/after-down HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_eq "$(grep '^HTTP/1.1 ' <<<"$out" | awk '{print $2}' | paste -sd' ')" "503 200" \
	"503 UF then 200 on the same client connection"

# --- reset before the response: 503 UC -------------------------------------------------------------
assert_status GET /reset 503
assert_log_contains '"GET /reset HTTP/1.1" 503 UC ' "$MG_ACCESS_LOG"
assert_cmp "$(mg_metric upstream_rq_reset)" -ge 1 "meshgate_upstream_rq_reset counted"
assert_status GET /echo/after-reset 200

# --- invalid responses: 502 UPE -------------------------------------------------------------------
for kind in status header cl binary; do
	assert_status GET "/garbage?kind=$kind" 502
	assert_status GET "/echo/after-$kind" 200
done
assert_log_contains '"GET /garbage\?kind=status HTTP/1.1" 502 UPE ' "$MG_ACCESS_LOG"
assert_log_contains '"GET /garbage\?kind=cl HTTP/1.1" 502 UPE ' "$MG_ACCESS_LOG"
assert_cmp "$(mg_metric upstream_rq_bad_response)" -ge 4 "meshgate_upstream_rq_bad_response counted"

# --- failure after the head: the client must see an incomplete response -------------------------
# nocomplete DESC PATH: curl fails (18 partial, 56 recv error) or gets 502,
# and never exits 0 with a 200.
nocomplete() {
	local code rc
	code=$(curl -s -o "$MG_DIR/nc.body" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$MG_PORT$2")
	rc=$?
	if [ "$code" = 502 ] || { [ "$rc" != 0 ] && [ "$rc" != 28 ]; }; then
		mg_ok "$1: not delivered as complete (http $code, curl rc $rc)"
	else
		mg_fail "$1: http $code, curl rc $rc, $(stat -c %s "$MG_DIR/nc.body") body bytes: looks complete"
	fi
}
nocomplete "body shorter than Content-Length" "/garbage?kind=short"
nocomplete "invalid chunk size" "/garbage?kind=chunk"
nocomplete "reset after 1000 of 1 MiB (Content-Length)" "/bytes/1M?abort=1000"
nocomplete "reset after 100000 of 1 MiB (chunked)" "/bytes/1M?chunked=1&abort=100000"
nocomplete "reset after 1000 of 1 MiB (chunked)" "/bytes/1M?chunked=1&abort=1000"
assert_log_contains '"GET /bytes/1M\?abort=1000 HTTP/1.1" 200 UC ' "$MG_ACCESS_LOG"
# raw view of the chunked case: no final 0-size chunk may be sent
printf 'GET /bytes/200000?chunked=1&abort=100000 HTTP/1.1\r\nHost: x\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" >"$MG_DIR/abort.out"
if [ "$(tail -c 5 "$MG_DIR/abort.out" | od -An -tx1 | tr -d ' \n')" = 300d0a0d0a ]; then
	mg_fail "aborted chunked response ends with a final chunk (looks complete)"
else
	mg_ok "aborted chunked response has no final chunk"
fi
assert_status GET /echo/after-aborts 200

# --- upstream error statuses pass through ---------------------------------------------------------
assert_status GET /status/500 500
assert_status GET /status/503 503
assert_body_contains "status 503" "upstream's own 503 body"
assert_log_contains '"GET /status/503 HTTP/1.1" 503 URX ' "$MG_ACCESS_LOG"

# --- an upstream dies while its connection sits in the pool -----------------------------------------
assert_status GET /dying/echo 200
assert_status GET /dying/echo 200
mg_upstream_stop dying
t0=$(mg__now_ms)
assert_status GET /dying/echo 503
assert_cmp "$(($(mg__now_ms) - t0))" -lt 3000 "dead pooled upstream: quick 503"
assert_log_contains '"GET /dying/echo HTTP/1.1" 503 UF,URX ' "$MG_ACCESS_LOG"

# --- an upstream dies while a request is in flight (before the response) -----------------------------
curl -s -o "$MG_DIR/inflight.body" -w '%{http_code}' --max-time 10 \
	"http://127.0.0.1:$MG_PORT/victim/delay/3000" >"$MG_DIR/inflight.code" &
cpid=$!
sleep 0.8
mg_upstream_stop victim
wait "$cpid"
assert_eq "$(cat "$MG_DIR/inflight.code")" 503 "upstream gone mid-request: 503"
assert_log_contains '"GET /victim/delay/3000 HTTP/1.1" 503 UC ' "$MG_ACCESS_LOG"

# --- the pool is healthy after all of this, on every worker -------------------------------------------
ok=0
for i in $(seq 1 10); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MG_PORT/echo/final$i")" = 200 ] && ok=$((ok + 1))
done
assert_eq "$ok" 10 "ten fresh requests all 200 at the end"

assert_alive
mg_finish
