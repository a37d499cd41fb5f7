#!/usr/bin/env bash
# 69-mirror-http2: mirror copies to a cluster that speaks HTTP/2 upstream go as HTTP/2
# streams.  The main destination is an HTTP/1.1 upstream; the mirror an h2c-only upstream
# (ServiceEntry port protocol HTTP2, tests/upstream/mg-h2-upstream.py).  The copies carry
# :authority "<host>-shadow" and the request bodies (Content-Length and chunked), share one
# connection as streams, and a slow or resetting HTTP/2 mirror changes nothing for the
# client.  A TLS mirror with h2UpgradePolicy UPGRADE whose server chooses HTTP/1.1 by ALPN
# gets its copies over HTTP/1.1 (the body that waited for the handshake included).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need curl
"$PYTHON" -c 'import h2' 2>/dev/null || mg_skip "python3-h2 is not installed"
REC="$MG_DIR/records"
: >"$REC"
mg_pki
mg_upstream main
mg_upstream_h2 h2m --record-file "$REC"
mg_upstream_h2 h2slow --record-file "$REC" --delay-all 8000
mg_upstream_h2 h2rst --record-file "$REC" --reset-all
mg_upstream h1tls --record-file "$REC" --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key" \
	--tls-alpn http/1.1

mg_start_config <<EOF
workers: 1
EOF

# se NAME PORT PROTOCOL: a ServiceEntry for host NAME on 127.0.0.1:PORT
se() { mg_yaml_service_port "$@"; }

# route PREFIX MIRROR: /PREFIX/... goes to main, a copy to MIRROR
route() {
	printf '  - match: [{uri: {prefix: /%s/}}]\n' "$1"
	printf '    route: [{destination: {host: main}}]\n    mirror: {host: %s}\n' "$2"
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(se main "$UP_MAIN_PORT" HTTP)
$(se h2m "$UP_H2M_PORT" HTTP2)
$(se h2slow "$UP_H2SLOW_PORT" HTTP2)
$(se h2rst "$UP_H2RST_PORT" HTTP2)
$(se tlsh1 "$UP_H1TLS_PORT" HTTP)
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tlsh1}
spec:
  host: tlsh1
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}
    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
$(route m h2m)
$(route slow h2slow)
$(route rst h2rst)
$(route fb tlsh1)
EOF

mg_start

# rec_count NAME ERE, rec_get NAME TARGET FIELD: this test's records (lib.sh)
# shellcheck disable=SC2317 # also called through mg_wait_until
rec_count() { mg_rec_count "$REC" "$@"; }
rec_get() { mg_rec_get "$REC" "$@"; }

# shellcheck disable=SC2317 # called through mg_wait_until
rec_has() { mg_rec_has "$REC" "$@"; }
# shellcheck disable=SC2317 # called through mg_wait_until
metric_ge() { [ "$(mg_metric "$1")" -ge "$2" ]; }
# conns NAME: connections upstream NAME accepted so far; streams NAME ERE: its streams
conns() { awk -v n="$1" '$1 == n && $2 == "conn"' "$MG_STATS" | wc -l; }
streams() { awk -v n="$1" -v re="$2" '$1 == n && $2 == "stream" && $5 ~ re' "$MG_STATS" | wc -l; }

mg_make_file "$MG_DIR/body" 300K 7
sum=$(mg_sha256 "$MG_DIR/body")

# --- GET: the copy is an HTTP/2 stream with the shadow :authority --------------------------------
sent0=$(mg_metric upstream_rq_mirror_sent)
assert_status GET '/m/echo?x=1' 200 -H 'Host: a.example'
assert_header x-upstream main "the client gets the main upstream's answer"
rid=$(mg_json headers.x-request-id)
mg_wait_until 5 rec_has h2m '^/m/echo\?x=1$' || mg_fail "the HTTP/2 mirror did not receive the GET"
assert_eq "$(rec_get h2m '/m/echo?x=1' method)" GET "mirror: :method"
assert_eq "$(rec_get h2m '/m/echo?x=1' host)" a.example-shadow "mirror: :authority suffixed -shadow"
assert_eq "$(rec_get h2m '/m/echo?x=1' request_id)" "$rid" "mirror: the same x-request-id"
assert_eq "$(streams h2m '^/m/echo\?x=1$')" 1 "mirror: one HTTP/2 stream"
assert_cmp "$(mg_metric upstream_rq_mirror_sent)" -gt "$sent0" "the copy is counted as sent"

assert_status GET /m/echo/port 200 -H 'Host: a.example:8080'
mg_wait_until 5 rec_has h2m '^/m/echo/port$' || mg_fail "the mirror did not receive /m/echo/port"
assert_eq "$(rec_get h2m /m/echo/port host)" a.example-shadow:8080 "mirror: a.example:8080 -> a.example-shadow:8080"

# --- request bodies: Content-Length and chunked, as DATA -----------------------------------------
mg_check_mirrored_bodies "$REC" h2m /m "$MG_DIR/body"

# --- copies share one connection, as streams ------------------------------------------------------
c0=$(conns h2m)
(
	for i in $(seq 1 10); do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 "$(mg_url "/m/echo/burst?i=$i")" &
	done
	wait # the curls only: the upstreams are not this subshell's children
) >"$MG_DIR/burst.codes"
assert_eq "$(grep -c '^200$' "$MG_DIR/burst.codes")" 10 "ten concurrent mirrored requests served"
mg_wait_until 5 rec_has h2m '^/m/echo/burst' 10 || mg_fail "the mirror did not receive the ten copies"
assert_eq "$(streams h2m '^/m/echo/burst')" 10 "ten copies, ten streams"
assert_eq "$(($(conns h2m) - c0))" 0 "they share the connection the first copy opened"
assert_eq "$(conns h2m)" 1 "one connection to the HTTP/2 mirror in all"

# --- a slow HTTP/2 mirror changes nothing for the client -----------------------------------------
failed0=$(mg_metric upstream_rq_mirror_failed)
MG_CURL_TIMEOUT=5 assert_status POST /slow/sha256 200 -H 'Host: a.example' --data-binary "@$MG_DIR/body"
assert_header x-upstream main "slow mirror: the client gets the main answer"
assert_eq "$(mg_json body_sha256)" "$sum" "slow mirror: the main upstream got the whole body"
mg_wait_until 5 rec_has h2slow '^/slow/sha256$' || mg_fail "the slow mirror did not receive its copy"
assert_eq "$(rec_get h2slow /slow/sha256 body_sha256)" "$sum" "slow mirror: it got the whole body"
assert_eq "$(mg_metric upstream_rq_mirror_failed)" "$failed0" "slow mirror: still waited for, not failed"

# --- a resetting HTTP/2 mirror: the copies fail (counted), the client's answers do not ------------
failed0=$(mg_metric upstream_rq_mirror_failed)
for i in 1 2 3; do
	assert_status POST "/rst/sha256?i=$i" 200 -H 'Host: a.example' --data-binary "@$MG_DIR/body"
	assert_header x-upstream main "resetting mirror: the client gets the main answer ($i)"
	assert_eq "$(mg_json body_sha256)" "$sum" "resetting mirror: the main body is whole ($i)"
done
mg_wait_until 5 rec_has h2rst '^/rst/sha256' 3 || mg_fail "the resetting mirror did not receive the copies"
mg_wait_until 5 metric_ge upstream_rq_mirror_failed $((failed0 + 3)) ||
	mg_fail "the reset copies are counted in upstream_rq_mirror_failed"
assert_eq "$(conns h2rst)" 1 "a reset stream leaves the connection in use"
assert_status GET /m/echo/after 200
assert_alive

# --- TLS, h2UpgradePolicy UPGRADE, the server chooses HTTP/1.1: the copy falls back ---------------
assert_status POST /fb/sha256 200 -H 'Host: a.example' --data-binary "@$MG_DIR/body"
assert_header x-upstream main "fall back: the client gets the main answer"
mg_wait_until 5 rec_has h1tls '^/fb/sha256$' || mg_fail "the HTTP/1.1 fall back did not carry the copy"
assert_eq "$(rec_get h1tls /fb/sha256 host)" a.example-shadow "fall back: shadow Host"
assert_eq "$(rec_get h1tls /fb/sha256 body_sha256)" "$sum" "fall back: the whole body"
assert_cmp "$(mg_metric upstream_cx_http2_alpn_fallback)" -ge 1 "the ALPN fall back is counted"
assert_status GET /fb/echo/again 200
mg_wait_until 5 rec_has h1tls '^/fb/echo/again$' || mg_fail "later copies go over HTTP/1.1"

mg_finish
