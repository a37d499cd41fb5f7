#!/usr/bin/env bash
# 72-h2-smuggling: HTTP/2 requests that would smuggle a second request, or ambiguous
# framing, into the HTTP/1.1 connection towards the upstream (RFC 9113 §8.2, §8.3). Each
# one is refused (the stream reset, or a 400) and none reaches the upstream: CR or LF in a
# field value, a field name with a space, CR, LF or upper case, request-line material in
# :method, :path or :authority, a :path that is not origin-form, connection-specific
# fields, content-length that disagrees with the DATA frames (a body found short at its end
# has started upstream: that connection is closed mid-body). What is allowed still
# reaches the upstream intact: a body that matches its content-length, and a POST without one
# (sent chunked, so the upstream sees exactly one framing).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
"$PYTHON" -c 'import h2' 2>/dev/null || mg_skip "python3-h2 is not installed"
mg_upstream a
H2C="$PYTHON $MG_LIBDIR/../upstream/mg-h2-client.py"

mg_start_config <<EOF
workers: 1
EOF
mg_resource_simple a
mg_start

# refused DESC [mg-h2-client options...]: the stream is reset or answered 400, the
# connection survives (no GOAWAY needed), and the upstream saw nothing.
refused() {
	local desc=$1 before out
	shift
	before=$(mg_upstream_count a)
	out=$($H2C --port "$MG_PORT" --raw "$@")
	case $out in
	"reset "* | "status 400 "*) mg_ok "$desc: refused ($out)" ;;
	*) mg_fail "$desc: refused" "got: $out" ;;
	esac
	assert_eq "$(mg_upstream_count a)" "$before" "$desc: nothing reached the upstream"
}

CR=$'\r'
LF=$'\n'

# --- field values and names that would become HTTP/1.1 framing ------------------------------
refused "CRLF in a value" --path /echo --header "x-a: 1${CR}${LF}transfer-encoding: chunked"
refused "LF in a value" --path /echo --header "x-a: 1${LF}content-length: 5"
refused "CR in a value" --path /echo --header "x-a: 1${CR}x"
refused "space in a name" --path /echo --header "x a: 1"
refused "upper case in a name" --path /upper-name --header "Content-Length: 0"
# nghttp2 refuses such a block itself: the stream never becomes an exchange, and still has
# its access log line
mg_wait_until 5 grep -q '"GET /upper-name HTTP/2" 0 DPE http2_malformed_header_block' \
	"$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" \
	'"GET /upper-name HTTP/2" 0 DPE http2_malformed_header_block' \
	"a block nghttp2 refuses is in the access log (DPE)"
refused "CRLF in a name" --path /echo --header "x${CR}${LF}y: 1"

# --- pseudo-headers carrying request-line material -------------------------------------------
refused ":method with a space" --method "GET /admin HTTP/1.1" --path /echo
refused ":method with CRLF" --method "GET${CR}${LF}" --path /echo
refused ":path with a space" --path "/echo HTTP/1.1${CR}${LF}x: y"
refused ":path with CRLF" --path "/echo${CR}${LF}GET /other"
refused ":path not origin-form" --path "echo"
refused ":path absolute-form" --path "http://evil.example/echo"
refused "empty :path" --path ""
refused ":authority with CRLF" --path /echo --authority "a.example${CR}${LF}x: y"
refused ":authority with a space" --path /echo --authority "a.example x"

# --- connection-specific fields (RFC 9113 §8.2.2) --------------------------------------------
refused "transfer-encoding" --path /echo --header "transfer-encoding: chunked"
refused "keep-alive" --path /echo --header "keep-alive: timeout=5"
refused "proxy-connection" --path /echo --header "proxy-connection: keep-alive"
refused "upgrade" --path /echo --header "upgrade: websocket"
refused "te other than trailers" --path /echo --header "te: chunked"

# --- content-length against the DATA frames (RFC 9113 §8.1.1) ---------------------------------
# A DATA frame longer than content-length is refused when it arrives; the head may have
# gone upstream before it: then that connection is closed with no body byte sent.
out=$($H2C --port "$MG_PORT" --raw --method POST --path /long-body \
	--header "content-length: 3" --body 10)
assert_eq "$out" "reset 1" "content-length below the body: the stream is reset"
if [ "$(mg_upstream_count a /long-body)" != 0 ]; then
	mg_wait_until 5 grep -q "conn=[0-9]* req=1 bad request: connection closed inside the request body" \
		"$MG_DIR/upstream-a.log"
	assert_contains "$(cat "$MG_DIR/upstream-a.log")" \
		"connection closed inside the request body" \
		"... its head went upstream: that connection closed before any body byte"
fi
assert_not_contains "$(cat "$MG_DIR/upstream-a.log")" "POST /long-body -> " \
	"... and the upstream never answered it"
# A body shorter than its content-length is only known short at END_STREAM.  When the
# frames come in separate reads, the head and first bytes are on their way upstream by then
# (bodies stream, as in Envoy and HAProxy): the stream is reset and that upstream
# connection closed mid-body, never reused, so the upstream sees a truncated request and
# nothing after it on that connection.
out=$($H2C --port "$MG_PORT" --raw --method POST --path /short-body \
	--header "content-length: 20" --body 10)
assert_eq "$out" "reset 1" "content-length above the body: the stream is reset"
if [ "$(mg_upstream_count a /short-body)" != 0 ]; then
	mg_wait_until 5 grep -q "connection closed inside the request body" "$MG_DIR/upstream-a.log"
	assert_contains "$(cat "$MG_DIR/upstream-a.log")" \
		"connection closed inside the request body" \
		"... its start went upstream: that connection closed inside the body"
fi
assert_not_contains "$(cat "$MG_DIR/upstream-a.log")" "POST /short-body -> " \
	"... and the upstream never answered it"
refused "two content-lengths" --method POST --path /echo \
	--header "content-length: 10" --header "content-length: 11" --body 10
refused "content-length not a number" --method POST --path /echo \
	--header "content-length: 1x" --body 2
refused "negative content-length" --method POST --path /echo \
	--header "content-length: -1" --body 2

# Logged as a downstream protocol error (DPE), not as a client gone (DC).  When the bad
# frame comes in the same read as the head, the stream ends before its request is read
# and has no line.
sleep 0.5
for path in /long-body /short-body; do
	line=$(grep "\"POST $path HTTP/2\"" "$MG_ACCESS_LOG")
	if [ -n "$line" ]; then
		assert_contains "$line" "\"POST $path HTTP/2\" 0 DPE http2_stream_protocol_error" \
			"$path: logged as a downstream protocol error"
	fi
done

# --- what is allowed arrives with one framing ------------------------------------------------
before=$(mg_upstream_count a)
out=$($H2C --port "$MG_PORT" --method POST --path /sha256 --header "content-length: 10" --body 10)
assert_match "$out" "^status 200 " "a body that matches its content-length is forwarded"
out=$($H2C --port "$MG_PORT" --method POST --path /sha256 --body 10)
assert_match "$out" "^status 200 " "a POST without content-length is forwarded (chunked)"
assert_eq "$(mg_upstream_count a)" "$((before + 2))" "both reached the upstream, once each"
out=$($H2C --port "$MG_PORT" --path /echo)
assert_match "$out" "^status 200 " "the connection-level state is sound afterwards"

mg_finish
