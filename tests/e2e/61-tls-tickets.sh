#!/usr/bin/env bash
# 61-tls-tickets: session ticket keys are process-wide and survive reloads (a session
# resumes after SIGHUP, TLS 1.2 and 1.3); with tlsTicketKeyFile two meshgate instances
# sharing the file resume each other's sessions; a key file with a new first key still
# opens tickets sealed with an older key it keeps, one without that key does not; a
# malformed key file is refused naming it; tlsSessionResumption: false still resumes
# nothing.

MG_LOG_WAIT=${MG_LOG_WAIT:-20}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need openssl
mg_upstream a
PKI="$MG_DIR/pki"
bash "$MG_LIBDIR/../unit/tls-fixtures.sh" "$PKI" >"$MG_DIR/pki.log" 2>&1 ||
	mg_fatal "tls-fixtures.sh failed (see $MG_DIR/pki.log)"
KEYS="$MG_DIR/ticket.keys"

main() { # main [extra main-config lines]
	printf 'workers: 2\n%s\n' "${1:-}" | mg_start_config
}
main

# resources BIND: the Gateway on BIND:$MG_PORT
resources() {
	cat <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: $MG_PORT, name: https, protocol: HTTPS}
    bind: $1
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF
}
resources 127.0.0.1 | mg_resource all
mg_start

# handshake VERSION SESSFILE [ADDR]: "New" or "Reused" for a connection resuming
# SESSFILE's session (written when absent); the request makes the server send its
# TLS 1.3 ticket.
handshake() {
	local io=(-sess_out "$2")
	[ -s "$2" ] && io=(-sess_in "$2")
	printf 'GET /echo HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n' |
		timeout 10 openssl s_client "$1" -connect "${3:-127.0.0.1}:$MG_PORT" \
			-servername a.example.com -ign_eof "${io[@]}" 2>/dev/null |
		grep -Eo '^(New|Reused),' | head -1 | tr -d ,
}
# fresh VERSION: a new session in $MG_DIR/s$VERSION
fresh() {
	rm -f "$MG_DIR/s$1"
	assert_eq "$(handshake "$1" "$MG_DIR/s$1")" New "$1: first connection is a full handshake"
}
V=(-tls1_2 -tls1_3)

# Automatic keys: a reload keeps them.
for v in "${V[@]}"; do fresh "$v"; done
assert_reload applied
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" Reused "$v: automatic keys survive a reload"
done

# A shared key file (3 keys).
openssl rand $((3 * 80)) >"$KEYS"
main "tlsTicketKeyFile: $KEYS"
assert_reload applied
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" New \
		"$v: a session sealed with the automatic key does not open with the file's keys"
done
for v in "${V[@]}"; do fresh "$v"; done
assert_reload applied
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" Reused "$v: file keys survive a reload"
done

# A second instance on another address, same port, same key file.
B="$MG_DIR/b"
mkdir -p "$B/resources"
B_ADMIN=$(mg_port) || mg_fatal "no free port"
printf 'workers: 1\ntlsTicketKeyFile: %s\nadmin: {address: "127.0.0.1:%s"}\nresources: [resources]\n' \
	"$KEYS" "$B_ADMIN" >"$B/meshgate.yaml"
[ "$(id -u)" = 0 ] && printf 'user: root\n' >>"$B/meshgate.yaml"
resources 127.0.0.2 >"$B/resources/all.yaml"
"$MESHGATE" -c "$B/meshgate.yaml" >"$B/out" 2>"$B/log" &
B_PID=$!
mg__track "$B_PID"
# shellcheck disable=SC2317 # called through mg_wait_until
b_ready() {
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		"http://127.0.0.1:$B_ADMIN/ready")" = 200 ]
}
mg_wait_until 20 b_ready || mg_fatal "second instance not ready (see $B/log)"
for v in "${V[@]}"; do fresh "$v"; done
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v" 127.0.0.2)" Reused \
		"$v: a session from instance A resumes on instance B (shared key file)"
done

# A new first key, the old ones kept: the watched file reloads by itself, and sessions
# sealed with the old first key still resume.
for v in "${V[@]}"; do fresh "$v"; done
ok=$(grep -c 'reload ok' "$MG_LOG")
{ openssl rand 80 && cat "$KEYS"; } >"$KEYS.new" && mv "$KEYS.new" "$KEYS"
# shellcheck disable=SC2317 # called through mg_wait_until
more_reloads() { [ "$(grep -c 'reload ok' "$MG_LOG")" -gt "$ok" ]; }
if mg_wait_until 20 more_reloads; then mg_ok "key file change reloads"; else
	mg_fail "no reload after the key file changed"
fi
assert_log_contains "ticket\.keys changed"
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" Reused "$v: the previous first key still decrypts"
done

# Entirely new keys: the old sessions are gone.
for v in "${V[@]}"; do fresh "$v"; done
openssl rand 80 >"$KEYS.new" && mv "$KEYS.new" "$KEYS"
assert_reload applied
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" New "$v: a key no longer in the file opens nothing"
done

# A malformed file: refused, named; the keys in use stay.
for v in "${V[@]}"; do fresh "$v"; done
head -c 50 /dev/urandom >"$KEYS.bad"
main "tlsTicketKeyFile: $KEYS.bad"
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "ticket key file $KEYS.bad (50 bytes) must hold whole 80-byte keys" \
	"the malformed key file is named"
assert_contains "$("$MESHGATE" -c "$MG_CONFIG" -t 2>&1)" "$KEYS.bad" "-t names it too"
for v in "${V[@]}"; do
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" Reused "$v: after a refused reload the keys stay"
done

# tlsSessionResumption: false wins over a key file.
main "$(printf 'tlsSessionResumption: false\ntlsTicketKeyFile: %s' "$KEYS")"
assert_reload applied
assert_contains "$MG_RELOAD_LINES" "unused: tlsSessionResumption is false" "the key file is noted unused"
for v in "${V[@]}"; do
	rm -f "$MG_DIR/s$v"
	handshake "$v" "$MG_DIR/s$v" >/dev/null
	assert_eq "$(handshake "$v" "$MG_DIR/s$v")" New "$v: tlsSessionResumption false: no resumption"
done

kill -TERM "$B_PID"
mg_wait_until 15 mg__dead "$B_PID"
assert_alive
mg_finish
