#!/usr/bin/env bash
# 62-tls-default-host: clients without SNI (openssl s_client -noservername, curl to an IP
# address) on a port with several HTTPS servers fail with a logged reason, unless the
# main config's tlsDefaultHost names the host they are taken to ask for: per port, or
# for every port (a wildcard server's name works too). A per-port host that no server of
# the port serves is a warning; an invalid one an error.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need openssl
mg_upstream a
mg_pki

main() { # main [extra main-config text]
	printf 'workers: 2\ncredentialsDir: %s\n%s\n' "$PKI/creds" "${1:-}" | mg_start_config
}
main
mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server https-a HTTPS '[a.example.com]' '{mode: SIMPLE, credentialName: a-cred}')
$(mg_yaml_server https-wild HTTPS '["*.wild.example.com"]' "{mode: SIMPLE, serverCertificate: $PKI/wild.crt, privateKey: $PKI/wild.key}")
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
  - route: [{destination: {host: a}}]
EOF
mg_start

# no_sni_subject: the subject served to a client without SNI ("" when the handshake fails)
no_sni_subject() {
	openssl s_client -connect "127.0.0.1:$MG_PORT" -noservername </dev/null 2>/dev/null |
		openssl x509 -noout -subject 2>/dev/null
}
# ip_get: curl to the address (no SNI), Host header a.example.com
ip_get() {
	curl -sS -k --max-time 10 -o "$MG_BODY" -w '%{http_code}' -H 'Host: a.example.com' \
		"https://127.0.0.1:$MG_PORT/echo" 2>/dev/null
}

assert_eq "$(no_sni_subject)" "" "two servers, no default: a client without SNI fails"
assert_log_contains "TLS handshake from .* failed: client sent no SNI and no default server is configured"
assert_ne "$(ip_get)" 200 "curl to the IP address fails too"

main "tlsDefaultHost: {\"$MG_PORT\": a.example.com}"
assert_reload applied
assert_contains "$(no_sni_subject)" "a.example.com" "per-port default: a.example.com's certificate"
assert_eq "$(ip_get)" 200 "curl to the IP address is served"
assert_eq "$(mg_json name)" a "and routed by its Host header"

main "tlsDefaultHost: x.wild.example.com"
assert_reload applied
assert_contains "$(no_sni_subject)" "wild.example.com" "every-port default through a wildcard server"

# A per-port entry wins over the every-port one.
main "tlsDefaultHost: {\"*\": x.wild.example.com, $MG_PORT: a.example.com}"
assert_reload applied
assert_contains "$(no_sni_subject)" "a.example.com" "the port's own entry wins over \"*\""

main "tlsDefaultHost: {$MG_PORT: nobody.example.org}"
assert_reload applied
assert_contains "$MG_RELOAD_LINES" "no server on 127.0.0.1:$MG_PORT serves \"nobody.example.org\"" \
	"a per-port host nobody serves is a warning"
assert_eq "$(no_sni_subject)" "" "and clients without SNI fail again"

main "tlsDefaultHost: {$MG_PORT: \"bad host!\"}"
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "tlsDefaultHost" "an invalid host is an error at the field"

assert_alive
mg_finish
