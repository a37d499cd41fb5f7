#!/usr/bin/env bash
# 20-bodies: bodies through meshgate in both directions. Tens of MiB with
# Content-Length, chunked and close-delimited framing, sha256 checked at both
# ends; trailers; empty and tiny bodies; Expect: 100-continue; HEAD, 204 and
# 304 framing on a kept-alive connection; back-pressure: a stalled upstream
# stops the upload instead of meshgate buffering it, a stalled client stops
# the download (memory checked where no sanitizer inflates it).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need sha256sum
mg_upstream a
mg_upstream slow

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: a
spec:
  hosts: [a.default.svc.cluster.local, slow.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_A_PORT}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: slow
spec:
  hosts: [slow.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: $UP_SLOW_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - name: slow
    match: [{headers: {x-to: {exact: slow}}}]
    route: [{destination: {host: slow.internal}}]
  - name: to-a
    route: [{destination: {host: a}}]
EOF

mg_start

# --- uploads: 30 MiB, Content-Length and chunked -------------------------------------
mg_make_file "$MG_DIR/up.bin" 30M 11
want=$(mg_sha256 "$MG_DIR/up.bin")
assert_status POST /sha256 200 --data-binary "@$MG_DIR/up.bin"
assert_eq "$(mg_json sha256)" "$want" "30 MiB Content-Length upload: sha256 at the upstream"
assert_eq "$(mg_json length)" 31457280 "30 MiB Content-Length upload: length"
assert_status POST /sha256 200 -H 'Transfer-Encoding: chunked' --data-binary "@$MG_DIR/up.bin"
assert_eq "$(mg_json sha256)" "$want" "30 MiB chunked upload: sha256 at the upstream"
assert_eq "$(mg_json length)" 31457280 "30 MiB chunked upload: length"
assert_status PUT /echo 200 -T "$MG_DIR/up.bin"
assert_eq "$(mg_json body_sha256)" "$want" "30 MiB PUT: sha256 at the upstream"
rm -f "$MG_DIR/up.bin"

# --- downloads: 30 MiB in every framing ---------------------------------------------------
want=$(mg_bytes_sha256 30M 5)
for q in "" "chunked=1" "chunked=1&chunk=777" "eof=1" "chunked=1&trailers=1"; do
	assert_status GET "/bytes/30M?seed=5&$q" 200
	assert_eq "$(mg_sha256 "$MG_BODY")" "$want" "30 MiB download ($q): sha256 at the client"
done
assert_status GET "/bytes/1000?eof=1" 200
assert_eq "$(stat -c %s "$MG_BODY")" 1000 "close-delimited 1000 bytes"

# --- small bodies -------------------------------------------------------------------------------
assert_status POST /echo 200 -H 'Content-Length: 0'
assert_eq "$(mg_json body_len)" 0 "empty POST (Content-Length: 0)"
out=$(printf 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_contains "$out" '"body_len": 0' "chunked body with no chunks"
assert_status POST /echo 200 --data-binary x
assert_eq "$(mg_json body_len)" 1 "one-byte body"
out=$(printf 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: t1\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" | tr -d '\r')
assert_contains "$out" '"body_len": 3' "chunk extension accepted, body intact"
assert_contains "$out" "$(printf abc | sha256sum | cut -d' ' -f1)" "chunked body sha256"

# --- Expect: 100-continue ---------------------------------------------------------------------------
# The head goes alone; the body only after an interim 100 (from meshgate or
# relayed from the upstream).
expect_out=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, hashlib
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
body = b"x" * 100000
s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
          b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
s.settimeout(3)
got = b""
try:
    while b"\r\n\r\n" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    print("NO-INTERIM")
    sys.exit(0)
first = got.split(b"\r\n", 1)[0].decode("latin-1")
print("FIRST " + first)
s.sendall(body)
s.settimeout(10)
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except socket.timeout:
    pass
print(got.decode("latin-1").replace("\r", ""))
print("WANT " + hashlib.sha256(body).hexdigest())
EOF
)
assert_contains "$expect_out" "FIRST HTTP/1.1 100 Continue" "interim 100 Continue before the body"
assert_contains "$expect_out" "$(sed -n 's/^WANT //p' <<<"$expect_out")" "body after 100 Continue arrives intact"
assert_eq "$(grep -c '^HTTP/1.1 200' <<<"$expect_out")" 1 "then one final 200"
assert_eq "$(grep -c '^HTTP/1.1 100' <<<"$expect_out")" 1 "exactly one 100 Continue"

# curl's own Expect handling (it waits up to 10 s for the 100 before sending anyway)
t0=$(mg__now_ms)
assert_status POST /sha256 200 -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @<(head -c 2000000 /dev/zero)
assert_cmp "$(($(mg__now_ms) - t0))" -lt 5000 "curl with Expect: 100-continue is not kept waiting"

# --- HEAD, 204, 304 framing on one kept-alive connection --------------------------------------------
out=$(printf 'HEAD /bytes/5000 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /bytes/7000?chunked=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	mg_raw -t 5 "$MG_PORT" >"$MG_DIR/framing.out")
heads=$(tr -d '\r' <"$MG_DIR/framing.out" | grep -a '^HTTP/1.1 ' | awk '{print $2}' | paste -sd' ')
assert_eq "$heads" "200 204 304 200 200" "HEAD, 204, 304, chunked HEAD, GET answered in order on one connection"
assert_contains "$(tr -d '\r' <"$MG_DIR/framing.out")" "content-length: 5000" "HEAD keeps the Content-Length"
tail -c 10 "$MG_DIR/framing.out" >"$MG_DIR/framing.tail"
assert_eq "$(mg_sha256 "$MG_DIR/framing.tail")" "$(mg_bytes_sha256 10)" \
	"only the last response has a body: its 10 bytes end the stream"
rest=$("$PYTHON" -c 'import sys
d = open(sys.argv[1], "rb").read()
p = d.split(b"\r\n\r\n")
print(",".join("head" if x.startswith(b"HTTP/1.1 ") else str(len(x)) for x in p[1:]))' \
	"$MG_DIR/framing.out")
assert_eq "$rest" "head,head,head,head,10" "each head follows the previous one directly; 10 body bytes at the end"

# --- back-pressure: upload to a stopped upstream -----------------------------------------------------
if grep -q __asan_init "$MESHGATE" 2>/dev/null; then MG_ASAN=1; else MG_ASAN=0; fi
kill -STOP "$UP_SLOW_PID"
bp=$("$PYTHON" - "$MG_PORT" "$MG_PID" "$UP_SLOW_PID" <<'EOF'
import hashlib, os, signal, socket, sys, time
port, mg, up = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
n = 64 << 20
block = hashlib.shake_128(b"bp").digest(65536)
want = hashlib.sha256()
for i in range(n // len(block)):
    want.update(block)
base = rss(mg)
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nx-to: slow\r\nContent-Length: %d\r\n"
          b"Connection: close\r\n\r\n" % n)
s.settimeout(0.25)
sent, last, stalled_at, peak = 0, time.time(), None, 0
while sent < n:
    off = sent % len(block)
    try:
        k = s.send(block[off:off + min(len(block) - off, n - sent)])
        sent += k
        last = time.time()
    except socket.timeout:
        pass
    if stalled_at is None and time.time() - last > 1.5:
        stalled_at = sent
        peak = rss(mg) - base
        os.kill(up, signal.SIGCONT)
        s.settimeout(30)
if stalled_at is None:
    stalled_at = sent
    peak = rss(mg) - base
    os.kill(up, signal.SIGCONT)
s.settimeout(30)
resp = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    resp += b
ok = want.hexdigest().encode() in resp
print("stalled_at=%d rss_growth_kb=%d sha_ok=%d status=%s" % (
    stalled_at, peak, ok, resp.split(b"\r\n", 1)[0].decode("latin-1")))
EOF
)
kill -CONT "$UP_SLOW_PID" 2>/dev/null
mg_say "# upload back-pressure: $bp"
stalled=$(sed -n 's/.*stalled_at=\([0-9]*\).*/\1/p' <<<"$bp")
growth=$(sed -n 's/.*rss_growth_kb=\([0-9-]*\).*/\1/p' <<<"$bp")
assert_cmp "${stalled:-99999999999}" -lt $((32 << 20)) "upload stalls while the upstream reads nothing ($stalled bytes of 64 MiB taken)"
if [ "$MG_ASAN" = 0 ]; then
	assert_cmp "${growth:-999999}" -lt 32768 "meshgate RSS grew ${growth} KiB with a stalled 64 MiB upload"
fi
assert_contains "$bp" "sha_ok=1" "upload completes intact once the upstream reads again"
assert_contains "$bp" "status=HTTP/1.1 200" "upload answered 200"

# --- back-pressure: download to a client that does not read -------------------------------------------
bp=$("$PYTHON" - "$MG_PORT" "$MG_PID" "$(mg_bytes_sha256 64M 3)" <<'EOF'
import hashlib, socket, sys, time
port, mg, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
base = rss(mg)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(30)
s.connect(("127.0.0.1", port))
s.sendall(b"GET /bytes/64M?seed=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
time.sleep(2.5)
peak = rss(mg) - base
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
body = data.split(b"\r\n\r\n", 1)[1]
h = hashlib.sha256(body)
n = len(body)
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
print("rss_growth_kb=%d length=%d sha_ok=%d" % (peak, n, h.hexdigest() == want))
EOF
)
mg_say "# download back-pressure: $bp"
growth=$(sed -n 's/.*rss_growth_kb=\([0-9-]*\).*/\1/p' <<<"$bp")
if [ "$MG_ASAN" = 0 ]; then
	assert_cmp "${growth:-999999}" -lt 32768 "meshgate RSS grew ${growth} KiB while a client left 64 MiB unread"
fi
assert_contains "$bp" "length=67108864 sha_ok=1" "the slow client still gets all 64 MiB intact"

assert_log_contains '"POST /sha256 HTTP/1.1" 200 ' "$MG_ACCESS_LOG"
assert_alive
mg_finish
