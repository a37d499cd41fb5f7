#!/usr/bin/env bash
# 63-tls-alpn-log: the JSON access log has the ALPN protocol the client's TLS handshake
# negotiated (downstream_tls_alpn): h2 for a client offering h2 and http/1.1, http/1.1 for
# one offering only that, null for a client offering no ALPN and for plaintext requests; the text format keeps
# Istio's fields unchanged.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need openssl
mg_upstream a
mg_pki
HTTP_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 1
accessLog: {path: "$MG_ACCESS_LOG", format: json}
EOF
mg_resource all <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: $MG_PORT, name: https, protocol: HTTPS}
    bind: 127.0.0.1
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}
  - port: {number: $HTTP_PORT, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: [a.example.com]
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF
mg_start

get() { # get PATH [curl args]: https GET through meshgate
	local path=$1
	shift
	curl -sS --max-time 10 --cacert "$PKI/ca.crt" --resolve "a.example.com:$MG_PORT:127.0.0.1" \
		-o /dev/null -w '%{http_code}' "$@" "https://a.example.com:$MG_PORT$path"
}
# alpn_of PATH: the downstream_tls_alpn of the access log line for PATH ("null" for null)
alpn_of() {
	"$PYTHON" - "$MG_ACCESS_LOG" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["path"] == sys.argv[2]:
        v = d.get("downstream_tls_alpn", "absent")
        print("null" if v is None else v)
EOF
}
# shellcheck disable=SC2317 # called through mg_wait_until
logged() { [ -n "$(alpn_of "$1")" ]; }

assert_eq "$(get /echo/alpn)" 200 "HTTPS request with ALPN h2,http/1.1"
assert_eq "$(get /echo/h1 --http1.1)" 200 "HTTPS request with ALPN http/1.1"
assert_eq "$(get /echo/no-alpn --no-alpn)" 200 "HTTPS request without ALPN"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: a.example.com' \
	"http://127.0.0.1:$HTTP_PORT/echo/plain")" 200 "plaintext request"
for p in /echo/alpn /echo/h1 /echo/no-alpn /echo/plain; do
	mg_wait_until 10 logged "$p" || mg_fail "no access log line for $p"
done
assert_eq "$(alpn_of /echo/alpn)" h2 "negotiated ALPN logged: h2"
assert_eq "$(alpn_of /echo/h1)" http/1.1 "negotiated ALPN logged: http/1.1"
assert_eq "$(alpn_of /echo/no-alpn)" null "no ALPN offered: null"
assert_eq "$(alpn_of /echo/plain)" null "plaintext: null"

assert_alive
mg_finish
