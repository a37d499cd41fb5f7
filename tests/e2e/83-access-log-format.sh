#!/usr/bin/env bash
# 83-access-log-format: access log lines in the operator's format, written as Envoy's
# format strings (Istio's accessLogFormat and envoyFileAccessLog logFormat). The main
# config's accessLog.logFormat.text: request and response header fields by name (with
# fallback and length), the flags short and long, the tries, the upstream, the start
# time, TLS and the client certificate's URI SAN on a mutual TLS listener, a line for a
# request refused before routing, operators meshgate does not record warned about; a
# format that does not compile is refused at its line and column and the running one
# keeps writing. An envoyFileAccessLog provider named by a Telemetry: its own file, in
# JSON labels (sorted, typed, null when missing); two providers on at once are refused.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki
PLAIN=$(mg_port)
JSON_LOG="$MG_DIR/json.log"

FMT='mg %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% [%RESPONSE_FLAGS_LONG%] id=%REQ(X-REQUEST-ID)% tag=%REQ(x-tag):8% alt=%REQ(x-none?User-Agent)% out=%RESP(X-Out)% nq=%REQ_WITHOUT_QUERY(:PATH)% tries=%UPSTREAM_REQUEST_ATTEMPT_COUNT% up=%UPSTREAM_HOST% t=%START_TIME(%s)% tls=%DOWNSTREAM_TLS_VERSION% sni=%REQUESTED_SERVER_NAME% peer=%DOWNSTREAM_PEER_URI_SAN% rd=%REQUEST_DURATION% cipher=%DOWNSTREAM_TLS_CIPHER% dns=%DOWNSTREAM_PEER_DNS_SAN% fp=%DOWNSTREAM_PEER_FINGERPRINT_256% lsubj=%DOWNSTREAM_LOCAL_SUBJECT% luri=%DOWNSTREAM_LOCAL_URI_SAN% subj=%DOWNSTREAM_PEER_SUBJECT% iss=%DOWNSTREAM_PEER_ISSUER%'

# main_config [EXTRA]: one worker (lines in order), the custom text format, EXTRA after
main_config() {
	mg_start_config <<EOF
workers: 1
labels: {istio: ingressgateway}
accessLog:
  path: "$MG_ACCESS_LOG"
  logFormat:
    text: '$FMT'
${1:-}
EOF
}
main_config

mg_resource all <<EOF
$(mg_yaml_https_gateway '[a.example.com]' "{mode: MUTUAL, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key, caCertificates: $PKI/ca.crt}")
  - port: {number: $PLAIN, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fmt}
spec:
  hosts: [fmt.test, a.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: a}}]
EOF

assert_valid "a custom text format loads"
assert_contains "$MG_VALIDATE_OUT" \
	'warning: accessLog.logFormat.text: %REQUEST_DURATION% is an Envoy command operator whose value meshgate does not record: it prints "-"' \
	"-t warns of an operator meshgate does not record"
mg_start

tag() { printf 'fmt-%s-%s' "$1" "$(date +%s%N)"; }
# line FILE ID: the line of request ID in FILE (empty until it is written)
line() { grep -- "$2" "$1" 2>/dev/null | tail -n 1; }
# shellcheck disable=SC2317 # called through mg_wait_until
has_line() { [ -n "$(line "$1" "$2")" ]; }
# wait_line FILE ID: up to 5 s for the line; sets L
wait_line() {
	mg_wait_until 5 has_line "$1" "$2" || true
	L=$(line "$1" "$2")
}
plain() { echo "http://127.0.0.1:$PLAIN$1"; }

# --- a proxied request: the header fields by name, the upstream, the time -----------------
id=$(tag ok)
now=$(date +%s)
curl -s -o /dev/null --max-time 5 -H 'Host: fmt.test' -H "X-Request-Id: $id" \
	-H 'x-tag: abcdefghijkl' -A 'probe/1' "$(plain '/headers-out?X-Out=hello')"
wait_line "$MG_ACCESS_LOG" "$id"
assert_match "$L" "^mg GET /headers-out\\?X-Out=hello HTTP/1\\.1 200 - \\[-\\] id=$id tag=abcdefgh alt=probe/1 out=hello nq=/headers-out tries=1 up=127\\.0\\.0\\.1:$UP_A_PORT t=[0-9]+ tls=- sni=- peer=- rd=- cipher=- dns=- fp=- lsubj=- luri=- subj=- iss=-\$" \
	"the line is in the format, field for field ($L)"
t=$(sed -n 's/.* t=\([0-9]*\) .*/\1/p' <<<"$L")
assert_cmp "${t:-0}" -ge "$((now - 5))" "START_TIME(%s) is the request's time ($t, now $now)"
assert_cmp "${t:-0}" -le "$((now + 5))" "... not later"

# --- no route: the flags, short and long ---------------------------------------------------
id=$(tag nr)
curl -s -o /dev/null --max-time 5 -H 'Host: other.test' -H "X-Request-Id: $id" "$(plain /x)"
wait_line "$MG_ACCESS_LOG" "$id"
assert_match "$L" "^mg GET /x HTTP/1\\.1 404 NR \\[NoRouteFound\\] id=$id .* tries=0 up=- " \
	"no route: 404 NR NoRouteFound, no upstream ($L)"

# --- a response header of a local answer ---------------------------------------------------
id=$(tag local)
mg_resource local <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local}
spec:
  hosts: [local.test]
  gateways: [gw]
  http:
  - directResponse: {status: 503, body: {string: "down"}}
    headers: {response: {set: {x-out: from-route}}}
EOF
assert_reload applied
curl -s -o /dev/null --max-time 5 -H 'Host: local.test' -H "X-Request-Id: $id" "$(plain /l)"
wait_line "$MG_ACCESS_LOG" "$id"
assert_match "$L" "^mg GET /l HTTP/1\\.1 503 - \\[-\\] id=$id .* out=from-route " \
	"a direct response's header is in the line ($L)"

# --- refused before routing: the line is in the format too --------------------------------
printf 'GET /bad HTTP/1.1\r\nHost: fmt.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' |
	mg_raw "$PLAIN" >/dev/null
mg_wait_until 5 grep -q ' 400 DPE \[DownstreamProtocolError\] ' "$MG_ACCESS_LOG" || true
assert_contains "$(cat "$MG_ACCESS_LOG")" ' 400 DPE [DownstreamProtocolError] ' \
	"a request refused before routing is logged in the format"

# --- mutual TLS: the version, the SNI, the client's URI SAN --------------------------------
id=$(tag tls)
curl -s -o /dev/null --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" \
	--key "$PKI/client.key" --resolve "a.example.com:$MG_PORT:127.0.0.1" \
	-H "X-Request-Id: $id" "https://a.example.com:$MG_PORT/echo"
wait_line "$MG_ACCESS_LOG" "$id"
assert_match "$L" " tls=TLSv1\\.[23] sni=a\\.example\\.com peer=spiffe://cluster\\.local/ns/default/sa/client rd=- cipher=TLS_[A-Z0-9_]+ " \
	"TLS version, SNI and the client certificate's URI SAN ($L)"
# the certificates' fields as openssl prints them (RFC 2253 names, SHA-256 without colons),
# backslashes and quotes escaped as in every log value
name_of() { openssl x509 -in "$1" -noout "-$2" -nameopt RFC2253 | sed "s/^$2=//" | sed 's/[\\"]/\\&/g'; }
fp=$(openssl x509 -in "$PKI/client.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
assert_contains "$L" " dns=client.example.com fp=$fp lsubj=$(name_of "$PKI/a.crt" subject) luri=- subj=$(name_of "$PKI/client.crt" subject) iss=$(name_of "$PKI/client.crt" issuer)" \
	"the client certificate's DNS SAN, fingerprint, subject and issuer, the server's subject"

# --- a format that does not compile: refused at its column, the old one goes on ------------
FMT='mg2 %REQ(:PATH)% %RESPONSE_COD%'
main_config
assert_invalid "$MG_CONFIG:6:30: accessLog.logFormat.text: unknown command operator %RESPONSE_COD%" \
	"an unknown operator is refused at its line and column"
assert_reload refused
id=$(tag kept)
curl -s -o /dev/null --max-time 5 -H 'Host: fmt.test' -H "X-Request-Id: $id" "$(plain /kept)"
wait_line "$MG_ACCESS_LOG" "$id"
assert_match "$L" "^mg GET /kept " "the running format keeps writing ($L)"

# --- an envoyFileAccessLog provider named by a Telemetry: its file, JSON labels ----------
FMT='mg3 %REQ(:PATH)%'
main_config "extensionProviders:
- name: json-log
  envoyFileAccessLog:
    path: $JSON_LOG
    logFormat:
      labels:
        status: \"%RESPONSE_CODE%\"
        path: \"%REQ(:PATH)%\"
        id: \"%REQ(X-REQUEST-ID)%\"
        tag: \"%REQ(x-tag)%\"
        missing: \"%REQ(x-missing)%\"
        mixed: \"code=%RESPONSE_CODE% missing=%REQ(x-missing)%\"
        bytes: \"%BYTES_SENT%\"
        upstream: \"%UPSTREAM_CLUSTER%\""
mg_resource telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: json-log}]
EOF
assert_valid "a file provider named by a Telemetry loads"
assert_contains "$MG_VALIDATE_OUT" "access log on to provider json-log by Telemetry istio-system/mesh-default" \
	"-t names the provider and the Telemetry"
assert_reload applied
id=$(tag json)
curl -s -o /dev/null --max-time 5 -H 'Host: fmt.test' -H "X-Request-Id: $id" -H 'x-tag: t"q' \
	"$(plain /echo?j=1)"
wait_line "$JSON_LOG" "$id"
printf '%s\n' "$L" >"$MG_DIR/j.json"
verdict=$("$PYTHON" - "$MG_DIR/j.json" "$id" <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
v = json.loads(raw)
want = {"bytes": v.get("bytes"), "id": sys.argv[2], "missing": None,
        "mixed": "code=200 missing=-", "path": "/echo?j=1", "status": 200, "tag": 't"q',
        "upstream": v.get("upstream")}
problems = []
if list(v) != sorted(v):
    problems.append("keys not sorted: %s" % list(v))
if v != want:
    problems.append("got %s" % v)
if not isinstance(v.get("bytes"), int) or v["bytes"] <= 0:
    problems.append("bytes is not a positive number")
if not str(v.get("upstream", "")).startswith("outbound|"):
    problems.append("upstream cluster %r" % v.get("upstream"))
print("; ".join(problems) or "ok")
EOF
)
assert_eq "$verdict" ok "the provider's JSON line: sorted keys, numbers, strings, null"
assert_not_contains "$(cat "$MG_ACCESS_LOG")" "$id" \
	"the main config's log has no line for it (the Telemetry decides)"

# --- two providers on: one access log only ---------------------------------------------
mg_resource telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: envoy}, {name: json-log}]
EOF
assert_invalid "the access log providers envoy and json-log are both on: meshgate writes one access log" \
	"two providers on at once are refused"
assert_reload refused
id=$(tag still)
curl -s -o /dev/null --max-time 5 -H 'Host: fmt.test' -H "X-Request-Id: $id" "$(plain /still)"
wait_line "$JSON_LOG" "$id"
assert_contains "$L" '"path":"/still"' "the provider keeps writing after the refused reload"

mg_stop
mg_finish
