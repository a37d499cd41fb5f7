#!/usr/bin/env bash
# 65-upstream-http2: HTTP/2 towards upstreams through the real binary, against a
# scripted HTTP/2 upstream (tests/upstream/mg-h2-upstream.py): h2c prior
# knowledge to an HTTP2 port and with h2UpgradePolicy UPGRADE, TLS origination
# with ALPN h2 (and the fall back to HTTP/1.1), concurrent requests sharing one
# connection, maxConcurrentStreams, circuit breaking, REFUSED_STREAM and GOAWAY
# retried, resets, perTryTimeout, large bodies both ways.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need curl
"$PYTHON" -c 'import h2' 2>/dev/null || mg_skip "python3-h2 is not installed"
mg_pki
mg_upstream_h2 h2a
mg_upstream_h2 h2b
mg_upstream_h2 h2one --max-concurrent-streams 1
mg_upstream_h2 h2tls --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key"
mg_upstream h1 # HTTP/1.1 only
mg_upstream h1tls --tls-cert "$PKI/a.crt" --tls-key "$PKI/a.key" --tls-alpn http/1.1

mg_start_config <<EOF
workers: 1
EOF

# se NAME PORT PROTOCOL: a ServiceEntry for host NAME on 127.0.0.1:PORT
se() { mg_yaml_service_port "$@"; }

# dr NAME TRAFFIC-POLICY: a DestinationRule for host NAME
dr() {
	printf -- '---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n'
	printf 'metadata: {name: %s}\nspec:\n  host: %s\n  trafficPolicy: %s\n' "$1" "$1" "$2"
}

# route NAME [RETRIES]: /NAME/... goes to host NAME (prefix rewritten to /)
route() {
	printf '  - match: [{uri: {prefix: /%s/}}]\n    rewrite: {uri: /}\n' "$1"
	printf '    route: [{destination: {host: %s}}]\n' "$1"
	[ -n "${2:-}" ] && printf '    retries: %s\n' "$2"
	return 0
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(se h2c "$UP_H2A_PORT" HTTP2)
$(se grpc "$UP_H2A_PORT" GRPC)
$(se upgrade "$UP_H2B_PORT" HTTP)
$(dr upgrade '{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}')
$(se noupgrade "$UP_H1_PORT" HTTP2)
$(dr noupgrade '{connectionPool: {http: {useClientProtocol: true}}}')
$(se tls "$UP_H2TLS_PORT" HTTP2)
$(dr tls "{tls: {mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}}")
$(se tlsh1 "$UP_H1TLS_PORT" HTTP)
$(dr tlsh1 "{tls: {mode: SIMPLE, caCertificates: $PKI/ca.crt, sni: a.example.com}, connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}")
$(se one "$UP_H2ONE_PORT" HTTP2)
$(se streams1 "$UP_H2B_PORT" HTTP2)
$(dr streams1 '{connectionPool: {http: {maxConcurrentStreams: 1}}}')
$(se breaker "$UP_H2B_PORT" HTTP2)
$(dr breaker '{connectionPool: {tcp: {maxConnections: 1}, http: {maxConcurrentStreams: 1, http1MaxPendingRequests: 1}}}')
$(se perconn "$UP_H2B_PORT" HTTP2)
$(dr perconn '{connectionPool: {http: {maxRequestsPerConnection: 2}}}')
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
$(route h2c)
$(route grpc)
$(route upgrade)
$(route noupgrade)
$(route tls)
$(route tlsh1)
$(route one)
$(route streams1)
$(route breaker '{attempts: 0}')
$(route perconn)
  - match: [{uri: {prefix: /norefuse/}}]
    rewrite: {uri: /}
    route: [{destination: {host: h2c}}]
    retries: {attempts: 0}
  - match: [{uri: {prefix: /pertry/}}]
    rewrite: {uri: /}
    route: [{destination: {host: h2c}}]
    retries: {attempts: 1, perTryTimeout: 300ms, retryOn: reset}
EOF

mg_start

# conns NAME: connections upstream NAME accepted so far; streams NAME [ERE]
conns() { awk -v n="$1" '$1 == n && $2 == "conn"' "$MG_STATS" | wc -l; }
streams() { awk -v n="$1" -v re="${2:-}" '$1 == n && $2 == "stream" && $5 ~ re' "$MG_STATS" | wc -l; }
# burst N PATH: N concurrent requests; their status codes, one a line
burst() {
	local i
	for i in $(seq 1 "$1"); do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 "$(mg_url "$2?i=$i")" &
	done
	wait
}
# jf KEY: KEY of the JSON in $doc
jf() { printf "%s" "$doc" >"$MG_DIR/doc.json" && mg_json "$1" "$MG_DIR/doc.json"; }
body() { curl -s --max-time "$MG_CURL_TIMEOUT" "$@"; }

# --- h2c with prior knowledge: HTTP2 and GRPC ports ------------------------------------------
assert_status GET /h2c/echo 200
assert_header x-upstream h2a
doc=$(body "$(mg_url /h2c/echo?q=1)" -H 'Host: shop.example' -H 'TE: trailers' -H 'X-Mixed-Case: v')
assert_eq "$(jf method)" GET ":method"
assert_eq "$(jf target)" "/echo?q=1" ":path keeps the query"
assert_eq "$(jf authority)" shop.example ":authority from Host"
assert_eq "$(jf scheme)" http ":scheme of a plaintext connection"
assert_eq "$(jf headers.te)" trailers "te: trailers is kept"
assert_eq "$(jf headers.x-mixed-case)" v "names are lower-cased"
assert_eq "$(jf headers.host)" "" "no host field next to :authority"
assert_eq "$(jf headers.connection)" "" "no connection field"
assert_status GET /grpc/echo 200
assert_header x-upstream h2a
assert_log_contains '"GET /h2c/echo HTTP/1.1" 200 - ' "$MG_ACCESS_LOG"

# --- h2UpgradePolicy UPGRADE on an HTTP port; useClientProtocol keeps HTTP/1.1 ----------------
assert_status GET /upgrade/echo 200
assert_header x-upstream h2b
assert_status GET /noupgrade/echo 200
assert_header x-upstream h1

# --- TLS origination: ALPN h2, and the HTTP/1.1 fall back -------------------------------------
assert_status GET /tls/echo 200
assert_header x-upstream h2tls
doc=$(body "$(mg_url /tls/echo)")
assert_eq "$(jf scheme)" https ":scheme of a TLS connection"
assert_status GET /tlsh1/echo 200
assert_header x-upstream h1tls
assert_status GET /tlsh1/echo 200
assert_cmp "$(mg_metric upstream_cx_http2_alpn_fallback)" -ge 1 "the ALPN fall back is counted"

# --- concurrent requests share one connection -------------------------------------------------
c0=$(conns h2a)
codes=$(burst 10 /h2c/slow/400)
assert_eq "$(grep -c '^200$' <<<"$codes")" 10 "ten concurrent requests served ($(paste -sd' ' <<<"$codes"))"
assert_eq "$(($(conns h2a) - c0))" 0 "they share the connection opened before"
assert_eq "$(streams h2a /slow/400)" 10 "as ten streams"

# --- the peer's SETTINGS_MAX_CONCURRENT_STREAMS 1 / maxConcurrentStreams 1 --------------------
assert_status GET /one/echo 200 # the connection and its SETTINGS
c0=$(conns h2one)
codes=$(burst 4 /one/slow/300)
assert_eq "$(grep -c '^200$' <<<"$codes")" 4 "peer limit 1: all served ($(paste -sd' ' <<<"$codes"))"
assert_cmp "$(($(conns h2one) - c0))" -ge 3 "peer limit 1: more connections opened"
c0=$(conns h2b)
codes=$(burst 5 /streams1/slow/400)
assert_eq "$(grep -c '^200$' <<<"$codes")" 5 "maxConcurrentStreams 1: all served"
assert_cmp "$(($(conns h2b) - c0))" -ge 4 "maxConcurrentStreams 1: a connection per concurrent request ($(($(conns h2b) - c0)))"

# --- maxConnections 1 + maxConcurrentStreams 1 + http1MaxPendingRequests 1 -------------------
codes=$(burst 20 /breaker/slow/500)
ok=$(grep -c '^200$' <<<"$codes")
uo=$(grep -c '^503$' <<<"$codes")
assert_eq "$((ok + uo))" 20 "every request answered 200 or 503 ($(paste -sd' ' <<<"$codes"))"
assert_cmp "$ok" -ge 1 "some pass the breaker ($ok)"
assert_cmp "$uo" -ge 15 "the overflow is answered 503 ($uo)"
assert_log_contains '"GET /breaker/slow/500\?i=[0-9]+ HTTP/1.1" 503 UO ' "$MG_ACCESS_LOG"

# --- maxRequestsPerConnection counts streams --------------------------------------------------
c0=$(conns h2b)
for _ in 1 2 3 4; do assert_status GET /perconn/echo 200; done
assert_eq "$(($(conns h2b) - c0))" 2 "maxRequestsPerConnection 2: four requests, two connections"

# --- REFUSED_STREAM: retried under the default policy (refused-stream) ------------------------
assert_status GET "/h2c/refuse?key=r1" 200
assert_eq "$(streams h2a 'refuse\?key=r1')" 2 "the refused stream was tried again"
assert_log_contains '"GET /h2c/refuse\?key=r1 HTTP/1.1" 200 ' "$MG_ACCESS_LOG"
assert_status GET "/norefuse/refuse?key=r2" 503
assert_log_contains '"GET /norefuse/refuse\?key=r2 HTTP/1.1" 503 UR ' "$MG_ACCESS_LOG"
assert_cmp "$(mg_metric upstream_rq_refused_stream)" -ge 2 "refused streams are counted"

# --- GOAWAY: the streams it did not process are retried on a new connection -------------------
c0=$(conns h2a)
assert_status GET "/h2c/goaway?key=g1" 200
assert_cmp "$(($(conns h2a) - c0))" -ge 1 "a new connection after the GOAWAY"
assert_status GET /h2c/echo 200

# --- resets -----------------------------------------------------------------------------------
assert_status GET /norefuse/reset 503
assert_log_contains '"GET /norefuse/reset HTTP/1.1" 503 UR upstream_reset_before_response:_INTERNAL_ERROR ' "$MG_ACCESS_LOG"
curl -s -o /dev/null --max-time 10 "$(mg_url /norefuse/reset-mid)"
assert_ne "$?" 0 "reset mid-response: the client sees a broken response"
assert_log_contains '"GET /norefuse/reset-mid HTTP/1.1" 200 UR upstream_reset_mid-response:_INTERNAL_ERROR ' "$MG_ACCESS_LOG"

# --- perTryTimeout: the stream is cancelled, the retry times out too --------------------------
assert_status GET /pertry/hang 504
assert_log_contains '"GET /pertry/hang HTTP/1.1" 504 UT' "$MG_ACCESS_LOG"
assert_status GET /h2c/echo 200

# --- bodies: 1 MiB both ways, checksummed; chunked request bodies; no content-length ----------
mg_make_file "$MG_DIR/up.bin" 1M 7
sum=$(mg_sha256 "$MG_DIR/up.bin")
doc=$(body -X POST --data-binary @"$MG_DIR/up.bin" "$(mg_url /h2c/echo)")
assert_eq "$(jf body_len)" 1048576 "1 MiB request body arrived"
assert_eq "$(jf body_sha256)" "$sum" "request body checksum"
doc=$(body -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$MG_DIR/up.bin" "$(mg_url /h2c/echo)")
assert_eq "$(jf body_sha256)" "$sum" "chunked request body checksum"
got=$(body "$(mg_url /h2c/bytes/1M?seed=3)" | sha256sum | cut -d' ' -f1)
assert_eq "$got" "$(mg_bytes_sha256 1M 3)" "1 MiB response body checksum"
got=$(body "$(mg_url /h2c/bytes/300000?seed=4\&nolen=1\&trailers=1)" | sha256sum | cut -d' ' -f1)
assert_eq "$got" "$(mg_bytes_sha256 300000 4)" "response without content-length (chunked to the client)"
assert_status HEAD /h2c/bytes/1000 200
assert_status GET /h2c/status/204 204

assert_cmp "$(mg_metric upstream_cx_http2_total)" -ge 5 "HTTP/2 connections are counted"
assert_alive
mg_finish
