#!/usr/bin/env bash
# 45-istio-mutual: a Gateway server with tls.mode ISTIO_MUTUAL (the mesh-facing
# side) presents the appliance's mesh identity (main config meshIdentity) and
# requires a client certificate from the mesh root; the verified client
# identity reaches the upstream in x-forwarded-client-cert (Envoy's format),
# and a client's own x-forwarded-client-cert never does (Istio's gateway
# default, SANITIZE_SET); PeerAuthentication STRICT applies (PERMISSIVE and
# DISABLE: 64-peerauth-permissive).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki
PLAIN=$(mg_port)

mg_start_config <<EOF
workers: 1
meshIdentity:
  certificate: $PKI/mesh-server.crt
  privateKey: $PKI/mesh-server.key
  caCertificates: $PKI/ca.crt
EOF

mg_resource all <<EOF
$(mg_yaml_https_gateway '["*"]' '{mode: ISTIO_MUTUAL}')
  - port: {number: $PLAIN, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF

mg_start

url="https://127.0.0.1:$MG_PORT/echo"
curl -s -k --max-time 10 --cert "$PKI/client.crt" --key "$PKI/client.key" \
	-H 'x-forwarded-client-cert: By=forged' -o "$MG_DIR/m.json" "$url"
assert_eq "$(mg_json name "$MG_DIR/m.json")" a "a mesh client certificate is accepted"
xfcc=$(mg_json headers.x-forwarded-client-cert "$MG_DIR/m.json")
assert_match "$xfcc" '^Hash=[0-9a-f]{64};Subject=".*CN=client.*";URI=spiffe://cluster.local/ns/default/sa/client;DNS=client.example.com$' \
	"x-forwarded-client-cert carries the verified identity ($xfcc)"
assert_not_contains "$xfcc" "forged" "the client's own x-forwarded-client-cert is dropped"

# the server presents the mesh identity
subj=$(openssl s_client -connect "127.0.0.1:$MG_PORT" -cert "$PKI/client.crt" -key "$PKI/client.key" \
	</dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName 2>/dev/null)
assert_contains "$subj" "URI:spiffe://cluster.local/ns/default/sa/server" "the appliance presents its SPIFFE identity"

curl -s -k --max-time 10 -o /dev/null "$url"
rc=$?
assert_ne "$rc" 0 "no client certificate: refused (curl rc $rc)"
curl -s -k --max-time 10 -o /dev/null --cert "$PKI/wrong-client.crt" --key "$PKI/wrong-client.key" "$url"
rc=$?
assert_ne "$rc" 0 "a certificate from another root: refused (curl rc $rc)"
assert_log_contains "handshake" "$MG_LOG"

# plain HTTP: a forged header never reaches the upstream
curl -s --max-time 10 -H 'x-forwarded-client-cert: By=forged;URI=spiffe://evil' \
	-o "$MG_DIR/p.json" "http://127.0.0.1:$PLAIN/echo"
assert_eq "$(mg_json name "$MG_DIR/p.json")" a "plain HTTP request answered"
assert_eq "$(mg_json headers.x-forwarded-client-cert "$MG_DIR/p.json")" "" \
	"x-forwarded-client-cert from outside is removed"

# PeerAuthentication: mesh-wide STRICT is what the port does
mg_resource pa <<EOF
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
EOF
assert_reload applied
curl -s -k --max-time 10 -o /dev/null "$url"
assert_ne "$?" 0 "STRICT: still no plaintext peer without a certificate"
rm -f "$MG_RESOURCES/pa.yaml"

# without a mesh identity ISTIO_MUTUAL is a load-time error saying what to set
sed -i '/^meshIdentity:/,/^  caCertificates:/d' "$MG_CONFIG"
mg_validate
assert_contains "$MG_VALIDATE_OUT" "ISTIO_MUTUAL needs the appliance's mesh identity" "clear error without meshIdentity"

assert_alive
mg_finish
