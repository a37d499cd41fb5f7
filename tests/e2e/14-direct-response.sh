#!/usr/bin/env bash
# 14-direct-response: routes that answer by themselves. Status, string and
# base64 bodies (binary safe), empty bodies, framing of HEAD and 204, response
# header operations, request bodies consumed so keep-alive and pipelining go
# on, Connection: close and HTTP/1.0, the access log and the counter.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup

mg_start_config <<EOF
workers: 2
EOF

# base64 of the bytes 00 01 02 ff 0d 0a 'end'
bin64=$(printf '\000\001\002\377\r\nend' | base64)
mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: d-string
    match: [{uri: {exact: /string}}]
    directResponse:
      status: 200
      body: {string: "hello direct\n"}
  - name: d-bytes
    match: [{uri: {exact: /bytes}}]
    directResponse:
      status: 200
      body: {bytes: "$bin64"}
  - name: d-empty
    match: [{uri: {exact: /empty}}]
    directResponse: {status: 503}
  - name: d-204
    match: [{uri: {exact: /nocontent}}]
    directResponse: {status: 204}
  - name: d-418
    match: [{uri: {exact: /teapot}}]
    directResponse:
      status: 418
      body: {string: "short and stout"}
  - name: d-404
    match: [{uri: {exact: /gone}}]
    directResponse:
      status: 404
      body: {string: "not here"}
  - name: d-headers
    match: [{uri: {exact: /headers}}]
    directResponse:
      status: 200
      body: {string: "with headers"}
    headers:
      response:
        set: {x-served-by: meshgate, cache-control: no-store}
        add: {x-added: one}
EOF

assert_valid
mg_start

assert_status GET /string 200
assert_eq "$(cat "$MG_BODY")" "hello direct" "string body"
assert_header content-length 13
assert_header server meshgate

assert_status GET /bytes 200
assert_eq "$(mg_sha256 "$MG_BODY")" "$(printf '\000\001\002\377\r\nend' | sha256sum | cut -d' ' -f1)" \
	"bytes body decoded from base64, binary intact"
assert_header content-length 9

assert_status GET /empty 503
assert_eq "$(stat -c %s "$MG_BODY")" 0 "no body configured: empty body"
assert_match "$(mg_header content-length)" '^(0)?$' "empty body: Content-Length 0 or none"

assert_status GET /nocontent 204
assert_eq "$(stat -c %s "$MG_BODY")" 0 "204: no body"
assert_no_header transfer-encoding "204: no Transfer-Encoding"

assert_status GET /teapot 418
assert_eq "$(cat "$MG_BODY")" "short and stout" "418 with a body"
assert_status POST /teapot 418 -d 'ignored'

assert_status GET /gone 404
assert_eq "$(cat "$MG_BODY")" "not here" "404 from directResponse carries its body"

assert_status GET /headers 200
assert_header x-served-by meshgate "response set on a directResponse route"
assert_header cache-control no-store
assert_header x-added one "response add on a directResponse route"

# HEAD: the length of the GET body, no body bytes; the framing holds for the
# next pipelined request.
out=$(printf 'HEAD /string HTTP/1.1\r\nHost: x\r\n\r\nGET /string HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | tr -d '\r')
assert_eq "$(grep -c '^HTTP/1.1 200' <<<"$out")" 2 "HEAD then GET on one connection: two responses"
assert_eq "$(grep -ci '^content-length: 13$' <<<"$out")" 2 "HEAD announces the GET's length"
assert_eq "$(grep -c '^hello direct$' <<<"$out")" 1 "only the GET has the body"

# 204 then GET pipelined: no stray bytes between them
out=$(printf 'GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\nGET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | tr -d '\r')
assert_match "$out" $'^HTTP/1.1 204[^\n]*\n([^\n]+\n)*\nHTTP/1.1 418' "204 then 418 framed back to back"
assert_match "$out" 'short and stout$' "then the 418 body and nothing else"

# A request body sent to a directResponse route is consumed, so the next
# pipelined request is parsed from the right place.
out=$(printf 'POST /string HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\nGET /gone HTTP/1.1\r\n\r\nPOST /teapot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\nGET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | tr -d '\r')
# Closing after the first response (with Connection: close) is allowed too
# (RFC 9112 9.6); answering a smuggled "GET /gone" is not.
codes=$(grep '^HTTP/1.1' <<<"$out" | awk '{print $2}' | paste -sd' ')
if [ "$codes" = 200 ]; then
	assert_match "$out" $'\n[Cc]onnection: close\n' "one response only: it says Connection: close"
	assert_not_contains "$out" "not here" "the body was not parsed as a request"
else
	assert_eq "$codes" "200 418 200" "bodies (Content-Length and chunked) skipped; statuses in order"
fi

# Keep-alive: five requests, one connection
n=$(curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}\n' \
	"http://127.0.0.1:$MG_PORT/string" "http://127.0.0.1:$MG_PORT/bytes" \
	"http://127.0.0.1:$MG_PORT/empty" "http://127.0.0.1:$MG_PORT/nocontent" \
	"http://127.0.0.1:$MG_PORT/gone" | paste -sd' ')
assert_eq "$n" "1 0 0 0 0" "five direct responses on one kept-alive connection"

# Connection: close and HTTP/1.0 end the connection after the response
out=$(printf 'GET /string HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_match "$out" $'\nhello direct$' "Connection: close: response, then the connection ends"
assert_match "$out" $'\n[Cc]onnection: close\n' "Connection: close echoed"
out=$(printf 'GET /string HTTP/1.0\r\n\r\n' | mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_match "$out" '^HTTP/1\.[01] 200' "HTTP/1.0 request answered"
assert_match "$out" $'\nhello direct$' "HTTP/1.0: the body, then close"

# --- log and metrics ------------------------------------------------------------------------
assert_log_contains '"GET /string HTTP/1.1" 200 - .* d-string$' "$MG_ACCESS_LOG"
assert_log_contains '"GET /gone HTTP/1.1" 404 - .* d-404$' "$MG_ACCESS_LOG"
assert_log_not_contains '"GET /gone HTTP/1.1" 404 NR' "$MG_ACCESS_LOG"
assert_log_contains '"GET /empty HTTP/1.1" 503 - ' "$MG_ACCESS_LOG"
m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
dr=$(awk '$1 == "meshgate_downstream_rq_direct_response" { print $2 }' <<<"$m")
assert_cmp "${dr:-0}" -ge 20 "meshgate_downstream_rq_direct_response counts them ($dr)"
nr=$(awk '$1 == "meshgate_downstream_rq_no_route" { print $2 }' <<<"$m")
assert_eq "${nr:-x}" 0 "no request counted as no route"

assert_alive
mg_finish
