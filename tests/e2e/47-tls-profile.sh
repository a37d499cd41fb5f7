#!/usr/bin/env bash
# 47-tls-profile: sslscan against an HTTPS listener with the default TLS
# settings finds only TLS 1.2 and 1.3 enabled and only AEAD ciphers (Mozilla's
# "intermediate" profile), and no TLS compression or insecure renegotiation.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need sslscan
mg_upstream a
mg_pki

mg_start_config <<EOF
workers: 1
EOF

mg_resource all <<EOF
$(mg_yaml_https_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF

mg_start

out=$(timeout 120 sslscan --no-colour --sni-name=a.example.com "127.0.0.1:$MG_PORT" 2>&1)
printf '%s\n' "$out" >"$MG_DIR/sslscan.out"
for v in SSLv2 SSLv3 TLSv1.0 TLSv1.1; do
	assert_match "$out" "$v +disabled" "$v disabled"
done
for v in TLSv1.2 TLSv1.3; do
	assert_match "$out" "$v +enabled" "$v enabled"
done
ciphers=$(awk '/^(Preferred|Accepted) /' <<<"$out")
assert_ne "$ciphers" "" "sslscan listed the accepted ciphers"
non_aead=$(grep -Ev 'GCM|CHACHA20|CCM' <<<"$ciphers")
assert_eq "$non_aead" "" "every accepted cipher is AEAD"
assert_not_contains "$(grep -E '^(Preferred|Accepted) +TLSv1\.[01] ' <<<"$ciphers")" "TLS" "no cipher offered below TLS 1.2"
assert_not_contains "$out" "Compression enabled" "no TLS compression"
assert_not_contains "$out" "Insecure session renegotiation supported" "no insecure renegotiation"

assert_alive
mg_finish
