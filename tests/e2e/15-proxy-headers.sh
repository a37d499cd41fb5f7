#!/usr/bin/env bash
# 15-proxy-headers: what a proxy adds and removes. Hop-by-hop headers
# (Connection and the names it lists, Keep-Alive, Proxy-Connection, TE,
# Transfer-Encoding) are removed both ways; x-forwarded-for is appended,
# x-forwarded-proto set, x-request-id generated when absent and kept when
# present; Server: meshgate; end-to-end headers (repeated, many, long) pass
# intact; an HTTP/1.0 client is served.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 2
EOF

mg_resource_simple a

mg_start
UUID_RE='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

# --- hop-by-hop request headers ------------------------------------------------------
assert_status POST /echo 200 -H 'Connection: keep-alive, X-Hop-Token' -H 'X-Hop-Token: secret' \
	-H 'Keep-Alive: timeout=5' -H 'Proxy-Connection: keep-alive' -H 'TE: gzip' \
	-H 'x-end-to-end: kept' -H 'Transfer-Encoding: chunked' -d 'chunked body'
for h in connection x-hop-token keep-alive proxy-connection te; do
	assert_eq "$(mg_json "headers.$h")" "" "request hop-by-hop header $h removed"
done
assert_eq "$(mg_json headers.x-end-to-end)" kept "end-to-end request header kept"
assert_eq "$(mg_json body_sha256)" "$(printf 'chunked body' | sha256sum | cut -d' ' -f1)" \
	"chunked request body re-framed intact"
assert_eq "$(mg_json body_len)" 12 "chunked request body length"
# TE: trailers is forwarded, as Envoy does; any other TE is dropped (above), and a list
# that names trailers among other codings goes on as "trailers" alone, once.
assert_status GET /echo 200 -H 'TE: trailers'
assert_eq "$(mg_json headers.te)" trailers "request TE: trailers kept"
assert_status GET /echo 200 -H 'TE: gzip;q=0.5, Trailers'
assert_eq "$(mg_json headers.te)" trailers "TE: gzip, trailers reduced to trailers"
assert_status GET /echo 200 -H 'TE: trailers' -H 'TE: deflate, trailers'
assert_eq "$(mg_json headers.te)" trailers "two TE fields naming trailers give one"

# --- hop-by-hop response headers ----------------------------------------------------------
assert_status GET '/headers-out?connection=x-resp-hop&x-resp-hop=1&keep-alive=timeout%3D9&proxy-connection=keep-alive&x-normal=1' 200
assert_no_header x-resp-hop "response header listed in Connection removed"
assert_no_header keep-alive "response Keep-Alive removed"
assert_no_header proxy-connection "response Proxy-Connection removed"
assert_match "$(mg_header connection)" '^(|keep-alive|close)$' "upstream's Connection not passed on"
assert_header x-normal 1 "end-to-end response header kept"

# --- x-forwarded-for / -proto --------------------------------------------------------------
assert_status GET /echo 200
assert_eq "$(mg_json headers.x-forwarded-for)" 127.0.0.1 "x-forwarded-for set to the client address"
assert_eq "$(mg_json headers.x-forwarded-proto)" http "x-forwarded-proto: http"
assert_status GET /echo 200 -H 'X-Forwarded-For: 10.1.1.1'
assert_eq "$(mg_json headers.x-forwarded-for)" "10.1.1.1, 127.0.0.1" "x-forwarded-for appended"
assert_status GET /echo 200 -H 'X-Forwarded-For: 10.0.0.1' -H 'X-Forwarded-For: 10.0.0.2, 10.0.0.3'
xff=$(mg_json headers.x-forwarded-for)
assert_match "$xff" '^10\.0\.0\.1, 10\.0\.0\.2, 10\.0\.0\.3, 127\.0\.0\.1$' \
	"two x-forwarded-for headers: one list, client appended"

# --- x-request-id ---------------------------------------------------------------------------
assert_status GET /echo 200
id1=$(mg_json headers.x-request-id)
assert_match "$id1" "$UUID_RE" "x-request-id generated (a UUID)"
assert_status GET /echo 200
id2=$(mg_json headers.x-request-id)
assert_match "$id2" "$UUID_RE" "x-request-id generated again"
assert_ne "$id1" "$id2" "generated request ids differ"
assert_status GET /echo 200 -H 'X-Request-Id: my-own-id-42'
assert_eq "$(mg_json headers.x-request-id)" my-own-id-42 "client x-request-id preserved"
assert_log_contains '"my-own-id-42"' "$MG_ACCESS_LOG"
assert_log_contains "\"$id1\"" "$MG_ACCESS_LOG"

# --- Server ------------------------------------------------------------------------------------
assert_status GET /echo 200
assert_header server meshgate
assert_status GET '/headers-out?server=upstream-server' 200
assert_header server meshgate "the upstream's Server is replaced"
assert_eq "$(grep -ci '^server:' "$MG_HEADERS")" 1 "one Server header"
assert_status GET /status/503 503
assert_header server meshgate "Server on an upstream error status too"

# --- end-to-end headers pass intact ---------------------------------------------------------------
assert_status GET /echo 200 -H 'x-dup: one' -H 'x-dup: two' -H 'X-Case: MiXeD VaLuE'
assert_eq "$(mg_json headers.x-dup)" "one, two" "repeated request header: both values, in order"
assert_eq "$(mg_json headers.x-case)" "MiXeD VaLuE" "header value case kept"
assert_eq "$(mg_json headers.host)" "127.0.0.1:$MG_PORT" "Host passed unchanged"
args=()
for i in $(seq 1 80); do args+=(-H "x-many-$i: value-$i"); done
assert_status GET /echo 200 "${args[@]}"
assert_eq "$(mg_json headers.x-many-80)" value-80 "80 request headers pass"
long=$(head -c 30000 /dev/zero | tr '\0' 'v')
assert_status GET /echo 200 -H "x-long: $long"
assert_eq "$(mg_json headers.x-long | wc -c)" 30001 "a 30000-byte header value passes intact"
assert_status GET '/headers-out?set-cookie=a%3D1&set-cookie=b%3D2' 200
assert_eq "$(grep -ci '^set-cookie:' "$MG_HEADERS")" 2 "repeated Set-Cookie kept as two headers"

# --- HTTP/1.0 client ------------------------------------------------------------------------------
out=$(printf 'GET /echo HTTP/1.0\r\nHost: old.client\r\n\r\n' | mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_match "$out" '^HTTP/1\.[01] 200' "HTTP/1.0 request proxied"
assert_contains "$out" '"host": "old.client"' "HTTP/1.0 Host forwarded"
assert_match "$out" $'\n}$' "HTTP/1.0: whole body, then the connection closed"

assert_alive
mg_finish
