#!/usr/bin/env bash
# 73-authz: AuthorizationPolicy at the gateway, as Istio's authorization tasks use it.
# DENY by method and path, DENY unless a header has a value, ALLOW lists (nothing else
# passes: 403 "RBAC: access denied", details naming the policy or [none], nothing reaches
# the upstream), the same over HTTP/2, a principal from the client certificate of a
# MUTUAL server, a TCP connection closed by an ipBlocks DENY, a policy that does not select
# this appliance, and reloads: a changed policy applies, an invalid one is refused with
# its position while the old one keeps deciding; /explain tells why a 403; behind a trusted
# proxy (numTrustedProxies) remoteIpBlocks look at x-forwarded-for.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_pki
TLS_PORT=$(mg_port) || mg_fatal "no free port"
TCP_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
labels: {app: istio-ingressgateway, istio: ingressgateway}
EOF

mtls="{mode: MUTUAL, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key"
mtls+=", caCertificates: $PKI/ca.crt}"
mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server http HTTP '["*"]')
$(mg_yaml_server https HTTPS '[a.example.com]' "$mtls" "$TLS_PORT")
$(mg_yaml_server tcp TCP '["*"]' "" "$TCP_PORT")
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: a}}]
  tcp:
  - match: [{port: $TCP_PORT}]
    route: [{destination: {host: a, port: {number: 80}}}]
EOF

# policies WHAT: the AuthorizationPolicies; WHAT=open drops the DENY on /admin.
policies() {
	if [ "${1:-}" != open ]; then
		cat <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin-get, namespace: istio-system}
spec:
  selector:
    matchLabels: {app: istio-ingressgateway}
  action: DENY
  rules:
  - to:
    - operation: {methods: [GET], paths: ["/admin*"]}
---
EOF
	fi
	cat <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-token}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/secret], ports: ["$MG_PORT"]}}]
    when: [{key: "request.headers[x-token]", notValues: [admin]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public}
spec:
  rules:
  - to: [{operation: {paths: ["/echo*", "/admin*", /secret, "/users/{*}/profile"],
                      ports: ["$MG_PORT"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-clients}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
    to: [{operation: {paths: ["/mtls*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-local}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [127.0.0.0/8]}}]
    to: [{operation: {ports: ["$TCP_PORT"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-httpbin, namespace: foo}
spec:
  action: DENY
  rules: [{}]
EOF
}
policies | mg_resource policies
assert_valid
assert_contains "$MG_VALIDATE_OUT" \
	"access policy: 3 DENY and 2 ALLOW AuthorizationPolicies)" "-t counts the policies that apply"
assert_contains "$MG_VALIDATE_OUT" \
	"AuthorizationPolicy foo/for-httpbin: spec: does not select this appliance" \
	"-t: a policy of another namespace does not apply here"
assert_contains "$MG_VALIDATE_OUT" \
	"AuthorizationPolicy istio-system/deny-admin-get: spec: rules[0] uses HTTP-only fields: on TCP" \
	"-t: a DENY with HTTP-only fields denies more on the TCP server, and says so"
mg_start

denied() { # "METHOD PATH" POLICY: the last response was our 403, logged with POLICY
	local line="\"$1 HTTP/1.1\" 403 - rbac_access_denied_matched_policy[$2]"
	assert_eq "$MG_STATUS" 403 "$1: 403"
	assert_eq "$(cat "$MG_BODY")" "RBAC: access denied" "$1: Envoy's body"
	mg_wait_until 5 grep -qF "$line" "$MG_ACCESS_LOG"
	assert_contains "$(cat "$MG_ACCESS_LOG")" "$line" "$1: logged with policy $2"
}

# tcp_denied POLICY: a connection to the TCP server is closed unanswered, logged with POLICY
tcp_denied() {
	local before out
	before=$(mg_upstream_count a)
	out=$(printf 'GET /echo HTTP/1.1\r\nHost: a\r\n\r\n' | mg_raw "$TCP_PORT" | head -c 200)
	assert_eq "$out" "" "TCP connection denied by $1: closed without an answer"
	assert_eq "$(mg_upstream_count a)" "$before" "... and the upstream saw nothing"
	mg_wait_until 5 grep -qF "\"- - -\" 0 - rbac_access_denied_matched_policy[$1]" "$MG_ACCESS_LOG"
	assert_contains "$(cat "$MG_ACCESS_LOG")" "\"- - -\" 0 - rbac_access_denied_matched_policy[$1]" \
		"... and its log line names $1"
}

before=$(mg_upstream_count a)
assert_status GET /echo 200
assert_eq "$(mg_json name)" a "an allowed request reaches the upstream"
assert_status GET /admin/users 403
denied "GET /admin/users" "istio-system.deny-admin-get"
assert_status POST /admin/users 200 -d x
assert_status GET /secret 403
denied "GET /secret" "default.need-token"
assert_status GET /secret 403 -H 'x-token: guest'
assert_status GET /secret 200 -H 'x-token: admin'
assert_status GET /other 403
denied "GET /other" "none"
assert_status GET /a/../admin/x 403 --path-as-is
assert_eq "$(mg_upstream_count a)" "$((before + 3))" "denied requests never reach the upstream"
assert_cmp "$(mg_metric downstream_rq_rbac_denied)" -ge 5 "denials are counted"
# a path template: {*} is one segment
assert_status GET /users/ann/profile 200
assert_status GET /users/ann/bob/profile 403

# /explain says why a 403
explain() { curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/explain?port=$MG_PORT&$1"; }
assert_contains "$(explain 'host=x&path=/admin/x&source=10.1.2.3')" \
	"DENIED -> 403 rbac_access_denied_matched_policy[istio-system.deny-admin-get]" \
	"/explain names the DENY policy"
assert_contains "$(explain 'host=x&path=/echo&source=10.1.2.3')" "): allowed" \
	"/explain: an allowed request"
assert_contains "$(explain 'host=x&path=/nowhere&source=10.1.2.3')" \
	"DENIED -> 403 rbac_access_denied_matched_policy[none]" "/explain: no ALLOW policy matched"

# HTTP/2: the same decisions
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
	"$(mg_url /admin/x)")
assert_eq "$out" "403 2" "HTTP/2: GET /admin/x denied"
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$(mg_url /echo)")
assert_eq "$out" 200 "HTTP/2: GET /echo allowed"

# principals: the client certificate's URI SAN, without spiffe://
tls_get() {
	curl -sS --max-time 10 --cacert "$PKI/ca.crt" --resolve "a.example.com:$TLS_PORT:127.0.0.1" \
		-o "$MG_BODY" -w '%{http_code}' "$@" 2>"$MG_DIR/last.curlerr"
}
assert_eq "$(tls_get --cert "$PKI/client.crt" --key "$PKI/client.key" \
	"https://a.example.com:$TLS_PORT/mtls/x")" 200 "principal cluster.local/ns/default/sa/client allowed"
assert_eq "$(tls_get --cert "$PKI/client.crt" --key "$PKI/client.key" \
	"https://a.example.com:$TLS_PORT/echo")" 403 "... only where its policy says (/echo is for port $MG_PORT)"
assert_status GET /mtls/x 403
denied "GET /mtls/x" "none"

# TCP: Istio leaves a DENY rule's HTTP-only fields out on a TCP connection (so it denies
# more, as its TCP task shows): deny-admin-get, which names no port, closes every one.
tcp_denied istio-system.deny-admin-get
assert_cmp "$(mg_metric downstream_cx_rbac_denied)" -ge 1 "denied connections are counted"

# reloads: a changed policy applies; an invalid one is refused and the old one stays
policies open | mg_resource policies
assert_reload applied
assert_status GET /admin/users 200
tcp_denied default.tcp-local
policies | sed 's|ipBlocks: \[127.0.0.0/8\]|ipBlocks: [127.0.0.0/33]|' | mg_resource policies
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "policies.yaml:" "the refusal names the file"
assert_contains "$MG_RELOAD_LINES" "\"127.0.0.0/33\" is not an IP address or CIDR prefix" \
	"... and says why"
assert_status GET /admin/users 200
assert_status GET /other 403

# behind a trusted proxy (numTrustedProxies: 1) remote.ip is the last x-forwarded-for
# entry, which that proxy appended; the peer when there is none
sed -i '/^numTrustedProxies:/d' "$MG_CONFIG"
echo 'numTrustedProxies: 1' >>"$MG_CONFIG"
{
	policies open
	cat <<EOF
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-lb-clients}
spec:
  rules:
  - from: [{source: {remoteIpBlocks: [203.0.113.0/24], notIpBlocks: [203.0.113.0/24]}}]
    to: [{operation: {paths: ["/behind-lb*"]}}]
EOF
} | mg_resource policies
assert_reload applied
assert_status GET /behind-lb 200 -H 'X-Forwarded-For: 198.51.100.7, 203.0.113.9'
assert_status GET /behind-lb 403 -H 'X-Forwarded-For: 203.0.113.9, 198.51.100.7'
assert_status GET /behind-lb 200 -H 'X-Forwarded-For: 198.51.100.7' \
	-H 'X-Forwarded-For: 203.0.113.9'
assert_status GET /behind-lb 403
pad=$(printf '10.0.0.%d, ' $(seq 1 150))
assert_status GET /behind-lb 200 -H "X-Forwarded-For: ${pad}203.0.113.9"
assert_status GET /behind-lb 403 -H "X-Forwarded-For: ${pad}203.0.113.45" \
	-H 'X-Forwarded-For: 198.51.100.1'
mg_finish
