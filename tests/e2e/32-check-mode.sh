#!/usr/bin/env bash
# 32-check-mode: meshgate -t. Exit 0 for a valid configuration and 1 for an
# invalid one, starting nothing; every problem (not only the first) printed as
# `path:line:col: Kind namespace/name: field.path: what` (main-file problems
# without Kind), on standard output as meshgate(8) says; decode errors
# (unknown field, range, type, duration, duplicate key, duplicate resource,
# unsupported apiVersion, unimplemented kind), link errors (gateway, host,
# subset, regex), YAML syntax errors, main-file errors; notices for skipped
# kinds and mesh-only VirtualServices; -v, a bad option (exit 2), and a start
# with an invalid configuration (exit 1, nothing served).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need timeout
GW_PORT=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 1
EOF

# check: run -t on $MG_CONFIG; sets ALL (stdout and stderr) and RC; the
# streams stay apart in $MG_DIR/t.out and t.err.
check() {
	timeout 20 "$MESHGATE" -c "$MG_CONFIG" -t >"$MG_DIR/t.out" 2>"$MG_DIR/t.err"
	RC=$?
	ALL=$(cat "$MG_DIR/t.out" "$MG_DIR/t.err")
	cat "$MG_DIR/t.out" "$MG_DIR/t.err" >>"$MG_DIR/validate-all.log" # scanned by mg_finish
}

# has_line ERE DESC: one line of the -t output matches ^ERE$.
has_line() {
	if grep -Eq -- "^$1\$" <<<"$ALL"; then
		mg_ok "$2"
	else
		mg_fail "$2: no line matching /^$1\$/ in:"
		printf '       | %s\n' "${ALL//$'\n'/$'\n'       | }"
	fi
}

P='(.*/)?resources/' # how the resource directory appears in paths

# --- valid ----------------------------------------------------------------------------------
mg_resource valid <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: $GW_PORT, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc
spec:
  hosts: [svc.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
spec:
  host: svc
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {regex: '/a/[0-9]+'}}]
    route: [{destination: {host: svc, subset: v1}}]
    timeout: 1.5s
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: not-istio
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: mesh-only
spec:
  hosts: [m.test]
  http:
  - directResponse: {status: 200}
EOF
t0=$(mg__now_ms)
check
assert_eq "$RC" 0 "valid configuration: exit 0" || mg_say "$ALL"
assert_cmp "$(($(mg__now_ms) - t0))" -lt 5000 "-t returns at once"
assert_match "$ALL" 'valid' "the last line says the configuration is valid"
has_line "${P}valid\.yaml:[0-9]+:[0-9]+: (notice|warning): .*Deployment.*" "a non-Istio kind is skipped with a notice"
has_line "${P}valid\.yaml:[0-9]+:[0-9]+: (notice|warning): .*mesh-only.*mesh.*" "a VirtualService without gateways: bound to mesh only"
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$GW_PORT/"
assert_eq "$?" 7 "-t started no listener"
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$MG_ADMIN_PORT/ready"
assert_eq "$?" 7 "-t started no admin endpoint"
rm -f "$MG_RESOURCES/valid.yaml"

# --- decode errors: all of them, each with its position --------------------------------------------
mg_resource decode <<'EOF'
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: 70000, name: http, protocol: HTTP}
    hosts: ["*"]
    bogus: 1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - directResponse: {status: 200}
    timeout: banana
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
spec:
  host: svc
  subsets: "notalist"
---
apiVersion: networking.istio.io/v2
kind: Gateway
metadata:
  name: g2
spec: {}
---
apiVersion: networking.istio.io/v1
kind: EnvoyFilter
metadata:
  name: ef
spec: {}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: [dup.test]
  gateways: [gw]
  http:
  - directResponse: {status: 200}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
spec:
  hosts: [a.internal]
  hosts: [b.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
EOF
check
assert_eq "$RC" 1 "invalid configuration: exit 1"
has_line "${P}decode\.yaml:9:5: Gateway default/gw: spec\.servers\[0\]\.bogus: .*bogus.*" "unknown field: position, kind, name, field path"
has_line "${P}decode\.yaml:7:20: Gateway default/gw: spec\.servers\[0\]\.port\.number: .*70000.*" "out of range port number"
has_line "${P}decode\.yaml:20:14: VirtualService default/vs: spec\.http\[0\]\.timeout: .*banana.*" "invalid duration"
has_line "${P}decode\.yaml:28:12: DestinationRule default/dr: spec\.subsets: .*" "wrong type (string for a list)"
has_line "${P}decode\.yaml:[0-9]+:[0-9]+: Gateway default/g2: apiVersion: .*networking\.istio\.io/v2.*" "unsupported apiVersion"
has_line "${P}decode\.yaml:[0-9]+:[0-9]+: EnvoyFilter default/ef: .*" "an Istio kind not implemented names the kind"
has_line "${P}decode\.yaml:4[0-9]:[0-9]+: VirtualService default/vs: .*duplicate.*" "duplicate resource name"
has_line "${P}decode\.yaml:58:3: .*duplicate.*hosts.*" "duplicate key with its position"
n=$(grep -Ec -- '^[^ ]+:[0-9]+:[0-9]+: ' <<<"$ALL")
assert_cmp "$n" -ge 8 "every problem reported, not only the first ($n lines)"
bad=$(grep -Ev -- '^[^ ]+:[0-9]+:[0-9]+: |configuration is (in)?valid' <<<"$ALL" | grep -c .)
assert_eq "$bad" 0 "every problem line starts with path:line:col"
if grep -q 'decode\.yaml:9:5: ' "$MG_DIR/t.out"; then
	mg_ok "problems are printed on standard output"
else
	mg_fail "problems are printed on standard output, as meshgate(8) says (they went to stderr)"
fi
rm -f "$MG_RESOURCES/decode.yaml"

# --- link errors -------------------------------------------------------------------------------------
mg_resource link <<'EOF'
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
spec:
  hosts: [svc.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw, missing-gw]
  http:
  - route:
    - destination: {host: nowhere}
  - route:
    - destination: {host: svc, subset: v9}
  - match:
    - uri: {regex: "(unclosed"}
    directResponse: {status: 200}
EOF
check
assert_eq "$RC" 1 "link errors: exit 1"
has_line "${P}link\.yaml:27:18: VirtualService default/vs: spec\.gateways\[1\]: .*missing-gw.*" "unknown gateway"
has_line "${P}link\.yaml:30:27: VirtualService default/vs: spec\.http\[0\]\.route\[0\]\.destination\.host: .*nowhere.*" "undeclared destination host"
has_line "${P}link\.yaml:32:40: VirtualService default/vs: spec\.http\[1\]\.route\[0\]\.destination\.subset: .*v9.*" "undeclared subset"
has_line "${P}link\.yaml:34:20: VirtualService default/vs: spec\.http\[2\]\.match\[0\]\.uri\.regex: .*" "regex that does not compile"
rm -f "$MG_RESOURCES/link.yaml"

# --- YAML syntax -------------------------------------------------------------------------------------
printf 'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: [oops\n' | mg_resource syntax
check
assert_eq "$RC" 1 "YAML syntax error: exit 1"
has_line "${P}syntax\.yaml:[0-9]+:[0-9]+: .+" "YAML syntax error with its position"
rm -f "$MG_RESOURCES/syntax.yaml"

# --- main file ---------------------------------------------------------------------------------------------
cp "$MG_CONFIG" "$MG_DIR/main.good"
printf 'bogus: 2\nlimits:\n  maxHeaders: 5\nextra:\n  - nothere.yaml\n' >>"$MG_CONFIG"
l_bogus=$(grep -n '^bogus:' "$MG_CONFIG" | cut -d: -f1)
l_max=$(grep -n 'maxHeaders: 5' "$MG_CONFIG" | cut -d: -f1)
check
assert_eq "$RC" 1 "main file errors: exit 1"
has_line "(.*/)?meshgate\.yaml:$l_bogus:1: bogus: .*" "main file: unknown key, no Kind part"
has_line "(.*/)?meshgate\.yaml:$l_max:15: limits\.maxHeaders: .*5.*" "main file: out of range"
cp "$MG_DIR/main.good" "$MG_CONFIG"
printf 'resources:\n  - resources\n  - nothere.yaml\n' >"$MG_DIR/res.yaml"
grep -v -e '^resources:' -e '^  - resources$' "$MG_CONFIG" >>"$MG_DIR/res.yaml"
cp "$MG_DIR/res.yaml" "$MG_CONFIG"
check
assert_eq "$RC" 1 "missing resource file: exit 1"
has_line "(.*/)?meshgate\.yaml:3:[0-9]+: resources\[1\]: .*nothere\.yaml.*" "missing resource file named with its position"
cp "$MG_DIR/main.good" "$MG_CONFIG"

timeout 20 "$MESHGATE" -c "$MG_DIR/does-not-exist.yaml" -t >/dev/null 2>&1
assert_eq "$?" 1 "missing main file: exit 1"

# --- other options --------------------------------------------------------------------------------------
out=$(timeout 20 "$MESHGATE" -v 2>&1)
rc=$?
assert_eq "$rc" 0 "-v: exit 0"
assert_match "$out" '^meshgate [0-9]+\.[0-9]+' "-v prints the version"
timeout 20 "$MESHGATE" -Z >/dev/null 2>&1
assert_eq "$?" 2 "unknown option: exit 2"

# --- starting with an invalid configuration: exit 1, nothing served ------------------------------------------
mg_resource startbad <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {number: $GW_PORT, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
    bogus: true
EOF
timeout 20 "$MESHGATE" -c "$MG_CONFIG" >"$MG_DIR/start.out" 2>"$MG_DIR/start.err"
assert_eq "$?" 1 "start with an invalid configuration: exit 1"
assert_match "$(cat "$MG_DIR/start.out" "$MG_DIR/start.err")" 'startbad\.yaml:10:5: ' "and says why, with the position"
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$GW_PORT/"
assert_eq "$?" 7 "nothing listens after the failed start"
cat "$MG_DIR/start.err" >>"$MG_DIR/validate-all.log"

mg_finish
