#!/usr/bin/env bash
# 82-ext-authz-grpc: AuthorizationPolicy action CUSTOM with a gRPC external authorizer
# (envoyExtAuthzGrpc), as in Istio's "External Authorization" task (its gRPC provider and
# its policy naming it), against a stand-in of Istio's sample ext-authz gRPC server
# (tests/upstream/mg-ext-authz-grpc.py: h2c, protobuf by hand).  Checked: the call
# (method path, content-type, te, grpc-timeout, authority) and the CheckRequest it
# decodes (source and destination addresses, the client certificate's principal, time,
# method, path, host, scheme, protocol, every header with the pseudo-headers, repeated
# fields joined); allowed requests reach the upstream with ok_response's headers (set,
# appended, removed; response_headers_to_add on the response); denied ones get the
# denied_response status, headers and body (403 when none) and never reach it; paths the
# CUSTOM rules do not match are not checked; HTTP/2 clients; failed calls (grpc-status,
# HTTP 500, reset, malformed answer, authorizer down, timeout) answered statusOnError or
# let through with failOpen; a client leaving mid-check; reloads refused for an unknown
# provider and for a port that does not speak HTTP/2; /explain; counters.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki
REC="$MG_DIR/checks.jsonl"
mg__upstream_run "$MG_LIBDIR/../upstream/mg-ext-authz-grpc.py" authz --record-file "$REC"
DOWN_PORT=$(mg_port) || mg_fatal "no free port"
TLS_PORT=$(mg_port) || mg_fatal "no free port"
CHECK=/envoy.service.auth.v3.Authorization/Check
# shellcheck disable=SC2016 # backquotes of the sample's text
DENY_BODY='denied by ext_authz for not found header `x-ext-authz: allow` in the request'

# main PROVIDERS-YAML: the main config with that extensionProviders list
main() {
	mg_start_config <<EOF
workers: 2
namespace: foo
labels: {app: httpbin}
extensionProviders:
$1
EOF
}

# The task's gRPC provider, verbatim.
TASK_PROVIDER='- name: "sample-ext-authz-grpc"
  envoyExtAuthzGrpc:
    service: "ext-authz.foo.svc.cluster.local"
    port: "9000"'
main "$TASK_PROVIDER"

# service NAME PORT [PROTOCOL]: ServiceEntry NAME.foo.svc.cluster.local:9000 -> 127.0.0.1:PORT
service() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: [$1.foo.svc.cluster.local]
  ports: [{number: 9000, name: grpc, protocol: ${3:-GRPC}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: $2}}]
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server http HTTP '["*"]')
$(mg_yaml_server https HTTPS '["*"]' "{mode: MUTUAL, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key, caCertificates: $PKI/ca.crt}" "$TLS_PORT")
$(mg_yaml_service a "$UP_A_PORT")
$(service ext-authz "$UP_AUTHZ_PORT")
$(service down "$DOWN_PORT")
$(service plain "$UP_AUTHZ_PORT" HTTP)
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: a.default.svc.cluster.local}}]
EOF
# policy [PROVIDER]: the task's policy, naming its gRPC provider
policy() {
	cat <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext-authz
spec:
  selector:
    matchLabels:
      app: httpbin
  action: CUSTOM
  provider:
    # The provider name must match the extension provider defined in the mesh config.
    name: ${1:-sample-ext-authz-grpc}
  rules:
  # The rules specify when to trigger the external authorizer.
  - to:
    - operation:
        paths: ["/headers"]
EOF
}
policy | mg_resource policy
assert_valid
mg_start

checks() { if [ -f "$REC" ]; then wc -l <"$REC"; else echo 0; fi; }
# rec FIELD: a field of the last call the authorizer recorded (dots between keys)
rec() {
	"$PYTHON" - "$REC" "$1" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for k in sys.argv[2].split("|") if "|" in sys.argv[2] else sys.argv[2].split("."):
    d = d.get(k, "") if isinstance(d, dict) else ""
print(d)
PY
}
# hdr NAME: that header of the last CheckRequest's map
hdr() { rec "attributes|request|http|headers|$1"; }

# --- the task: /headers is checked, other paths are not ---------------------------------
before=$(mg_upstream_count a)
assert_status GET /ip 200 -H 'Host: httpbin.foo'
assert_eq "$(checks)" 0 "a path the CUSTOM rules do not match is not checked"
assert_status GET '/headers?x=1' 403 -H 'Host: httpbin.foo' -H 'x-ext-authz: deny' \
	-H 'Authorization: Bearer t0k' -H 'Cookie: c=1' -H 'X-Dup: 1' -H 'x-dup: 2'
assert_eq "$(cat "$MG_BODY")" "$DENY_BODY" "denied: the denied_response body"
assert_header x-ext-authz-check-result denied "denied: the denied_response headers"
assert_header x-ext-authz-additional-header-override grpc-additional-header-override-value \
	"denied: every denied_response header"
assert_header content-type text/plain "denied: a body without a content-type is text/plain"
assert_eq "$(mg_upstream_count a)" "$((before + 1))" "a denied request never reaches the upstream"
assert_eq "$(checks)" 1 "one call"
assert_eq "$(rec call.method) $(rec call.path)" "POST $CHECK" "call: the Check method"
assert_eq "$(rec call.content_type)" application/grpc "call: content-type"
assert_eq "$(rec call.te)" trailers "call: te: trailers"
assert_eq "$(rec call.grpc_timeout)" 600000m "call: grpc-timeout is the provider's (600s)"
assert_eq "$(rec call.authority)" ext-authz.foo.svc.cluster.local "call: the service's authority"
assert_eq "$(rec error)" "" "the CheckRequest is valid protobuf with UTF-8 strings"
assert_eq "$(rec attributes.request.http.method)" GET "check: method"
assert_eq "$(rec attributes.request.http.path)" "/headers?x=1" "check: path and query"
assert_eq "$(rec attributes.request.http.host)" httpbin.foo "check: host"
assert_eq "$(rec attributes.request.http.scheme)" http "check: scheme"
assert_eq "$(rec attributes.request.http.protocol)" HTTP/1.1 "check: protocol"
assert_eq "$(hdr :authority) $(hdr :method) $(hdr :path) $(hdr :scheme)" \
	"httpbin.foo GET /headers?x=1 http" "check: the pseudo-headers, as Envoy has them"
assert_eq "$(hdr authorization)|$(hdr cookie)|$(hdr x-ext-authz)" "Bearer t0k|c=1|deny" \
	"check: every request header (no include list for gRPC)"
assert_eq "$(hdr x-dup)" "1,2" "check: fields of one name joined, names lower-cased"
assert_eq "$(hdr host)" "" "check: no host field (it is :authority)"
assert_match "$(hdr x-request-id)" '^[0-9a-f-]{36}$' "check: the request's x-request-id"
assert_eq "$(rec attributes.request.http.id)" "$(hdr x-request-id)" "check: id is x-request-id"
assert_eq "$(hdr x-forwarded-proto)" http "check: x-forwarded-proto"
assert_eq "$(hdr x-forwarded-for)" 127.0.0.1 "check: x-forwarded-for with the peer"
assert_eq "$(rec attributes.source.address)" 127.0.0.1 "check: source address"
assert_cmp "$(rec attributes.source.port)" -gt 0 "check: source port"
assert_eq "$(rec attributes.source.principal)" "" "check: no principal without a certificate"
assert_eq "$(rec attributes.destination.address):$(rec attributes.destination.port)" \
	"127.0.0.1:$MG_PORT" "check: destination, the listener's address"
now=$(date +%s)
t=$(rec attributes.request.time.seconds)
assert_cmp "$t" -ge $((now - 60)) "check: request time is now ($t)"
assert_cmp "$t" -le $((now + 5)) "check: request time is not later than now"
line='"GET /headers?x=1 HTTP/1.1" 403 UAEX ext_authz_denied'
mg_wait_until 5 grep -qF "$line" "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" "$line" \
	"denied: logged as Envoy does (UAEX, ext_authz_denied)"

assert_status POST /headers 200 -H 'Host: httpbin.foo' -H 'x-ext-authz: allow' \
	-H 'x-ext-authz-check-result: forged' -d 'a body'
assert_eq "$(mg_json name)" a "allowed: the request reaches the upstream"
assert_eq "$(mg_json method)" POST "allowed: with its method"
assert_eq "$(mg_json headers.x-ext-authz-check-result)" allowed \
	"allowed: ok_response headers replace the client's"
assert_eq "$(mg_json headers.x-ext-authz-additional-header-override)" \
	grpc-additional-header-override-value "allowed: every ok_response header"
assert_eq "$(rec attributes.request.http.method)" POST "check: POST"
# a normalised path is what the rules and the authorizer see
assert_status GET /ip/../headers 403 --path-as-is
assert_eq "$(rec attributes.request.http.path)" /headers "check: the normalised path"
# several calls over the pooled HTTP/2 connection, each answered
for _ in 1 2 3; do
	assert_status GET /headers 200 -H 'x-ext-authz: allow'
done
assert_status GET /headers 403

# --- ok_response's other mutations, denied_response's status ------------------------------
assert_status GET /headers 200 -H 'x-ext-authz-mode: mutations' -H 'x-append: client' \
	-H 'x-remove-me: secret' -H 'x-set-me: old'
assert_eq "$(mg_json headers.x-set-me)" set "ok_response: a set header replaces the client's"
assert_eq "$(mg_json headers.x-append)" "client,from-authz" "ok_response: append joins with ,"
assert_eq "$(mg_json headers.x-remove-me)" "" "ok_response: headers_to_remove"
assert_header x-authz-added yes "ok_response: response_headers_to_add reaches the client"
assert_header x-upstream authz "ok_response: a response header set replaces the upstream's"
assert_status GET /headers 418 -H 'x-ext-authz-mode: teapot'
assert_eq "$(cat "$MG_BODY")" '{"denied":true}' "denied_response: its body"
assert_header content-type application/json "denied_response: its content-type"
assert_status GET /headers 403 -H 'x-ext-authz-mode: bare-deny'
assert_eq "$(cat "$MG_BODY")" "" "a denial without denied_response: 403, no body"

# --- failed calls: statusOnError (403), no body ------------------------------------------
for mode in grpc-error garbage http-500 reset; do
	assert_status GET /headers 403 -H "x-ext-authz-mode: $mode" -H 'x-ext-authz: allow'
	assert_eq "$(cat "$MG_BODY")" "" "$mode: an error, 403 with no body"
done
line='"GET /headers HTTP/1.1" 403 UAEX ext_authz_error'
mg_wait_until 5 grep -qF "$line" "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" "$line" "a failed call is logged as ext_authz_error"

# --- HTTP/2 clients go the same way -------------------------------------------------------
out=$(curl -s --http2-prior-knowledge -o "$MG_BODY" -w '%{http_code} %{http_version}' \
	-H 'x-ext-authz: allow' "$(mg_url /headers)")
assert_eq "$out" "200 2" "HTTP/2: allowed"
assert_eq "$(mg_json name)" a "HTTP/2: allowed reaches the upstream"
assert_eq "$(rec attributes.request.http.protocol)" HTTP/2 "check: protocol HTTP/2"
out=$(curl -s --http2-prior-knowledge -o "$MG_BODY" -w '%{http_code} %{http_version}' \
	"$(mg_url /headers)")
assert_eq "$out" "403 2" "HTTP/2: denied"
assert_contains "$(cat "$MG_BODY")" "denied by ext_authz" "HTTP/2: the denied_response body"

# --- a client certificate: its identity is source.principal (Istio's sample allows
# principals ending in /sa/a; this one is .../sa/client) ---------------------------------
code=$(curl -s --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" \
	--key "$PKI/client.key" --resolve "a.example.com:$TLS_PORT:127.0.0.1" \
	-o "$MG_BODY" -w '%{http_code}' "https://a.example.com:$TLS_PORT/headers")
assert_eq "$code" 403 "mutual TLS: the sample denies sa/client"
assert_eq "$(rec attributes.source.principal)" spiffe://cluster.local/ns/default/sa/client \
	"check: source.principal is the certificate's URI SAN"
assert_eq "$(rec attributes.request.http.scheme) $(hdr :scheme)" "https https" \
	"check: scheme https"
assert_contains "$(hdr x-forwarded-client-cert)" "URI=spiffe://cluster.local/ns/default/sa/client" \
	"check: x-forwarded-client-cert as meshgate forwards it"
assert_eq "$(rec attributes.destination.port)" "$TLS_PORT" "check: the TLS listener's port"

# --- /explain names the provider without asking it ----------------------------------------
n=$(checks)
out=$(curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/explain?port=$MG_PORT&host=x&path=/headers")
assert_contains "$out" \
	"CUSTOM foo.ext-authz matches: the request would be checked by sample-ext-authz-grpc" \
	"/explain: the CUSTOM policy and its provider"
assert_eq "$(checks)" "$n" "/explain does not call the authorizer"

# --- refused reloads: an unknown provider; a port that does not speak HTTP/2 ---------------
policy nope | mg_resource policy
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "no extension provider nope" "the refusal says why"
policy | mg_resource policy
main '- name: sample-ext-authz-grpc
  envoyExtAuthzGrpc: {service: plain.foo.svc.cluster.local, port: 9000}'
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "does not speak HTTP/2 upstream" \
	"a gRPC authorizer on an HTTP/1.1 port is refused"
assert_status GET /headers 403
assert_status GET /headers 200 -H 'x-ext-authz: allow'

# --- failures: down, statusOnError, failOpen, timeout --------------------------------------
use_provider() { # SERVICE [EXTRA-YAML]: sample-ext-authz-grpc asks SERVICE
	main "- name: sample-ext-authz-grpc
  envoyExtAuthzGrpc:
    service: $1.foo.svc.cluster.local
    port: 9000${2:+
$2}"
	assert_reload applied
}
use_provider down
before=$(mg_upstream_count a)
assert_status GET /headers 403 -H 'x-ext-authz: allow'
assert_eq "$(cat "$MG_BODY")" "" "authorizer down: 403 with no body"
assert_status GET /ip 200
assert_eq "$(mg_upstream_count a)" "$((before + 1))" "... and only the unchecked path went up"
use_provider down '    statusOnError: "503"'
assert_status GET /headers 503
use_provider down "    failOpen: true"
assert_status GET /headers 200
assert_eq "$(mg_json name)" a "failOpen: an unreachable authorizer lets the request through"
use_provider ext-authz "    failOpen: true"
assert_status GET /headers 200 -H 'x-ext-authz-mode: grpc-error' -H 'x-ext-authz-check-result: c'
assert_eq "$(mg_json headers.x-ext-authz-check-result)" c \
	"failOpen: a failed call lets the request through unchanged"
use_provider ext-authz "    timeout: 0.3s"
t0=$(date +%s%N)
assert_status GET /headers 403 -H 'x-ext-authz-mode: slow' -H 'x-ext-authz: allow'
ms=$((($(date +%s%N) - t0) / 1000000))
assert_cmp "$ms" -lt 2500 "timeout: answered before the authorizer would (3s), after ${ms}ms"
assert_cmp "$ms" -ge 250 "timeout: not before the timeout (0.3s)"
assert_eq "$(rec call.grpc_timeout)" 300m "call: grpc-timeout says the timeout"
assert_status GET /headers 200 -H 'x-ext-authz: allow'
# a client that leaves mid-check: its exchange and call are freed, the next is served
curl -s --max-time 0.5 -o /dev/null "$(mg_url /headers)" -H 'x-ext-authz-mode: slow'
sleep 0.2
assert_status GET /ip 200
assert_status GET /headers 200 -H 'x-ext-authz: allow'

assert_cmp "$(mg_metric ext_authz_ok)" -ge 9 "ext_authz_ok counted"
assert_cmp "$(mg_metric ext_authz_denied)" -ge 8 "ext_authz_denied counted"
assert_cmp "$(mg_metric ext_authz_error)" -ge 8 "ext_authz_error counted"
assert_cmp "$(mg_metric ext_authz_failure_mode_allowed)" -ge 2 "failOpen passes counted"
assert_alive
mg_finish
