#!/usr/bin/env bash
# 81-ext-authz: AuthorizationPolicy action CUSTOM with an HTTP external authorizer, as in
# Istio's "External Authorization" task (its provider and policy verbatim), against a
# stand-in of Istio's sample ext-authz server (tests/upstream/mg-ext-authz.py).  Checked:
# the check request (method, path, Host, Authorization, the listed fields, Content-Length:
# 0); an allowed request reaches the upstream, a denied one gets the authorizer's 403,
# body and fields and never reaches it; paths the CUSTOM rules do not match are not
# checked; headersToUpstreamOnAllow / headersToDownstreamOnDeny / pathPrefix /
# includeAdditionalHeadersInCheck; HTTP/2 clients; the authorizer down (403, or through
# with failOpen), too slow (timeout), answering 5xx; a client leaving mid-check; a reload
# naming an unknown provider refused while the old config keeps serving; /explain; counters.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
REC="$MG_DIR/checks.jsonl"
AUTHZ_PY="$MG_LIBDIR/../upstream/mg-ext-authz.py"
mg__upstream_run "$AUTHZ_PY" authz --record-file "$REC"
mg__upstream_run "$AUTHZ_PY" slow --delay 3000
mg__upstream_run "$AUTHZ_PY" broken --status 500
DOWN_PORT=$(mg_port) || mg_fatal "no free port"

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

# The task's provider, verbatim.
TASK_PROVIDER='- name: "sample-ext-authz-http"
  envoyExtAuthzHttp:
    service: "ext-authz.foo.svc.cluster.local"
    port: "8000"
    includeRequestHeadersInCheck: ["x-ext-authz"]'
main "$TASK_PROVIDER"

# service NAME PORT: ServiceEntry NAME.foo.svc.cluster.local:8000 -> 127.0.0.1:PORT
service() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: [$1.foo.svc.cluster.local]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $2}}]
EOF
}

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(service ext-authz "$UP_AUTHZ_PORT")
$(service slow "$UP_SLOW_PORT")
$(service broken "$UP_BROKEN_PORT")
$(service down "$DOWN_PORT")
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
# policy [PROVIDER]: the task's policy, naming its HTTP provider (as the task suggests)
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
    # You can also replace this with sample-ext-authz-http to test the other external authorizer definition.
    name: ${1:-sample-ext-authz-http}
  rules:
  # The rules specify when to trigger the external authorizer.
  - to:
    - operation:
        paths: ["/headers"]
EOF
}
policy | mg_resource policy
assert_valid
assert_contains "$MG_VALIDATE_OUT" "external authorization: 1 CUSTOM AuthorizationPolicy asking sample-ext-authz-http" \
	"-t names the CUSTOM policy and its provider"
mg_start

checks() { if [ -f "$REC" ]; then wc -l <"$REC"; else echo 0; fi; }
# rec FIELD: a field of the last check request the authorizer received
rec() {
	"$PYTHON" - "$REC" "$1" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for k in sys.argv[2].split("."):
    d = d.get(k, "") if isinstance(d, dict) else ""
print(d)
PY
}

# --- the task: /headers is checked, other paths are not ---------------------------------
before=$(mg_upstream_count a)
assert_status GET /ip 200 -H 'Host: httpbin.foo'
assert_eq "$(checks)" 0 "a path the CUSTOM rules do not match is not checked"
assert_status GET '/headers?x=1' 403 -H 'Host: httpbin.foo' -H 'x-ext-authz: deny' \
	-H 'Authorization: Bearer t0k' -H 'x-other: no' -H 'Cookie: c=1'
# shellcheck disable=SC2016 # backquotes of the sample's text
assert_eq "$(cat "$MG_BODY")" \
	'denied by ext_authz for not found header `x-ext-authz: allow` in the request' \
	"denied: the authorizer's body"
assert_header x-ext-authz-check-result denied "denied: the authorizer's fields (all by default)"
assert_eq "$(mg_upstream_count a)" "$((before + 1))" "a denied request never reaches the upstream"
assert_eq "$(checks)" 1 "one check request"
assert_eq "$(rec method)" GET "check: the request's method"
assert_eq "$(rec target)" "/headers?x=1" "check: the request's path and query"
assert_eq "$(rec headers.host)" httpbin.foo "check: its Host"
assert_eq "$(rec headers.content-length)" 0 "check: Content-Length: 0"
assert_eq "$(rec headers.authorization)" "Bearer t0k" "check: Authorization is always sent"
assert_eq "$(rec headers.x-ext-authz)" deny "check: includeRequestHeadersInCheck"
assert_eq "$(rec headers.x-other)$(rec headers.cookie)" "" "check: no other field"
line='"GET /headers?x=1 HTTP/1.1" 403 UAEX ext_authz_denied'
mg_wait_until 5 grep -qF "$line" "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" "$line" \
	"denied: logged as Envoy does (UAEX, ext_authz_denied)"

assert_status POST /headers 200 -H 'Host: httpbin.foo' -H 'x-ext-authz: allow' -d 'a body'
assert_eq "$(mg_json name)" a "allowed: the request reaches the upstream"
assert_eq "$(mg_json method)" POST "allowed: with its method"
assert_eq "$(rec method)" POST "check: POST"
assert_eq "$(rec headers.content-length)" 0 "check: no body, Content-Length: 0"
assert_eq "$(mg_json headers.x-ext-authz-check-result)" "" \
	"no headersToUpstreamOnAllow: the request goes on unchanged"
# a normalised path is what the rules and the authorizer see
assert_status GET /ip/../headers 403 --path-as-is
assert_eq "$(rec target)" /headers "check: the normalised path"
# keep-alive: several checks over the pooled connection, each answered
for _ in 1 2 3; do
	assert_status GET /headers 200 -H 'x-ext-authz: allow'
done
assert_status GET /headers 403

# --- HTTP/2 clients go the same way -------------------------------------------------------
out=$(curl -s --http2-prior-knowledge -o "$MG_BODY" -w '%{http_code} %{http_version}' \
	-H 'x-ext-authz: allow' "$(mg_url /headers)")
assert_eq "$out" "200 2" "HTTP/2: allowed"
assert_eq "$(mg_json name)" a "HTTP/2: allowed reaches the upstream"
out=$(curl -s --http2-prior-knowledge -o "$MG_BODY" -w '%{http_code} %{http_version}' \
	"$(mg_url /headers)")
assert_eq "$out" "403 2" "HTTP/2: denied"
assert_contains "$(cat "$MG_BODY")" "denied by ext_authz" "HTTP/2: the authorizer's body"

# --- /explain names the provider without asking it ----------------------------------------
n=$(checks)
out=$(curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/explain?port=$MG_PORT&host=x&path=/headers")
assert_contains "$out" \
	"CUSTOM foo.ext-authz matches: the request would be checked by sample-ext-authz-http" \
	"/explain: the CUSTOM policy and its provider"
assert_eq "$(checks)" "$n" "/explain does not call the authorizer"

# --- a reload naming an unknown provider is refused; the old config serves --------------
policy nope | mg_resource policy
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "no extension provider nope" "the refusal says why"
assert_status GET /headers 403
assert_status GET /headers 200 -H 'x-ext-authz: allow'

# --- headersToUpstreamOnAllow, headersToDownstreamOnDeny, pathPrefix, additional fields ---
main "$TASK_PROVIDER
    pathPrefix: /check
    includeAdditionalHeadersInCheck: {x-from: meshgate}
    headersToUpstreamOnAllow: [x-ext-authz-check-result, x-ext-authz-additional-*]
    headersToDownstreamOnDeny: [x-ext-authz-check-result]"
policy | mg_resource policy
assert_reload applied
assert_status GET /headers 200 -H 'x-ext-authz: allow' -H 'x-ext-authz-check-result: forged' \
	-H 'x-ext-authz-additional-header-override: o1'
assert_eq "$(mg_json headers.x-ext-authz-check-result)" allowed \
	"allowed: headersToUpstreamOnAllow replaces the client's field"
assert_eq "$(mg_json headers.x-ext-authz-additional-header-override)" "" \
	"... by prefix too: the authorizer's (empty: the field was not sent to it) wins"
assert_eq "$(rec target)" /check/headers "check: pathPrefix"
assert_eq "$(rec headers.x-from)" meshgate "check: includeAdditionalHeadersInCheck"
assert_status GET /headers 403
assert_header x-ext-authz-check-result denied "denied: the listed field"
assert_eq "$(mg_header content-type)" "" "denied: an unlisted field is left out"

# --- failures: down, failOpen, timeout, 5xx ----------------------------------------------
use_provider() { # SERVICE [EXTRA-YAML]: sample-ext-authz-http asks SERVICE
	main "- name: sample-ext-authz-http
  envoyExtAuthzHttp:
    service: $1.foo.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]${2:+
$2}"
	assert_reload applied
}
use_provider down
before=$(mg_upstream_count a)
assert_status GET /headers 403 -H 'x-ext-authz: allow'
assert_eq "$(cat "$MG_BODY")" "" "authorizer down: 403 with no body"
line='"GET /headers HTTP/1.1" 403 UAEX ext_authz_error'
mg_wait_until 5 grep -qF "$line" "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" "$line" "authorizer down: logged as ext_authz_error"
assert_status GET /ip 200
assert_eq "$(mg_upstream_count a)" "$((before + 1))" "... and only the unchecked path went up"
use_provider down '    statusOnError: "503"'
assert_status GET /headers 503
use_provider down "    failOpen: true"
assert_status GET /headers 200
assert_eq "$(mg_json name)" a "failOpen: an unreachable authorizer lets the request through"
use_provider broken
assert_status GET /headers 403 -H 'x-ext-authz: allow'
assert_eq "$(cat "$MG_BODY")" "" "an authorizer's 5xx is an error: statusOnError, no body"
use_provider broken "    failOpen: true"
assert_status GET /headers 200
use_provider slow "    timeout: 0.3s"
t0=$(date +%s%N)
assert_status GET /headers 403 -H 'x-ext-authz: allow'
ms=$((($(date +%s%N) - t0) / 1000000))
assert_cmp "$ms" -lt 2500 "timeout: answered before the authorizer would (3s), after ${ms}ms"
assert_cmp "$ms" -ge 250 "timeout: not before the timeout (0.3s)"
# a client that leaves mid-check: its exchange and check are freed, the next is served
curl -s --max-time 0.5 -o /dev/null "$(mg_url /headers)" -H 'x-ext-authz: allow'
sleep 0.2
assert_status GET /ip 200

assert_cmp "$(mg_metric ext_authz_ok)" -ge 7 "ext_authz_ok counted"
assert_cmp "$(mg_metric ext_authz_denied)" -ge 5 "ext_authz_denied counted"
assert_cmp "$(mg_metric ext_authz_error)" -ge 5 "ext_authz_error counted"
assert_cmp "$(mg_metric ext_authz_failure_mode_allowed)" -ge 2 "failOpen passes counted"
assert_alive
mg_finish
