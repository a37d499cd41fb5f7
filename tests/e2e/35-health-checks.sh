#!/usr/bin/env bash
# 35-health-checks: active health checking (main config healthChecks) through
# the real binary: an endpoint whose health endpoint fails is taken out of
# service after unhealthyThreshold probes and brought back after
# healthyThreshold; a TCP check notices a dead endpoint; /clusters shows the
# state; below half healthy Envoy's panic mode keeps every endpoint in use.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream good --quiet
mg_upstream flappy --quiet
mg_upstream lone --quiet

mg_start_config <<EOF
workers: 2
healthChecks:
- host: flap.example
  interval: 500ms
  timeout: 400ms
  unhealthyThreshold: 2
  healthyThreshold: 2
  http: {path: /flaky/3/status/503?key=hc, expectedStatuses: [200, 204]}
- host: tcp.example
  interval: 500ms
  timeout: 400ms
  unhealthyThreshold: 1
  tcp: {}
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service_head flap "[flap.example]")
$(mg_yaml_endpoint "$UP_FLAPPY_PORT")
$(mg_yaml_service_head tcp "[tcp.example]")
$(mg_yaml_endpoint "$UP_LONE_PORT")
$(mg_yaml_endpoint "$UP_GOOD_PORT")
$(mg_yaml_routes)
  - match: [{uri: {prefix: /flap/}}]
    rewrite: {uri: /}
    route: [{destination: {host: flap.example}}]
  - match: [{uri: {prefix: /tcp/}}]
    rewrite: {uri: /}
    route: [{destination: {host: tcp.example}}]
EOF

mg_start
flappy="127.0.0.1:$UP_FLAPPY_PORT"

# The health path answers 503 to the first 3 probes, then 200 (the test upstream's
# /flaky): down after 2, back after 2 more.
# The whole down-and-up takes about a second: follow it in the log, which keeps it, rather
# than by polling /clusters, which a slow start of the test could miss.
MG_LOG_WAIT=10 assert_log_contains "health check: $flappy is unhealthy" "$MG_LOG"
MG_LOG_WAIT=10 assert_log_contains "health check: $flappy is healthy again" "$MG_LOG"
n=$(grep -c "health check: $flappy is" "$MG_LOG")
assert_cmp "$n" -ge 2 "down after 2 failed probes, up after 2 good ones ($n transitions)"
assert_contains "$(mg_clusters)" "flap.example::$flappy::active_health_check::healthy" "/clusters shows it healthy"

# --- TCP: a dead endpoint is taken out; its share of requests goes elsewhere -----------------
mg_upstream_stop lone
if mg_wait_until 5 sh -c "curl -s http://127.0.0.1:$MG_ADMIN_PORT/clusters | grep -q 'tcp.example::127.0.0.1:$UP_LONE_PORT::active_health_check::/failed_active_hc'"; then
	mg_ok "a TCP check notices a dead endpoint"
else
	mg_fail "a TCP check notices a dead endpoint: $(mg_clusters | grep active_health)"
fi
# one of two endpoints down is 50% healthy: not below Envoy's panic threshold
fails=$(mg_metric upstream_cx_connect_fail)
assert_eq "$(mg_owners 12 /tcp/echo)" good=12 "every request answered by the healthy endpoint"
assert_eq "$(mg_metric upstream_cx_connect_fail)" "$fails" "no request even tried the unhealthy one"

assert_alive
mg_finish
