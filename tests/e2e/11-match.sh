#!/usr/bin/env bash
# 11-match: HTTPMatchRequest fields. uri exact/prefix/regex (regex is a full
# match, as RE2's FullMatch in Istio, alternations included), ignoreUriCase,
# headers exact/prefix/regex/presence, withoutHeaders, method, queryParams,
# authority, port, scheme; match blocks are OR, fields inside one block AND.
# Every route answers with its own name (directResponse), so a wrong pick shows.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
P2=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
EOF

# route NAME MATCH-YAML...: one http route answering its NAME.
route() {
	local name=$1
	shift
	printf '  - name: %s\n    match:\n' "$name"
	printf '    %s\n' "$@"
	printf '    directResponse: {status: 200, body: {string: "%s"}}\n' "$name"
}

{
	cat <<EOF
$(mg_yaml_gateway)
  - port: {number: $P2, name: http-2, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: match
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
EOF
	route uri-exact '- uri: {exact: /exact}'
	route uri-prefix '- uri: {prefix: /pre/}'
	route uri-regex "- uri: {regex: '/re/[0-9]+'}"
	route uri-alt "- uri: {regex: '/alt/a|/alt/bb'}"
	route case-exact '- uri: {exact: /CaseExact}' '  ignoreUriCase: true'
	route case-prefix '- uri: {prefix: /CasePre/}' '  ignoreUriCase: true'
	route sensitive '- uri: {exact: /Sensitive}'
	route hdr-exact '- uri: {exact: /h/exact}' '  headers: {x-h: {exact: v1}}'
	route hdr-prefix '- uri: {exact: /h/prefix}' '  headers: {x-h: {prefix: pre-}}'
	route hdr-regex '- uri: {exact: /h/regex}' "  headers: {x-h: {regex: 'r[0-9]+|s'}}"
	route hdr-present '- uri: {exact: /h/present}' '  headers: {x-present: {}}'
	route hdr-two '- uri: {exact: /h/two}' '  headers: {x-a: {exact: "1"}, x-b: {exact: "2"}}'
	route without-any '- uri: {exact: /wo/any}' '  withoutHeaders: {x-block: {}}'
	route without-exact '- uri: {exact: /wo/exact}' '  withoutHeaders: {x-env: {exact: prod}}'
	route method-post '- uri: {prefix: /m}' '  method: {exact: POST}'
	route method-regex '- uri: {prefix: /m}' "  method: {regex: 'PUT|DELETE'}"
	route q-exact '- uri: {exact: /q/exact}' '  queryParams: {a: {exact: "1"}}'
	route q-regex '- uri: {exact: /q/regex}' "  queryParams: {b: {regex: '[a-z]+'}}"
	route q-two '- uri: {exact: /q/two}' '  queryParams: {a: {exact: "1"}, b: {exact: "2"}}'
	route or-and '- uri: {prefix: /or/a}' '- uri: {prefix: /or/b}' '  headers: {x-and: {exact: "yes"}}'
	route auth-exact '- uri: {exact: /auth}' '  authority: {exact: auth.test}'
	route auth-regex '- uri: {exact: /auth}' "  authority: {regex: 'auth\\.test:[0-9]+'}"
	route auth-prefix '- uri: {exact: /auth}' '  authority: {prefix: other.}'
	route port-1 '- uri: {exact: /port}' "  port: $MG_PORT"
	route port-2 '- uri: {exact: /port}' "  port: $P2"
	route scheme-https '- uri: {exact: /scheme}' '  scheme: {exact: https}'
	route scheme-http '- uri: {exact: /scheme}' '  scheme: {exact: http}'
	cat <<EOF
  - name: proxied
    match:
    - uri: {prefix: /up/}
      headers: {x-route: {exact: up}}
    route:
    - destination: {host: a}
EOF
} | mg_resource match

assert_valid
mg_start

# picks NAME PATH [CURL-ARGS...]: GET PATH is answered by route NAME.
picks() {
	local name=$1 path=$2
	shift 2
	assert_status GET "$path" 200 "$@"
	assert_eq "$(cat "$MG_BODY")" "$name" "$path ${*:+($*) }-> route $name"
}

# none PATH [CURL-ARGS...]: no route matches (404).
none() {
	local path=$1
	shift
	assert_status GET "$path" 404 "$@"
}

# --- uri -------------------------------------------------------------------------------
picks uri-exact /exact
picks uri-exact '/exact?x=1' # the query string is not part of uri
none /exact/
none /exactly
none /Exact
picks uri-prefix /pre/
picks uri-prefix /pre/a/b?c=d
none /pre
none /xpre/
picks uri-regex /re/0
picks uri-regex '/re/123?x=y'
none /re/
none /re/123x       # full match: no match at the end
none /x/re/123      # full match: no match at the start
picks uri-alt /alt/a
picks uri-alt /alt/bb
none /alt/axx       # alternation anchored as a whole
none /x/alt/bb
none /alt/b

# --- ignoreUriCase ---------------------------------------------------------------------
picks case-exact /CaseExact
picks case-exact /caseexact
picks case-exact /CASEEXACT
picks case-prefix /casepre/Any/THING
picks case-prefix /CASEPRE/x
picks sensitive /Sensitive
none /sensitive
none /SENSITIVE

# --- headers ----------------------------------------------------------------------------
picks hdr-exact /h/exact -H 'x-h: v1'
picks hdr-exact /h/exact -H 'X-H: v1' # names are case-insensitive
none /h/exact -H 'x-h: V1'            # values are not
none /h/exact -H 'x-h: v10'
none /h/exact
picks hdr-prefix /h/prefix -H 'x-h: pre-x'
picks hdr-prefix /h/prefix -H 'x-h: pre-'
none /h/prefix -H 'x-h: xpre-'
picks hdr-regex /h/regex -H 'x-h: r42'
picks hdr-regex /h/regex -H 'x-h: s'
none /h/regex -H 'x-h: r42x'
none /h/regex -H 'x-h: xr42'
none /h/regex -H 'x-h: ss'
picks hdr-present /h/present -H 'x-present: anything'
picks hdr-present /h/present -H 'x-present;' # present with an empty value
none /h/present
picks hdr-two /h/two -H 'x-a: 1' -H 'x-b: 2'
none /h/two -H 'x-a: 1'
none /h/two -H 'x-b: 2'

# --- withoutHeaders ------------------------------------------------------------------------
picks without-any /wo/any
picks without-any /wo/any -H 'x-other: 1'
none /wo/any -H 'x-block: 1'
# As Envoy's invert_match (and so Istio, istio/istio#50988): a value match in
# withoutHeaders needs the header present with another value.
none /wo/exact
picks without-exact /wo/exact -H 'x-env: dev'
none /wo/exact -H 'x-env: prod'

# --- method --------------------------------------------------------------------------------
assert_status POST /m 200 -d x
assert_eq "$(cat "$MG_BODY")" method-post "POST -> method-post"
assert_status PUT /m 200 -d x
assert_eq "$(cat "$MG_BODY")" method-regex "PUT -> method-regex"
assert_status DELETE /m/x 200
assert_eq "$(cat "$MG_BODY")" method-regex "DELETE -> method-regex"
none /m
assert_status PATCH /m 404 -d x

# --- queryParams ---------------------------------------------------------------------------
picks q-exact '/q/exact?a=1'
picks q-exact '/q/exact?z=0&a=1&y'
none '/q/exact?a=11'
none '/q/exact?a=0'
none '/q/exact?aa=1'
none /q/exact
picks q-regex '/q/regex?b=abc'
none '/q/regex?b=abc1'
none '/q/regex?b=1abc'
picks q-two '/q/two?b=2&a=1'
none '/q/two?a=1'

# --- match blocks OR, fields AND ----------------------------------------------------------------
picks or-and /or/a
picks or-and /or/a -H 'x-and: no'
picks or-and /or/b -H 'x-and: yes'
none /or/b
none /or/b -H 'x-and: no'

# --- authority (Host as sent, port included) ---------------------------------------------------
picks auth-exact /auth -H 'Host: auth.test'
picks auth-regex /auth -H 'Host: auth.test:8080'
picks auth-prefix /auth -H 'Host: other.test'
none /auth -H 'Host: x.auth.test'

# --- port and scheme ---------------------------------------------------------------------------
picks port-1 /port
picks port-2 "http://127.0.0.1:$P2/port"
picks scheme-http /scheme

# --- a matched route that proxies; the route name is logged ------------------------------------
assert_status GET '/up/x?k=v' 200 -H 'x-route: up'
assert_header x-upstream a
assert_eq "$(mg_json path)" '/up/x?k=v' "path and query forwarded unchanged"
none /up/x
assert_log_contains '"GET /up/x\?k=v HTTP/1.1" 200 .* proxied$' "$MG_ACCESS_LOG"
assert_log_contains '"GET /h/exact HTTP/1.1" 200 .* hdr-exact$' "$MG_ACCESS_LOG"

assert_alive
mg_finish
