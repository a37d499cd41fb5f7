#!/usr/bin/env bash
# 42-upstream-tls: DestinationRule trafficPolicy.tls originates TLS to the upstream while
# the client speaks plain HTTP to meshgate. SIMPLE verifies the upstream certificate (CA,
# host name = SNI = the destination host unless `sni` says otherwise, or subjectAltNames);
# insecureSkipVerify does not; MUTUAL presents a client certificate (files or
# credentialName); ISTIO_MUTUAL presents the main config's meshIdentity. A failed
# verification is 503 UF (a connect failure: retried as one) with "tls verify failed:
# <reason>" in the access log. TLS connections are kept alive and sessions resumed.
# portLevelSettings originate TLS on one port of a service only (Istio's egress "TLS
# origination" task). The PKI is made fresh by tests/unit/tls-fixtures.sh; the test
# upstream serves TLS and echoes the SNI and the client certificate it saw.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_pki
# a client credential for credentialName (the fixtures' credentials are server ones)
mkdir -p "$PKI/creds/client-cred"
cp "$PKI/client.crt" "$PKI/creds/client-cred/tls.crt"
cp "$PKI/client.key" "$PKI/creds/client-cred/tls.key"
cp "$PKI/ca.crt" "$PKI/creds/client-cred/ca.crt"

mg_upstream s --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key"
mg_upstream m --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key" --tls-client-ca "$PKI/ca.crt"
mg_upstream mesh --tls-cert "$PKI/mesh-server.crt" --tls-key "$PKI/mesh-server.key" \
	--tls-client-ca "$PKI/ca.crt" --tls-alpn istio-http/1.1,http/1.1
mg_upstream w --tls-cert "$PKI/wild.crt" --tls-key "$PKI/wild.key"
mg_upstream p

# One worker: connection reuse shows in x-upstream-conn (each worker has its own pool).
mg_start_config <<EOF
workers: 1
credentialsDir: $PKI/creds
meshIdentity:
  certificate: $PKI/client.crt
  privateKey: $PKI/client.key
  caCertificates: $PKI/ca.crt
EOF

# tls_case HOST UPSTREAM-PORT TLS-FLOW-MAP [SERVICEENTRY-EXTRA]: ServiceEntry HOST:443 on
# 127.0.0.1:UPSTREAM-PORT, a DestinationRule with that tls, a VirtualService for HOST.
tls_case() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: [$1]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {https: $2}}]
  ${4:-}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1}
spec:
  host: $1
  trafficPolicy:
    tls: $3
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: $1}
spec:
  hosts: [$1]
  gateways: [gw]
  http:
  - route: [{destination: {host: $1, port: {number: 443}}}]
EOF
}

{
	mg_yaml_gateway
	tls_case a.example.com "$UP_S_PORT" "{mode: SIMPLE, caCertificates: $PKI/ca.crt}"
	tls_case wrongca.test "$UP_S_PORT" \
		"{mode: SIMPLE, caCertificates: $PKI/other-ca.crt, sni: a.example.com}"
	tls_case mismatch.test "$UP_S_PORT" "{mode: SIMPLE, caCertificates: $PKI/ca.crt}"
	tls_case sni.test "$UP_S_PORT" "{mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}"
	tls_case san-ok.test "$UP_S_PORT" \
		"{mode: SIMPLE, caCertificates: $PKI/ca.crt, subjectAltNames: [x.example.com, a.example.com]}"
	tls_case san-bad.test "$UP_S_PORT" \
		"{mode: SIMPLE, caCertificates: $PKI/ca.crt, subjectAltNames: [b.example.com]}"
	tls_case insecure.test "$UP_S_PORT" "{mode: SIMPLE, insecureSkipVerify: true}"
	tls_case mutual.test "$UP_M_PORT" "{mode: MUTUAL, caCertificates: $PKI/ca.crt, sni: a.example.com,
      clientCertificate: $PKI/client.crt, privateKey: $PKI/client.key}"
	tls_case cred.test "$UP_M_PORT" "{mode: MUTUAL, credentialName: client-cred, sni: a.example.com}"
	tls_case nocert.test "$UP_M_PORT" "{mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}"
	tls_case mesh.test "$UP_MESH_PORT" "{mode: ISTIO_MUTUAL}" \
		"subjectAltNames: [spiffe://cluster.local/ns/default/sa/server]"
	tls_case mesh-wrong-sa.test "$UP_MESH_PORT" "{mode: ISTIO_MUTUAL}" \
		"subjectAltNames: [spiffe://cluster.local/ns/default/sa/other]"
	# the same TLS upstream reached in plaintext: its connections never mix with TLS ones
	tls_case cleartext.test "$UP_S_PORT" "{mode: DISABLE}"
	# Istio's egress "TLS origination" task: the client speaks HTTP to port 80, the
	# route sends it to port 443 where the rule originates TLS (caCertificates because
	# the test CA is not a public one).
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: edition}
spec:
  hosts: [edition.wild.example.com]
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: http-port-for-tls-origination, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http-port: $UP_P_PORT, http-port-for-tls-origination: $UP_W_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edition}
spec:
  hosts: [edition.wild.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /plain}}]
    route: [{destination: {host: edition.wild.example.com, port: {number: 80}}}]
  - match: [{port: $MG_PORT}]
    route: [{destination: {host: edition.wild.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: edition}
spec:
  host: edition.wild.example.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, caCertificates: $PKI/ca.crt}
---
# the task's other form: a subset whose portLevelSettings originate TLS
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [cnn.wild.example.com]
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: https-port, protocol: HTTPS}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http-port: $UP_P_PORT, https-port: $UP_W_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn}
spec:
  hosts: [cnn.wild.example.com]
  gateways: [gw]
  http:
  - match: [{port: $MG_PORT}]
    route:
    - destination:
        host: cnn.wild.example.com
        subset: tls-origination
        port: {number: 443}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cnn}
spec:
  host: cnn.wild.example.com
  subsets:
  - name: tls-origination
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: SIMPLE, caCertificates: $PKI/ca.crt}
EOF
} | mg_resource all
mg_start

# get HOST PATH: GET through meshgate with that Host
get() { assert_status GET "$2" "${3:-200}" -H "Host: $1"; }

# SIMPLE: verified against the CA, SNI and verified name = the destination host
get a.example.com /echo
assert_eq "$(mg_json name)" s "a.example.com reached upstream s"
assert_eq "$(mg_json sni)" a.example.com "SNI defaults to the destination host"
assert_match "$(mg_json tls_version)" '^TLSv1\.[23]$' "upstream spoke TLS"
assert_eq "$(mg_json alpn)" "" "no ALPN asked by this upstream"
assert_eq "$(mg_json headers.x-forwarded-proto)" http "the client's scheme is forwarded"

# keep-alive: the TLS connection is reused
conn=$(mg_header x-upstream-conn)
for i in 1 2 3 4; do
	get a.example.com "/echo?i=$i"
	assert_eq "$(mg_header x-upstream-conn)" "$conn" "request $i reuses TLS connection $conn"
done
assert_eq "$(mg_json tls_resumed)" false "the first connection was a full handshake"

# a connection the upstream closes: the next one resumes the session
get a.example.com /close
resumed=0
for i in 1 2 3; do
	get a.example.com /close
	[ "$(mg_json tls_resumed)" = true ] && resumed=$((resumed + 1))
done
assert_eq "$resumed" 3 "new connections resume the TLS session (3 of 3)"
m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
hs=$(awk '/^meshgate_upstream_cx_ssl_handshake /{print $2}' <<<"$m")
re=$(awk '/^meshgate_upstream_cx_ssl_session_reused /{print $2}' <<<"$m")
assert_cmp "${re:-0}" -ge 3 "resumptions counted ($re of $hs handshakes)"

# verification failures: 503 UF, the reason in the body and the access log. A failed
# handshake is a connect failure, which Istio's default retry policy retries twice (URX).
n0=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics" | awk '/^meshgate_upstream_cx_ssl_handshake_error /{print $2}')
get wrongca.test /echo 503
assert_body_contains "tls verify failed: unable to get local issuer certificate"
assert_log_contains '503 UF,URX tls_verify_failed:_unable_to_get_local_issuer_certificate' "$MG_ACCESS_LOG"
n1=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics" | awk '/^meshgate_upstream_cx_ssl_handshake_error /{print $2}')
assert_eq "$((n1 - n0))" 3 "the handshake was tried three times (two default retries)"
get mismatch.test /echo 503
assert_body_contains "tls verify failed: hostname mismatch"
assert_log_contains "TLS to upstream 127.0.0.1:$UP_S_PORT \(mismatch.test\) failed: tls verify failed: hostname mismatch"
get san-bad.test /echo 503
assert_body_contains "tls verify failed: SAN mismatch"
assert_log_contains '"san-bad.test" .* outbound\|443\|\|san-bad.test' "$MG_ACCESS_LOG"

# sni and subjectAltNames
get sni.test /echo
assert_eq "$(mg_json sni)" a.example.com "sni is sent and verified"
assert_eq "$(mg_json headers.host)" sni.test "the Host header stays the request's"
get san-ok.test /echo
assert_eq "$(mg_json sni)" san-ok.test "with subjectAltNames the SNI is still the host"
get insecure.test /echo
assert_eq "$(mg_json sni)" insecure.test "insecureSkipVerify connects to a certificate for another name"

# MUTUAL: the upstream requires a client certificate and sees ours
get mutual.test /echo
assert_contains "$(mg_json peer_subject)" "CN=client" "MUTUAL presents the client certificate"
get cred.test /echo
assert_contains "$(mg_json peer_subject)" "CN=client" "credentialName provides it too"
get nocert.test /echo 503
assert_body_contains "tls handshake failed: upstream sent alert"
assert_log_contains '503 UF,URX tls_handshake_failed:_upstream_sent_alert' "$MG_ACCESS_LOG"

# ISTIO_MUTUAL: the mesh identity, Istio's SNI, the service account checked
get mesh.test /echo
assert_eq "$(mg_json sni)" "outbound_.443_._.mesh.test" "ISTIO_MUTUAL sends Istio's SNI"
assert_contains "$(mg_json peer_san)" "URI:spiffe://cluster.local/ns/default/sa/client" \
	"ISTIO_MUTUAL presents the mesh identity"
assert_eq "$(mg_json alpn)" istio-http/1.1 "ISTIO_MUTUAL offers istio-http/1.1"
get mesh-wrong-sa.test /echo 503
assert_body_contains "tls verify failed: SAN mismatch"

# plaintext to the TLS port fails, and leaves the TLS connection of a.example.com alone
get a.example.com /echo
conn=$(mg_header x-upstream-conn)
assert_status GET /echo 503 -H "Host: cleartext.test" --max-time 10
get a.example.com /echo
assert_eq "$(mg_header x-upstream-conn)" "$conn" "the pooled TLS connection is still the one used"

# Istio's TLS origination task: HTTP in, TLS out on port 443 only
get edition.wild.example.com /echo
assert_eq "$(mg_json name)" w "port 443 reached the TLS upstream"
assert_eq "$(mg_json sni)" edition.wild.example.com "SNI of the origination"
assert_header x-upstream w
assert_log_contains '"edition.wild.example.com" "127.0.0.1:[0-9]+" outbound\|443\|\|edition.wild.example.com' "$MG_ACCESS_LOG"
get edition.wild.example.com /plain
assert_eq "$(mg_json name)" p "port 80 stays plaintext"
assert_eq "$(mg_json sni)" "" "no TLS on port 80"
get cnn.wild.example.com /echo
assert_eq "$(mg_json sni)" cnn.wild.example.com "a subset's portLevelSettings originate TLS"
assert_log_contains 'outbound\|443\|tls-origination\|cnn.wild.example.com' "$MG_ACCESS_LOG"

m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
n=$(awk '/^meshgate_upstream_cx_ssl_handshake_error /{print $2}' <<<"$m")
assert_cmp "${n:-0}" -ge 5 "failed upstream handshakes are counted ($n)"

# a reload that changes nothing keeps the pooled TLS connection; new settings get a new one
get a.example.com /echo
conn=$(mg_header x-upstream-conn)
assert_reload applied
get a.example.com /echo
assert_eq "$(mg_header x-upstream-conn)" "$conn" "an unchanged reload keeps the TLS connection"
sed -i "s#{mode: SIMPLE, caCertificates: $PKI/ca.crt}#{mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}#" \
	"$MG_RESOURCES/all.yaml"
assert_reload applied
get a.example.com /echo
assert_ne "$(mg_header x-upstream-conn)" "$conn" "changed TLS settings open a new connection"
assert_eq "$(mg_json sni)" a.example.com "the new connection is verified and names a.example.com"

# load-time errors: MUTUAL without a client certificate, ISTIO_MUTUAL without meshIdentity,
# a missing CA file named with its position
tls_case bad-mutual.test "$UP_M_PORT" "{mode: MUTUAL, caCertificates: $PKI/ca.crt}" | mg_resource bad
mg_validate
assert_ne "$MG_VALIDATE_RC" 0 "MUTUAL without a client certificate is refused"
assert_contains "$MG_VALIDATE_OUT" "bad.yaml:18:10: DestinationRule default/bad-mutual.test: spec.trafficPolicy.tls: MUTUAL TLS requires clientCertificate and privateKey (or credentialName)"
tls_case bad-ca.test "$UP_S_PORT" "{mode: SIMPLE, caCertificates: $PKI/nope.crt}" | mg_resource bad
mg_validate
assert_contains "$MG_VALIDATE_OUT" "bad.yaml:18:41: DestinationRule default/bad-ca.test: spec.trafficPolicy.tls.caCertificates: cannot read CA certificates $PKI/nope.crt"
rm -f "$MG_RESOURCES/bad.yaml"
sed '/^meshIdentity:/,/^  caCertificates:/d' "$MG_CONFIG" >"$MG_DIR/no-mesh.yaml"
mg_validate "$MG_DIR/no-mesh.yaml"
assert_ne "$MG_VALIDATE_RC" 0 "ISTIO_MUTUAL without meshIdentity is refused"
assert_contains "$MG_VALIDATE_OUT" "ISTIO_MUTUAL needs the appliance's mesh identity: set meshIdentity"

mg_finish
