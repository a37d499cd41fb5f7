#!/usr/bin/env bash
# 46-tls-resumption: TLS session resumption by tickets is on by default (a
# client presenting its session resumes) and main config tlsSessionResumption:
# false turns it off, so every connection is a full handshake (what the
# handshake benchmark needs). TLS 1.2 and 1.3.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki

main() { # main true|false
	mg_start_config <<EOF
workers: 1
tlsSessionResumption: $1
EOF
}
main true

mg_resource all <<EOF
$(mg_yaml_https_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF

mg_start

# handshake VERSION SESSFILE: "New" or "Reused" for a connection resuming SESSFILE's session
# (written when absent); the request makes the server send its TLS 1.3 ticket.
handshake() {
	local io=(-sess_out "$2")
	[ -s "$2" ] && io=(-sess_in "$2")
	printf 'GET /echo HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n' |
		timeout 10 openssl s_client "$1" -connect "127.0.0.1:$MG_PORT" -servername a.example.com \
			-ign_eof "${io[@]}" 2>/dev/null | grep -Eo '^(New|Reused),' | head -1 | tr -d ,
}

for v in -tls1_2 -tls1_3; do
	rm -f "$MG_DIR/s$v"
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" New "$v: the first connection is a full handshake"
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" Reused "$v: by default the next one resumes"
done

main false
assert_reload applied
for v in -tls1_2 -tls1_3; do
	rm -f "$MG_DIR/s$v"
	handshake "$v" "$MG_DIR/s$v" >/dev/null
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" New "$v: tlsSessionResumption false: a full handshake again"
done

assert_alive
mg_finish
