#!/usr/bin/env bash
# 44-tcp: TCP Gateway servers relay connections by VirtualService tcp routes (Istio's TCP
# traffic shifting task): HTTP through a tcp route, large bodies both ways with their
# sha256 intact, a half-closing client still gets its answer, weights 80/20 over ~100
# connections, destinationSubnets, upstream down -> closed with UF,URX, the access-log line
# of a TCP connection, idle timeout, relays that survive a reload and a SIGTERM drain, and
# the drain deadline closing a relay that outlives it.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream v1
mg_upstream v2
DOWN_PORT=$(mg_port)   # nothing listens there
TCP_DOWN=$(mg_port)    # TCP server whose route goes to DOWN_PORT
TCP_SUBNET=$(mg_port)  # TCP server whose only route wants another destination subnet
TCP_STICKY=$(mg_port)  # TCP server to a cluster with useSourceIp hashing and maxConnections 1

mg_start_config <<EOF
workers: 2
timeouts:
  idle: 3s
  drain: 2s
EOF

mg_resource all <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  servers:
  - port: {number: $MG_PORT, name: tcp, protocol: TCP}
    bind: 127.0.0.1
    hosts: ["*"]
  - port: {number: $TCP_DOWN, name: tcp-down, protocol: TCP}
    bind: 127.0.0.1
    hosts: ["*"]
  - port: {number: $TCP_SUBNET, name: tcp-subnet, protocol: TCP}
    bind: 127.0.0.1
    hosts: ["*"]
  - port: {number: $TCP_STICKY, name: tcp-sticky, protocol: TCP}
    bind: 127.0.0.1
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {tcp: $UP_V1_PORT}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {tcp: $UP_V2_PORT}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: down
spec:
  hosts: [down.default.svc.cluster.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: $DOWN_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: sticky
spec:
  hosts: [sticky.default.svc.cluster.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {tcp: $UP_V1_PORT}}
  - {address: 127.0.0.1, ports: {tcp: $UP_V2_PORT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: sticky
spec:
  host: sticky
  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true}}
    connectionPool: {tcp: {maxConnections: 1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: $MG_PORT}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
      weight: 80
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
      weight: 20
  - match: [{port: $TCP_DOWN}]
    route: [{destination: {host: down}}]
  - match: [{port: $TCP_SUBNET, destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: tcp-echo, subset: v1}}]
  - match: [{port: $TCP_STICKY}]
    route: [{destination: {host: sticky}}]
EOF
mg_start

# HTTP over the tcp route: the relay does not look at the bytes.
assert_status GET /echo 200
assert_match "$(mg_json name)" '^v[12]$' "answered by v1 or v2"
assert_eq "$(mg_json headers.host)" "127.0.0.1:$MG_PORT" "the request head arrives as sent"

# Large bodies in both directions.
mg_make_file "$MG_DIR/up.bin" 24M 7
assert_status POST /sha256 200 --data-binary "@$MG_DIR/up.bin" -H 'content-type: application/octet-stream'
assert_eq "$(mg_json sha256)" "$(mg_sha256 "$MG_DIR/up.bin")" "24 MiB upload arrives intact"
assert_eq "$(mg_json length)" 25165824 "upload length"
curl -sS --max-time 60 -o "$MG_DIR/down.bin" "$(mg_url "/bytes/48M?seed=3")"
assert_eq "$(mg_sha256 "$MG_DIR/down.bin")" "$(mg_bytes_sha256 48M 3)" "48 MiB download arrives intact"

# A client that half-closes after its request still reads the whole answer: its FIN is
# passed on only after the request, and the upstream's FIN ends the relay.
out=$(printf 'GET /echo/half HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n' | mg_raw -s "$MG_PORT")
assert_contains "$out" "HTTP/1.1 200" "half-closed client gets its response"
assert_contains "$out" '"path": "/echo/half"' "the full body, too"

# Weights 80/20, one connection each (Istio's TCP traffic shifting task).
counts=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys
port = int(sys.argv[1])
n = {"v1": 0, "v2": 0, "other": 0}
for _ in range(100):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    name = "other"
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"x-upstream:"):
            name = line.split(b":", 1)[1].strip().decode()
    n[name if name in n else "other"] += 1
print(n["v1"], n["v2"], n["other"])
EOF
)
read -r n1 n2 nother <<<"$counts"
mg_say "# weights 80/20 over 100 connections: v1=$n1 v2=$n2 other=$nother"
assert_eq "$nother" 0 "every connection answered"
assert_cmp "$n1" -ge 60 "v1 gets about 80% ($n1)"
assert_cmp "$n2" -ge 5 "v2 gets about 20% ($n2)"

# The access-log line of a TCP connection: Envoy tcp_proxy's, no method or path, status 0.
sleep 0.3
ADDR='127\.0\.0\.1:[0-9]+'
assert_log_contains "^\[[^]]+\] \"- - -\" 0 - - - \"-\" [0-9]+ [0-9]+ [0-9]+ - \"-\" \"-\" \"-\" \"-\" \"127\.0\.0\.1:($UP_V1_PORT|$UP_V2_PORT)\" outbound\|9000\|v[12]\|tcp-echo\.default\.svc\.cluster\.local $ADDR 127\.0\.0\.1:$MG_PORT $ADDR - -\$" "$MG_ACCESS_LOG"
big=$(awk '$2 == "\"-" && $5 == 0 && $11 >= 50331648 { n++ } END { print n + 0 }' "$MG_ACCESS_LOG")
assert_cmp "$big" -ge 1 "the 48 MiB download is counted in bytes sent"

# Upstream down: the client connection is closed, the line says UF,URX.
out=$(printf 'GET / HTTP/1.1\r\nHost: d\r\n\r\n' | mg_raw -t 5 "$TCP_DOWN")
assert_eq "$out" "" "connection to a down upstream is closed without a byte"
assert_log_contains "\"- - -\" 0 UF,URX - - \"-\" [0-9]+ 0 [0-9]+ - .* \"127\.0\.0\.1:$DOWN_PORT\" outbound\|9000\|\|down\.default\.svc\.cluster\.local - 127\.0\.0\.1:$TCP_DOWN " "$MG_ACCESS_LOG"

# destinationSubnets: 127.0.0.1 is not in 10.0.0.0/8, so no route.
out=$(printf 'GET / HTTP/1.1\r\nHost: s\r\n\r\n' | mg_raw -t 5 "$TCP_SUBNET")
assert_eq "$out" "" "no tcp route for this destination address: closed"
assert_log_contains "\"- - -\" 0 NR filter_chain_not_found .* 127\.0\.0\.1:$TCP_SUBNET " "$MG_ACCESS_LOG"
assert_log_contains "closed: no tcp route"

# The DestinationRule applies to relays: useSourceIp hashing sends every connection from
# 127.0.0.1 to one endpoint, and tcp.maxConnections 1 closes a second concurrent one (UO).
names=""
for _ in $(seq 1 8); do
	printf 'GET /echo HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n' | mg_raw "$TCP_STICKY" >"$MG_DIR/sticky.out"
	names="$names $(sed -n 's/^x-upstream: *\([a-z0-9]*\).*/\1/p' "$MG_DIR/sticky.out" | tr -d '\r')"
done
assert_match "$names" '^( v1){8}$|^( v2){8}$' "useSourceIp: one endpoint for one client address ($names)"
curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TCP_STICKY/delay/1500" \
	>"$MG_DIR/sticky-hold.code" &
bg=$!
sleep 0.4
out=$(printf 'GET /echo HTTP/1.1\r\nHost: s\r\n\r\n' | mg_raw -t 5 "$TCP_STICKY")
assert_eq "$out" "" "over tcp.maxConnections: the connection is closed"
wait "$bg"
assert_eq "$(cat "$MG_DIR/sticky-hold.code")" 200 "the connection within the limit is served"
assert_log_contains "\"- - -\" 0 UO upstream_overflow .* outbound\|9000\|\|sticky\.default\.svc\.cluster\.local " "$MG_ACCESS_LOG"

# Idle timeout (3s here): a silent relay is closed.
t0=$(mg__now_ms)
out=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
print("closed" if s.recv(1) == b"" else "data")
EOF
)
dt=$(($(mg__now_ms) - t0))
assert_eq "$out" closed "an idle relay is closed"
assert_cmp "$dt" -ge 2500 "not before the idle timeout (${dt} ms)"
assert_cmp "$dt" -lt 10000 "soon after it (${dt} ms)"
assert_log_contains "\"- - -\" 0 - idle_timeout " "$MG_ACCESS_LOG"

assert_contains "$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/listeners")" \
	"127.0.0.1:$MG_PORT 0 virtual hosts, 1 tcp route" "/listeners counts tcp routes"

assert_cmp "$(mg_metric downstream_cx_tcp)" -ge 104 "tcp relays are counted"
assert_cmp "$(mg_metric downstream_cx_no_route)" -ge 1 "no-route closes are counted"
assert_cmp "$(mg_metric upstream_cx_connect_fail)" -ge 1 "connect failures are counted"

# A relay in progress survives a reload (it keeps its snapshot) ...
curl -s --max-time 10 -o "$MG_DIR/reload.body" -w '%{http_code}' \
	"http://127.0.0.1:$MG_PORT/delay/1500" >"$MG_DIR/reload.code" &
bg=$!
sleep 0.4
cp "$MG_RESOURCES/all.yaml" "$MG_RESOURCES/all.yaml.orig"
sed -i 's/weight: 80/weight: 50/; s/weight: 20/weight: 50/' "$MG_RESOURCES/all.yaml"
assert_reload applied
wait "$bg"
assert_eq "$(cat "$MG_DIR/reload.code")" 200 "a relay open across the reload completes"

# ... and a SIGTERM drain (2s here): a relay that ends within it completes, one that
# does not is closed at the deadline, and then the process exits.
curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
	"http://127.0.0.1:$MG_PORT/delay/500" >"$MG_DIR/drain-short.code" &
bg1=$!
curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
	"http://127.0.0.1:$MG_PORT/delay/6000" >"$MG_DIR/drain-long.code" &
bg2=$!
sleep 0.3
t0=$(mg__now_ms)
mg_stop
dt=$(($(mg__now_ms) - t0))
wait "$bg1" "$bg2"
assert_eq "$(cat "$MG_DIR/drain-short.code")" 200 "a relay open at SIGTERM completes during the drain"
assert_eq "$(cat "$MG_DIR/drain-long.code")" 000 "a relay still open at the drain deadline is closed"
assert_cmp "$dt" -ge 1500 "the drain waited for the open relay (${dt} ms)"
assert_cmp "$dt" -lt 9000 "and not beyond its deadline (${dt} ms)"
assert_log_contains "drain deadline reached with 1 connections open"

mg_finish
