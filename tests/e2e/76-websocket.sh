#!/usr/bin/env bash
# 76-websocket: WebSocket through the gateway, as Envoy's default upgrade support gives
# Istio's websockets sample: the handshake reaches the upstream with Upgrade and
# Connection: upgrade, its 101 (with Sec-WebSocket-Accept) reaches the client, then frames
# go both ways (the upstream's first message right behind its 101, echoes of the
# client's), and a close ends both connections, logged as 101.  An upstream that refuses
# the upgrade answers as plain HTTP and the connection stays HTTP: a request sent behind
# the refused handshake is parsed and routed as a request, never tunnelled.  A 101 that
# does not switch to WebSocket is a 502; an h2c upgrade is still not followed.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
WS="$MG_LIBDIR/../upstream/mg-ws.py"
mg__upstream_run "$WS" ws
mg_start_config <<EOF
workers: 2
EOF
mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service ws "$UP_WS_PORT")
$(mg_yaml_route_all ws)
EOF
assert_valid
mg_start

out=$("$PYTHON" "$WS" client "$MG_PORT" /ws one "two three" "$(printf '%0300d' 7)")
assert_eq "$?" 0 "a WebSocket session through meshgate: every echo matched"
assert_contains "$out" "HTTP/1.1 101" "the client gets the upstream's 101"
assert_contains "$out" "first: hello from ws" "the upstream's first message, sent behind its 101"
assert_contains "$out" "echo: two three" "a message and its echo"
assert_contains "$out" "close: answered" "the close handshake goes through"
mg_wait_until 5 grep -qF '"GET /ws HTTP/1.1" 101' "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /ws HTTP/1.1" 101 - via_upstream' \
	"the session is logged as 101 once it ends"
assert_cmp "$(mg_metric upstream_cx_websocket)" -ge 1 "upgrades are counted"

# the upstream refuses: plain HTTP goes on, nothing is tunnelled
out=$("$PYTHON" "$WS" smuggle "$MG_PORT")
assert_contains "$out" "path: /refused" "a refused handshake is answered as HTTP"
assert_contains "$out" "path: /second" "the request behind it is parsed and routed as one"
assert_status GET /refused 200 -H 'Connection: Upgrade' -H 'Upgrade: websocket'
assert_eq "$(mg_json headers.upgrade)" websocket "the upstream sees Upgrade: websocket"
assert_eq "$(mg_json headers.connection)" upgrade "... and Connection: upgrade"
assert_status GET /refused 200 -H 'Connection: Upgrade' -H 'Upgrade: h2c'
assert_eq "$(mg_json headers.upgrade)" "" "an h2c upgrade is not passed on"
assert_status GET /refused 200 -H 'Upgrade: websocket'
assert_eq "$(mg_json headers.upgrade)" "" "Upgrade without Connection: upgrade is not passed on"
assert_status POST /refused 200 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -d x
assert_eq "$(mg_json headers.upgrade)" "" "an upgrade with a body is not passed on"

# a 101 that is no WebSocket switch
out=$("$PYTHON" "$WS" client "$MG_PORT" /bad101)
assert_contains "$out" "HTTP/1.1 502" "a 101 without Upgrade: websocket is a 502"

# several sessions at once over both workers
pids=()
for i in 1 2 3 4 5 6; do
	"$PYTHON" "$WS" client "$MG_PORT" /ws "m$i" "n$i" >"$MG_DIR/ws-$i.out" 2>&1 &
	pids+=($!)
done
okc=0
for p in "${pids[@]}"; do wait "$p" && okc=$((okc + 1)); done
assert_eq "$okc" 6 "six concurrent sessions"
mg_finish
