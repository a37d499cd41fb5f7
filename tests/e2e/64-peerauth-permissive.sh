#!/usr/bin/env bash
# 64-peerauth-permissive: PeerAuthentication on an ISTIO_MUTUAL Gateway port.
# PERMISSIVE takes mutual TLS and plaintext HTTP on the same port and routes
# (the first byte tells them apart): a mesh client certificate is required on
# TLS as with STRICT, plaintext is served, both are counted and the JSON
# access log says which was TLS (downstream_tls_version); a client that sends
# nothing is closed by the header timeout. A reload to STRICT refuses
# plaintext again; portLevelMtls DISABLE serves plaintext only.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki

mg_start_config <<EOF
workers: 1
labels: {app: edge}
timeouts:
  requestHeaders: 1s
meshIdentity:
  certificate: $PKI/mesh-server.crt
  privateKey: $PKI/mesh-server.key
  caCertificates: $PKI/ca.crt
accessLog:
  path: "$MG_ACCESS_LOG"
  format: json
EOF

mg_resource all <<EOF
$(mg_yaml_https_gateway '["*"]' '{mode: ISTIO_MUTUAL}')
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF

# pa MODE [PORTMODE]: the mesh-wide policy MODE; with PORTMODE, a workload
# policy selecting this appliance sets PORTMODE on $MG_PORT only.
pa() {
	{
		cat <<EOF
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: $1}}
EOF
		[ $# -lt 2 ] || cat <<EOF
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: edge, namespace: default}
spec:
  selector: {matchLabels: {app: edge}}
  portLevelMtls:
    "$MG_PORT": {mode: $2}
EOF
	} | mg_resource pa
}

pa PERMISSIVE
mg_validate
assert_not_contains "$MG_VALIDATE_OUT" "STRICT" "PERMISSIVE is honoured: no served-STRICT warning"
mg_start

https="https://127.0.0.1:$MG_PORT"
http="http://127.0.0.1:$MG_PORT"
# mtls PATH: status of an mTLS request with the mesh client certificate
mtls() {
	curl -s -k --max-time 10 --cert "$PKI/client.crt" --key "$PKI/client.key" \
		-o "$MG_DIR/m.json" -w '%{http_code}' "$https$1"
}
# plain PATH: status of a plaintext request (000 when it fails)
plain() { curl -s --max-time 10 -o "$MG_DIR/p.json" -w '%{http_code}' "$http$1"; }
# tls_of PATH: downstream_tls_version of the access log line for PATH
tls_of() {
	"$PYTHON" - "$MG_ACCESS_LOG" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["path"] == sys.argv[2]:
        v = d.get("downstream_tls_version", "absent")
        print("null" if v is None else v)
EOF
}
# shellcheck disable=SC2317 # called through mg_wait_until
logged() { [ -n "$(tls_of "$1")" ]; }
# permissive TRANSPORT: meshgate_downstream_cx_permissive{transport="TRANSPORT"}
permissive() {
	curl -s --max-time 10 "http://127.0.0.1:$MG_ADMIN_PORT/metrics" |
		awk -v n="meshgate_downstream_cx_permissive{transport=\"$1\"}" '$1 == n { print $2 }'
}

assert_eq "$(curl -s --max-time 10 "http://127.0.0.1:$MG_ADMIN_PORT/listeners")" \
	"127.0.0.1:$MG_PORT 1 virtual host, mTLS PERMISSIVE" "/listeners shows the mode"
assert_eq "$(mtls /echo/mtls)" 200 "PERMISSIVE: an mTLS client with a mesh certificate"
assert_eq "$(mg_json name "$MG_DIR/m.json")" a "mTLS reaches the route"
assert_match "$(mg_json headers.x-forwarded-client-cert "$MG_DIR/m.json")" \
	'URI=spiffe://cluster.local/ns/default/sa/client' "mTLS: the verified identity in XFCC"
assert_eq "$(plain /echo/plain)" 200 "PERMISSIVE: a plaintext client on the same port"
assert_eq "$(mg_json name "$MG_DIR/p.json")" a "plaintext reaches the same route"
assert_eq "$(mg_json headers.x-forwarded-client-cert "$MG_DIR/p.json")" "" "plaintext: no XFCC"
curl -s -k --max-time 10 -o /dev/null "$https/echo/nocert"
rc=$?
assert_ne "$rc" 0 "PERMISSIVE: TLS without a client certificate is refused (curl rc $rc)"
curl -s -k --max-time 10 -o /dev/null --cert "$PKI/wrong-client.crt" \
	--key "$PKI/wrong-client.key" "$https/echo/wrong"
rc=$?
assert_ne "$rc" 0 "PERMISSIVE: a certificate from another root is refused (curl rc $rc)"
assert_log_contains "TLS handshake from .* failed" "$MG_LOG"
# keep-alive and pipelining work on a plaintext connection handed over by the peek
r=$(printf 'GET /echo/k1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/k2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | grep -c '^HTTP/1.1 200')
assert_eq "$r" 2 "two pipelined plaintext requests on one connection"

for p in /echo/mtls /echo/plain; do
	mg_wait_until 10 logged "$p" || mg_fail "no access log line for $p"
done
assert_match "$(tls_of /echo/mtls)" '^TLSv1\.[23]$' "access log: the mTLS request's TLS version"
assert_eq "$(tls_of /echo/plain)" null "access log: plaintext has no TLS version"
assert_cmp "$(permissive plaintext)" -ge 2 "plaintext connections counted"
assert_cmp "$(permissive tls)" -ge 3 "TLS connections counted"

# a client that sends nothing is closed by the header timeout (1 s)
r=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
t0 = time.time()
try:
    b = s.recv(1)
except OSError:
    b = b"?"
print("%s|%d" % ("closed" if b == b"" else "open", (time.time() - t0) * 1000))
EOF
)
assert_eq "${r%|*}" closed "a silent client is closed"
assert_cmp "${r#*|}" -lt 5000 "silent client closed by the header timeout (${r#*|} ms)"

# STRICT by reload: plaintext is refused, mTLS still works
pa STRICT
assert_reload applied
assert_eq "$(mtls /echo/strict)" 200 "STRICT: mTLS still works"
assert_ne "$(plain /echo/strict-plain)" 200 "STRICT: plaintext is refused"

# DISABLE on this port (portLevelMtls of a workload policy): plaintext only
pa STRICT DISABLE
mg_validate
assert_not_contains "$MG_VALIDATE_OUT" "warning" "DISABLE is honoured: no warning"
assert_reload applied
assert_contains "$(curl -s --max-time 10 "http://127.0.0.1:$MG_ADMIN_PORT/listeners")" \
	", mTLS DISABLE" "/listeners shows DISABLE"
assert_eq "$(plain /echo/disable)" 200 "DISABLE: plaintext is served"
assert_eq "$(mg_json name "$MG_DIR/p.json")" a "DISABLE: plaintext reaches the route"
assert_ne "$(mtls /echo/disable-mtls)" 200 "DISABLE: no TLS on the port"
assert_log_contains '"response_code":400,"response_flags":"DPE"' "$MG_ACCESS_LOG"

# a port shared with a SIMPLE server stays STRICT, and says so
pa PERMISSIVE
mg_resource all <<EOF
$(mg_yaml_https_gateway '["mesh.example.com"]' '{mode: ISTIO_MUTUAL}' \
	'["a.example.com"]' "{mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}")
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF
mg_validate
assert_contains "$MG_VALIDATE_OUT" "mTLS mode PERMISSIVE for port $MG_PORT: 127.0.0.1:$MG_PORT is shared with the server at" \
	"PERMISSIVE on a port shared with a SIMPLE server is reported"
assert_reload applied
assert_ne "$(plain /echo/shared)" 200 "shared port: plaintext is refused"

assert_alive
mg_finish
