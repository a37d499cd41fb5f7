#!/usr/bin/env bash
# 13-redirect-rewrite-headers: HTTPRedirect (uri, authority, port, scheme,
# redirectCode), HTTPRewrite (prefix replace, whole path, authority,
# uriRegexRewrite) and header operations (request/response set/add/remove, on
# the route and on each weighted destination), checked at the client and, via
# /echo, at the upstream.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_upstream b

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ab
spec:
  hosts: [a.default.svc.cluster.local, b.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_A_PORT}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: b-only
spec:
  hosts: [bee.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_B_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: redirects
spec:
  hosts: [r.test]
  gateways: [gw]
  http:
  - name: r-uri
    match: [{uri: {prefix: /uri/}}]
    redirect: {uri: /new/place}
  - name: r-code
    match: [{uri: {exact: /code302}}]
    redirect: {uri: /c, redirectCode: 302}
  - name: r-code308
    match: [{uri: {exact: /code308}}]
    redirect: {uri: /c, redirectCode: 308}
  - name: r-authority
    match: [{uri: {prefix: /authority/}}]
    redirect: {authority: new.example}
  - name: r-port
    match: [{uri: {prefix: /port/}}]
    redirect: {port: 8443}
  - name: r-scheme
    match: [{uri: {prefix: /scheme/}}]
    redirect: {scheme: https}
  - name: r-all
    match: [{uri: {prefix: /all/}}]
    redirect: {scheme: https, authority: all.example, port: 9443, uri: /everything, redirectCode: 307}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: rewrites
spec:
  hosts: [w.test]
  gateways: [gw]
  http:
  - name: w-prefix-root
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    route: [{destination: {host: a}}]
  - name: w-prefix
    match: [{uri: {prefix: /v1}}]
    rewrite: {uri: /v2}
    route: [{destination: {host: a}}]
  - name: w-exact
    match: [{uri: {exact: /old}}]
    rewrite: {uri: /new}
    route: [{destination: {host: a}}]
  - name: w-authority
    match: [{uri: {prefix: /auth/}}]
    rewrite: {authority: backend.internal:8080}
    route: [{destination: {host: a}}]
  - name: w-regex
    match: [{uri: {prefix: /re/}}]
    rewrite:
      uriRegexRewrite: {match: '^/re/([^/]+)/(.*)$', rewrite: '/\2/\1'}
    route: [{destination: {host: a}}]
  - name: w-regex-all
    match: [{uri: {prefix: /oo/}}]
    rewrite:
      uriRegexRewrite: {match: 'o', rewrite: '0'}
    route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: headers
spec:
  hosts: [h.test]
  gateways: [gw]
  http:
  - name: h-route
    match: [{uri: {prefix: /route/}}, {uri: {prefix: /headers-out}}]
    headers:
      request:
        set: {x-set: route-set}
        add: {x-add: route-add}
        remove: [x-remove, x-remove-too]
      response:
        set: {x-resp-set: route-set}
        add: {x-resp-add: route-add}
        remove: [x-upstream-total, x-resp-remove]
    route: [{destination: {host: a}}]
  - name: h-dest
    match: [{uri: {prefix: /dest/}}]
    route:
    - destination: {host: a}
      weight: 50
      headers:
        request:
          set: {x-dest: to-a}
        response:
          set: {x-dest-resp: from-a}
          remove: [x-upstream-req]
    - destination: {host: bee.internal}
      weight: 50
      headers:
        request:
          set: {x-dest: to-b}
          remove: [x-only-a]
        response:
          add: {x-dest-resp: from-b}
EOF

assert_valid
mg_start

# redirects PATH CODE LOCATION-ERE [CURL-ARGS...]
redirects() {
	local path=$1 code=$2 re=$3
	shift 3
	assert_status GET "$path" "$code" -H 'Host: r.test' "$@"
	assert_match "$(mg_header location)" "$re" "$path: Location"
	assert_eq "$(mg_upstream_count a)$(mg_upstream_count b)" 00 "$path: no upstream involved"
}

# --- redirect --------------------------------------------------------------------------
redirects /uri/x 301 '^http://r\.test/new/place$'
redirects '/uri/x?q=1&r=2' 301 '^http://r\.test/new/place\?q=1&r=2$' # query kept, as Envoy
redirects /code302 302 '^http://r\.test/c$'
redirects /code308 308 '^http://r\.test/c$'
redirects '/authority/p?x=y' 301 '^http://new\.example/authority/p\?x=y$'
redirects /port/p 301 '^http://r\.test:8443/port/p$'
redirects /scheme/p 301 '^https://r\.test/scheme/p$'
redirects /all/p 307 '^https://all\.example:9443/everything$'
assert_status POST /code308 308 -H 'Host: r.test' -d 'some body'
assert_status HEAD /uri/x 301 -H 'Host: r.test'
assert_match "$(mg_header location)" '^http://r\.test/new/place$' "HEAD: Location"
assert_log_contains '"GET /code302 HTTP/1.1" 302 - .* r-code$' "$MG_ACCESS_LOG"

# --- rewrite ---------------------------------------------------------------------------
# rewrites PATH UPSTREAM-PATH [CURL-ARGS...]
rewrites() {
	local path=$1 want=$2
	shift 2
	assert_status GET "$path" 200 -H 'Host: w.test' "$@"
	assert_eq "$(mg_json path)" "$want" "rewrite $path -> $want"
}
rewrites /api/x /x
rewrites '/api/x/y?z=1' '/x/y?z=1'
rewrites /api/ /
rewrites /v1 /v2
rewrites /v1/foo /v2/foo
rewrites /v1beta /v2beta # a prefix is a string prefix, as in Istio
rewrites '/old?q=1' '/new?q=1'
rewrites /re/abc/def/g /def/g/abc
rewrites '/re/a/b?x=/re/c/d' '/b/a?x=/re/c/d' # the query is not rewritten
rewrites /oo/foo/boo /00/f00/b00
assert_log_contains '"GET /api/x HTTP/1.1" 200 ' "$MG_ACCESS_LOG"

assert_status GET /auth/x 200 -H 'Host: w.test'
assert_eq "$(mg_json headers.host)" backend.internal:8080 "authority rewrite: upstream Host"
assert_eq "$(mg_json path)" /auth/x "authority rewrite keeps the path"

# --- header operations on the route ----------------------------------------------------------
assert_status GET '/headers-out?x-resp-set=upstream&x-resp-add=upstream&x-resp-remove=1&x-keep=1' 200 \
	-H 'Host: h.test' -H 'x-set: client' -H 'x-add: client' -H 'x-remove: client' \
	-H 'X-Remove-Too: client' -H 'x-keep: client'
assert_eq "$(mg_json headers.x-set)" route-set "request set replaces the client's value"
assert_eq "$(mg_json headers.x-add)" "client, route-add" "request add appends to the client's value"
assert_eq "$(mg_json headers.x-remove)" "" "request remove"
assert_eq "$(mg_json headers.x-remove-too)" "" "request remove is case-insensitive"
assert_eq "$(mg_json headers.x-keep)" client "other request headers untouched"
assert_header x-resp-set route-set "response set replaces the upstream's value"
assert_eq "$(grep -ci '^x-resp-set:' "$MG_HEADERS")" 1 "response set leaves one value"
assert_eq "$(grep -i '^x-resp-add:' "$MG_HEADERS" | tr -d '\r' | awk '{print $2}' | sort | paste -sd' ')" \
	"route-add upstream" "response add appends to the upstream's value"
assert_no_header x-upstream-total "response remove"
assert_no_header x-resp-remove "response remove of a header from the query"
assert_header x-keep 1 "other response headers untouched"
assert_header x-upstream a

# without the client's headers: set and add still produce them
assert_status GET /route/plain 200 -H 'Host: h.test'
assert_eq "$(mg_json headers.x-set)" route-set "request set without a client value"
assert_eq "$(mg_json headers.x-add)" route-add "request add without a client value"
assert_header x-resp-add route-add "response add without an upstream value"

# --- header operations per destination ---------------------------------------------------------
# 40 requests over both destinations: every one carries its destination's operations only.
bad=0
seen_a=0
seen_b=0
for i in $(seq 1 40); do
	curl -s -D "$MG_DIR/d.h" -o "$MG_DIR/d.json" -H 'Host: h.test' -H 'x-only-a: 1' \
		"http://127.0.0.1:$MG_PORT/dest/$i"
	up=$(mg_header x-upstream "$MG_DIR/d.h")
	json=$(tr -d ' \n' <"$MG_DIR/d.json")
	case $up in
	a)
		seen_a=$((seen_a + 1))
		[[ $json == *'"x-dest":"to-a"'* && $json == *'"x-only-a":"1"'* ]] || bad=$((bad + 1))
		[ "$(mg_header x-dest-resp "$MG_DIR/d.h")" = from-a ] || bad=$((bad + 1))
		grep -qi '^x-upstream-req:' "$MG_DIR/d.h" && bad=$((bad + 1))
		;;
	b)
		seen_b=$((seen_b + 1))
		[[ $json == *'"x-dest":"to-b"'* && $json != *'x-only-a'* ]] || bad=$((bad + 1))
		[ "$(mg_header x-dest-resp "$MG_DIR/d.h")" = from-b ] || bad=$((bad + 1))
		grep -qi '^x-upstream-req:' "$MG_DIR/d.h" || bad=$((bad + 1))
		;;
	*) bad=$((bad + 1)) ;;
	esac
done
assert_eq "$bad" 0 "per-destination header operations follow the chosen destination"
assert_cmp "$seen_a" -gt 0 "destination a was chosen ($seen_a of 40)"
assert_cmp "$seen_b" -gt 0 "destination b was chosen ($seen_b of 40)"

assert_alive
mg_finish
