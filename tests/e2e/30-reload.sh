#!/usr/bin/env bash
# 30-reload: SIGHUP. Applied: new routes and endpoints are served, removed
# ones are gone, an in-flight request finishes, a kept-alive connection
# survives and sees the new routes, listeners appear and disappear. Refused
# (YAML syntax, semantic error, bad main file): the error is logged with its
# position, the old generation keeps serving, the process lives. Under load,
# with valid and invalid reloads mixed in, no request fails.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
mg_upstream b
P2=$(mg_port) || mg_fatal "no free port"

mg_start_config <<EOF
workers: 2
EOF

# gateway [EXTRA-PORT]: the Gateway, optionally with a second server.
gateway() {
	cat <<EOF
$(mg_yaml_gateway)
EOF
	if [ -n "${1:-}" ]; then
		cat <<EOF
  - port: {number: $1, name: http-extra, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
EOF
	fi
}

# backend PORT: the ServiceEntry "backend" pointing at PORT.
backend() {
	cat <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend
spec:
  hosts: [backend.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $1}
EOF
}

# routes NAME...: the VirtualService: a directResponse route per NAME
# (/NAME answers NAME), the rest to backend.
routes() {
	cat <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
EOF
	local n
	for n in "$@"; do
		printf '  - name: %s\n    match: [{uri: {exact: /%s}}]\n    directResponse: {status: 200, body: {string: "%s"}}\n' \
			"$n" "$n" "$n"
	done
	cat <<EOF
  - name: rest
    route: [{destination: {host: backend}}]
EOF
}

gateway | mg_resource 10-gateway
backend "$UP_A_PORT" | mg_resource 20-backend
routes one | mg_resource 30-vs
mg_start

generation() { curl -s "http://127.0.0.1:$MG_ADMIN_PORT/ready" | grep -o '[0-9][0-9]*' | tail -1; }

assert_status GET /one 200
assert_status GET /two 200
assert_header x-upstream a "before the reload /two goes to the backend"
g1=$(generation)
assert_match "$g1" '^[0-9]+$' "/ready names the generation ($g1)"

# --- applied: a kept-alive connection and an in-flight request span the reload ---------------
# ka_client PORT TAG PATH1 PATH2 (in the background): one kept-alive connection to PORT
# GETs PATH1, creates $MG_DIR/TAG.ready, waits for $MG_DIR/TAG.go, then GETs PATH2; prints
# "before: STATUS-LINE BODY" and "after: ..." to $MG_DIR/TAG.out.
ka_client() {
	"$PYTHON" - "$1" "$MG_DIR" "$2" "$3" "$4" >"$MG_DIR/$2.out" 2>&1 <<'EOF'
import os, socket, sys, time
port, d, tag, p1, p2 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def get(path):
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        body += s.recv(65536)
    return head.split(b"\r\n")[0].decode() + " " + body.decode().strip()[:40].replace("\n", " ")
print("before: " + get(p1), flush=True)
open(d + "/" + tag + ".ready", "w").close()
while not os.path.exists(d + "/" + tag + ".go"):
    time.sleep(0.05)
print("after: " + get(p2), flush=True)
EOF
}

ka_client "$MG_PORT" ka /one /two &
kapid=$!
mg_wait_until 5 test -e "$MG_DIR/ka.ready" || mg_fail "kept-alive client did not start"
curl -s -o "$MG_DIR/inflight.body" -w '%{http_code}' "http://127.0.0.1:$MG_PORT/delay/1500" >"$MG_DIR/inflight.code" &
inpid=$!
sleep 0.3

backend "$UP_B_PORT" | mg_resource 20-backend
routes one two | mg_resource 30-vs
assert_reload applied
assert_match "$MG_RELOAD_LINES" 'reload ok' "log says reload ok"
g2=$(generation)
assert_cmp "$g2" -gt "$g1" "generation went up ($g1 -> $g2)"
assert_status GET /two 200
assert_eq "$(cat "$MG_BODY")" two "new route served after the reload"
assert_status GET /elsewhere 200
assert_header x-upstream b "changed ServiceEntry endpoint used after the reload"
: >"$MG_DIR/ka.go"
wait "$kapid"
assert_contains "$(cat "$MG_DIR/ka.out")" "before: HTTP/1.1 200 OK one" "kept-alive connection before the reload"
assert_contains "$(cat "$MG_DIR/ka.out")" "after: HTTP/1.1 200 OK two" \
	"the same connection survives the reload and sees the new route"
wait "$inpid"
assert_eq "$(cat "$MG_DIR/inflight.code")" 200 "a request in flight during the reload completes"
assert_eq "$(mg_json name "$MG_DIR/inflight.body")" a "... on the endpoint of the config it started with"

# removed route
routes two | mg_resource 30-vs
assert_reload applied
assert_status GET /one 200
assert_header x-upstream b "route /one removed: falls to the backend"

# --- refused: YAML syntax error ----------------------------------------------------------------
gen_before=$(generation)
printf 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: broken\nspec:\n  hosts: [unclosed\n' |
	mg_resource 40-broken
assert_reload refused
assert_match "$MG_RELOAD_LINES" '40-broken\.yaml:[0-9]+:[0-9]+: ' "the syntax error is logged with file:line:col"
assert_match "$MG_RELOAD_LINES" 'reload failed' "log says reload failed"
assert_eq "$(generation)" "$gen_before" "generation unchanged"
assert_status GET /two 200
assert_eq "$(cat "$MG_BODY")" two "old configuration still serving"
assert_alive "alive after a refused reload"
rm -f "$MG_RESOURCES/40-broken.yaml"

# --- refused: a destination nothing declares ----------------------------------------------------
cat >"$MG_RESOURCES/40-bad-dest.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-dest
spec:
  hosts: [bad.test]
  gateways: [gw]
  http:
  - route:
    - destination: {host: nowhere}
EOF
assert_reload refused
assert_match "$MG_RELOAD_LINES" '40-bad-dest\.yaml:10:[0-9]+: VirtualService default/bad-dest: spec\.http\[0\]\.route\[0\]\.destination\.host: ' \
	"the semantic error is logged as file:line:col: Kind ns/name: field: ..."
assert_match "$MG_RELOAD_LINES" 'nowhere' "the error names the host"
assert_status GET /two 200
assert_status GET /x 200 -H 'Host: bad.test'
assert_header x-upstream b "bad.test not routed by the refused VirtualService"
rm -f "$MG_RESOURCES/40-bad-dest.yaml"

# --- refused: an unknown key in the main file ----------------------------------------------------
cp "$MG_CONFIG" "$MG_DIR/main.good"
printf 'no_such_key: 1\n' >>"$MG_CONFIG"
assert_reload refused
assert_match "$MG_RELOAD_LINES" 'meshgate\.yaml:[0-9]+:[0-9]+: .*no_such_key' "main file error logged with its position"
assert_status GET /two 200
cp "$MG_DIR/main.good" "$MG_CONFIG"

# --- listeners appear and disappear ---------------------------------------------------------------
gateway "$P2" | mg_resource 10-gateway
assert_reload applied
assert_status GET "http://127.0.0.1:$P2/two" 200
assert_eq "$(cat "$MG_BODY")" two "listener added by a reload serves"
# a kept-alive connection accepted by that listener outlives it (it keeps the listener's
# key): its next request is still answered, by the routes its port has now (none)
ka_client "$P2" ka2 /two /two &
kapid=$!
mg_wait_until 5 test -e "$MG_DIR/ka2.ready" || mg_fail "kept-alive client on the added listener did not start"
gateway | mg_resource 10-gateway
assert_reload applied
curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$P2/two"
assert_eq "$?" 7 "listener removed by a reload no longer accepts (curl rc 7)"
: >"$MG_DIR/ka2.go"
wait "$kapid"
assert_contains "$(cat "$MG_DIR/ka2.out")" "before: HTTP/1.1 200 OK two" "kept-alive connection on the added listener"
assert_contains "$(cat "$MG_DIR/ka2.out")" "after: HTTP/1.1 404 " \
	"its next request after the listener went is answered (no route: 404)"
assert_status GET /two 200

# --- reloads under load: no request fails ----------------------------------------------------------
lpids=()
for i in 1 2 3 4; do
	curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 \
		"http://127.0.0.1:$MG_PORT/load$i/[1-150]" >"$MG_DIR/load$i.codes" &
	lpids+=($!)
done
for i in 1 2 3 4 5 6; do
	if [ $((i % 3)) = 0 ]; then
		printf 'kind: [\n' | mg_resource 50-bad
	else
		rm -f "$MG_RESOURCES/50-bad.yaml"
		routes two "extra$i" | mg_resource 30-vs
	fi
	mg_reload
	sleep 0.2
done
wait "${lpids[@]}"
rm -f "$MG_RESOURCES/50-bad.yaml"
total=$(cat "$MG_DIR"/load*.codes | wc -l)
good=$(cat "$MG_DIR"/load*.codes | grep -c '^200$')
assert_eq "$total" 600 "600 requests sent during six reloads"
assert_eq "$good" 600 "all 600 answered 200 across valid and invalid reloads"
assert_status GET /extra5 200
assert_eq "$(cat "$MG_BODY")" extra5 "the last valid reload is live"

assert_alive
mg_finish
