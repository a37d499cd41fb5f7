#!/usr/bin/env bash
# 31-sigterm: graceful stop. On SIGTERM the listener stops accepting, a slow
# request in flight (/delay/1500, started just before the signal) completes
# with 200, and the process exits 0 right after; idle kept-alive connections
# do not hold the exit back; timeouts.drain bounds how long a request in
# flight is waited for; SIGINT behaves like SIGTERM.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 2
timeouts:
  drain: 3s
EOF

mg_resource_simple a

# stop_with SIG: send SIG, wait for the exit; sets STOP_RC and STOP_MS.
stop_with() {
	local t0
	t0=$(mg__now_ms)
	kill "-$1" "$MG_PID"
	mg_wait_until 20 mg__dead "$MG_PID"
	wait "$MG_PID"
	STOP_RC=$?
	STOP_MS=$(($(mg__now_ms) - t0))
	MG_PID=""
}

# --- in-flight slow request completes ------------------------------------------------------
mg_start
curl -s -D "$MG_DIR/if.h" -o "$MG_DIR/if.body" -w '%{http_code}' --max-time 20 \
	"http://127.0.0.1:$MG_PORT/delay/1500" >"$MG_DIR/if.code" &
cpid=$!
mg_wait_until 5 grep -q '/delay/1500' "$MG_STATS" || mg_fail "the slow request did not reach the upstream"
sleep 0.2
pid=$MG_PID
t0=$(mg__now_ms)
kill -TERM "$pid"
sleep 0.3
# while draining: alive, but not accepting
if mg__alive "$pid"; then mg_ok "still running while the request is in flight"; else mg_fail "exited with a request in flight"; fi
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$MG_PORT/echo"
rc=$?
assert_match "$rc" '^(7|52|56)$' "no new request accepted while draining (curl rc $rc)"
wait "$cpid"
assert_eq "$(cat "$MG_DIR/if.code")" 200 "the in-flight /delay/1500 completed with 200"
assert_eq "$(mg_json path "$MG_DIR/if.body")" /delay/1500 "... with its whole body"
mg_wait_until 10 mg__dead "$pid"
wait "$pid"
rc=$?
el=$(($(mg__now_ms) - t0))
MG_PID=""
assert_eq "$rc" 0 "exit status 0 after SIGTERM"
# meshgate's own clock, from its log: the test's steps add their own time on a loaded host
log_ms() { grep -m1 "$1" "$MG_LOG" | awk '{ split(substr($1, 12, 12), t, "[:.]"); print ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4] }'; }
drain_ms=$(($(log_ms 'all workers stopped') - $(log_ms 'received SIGTERM')))
assert_cmp "$drain_ms" -lt 2800 "exited soon after the last request ended, not at the drain timeout ($drain_ms ms by its log, $el ms seen here)"
assert_log_contains 'SIGTERM'
assert_log_contains '"GET /delay/1500 HTTP/1.1" 200 ' "$MG_ACCESS_LOG"

# --- idle kept-alive connections do not hold the exit back ------------------------------------
mg_start
"$PYTHON" - "$MG_PORT" "$MG_DIR/idle.out" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
d = b""
while not d.endswith(b"}\n"):
    d += s.recv(65536)
open(sys.argv[2] + ".ready", "w").close()
t0 = time.time()
try:
    r = s.recv(100)
    what = "closed" if not r else "data"
except OSError:
    what = "closed"
open(sys.argv[2], "w").write("%s %d\n" % (what, (time.time() - t0) * 1000))
EOF
ipid=$!
mg_wait_until 5 test -e "$MG_DIR/idle.out.ready" || mg_fail "idle client did not start"
stop_with TERM
wait "$ipid"
assert_eq "$STOP_RC" 0 "exit status 0 with an idle kept-alive connection"
assert_cmp "$STOP_MS" -lt 2000 "idle connection did not delay the exit ($STOP_MS ms)"
assert_match "$(cat "$MG_DIR/idle.out")" '^closed ' "the idle client connection was closed"

# --- drain timeout bounds a request that takes too long -------------------------------------------
mg_start
curl -s -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$MG_PORT/delay/8000" >"$MG_DIR/long.code" &
cpid=$!
mg_wait_until 5 grep -q '/delay/8000' "$MG_STATS" || mg_fail "the long request did not reach the upstream"
stop_with TERM
wait "$cpid"
assert_eq "$STOP_RC" 0 "exit status 0 after the drain timeout"
assert_cmp "$STOP_MS" -ge 2500 "waited for the drain timeout (3 s) ($STOP_MS ms)"
assert_cmp "$STOP_MS" -lt 6000 "but not for the 8 s request ($STOP_MS ms)"
assert_ne "$(cat "$MG_DIR/long.code")" 200 "the cut request did not get a 200"

# --- SIGINT -----------------------------------------------------------------------------------------
mg_start
assert_status GET /echo 200
stop_with INT
assert_eq "$STOP_RC" 0 "exit status 0 after SIGINT"
assert_cmp "$STOP_MS" -lt 2000 "SIGINT with nothing in flight exits at once ($STOP_MS ms)"

# --- and a last normal start/stop through mg_finish ----------------------------------------------
mg_start
assert_status GET /echo 200
mg_finish
