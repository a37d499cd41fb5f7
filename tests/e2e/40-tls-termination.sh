#!/usr/bin/env bash
# 40-tls-termination: HTTPS Gateway servers terminate TLS. SNI selects the server (and its
# certificate) among several on one port; SIMPLE serves anyone; MUTUAL requires a client
# certificate from the configured CA; TLS 1.2 and 1.3 both work; the upstream sees
# x-forwarded-proto https; failed handshakes are logged with their reason and counted.
# The PKI is made fresh by tests/unit/tls-fixtures.sh (openssl CLI).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki

mg_start_config <<EOF
workers: 2
credentialsDir: $PKI/creds
EOF

wild_tls="{mode: MUTUAL, serverCertificate: $PKI/wild.crt, privateKey: $PKI/wild.key"
wild_tls+=", caCertificates: $PKI/ca.crt}"
mg_resource all <<EOF
$(mg_yaml_https_gateway '[a.example.com]' '{mode: SIMPLE, credentialName: a-cred}' \
	'["*.wild.example.com"]' "$wild_tls")
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: [a.example.com, "*.wild.example.com"]
  gateways: [gw]
  http:
  - name: to-a
    route: [{destination: {host: a}}]
EOF
mg_start

# tls_get HOST [curl args]: GET https://HOST:PORT/echo through meshgate
tls_get() {
	local host=$1
	shift
	curl -sS --max-time 10 --cacert "$PKI/ca.crt" --resolve "$host:$MG_PORT:127.0.0.1" \
		-o "$MG_BODY" -w '%{http_code}' "$@" "https://$host:$MG_PORT/echo" 2>"$MG_DIR/last.curlerr"
}

# subject_for SNI: the subject of the certificate meshgate presents for that SNI
subject_for() {
	openssl s_client -connect "127.0.0.1:$MG_PORT" -servername "$1" -CAfile "$PKI/ca.crt" \
		</dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null
}

# SNI picks the certificate: the client verifies each name against the test CA.
assert_eq "$(tls_get a.example.com)" 200 "SIMPLE server for a.example.com"
assert_eq "$(mg_json name)" a "request reached upstream a"
assert_eq "$(mg_json headers.x-forwarded-proto)" https "x-forwarded-proto is https"
assert_contains "$(subject_for x.wild.example.com)" "wild.example.com" \
	"SNI x.wild.example.com gets the wildcard certificate"
assert_contains "$(subject_for a.example.com)" "a.example.com" \
	"SNI a.example.com gets its own certificate"

# Protocol versions of the intermediate profile.
assert_eq "$(tls_get a.example.com --tlsv1.2 --tls-max 1.2)" 200 "TLS 1.2 accepted"
assert_eq "$(tls_get a.example.com --tlsv1.3)" 200 "TLS 1.3 accepted"
assert_ne "$(tls_get a.example.com --tlsv1.1 --tls-max 1.1)" 200 "TLS 1.1 refused"

# MUTUAL: no certificate, a certificate from another CA, then a good one.
assert_ne "$(tls_get x.wild.example.com)" 200 "MUTUAL without a client certificate fails"
assert_log_contains "TLS handshake from .* failed: .*certificate"
assert_ne "$(tls_get x.wild.example.com --cert "$PKI/wrong-client.crt" --key "$PKI/wrong-client.key")" \
	200 "MUTUAL with a client certificate from another CA fails"
assert_eq "$(tls_get x.wild.example.com --cert "$PKI/client.crt" --key "$PKI/client.key")" 200 \
	"MUTUAL with a good client certificate"

# An unknown SNI has no server on this port: the handshake fails, with the reason logged.
assert_ne "$(tls_get nobody.example.org -k)" 200 "unknown SNI fails the handshake"
n=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics" |
	awk '/^meshgate_downstream_cx_ssl_handshake_error /{print $2}')
assert_cmp "${n:-0}" -ge 3 "failed handshakes are counted ($n)"
# ... and by reason: no certificate, the wrong CA, an unknown SNI.
prom=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
for r in no_client_cert client_cert_unverified no_sni_match; do
	n=$(awk -v r="$r" '$1 == "meshgate_downstream_cx_ssl_handshake_error_by_reason{reason=\"" r "\"}" {print $2}' <<<"$prom")
	assert_cmp "${n:-0}" -ge 1 "handshake failures with reason $r counted (${n:-0})"
done
n=$(awk '$1 == "meshgate_downstream_cx_ssl_handshake_error_by_reason{reason=\"cipher\"}" {print $2}' <<<"$prom")
assert_eq "${n:-missing}" 0 "no cipher failures: the series exists at 0"

# Every served certificate's time to expiry is a gauge (the test CA issues for days).
prom=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
exp=$(awk -F' ' '/^meshgate_tls_certificate_expiry_seconds\{/ { print $2; exit }' <<<"$prom")
assert_cmp "${exp:-0}" -gt 86400 "certificate expiry exported in seconds ($exp)"
assert_match "$prom" 'meshgate_tls_certificate_expiry_seconds\{gateway="default/[a-z0-9-]+",port="[0-9]+",file="[^"]+\.crt"\}' \
	"labelled with gateway, port and file"

# A refused head with 4 MiB behind it over TLS: meshgate sends close_notify, shuts its write
# side and reads on until the client closes (conn.c's lingering close), so the client sends
# everything and reads the 400 and a clean end, not a reset.
lingered=$(mg_flood_refused "$MG_PORT" "$PKI/ca.crt" a.example.com)
assert_eq "$lingered" "sent HTTP/1.1 400 Bad Request EOF" \
	"TLS: 4 MiB behind a refused head, then the 400 and a clean end (no reset)"

# A certificate problem is a load-time error naming the file.
{
	mg_yaml_gateway_head bad
	mg_yaml_server https-bad HTTPS '[bad.example.com]' "{mode: SIMPLE, serverCertificate: $PKI/missing.crt, privateKey: $PKI/a.key}"
} | mg_resource bad
assert_invalid "missing.crt" "-t names the missing certificate file"
rm -f "$MG_RESOURCES/bad.yaml"

mg_finish
