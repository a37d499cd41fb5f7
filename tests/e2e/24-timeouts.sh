#!/usr/bin/env bash
# 24-timeouts: route timeout -> 504 UT (and no desync: the late response of
# the abandoned upstream connection never answers a later request); a timeout
# after the head was sent aborts the client connection; no route timeout, no
# limit; request head timeout -> 408 (slowloris included); request body idle
# -> 408; idle client connections closed; idle pooled upstream connections
# closed after upstreamIdle.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 1
timeouts:
  requestHeaders: 1s
  requestBodyIdle: 1s
  idle: 2s
  upstreamIdle: 1s
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: timed
    match: [{uri: {prefix: /t/}}]
    rewrite: {uri: /}
    timeout: 500ms
    route: [{destination: {host: a}}]
  - name: untimed
    route: [{destination: {host: a}}]
EOF

mg_start

ms_since() { echo $(($(mg__now_ms) - $1)); }

# --- route timeout ----------------------------------------------------------------------
t0=$(mg__now_ms)
assert_status GET /t/delay/2000 504
el=$(ms_since "$t0")
assert_cmp "$el" -ge 450 "504 not before the 500 ms timeout ($el ms)"
assert_cmp "$el" -lt 1800 "504 at about 500 ms, not after the upstream answered ($el ms)"
assert_log_contains '"GET /t/delay/2000 HTTP/1.1" 504 UT ' "$MG_ACCESS_LOG"
assert_status GET /t/delay/100 200
assert_eq "$(mg_json path)" /delay/100 "a fast answer within the timeout"
m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics" | awk '$1 == "meshgate_upstream_rq_timeout" { print $2 }')
assert_cmp "${m:-0}" -ge 1 "meshgate_upstream_rq_timeout counted"

# no desync: the abandoned connection's late response answers nobody
assert_status GET /t/delay/800 504
for i in 1 2 3; do
	assert_status GET "/echo/next$i" 200
	assert_eq "$(mg_json path)" "/echo/next$i" "request $i after a 504 gets its own response"
	sleep 0.3
done

# timeout after the response head was sent: the client connection is aborted
t0=$(mg__now_ms)
code=$(curl -s -o "$MG_DIR/slow.body" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$MG_PORT/t/slowbody/3000")
rc=$?
el=$(ms_since "$t0")
if [ "$rc" != 0 ] || [ "$code" = 504 ]; then
	mg_ok "timeout after the head: not a complete response (http $code, curl rc $rc)"
else
	mg_fail "timeout after the head: http $code, curl rc 0, a response that looks complete"
fi
assert_cmp "$el" -lt 2500 "timeout after the head fires at about 500 ms ($el ms)"

# no route timeout: a slow upstream is waited for
assert_status GET /delay/1500 200
assert_eq "$(mg_json path)" /delay/1500 "no timeout on the route: 1.5 s answer delivered"

# --- request head timeout: 408 and close -----------------------------------------------------
# slow SCRIPT: a python client; prints "<status line or 'closed'> <ms until closed>"
slow() {
	"$PYTHON" - "$MG_PORT" "$1" <<'EOF'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
t0 = time.time()
if mode == "partial-head":
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
elif mode == "slowloris":
    s.settimeout(0.3)
    line = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    for i in range(len(line)):
        try:
            s.sendall(line[i:i + 1])
        except OSError:
            break
        try:
            if s.recv(1, socket.MSG_PEEK) is not None:
                break
        except socket.timeout:
            pass
        except OSError:
            break
elif mode == "body-idle":
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
elif mode == "idle":
    pass
elif mode == "idle-after":
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    d = b""
    while not d.endswith(b"}\n"):
        d += s.recv(65536)
    t0 = time.time()
s.settimeout(10)
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
first = out.split(b"\r\n", 1)[0].decode("latin-1") if out else "closed"
print("%s|%d" % (first, (time.time() - t0) * 1000))
EOF
}

r=$(slow partial-head)
assert_match "${r%|*}" '^HTTP/1\.1 408 ' "incomplete head -> 408"
assert_cmp "${r#*|}" -ge 800 "408 not before requestHeaders (${r#*|} ms)"
assert_cmp "${r#*|}" -lt 3000 "408 at about requestHeaders = 1 s (${r#*|} ms), then closed"

r=$(slow slowloris)
assert_match "${r%|*}" '^(HTTP/1\.1 408 |closed)' "slowloris (a byte every 300 ms) -> 408 or closed"
assert_cmp "${r#*|}" -lt 3500 "slowloris cut off at about 1 s (${r#*|} ms after its first byte)"

r=$(slow body-idle)
assert_match "${r%|*}" '^HTTP/1\.1 408 ' "request body stalls -> 408"
assert_cmp "${r#*|}" -lt 3000 "408 at about requestBodyIdle = 1 s (${r#*|} ms), then closed"
assert_status GET /echo/after-body-timeout 200

# --- idle client connections ------------------------------------------------------------------
r=$(slow idle)
assert_eq "${r%|*}" closed "a connection that sends nothing is closed without a response"
assert_cmp "${r#*|}" -ge 1500 "not before idle = 2 s (${r#*|} ms)"
assert_cmp "${r#*|}" -lt 4500 "at about idle = 2 s (${r#*|} ms)"
r=$(slow idle-after)
assert_eq "${r%|*}" closed "a kept-alive connection idle after a response is closed"
assert_cmp "${r#*|}" -ge 1500 "not before idle = 2 s (${r#*|} ms)"
assert_cmp "${r#*|}" -lt 4500 "at about idle = 2 s (${r#*|} ms)"

# --- upstreamIdle: pooled connections closed after 1 s -------------------------------------------
assert_status GET /echo/pool1 200
c1=$(mg_header x-upstream-conn)
assert_status GET /echo/pool2 200
assert_header x-upstream-conn "$c1" "pooled connection reused within upstreamIdle"
sleep 1.8
assert_status GET /echo/pool3 200
assert_ne "$(mg_header x-upstream-conn)" "$c1" "after upstreamIdle a new upstream connection"

assert_log_contains '" 408 ' "$MG_ACCESS_LOG"
assert_alive
mg_finish
