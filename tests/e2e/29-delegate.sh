#!/usr/bin/env bash
# 29-delegate: VirtualService delegation through the real binary (Istio's
# root/delegate VirtualServices): a root route's match narrows the delegate's
# routes, delegate routes without a match inherit it, a delegate in another
# namespace, header conditions merged, a delegate route that contradicts the
# root's match is dropped with a warning, and load-time errors for a missing
# delegate or one that delegates again.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
for u in a b c; do mg_upstream "$u" --quiet; done

mg_start_config <<EOF
workers: 1
EOF

fq() { echo "$1.default.svc.cluster.local"; }

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_service b "$UP_B_PORT")
$(mg_yaml_service c "$UP_C_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: root
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: pp
    match: [{uri: {prefix: /productpage}}]
    delegate: {name: productpage, namespace: shop}
  - name: rv
    match: [{uri: {prefix: /reviews}}]
    delegate: {name: reviews}
  - name: rest
    route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: productpage
  namespace: shop
spec:
  http:
  - name: v1
    match: [{uri: {prefix: /productpage/v1}}]
    route: [{destination: {host: $(fq b)}}]
  - name: any
    route: [{destination: {host: $(fq a)}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - name: jason
    match: [{headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: b}}]
  - name: elsewhere
    match: [{uri: {prefix: /other}}]
    route: [{destination: {host: c}}]
  - route: [{destination: {host: c}}]
EOF

mg_validate
out=$MG_VALIDATE_OUT
assert_contains "$out" "conflicts with the match of the route delegating to it" \
	"a delegate route outside the root's match is reported"
mg_start

assert_eq "$(mg_owner /productpage/v1/item)" b "narrower delegate match (another namespace)"
assert_eq "$(mg_owner /productpage/list)" a "a delegate route without match inherits the root's"
assert_eq "$(mg_owner /reviews/1 -H 'x-user: jason')" b "the delegate's header condition under the root's uri"
assert_eq "$(mg_owner /reviews/1)" c "the delegate's catch-all"
assert_eq "$(mg_owner /other/1)" a "the conflicting delegate route is dropped: the root's next route answers"
assert_eq "$(mg_owner /reviewsx -H 'x-user: jason')" b "the root's prefix match applies as written"
assert_log_contains '"GET /productpage/v1/item HTTP/1.1" 200 .* v1$' "$MG_ACCESS_LOG"

# explain names the delegate
ex=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/explain?path=/reviews/1&host=x")
assert_contains "$ex" "VirtualService default/reviews" "explain shows the delegate VirtualService"

# --- load-time errors ------------------------------------------------------------------------
cat >"$MG_RESOURCES/bad.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: root2
spec:
  hosts: [bad.example]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /x}}]
    delegate: {name: nowhere}
EOF
assert_invalid "bad.yaml:10:15: VirtualService default/root2: spec.http[0].delegate: delegate VirtualService default/nowhere not found" "missing delegate: an error at the reference"
assert_reload refused
cat >"$MG_RESOURCES/bad.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: again
spec:
  http:
  - delegate: {name: reviews}
EOF
assert_invalid "bad.yaml:7:5: VirtualService default/again: spec.http[0]: delegate HTTP route cannot contain delegate" "a delegate that delegates again is refused"
assert_reload refused
rm -f "$MG_RESOURCES/bad.yaml"
assert_eq "$(mg_owner /productpage/v1/item)" b "the running config keeps serving"

assert_alive
mg_finish
