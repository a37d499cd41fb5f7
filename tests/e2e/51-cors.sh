#!/usr/bin/env bash
# 51-cors: VirtualService corsPolicy with Envoy's CORS filter semantics.
# Preflights from an allowed origin are answered by the gateway (every header
# checked, never forwarded); from another origin they are forwarded
# (unmatchedPreflights FORWARD, the default) or answered without
# access-control-allow-origin (IGNORE). Actual requests from an allowed origin
# get access-control-allow-origin (the request's Origin, replacing the
# upstream's), -expose-headers and -allow-credentials, on proxied and local
# answers alike. Exact, prefix, regex, "*" and the deprecated allowOrigin;
# requests without Origin, or on routes without a policy, are untouched; an
# injected abort runs before CORS (Istio's filter order).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
DOWN_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_service down "$DOWN_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: cors
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: c-api
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [content-type, x-token]
      exposeHeaders: [x-total, x-page]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: a}}]
  - name: c-ignore
    match: [{uri: {prefix: /ign}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      allowMethods: [GET]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: a}}]
  - name: c-patterns
    match: [{uri: {prefix: /re}}]
    corsPolicy:
      allowOrigins:
      - regex: 'https://[a-z]+\.example\.org'
      - prefix: "http://localhost:"
    route: [{destination: {host: a}}]
  - name: c-star
    match: [{uri: {prefix: /star}}]
    corsPolicy:
      allowOrigins: [{exact: "*"}]
      allowHeaders: ["*"]
    route: [{destination: {host: a}}]
  - name: c-legacy
    match: [{uri: {prefix: /old}}]
    corsPolicy:
      allowOrigin: ["https://legacy.example.com"]
    route: [{destination: {host: a}}]
  - name: c-direct
    match: [{uri: {prefix: /direct}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
    directResponse: {status: 200, body: {string: "direct"}}
  - name: c-down
    match: [{uri: {prefix: /down}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
    route: [{destination: {host: down}}]
  - name: c-fault
    match: [{uri: {prefix: /faulty}}]
    fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      allowMethods: [GET]
    route: [{destination: {host: a}}]
  - name: plain
    route: [{destination: {host: a}}]
EOF

mg_start

APP='Origin: https://app.example.com'
EVIL='Origin: https://evil.example.net'
ACRM='Access-Control-Request-Method: POST'
ncors() { grep -ci '^access-control-' "$MG_HEADERS"; }

# --- preflight from an allowed origin: answered here -----------------------------------------
assert_status OPTIONS /api/pre 200 -H "$APP" -H "$ACRM" -H 'Access-Control-Request-Headers: content-type'
assert_header access-control-allow-origin https://app.example.com
assert_header access-control-allow-methods GET,POST
assert_header access-control-allow-headers content-type,x-token
assert_header access-control-max-age 86400 "maxAge 24h is 86400 seconds"
assert_header access-control-allow-credentials true
assert_no_header access-control-expose-headers
assert_header content-length 0
assert_eq "$(wc -c <"$MG_BODY")" 0 "empty body"
assert_eq "$(mg_upstream_count a '^/pre')" 0 "an allowed preflight is never forwarded"
assert_log_contains '"OPTIONS /api/pre HTTP/1\.1" 200 - cors_response ' "$MG_ACCESS_LOG"

# --- preflight from another origin: FORWARD (default) --------------------------------------
assert_status OPTIONS /api/pre-evil 200 -H "$EVIL" -H "$ACRM"
assert_eq "$(mg_json method)" OPTIONS "forwarded to the upstream, which answered"
assert_eq "$(mg_json headers.origin)" https://evil.example.net "with its Origin"
assert_eq "$(ncors)" 0 "no CORS header on a forwarded unmatched preflight"

# --- preflight from another origin: IGNORE -----------------------------------------------------
assert_status OPTIONS /ign/pre 200 -H "$EVIL" -H "$ACRM"
assert_no_header access-control-allow-origin "IGNORE: no access-control-allow-origin"
assert_header access-control-allow-methods GET "IGNORE: the other preflight headers stay (Envoy)"
assert_eq "$(mg_upstream_count a '^/ign/pre')" 0 "IGNORE: the preflight is not forwarded"
assert_status OPTIONS /ign/pre-ok 200 -H "$APP" -H "$ACRM"
assert_header access-control-allow-origin https://app.example.com "IGNORE does not touch allowed preflights"

# --- actual requests -------------------------------------------------------------------------
assert_status GET /api/echo 200 -H "$APP"
assert_header access-control-allow-origin https://app.example.com
assert_header access-control-expose-headers x-total,x-page
assert_header access-control-allow-credentials true
assert_no_header access-control-allow-methods "preflight-only headers stay off actual responses"
assert_eq "$(mg_json headers.origin)" https://app.example.com "the upstream sees the Origin"
assert_status POST /api/echo 200 -H "$APP" --data-binary 'x'
assert_header access-control-allow-origin https://app.example.com "POST too"
# OPTIONS without Access-Control-Request-Method is an actual request
assert_status OPTIONS /api/echo 200 -H "$APP"
assert_eq "$(mg_json method)" OPTIONS "OPTIONS without Access-Control-Request-Method is forwarded"
assert_header access-control-allow-origin https://app.example.com
# the upstream's own CORS headers are replaced, not duplicated
assert_status GET '/api/headers-out?access-control-allow-origin=https://evil.example.net&access-control-expose-headers=x-up' 200 -H "$APP"
assert_eq "$(grep -ci '^access-control-allow-origin:' "$MG_HEADERS")" 1 "one access-control-allow-origin"
assert_header access-control-allow-origin https://app.example.com "ours, not the upstream's"
assert_header access-control-expose-headers x-total,x-page
assert_status GET /api/echo 200 -H "$EVIL"
assert_eq "$(ncors)" 0 "another origin: the response is untouched"
assert_status GET '/api/headers-out?access-control-allow-origin=https://up.example' 200 -H "$EVIL"
assert_header access-control-allow-origin https://up.example "another origin: the upstream's header stays"

# --- origin patterns -------------------------------------------------------------------------
assert_status GET /re/1 200 -H 'Origin: https://shop.example.org'
assert_header access-control-allow-origin https://shop.example.org "regex"
assert_status GET /re/2 200 -H 'Origin: https://shop.example.org.evil.com'
assert_no_header access-control-allow-origin "the regex matches the whole origin"
assert_status GET /re/3 200 -H 'Origin: https://Shop.example.org'
assert_no_header access-control-allow-origin "case matters"
assert_status GET /re/4 200 -H 'Origin: http://localhost:3000'
assert_header access-control-allow-origin http://localhost:3000 "prefix"
assert_status GET /re/5 200 -H 'Origin: http://localhost.evil'
assert_no_header access-control-allow-origin "prefix mismatch"
assert_status GET /star/1 200 -H 'Origin: https://any.where'
assert_header access-control-allow-origin https://any.where "exact \"*\" allows any origin, echoed"
assert_no_header access-control-allow-credentials "no credentials unless allowed"
assert_status OPTIONS /star/2 200 -H 'Origin: https://any.where' -H "$ACRM" \
	-H 'Access-Control-Request-Headers: x-a, x-b'
assert_header access-control-allow-headers "x-a, x-b" "allowHeaders [\"*\"] echoes the request's list"
assert_no_header access-control-max-age "no maxAge, no header"
assert_status GET /old/1 200 -H 'Origin: https://legacy.example.com'
assert_header access-control-allow-origin https://legacy.example.com "deprecated allowOrigin"

# --- untouched: no Origin, no policy -------------------------------------------------------------
assert_status GET /api/echo 200
assert_eq "$(ncors)" 0 "no Origin: no CORS header"
assert_status OPTIONS /api/nocors 200 -H "$ACRM"
assert_eq "$(mg_json method)" OPTIONS "no Origin: an OPTIONS is forwarded"
assert_status GET /plain 200 -H "$APP"
assert_eq "$(ncors)" 0 "a route without corsPolicy: no CORS header"
assert_status OPTIONS /plain 200 -H "$APP" -H "$ACRM"
assert_eq "$(mg_json method)" OPTIONS "a route without corsPolicy forwards preflights"

# --- answers made by the gateway ---------------------------------------------------------------
assert_status GET /direct 200 -H "$APP"
assert_header access-control-allow-origin https://app.example.com "a direct response gets the headers"
assert_body_contains direct
assert_status GET /down 503 -H "$APP"
assert_header access-control-allow-origin https://app.example.com "a 503 from the gateway too"
assert_status OPTIONS /faulty 503 -H "$APP" -H 'Access-Control-Request-Method: GET'
assert_eq "$(ncors)" 0 "fault runs before CORS: an aborted preflight has no CORS header"

assert_alive
mg_finish
