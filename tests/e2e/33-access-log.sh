#!/usr/bin/env bash
# 33-access-log: one line per request, in Istio's default text format (Envoy
# TEXT: 24 fields, "-" for empty) and in JSON with the same fields in
# snake_case. Field values (method, path with query, protocol, status, flags,
# body bytes as Envoy counts them, durations, x-forwarded-for, user agent,
# request id, authority, upstream host and cluster, addresses, route name)
# and the response flags: -, NR, UF, UT, UC, UPE, DPE, DC.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
DOWN_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: down
spec:
  hosts: [down.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $DOWN_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: log
spec:
  hosts: [log.test]
  gateways: [gw]
  http:
  - name: r-down
    match: [{uri: {prefix: /down}}]
    route: [{destination: {host: down}}]
  - name: r-timeout
    match: [{uri: {prefix: /t/}}]
    rewrite: {uri: /}
    timeout: 300ms
    route: [{destination: {host: a}}]
  - name: r-known
    match: [{uri: {prefix: /known}}, {uri: {prefix: /echo}}, {uri: {prefix: /bytes}},
            {uri: {prefix: /reset}}, {uri: {prefix: /garbage}}, {uri: {prefix: /delay}}]
    route: [{destination: {host: a}}]
EOF

mg_start
H='Host: log.test'
nlines() { awk 'END { print NR }' "$MG_ACCESS_LOG" 2>/dev/null; }
# wait_lines N: the access log holds N lines (it may be flushed in batches).
wait_lines() { mg_wait_until 5 test "$(nlines)" -ge "$1"; sleep 0.3; }
logline() { grep -E -- "$1" "$MG_ACCESS_LOG" | tail -n 1; }

# --- the text format, field by field -------------------------------------------------------------
assert_status POST '/echo/log?x=1' 200 -H "$H" -H 'User-Agent: ua-test' -H 'X-Request-Id: rid-1' \
	-H 'X-Forwarded-For: 10.9.9.9' --data-binary abcd
assert_status GET /bytes/12345 200 -H "$H" -H 'X-Request-Id: rid-2'
wait_lines 2
l=$(logline '"rid-1"')
mg_say "# $l"
TS='\[[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\]'
ADDR='127\.0\.0\.1:[0-9]+'
re="^$TS \"POST /echo/log\\?x=1 HTTP/1\\.1\" 200 - [^ ]+ [^ ]+ \"[^\"]*\" ([0-9]+) ([0-9]+) ([0-9]+) ([0-9]+) \"10\\.9\\.9\\.9(, 127\\.0\\.0\\.1)?\" \"ua-test\" \"rid-1\" \"log\\.test\" \"127\\.0\\.0\\.1:$UP_A_PORT\" outbound\\|80\\|\\|a\\.default\\.svc\\.cluster\\.local ([^ ]+) 127\\.0\\.0\\.1:$MG_PORT $ADDR - r-known\$"
if [[ $l =~ $re ]]; then
	mg_ok "text line: all 24 fields in Envoy's order"
	assert_eq "${BASH_REMATCH[1]}" 4 "BYTES_RECEIVED is the request body (4 bytes), as in Envoy"
	assert_match "${BASH_REMATCH[6]}" "^$ADDR\$" "UPSTREAM_LOCAL_ADDRESS of a proxied request is an address"
else
	mg_fail "text line does not have the 24 fields of Envoy's format: $l"
fi
l=$(logline '"rid-2"')
bs=$(awk '{ print $11 }' <<<"$l")
assert_eq "$bs" 12345 "BYTES_SENT is the response body (12345 bytes), as in Envoy"

# --- one line per request, the flags ----------------------------------------------------------------
before=$(nlines)
sent=0
assert_status GET /known 200 -H "$H"; sent=$((sent + 1))
assert_status GET /unknown 404 -H "$H"; sent=$((sent + 1))
assert_status GET /x 404 -H 'Host: no-such-host.test'; sent=$((sent + 1))
assert_status GET /down 503 -H "$H"; sent=$((sent + 1))
assert_status GET /t/delay/2000 504 -H "$H"; sent=$((sent + 1))
assert_status GET /reset 503 -H "$H"; sent=$((sent + 1))
assert_status GET /garbage 502 -H "$H"; sent=$((sent + 1))
printf 'GET /bad HTTP/1.1\r\nHost: log.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n' |
	mg_raw "$MG_PORT" >/dev/null
sent=$((sent + 1))
curl -s -o /dev/null --max-time 0.5 -H "$H" "http://127.0.0.1:$MG_PORT/delay/1500"
sent=$((sent + 1))
sleep 1.5 # the upstream answers the abandoned request; meshgate logs it once
wait_lines $((before + sent))
assert_eq "$(($(nlines) - before))" "$sent" "one line per request ($sent requests)"

assert_log_contains '"GET /known HTTP/1\.1" 200 - .* r-known$' "$MG_ACCESS_LOG"
assert_log_contains '"GET /unknown HTTP/1\.1" 404 NR ' "$MG_ACCESS_LOG"
assert_log_contains '"GET /x HTTP/1\.1" 404 NR .*"no-such-host\.test"' "$MG_ACCESS_LOG"
assert_log_contains '"GET /down HTTP/1\.1" 503 UF,URX .* r-down$' "$MG_ACCESS_LOG"
assert_log_contains '"GET /t/delay/2000 HTTP/1\.1" 504 UT .* r-timeout$' "$MG_ACCESS_LOG"
assert_log_contains '"GET /reset HTTP/1\.1" 503 UC ' "$MG_ACCESS_LOG"
assert_log_contains '"GET /garbage HTTP/1\.1" 502 UPE ' "$MG_ACCESS_LOG"
assert_log_contains ' 400 DPE ' "$MG_ACCESS_LOG"
assert_log_contains '"GET /delay/1500 HTTP/1\.1" [0-9]+ DC ' "$MG_ACCESS_LOG"
l=$(logline '"GET /t/delay/2000 ')
d=$(awk '{ print $12 }' <<<"$l")
assert_cmp "${d:-0}" -ge 250 "DURATION of the 504 is about the 300 ms timeout ($d ms)"
assert_cmp "${d:-0}" -lt 1500 "DURATION of the 504 is about the 300 ms timeout ($d ms)"

# --- JSON -------------------------------------------------------------------------------------------------
mg_stop
sed -i 's/^  format: text$/  format: json/' "$MG_CONFIG"
: >"$MG_ACCESS_LOG"
mg_start
assert_status POST '/echo/json?y=2' 200 -H "$H" -H 'User-Agent: ua-json' -H 'X-Request-Id: rid-json' \
	--data-binary abcdef
assert_status GET /unknown 404 -H "$H"
wait_lines 2
out=$("$PYTHON" - "$MG_ACCESS_LOG" <<'EOF'
import json, sys
keys = ["start_time", "method", "path", "protocol", "response_code", "response_flags",
        "response_code_details", "connection_termination_details",
        "upstream_transport_failure_reason", "bytes_received", "bytes_sent", "duration",
        "upstream_service_time", "x_forwarded_for", "user_agent", "request_id", "authority",
        "upstream_host", "upstream_cluster", "upstream_local_address",
        "downstream_local_address", "downstream_remote_address", "requested_server_name",
        "route_name"]
docs = []
for line in open(sys.argv[1]):
    try:
        docs.append(json.loads(line))
    except ValueError:
        print("not-json: " + line.strip())
print("lines=%d" % len(docs))
for d in docs:
    if d.get("request_id") == "rid-json" or d.get("x_request_id") == "rid-json":
        print("missing=" + ",".join(k for k in keys if k not in d))
        for k in ("method", "path", "protocol", "response_code", "response_flags", "user_agent",
                  "authority", "upstream_host", "upstream_cluster", "route_name", "bytes_received"):
            print("%s=%s" % (k, d.get(k)))
    if d.get("path") == "/unknown":
        print("nr=%s %s" % (d.get("response_code"), d.get("response_flags")))
# workers flush their lines independently, so the order of the two objects varies; a last
# line keeps every "\nkey=value\n" check independent of that order ($(...) eats the final \n)
print("end")
EOF
)
assert_not_contains "$out" "not-json" "every line is a JSON object"
assert_contains "$out" "lines=2" "one JSON object per request"
assert_contains "$out" $'\nmissing=\n' "the JSON object has the 24 fields of the text format"
assert_contains "$out" $'\nmethod=POST\n' "json method"
assert_contains "$out" $'\npath=/echo/json?y=2\n' "json path with the query"
assert_contains "$out" $'\nprotocol=HTTP/1.1\n' "json protocol"
assert_contains "$out" $'\nresponse_code=200\n' "json response_code"
assert_contains "$out" $'\nresponse_flags=-\n' "json response_flags"
assert_contains "$out" $'\nuser_agent=ua-json\n' "json user_agent"
assert_contains "$out" $'\nauthority=log.test\n' "json authority"
assert_contains "$out" $'\nupstream_host=127.0.0.1:'"$UP_A_PORT"$'\n' "json upstream_host"
assert_contains "$out" $'\nupstream_cluster=outbound|80||a.default.svc.cluster.local\n' "json upstream_cluster"
assert_contains "$out" $'\nroute_name=r-known\n' "json route_name"
assert_contains "$out" $'\nbytes_received=6\n' "json bytes_received is the body (6 bytes)"
assert_contains "$out" "nr=404 NR" "json NR flag"
[ "$MG_FAILED" = 0 ] || mg_say "$out"

assert_alive
mg_finish
