# shellcheck shell=bash
# tests/e2e/lib.sh: helpers sourced by every end-to-end test tests/e2e/NN-topic.sh.
#
# A test looks like this:
#
#   # shellcheck source=lib.sh
#   . "$(dirname "$0")/lib.sh"
#   mg_setup                          # temp dir, cleanup trap, $MG_PORT, $MG_ADMIN_PORT
#   mg_upstream a                     # python test upstream; sets $UP_A_PORT
#   mg_start_config <<EOF             # main config; admin, resources and accessLog
#   workers: 2                        #   are added when the text does not set them
#   EOF
#   mg_resource gw.yaml <<EOF         # Istio YAML into $MG_DIR/resources/
#   ...
#   EOF
#   mg_start                          # runs meshgate, waits for GET /ready == 200
#   assert_status GET /echo 200 -H 'Host: a.example'
#   assert_header x-upstream a
#   mg_finish                         # alive? stop (exit 0?) sanitizers? summary; exits
#
# Functions (each documented where it is defined):
#   set-up      mg_setup mg_port mg_need mg_skip mg_fatal mg_die mg_wait_until mg_say
#   upstreams   mg_upstream mg_upstream_h2 mg_upstream_stop mg_upstream_count
#               mg_rec_count mg_rec_get mg_rec_has mg_check_mirrored_bodies
#   meshgate    mg_start_config mg_resource mg_validate assert_valid
#               assert_invalid mg_start mg_reload assert_reload mg_stop mg_finish
#   resources   mg_yaml_gateway mg_yaml_gateway_head mg_yaml_server mg_yaml_service_port
#               mg_yaml_https_gateway mg_yaml_service
#               mg_yaml_service_head mg_yaml_endpoint mg_yaml_route_all
#               mg_yaml_routes mg_resource_simple
#   TLS         mg_pki
#   requests    mg_url mg_curl mg_raw mg_flood_refused mg_header mg_json
#   counting    mg_owner mg_owners mg_share mg_statuses
#   admin       mg_clusters mg_metric
#   assertions  assert_eq assert_ne assert_match assert_contains
#               assert_not_contains assert_cmp assert_status assert_header
#               assert_no_header assert_body_contains assert_log_contains
#               assert_log_not_contains assert_alive mg_ok mg_fail
#   data        mg_sha256 mg_make_file mg_bytes_sha256
#
# Exit status follows automake's simple test protocol: 0 pass, 1 fail, 77 skip,
# 99 hard error (the harness itself broke). A test never uses `set -e`:
# assertions count failures and go on; mg_finish turns the count into the status.
#
# Environment (all optional):
#   MESHGATE            the binary (default: $abs_top_builddir/meshgate, else the top
#                       of the tree that holds this file)
#   MG_TEST_UPSTREAM    the test upstream script (default ../upstream/ from here)
#   PYTHON              python 3 interpreter (default /usr/bin/python3, else python3)
#   TMPDIR              where the per-test directory is made (default /tmp)
#   MG_KEEP=1           keep the per-test directory even when the test passes
#   MG_VERBOSE=1        print passing checks too (failures are always printed)
#   MG_START_TIMEOUT    seconds mg_start waits for /ready (default 10)
#   MG_STOP_TIMEOUT     seconds mg_stop waits for the exit after SIGTERM (default 15)
#   MG_RELOAD_TIMEOUT   seconds mg_reload waits for the reload log line (default 10)
#   MG_CURL_TIMEOUT     --max-time of every curl (default 30)
#   MG_LOG_WAIT         seconds assert_log_contains keeps looking (default 3)
#   MG_RELOAD_DONE_RE   ERE (case-insensitive) of the log line that ends a reload
#   MG_RELOAD_FAIL_RE   ERE that marks that reload as refused (see mg_reload)

set -u

MG_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MG_TOP_SRCDIR=${abs_top_srcdir:-$(cd "$MG_LIBDIR/../.." && pwd)}
MG_UPSTREAM_PY=${MG_TEST_UPSTREAM:-"$MG_LIBDIR/../upstream/mg-test-upstream.py"}
# Debian's python3 first: it is what scripts/ installs, and a version manager's
# shim in PATH can cost a third of a second per call.
if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
if [ -z "${MESHGATE:-}" ]; then
	if [ -n "${abs_top_builddir:-}" ]; then
		MESHGATE="$abs_top_builddir/meshgate"
	else
		MESHGATE="$MG_TOP_SRCDIR/meshgate"
	fi
fi
MG_TEST_NAME=$(basename "$0" .sh)
MG_START_TIMEOUT=${MG_START_TIMEOUT:-10}
MG_STOP_TIMEOUT=${MG_STOP_TIMEOUT:-15}
MG_RELOAD_TIMEOUT=${MG_RELOAD_TIMEOUT:-10}
MG_CURL_TIMEOUT=${MG_CURL_TIMEOUT:-30}
MG_LOG_WAIT=${MG_LOG_WAIT:-3}
# The core ends every reload with "reload ok: config generation N live" or
# "reload failed: ...; generation N keeps serving" (src/control.c).
MG_RELOAD_DONE_RE=${MG_RELOAD_DONE_RE:-'reload (ok|failed)'}
MG_RELOAD_FAIL_RE=${MG_RELOAD_FAIL_RE:-'reload failed'}
MG_SANITIZER_RE='AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer|UndefinedBehaviorSanitizer|runtime error:'

MG_CHECKS=0
MG_FAILED=0
MG_PID=""
MG_PIDS=()
MG_FINISHED=0
MG_DIR=""

# ----------------------------------------------------------------------------
# reporting

mg_say() { printf '%s\n' "$*"; }

# mg_ok DESC / mg_fail DESC: count one check.
mg_ok() {
	MG_CHECKS=$((MG_CHECKS + 1))
	if [ "${MG_VERBOSE:-0}" = 1 ]; then mg_say "  ok   $*"; fi
	return 0
}

mg_fail() {
	MG_CHECKS=$((MG_CHECKS + 1))
	MG_FAILED=$((MG_FAILED + 1))
	mg_say "  FAIL $*"
	return 1
}

# mg_skip REASON: the test cannot run here (exit 77).
mg_skip() {
	mg_say "SKIP: $MG_TEST_NAME: $*"
	MG_FINISHED=1
	exit 77
}

# mg_fatal REASON: the harness itself is broken (exit 99).
mg_fatal() {
	mg_say "ERROR: $MG_TEST_NAME: $*"
	MG_FINISHED=1
	exit 99
}

# mg_die REASON: a failure after which the test cannot go on (exit 1).
mg_die() {
	mg_fail "$*"
	mg__dump_logs
	mg_say "FAIL: $MG_TEST_NAME: $MG_FAILED of $MG_CHECKS checks failed (gave up: $*)"
	MG_FINISHED=1
	MG_KEEP=1
	exit 1
}

# mg_need CMD...: skip the test unless every command exists.
mg_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || mg_skip "needs $c"
	done
}

# ----------------------------------------------------------------------------
# set-up and clean-up

mg_setup() {
	mg_need curl "$PYTHON"
	[ -f "$MG_UPSTREAM_PY" ] || mg_fatal "missing $MG_UPSTREAM_PY"
	MG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mg-$MG_TEST_NAME.XXXXXX") || mg_fatal "mktemp failed"
	trap mg__cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	MG_CONFIG="$MG_DIR/meshgate.yaml"
	MG_RESOURCES="$MG_DIR/resources"
	MG_LOG="$MG_DIR/meshgate.log"
	MG_OUT="$MG_DIR/meshgate.out"
	MG_ACCESS_LOG="$MG_DIR/access.log"
	MG_STATS="$MG_DIR/upstream-stats"
	MG_BODY="$MG_DIR/last.body"
	MG_HEADERS="$MG_DIR/last.headers"
	mkdir -p "$MG_RESOURCES"
	: >"$MG_STATS"
	: >"$MG_DIR/ports"
	MG_PORT=$(mg_port) || mg_fatal "no free port"
	MG_ADMIN_PORT=$(mg_port) || mg_fatal "no free port"
	export MG_DIR MG_PORT MG_ADMIN_PORT MG_RESOURCES MG_ACCESS_LOG
	mg_say "# $MG_TEST_NAME: dir $MG_DIR, listener $MG_PORT, admin $MG_ADMIN_PORT"
}

mg__track() { MG_PIDS+=("$1"); }

# True while PID exists and is not a zombie.
mg__alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$state" != Z ]
}

mg__cleanup() {
	local rc=$? pid any
	trap - EXIT
	if [ "$MG_FINISHED" != 1 ] && [ "$rc" = 0 ]; then
		mg_say "ERROR: $MG_TEST_NAME ended without mg_finish"
		rc=99
	fi
	for pid in "${MG_PIDS[@]}"; do
		mg__alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for _ in $(seq 1 40); do
		any=0
		for pid in "${MG_PIDS[@]}"; do
			mg__alive "$pid" && any=1
		done
		[ "$any" = 0 ] && break
		sleep 0.05
	done
	for pid in "${MG_PIDS[@]}"; do
		mg__alive "$pid" && kill -KILL "$pid" 2>/dev/null
	done
	if [ -n "$MG_DIR" ] && [ -d "$MG_DIR" ]; then
		if [ "$rc" = 0 ] && [ "${MG_KEEP:-0}" != 1 ]; then
			rm -rf "$MG_DIR"
		elif [ "$rc" != 77 ]; then
			mg_say "# kept $MG_DIR"
		fi
	fi
	exit "$rc"
}

# mg_port: print a free TCP port on 127.0.0.1, outside the ephemeral range
# (so it cannot collide with meshgate's own outgoing connections), and never
# the same twice in one test.
mg_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		grep -qx "$p" "$MG_DIR/ports" 2>/dev/null && continue
		if "$PYTHON" -c 'import socket,sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$p" 2>/dev/null; then
			echo "$p" >>"$MG_DIR/ports"
			echo "$p"
			return 0
		fi
	done
	return 1
}

mg__now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# mg_wait_until SECONDS CMD...: run CMD every 50 ms until it succeeds; false on timeout.
mg_wait_until() {
	local limit=$1 deadline
	shift
	deadline=$(($(mg__now_ms) + ${limit%.*} * 1000))
	until "$@"; do
		[ "$(mg__now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# ----------------------------------------------------------------------------
# test upstreams

mg__varname() { local v=${1^^}; echo "${v//[^A-Z0-9]/_}"; }

# mg_upstream NAME [mg-test-upstream.py options...]
# Start a test upstream on a free port; set UP_<NAME>_PORT and UP_<NAME>_PID
# (NAME upper-cased, other characters than A-Z0-9 turned into _). Every
# upstream appends its requests to $MG_STATS (see mg_upstream_count).
mg_upstream() { mg__upstream_run "$MG_UPSTREAM_PY" "$@"; }

# mg_upstream_h2 NAME [mg-h2-upstream.py options...]: the same with the HTTP/2
# test upstream (its $MG_STATS lines: "NAME conn C" and "NAME stream C S TARGET").
mg_upstream_h2() { mg__upstream_run "$MG_LIBDIR/../upstream/mg-h2-upstream.py" "$@"; }

mg__upstream_run() {
	local script=$1 name=$2 var out log pid port
	shift 2
	var=$(mg__varname "$name")
	out="$MG_DIR/upstream-$name.out"
	log="$MG_DIR/upstream-$name.log"
	"$PYTHON" "$script" --listen 127.0.0.1:0 --name "$name" \
		--stats-file "$MG_STATS" "$@" >"$out" 2>"$log" &
	pid=$!
	mg__track "$pid"
	port=""
	for _ in $(seq 1 200); do
		port=$(sed -n 's/^LISTENING \([0-9][0-9]*\)$/\1/p' "$out" 2>/dev/null)
		[ -n "$port" ] && break
		mg__alive "$pid" || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		cat "$log"
		mg_fatal "upstream $name did not start"
	fi
	printf -v "UP_${var}_PORT" '%s' "$port"
	printf -v "UP_${var}_PID" '%s' "$pid"
	export "UP_${var}_PORT" "UP_${var}_PID"
}

# mg_upstream_stop NAME: stop an upstream (to test "upstream down").
mg_upstream_stop() {
	local var pidvar
	var=$(mg__varname "$1")
	pidvar="UP_${var}_PID"
	kill -TERM "${!pidvar}" 2>/dev/null
	mg_wait_until 5 mg__dead "${!pidvar}"
}

mg__dead() { ! mg__alive "$1"; }

# mg_upstream_count NAME [ERE]: how many requests reached upstream NAME
# (whose request target matches ERE, when given).
mg_upstream_count() {
	local re=${2:-}
	awk -v n="$1" -v re="$re" '$1 == n && (re == "" || $5 ~ re) { c++ } END { print c + 0 }' "$MG_STATS"
}

# Record files (an upstream's --record-file: one JSON object per request, with "name" and
# "target"):
# mg_rec_count FILE NAME ERE: records of upstream NAME whose target matches ERE.
mg_rec_count() {
	"$PYTHON" - "$1" "$2" "$3" <<'EOF'
import json, re, sys
n = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["name"] == sys.argv[2] and re.search(sys.argv[3], d["target"]):
        n += 1
print(n)
EOF
}

# mg_rec_get FILE NAME TARGET FIELD: FIELD of the last record of NAME for exactly TARGET.
mg_rec_get() {
	"$PYTHON" - "$1" "$2" "$3" "$4" <<'EOF'
import json, sys
v = ""
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["name"] == sys.argv[2] and d["target"] == sys.argv[3]:
        v = d.get(sys.argv[4])
print("" if v is None else v)
EOF
}

# mg_rec_has FILE NAME ERE [N]: at least N (1) records of NAME whose target matches ERE.
mg_rec_has() { [ "$(mg_rec_count "$1" "$2" "$3")" -ge "${4:-1}" ]; }

# mg_check_mirrored_bodies FILE NAME PREFIX BODY: POSTs BODY to /m/sha256/cl and, chunked, to
# /m/sha256/chunked (Host a.example), checks the main upstream's sha256 of each, and that the
# mirror upstream NAME recorded in FILE got both copies at PREFIX/sha256/{cl,chunked} whole.
mg_check_mirrored_bodies() {
	local rec=$1 name=$2 prefix=$3 body=$4 sum
	sum=$(mg_sha256 "$body")
	assert_status POST /m/sha256/cl 200 -H 'Host: a.example' --data-binary "@$body"
	assert_eq "$(mg_json body_sha256)" "$sum" "main upstream got the whole Content-Length body"
	mg_wait_until 5 mg_rec_has "$rec" "$name" "^$prefix/sha256/cl\$" ||
		mg_fail "the mirror did not receive the POST"
	assert_eq "$(mg_rec_get "$rec" "$name" "$prefix/sha256/cl" method)" POST "mirror: method POST"
	assert_eq "$(mg_rec_get "$rec" "$name" "$prefix/sha256/cl" body_len)" "$(wc -c <"$body")" \
		"mirror: body length"
	assert_eq "$(mg_rec_get "$rec" "$name" "$prefix/sha256/cl" body_sha256)" "$sum" \
		"mirror: same body (sha256)"
	assert_status POST /m/sha256/chunked 200 -H 'Host: a.example' -H 'Transfer-Encoding: chunked' \
		--data-binary "@$body"
	assert_eq "$(mg_json body_sha256)" "$sum" "main upstream got the whole chunked body"
	mg_wait_until 5 mg_rec_has "$rec" "$name" "^$prefix/sha256/chunked\$" ||
		mg_fail "the mirror did not receive the chunked POST"
	assert_eq "$(mg_rec_get "$rec" "$name" "$prefix/sha256/chunked" body_sha256)" "$sum" \
		"mirror: same chunked body (sha256)"
}

# ----------------------------------------------------------------------------
# TLS

# mg_pki: a fresh throwaway PKI in $MG_DIR/pki (tests/unit/tls-fixtures.sh lists
# its files); sets PKI. Skips the test without openssl.
mg_pki() {
	mg_need openssl
	PKI="$MG_DIR/pki"
	bash "$MG_LIBDIR/../unit/tls-fixtures.sh" "$PKI" >"$MG_DIR/pki.log" 2>&1 ||
		mg_fatal "tls-fixtures.sh failed (see $MG_DIR/pki.log)"
}

# ----------------------------------------------------------------------------
# meshgate configuration and process

# mg_start_config: write the main config from stdin to $MG_CONFIG. Top-level
# keys the text does not set are added: admin (127.0.0.1:$MG_ADMIN_PORT),
# resources ([resources], i.e. $MG_RESOURCES), accessLog ($MG_ACCESS_LOG, text)
# and, when running as root, user (root).
mg_start_config() {
	if [ -t 0 ]; then : >"$MG_CONFIG"; else cat >"$MG_CONFIG"; fi
	grep -q '^admin:' "$MG_CONFIG" ||
		printf 'admin:\n  address: "127.0.0.1:%s"\n' "$MG_ADMIN_PORT" >>"$MG_CONFIG"
	grep -q '^resources:' "$MG_CONFIG" ||
		printf 'resources:\n  - resources\n' >>"$MG_CONFIG"
	grep -q '^accessLog:' "$MG_CONFIG" ||
		printf 'accessLog:\n  path: "%s"\n  format: text\n' "$MG_ACCESS_LOG" >>"$MG_CONFIG"
	# As root, meshgate would switch to the user "meshgate" where it exists,
	# and could then not read this test's private directory on reload.
	if [ "$(id -u)" = 0 ] && ! grep -q '^user:' "$MG_CONFIG"; then
		printf 'user: root\n' >>"$MG_CONFIG"
	fi
	return 0
}

# mg_resource NAME: write stdin to $MG_RESOURCES/NAME (".yaml" added when
# NAME has no extension). Use it before mg_start, or before mg_reload.
# Building blocks for the common resource set, printed on stdout (pipe into mg_resource):
#   mg_yaml_gateway            Gateway "gw": HTTP on 127.0.0.1:$MG_PORT for every host
#   mg_yaml_gateway_head [NAME]
#                              Gateway NAME (default gw); the text ends inside spec.servers:
#                              server items follow
#   mg_yaml_server PORTNAME PROTOCOL HOSTS [TLS [PORT]]
#                              one such item on 127.0.0.1:PORT (default $MG_PORT): HOSTS a
#                              YAML list, TLS a flow map
#   mg_yaml_https_gateway [HOSTS TLS]...
#                              Gateway "gw": one HTTPS server on 127.0.0.1:$MG_PORT per
#                              pair (HOSTS a YAML list, TLS a flow map); without pairs
#                              a.example.com with mg_pki's a.crt (SIMPLE). The text ends
#                              inside spec.servers: more server items may follow.
#   mg_yaml_service NAME PORT  ServiceEntry NAME.default.svc.cluster.local:80 -> 127.0.0.1:PORT
#   mg_yaml_service_head NAME HOSTS
#                              ServiceEntry NAME for HOSTS (a YAML list), port 80 http,
#                              STATIC; the text ends at "endpoints:", items follow
#   mg_yaml_endpoint PORT [KEY VALUE]...
#                              one such item: 127.0.0.1:PORT plus KEY: VALUE lines
#                              (locality, labels, weight)
#   mg_yaml_route_all NAME     VirtualService NAME: every host on gw, one route "to-NAME"
#   mg_yaml_routes [NAME]      VirtualService NAME (default routes) for every host on gw;
#                              the text ends at "http:", route items follow
#   mg_resource_simple NAME    all three, for the upstream started by `mg_upstream NAME`
# shellcheck disable=SC2120 # NAME is optional
mg_yaml_gateway_head() {
	cat <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ${1:-gw}
spec:
  servers:
EOF
}

mg_yaml_server() {
	printf '  - port: {number: %s, name: %s, protocol: %s}\n    bind: 127.0.0.1\n    hosts: %s\n' \
		"${5:-$MG_PORT}" "$1" "$2" "$3"
	if [ -n "${4:-}" ]; then printf '    tls: %s\n' "$4"; fi
}

mg_yaml_gateway() {
	mg_yaml_gateway_head
	mg_yaml_server http HTTP '["*"]'
}

mg_yaml_https_gateway() {
	local i=0
	if [ $# = 0 ]; then
		set -- '[a.example.com]' "{mode: SIMPLE, serverCertificate: $PKI/a.crt, privateKey: $PKI/a.key}"
	fi
	mg_yaml_gateway_head
	while [ $# -ge 2 ]; do
		i=$((i + 1))
		mg_yaml_server "https-$i" HTTPS "$1" "$2"
		shift 2
	done
}

# mg_yaml_service_port NAME PORT PROTOCOL: a ServiceEntry for host NAME (in
# default.svc.cluster.local) whose one port speaks PROTOCOL, on 127.0.0.1:PORT.
mg_yaml_service_port() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: [$1.default.svc.cluster.local]
  ports: [{number: 80, name: p, protocol: $3}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $2}}]
EOF
}

mg_yaml_service() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: $1
spec:
  hosts: [$1.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $2}
EOF
}

mg_yaml_service_head() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: $2
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
EOF
}

mg_yaml_endpoint() {
	printf '  - address: 127.0.0.1\n    ports: {http: %s}\n' "$1"
	shift
	while [ $# -ge 2 ]; do
		printf '    %s: %s\n' "$1" "$2"
		shift 2
	done
}

# shellcheck disable=SC2120 # NAME is optional
mg_yaml_routes() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${1:-routes}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
EOF
}

mg_yaml_route_all() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: $1
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: to-$1
    route: [{destination: {host: $1}}]
EOF
}

mg_resource_simple() {
	local port_var
	port_var="UP_$(mg__varname "$1")_PORT"
	{
		mg_yaml_gateway
		mg_yaml_service "$1" "${!port_var}"
		mg_yaml_route_all "$1"
	} | mg_resource all
}

mg_resource() {
	local f=$1
	case $f in *.yaml | *.yml) ;; *) f="$f.yaml" ;; esac
	cat >"$MG_RESOURCES/$f"
}

mg__need_meshgate() {
	[ -x "$MESHGATE" ] && return 0
	# Under make check the binary must be there; by hand, skip.
	if [ -n "${abs_top_builddir:-}" ]; then
		mg_fatal "$MESHGATE is not an executable"
	fi
	mg_skip "$MESHGATE not built (set MESHGATE=...)"
}

# mg_validate [CONFIG]: run meshgate -t; sets MG_VALIDATE_OUT (stdout and
# stderr) and MG_VALIDATE_RC, and returns that exit status.
# shellcheck disable=SC2120 # CONFIG is optional
mg_validate() {
	local cfg=${1:-$MG_CONFIG} out
	mg__need_meshgate
	out="$MG_DIR/validate-$((MG_CHECKS)).$RANDOM.log"
	"$MESHGATE" -c "$cfg" -t >"$out" 2>&1
	MG_VALIDATE_RC=$?
	# shellcheck disable=SC2034 # for the tests
	MG_VALIDATE_OUT=$(cat "$out")
	return "$MG_VALIDATE_RC"
}

# assert_valid [DESC] [CONFIG]: meshgate -t accepts the configuration (its output is
# shown when it does not).
# shellcheck disable=SC2120 # both are optional
assert_valid() {
	mg_validate "${2:-$MG_CONFIG}"
	assert_eq "$MG_VALIDATE_RC" 0 "${1:-configuration is valid}" || mg_say "$MG_VALIDATE_OUT"
}

# assert_invalid NEEDLE [DESC] [CONFIG]: meshgate -t refuses the configuration (exit 1)
# and its output contains NEEDLE.
assert_invalid() {
	mg_validate "${3:-$MG_CONFIG}"
	assert_eq "$MG_VALIDATE_RC" 1 "${2:-configuration is refused}"
	assert_contains "$MG_VALIDATE_OUT" "$1" "${2:+"$2: "}-t says: $1"
}

mg__ready() {
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		"http://127.0.0.1:$MG_ADMIN_PORT/ready" 2>/dev/null)" = 200 ]
}

# mg_start [extra meshgate options]: start meshgate -c $MG_CONFIG in the
# background (stderr to $MG_LOG, stdout to $MG_OUT) and wait until
# GET http://127.0.0.1:$MG_ADMIN_PORT/ready answers 200.
# shellcheck disable=SC2120 # options are optional
mg_start() {
	local deadline
	mg__need_meshgate
	[ -f "$MG_CONFIG" ] || mg_start_config </dev/null
	"$MESHGATE" -c "$MG_CONFIG" "$@" >>"$MG_OUT" 2>>"$MG_LOG" &
	MG_PID=$!
	mg__track "$MG_PID"
	deadline=$(($(mg__now_ms) + MG_START_TIMEOUT * 1000))
	until mg__ready; do
		if ! mg__alive "$MG_PID"; then
			wait "$MG_PID"
			mg_die "meshgate exited with status $? before it was ready"
		fi
		[ "$(mg__now_ms)" -ge "$deadline" ] &&
			mg_die "meshgate not ready after ${MG_START_TIMEOUT}s"
		sleep 0.05
	done
	mg_ok "meshgate started (pid $MG_PID)"
}

# mg_reload [DONE_ERE]: SIGHUP, then wait for a new log line matching
# MG_RELOAD_DONE_RE (or DONE_ERE). Sets MG_RELOAD_LINES (the log lines
# written since the signal) and MG_RELOAD_RESULT: "refused" when they match
# MG_RELOAD_FAIL_RE, "applied" otherwise, "timeout" when no line came.
# Returns 0 unless it timed out.
# shellcheck disable=SC2120 # DONE_ERE is optional
mg_reload() {
	local re=${1:-$MG_RELOAD_DONE_RE} before deadline
	[ -n "$MG_PID" ] || mg_fatal "mg_reload before mg_start"
	before=$(wc -c <"$MG_LOG")
	kill -HUP "$MG_PID"
	deadline=$(($(mg__now_ms) + MG_RELOAD_TIMEOUT * 1000))
	while :; do
		MG_RELOAD_LINES=$(tail -c "+$((before + 1))" "$MG_LOG")
		if grep -Eqi -- "$re" <<<"$MG_RELOAD_LINES"; then
			if grep -Eqi -- "$MG_RELOAD_FAIL_RE" <<<"$MG_RELOAD_LINES"; then
				MG_RELOAD_RESULT=refused
			else
				MG_RELOAD_RESULT=applied
			fi
			return 0
		fi
		if [ "$(mg__now_ms)" -ge "$deadline" ]; then
			MG_RELOAD_RESULT=timeout
			return 1
		fi
		mg__alive "$MG_PID" || mg_die "meshgate died during reload"
		sleep 0.05
	done
}

# assert_reload applied|refused: mg_reload, then check its result and that
# meshgate is still ready.
assert_reload() {
	mg_reload
	assert_eq "$MG_RELOAD_RESULT" "$1" "reload $1" || mg_say "       log: $MG_RELOAD_LINES"
	if mg__ready; then mg_ok "ready after reload"; else mg_fail "not ready after reload"; fi
}

# mg_stop: SIGTERM, wait up to MG_STOP_TIMEOUT, check exit status 0.
mg_stop() {
	local rc deadline
	[ -n "$MG_PID" ] || return 0
	kill -TERM "$MG_PID" 2>/dev/null
	deadline=$(($(mg__now_ms) + MG_STOP_TIMEOUT * 1000))
	while mg__alive "$MG_PID"; do
		if [ "$(mg__now_ms)" -ge "$deadline" ]; then
			kill -KILL "$MG_PID" 2>/dev/null
			mg_fail "meshgate did not exit within ${MG_STOP_TIMEOUT}s of SIGTERM"
			break
		fi
		sleep 0.05
	done
	wait "$MG_PID"
	rc=$?
	MG_PID=""
	assert_eq "$rc" 0 "meshgate exit status after SIGTERM"
}

# ----------------------------------------------------------------------------
# assertions: each counts one check, prints on failure, returns 0/1.

# assert_eq ACTUAL EXPECTED [DESC]
assert_eq() {
	if [ "$1" = "$2" ]; then
		mg_ok "${3:-"'$1' = '$2'"}"
	else
		mg_fail "${3:-equality}: got '$1', expected '$2'"
	fi
}

# assert_ne ACTUAL UNEXPECTED [DESC]
assert_ne() {
	if [ "$1" != "$2" ]; then
		mg_ok "${3:-"'$1' != '$2'"}"
	else
		mg_fail "${3:-inequality}: got '$1'"
	fi
}

# assert_match ACTUAL ERE [DESC]
assert_match() {
	if [[ $1 =~ $2 ]]; then
		mg_ok "${3:-"matches $2"}"
	else
		mg_fail "${3:-match}: '$1' does not match /$2/"
	fi
}

# assert_contains HAYSTACK NEEDLE [DESC]: fixed-string containment.
assert_contains() {
	if [[ $1 == *"$2"* ]]; then
		mg_ok "${3:-"contains '$2'"}"
	else
		mg_fail "${3:-contains}: '$2' not found in: $(printf '%s' "$1" | head -c 400)"
	fi
}

# assert_not_contains HAYSTACK NEEDLE [DESC]
assert_not_contains() {
	if [[ $1 != *"$2"* ]]; then
		mg_ok "${3:-"does not contain '$2'"}"
	else
		mg_fail "${3:-does not contain}: '$2' found"
	fi
}

# assert_cmp N OP M [DESC]: integer comparison, OP one of -eq -ne -lt -le -gt -ge.
assert_cmp() {
	local a=$1 op=$2 b=$3
	case $op in -eq | -ne | -lt | -le | -gt | -ge) ;; *) mg_fatal "assert_cmp: bad operator $op" ;; esac
	if test "$a" "$op" "$b"; then
		mg_ok "${4:-"$1 $2 $3"}"
	else
		mg_fail "${4:-comparison}: $1 $2 $3 is false"
	fi
}

# mg_url PATH: http://127.0.0.1:$MG_PORT PATH (a full URL is left alone).
mg_url() {
	case $1 in /*) echo "http://127.0.0.1:$MG_PORT$1" ;; *) echo "$1" ;; esac
}

# mg_curl CURL-ARGS...: curl with the harness defaults (silent, errors shown,
# --max-time MG_CURL_TIMEOUT). A URL given as /path goes to $MG_PORT.
mg_curl() {
	local a args=()
	for a in "$@"; do
		case $a in /*) args+=("$(mg_url "$a")") ;; *) args+=("$a") ;; esac
	done
	curl -sS --max-time "$MG_CURL_TIMEOUT" "${args[@]}"
}

# assert_status METHOD URL EXPECTED [CURL-ARGS...]
# One request; URL may be /path (then it goes to meshgate's $MG_PORT). The
# response body lands in $MG_BODY, its head in $MG_HEADERS, the status in
# MG_STATUS and curl's exit code in MG_CURL_RC (for mg_header, mg_json...).
assert_status() {
	local method=$1 url expected=$3 method_args=()
	url=$(mg_url "$2")
	shift 3
	case $method in
	GET) ;;
	HEAD) method_args=(-I) ;;
	*) method_args=(-X "$method") ;;
	esac
	MG_STATUS=$(curl -s -o "$MG_BODY" -D "$MG_HEADERS" -w '%{http_code}' \
		--max-time "$MG_CURL_TIMEOUT" "${method_args[@]}" "$@" "$url" 2>"$MG_DIR/last.curlerr")
	# shellcheck disable=SC2034 # for the tests
	MG_CURL_RC=$?
	assert_eq "$MG_STATUS" "$expected" "$method $url ${*:+($*) }-> $expected"
}

# mg_header NAME [FILE]: value of the first NAME header of the last response
# (or of FILE, a curl -D dump); empty when absent.
mg_header() {
	awk -v n="${1,,}" 'BEGIN { FS = ":" }
		{ sub(/\r$/, "") }
		tolower($1) == n { v = substr($0, length($1) + 2); sub(/^[ \t]+/, "", v); print v; exit }' \
		"${2:-$MG_HEADERS}"
}

# assert_header NAME EXPECTED [DESC]: header of the last response.
assert_header() {
	assert_eq "$(mg_header "$1")" "$2" "${3:-"header $1: $2"}"
}

# assert_no_header NAME [DESC]
assert_no_header() {
	if grep -qi "^$1:" "$MG_HEADERS"; then
		mg_fail "${2:-"no header $1"}: present: $(mg_header "$1")"
	else
		mg_ok "${2:-"no header $1"}"
	fi
}

# assert_body_contains NEEDLE [DESC]: body of the last response.
assert_body_contains() {
	assert_contains "$(cat "$MG_BODY")" "$1" "${2:-"body contains '$1'"}"
}

# mg_json PATH [FILE]: a value from a JSON document (default: the last
# body), PATH like headers.x-forwarded-for or body_len. Lists print joined by
# ", ", missing keys print nothing.
mg_json() {
	"$PYTHON" - "$1" "${2:-$MG_BODY}" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    sys.exit(0)
for k in sys.argv[1].split("."):
    if isinstance(v, dict) and k in v:
        v = v[k]
    else:
        sys.exit(0)
if isinstance(v, list):
    v = ", ".join(str(x) for x in v)
elif isinstance(v, bool):
    v = str(v).lower()
print(v)
EOF
}

# ----------------------------------------------------------------------------
# counting answers (the test upstream names itself in x-upstream)

# mg_owner PATH [CURL-ARGS...]: the x-upstream of one answer (empty when none).
mg_owner() {
	local path=$1
	shift
	curl -s -o /dev/null -D - --max-time "$MG_CURL_TIMEOUT" "$@" "$(mg_url "$path")" |
		tr -d '\r' | awk -F': ' 'tolower($1) == "x-upstream" { print $2; exit }'
}

# mg__urls N PATH OPTS...: curl arguments for N requests of PATH, each with
# OPTS and its own ?i=K (or &i=K), so one curl sends them on one connection.
mg__urls() {
	local n=$1 path=$2 i sep='?'
	shift 2
	case $path in *'?'*) sep='&' ;; esac
	for i in $(seq 1 "$n"); do printf '%s\n' "$@" "$(mg_url "$path${sep}i=$i")"; done
}

# mg_owners N PATH [CURL-ARGS...]: N requests on one connection; who answered,
# as "NAME=COUNT ..." sorted by name (requests without x-upstream are left out).
mg_owners() {
	local n=$1 path=$2 args
	shift 2
	mapfile -t args < <(mg__urls "$n" "$path" -D - -o /dev/null)
	curl -s --max-time "$MG_CURL_TIMEOUT" "$@" "${args[@]}" | tr -d '\r' |
		awk -F': ' 'tolower($1) == "x-upstream" { print $2 }' |
		sort | uniq -c | awk '{ print $2 "=" $1 }' | paste -sd' '
}

# mg_share NAME OWNERS: NAME's count in an mg_owners line (0 when absent).
mg_share() {
	tr ' ' '\n' <<<"$2" | awk -F= -v n="$1" '$1 == n { c = $2 } END { print c + 0 }'
}

# mg_statuses N PATH [CURL-ARGS...]: N requests on one connection; their
# status codes, one a line, in order.
mg_statuses() {
	local n=$1 path=$2 args
	shift 2
	mapfile -t args < <(mg__urls "$n" "$path" -o /dev/null)
	curl -s -w '%{http_code}\n' --max-time "$MG_CURL_TIMEOUT" "$@" "${args[@]}"
}

# ----------------------------------------------------------------------------
# admin endpoint

# mg_clusters: the admin /clusters text.
mg_clusters() { curl -s --max-time "$MG_CURL_TIMEOUT" "http://127.0.0.1:$MG_ADMIN_PORT/clusters"; }

# mg_metric NAME: the value of the unlabelled metric meshgate_NAME (empty when absent).
mg_metric() {
	curl -s --max-time "$MG_CURL_TIMEOUT" "http://127.0.0.1:$MG_ADMIN_PORT/metrics" |
		awk -v n="meshgate_$1" '$1 == n { print $2 }'
}

# assert_log_contains ERE [FILE]: the meshgate log (or FILE, e.g.
# $MG_ACCESS_LOG) has a matching line within MG_LOG_WAIT seconds.
assert_log_contains() {
	local f=${2:-$MG_LOG}
	if mg_wait_until "$MG_LOG_WAIT" grep -Eq -- "$1" "$f"; then
		mg_ok "$(basename "$f") has /$1/"
	else
		mg_fail "$(basename "$f") has no line matching /$1/"
		tail -n 5 "$f" 2>/dev/null | sed 's/^/       | /'
		return 1
	fi
}

# assert_log_not_contains ERE [FILE]
assert_log_not_contains() {
	local f=${2:-$MG_LOG}
	if grep -Eq -- "$1" "$f" 2>/dev/null; then
		mg_fail "$(basename "$f") has a line matching /$1/: $(grep -Em1 -- "$1" "$f")"
	else
		mg_ok "$(basename "$f") has no /$1/"
	fi
}

# assert_alive [DESC]: meshgate is still running.
# shellcheck disable=SC2120 # DESC is optional
assert_alive() {
	if [ -n "$MG_PID" ] && mg__alive "$MG_PID"; then
		mg_ok "${1:-meshgate alive}"
	else
		mg_fail "${1:-meshgate alive}: it is not running"
	fi
}

# ----------------------------------------------------------------------------
# data helpers

# mg_sha256 FILE: hex sha256 of FILE.
mg_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# mg_make_file PATH SIZE [SEED]: SIZE (e.g. 50M) deterministic bytes, the same
# stream /bytes/SIZE?seed=SEED serves.
mg_make_file() { "$PYTHON" "$MG_UPSTREAM_PY" --write-bytes "$2" "${3:-0}" >"$1"; }

# mg_bytes_sha256 SIZE [SEED]: expected sha256 of /bytes/SIZE?seed=SEED.
mg_bytes_sha256() { "$PYTHON" "$MG_UPSTREAM_PY" --print-sha256 "$1" "${2:-0}"; }

# mg_flood_refused PORT [CAFILE SNI]: on a fresh connection (TLS when CAFILE is given), a
# head meshgate refuses (Content-Length with Transfer-Encoding) with 4 MiB behind it, sent
# at once; then read to the end.  Prints "sent" or "send failed (why)", the first response
# line, and "EOF" or "read failed (why)": what a lingering close decides.
mg_flood_refused() {
	"$PYTHON" - "$@" <<'EOF'
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
if len(sys.argv) > 2:
    s = ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(
        s, server_hostname=sys.argv[3])
try:
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + b"x" * (4 << 20))
    sent = "sent"
except OSError as e:
    sent = "send failed (%s)" % e
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    end = "EOF"
except OSError as e:
    end = "read failed (%s)" % e
print(sent, out.split(b"\r\n")[0].decode("latin-1"), end)
EOF
}

# mg_raw [-s] [-t SECONDS] PORT: send stdin to 127.0.0.1:PORT as is and print
# everything received until the peer closes or stays silent for SECONDS
# (default 2). -s half-closes after sending. For malformed requests,
# pipelining and exact framing checks.
mg_raw() {
	local shut=0 idle=2
	while [ $# -gt 1 ]; do
		case $1 in
		-s) shut=1 ;;
		-t) idle=$2; shift ;;
		*) break ;;
		esac
		shift
	done
	"$PYTHON" -c '
import socket, sys
port, shut, idle = int(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3])
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(data)
if shut:
    s.shutdown(socket.SHUT_WR)
s.settimeout(idle)
out = sys.stdout.buffer
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out.write(b)
except (socket.timeout, ConnectionResetError):
    pass
out.flush()' "$1" "$shut" "$idle"
}

# ----------------------------------------------------------------------------
# the end

mg__dump_logs() {
	local f
	for f in "$MG_DIR"/meshgate.log "$MG_DIR"/upstream-*.log; do
		[ -s "$f" ] || continue
		mg_say "# --- last lines of $(basename "$f")"
		tail -n 30 "$f" | sed 's/^/# /'
	done
}

# mg_finish: check that meshgate (when started) is still alive, stop it and
# check its exit status, look for sanitizer reports, print the summary and
# exit 0 (all checks passed) or 1.
mg_finish() {
	local f hits
	if [ -n "$MG_PID" ]; then
		if mg__alive "$MG_PID"; then
			mg_ok "meshgate alive at the end"
			mg_stop
		else
			wait "$MG_PID"
			mg_fail "meshgate died during the test (exit status $?)"
			MG_PID=""
		fi
	fi
	for f in "$MG_DIR"/meshgate.log "$MG_DIR"/validate-*.log; do
		[ -f "$f" ] || continue
		hits=$(grep -E -m 5 -- "$MG_SANITIZER_RE" "$f")
		if [ -n "$hits" ]; then
			mg_fail "sanitizer report in $(basename "$f"):"
			printf '%s\n' "$hits" | sed 's/^/       | /'
		fi
	done
	for f in "$MG_DIR"/upstream-*.log; do
		[ -f "$f" ] || continue
		if grep -q Traceback "$f"; then
			mg_say "# warning: python traceback in $(basename "$f")"
		fi
	done
	MG_FINISHED=1
	if [ "$MG_FAILED" = 0 ]; then
		mg_say "PASS: $MG_TEST_NAME: $MG_CHECKS checks"
		exit 0
	fi
	mg__dump_logs
	mg_say "FAIL: $MG_TEST_NAME: $MG_FAILED of $MG_CHECKS checks failed"
	exit 1
}
