#!/usr/bin/env bash
# 22-malformed: RFC 9112 strictness. Every request whose framing or syntax is
# in doubt gets its status (400, 414, 431, 505) and the connection closed,
# and never reaches an upstream: Content-Length with Transfer-Encoding,
# conflicting or invalid Content-Length, Transfer-Encoding not ending in
# chunked or in HTTP/1.0, bad chunked framing, obs-fold, two Host headers, no
# Host in HTTP/1.1, bare LF / CR, bad field names, oversized heads. What RFC
# 9112 allows is served: HTTP/1.0 without Host, an empty line before the
# request line. Also: maxConnections, the access log (DPE) and the counter.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 2
limits:
  maxHeaderBytes: 4096
  maxHeaders: 20
  maxRequestLineBytes: 1024
  maxConnections: 6
EOF

mg_resource_simple a

mg_start

# raw: send stdin to meshgate; print what came back, then a last line
# "#CLOSED" (the peer closed: FIN or RST) or "#OPEN" (silent for 3 s).
raw() {
	"$PYTHON" -c '
import socket, sys
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(data)
except OSError:
    pass
s.settimeout(3)
out, end = b"", "#OPEN"
try:
    while True:
        b = s.recv(65536)
        if not b:
            end = "#CLOSED"
            break
        out += b
except socket.timeout:
    pass
except OSError:
    end = "#CLOSED"
sys.stdout.write(out.decode("latin-1").replace("\r", "") + "\n" + end + "\n")' "$MG_PORT"
}

# rejects DESC STATUS: the request on stdin is answered STATUS, and the
# connection is closed; nothing reached the upstream.
rejects() {
	local desc=$1 want=$2 out before
	before=$(mg_upstream_count a)
	out=$(raw)
	assert_match "$(head -n 1 <<<"$out")" "^HTTP/1\.1 $want " "$desc -> $want"
	assert_eq "$(tail -n 1 <<<"$out")" "#CLOSED" "$desc: connection closed"
	assert_eq "$(mg_upstream_count a)" "$before" "$desc: nothing reached the upstream"
}

# serves DESC: the request on stdin is answered 200 by the upstream.
serves() {
	local out
	out=$(raw)
	assert_match "$(head -n 1 <<<"$out")" '^HTTP/1\.[01] 200 ' "$1 -> 200"
	assert_contains "$out" "x-upstream: a" "$1: proxied"
}

req() { # req HEAD-LINES... : the lines joined by CRLF, then an empty line
	local l
	for l in "$@"; do printf '%s\r\n' "$l"; done
	printf '\r\n'
}

# --- Content-Length / Transfer-Encoding -----------------------------------------------
rejects "Content-Length + Transfer-Encoding" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 5' 'Transfer-Encoding: chunked'
	printf '0\r\n\r\n'
)
rejects "Transfer-Encoding + Content-Length" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked' 'Content-Length: 5'
	printf '0\r\n\r\n'
)
rejects "two different Content-Length" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 5' 'Content-Length: 6'
	printf 'hello!'
)
rejects "Content-Length list 5, 6" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 5, 6'
	printf 'hello!'
)
rejects "Content-Length abc" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: abc'
)
rejects "Content-Length +5" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: +5'
	printf hello
)
rejects "Content-Length -1" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: -1'
)
rejects "Content-Length beyond 64 bits" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 99999999999999999999999'
)
rejects "Transfer-Encoding not ending in chunked" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked, gzip'
	printf '0\r\n\r\n'
)
rejects "chunked twice" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked, chunked'
	printf '0\r\n\r\n'
)
rejects "Transfer-Encoding: xchunked" '(400|501)' < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: xchunked'
	printf '0\r\n\r\n'
)
rejects "space before the colon" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding : chunked'
	printf '0\r\n\r\n'
)
rejects "Transfer-Encoding in HTTP/1.0" 400 < <(
	req 'POST /echo HTTP/1.0' 'Host: x' 'Transfer-Encoding: chunked'
	printf '0\r\n\r\n'
)

# --- chunked framing --------------------------------------------------------------------------
rejects "chunk size zz" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf 'zz\r\nhello\r\n0\r\n\r\n'
)
rejects "negative chunk size" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf -- '-5\r\nhello\r\n0\r\n\r\n'
)
rejects "chunk size 0x5" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf '0x5\r\nhello\r\n0\r\n\r\n'
)
rejects "chunk size over 64 bits" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf '10000000000000000\r\nhello\r\n0\r\n\r\n'
)
rejects "no CRLF after the chunk data" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf '5\r\nhelloXX0\r\n\r\n'
)
rejects "chunk lines ended by bare LF" 400 < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Transfer-Encoding: chunked'
	printf '5\nhello\n0\n\n'
)

# --- header syntax ------------------------------------------------------------------------------
rejects "obs-fold" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' 'X-Folded: a' ' continued')
rejects "whitespace before the first field" 400 < <(req 'GET /echo HTTP/1.1' ' Host: x')
rejects "two Host headers" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' 'Host: y')
rejects "two identical Host headers" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' 'Host: x')
rejects "HTTP/1.1 without Host" 400 < <(req 'GET /echo HTTP/1.1' 'X-No-Host: 1')
rejects "bare LF line endings" 400 < <(printf 'GET /echo HTTP/1.1\nHost: x\n\n')
rejects "one bare LF in the head" 400 < <(printf 'GET /echo HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n')
rejects "bare CR in a value" 400 < <(printf 'GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n')
rejects "NUL in a value" 400 < <(printf 'GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\000b\r\n\r\n')
rejects "space in a field name" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' 'X Y: z')
rejects "empty field name" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' ': empty-name')
rejects "field without a colon" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' 'NoColon')
rejects "control character in a value" 400 < <(req 'GET /echo HTTP/1.1' 'Host: x' $'X-Ctl: a\x01b')

# --- request line -----------------------------------------------------------------------------------
rejects "bad method token" 400 < <(req 'G@T /echo HTTP/1.1' 'Host: x')
rejects "two spaces in the request line" 400 < <(req 'GET  /echo HTTP/1.1' 'Host: x')
rejects "two spaces before the version" 400 < <(req 'GET /echo  HTTP/1.1' 'Host: x')
rejects "target not in origin-form" 400 < <(req 'GET echo HTTP/1.1' 'Host: x')
rejects "bad version" 400 < <(req 'GET /echo HTTP/1' 'Host: x')
rejects "lower-case version" 400 < <(req 'GET /echo http/1.1' 'Host: x')
rejects "HTTP/2.0 in an HTTP/1 request line" '(400|505)' < <(req 'GET /echo HTTP/2.0' 'Host: x')
rejects "space in the target" 400 < <(req "GET /ec ho HTTP/1.1" 'Host: x')

# --- limits ------------------------------------------------------------------------------------------
long=$(head -c 2000 /dev/zero | tr '\0' a)
rejects "request line over maxRequestLineBytes" 414 < <(req "GET /$long HTTP/1.1" 'Host: x')
big=$(head -c 6000 /dev/zero | tr '\0' b)
rejects "header block over maxHeaderBytes" 431 < <(req 'GET /echo HTTP/1.1' 'Host: x' "X-Big: $big")
many=()
for i in $(seq 1 25); do many+=("X-H$i: $i"); done
rejects "more than maxHeaders fields" 431 < <(req 'GET /echo HTTP/1.1' 'Host: x' "${many[@]}")
# just under the limits still works
many=()
for i in $(seq 1 15); do many+=("X-H$i: $i"); done
serves "15 fields (limit 20)" < <(
	req 'GET /echo HTTP/1.1' 'Host: x' 'Connection: close' "${many[@]}"
)
mid=$(head -c 2500 /dev/zero | tr '\0' m)
serves "a 2.5 KiB header (limit 4 KiB)" < <(
	req 'GET /echo HTTP/1.1' 'Host: x' 'Connection: close' "X-Mid: $mid"
)

# --- what RFC 9112 allows ---------------------------------------------------------------------------
serves "HTTP/1.0 without Host" < <(req 'GET /echo HTTP/1.0')
serves "an empty line before the request line" < <(
	printf '\r\n'
	req 'GET /echo HTTP/1.1' 'Host: x' 'Connection: close'
)
serves "a field with an empty value" < <(
	req 'GET /echo HTTP/1.1' 'Host: x' 'X-Empty:' 'Connection: close'
)
serves "tabs around a value" < <(
	req 'GET /echo HTTP/1.1' 'Host: x' 'X-Tab:	tab	' 'Connection: close'
)
serves "Content-Length with leading zeros" < <(
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 005' 'Connection: close'
	printf hello
)

# --- a valid request, then garbage on the same connection -------------------------------------------
out=$({ req 'GET /echo/first HTTP/1.1' 'Host: x'; printf 'THIS IS NOT HTTP\r\n\r\n'; } | raw)
assert_eq "$(grep -c '^HTTP/1.1 ' <<<"$out")" 2 "valid request then garbage: two responses"
assert_match "$(grep '^HTTP/1.1 ' <<<"$out" | awk '{print $2}' | paste -sd' ')" '^200 400$' "200 then 400"
assert_eq "$(tail -n 1 <<<"$out")" "#CLOSED" "then the connection is closed"

# smuggling attempt: the body of a CL+TE request must not become a second request
{
	req 'POST /echo HTTP/1.1' 'Host: x' 'Content-Length: 44' 'Transfer-Encoding: chunked'
	printf '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
} | raw >/dev/null
assert_eq "$(mg_upstream_count a '^/smuggled')" 0 "no smuggled request reached the upstream"

# --- lingering close: a refused head with a large body behind it --------------------------------
# Closing with that body unread would make the kernel send a reset, which can destroy the 400
# at the client before it reads it.  meshgate half-closes and reads on until the client
# closes (RFC 9112 §9.6): the client sends all it has, then reads the 400 and a clean EOF.
lingered=$(mg_flood_refused "$MG_PORT")
assert_eq "$lingered" "sent HTTP/1.1 400 Bad Request EOF" \
	"4 MiB behind a refused head: all sent, then the 400 and a clean EOF (no reset)"

# A client that neither closes nor stops: after 2 s meshgate closes anyway.
lingered=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n" + b"x" * 65536)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
time.sleep(3)
try:
    for _ in range(3):
        s.sendall(b"x" * 1024)
        time.sleep(0.2)
    print(out.split(b"\r\n")[0].decode(), "still open")
except OSError:
    print(out.split(b"\r\n")[0].decode(), "closed by meshgate")
EOF
)
assert_eq "$lingered" "HTTP/1.1 400 Bad Request closed by meshgate" \
	"a client that keeps the connection open: closed once the 2 s of lingering are over"

# --- maxConnections: 6 ---------------------------------------------------------------------------------
held=$("$PYTHON" - "$MG_PORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port), timeout=5)
extra.settimeout(3)
try:
    extra.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    r = extra.recv(100)
    print("seventh: " + ("closed" if not r else r.split(b"\r\n")[0].decode()))
except (ConnectionResetError, BrokenPipeError):
    print("seventh: closed")
except socket.timeout:
    print("seventh: no answer")
for s in held:
    s.close()
time.sleep(0.5)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
print("after: " + s.recv(100).split(b"\r\n")[0].decode())
EOF
)
assert_contains "$held" "seventh: closed" "a connection beyond maxConnections is closed at once"
assert_contains "$held" "after: HTTP/1.1 200" "served again once connections are released"

# --- log and counters ----------------------------------------------------------------------------------
# Every request rejected as malformed is flagged DPE (Envoy: "downstream
# protocol error"), whether the head or the body was at fault.
mg_wait_until 3 grep -q ' 43[01] ' "$MG_ACCESS_LOG"
rejected=$(grep -Ec '" (400|414|431|505) ' "$MG_ACCESS_LOG")
assert_cmp "$rejected" -ge 40 "the rejects are in the access log ($rejected lines)"
noflag=$(grep -E '" (400|414|431|505) ' "$MG_ACCESS_LOG" | grep -Ev '" [0-9]+ DPE ')
assert_eq "$(grep -c . <<<"$noflag")" 0 "every rejected request is logged with flag DPE" ||
	mg_say "       e.g. $(head -n 1 <<<"$noflag")"
m=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/metrics")
bad=$(awk '$1 == "meshgate_downstream_rq_bad_request" { print $2 }' <<<"$m")
assert_cmp "${bad:-0}" -ge 40 "meshgate_downstream_rq_bad_request counts the rejects ($bad)"
ovf=$(awk '$1 == "meshgate_downstream_cx_overflow" { print $2 }' <<<"$m")
assert_cmp "${ovf:-0}" -ge 1 "meshgate_downstream_cx_overflow counted ($ovf)"

assert_alive
mg_finish
