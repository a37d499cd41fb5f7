#!/usr/bin/env bash
# 80-telemetry: Istio's Telemetry resource decides the access log, as istiod decides
# it for a gateway. The tasks' mesh-wide Telemetry (provider "envoy") turns the log
# on, a namespace one with `disabled: true` turns it off, a workload one (selector)
# comes last; `match.mode: SERVER` does not apply to a gateway (a CLIENT);
# `filter.expression` (CEL) keeps only the lines it holds true for: on the
# status, a request header, a response header, the path, the duration; a provider
# meshgate has not is skipped (the main config's log applies); with no accessLog in
# the main config the provider logs to standard output; a filter that does not
# compile is refused at its line and column, and the running config keeps serving.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

# One worker: its lines are written in order, so once a probe's line is there, every
# earlier request's line is too (or was left out).
mg_start_config <<EOF
workers: 1
labels:
  istio: ingressgateway
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
$(mg_yaml_route_all a)
EOF

H='Host: tel.test'
# tag NAME: a request id no other line has, to find (or miss) a request's line (called in
# a subshell, so it cannot count: the clock's nanoseconds tell calls apart)
tag() { printf 'tel-%s-%s' "$1" "$(date +%s%N)"; }
# logged FILE ID: FILE has the line of the request ID
logged() { grep -q -- "\"$2\"" "$1" 2>/dev/null; }
# wait_logged FILE ID: up to 5 s for the line (lines are written in batches)
wait_logged() { mg_wait_until 5 logged "$1" "$2"; }
# probe FILE: a request that is logged whatever the filter says, and wait for it, so
# lines of earlier requests had their chance to be written
probe() {
	local id
	id=$(tag probe)
	curl -s -o /dev/null --max-time 5 -H "$H" -H "X-Request-Id: $id" -H 'x-log: yes' \
		"$(mg_url /status/599)"
	wait_logged "$1" "$id"
}
# req ID PATH [curl args]: one request with request id ID
req() {
	local id=$1 path=$2
	shift 2
	curl -s -o /dev/null --max-time 5 -H "$H" -H "X-Request-Id: $id" "$@" "$(mg_url "$path")"
}
telemetry() { mg_resource telemetry; }

# --- the main config's log, then the mesh-wide Telemetry of the tasks ------------------------
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
EOF
assert_valid "the access log task's Telemetry loads"
mg_start
id=$(tag on)
req "$id" /status/200
if wait_logged "$MG_ACCESS_LOG" "$id"; then mg_ok "mesh-wide Telemetry: the request is logged"; else mg_fail "mesh-wide Telemetry: no line for $id"; fi

# --- a namespace Telemetry disables it; a workload one turns it on again ----------------------
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: quiet
  namespace: default
spec:
  accessLogging:
  - disabled: true
EOF
assert_reload applied
off=$(tag off)
req "$off" /status/200
assert_status GET /status/200 200 -H "$H"

telemetry <<EOF
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: quiet
  namespace: default
spec:
  accessLogging:
  - providers:
    - name: envoy
    disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: gateway-logs
  namespace: default
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  accessLogging:
  - providers:
    - name: envoy
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: other-workload
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  accessLogging:
  - providers:
    - name: envoy
    disabled: true
EOF
assert_reload applied
assert_contains "$MG_RELOAD_LINES" "does not select this appliance" "a selector for other labels is noted"
on=$(tag on)
req "$on" /status/200
if wait_logged "$MG_ACCESS_LOG" "$on"; then mg_ok "a workload Telemetry selecting the appliance turns the log on again"; else mg_fail "workload Telemetry: no line for $on"; fi
if logged "$MG_ACCESS_LOG" "$off"; then mg_fail "a request was logged while a namespace Telemetry disabled the log"; else mg_ok "disabled: true in the namespace Telemetry: nothing logged"; fi

# --- SERVER mode does not apply to a gateway; an unknown provider is skipped -------------------
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - match:
      mode: SERVER
    providers:
    - name: envoy
    disabled: true
  - providers:
    - name: otel
EOF
assert_valid "SERVER mode and an unknown provider load"
assert_contains "$MG_VALIDATE_OUT" "a gateway logs as a CLIENT" "-t notes the SERVER-mode entry"
assert_contains "$MG_VALIDATE_OUT" 'provider "otel" is not an access log meshgate has' "-t warns of the unknown provider"
assert_reload applied
id=$(tag fallback)
req "$id" /status/200
if wait_logged "$MG_ACCESS_LOG" "$id"; then mg_ok "no provider meshgate has decides: the main config's accessLog applies"; else mg_fail "fallback: no line for $id"; fi

# --- filters ----------------------------------------------------------------------------------
# filter_case EXPR: reload with the mesh-wide Telemetry filtering on EXPR
filter_case() {
	telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
    filter:
      expression: "$1"
EOF
	assert_reload applied
}
# expect_lines DESC KEPT... -- DROPPED...: after a probe, the kept ids are logged and the
# dropped ones are not
expect_lines() {
	local desc=$1 kept=1 id
	shift
	probe "$MG_ACCESS_LOG" || mg_fail "$desc: the probe request was not logged"
	for id in "$@"; do
		if [ "$id" = -- ]; then
			kept=0
			continue
		fi
		if [ "$kept" = 1 ]; then
			if logged "$MG_ACCESS_LOG" "$id"; then mg_ok "$desc: $id logged"; else mg_fail "$desc: $id not logged"; fi
		elif logged "$MG_ACCESS_LOG" "$id"; then
			mg_fail "$desc: $id logged"
		else
			mg_ok "$desc: $id left out"
		fi
	done
}

filter_case "response.code >= 400"
a=$(tag ok) b=$(tag notfound) c=$(tag err)
req "$a" /status/200
req "$b" /status/404
req "$c" /status/503
expect_lines "response.code >= 400" "$b" "$c" -- "$a"

filter_case "request.headers['x-log'] == 'yes' && request.method == 'GET'"
a=$(tag hdr) b=$(tag nohdr) c=$(tag post)
req "$a" /status/200 -H 'X-Log: yes'
req "$b" /status/200
req "$c" /status/200 -H 'x-log: yes' --data-binary x
expect_lines "a request header and the method" "$a" -- "$b" "$c"

filter_case "response.headers['x-out'] == 'keep' || response.code == 599"
a=$(tag resp) b=$(tag noresp)
req "$a" '/headers-out?x-out=keep'
req "$b" '/headers-out?x-out=drop'
expect_lines "a response header" "$a" -- "$b"

filter_case "request.url_path.startsWith('/status/2') && request.duration < duration('30s') || response.code == 599"
a=$(tag path) b=$(tag otherpath)
req "$a" '/status/201?q=1'
req "$b" /status/404
expect_lines "the path without its query, and the duration" "$a" -- "$b"

filter_case "response.code in [401, 404, 599] && !('x-skip' in request.headers)"
a=$(tag in) b=$(tag skip)
req "$a" /status/404
req "$b" /status/404 -H 'x-skip: 1'
expect_lines "in a list, and in the headers" "$a" -- "$b"

filter_case "response.flags == 0x40000 || response.code == 599"
a=$(tag nr) b=$(tag plain)
req "$a" /status/200 -H 'Content-Length: x1'
req "$b" /status/200
expect_lines "response.flags (DPE) as Envoy's bits" "$a" -- "$b"

# --- a filter that does not compile: refused at its column, the old one keeps serving --------
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
    filter:
      expression: "response.code >= 400 && request.nope == 1"
EOF
assert_invalid "telemetry.yaml:11:" "a filter that does not compile is refused at its line"
assert_contains "$MG_VALIDATE_OUT" "request.nope" "... naming what it does not know"
assert_reload refused
a=$(tag kept)
req "$a" /status/200
expect_lines "the refused reload kept the last filter" -- "$a"

# --- metrics applied, tracing loaded and warned about ---------------------------------------------------
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  tracing:
  - randomSamplingPercentage: 100.0
  metrics:
  - providers:
    - name: prometheus
    overrides:
    - match:
        metric: REQUEST_COUNT
      disabled: true
EOF
assert_valid "a Telemetry with metrics and tracing loads"
assert_contains "$MG_VALIDATE_OUT" "Istio metrics off: REQUEST_COUNT" "-t says which Istio metrics are off"
assert_contains "$MG_VALIDATE_OUT" "tracing is not applied" "-t warns that tracing is not applied"
mg_stop

# --- no accessLog in the main config: the provider "envoy" writes to standard output ----------
sed -i '/^accessLog:/,/^  format:/d' "$MG_CONFIG"
telemetry <<EOF
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
EOF
mg_start
id=$(tag stdout)
req "$id" /status/200
if wait_logged "$MG_OUT" "$id"; then mg_ok "without accessLog in the main config, the provider logs to standard output"; else mg_fail "stdout: no line for $id"; fi
mg_finish
