#!/usr/bin/env bash
# 16-path-normalization: like Istio's default path normalisation, dot segments are removed
# and repeated slashes merged BEFORE routing, and the upstream gets the normalised path, so
# "/public/../admin" cannot reach the admin backend through the public route.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 1
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: admin
    match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403, body: {string: "admin route\n"}}
  - name: public
    match: [{uri: {prefix: /public}}]
    route: [{destination: {host: a}}]
EOF
mg_start

assert_status GET /public/x 200 --path-as-is
assert_eq "$(mg_json path)" /public/x "plain path reaches the upstream unchanged"
assert_status GET /public/../admin 403 --path-as-is
assert_body_contains "admin route" "dot-dot is resolved before routing: /admin's route answers"
assert_status GET '/public/./a/../b?q=1' 200 --path-as-is
assert_eq "$(mg_json path)" '/public/b?q=1' "upstream gets the normalised path, query kept"
assert_status GET '//public///c/' 200 --path-as-is
assert_eq "$(mg_json path)" /public/c/ "repeated slashes merged, trailing slash kept"
assert_status GET /public/../../.. 404 --path-as-is
assert_log_contains '"GET /public/\.\./\.\./\.\. HTTP/1\.1" 404 NR' "$MG_ACCESS_LOG"

mg_finish
