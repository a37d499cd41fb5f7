#!/usr/bin/env bash
# 21-keepalive-pipelining: client side, pipelined requests in one write are
# answered in order (slow first, direct and proxied mixed, 50 at once, bodies
# in between) and the connection closes after Connection: close; upstream side,
# one worker reuses its pooled connection across requests of one client
# connection and across client connections, opens no more connections than
# concurrent requests, and copes with an upstream that closes (Connection:
# close, idle timeout) without failing a request.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_upstream idle --idle-timeout 0.5

# One worker: one pool, so reuse across client connections is deterministic.
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
  name: idle
spec:
  hosts: [idle.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_IDLE_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: direct
    match: [{uri: {prefix: /direct}}]
    directResponse: {status: 200, body: {string: "direct\n"}}
  - name: idle
    match: [{uri: {prefix: /idle/}}]
    rewrite: {uri: /}
    route: [{destination: {host: idle}}]
  - name: to-a
    route: [{destination: {host: a}}]
EOF

mg_start

# paths FILE: the "path" values of the JSON bodies in FILE, in order.
paths() { tr -d '\r' <"$1" | sed -n 's/^ "path": "\(.*\)",$/\1/p' | paste -sd' '; }
statuses() { tr -d '\r' <"$1" | grep -a '^HTTP/1.1 ' | awk '{print $2}' | paste -sd' '; }

# --- pipelining -----------------------------------------------------------------------
printf '%s' "GET /echo/p1 HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n' \
	"POST /sha256 HTTP/1.1"$'\r\n'"Host: x"$'\r\n'"Transfer-Encoding: chunked"$'\r\n\r\n'"5"$'\r\n'"hello"$'\r\n'"0"$'\r\n\r\n' \
	"GET /delay/300 HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n' \
	"GET /status/201 HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n' \
	"POST /echo/p5 HTTP/1.1"$'\r\n'"Host: x"$'\r\n'"Content-Length: 3"$'\r\n\r\n'"abc" \
	"GET /echo/p6 HTTP/1.1"$'\r\n'"Host: x"$'\r\n'"Connection: close"$'\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" >"$MG_DIR/p1.out"
assert_eq "$(statuses "$MG_DIR/p1.out")" "200 200 200 201 200 200" "six pipelined requests: statuses in order"
assert_eq "$(paths "$MG_DIR/p1.out")" "/echo/p1 /delay/300 /echo/p5 /echo/p6" "pipelined bodies in order"
assert_contains "$(cat "$MG_DIR/p1.out")" "$(printf hello | sha256sum | cut -d' ' -f1)" \
	"pipelined chunked body reached the upstream"
assert_contains "$(tr -d '\r' <"$MG_DIR/p1.out")" '"body_len": 3' "pipelined Content-Length body"

# a slow response first: the fast one behind it waits its turn
printf 'GET /delay/600 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/fast HTTP/1.1\r\nHost: x\r\n\r\nGET /direct HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" >"$MG_DIR/p2.out"
assert_eq "$(statuses "$MG_DIR/p2.out")" "200 200 200 200" "slow, fast, direct, fast: four responses"
assert_eq "$(paths "$MG_DIR/p2.out")" "/delay/600 /echo/fast /echo/last" "the slow response comes first"
assert_match "$(tr -d '\r' <"$MG_DIR/p2.out" | tr '\n' ' ')" '"/echo/fast".*direct .*"/echo/last"' \
	"the direct response keeps its place"

# fifty in one write
req=""
for i in $(seq 1 50); do req+="GET /echo/n$i HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n'; done
req+="GET /echo/end HTTP/1.1"$'\r\n'"Host: x"$'\r\n'"Connection: close"$'\r\n\r\n'
printf '%s' "$req" | mg_raw -t 5 "$MG_PORT" >"$MG_DIR/p3.out"
want=$(for i in $(seq 1 50); do printf '/echo/n%s ' "$i"; done)/echo/end
assert_eq "$(paths "$MG_DIR/p3.out")" "$want" "51 pipelined requests answered in order"

# 5000 in one stream from a client that reads nothing for 2 s: meshgate stops
# reading instead of queueing (memory checked without a sanitizer), and then
# answers every one, in order.
if grep -q __asan_init "$MESHGATE" 2>/dev/null; then asan=1; else asan=0; fi
out=$("$PYTHON" - "$MG_PORT" "$MG_PID" <<'EOF'
import re, socket, sys, threading, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
n = 5000
reqs = b"".join(b"GET /echo/q%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
reqs += b"GET /echo/qlast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
base = rss()
s = socket.create_connection(("127.0.0.1", port), timeout=30)
t = threading.Thread(target=s.sendall, args=(reqs,))
t.start()
time.sleep(2)
growth = rss() - base
data = b""
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    data += b
t.join()
paths = re.findall(rb'"path": "([^"]*)"', data)
want = [b"/echo/q%d" % i for i in range(n)] + [b"/echo/qlast"]
print("growth=%d count=%d inorder=%d" % (growth, len(paths), paths == want))
EOF
)
mg_say "# 5001 pipelined requests: $out"
assert_contains "$out" "count=5001 inorder=1" "5001 pipelined requests from a slow reader: all answered in order"
if [ "$asan" = 0 ]; then
	g=$(sed -n 's/^growth=\([-0-9]*\) .*/\1/p' <<<"$out")
	assert_cmp "${g:-999999}" -lt 16384 "meshgate RSS grew ${g} KiB while the client did not read"
fi

# the connection ends after Connection: close (mg_raw returned before its 5 s idle limit)
t0=$(mg__now_ms)
printf 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | mg_raw -t 5 "$MG_PORT" >/dev/null
assert_cmp "$(($(mg__now_ms) - t0))" -lt 3000 "Connection: close: meshgate closes the connection"

# an idle kept-alive client connection stays open
out=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
def get(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    d = b""
    while b"\r\n\r\n" not in d:
        d += s.recv(65536)
    head, body = d.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        body += s.recv(65536)
    return head.split(b"\r\n")[0].decode()
r1 = get(b"/echo/k1")
time.sleep(1.0)
r2 = get(b"/echo/k2")
print(r1 + " | " + r2)
EOF
)
assert_eq "$out" "HTTP/1.1 200 OK | HTTP/1.1 200 OK" "a kept-alive client connection serves again after 1 s idle"

# --- upstream keep-alive reuse --------------------------------------------------------------
m0=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
u="http://127.0.0.1:$MG_PORT/echo"
curl -s -D "$MG_DIR/k.h" -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
	"$u/r1" "$u/r2" "$u/r3" "$u/r4" "$u/r5"
conns=$(grep -i '^x-upstream-conn:' "$MG_DIR/k.h" | tr -d '\r' | awk '{print $2}' | sort -u | wc -l)
assert_eq "$conns" 1 "five requests on one client connection use one upstream connection"
c1=$(mg_header x-upstream-conn "$MG_DIR/k.h")
for i in 1 2 3 4 5; do
	assert_status GET "/echo/s$i" 200
	assert_header x-upstream-conn "$c1" "separate client connection $i reuses upstream connection $c1"
done
m1=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
metric() { awk -v n="$1" '$1 == n { print $2 }' <<<"$2"; }
assert_eq "$(($(metric meshgate_upstream_cx_total "$m1") - $(metric meshgate_upstream_cx_total "$m0")))" 0 \
	"no upstream connection opened for ten sequential requests"
assert_cmp "$(($(metric meshgate_upstream_cx_reuse "$m1") - $(metric meshgate_upstream_cx_reuse "$m0")))" -ge 10 \
	"meshgate_upstream_cx_reuse counts the reuses"

# Connection: close from the client does not close the upstream connection
assert_status GET /echo/cc 200 -H 'Connection: close'
assert_header x-upstream-conn "$c1" "client Connection: close: upstream connection kept"
assert_status GET /echo/after-cc 200
assert_header x-upstream-conn "$c1" "and reused after"

# the upstream says Connection: close: meshgate opens a new one next time
assert_status GET /close 200
assert_header x-upstream-conn "$c1"
assert_ne "$(mg_header connection)" close "the upstream's Connection: close is not passed to the client"
assert_status GET /echo/after-close 200
assert_ne "$(mg_header x-upstream-conn)" "$c1" "after the upstream closed, a new upstream connection"

# concurrency: 4 clients x 25 requests need at most 4 upstream connections
before=$(awk '$1 == "a" { print $2 }' "$MG_STATS" | sort -un | tail -1)
pids=()
for i in 1 2 3 4; do
	curl -s -o /dev/null "http://127.0.0.1:$MG_PORT/echo/c$i-[1-25]" &
	pids+=($!)
done
wait "${pids[@]}"
n=$(awk -v b="$before" '$1 == "a" && $5 ~ /^\/echo\/c[0-9]/ && $2 > b { print $2 }' "$MG_STATS" | sort -u | wc -l)
assert_cmp "$n" -le 4 "100 requests from 4 clients used $n new upstream connections"
assert_eq "$(mg_upstream_count a '^/echo/c[0-9]')" 100 "all 100 reached the upstream"

# and concurrent slow requests are not queued behind each other: the pool
# opens a connection per concurrent request
t0=$(mg__now_ms)
pids=()
for i in $(seq 1 20); do
	curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$MG_PORT/delay/500?par=$i" >"$MG_DIR/par$i" &
	pids+=($!)
done
wait "${pids[@]}"
el=$(($(mg__now_ms) - t0))
assert_eq "$(cat "$MG_DIR"/par* | grep -c '^200$')" 20 "20 concurrent /delay/500 all 200"
# one after another they would take 10 s; in parallel about 0.5 s (the bound is loose
# so that a loaded machine does not fail it)
assert_cmp "$el" -lt 8000 "20 concurrent /delay/500 served in parallel ($el ms)"

# --- an upstream that closes idle connections itself (after 0.5 s) ---------------------------
fails=0
for i in 1 2 3 4; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MG_PORT/idle/echo/$i")
	[ "$code" = 200 ] || fails=$((fails + 1))
	sleep 0.8
done
assert_eq "$fails" 0 "requests after the upstream closed the pooled connection all succeed"
assert_eq "$(mg_upstream_count idle)" 4 "each reached the upstream once"
assert_log_not_contains ' 50[23] U' "$MG_ACCESS_LOG"

assert_alive
mg_finish
