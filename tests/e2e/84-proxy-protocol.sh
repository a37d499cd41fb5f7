#!/usr/bin/env bash
# 84-proxy-protocol: behind a load balancer that sends the PROXY protocol header (the main
# config's proxyProtocol, Istio's gatewayTopology.proxyProtocol), the client's address is
# the one the header tells: in x-forwarded-for to the upstream, in the access log, and to
# AuthorizationPolicy ipBlocks (Istio's ingress access control task). Version 1 and 2
# (IPv4, IPv6, with TLVs), LOCAL keeping the socket's address, a TLS listener (curl
# --haproxy-protocol), a tcp route, a PeerAuthentication PERMISSIVE port (whose first byte
# is peeked after the header); a connection without a header, with a malformed one,
# or silent is closed unanswered and counted; a reload turns it off.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki
TLS_PORT=$(mg_port)
TCP_PORT=$(mg_port)
PERM_PORT=$(mg_port) # ISTIO_MUTUAL, PeerAuthentication PERMISSIVE: its first byte is peeked

main_config() {
	mg_start_config <<EOF
workers: 1
timeouts: {requestHeaders: 1s}
meshIdentity:
  certificate: $PKI/mesh-server.crt
  privateKey: $PKI/mesh-server.key
  caCertificates: $PKI/ca.crt
$1
accessLog:
  path: "$MG_ACCESS_LOG"
  logFormat:
    text: "pp %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %REQ(:PATH)% %RESPONSE_CODE% %REQ(X-REQUEST-ID)%"
EOF
}
main_config "proxyProtocol: {}"

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_server https HTTPS '[a.example.com]' "{mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}" "$TLS_PORT")
$(mg_yaml_server tcp TCP '["*"]' "" "$TCP_PORT")
$(mg_yaml_server mesh HTTPS '["*"]' "{mode: ISTIO_MUTUAL}" "$PERM_PORT")
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: a}}]
  tcp:
  - match: [{port: $TCP_PORT, destinationSubnets: [192.0.2.0/24]}]
    route: [{destination: {host: a, port: {number: 80}}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-allow, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: [203.0.113.0/24, "2001:db8::/64", 127.0.0.1/32]}}]
EOF
assert_valid "proxyProtocol loads"
mg_start

# v1 PREFIX: the request sent after a version 1 header from SRC (IPv4)
v1() { printf 'PROXY TCP4 %s 192.0.2.1 40000 %s\r\n' "$1" "$MG_PORT"; }
# req PATH ID: a keep-alive-less request
req() { printf 'GET %s HTTP/1.1\r\nHost: a.example.com\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n' "$1" "$2"; }
status_of() { head -n 1 | tr -d '\r' | cut -d' ' -f2; }
tag() { printf 'pp-%s-%s' "$1" "$(date +%s%N)"; }

# --- version 1: the client's address everywhere --------------------------------------------
id=$(tag v1)
out=$({ v1 203.0.113.9; req /echo "$id"; } | mg_raw "$MG_PORT")
assert_eq "$(status_of <<<"$out")" 200 "version 1 header, then the request: 200"
assert_contains "$out" '"x-forwarded-for": "203.0.113.9"' "the upstream sees the told client in x-forwarded-for"
assert_log_contains "^pp 203\\.0\\.113\\.9:40000 192\\.0\\.2\\.1:$MG_PORT /echo 200 $id\$" "$MG_ACCESS_LOG"

# --- AuthorizationPolicy ipBlocks judge the told address -----------------------------------
out=$({ v1 198.51.100.5; req /echo x; } | mg_raw "$MG_PORT")
assert_eq "$(status_of <<<"$out")" 403 "a told client outside the policy's ipBlocks: 403"

# --- version 2: IPv6 with TLVs; LOCAL keeps the socket's address --------------------------
id=$(tag v2)
out=$("$PYTHON" - "$MG_PORT" "$id" <<'EOF'
import socket, struct, sys
port, rid = int(sys.argv[1]), sys.argv[2]
sig = b"\r\n\r\n\x00\r\nQUIT\n"
addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
body = addrs + struct.pack("!HH", 5555, 8443) + b"\x01\x00\x02h2" + b"\x04\x00\x00"
hdr = sig + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(hdr + ("GET /v2 HTTP/1.1\r\nHost: a.example.com\r\nX-Request-Id: %s\r\n"
                 "Connection: close\r\n\r\n" % rid).encode())
print(s.recv(200).split(b"\r\n")[0].decode())
EOF
)
assert_eq "$out" "HTTP/1.1 200 OK" "version 2 over IPv6 with TLVs: 200"
assert_log_contains "^pp \\[2001:db8::7\\]:5555 \\[2001:db8::1\\]:8443 /v2 200 $id\$" "$MG_ACCESS_LOG"
id=$(tag local)
out=$({ printf '\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00'; req /local "$id"; } | mg_raw "$MG_PORT")
assert_eq "$(status_of <<<"$out")" 200 "a LOCAL header (the balancer's health check): 200"
assert_log_contains "^pp 127\\.0\\.0\\.1:[0-9]+ 127\\.0\\.0\\.1:$MG_PORT /local 200 $id\$" "$MG_ACCESS_LOG"

# --- TLS after the header (curl --haproxy-protocol sends version 1) ------------------------
id=$(tag tls)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --haproxy-protocol --cacert "$PKI/ca.crt" \
	--resolve "a.example.com:$TLS_PORT:127.0.0.1" -H "X-Request-Id: $id" "https://a.example.com:$TLS_PORT/tls")
assert_eq "$code" 200 "HTTPS after a PROXY header: 200"
assert_log_contains "^pp 127\\.0\\.0\\.1:[0-9]+ 127\\.0\\.0\\.1:$TLS_PORT /tls 200 $id\$" "$MG_ACCESS_LOG"

# --- a tcp route: the header is taken off, the rest relayed ---------------------------------
out=$({ v1 203.0.113.10; req /tcp x; } | mg_raw "$TCP_PORT")
assert_eq "$(status_of <<<"$out")" 200 \
	"tcp route after a PROXY header: its destinationSubnets match the told address, the upstream answers"
assert_not_contains "$out" "PROXY TCP4" "the header is not relayed"
assert_log_contains "^pp 203\\.0\\.113\\.10:40000 192\\.0\\.2\\.1:$MG_PORT - 0 -\$" "$MG_ACCESS_LOG"

# --- a PERMISSIVE port: after the header, its first byte is peeked (plaintext here) -------
id=$(tag perm)
out=$({ v1 203.0.113.11; req /perm "$id"; } | mg_raw "$PERM_PORT")
assert_eq "$(status_of <<<"$out")" 200 "PERMISSIVE port after a PROXY header: plaintext served"
assert_log_contains "^pp 203\\.0\\.113\\.11:40000 192\\.0\\.2\\.1:$MG_PORT /perm 200 $id\$" "$MG_ACCESS_LOG"

# --- no header, a bad one, none in time: closed unanswered, counted -------------------------
before=$(mg_metric downstream_cx_proxy_proto_error)
out=$(req /nohdr x | mg_raw "$MG_PORT")
assert_eq "$out" "" "a request without the header: closed unanswered"
out=$({ printf 'PROXY TCP4 203.0.113.9 192.0.2.1 040000 80\r\n'; req /bad x; } | mg_raw "$MG_PORT")
assert_eq "$out" "" "a malformed header (a port with a leading zero): closed unanswered"
out=$(mg_raw -t 4 "$MG_PORT" </dev/null)
assert_eq "$out" "" "a silent client: closed after requestHeaders"
assert_eq "$(mg_metric downstream_cx_proxy_proto_error)" "$((before + 3))" \
	"meshgate_downstream_cx_proxy_proto_error counts the three"
assert_log_contains "closed: PROXY protocol: not a PROXY protocol header"
assert_log_contains "closed: PROXY protocol: version 1 port is not a number in 0..65535"

# --- a reload turns it off ------------------------------------------------------------------
main_config ""
assert_reload applied
id=$(tag off)
out=$(req /off "$id" | mg_raw "$MG_PORT")
assert_eq "$(status_of <<<"$out")" 200 "proxyProtocol off: a plain request is served"
assert_log_contains "^pp 127\\.0\\.0\\.1:[0-9]+ 127\\.0\\.0\\.1:$MG_PORT /off 200 $id\$" "$MG_ACCESS_LOG"

mg_stop
mg_finish
