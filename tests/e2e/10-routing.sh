#!/usr/bin/env bash
# 10-routing: Gateway -> VirtualService -> ServiceEntry endpoint selection by
# host. The exact host wins over the longest wildcard suffix, which wins over
# "*"; the port is stripped and case ignored; routes are tried in order;
# VirtualServices for one host merge in load order; a Gateway server's hosts
# (and ns/ prefix) limit what it serves; a Gateway whose selector is not a
# subset of the appliance's labels opens no listener; no match is 404 NR.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup

mg_upstream exact
mg_upstream wild
mg_upstream longer
mg_upstream any
P2=$(mg_port) || mg_fatal "no free port"
P3=$(mg_port) || mg_fatal "no free port"
P4=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
labels:
  istio: ingressgateway
  zone: a
EOF

# One ServiceEntry per upstream: host NAME.default.svc.cluster.local.
for u in exact wild longer any; do
	v=$(mg__varname "$u")
	port_var="UP_${v}_PORT"
	mg_resource "se-$u" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: $u
spec:
  hosts: [$u.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: ${!port_var}}
EOF
done

mg_resource gw <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: $MG_PORT, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
  # a second server whose hosts restrict what it serves
  - port: {number: $P2, name: http2, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*.example.com"]
  # only VirtualServices of namespace "other"
  - port: {number: $P3, name: http3, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["other/*"]
---
# not for this appliance: no listener on P4
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: elsewhere
spec:
  selector:
    istio: egressgateway
  servers:
  - port: {number: $P4, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
EOF

mg_resource vs <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: exact
spec:
  hosts: [www.example.com]
  gateways: [gw]
  http:
  - name: exact-first
    match:
    - uri: {prefix: /first}
    directResponse: {status: 200, body: {string: "first"}}
  - name: exact-second
    match:
    - uri: {prefix: /f}
    directResponse: {status: 200, body: {string: "second"}}
  - name: exact-default
    route:
    - destination: {host: exact}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: wild
spec:
  hosts: ["*.example.com"]
  gateways: [default/gw]
  http:
  - name: wild-route
    route:
    - destination: {host: wild}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: longer
spec:
  hosts: ["*.sub.example.com"]
  gateways: [gw]
  http:
  - name: longer-route
    route:
    - destination: {host: longer}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: any
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: any-known
    match:
    - uri: {prefix: /}
    route:
    - destination: {host: any}
---
# Two VirtualServices for one host: their routes merge in load order.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: merge-1
spec:
  hosts: [merge.test]
  gateways: [gw]
  http:
  - name: merge-one
    match:
    - uri: {exact: /one}
    directResponse: {status: 200, body: {string: "one"}}
  - name: merge-shadow
    match:
    - uri: {exact: /both}
    directResponse: {status: 200, body: {string: "from-1"}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: merge-2
spec:
  hosts: [merge.test]
  gateways: [gw]
  http:
  - name: merge-two
    match:
    - uri: {exact: /two}
    directResponse: {status: 200, body: {string: "two"}}
  - name: merge-both
    match:
    - uri: {exact: /both}
    directResponse: {status: 200, body: {string: "from-2"}}
---
# Only routes /known: other paths for nr.test have no route.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: nr
spec:
  hosts: [nr.test]
  gateways: [gw]
  http:
  - name: nr-known
    match:
    - uri: {exact: /known}
    directResponse: {status: 200, body: {string: "known"}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: other
  namespace: other
spec:
  hosts: ["*"]
  gateways: [default/gw]
  http:
  - name: other-ns
    directResponse: {status: 200, body: {string: "other-namespace"}}
EOF

assert_valid
mg_start

# routes_to HOST UPSTREAM [PATH]: GET PATH with Host HOST reaches UPSTREAM.
routes_to() {
	assert_status GET "${3:-/echo}" 200 -H "Host: $1"
	assert_header x-upstream "$2" "Host: $1 -> $2"
}

# --- exact > longest *.suffix > * -------------------------------------------------
routes_to www.example.com exact
routes_to foo.example.com wild
routes_to a.b.example.com wild
routes_to x.sub.example.com longer
routes_to a.b.sub.example.com longer
routes_to sub.example.com wild "/echo"   # *.sub.example.com needs a label before .sub
routes_to example.com any               # *.example.com does not match the bare domain
routes_to www.example.org any
routes_to wwwexample.com any

# --- port stripped, case ignored ----------------------------------------------------
routes_to "www.example.com:$MG_PORT" exact
routes_to "www.example.com:1234" exact
routes_to WWW.Example.COM exact
routes_to "WwW.eXaMpLe.CoM:80" exact
routes_to "www.example.com:" exact # RFC 3986: port = *DIGIT, may be empty
routes_to FOO.EXAMPLE.COM wild
routes_to "X.Sub.Example.Com:8080" longer
assert_eq "$(mg_json headers.host)" "X.Sub.Example.Com:8080" "the upstream sees Host as sent"
routes_to "127.0.0.1:$MG_PORT" any
assert_status GET /echo 200
assert_header x-upstream any "curl's default Host (127.0.0.1:PORT) -> *"

# --- routes in order, first match wins ---------------------------------------------
assert_status GET /first/x 200 -H 'Host: www.example.com'
assert_eq "$(cat "$MG_BODY")" first "/first matches the first route"
assert_status GET /foo 200 -H 'Host: www.example.com'
assert_eq "$(cat "$MG_BODY")" second "/foo falls through to the second route"
assert_status GET /zzz 200 -H 'Host: www.example.com'
assert_header x-upstream exact "no match route takes the rest"
assert_eq "$(mg_json path)" /zzz "path forwarded unchanged"

# --- VirtualServices for one host merge in load order --------------------------------
assert_status GET /one 200 -H 'Host: merge.test'
assert_eq "$(cat "$MG_BODY")" one "merged VS: route of the first"
assert_status GET /two 200 -H 'Host: merge.test'
assert_eq "$(cat "$MG_BODY")" two "merged VS: route of the second"
assert_status GET /both 200 -H 'Host: merge.test'
assert_eq "$(cat "$MG_BODY")" from-1 "merged VS: the earlier route wins"

# --- no route: 404 NR ----------------------------------------------------------------------
assert_status GET /known 200 -H 'Host: nr.test'
assert_status GET /unknown 404 -H 'Host: nr.test'
assert_status GET /unknown 404 -H 'Host: NR.TEST:99'
assert_log_contains '"GET /unknown HTTP/1.1" 404 NR ' "$MG_ACCESS_LOG"

# --- a Gateway server's hosts -----------------------------------------------------------
url2="http://127.0.0.1:$P2/echo"
assert_status GET "$url2" 200 -H 'Host: foo.example.com'
assert_header x-upstream wild "second server serves *.example.com"
assert_status GET "$url2" 200 -H 'Host: www.example.com'
assert_header x-upstream exact "second server: exact host within *.example.com"
assert_status GET "$url2" 404 -H 'Host: www.example.org'
assert_status GET "$url2" 404 -H 'Host: merge.test'
assert_log_contains '"GET /echo HTTP/1.1" 404 NR .*"www.example.org"' "$MG_ACCESS_LOG"

# --- ns/host: only VirtualServices of that namespace ---------------------------------------
url3="http://127.0.0.1:$P3/echo"
assert_status GET "$url3" 200 -H 'Host: www.example.com'
assert_eq "$(cat "$MG_BODY")" other-namespace "other/* serves only namespace other"
assert_status GET /echo 200 -H 'Host: anything.test'
assert_header x-upstream any "on the first server * of default wins over * of other"

# --- Gateway selector not a subset of labels: no listener ------------------------------
curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$P4/"
assert_eq "$?" 7 "a Gateway selecting other labels opens no listener (curl rc 7)"
assert_log_contains 'elsewhere'

# --- absolute-form request target: its authority replaces Host (RFC 9112 3.2.2) ------
out=$(printf 'GET http://www.example.com/abs?q=1 HTTP/1.1\r\nHost: foo.example.org\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | tr -d '\r')
assert_contains "$out" "x-upstream: exact" "absolute-form target routes by its authority"
assert_contains "$out" '"path": "/abs?q=1"' "absolute-form target forwarded in origin-form"
# an empty path is "/" (RFC 9110 4.2.3): the query stays
out=$(printf 'GET http://www.example.com?q=2 HTTP/1.1\r\nHost: foo.example.org\r\nConnection: close\r\n\r\n' |
	mg_raw "$MG_PORT" | tr -d '\r')
assert_contains "$out" '"path": "/?q=2"' "absolute-form target without a path keeps its query"

assert_alive
mg_finish
