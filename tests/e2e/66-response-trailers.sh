#!/usr/bin/env bash
# 66-response-trailers: response trailers reach a client that sent
# "TE: trailers" in its chunked last chunk (what gRPC needs through the
# gateway), from a chunked HTTP/1.1 upstream and from an HTTP/2 upstream's
# trailing HEADERS (grpc-status, grpc-message); without TE: trailers, and to
# an HTTP/1.0 client (close-delimited body), they are dropped. Connection-
# specific, framing and routing fields never pass as trailers; response
# header operations do not apply to them. The trailer section may arrive in
# pieces; kept-alive responses with trailers stay correctly framed. The JSON
# access log's grpc_status comes from the trailers, the head (trailers-only
# answers) or a gRPC fault abort.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
have_h2=1
"$PYTHON" -c 'import h2' 2>/dev/null || have_h2=0
mg_upstream h1
[ "$have_h2" = 1 ] && mg_upstream_h2 h2

mg_start_config <<EOF
workers: 1
accessLog:
  path: "$MG_ACCESS_LOG"
  format: json
EOF

{
	mg_yaml_gateway
	mg_yaml_service_port h1 "$UP_H1_PORT" HTTP
	[ "$have_h2" = 1 ] && mg_yaml_service_port grpc "$UP_H2_PORT" GRPC
	mg_yaml_routes
	cat <<EOF
  - match: [{uri: {prefix: /h1/}}]
    rewrite: {uri: /}
    route: [{destination: {host: h1}}]
  - match: [{uri: {prefix: /ops/}}]
    rewrite: {uri: /}
    route: [{destination: {host: h1}}]
    headers:
      response:
        set: {x-set: by-route}
        add: {x-added: by-route}
        remove: [x-secret]
  - match: [{uri: {prefix: /fault/}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}
    route: [{destination: {host: h1}}]
EOF
	[ "$have_h2" = 1 ] && cat <<EOF
  - match: [{uri: {prefix: /h2/}}]
    rewrite: {uri: /}
    route: [{destination: {host: grpc}}]
EOF
} | mg_resource all

mg_start

# The client: sends stdin's requests on one connection and prints, per response N,
#   N status=S framing=chunked|length|close body_len=L complete=0|1
#   N header NAME: VALUE     (names lower-cased)
#   N trailer NAME: VALUE    (exactly as received)
#   N trailers=NAME,NAME     (in order; empty when none)
# complete=1 only when the framing ended properly (the last chunk and the
# trailer section's final CRLF, the whole content-length, or the close).
cat >"$MG_DIR/client.py" <<'EOF'
import socket, sys
port, head_only = int(sys.argv[1]), sys.argv[2] == "1"
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(sys.stdin.buffer.read())
s.settimeout(5)
buf = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
except (socket.timeout, ConnectionResetError):
    pass
n = 0
while buf:
    n += 1
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        print("%d incomplete head" % n)
        break
    lines = buf[:i].decode("latin-1").split("\r\n")
    buf = buf[i + 4:]
    hdrs = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.append((k.lower(), v.strip()))
        print("%d header %s: %s" % (n, k.lower(), v.strip()))
    h = dict(hdrs)
    body, trailers, complete = b"", [], 0
    if head_only:
        framing, complete = "none", 1
    elif h.get("transfer-encoding") == "chunked":
        framing = "chunked"
        while True:
            j = buf.find(b"\r\n")
            if j < 0:
                break
            size = int(buf[:j].split(b";")[0], 16)
            buf = buf[j + 2:]
            if size == 0:
                while True:
                    j = buf.find(b"\r\n")
                    if j < 0:
                        break
                    line, buf = buf[:j].decode("latin-1"), buf[j + 2:]
                    if line == "":
                        complete = 1
                        break
                    trailers.append(line)
                break
            if len(buf) < size + 2 or buf[size:size + 2] != b"\r\n":
                break
            body += buf[:size]
            buf = buf[size + 2:]
    elif "content-length" in h:
        framing = "length"
        cl = int(h["content-length"])
        body, buf = buf[:cl], buf[cl:]
        complete = int(len(body) == cl)
    else:
        framing = "close"
        body, buf, complete = buf, b"", 1
    print("%d status=%s framing=%s body_len=%d complete=%d" % (
        n, lines[0].split(" ")[1], framing, len(body), complete))
    for t in trailers:
        print("%d trailer %s" % (n, t))
    print("%d trailers=%s" % (n, ",".join(t.split(":")[0] for t in trailers)))
    if not complete:
        break
EOF

# get PATH [HEADER-LINE]...: one HTTP/1.1 request (Connection: close) with
# those header lines; the client's summary
get() {
	local path=$1 req h
	shift
	req="GET $path HTTP/1.1\r\nHost: t.example\r\n"
	for h in "$@"; do req+="$h\r\n"; done
	printf "%b" "${req}Connection: close\r\n\r\n" | "$PYTHON" "$MG_DIR/client.py" "$MG_PORT" 0
}
# tr_of N: the trailer names of response N in $out
tr_of() { sed -n "s/^$1 trailers=//p" <<<"$out"; }
TE='TE: trailers'

# --- HTTP/1.1 upstream, chunked with trailers ------------------------------------------------
out=$(get '/h1/trailers-out?x-checksum=abc&grpc-status=0&grpc-message=all%20good' "$TE")
assert_contains "$out" "1 status=200 framing=chunked" "chunked to the client"
assert_contains "$out" "complete=1" "the response ends properly"
assert_eq "$(tr_of 1)" "x-checksum,grpc-status,grpc-message" "the trailers, in order"
assert_contains "$out" "1 trailer x-checksum: abc" "trailer value intact"
assert_contains "$out" "1 trailer grpc-message: all good" "trailer value with a space intact"
assert_not_contains "$out" "1 header trailer:" "the Trailer header is not passed on"
assert_not_contains "$out" "1 header x-checksum" "a trailer does not become a header"

out=$(get '/h1/trailers-out?x-checksum=abc' 'TE: deflate, trailers')
assert_eq "$(tr_of 1)" x-checksum "TE listing trailers among others"

# without TE: trailers, or with another TE, they are dropped (Envoy's default)
out=$(get '/h1/trailers-out?x-checksum=abc&grpc-status=0')
assert_contains "$out" "1 status=200 framing=chunked" "no TE: still chunked"
assert_contains "$out" "complete=1" "no TE: the response ends properly"
assert_eq "$(tr_of 1)" "" "no TE: no trailers"
assert_not_contains "$out" "1 trailer " "no TE: no trailer line"
out=$(get '/h1/trailers-out?x-checksum=abc' 'TE: gzip')
assert_contains "$out" "complete=1" "TE: gzip: the response ends properly"
assert_eq "$(tr_of 1)" "" "TE: gzip: no trailers"

# the body is intact next to the trailers
assert_eq "$(get '/h1/bytes/100000?chunked=1&chunk=777&trailers=1&seed=5' "$TE" |
	sed -n 's/^1 trailer x-body-sha256: //p')" "$(mg_bytes_sha256 100000 5)" \
	"the upstream's checksum trailer matches the body"
out=$(get '/h1/bytes/100000?chunked=1&chunk=777&trailers=1&seed=5' "$TE")
assert_contains "$out" "body_len=100000 complete=1" "100000 body bytes and the trailer"

# --- fields that never pass as trailers --------------------------------------------------------
q='Connection=close&Keep-Alive=timeout%3D1&TE=trailers&Trailer=x&Transfer-Encoding=chunked'
q+='&Content-Length=5&Upgrade=h2c&Host=evil.example&Proxy-Connection=close&X-Kept=1&x-after=2'
out=$(get "/h1/trailers-out?$q" "$TE")
assert_contains "$out" "complete=1" "framing intact around dropped trailers"
assert_eq "$(tr_of 1)" "X-Kept,x-after" \
	"connection-specific, framing and routing trailers dropped, the rest kept"

# --- response header operations do not apply to trailers -------------------------------------
out=$(get '/ops/trailers-out?x-secret=s&x-set=upstream' "$TE")
assert_contains "$out" "1 header x-set: by-route" "the header operation applies to the head"
assert_eq "$(tr_of 1)" "x-secret,x-set" "but not to the trailers"
assert_contains "$out" "1 trailer x-set: upstream" "a trailer named like a set header is left alone"

# --- the trailer section in pieces ------------------------------------------------------------
out=$(get '/h1/trailers-out/slow?grpc-status=0&grpc-message=sent%20three%20bytes%20at%20a%20time&x-long=0123456789abcdef' "$TE")
assert_eq "$(tr_of 1)" "grpc-status,grpc-message,x-long" "trailers read in pieces"
assert_contains "$out" "1 trailer grpc-message: sent three bytes at a time" "and whole"
assert_contains "$out" "complete=1" "the response ends properly"

# --- kept alive: two responses with trailers on one connection, then one without --------------
req="GET /h1/trailers-out?a=1 HTTP/1.1\r\nHost: t.example\r\n$TE\r\n\r\n"
req+="GET /h1/trailers-out/slow?b=2 HTTP/1.1\r\nHost: t.example\r\n$TE\r\n\r\n"
req+="GET /h1/trailers-out?c=3 HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n"
out=$(printf "%b" "$req" | "$PYTHON" "$MG_DIR/client.py" "$MG_PORT" 0)
assert_eq "$(tr_of 1)" a "pipelined: first response's trailers"
assert_eq "$(tr_of 2)" b "pipelined: second response's trailers"
assert_eq "$(tr_of 3)" "" "pipelined: the third request sent no TE"
assert_contains "$out" "3 status=200 framing=chunked" "pipelined: the third response is framed"
assert_eq "$(grep -c 'complete=1' <<<"$out")" 3 "pipelined: all three complete"

# --- an HTTP/1.0 client: close-delimited body, no trailers --------------------------------------
out=$(printf 'GET /h1/trailers-out?x-checksum=abc HTTP/1.0\r\nHost: t.example\r\nTE: trailers\r\n\r\n' |
	"$PYTHON" "$MG_DIR/client.py" "$MG_PORT" 0)
assert_contains "$out" "1 status=200 framing=close" "HTTP/1.0: close-delimited"
assert_not_contains "$out" "x-checksum" "HTTP/1.0: no trailer anywhere"

# --- HEAD: no body, no trailers -----------------------------------------------------------------
out=$(printf 'HEAD /h1/trailers-out?x-checksum=abc HTTP/1.1\r\nHost: t.example\r\nTE: trailers\r\nConnection: close\r\n\r\n' |
	"$PYTHON" "$MG_DIR/client.py" "$MG_PORT" 1)
assert_contains "$out" "1 status=200" "HEAD answered"
assert_not_contains "$out" "trailer x-checksum" "HEAD: no trailers"

# --- curl, which reads trailers too ---------------------------------------------------------------
raw=$(mg_curl --raw -H "$TE" '/h1/trailers-out?x-curl=seen' && echo END)
assert_contains "$raw" $'\r\n0\r\nx-curl: seen\r\n\r\nEND' "curl --raw sees the last chunk with the trailer"

# --- HTTP/2 upstream: a gRPC-like call ending with trailing HEADERS ------------------------------
if [ "$have_h2" = 1 ]; then
	out=$(get '/h2/trailers-out?grpc-status=0&grpc-message=ok' "$TE" 'Content-Type: application/grpc')
	assert_contains "$out" "1 status=200 framing=chunked" "h2: chunked to the client"
	assert_contains "$out" "1 header content-type: application/grpc" "h2: the head"
	assert_contains "$out" "body_len=10 complete=1" "h2: the gRPC message and a proper end"
	assert_eq "$(tr_of 1)" "grpc-status,grpc-message" "h2: the trailers"
	assert_contains "$out" "1 trailer grpc-status: 0" "h2: grpc-status"
	assert_contains "$out" "1 trailer grpc-message: ok" "h2: grpc-message"
	out=$(get '/h2/trailers-out?grpc-status=0&grpc-message=ok')
	assert_contains "$out" "complete=1" "h2 without TE: the response ends properly"
	assert_eq "$(tr_of 1)" "" "h2 without TE: no trailers"
	out=$(get '/h2/echo' "$TE")
	assert_contains "$out" "1 status=200 framing=length" "h2 without trailers: as before"
	# grpc-status in the log, from the trailers
	get '/h2/trailers-out?grpc-status=7&grpc-message=denied&k=log1' "$TE" >/dev/null
	assert_log_contains '"path":"/h2/trailers-out\?grpc-status=7[^"]*k=log1".*"grpc_status":7}' "$MG_ACCESS_LOG"
else
	mg_say "# python3-h2 is not installed: the HTTP/2 upstream part is skipped"
fi

# --- grpc_status in the JSON access log -----------------------------------------------------------
# from the trailers, also when the client did not take them
get '/h1/trailers-out?grpc-status=3&k=log2' >/dev/null
assert_log_contains '"path":"/h1/trailers-out\?grpc-status=3&k=log2".*"grpc_status":3}' "$MG_ACCESS_LOG"
# from the head of a trailers-only answer; not from a value that is no status
get '/h1/headers-out?grpc-status=5&k=log3' >/dev/null
assert_log_contains '"path":"/h1/headers-out\?grpc-status=5&k=log3".*"grpc_status":5}' "$MG_ACCESS_LOG"
get '/h1/trailers-out?grpc-status=abc&k=log4' "$TE" >/dev/null
assert_log_contains '"path":"/h1/trailers-out\?grpc-status=abc&k=log4".*"grpc_status":null}' "$MG_ACCESS_LOG"
# none for plain HTTP; a gRPC fault abort's own
get '/h1/echo?k=log5' >/dev/null
assert_log_contains '"path":"/h1/echo\?k=log5".*"grpc_status":null}' "$MG_ACCESS_LOG"
get '/fault/x?k=log6' 'Content-Type: application/grpc' >/dev/null
assert_log_contains '"path":"/fault/x\?k=log6".*"response_flags":"FI".*"grpc_status":14}' "$MG_ACCESS_LOG"

assert_alive
mg_finish
