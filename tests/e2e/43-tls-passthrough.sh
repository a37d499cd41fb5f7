#!/usr/bin/env bash
# 43-tls-passthrough: Gateway servers with tls.mode PASSTHROUGH (protocol HTTPS and TLS)
# relay TLS by SNI without terminating it (Istio's "Ingress Gateway without TLS
# Termination"): the client sees the upstream's own certificate, two SNI hosts reach two
# upstreams, a wildcard SNI host, one port mixing passthrough hosts with a host meshgate
# terminates itself, a ClientHello split over TCP segments, unknown SNI / no SNI / not TLS
# closed (NR) and logged, upstream down (UF,URX), the access-log fields of a passthrough
# connection, a large body through the relay, and the load-time errors.
# Upstreams are `openssl s_server` with throwaway certificates from
# tests/unit/tls-fixtures.sh.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream web
mg_pki

# s_server_start NAME CERT KEY: a TLS upstream on a free port serving the files of
# $MG_DIR/www-NAME (-WWW); sets SS_<NAME>_PORT.
s_server_start() {
	local name=$1 port pid dir="$MG_DIR/www-$1"
	port=$(mg_port) || mg_fatal "no free port"
	mkdir -p "$dir"
	echo "this is upstream $name" >"$dir/index.html"
	(cd "$dir" && exec openssl s_server -accept "127.0.0.1:$port" -cert "$PKI/$2" \
		-key "$PKI/$3" -WWW -quiet >"$MG_DIR/s_server-$name.log" 2>&1) &
	pid=$!
	mg__track "$pid"
	mg_wait_until 10 "$PYTHON" -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$port" ||
		mg_fatal "s_server $name did not start"
	printf -v "SS_${name^^}_PORT" '%s' "$port"
}
s_server_start a a.crt a.key
s_server_start d default.crt default.key
mg_make_file "$MG_DIR/www-a/big.bin" 16M 5
PT_PORT=$(mg_port)   # a port with passthrough servers only
DOWN_PORT=$(mg_port) # nothing listens there

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server https-pt HTTPS '[a.example.com, down.example.com]' '{mode: PASSTHROUGH}')
$(mg_yaml_server tls-pt TLS '[default.example.com]' '{mode: PASSTHROUGH}')
$(mg_yaml_server https-term HTTPS '["*.wild.example.com"]' "{mode: SIMPLE, serverCertificate: $PKI/wild.crt, privateKey: $PKI/wild.key}")
$(mg_yaml_server tls-only TLS '["*.example.com"]' '{mode: PASSTHROUGH}' "$PT_PORT")
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend-a
spec:
  hosts: [backend-a.internal]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $SS_A_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend-d
spec:
  hosts: [backend-d.internal]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $SS_D_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend-down
spec:
  hosts: [backend-down.internal]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $DOWN_PORT}}]
$(mg_yaml_service web "$UP_WEB_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: passthrough
spec:
  hosts: [a.example.com, default.example.com, down.example.com]
  gateways: [gw]
  tls:
  - match: [{port: $MG_PORT, sniHosts: [a.example.com]}]
    route: [{destination: {host: backend-a.internal, port: {number: 443}}}]
  - match: [{sniHosts: [default.example.com]}]
    route: [{destination: {host: backend-d.internal}}]
  - match: [{sniHosts: [down.example.com]}]
    route: [{destination: {host: backend-down.internal}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: wildcard
spec:
  hosts: ["*.example.com"]
  gateways: [gw]
  tls:
  - match: [{port: $PT_PORT, sniHosts: ["*.example.com"]}]
    route: [{destination: {host: backend-d.internal}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: terminated
spec:
  hosts: ["*.wild.example.com"]
  gateways: [gw]
  http:
  - route: [{destination: {host: web}}]
EOF
mg_start

# tls_get HOST PATH [PORT]: GET https://HOST:PORT/PATH through meshgate (body in $MG_BODY)
tls_get() {
	local host=$1 path=$2 port=${3:-$MG_PORT}
	curl -sS --max-time 20 --cacert "$PKI/ca.crt" --resolve "$host:$port:127.0.0.1" \
		-o "$MG_BODY" -w '%{http_code}' "https://$host:$port$path" 2>"$MG_DIR/last.curlerr"
}

# subject_for SNI [PORT]: the subject of the certificate the client is shown
subject_for() {
	openssl s_client -connect "127.0.0.1:${2:-$MG_PORT}" -servername "$1" -CAfile "$PKI/ca.crt" \
		</dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null
}

# Two SNI hosts, two upstreams; each client verifies the upstream's own certificate.
assert_eq "$(tls_get a.example.com /index.html)" 200 "a.example.com passed through"
assert_body_contains "this is upstream a"
assert_eq "$(tls_get default.example.com /index.html)" 200 "default.example.com passed through"
assert_body_contains "this is upstream d"
assert_contains "$(subject_for a.example.com)" "CN = a.example.com" \
	"SNI a.example.com: the upstream's certificate"
assert_contains "$(subject_for default.example.com)" "CN = default.example.com" \
	"SNI default.example.com: the other upstream's certificate"

# The terminated host on the same port: meshgate's own certificate and HTTP routing.
assert_eq "$(tls_get x.wild.example.com /echo)" 200 "terminated host on the mixed port"
assert_eq "$(mg_json name)" web "routed by the http route"
assert_eq "$(mg_json headers.x-forwarded-proto)" https "terminated: x-forwarded-proto https"
assert_contains "$(subject_for x.wild.example.com)" "CN = *.wild.example.com" \
	"SNI x.wild.example.com: meshgate's certificate"

# A wildcard SNI host on a passthrough-only port.
assert_eq "$(tls_get any.example.com /index.html "$PT_PORT")" 000 \
	"the upstream's certificate does not cover any.example.com (curl refuses it)"
assert_contains "$(subject_for any.example.com "$PT_PORT")" "CN = default.example.com" \
	"*.example.com passed through to backend-d"

# A large body through the relay.
assert_eq "$(tls_get a.example.com /big.bin)" 200 "16 MiB through the passthrough relay"
assert_eq "$(mg_sha256 "$MG_BODY")" "$(mg_sha256 "$MG_DIR/www-a/big.bin")" "its sha256 is intact"

# A ClientHello cut over TCP segments sent 300 ms apart still finds its route.
out=$("$PYTHON" - "$MG_PORT" "$PKI/ca.crt" <<'EOF'
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, outg, server_hostname="a.example.com")
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outg.read()
for piece in (hello[:3], hello[3:40], hello[40:]):  # inside the record header, then the body
    s.sendall(piece)
    time.sleep(0.3)
def pump():
    data = outg.read()
    if data:
        s.sendall(data)
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pump()
        data = s.recv(65536)
        if not data:
            sys.exit("closed during the handshake")
        inc.write(data)
pump()
tls.write(b"GET /index.html HTTP/1.0\r\n\r\n")
pump()
body = b""
while True:
    try:
        data = tls.read(65536)
        if not data:
            break
        body += data
    except ssl.SSLWantReadError:
        chunk = s.recv(65536)
        if not chunk:
            break
        inc.write(chunk)
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        break
print(tls.getpeercert()["subject"], body.decode(errors="replace"))
EOF
)
assert_contains "$out" "a.example.com" "split ClientHello: verified the upstream's certificate"
assert_contains "$out" "this is upstream a" "split ClientHello: relayed"

# Unknown SNI, no SNI, not TLS: closed, logged with the reason, NR in the access log.
assert_ne "$(tls_get nobody.example.org /index.html)" 200 "unknown SNI is closed"
assert_log_contains "closed: no route for SNI nobody\.example\.org"
openssl s_client -connect "127.0.0.1:$MG_PORT" -noservername </dev/null >/dev/null 2>&1
assert_log_contains "closed: no SNI in the ClientHello"
out=$(printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' | mg_raw -t 5 "$PT_PORT")
assert_eq "$out" "" "plain HTTP on a passthrough port is closed without a byte"
assert_log_contains "closed: not a TLS handshake record"
assert_log_contains "\"- - -\" 0 NR filter_chain_not_found - \"-\" 0 0 [0-9]+ - \"-\" \"-\" \"-\" \"-\" \"-\" - - 127\.0\.0\.1:$MG_PORT 127\.0\.0\.1:[0-9]+ nobody\.example\.org -\$" "$MG_ACCESS_LOG"

# Upstream down: the client's connection is closed, UF,URX with the upstream named.
assert_ne "$(tls_get down.example.com /index.html)" 200 "upstream down: connection closed"
assert_log_contains "\"- - -\" 0 UF,URX - - \"-\" [0-9]+ 0 [0-9]+ - .* \"127\.0\.0\.1:$DOWN_PORT\" outbound\|443\|\|backend-down\.internal - 127\.0\.0\.1:$MG_PORT 127\.0\.0\.1:[0-9]+ down\.example\.com -\$" "$MG_ACCESS_LOG"

# The access-log line of a relayed connection: SNI, upstream, cluster, bytes both ways.
ADDR='127\.0\.0\.1:[0-9]+'
assert_log_contains "^\[[^]]+\] \"- - -\" 0 - - - \"-\" [0-9]+ [0-9]+ [0-9]+ - \"-\" \"-\" \"-\" \"-\" \"127\.0\.0\.1:$SS_A_PORT\" outbound\|443\|\|backend-a\.internal $ADDR 127\.0\.0\.1:$MG_PORT $ADDR a\.example\.com -\$" "$MG_ACCESS_LOG"
big=$(awk '$2 == "\"-" && $11 > 16777216 && $(NF - 1) == "a.example.com" { n++ } END { print n + 0 }' "$MG_ACCESS_LOG")
assert_cmp "$big" -ge 1 "the 16 MiB response is counted in bytes sent"
# The terminated request's line (HTTP/2: curl offers h2) names its SNI too.
assert_log_contains "\"GET /echo HTTP/2\" 200 .* x\.wild\.example\.com -\$" "$MG_ACCESS_LOG"

assert_contains "$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/listeners")" \
	"127.0.0.1:$MG_PORT 1 virtual host, 3 passthrough SNI hosts" "/listeners counts SNI hosts"

assert_cmp "$(mg_metric downstream_cx_passthrough)" -ge 8 "passthrough relays are counted"
assert_cmp "$(mg_metric downstream_cx_no_route)" -ge 3 "unknown SNI, no SNI and not TLS are counted"
assert_cmp "$(mg_metric upstream_cx_connect_fail)" -ge 1 "the connect failure is counted"

# Load-time errors: a tls route on a terminating server, and an SNI host a terminating
# server on the port owns.
mg_resource bad <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-terminated
spec:
  hosts: ["*.wild.example.com"]
  gateways: [gw]
  tls:
  - match: [{port: $MG_PORT, sniHosts: [y.wild.example.com]}]
    route: [{destination: {host: backend-a.internal}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-owned
spec:
  hosts: [a.example.com, "*.wild.example.com"]
  gateways: [gw]
  tls:
  - match: [{port: $MG_PORT, sniHosts: ["*.wild.example.com"]}]
    route: [{destination: {host: backend-a.internal}}]
EOF
mg_validate
assert_eq "$MG_VALIDATE_RC" 1 "-t refuses the bad tls routes"
assert_contains "$MG_VALIDATE_OUT" "VirtualService default/bad-terminated: spec.tls[0].match[0]: tls routes need a server with tls.mode PASSTHROUGH" \
	"a tls route on a terminating server is an error"
assert_contains "$MG_VALIDATE_OUT" "SNI host *.wild.example.com on 127.0.0.1:$MG_PORT belongs to the HTTPS with tls.mode SIMPLE server of Gateway default/gw" \
	"an SNI host owned by a terminating server is an error"
rm -f "$MG_RESOURCES/bad.yaml"

mg_finish
