#!/usr/bin/env bash
# 78-ratelimit: Istio's rate limit task at the gateway: an EnvoyFilter inserting
# envoy.filters.http.local_ratelimit (a TypedStruct, as the task writes it) limits the
# appliance's requests with one token bucket shared by the workers: max_tokens pass,
# then 429 "local_rate_limited" with the response_headers_to_add, flag RL in the access
# log, counted; HTTP/2 too.  filter_enforced 0% only counts (shadow), an EnvoyFilter for
# sidecars or another workload changes nothing, any other patch is refused with its
# position and the running limit stays.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_start_config <<EOF
workers: 2
labels: {istio: ingressgateway}
EOF
mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
$(mg_yaml_route_all a)
EOF
# limit ENFORCED-PERCENT: the task's EnvoyFilter, 4 tokens a minute
limit() {
	cat <<EOF
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      istio: ingressgateway
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: GATEWAY
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
              token_bucket:
                max_tokens: 4
                tokens_per_fill: 4
                fill_interval: 60s
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value:
                  numerator: $1
                  denominator: HUNDRED
              response_headers_to_add:
                - append: false
                  header:
                    key: x-local-rate-limit
                    value: 'true'
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: for-productpage
spec:
  workloadSelector:
    labels: {app: productpage}
  configPatches:
    - applyTo: HTTP_FILTER
      match: {context: SIDECAR_INBOUND}
      patch:
        operation: INSERT_BEFORE
        value: {name: envoy.filters.http.local_ratelimit}
EOF
}
limit 100 | mg_resource ratelimit
assert_valid
assert_contains "$MG_VALIDATE_OUT" "a sidecar patch: not for a gateway, left out" \
	"-t: a sidecar EnvoyFilter is left out"
assert_contains "$MG_VALIDATE_OUT" "local rate limit: 4 tokens, 4 more every 60s" \
	"-t says which limit applies"
mg_start

for i in 1 2 3 4; do assert_status GET /echo 200; done
assert_status GET /echo 429
assert_eq "$(cat "$MG_BODY")" local_rate_limited "Envoy's body"
assert_header x-local-rate-limit true "response_headers_to_add"
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$(mg_url /echo)")
assert_eq "$out" 429 "HTTP/2 requests take from the same bucket"
mg_wait_until 5 grep -qF '"GET /echo HTTP/1.1" 429 RL local_rate_limited' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /echo HTTP/1.1" 429 RL local_rate_limited' \
	"logged with flag RL"
assert_cmp "$(mg_metric downstream_rq_rate_limited)" -ge 2 "refusals are counted"

# shadow mode: over the limit, counted, let through (a reload starts a full bucket)
limit 0 | mg_resource ratelimit
assert_reload applied
for i in 1 2 3 4 5 6; do assert_status GET /echo 200; done
assert_cmp "$(mg_metric downstream_rq_rate_limit_shadow)" -ge 2 "filter_enforced 0%: only counted"

# any other patch is refused; the running limit stays
cat <<EOF | mg_resource other
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: GATEWAY}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}
EOF
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "other.yaml:" "the refusal names the file"
assert_contains "$MG_RELOAD_LINES" "filter envoy.filters.http.lua: meshgate has no Envoy filters" \
	"... and says why"
mg_finish
