#!/usr/bin/env bash
# 79-authz-dry-run: AuthorizationPolicy dry runs (annotation istio.io/dry-run), as in
# Istio's "Dry Run" task. A dry-run DENY policy denies nothing, but its shadow verdict is
# counted (..._rbac_istio_dry_run_deny_shadow_denied), logged at debug level in Envoy's
# words, carried by the JSON access log and told by /explain; TCP connections get the same;
# a config whose only ALLOW policy is a dry run denies nothing; enforced policies decide
# alone next to dry runs; a reload that removes the annotation enforces the policy (403);
# a value Istio refuses is refused with its position while the old config keeps serving.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
TCP_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
namespace: foo
labels: {app: istio-ingressgateway, istio: ingressgateway}
accessLog: {path: "$MG_ACCESS_LOG", format: json}
EOF

mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server http HTTP '["*"]')
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
  - route: [{destination: {host: a.default.svc.cluster.local}}]
  tcp:
  - match: [{port: $TCP_PORT}]
    route: [{destination: {host: a.default.svc.cluster.local, port: {number: 80}}}]
EOF

# deny_path_headers [ANNOTATION-VALUE]: the task's policy; no argument: enforced.
deny_path_headers() {
	cat <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-path-headers
EOF
	if [ -n "${1:-}" ]; then
		printf '  annotations:\n    "istio.io/dry-run": "%s"\n' "$1"
	fi
	cat <<EOF
spec:
  selector:
    matchLabels: {app: istio-ingressgateway}
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/headers", "/admin*"]
EOF
}

# rbac NAME: the counter meshgate_downstream_rq_rbac_istio_dry_run_NAME (or cx_ with
# NAME cx:...).
rbac() {
	case $1 in
	cx:*) mg_metric "downstream_cx_rbac_istio_dry_run_${1#cx:}" ;;
	*) mg_metric "downstream_rq_rbac_istio_dry_run_$1" ;;
	esac
}

# alog PATH: the JSON access-log line of the request for PATH (waits for the flush).
alog() {
	mg_wait_until 10 grep -qF "\"path\":\"$1\"" "$MG_ACCESS_LOG"
	grep -F "\"path\":\"$1\"" "$MG_ACCESS_LOG" | tail -n 1
}

explain() { curl -s --max-time 10 "http://127.0.0.1:$MG_ADMIN_PORT/explain?port=$MG_PORT&$1"; }

# tcp_relayed: a connection to the TCP server reaches the upstream and gets its answer.
tcp_relayed() {
	local before out
	before=$(mg_upstream_count a)
	out=$(printf 'GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
		mg_raw "$TCP_PORT" | head -c 200)
	assert_contains "$out" "HTTP/1.1 200" "TCP: $1"
	assert_eq "$(mg_upstream_count a)" "$((before + 1))" "... the upstream served it"
}

ID='ns[foo]-policy[deny-path-headers]-rule[0]'

# ---- 1. a dry-run DENY policy denies nothing; its shadow verdict is reported
deny_path_headers true | mg_resource policies
assert_valid
assert_contains "$MG_VALIDATE_OUT" \
	"access policy: 0 DENY and 0 ALLOW AuthorizationPolicies plus dry runs of 1 DENY and 0 ALLOW, not enforced" \
	"-t counts the dry runs apart"
assert_contains "$MG_VALIDATE_OUT" \
	"AuthorizationPolicy foo/deny-path-headers: spec: rules[0] uses HTTP-only fields: on TCP and TLS passthrough connections, as in Istio, it is judged without them and would deny more" \
	"-t: the HTTP-only warning holds for a dry run too"
mg_start -d

before=$(mg_upstream_count a)
assert_status GET '/headers?step=1' 200
assert_eq "$(mg_json name)" a "a request the dry-run DENY matches reaches the upstream"
assert_status GET '/ip?step=1' 200
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
	"$(mg_url '/admin/x?step=1')")
assert_eq "$out" "200 2" "HTTP/2: a request the dry-run DENY matches is not denied"
assert_eq "$(mg_upstream_count a)" "$((before + 3))" "all three reached the upstream"
assert_eq "$(rbac deny_shadow_denied)" 2 "shadow_denied counts the two it would deny"
assert_eq "$(rbac deny_shadow_allowed)" 1 "shadow_allowed counts the other"
assert_eq "$(rbac allow_shadow_denied)" 0 "no dry-run ALLOW: its counters stay"
assert_eq "$(mg_metric downstream_rq_rbac_denied)" 0 "nothing was denied"

line=$(alog '/headers?step=1')
assert_contains "$line" \
	"\"istio_dry_run_deny_shadow_engine_result\":\"denied\",\"istio_dry_run_deny_shadow_effective_policy_id\":\"$ID\"" \
	"access log: the shadow result and the matched policy rule"
assert_contains "$line" '"response_code":200' "... of a request that passed"
assert_not_contains "$line" "istio_dry_run_allow_" "... and nothing of an ALLOW engine there is not"
line=$(alog '/ip?step=1')
assert_contains "$line" "\"istio_dry_run_deny_shadow_engine_result\":\"allowed\"}" \
	"access log: shadow allowed, no effective policy"
assert_log_contains "shadow denied, matched policy ns\[foo\]-policy\[deny-path-headers\]-rule\[0\]"
assert_log_contains "istio_dry_run_deny_shadow allowed, matched policy none"

out=$(explain 'host=x&path=/headers&source=10.1.2.3')
assert_contains "$out" "access policy (0 DENY, 0 ALLOW AuthorizationPolicies apply; dry-run: 1 DENY, 0 ALLOW): allowed" \
	"/explain: allowed, with the dry runs counted"
assert_contains "$out" \
	"dry-run DENY policies (istio_dry_run_deny_, not enforced): shadow denied, matched policy $ID" \
	"/explain names the dry-run policy rule that would deny"
assert_contains "$(explain 'host=x&path=/ip&source=10.1.2.3')" \
	"dry-run DENY policies (istio_dry_run_deny_, not enforced): shadow allowed, matched policy none" \
	"/explain: shadow allowed"

# TCP: judged without the HTTP-only paths (Istio's TCP semantics), the dry run would
# close every connection; it is relayed and counted
tcp_relayed "a connection the dry-run DENY would close is relayed"
assert_eq "$(rbac cx:deny_shadow_denied)" 1 "TCP: shadow_denied counted"
assert_eq "$(mg_metric downstream_cx_rbac_denied)" 0 "TCP: nothing closed"
assert_log_contains "connection from .* on .*: istio_dry_run_deny_shadow denied, matched policy ns\[foo\]-policy\[deny-path-headers\]-rule\[0\]"
mg_wait_until 10 grep -qF '"method":"","path":"",' "$MG_ACCESS_LOG"
assert_contains "$(grep -F '"path":""' "$MG_ACCESS_LOG" | tail -n 1)" \
	"\"istio_dry_run_deny_shadow_engine_result\":\"denied\",\"istio_dry_run_deny_shadow_effective_policy_id\":\"$ID\"" \
	"TCP: the connection's log line carries the shadow verdict"

# ---- 2. a config whose only ALLOW policy is a dry run denies nothing
cat <<EOF | mg_resource policies
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-ip
  namespace: istio-system
  annotations: {istio.io/dry-run: "true"}
spec:
  rules: [{to: [{operation: {paths: ["/ip*"]}}]}]
EOF
assert_reload applied
for p in '/ip?step=2' '/headers?step=2' '/other?step=2'; do
	assert_status GET "$p" 200
done
assert_eq "$(rbac allow_shadow_allowed)" 1 "dry-run ALLOW: shadow_allowed for /ip"
assert_eq "$(rbac allow_shadow_denied)" 2 "dry-run ALLOW: shadow_denied for the others"
assert_eq "$(mg_metric downstream_rq_rbac_denied)" 0 "... and nothing denied"
assert_contains "$(alog '/other?step=2')" '"istio_dry_run_allow_shadow_engine_result":"denied"}' \
	"access log: the ALLOW engine would deny"
assert_contains "$(alog '/ip?step=2')" \
	'"istio_dry_run_allow_shadow_engine_result":"allowed","istio_dry_run_allow_shadow_effective_policy_id":"ns[istio-system]-policy[allow-ip]-rule[0]"' \
	"access log: ... and would allow /ip by its rule"
assert_contains "$(explain 'host=x&path=/other')" \
	"dry-run ALLOW policies (istio_dry_run_allow_, not enforced): shadow denied, matched policy none" \
	"/explain: the dry-run ALLOW would deny"
tcp_relayed "a dry-run ALLOW-only config closes no connection"
assert_eq "$(rbac cx:allow_shadow_denied)" 1 "TCP: the path rule cannot match a connection"

# ---- 3. an enforced DENY plus a dry-run DENY: the enforced one decides alone
{
	deny_path_headers true
	cat <<EOF
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
EOF
} | mg_resource policies
assert_reload applied
d0=$(rbac deny_shadow_denied)
assert_status GET '/admin/x?step=3' 403
assert_eq "$(cat "$MG_BODY")" "RBAC: access denied" "the enforced DENY answers Envoy's 403"
line=$(alog '/admin/x?step=3')
assert_contains "$line" '"response_code_details":"rbac_access_denied_matched_policy[foo.deny-admin]"' \
	"... named in the log as the policy that denied"
assert_contains "$line" "\"istio_dry_run_deny_shadow_engine_result\":\"denied\",\"istio_dry_run_deny_shadow_effective_policy_id\":\"$ID\"" \
	"... and the dry run's verdict, evaluated before it as in Envoy's DENY filter"
assert_status GET '/headers?step=3' 200
assert_eq "$(rbac deny_shadow_denied)" "$((d0 + 2))" "both counted as shadow denied"
out=$(explain 'host=x&path=/admin/x')
assert_contains "$out" "apply; dry-run: 1 DENY, 0 ALLOW): DENIED -> 403 rbac_access_denied_matched_policy[foo.deny-admin]" \
	"/explain: the enforced DENY denies"
assert_contains "$out" "shadow denied, matched policy $ID" "/explain: ... and the dry run would have"

# ---- 4. the annotation removed: the same policy is enforced
deny_path_headers | mg_resource policies
assert_reload applied
d0=$(rbac deny_shadow_denied)
a0=$(rbac deny_shadow_allowed)
assert_status GET '/headers?step=4' 403
assert_contains "$(alog '/headers?step=4')" \
	'"response_code_details":"rbac_access_denied_matched_policy[foo.deny-path-headers]"' \
	"enforced, the policy denies /headers"
assert_not_contains "$(alog '/headers?step=4')" "istio_dry_run" "... and no shadow verdict is logged"
assert_status GET '/ip?step=4' 200
assert_eq "$(rbac deny_shadow_denied)/$(rbac deny_shadow_allowed)" "$d0/$a0" \
	"without dry runs the shadow counters stay"
deny_path_headers false | mg_resource policies
assert_reload applied
assert_status GET '/headers?step=4b' 403
assert_contains "$(explain 'host=x&path=/headers')" "access policy (1 DENY, 0 ALLOW AuthorizationPolicies apply): DENIED" \
	"\"false\" enforces too"

# ---- 5. a value Istio refuses: the reload is refused with its position
deny_path_headers yes | mg_resource policies
assert_reload refused
assert_contains "$MG_RELOAD_LINES" \
	"policies.yaml:6:25: AuthorizationPolicy foo/deny-path-headers: metadata.annotations[\"istio.io/dry-run\"]: must be \"true\" or \"false\", got \"yes\"" \
	"the refusal names the file, line and column and says why"
assert_status GET '/headers?step=5' 403
mg_finish
