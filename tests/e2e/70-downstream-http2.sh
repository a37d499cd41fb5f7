#!/usr/bin/env bash
# 70-downstream-http2: HTTP/2 from clients through the real binary: h2c with prior
# knowledge on an HTTP port, ALPN h2 on an HTTPS port (http/1.1 still chosen by clients
# that offer only it), requests forwarded to an HTTP/1.1 upstream, bodies both ways
# (content-length, none, chunked and close-delimited responses), concurrent streams,
# local replies, upstream failures (502/503, a reset mid-response reaches the client as
# a stream reset), header blocks RFC 9113 forbids, client resets (DC), the idle timeout's
# GOAWAY, the access log and the counters.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need curl
mg_need openssl
"$PYTHON" -c 'import h2' 2>/dev/null || mg_skip "python3-h2 is not installed"
curl --version | grep -q HTTP2 || mg_skip "curl without HTTP/2"
mg_pki
mg_upstream a
mg_upstream_h2 h2u # speaks HTTP/2 only
TLS_PORT=$(mg_port) || mg_fatal "no free port"
GRPC_PORT=$(mg_port) || mg_fatal "no free port"
H2C="$PYTHON $MG_LIBDIR/../upstream/mg-h2-client.py"

mg_start_config <<EOF
workers: 1
timeouts: {idle: 2s}
EOF
mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server http HTTP '["*"]')
$(mg_yaml_server grpc GRPC '["*"]' "" "$GRPC_PORT")
$(mg_yaml_server https HTTPS '[a.example.com]' "{mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}" "$TLS_PORT")
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_service_port ucp "$UP_H2U_PORT" HTTP)
$(mg_yaml_service_port grpc "$UP_H2U_PORT" GRPC)
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ucp}
spec:
  host: ucp
  trafficPolicy: {connectionPool: {http: {useClientProtocol: true}}}
$(mg_yaml_routes)
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 200, body: {string: "direct answer\n"}}
  - match: [{uri: {prefix: /ucp/}}]
    rewrite: {uri: /}
    route: [{destination: {host: ucp}}]
    retries: {attempts: 0}
  - match: [{uri: {prefix: /grpc/}}]
    rewrite: {uri: /}
    route: [{destination: {host: grpc}}]
  - match: [{uri: {prefix: /hdrs/}}]
    rewrite: {uri: /}
    headers:
      response: {set: {x-set: route}, add: {x-add: route}, remove: [x-gone]}
    route:
    - destination: {host: a.default.svc.cluster.local}
      headers: {response: {add: {x-dest: d}}}
  - match: [{uri: {prefix: /down}}]
    route: [{destination: {host: nowhere.default.svc.cluster.local}}]
  - route: [{destination: {host: a.default.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nowhere}
spec:
  hosts: [nowhere.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $(mg_port)}}]
EOF
mg_start

h2() { curl -sS --max-time "$MG_CURL_TIMEOUT" --http2-prior-knowledge "$@"; }
tls() {
	curl -sS --max-time "$MG_CURL_TIMEOUT" --cacert "$PKI/ca.crt" \
		--resolve "a.example.com:$TLS_PORT:127.0.0.1" "$@"
}
TLS_URL="https://a.example.com:$TLS_PORT"
# json KEY: KEY of the JSON body in $MG_BODY
json() { mg_json "$1" "$MG_BODY"; }

# --- h2c with prior knowledge ----------------------------------------------------------------
out=$(h2 -o "$MG_BODY" -w '%{http_code} %{http_version}' -H 'X-Test: one' \
	-H 'Cookie: a=1' -H 'Cookie: b=2' "$(mg_url '/echo/x?q=1')")
assert_eq "$out" "200 2" "h2c GET answered over HTTP/2"
assert_eq "$(json method)" GET "upstream got the method"
assert_eq "$(json path)" "/echo/x?q=1" "upstream got :path with its query"
assert_eq "$(json version)" HTTP/1.1 "upstream got HTTP/1.1"
assert_eq "$(json headers.host)" "127.0.0.1:$MG_PORT" "Host from :authority"
assert_eq "$(json headers.x-test)" one "fields forwarded"
assert_eq "$(json headers.cookie)" "a=1; b=2" "cookie fields joined into one (RFC 9113 8.2.3)"
assert_eq "$(json headers.x-forwarded-proto)" http "x-forwarded-proto of h2c"
assert_eq "$(json headers.transfer-encoding)" "" "no body framing invented for a GET"
h2 -D "$MG_HEADERS" -o /dev/null "$(mg_url /echo)"
assert_header x-upstream a "response fields reach the HTTP/2 client"
assert_no_header connection "no connection-specific field in an HTTP/2 response"

# --- the response head: the same fields as HTTP/1.1's, names in lower case ---------------------
# (proxy.c hands it to the HTTP/2 stream as fields; a WebSocket, CORS or ext_authz head goes
# through the HTTP/1.1 bytes, which other tests cover)
fields() { # the field names of $MG_HEADERS, lower case, sorted, without date and HTTP/1.1's own
	tr -d '\r' <"$MG_HEADERS" | awk -F: 'NR > 1 && NF > 1 { print tolower($1) }' |
		grep -vxE 'date|connection|keep-alive|transfer-encoding' | sort | tr '\n' ' '
}
url=$(mg_url '/hdrs/headers-out/keep-case?X-Mixed-Case=One&x-gone=1&X-Set=upstream&Server=up')
h2 -D "$MG_HEADERS" -o "$MG_BODY" "$url"
h2_fields=$(fields)
assert_header x-mixed-case One "an upstream field's name in lower case, its value as it was"
assert_eq "$(grep -ci '^x-set:' "$MG_HEADERS") $(mg_header x-set)" "1 route" "route's set replaces the upstream's field"
assert_header x-add route "route's add"
assert_header x-dest d "destination's add"
assert_no_header x-gone "route's remove"
assert_header server meshgate "server is meshgate's"
assert_match "$(mg_header x-envoy-upstream-service-time)" "^[0-9]+$" "x-envoy-upstream-service-time"
assert_header content-length "$(stat -c %s "$MG_BODY")" "content-length is the body's"
curl -sS --max-time "$MG_CURL_TIMEOUT" -D "$MG_HEADERS" -o /dev/null "$url"
assert_eq "$h2_fields" "$(fields)" "HTTP/2 and HTTP/1.1 clients get the same fields"
h2 -D "$MG_HEADERS" -o "$MG_BODY" "$(mg_url '/hdrs/bytes/100000?seed=3&chunked=1')"
assert_eq "$(sha256sum <"$MG_BODY" | cut -d' ' -f1)" "$(mg_bytes_sha256 100000 3)" \
	"a chunked upstream body after a head given as fields"
assert_no_header content-length "... with no content-length"
for st in 204 304; do
	out=$(h2 -D "$MG_HEADERS" -o /dev/null -w '%{http_code} %{size_download}' "$(mg_url /hdrs/status/$st)")
	assert_eq "$out" "$st 0" "$st over HTTP/2: no body"
	assert_header x-add route "... and the route's fields"
done
out=$(h2 -I -o /dev/null -w '%{http_code}' "$(mg_url /hdrs/bytes/1000)")
assert_eq "$out" 200 "HEAD to a head given as fields"
# meshgate's own 100 Continue goes first as bytes; the final head then as fields
out=$($H2C --port "$MG_PORT" --method POST --body 1000 --path /hdrs/sha256 \
	--header 'expect: 100-continue' --header 'content-length: 1000')
assert_match "$out" "^status 200 [0-9]+$" "expect: 100-continue, then a head given as fields"
mg_wait_until 5 grep -q '"POST /hdrs/sha256 HTTP/2" 200 - via_upstream - "-" 1000 ' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"POST /hdrs/sha256 HTTP/2" 200 - via_upstream - "-" 1000 ' \
	"... its 1000 bytes forwarded"

out=$(h2 -o /dev/null -w '%{http_code} %{http_version}' "$(mg_url /direct)")
assert_eq "$out" "200 2" "directResponse over HTTP/2"
out=$(h2 -o /dev/null -w '%{http_code}' -I "$(mg_url /echo)")
assert_eq "$out" 200 "HEAD over HTTP/2"
out=$(h2 -o /dev/null -w '%{http_code} %{size_download}' "$(mg_url /status/404)")
assert_eq "$out" "404 $(curl -s -o /dev/null -w '%{size_download}' "$(mg_url /status/404)")" \
	"an upstream 404 and its body"

# a Gateway server of protocol GRPC (or HTTP2) is an HTTP listener: h2c and HTTP/1.1 alike
out=$(h2 -o /dev/null -w '%{http_code} %{http_version}' "http://127.0.0.1:$GRPC_PORT/echo")
assert_eq "$out" "200 2" "a GRPC Gateway server takes h2c"
out=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' "http://127.0.0.1:$GRPC_PORT/echo")
assert_eq "$out" "200 1.1" "... and HTTP/1.1"

# --- an early response to an upload: up to 1 MiB more body is read, then RST_STREAM NO_ERROR --
if command -v nghttp >/dev/null; then
	head -c 200000 /dev/zero >"$MG_DIR/small.bin"
	head -c 5000000 /dev/zero >"$MG_DIR/large.bin"
	out=$(nghttp -v -d "$MG_DIR/small.bin" "$(mg_url /direct)" 2>&1 | grep -E 'recv RST_STREAM|:status' | tr '\n' ' ')
	assert_match "$out" ":status: 200" "200 KiB upload to a direct response: answered"
	assert_not_contains "$out" "RST_STREAM" "... and the client finishes its upload (no reset)"
	out=$(nghttp -v -d "$MG_DIR/large.bin" "$(mg_url /direct)" 2>&1 | grep -A1 -E 'recv RST_STREAM|:status' | tr '\n' ' ')
	assert_match "$out" ":status: 200.*recv RST_STREAM.*error_code=NO_ERROR" \
		"5 MB upload to a direct response: answered, then RST_STREAM NO_ERROR past 1 MiB"
fi

# --- useClientProtocol: HTTP/2 upstream for HTTP/2 clients only --------------------------------
out=$(h2 -D "$MG_HEADERS" -o /dev/null -w '%{http_code}' "$(mg_url /ucp/echo)")
assert_eq "$out" 200 "useClientProtocol: an HTTP/2 client's request goes upstream over HTTP/2"
assert_header x-upstream h2u
out=$(curl -s -o /dev/null -w '%{http_code}' "$(mg_url /ucp/echo)")
assert_match "$out" "^50[23]$" "useClientProtocol: an HTTP/1.1 client's request goes over HTTP/1.1 (refused)"

# --- TLS: ALPN h2, and http/1.1 for clients that offer only it --------------------------------
out=$(tls -o "$MG_BODY" -w '%{http_code} %{http_version}' "$TLS_URL/echo")
assert_eq "$out" "200 2" "HTTPS client offering h2 gets HTTP/2"
assert_eq "$(json headers.x-forwarded-proto)" https "x-forwarded-proto of h2 over TLS"
out=$(tls -o /dev/null -w '%{http_code} %{http_version}' --http1.1 "$TLS_URL/echo")
assert_eq "$out" "200 1.1" "HTTPS client offering http/1.1 only gets HTTP/1.1"
out=$($H2C --port "$TLS_PORT" --tls-ca "$PKI/ca.crt" --sni a.example.com --path /echo \
	--authority a.example.com)
assert_match "$out" "^status 200 " "python h2 client over TLS"

# --- bodies ------------------------------------------------------------------------------------
head -c 1048576 /dev/urandom >"$MG_DIR/up.bin"
sum=$(sha256sum "$MG_DIR/up.bin" | cut -d' ' -f1)
h2 -o "$MG_BODY" --data-binary @"$MG_DIR/up.bin" "$(mg_url /sha256)"
assert_eq "$(json sha256)" "$sum" "1 MiB request body with content-length"
h2 -o "$MG_BODY" -T - "$(mg_url /sha256)" <"$MG_DIR/up.bin"
assert_eq "$(json sha256)" "$sum" "1 MiB request body without content-length (chunked upstream)"
tls -o "$MG_BODY" --data-binary @"$MG_DIR/up.bin" "$TLS_URL/sha256"
assert_eq "$(json sha256)" "$sum" "1 MiB request body over TLS"

want=$(mg_bytes_sha256 4194304 7)
for q in "" "&chunked=1" "&eof=1"; do
	got=$(h2 "$(mg_url "/bytes/4M?seed=7$q")" | sha256sum | cut -d' ' -f1)
	assert_eq "$got" "$want" "4 MiB response body${q:+ ($q)} whole through the client's window"
done
got=$(tls "$TLS_URL/bytes/4M?seed=7" | sha256sum | cut -d' ' -f1)
assert_eq "$got" "$want" "4 MiB response body over TLS"

# --- response trailers: to clients that sent te: trailers, as HTTP/2 trailers ------------------
out=$($H2C --port "$MG_PORT" --path '/trailers-out?x-sum=abc&grpc-status=0' --header 'te: trailers')
assert_eq "$(printf '%s' "$out" | grep '^trailer' | sort | tr '\n' ' ')" \
	"trailer grpc-status: 0 trailer x-sum: abc " "HTTP/1.1 upstream's chunked trailers reach an HTTP/2 client"
assert_match "$(printf '%s' "$out" | tail -1)" "^status 200 [0-9]+$" "... after the body, ending the stream"
out=$($H2C --port "$MG_PORT" --path '/trailers-out?x-sum=abc')
assert_eq "$(printf '%s' "$out" | grep -c '^trailer')" 0 "no te: trailers, no trailers"
# gRPC end to end: an HTTP/2 client, a GRPC port upstream, grpc-status in the trailers
out=$($H2C --port "$MG_PORT" --method POST --body 5 --path '/grpc/trailers-out?grpc-status=7&grpc-message=denied' \
	--header 'te: trailers' --header 'content-type: application/grpc')
assert_eq "$(printf '%s' "$out" | grep '^trailer' | sort | tr '\n' ' ')" \
	"trailer grpc-message: denied trailer grpc-status: 7 " "gRPC status from an HTTP/2 upstream's trailers to an HTTP/2 client"

# --- many streams on one connection --------------------------------------------------------------
out=$($H2C --port "$MG_PORT" --path /echo --streams 50 | cut -d' ' -f1,2 | sort | uniq -c |
	awk '{$1=$1; print}')
assert_eq "$out" "50 status 200" "50 concurrent streams on one connection"
if command -v h2load >/dev/null; then
	out=$(h2load -n 2000 -c 2 -m 20 "$(mg_url /echo)" 2>&1)
	assert_contains "$out" "2000 succeeded, 0 failed, 0 errored" "h2load: 2000 requests, 20 streams at once"
	assert_contains "$out" "status codes: 2000 2xx" "h2load: all 2xx"
fi

# --- failures ------------------------------------------------------------------------------------
out=$(h2 -o /dev/null -w '%{http_code}' "$(mg_url /down)")
assert_eq "$out" 503 "refused upstream connection: 503 over HTTP/2"
out=$(h2 -o /dev/null -w '%{http_code}' "$(mg_url /reset)")
assert_eq "$out" 503 "upstream reset before answering: 503 (UC, as Envoy)"
rc=0
h2 -o /dev/null "$(mg_url '/bytes/1M?abort=100000')" 2>/dev/null || rc=$?
assert_eq "$rc" 92 "upstream reset mid-response: the client sees a stream error, not an end (curl 92)"
out=$($H2C --port "$MG_PORT" --path /sha256 --method POST --body 1000)
assert_match "$out" "^status 200 [0-9]+$" "POST with a body from a client that sends no content-length"
mg_wait_until 5 grep -q '"POST /sha256 HTTP/2" 200 - via_upstream - "-" 1000 ' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"POST /sha256 HTTP/2" 200 - via_upstream - "-" 1000 ' \
	"... its 1000 bytes forwarded (chunked upstream)"

# --- header blocks RFC 9113 forbids: the stream is reset, the connection goes on -------------
for bad in "X-Upper: 1" "connection: close" "te: gzip" "transfer-encoding: chunked"; do
	out=$($H2C --port "$MG_PORT" --raw --header "$bad" --path /echo)
	assert_eq "$out" "reset 1" "'$bad': RST_STREAM PROTOCOL_ERROR"
done
out=$($H2C --port "$MG_PORT" --raw --header "host: other.example" --path /echo)
assert_eq "$out" "reset 1" "host field that differs from :authority: RST_STREAM PROTOCOL_ERROR"
out=$($H2C --port "$MG_PORT" --raw --authority "user@a.example" --path /echo)
assert_eq "$out" "reset 1" "userinfo in :authority: RST_STREAM PROTOCOL_ERROR"
out=$($H2C --port "$MG_PORT" --raw --authority "" --header "host: b.example" --path /echo)
assert_match "$out" "^status 200 " "no :authority, a host field: routed on it"
big=$(head -c 70000 /dev/zero | tr '\0' a)
out=$($H2C --port "$MG_PORT" --header "x-big: $big" --path /echo)
assert_eq "$out" "status 431 0" "header block over maxHeaderBytes: 431"
mg_wait_until 5 grep -q '"GET /echo HTTP/2" 431 DPE request_headers_too_large' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /echo HTTP/2" 431 DPE request_headers_too_large' \
	"the 431 is in the access log (DPE)"
mg_wait_until 5 grep -q '"GET /echo HTTP/2" 400 DPE host_field_differs' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /echo HTTP/2" 400 DPE host_field_differs' \
	"a malformed block is in the access log (400, DPE)"

# --- client reset mid-request: the exchange ends as DC ------------------------------------------
out=$($H2C --port "$MG_PORT" --path /delay/3000/cancelled --reset-after 200)
assert_eq "$out" "cancelled" "client cancels a stream"
mg_wait_until 5 grep -q '"GET /delay/3000/cancelled HTTP/2" 0 DC' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /delay/3000/cancelled HTTP/2" 0 DC' \
	"the cancelled stream is logged DC"

# --- client connection closed with streams in progress: each exchange ends as DC -------------
out=$($H2C --port "$MG_PORT" --path /delay/3000/gone --streams 3 --close-after 300)
assert_eq "$out" "closed by client" "client closes its connection with 3 streams open"
# shellcheck disable=SC2317 # called through mg_wait_until
gone_logged() { [ "$(grep -c '"GET /delay/3000/gone HTTP/2" 0 DC' "$MG_ACCESS_LOG")" = 3 ]; }
mg_wait_until 5 gone_logged
assert_eq "$(grep -c '"GET /delay/3000/gone HTTP/2" 0 DC' "$MG_ACCESS_LOG")" 3 \
	"the 3 streams of the closed connection are logged DC"

# --- idle connection: GOAWAY after timeouts.idle -----------------------------------------------
out=$($H2C --port "$MG_PORT" --path /echo --wait 4)
assert_match "$(printf '%s' "$out" | tr '\n' ' ')" "^status 200 [0-9]+ goaway 0 1 closed$" \
	"idle HTTP/2 connection: GOAWAY NO_ERROR naming the last stream, then closed"

# --- access log and counters ---------------------------------------------------------------------
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /echo/x?q=1 HTTP/2" 200' "access log protocol HTTP/2"
assert_cmp "$(mg_metric downstream_cx_http2_total)" -ge 5 "HTTP/2 connections are counted"
assert_cmp "$(mg_metric downstream_rq_http2_total)" -ge 100 "HTTP/2 streams are counted"

# --- "rapid reset" (CVE-2023-44487): streams opened and cancelled at once, by thousands ---------
# nghttp2 bounds the resets a connection may send and ends it with GOAWAY; every stream reset
# before its exchange read it still has an access log line (DC), and none reaches the upstream.
before=$(mg_upstream_count a)
resets=$(mg_metric downstream_rq_rx_reset)
out=$($H2C --port "$MG_PORT" --path /rapid-reset --rapid-reset 20000)
assert_match "$out" "^goaway 2 after [0-9]+$" "a flood of cancelled streams ends with GOAWAY INTERNAL_ERROR"
assert_cmp "${out##* }" -lt 20000 "... well before the flood's end"
assert_eq "$(mg_upstream_count a)" "$before" "... and none of its streams reached the upstream"
assert_cmp "$(mg_metric downstream_rq_rx_reset)" -gt "$((resets + 500))" "client resets are counted"
assert_cmp "$(mg_metric downstream_cx_http2_goaway_error)" -ge 1 "the error GOAWAY is counted"
mg_wait_until 5 grep -q 'GOAWAY INTERNAL_ERROR sent' "$MG_LOG"
assert_contains "$(cat "$MG_LOG")" "GOAWAY INTERNAL_ERROR sent" "the error GOAWAY is in the log"
mg_wait_until 5 grep -q '"GET /rapid-reset HTTP/2" 0 DC downstream_remote_disconnect' "$MG_ACCESS_LOG"
assert_cmp "$(grep -c '"GET /rapid-reset HTTP/2" 0 DC downstream_remote_disconnect' "$MG_ACCESS_LOG")" \
	-gt 500 "streams reset before their exchange read them are logged DC"
out=$(h2 -o /dev/null -w '%{http_code}' "$(mg_url /echo)")
assert_eq "$out" 200 "a new HTTP/2 connection is served after the flood"

# HTTP/1.1 on the same ports is unchanged
assert_status GET /echo 200
out=$(printf 'PRI * HTTP/1.1\r\nHost: a\r\n\r\n' | mg_raw "$MG_PORT" | head -1)
assert_match "$out" "^HTTP/1.1 [45][0-9][0-9] " "an HTTP/1.1 'PRI *' request is not taken for a preface"

# --- graceful stop: GOAWAY, and the stream in flight is answered ------------------------------
if command -v nghttp >/dev/null; then
	nghttp -v "$(mg_url /delay/1000/drain)" >"$MG_DIR/drain.out" 2>&1 &
	drain_pid=$!
	sleep 0.4
	assert_alive
	mg_stop
	wait "$drain_pid"
	out=$(grep -E 'recv (GOAWAY|HEADERS|DATA)|:status|last_stream_id' "$MG_DIR/drain.out" | tr '\n' ' ')
	assert_match "$out" "recv GOAWAY .*last_stream_id=[1-9][0-9]*.*:status: 200.*recv DATA frame .*flags=0x01" \
		"SIGTERM: GOAWAY naming the stream in flight, which is then answered whole"
fi
mg_finish
