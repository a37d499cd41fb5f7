#!/usr/bin/env bash
# 00-harness: the test upstream and lib.sh themselves, without meshgate.
# Every later test trusts x-upstream-conn, the body hashes and the stats file;
# this one checks them against curl, raw sockets and sha256sum.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need sha256sum awk

mg_upstream a
mg_upstream b --keepalive-max 2
A="http://127.0.0.1:$UP_A_PORT"
B="http://127.0.0.1:$UP_B_PORT"

# --- keep-alive: two URLs in one curl reuse one connection -------------------
curl -s -D "$MG_DIR/ka.h" -o /dev/null -o /dev/null "$A/echo/1" "$A/echo/2"
conns=$(grep -i '^x-upstream-conn:' "$MG_DIR/ka.h" | tr -d '\r' | awk '{print $2}' | paste -sd' ')
reqs=$(grep -i '^x-upstream-req:' "$MG_DIR/ka.h" | tr -d '\r' | awk '{print $2}' | paste -sd' ')
assert_eq "$conns" "1 1" "two requests in one curl share connection 1"
assert_eq "$reqs" "1 2" "request ordinals on that connection"
assert_status GET "$A/echo" 200
assert_header x-upstream-conn 2 "a new curl opens connection 2"
assert_header x-upstream a
assert_eq "$(mg_json name)" a "echo names the upstream"
assert_eq "$(mg_json method)" GET "echo has the method"

# --keepalive-max 2: the second response closes, the third request reconnects
curl -s -D "$MG_DIR/kam.h" -o /dev/null -o /dev/null -o /dev/null "$B/x" "$B/y" "$B/z"
conns=$(grep -i '^x-upstream-conn:' "$MG_DIR/kam.h" | tr -d '\r' | awk '{print $2}' | paste -sd' ')
assert_eq "$conns" "1 1 2" "--keepalive-max 2 closes after two requests"

# --- pipelining: three requests in one write, answered in order -----------------
printf 'GET /echo/p1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t1\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw "$UP_A_PORT" >"$MG_DIR/pipe.out"
pipe=$(tr -d '\r' <"$MG_DIR/pipe.out")
assert_eq "$(grep '^HTTP/1.1' <<<"$pipe" | awk '{print $2}' | paste -sd' ')" "200 200 201" "pipelined statuses in order"
assert_eq "$(grep '^x-upstream-req:' <<<"$pipe" | awk '{print $2}' | paste -sd' ')" "1 2 3" "pipelined request ordinals"
assert_eq "$(grep -c '^x-upstream-conn: 3$' <<<"$pipe")" 3 "pipelined requests on one connection"
assert_contains "$pipe" "$(printf 'hello world' | sha256sum | cut -d' ' -f1)" "chunked body with an extension decoded"
assert_contains "$pipe" '"length": 11' "chunked body length"
assert_contains "$pipe" "connection: close" "Connection: close honoured"

# trailers and Expect: 100-continue
printf 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-trailer: t1\r\n\r\n' |
	mg_raw "$UP_A_PORT" | tr -d '\r' | sed -n '/^{/,$p' >"$MG_DIR/trailer.json"
assert_eq "$(mg_json trailers.x-trailer "$MG_DIR/trailer.json")" t1 "request trailers reported"
assert_eq "$(mg_json body_len "$MG_DIR/trailer.json")" 3 "body length before trailers"
out=$(printf 'POST /sha256 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi' | mg_raw "$UP_A_PORT" | tr -d '\r')
assert_match "$out" $'^HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK' "100 Continue before the response"

# --- uploads: chunked and Content-Length, sha256 at both ends ---------------------
mg_make_file "$MG_DIR/up.bin" 50M 42
want=$(mg_sha256 "$MG_DIR/up.bin")
assert_eq "$want" "$(mg_bytes_sha256 50M 42)" "--write-bytes and --print-sha256 agree"
assert_status POST "$A/sha256" 200 --http1.1 -H 'Transfer-Encoding: chunked' -T "$MG_DIR/up.bin"
assert_eq "$(mg_json sha256)" "$want" "50 MiB chunked upload: sha256"
assert_eq "$(mg_json length)" 52428800 "50 MiB chunked upload: length"
assert_status POST "$A/sha256" 200 --data-binary "@$MG_DIR/up.bin"
assert_eq "$(mg_json sha256)" "$want" "50 MiB Content-Length upload: sha256"
assert_status PUT "$A/echo" 200 -T "$MG_DIR/up.bin"
assert_eq "$(mg_json body_sha256)" "$want" "echo reports the body sha256"

# --- downloads: /bytes matches --print-sha256 in every framing -------------------
for q in "" "chunked=1" "chunked=1&chunk=1000" "eof=1" "chunked=1&trailers=1"; do
	curl -s -o "$MG_DIR/down.bin" -D "$MG_DIR/down.h" "$A/bytes/20M?seed=7&$q"
	assert_eq "$(mg_sha256 "$MG_DIR/down.bin")" "$(mg_bytes_sha256 20M 7)" "/bytes/20M?$q sha256"
done
assert_eq "$(mg_header transfer-encoding "$MG_DIR/down.h")" chunked "chunked=1 framing"
curl -s -o "$MG_DIR/down.bin" "$A/bytes/12345"
assert_eq "$(mg_sha256 "$MG_DIR/down.bin")" "$(mg_bytes_sha256 12345)" "/bytes/12345, default seed"
assert_ne "$(mg_bytes_sha256 1000 1)" "$(mg_bytes_sha256 1000 2)" "seeds give different streams"
assert_status HEAD "$A/bytes/1000" 200
assert_header content-length 1000 "HEAD /bytes/1000 announces the length"
assert_eq "$(grep -c . "$MG_BODY")" "$(grep -c . "$MG_HEADERS")" "HEAD carries no body"
out=$(curl -s "$A/bytes/1M?abort=1000" | wc -c)
assert_eq "$out" 1000 "abort=1000 sends 1000 bytes then resets"
rss=$(awk '/^VmHWM/ {print $2}' "/proc/$UP_A_PID/status")
assert_cmp "$rss" -lt 65536 "upstream peak RSS ${rss} KiB < 64 MiB after 50 MiB bodies"

# --- the other endpoints -----------------------------------------------------------
assert_status GET "$A/status/503" 503
assert_body_contains "status 503"
assert_status GET "$A/status/204" 204
assert_eq "$(stat -c %s "$MG_BODY")" 0 "204 has no body"
assert_status GET "$A/status/abc" 400

t=$(curl -s -o /dev/null -w '%{time_total}' "$A/delay/300")
assert_eq "$(awk -v t="$t" 'BEGIN { print (t >= 0.3) }')" 1 "/delay/300 takes >= 300 ms ($t s)"
t=$(curl -s -o /dev/null -w '%{time_starttransfer} %{time_total}' "$A/slowbody/400")
assert_eq "$(awk -v a="${t% *}" -v b="${t#* }" 'BEGIN { print (a < 0.3 && b >= 0.4) }')" 1 \
	"/slowbody/400: head at once, body after 400 ms ($t)"

curl -s -D "$MG_DIR/close.h" -o /dev/null -o /dev/null "$A/close" "$A/echo"
assert_eq "$(grep -ci '^connection: close' "$MG_DIR/close.h")" 1 "/close sends Connection: close"
conns=$(grep -i '^x-upstream-conn:' "$MG_DIR/close.h" | tr -d '\r' | awk '{print $2}' | sort -u | wc -l)
assert_eq "$conns" 2 "after /close the next request needs a new connection"

curl -s -o /dev/null "$A/reset"
rc=$?
assert_match "$rc" '^(52|56)$' "/reset: curl sees no response (rc $rc)"
for kind in status header cl chunk short binary; do
	out=$(printf 'GET /garbage?kind=%s HTTP/1.1\r\nHost: x\r\n\r\n' "$kind" | mg_raw "$UP_A_PORT" | head -c 200 | tr -d '\0')
	assert_ne "$out" "" "/garbage?kind=$kind writes something"
done
assert_status GET "$A/headers-out?X-Foo=bar&set-cookie=a&set-cookie=b&content-type=text/x" 200
assert_header x-foo bar
assert_header content-type text/x "headers-out replaces content-type"
assert_eq "$(grep -ci '^set-cookie:' "$MG_HEADERS")" 2 "repeated response headers"

# --- strictness: bad framing gets a 400 ----------------------------------------------
out=$(printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | mg_raw "$UP_A_PORT")
assert_contains "$out" "HTTP/1.1 400" "Content-Length with Transfer-Encoding -> 400"
out=$(printf 'GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n' | mg_raw "$UP_A_PORT")
assert_contains "$out" "HTTP/1.1 400" "obs-fold -> 400"

# --- stats file --------------------------------------------------------------------
assert_eq "$(mg_upstream_count b)" 3 "stats: three requests reached b"
assert_eq "$(mg_upstream_count a '^/bytes/20M')" 5 "stats: five /bytes/20M requests reached a"
assert_cmp "$(mg_upstream_count a)" -gt 20 "stats: a counted every request"
assert_eq "$(awk '$1 == "a" && $2 == 3 { print $3 }' "$MG_STATS" | paste -sd' ')" "1 2 3" \
	"stats: name conn req method target"

# --- lib.sh itself ---------------------------------------------------------------------
p1=$(mg_port)
p2=$(mg_port)
assert_ne "$p1" "$p2" "mg_port never repeats"
assert_match "$p1" '^[0-9]+$' "mg_port prints a number"
mg_upstream_stop b
assert_status GET "$B/echo" 000
mg_start_config <<EOF
workers: 1
EOF
assert_contains "$(cat "$MG_CONFIG")" "127.0.0.1:$MG_ADMIN_PORT" "mg_start_config adds the admin address"
assert_contains "$(cat "$MG_CONFIG")" "resources" "mg_start_config adds the resources dir"

mg_finish
