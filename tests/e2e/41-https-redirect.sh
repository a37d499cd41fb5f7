#!/usr/bin/env bash
# 41-https-redirect: a Gateway HTTP server with tls.httpsRedirect answers every request for
# its hosts with a redirect to the same URL over https (301, or the main config's
# httpsRedirectCode): path and query kept, a ":80" port dropped, another port kept, before
# any route is tried and also for hosts no VirtualService binds. A host of another server on
# the same port is proxied normally.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a

mg_start_config <<EOF
workers: 2
EOF

mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server http-redirect HTTP '[secure.example.com, "*.secure.test"]' '{httpsRedirect: true}')
$(mg_yaml_server http-plain HTTP '[plain.example.com]')
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: [secure.example.com, plain.example.com]
  gateways: [gw]
  http:
  - name: to-a
    route: [{destination: {host: a}}]
EOF
mg_start

# redirect HOST TARGET EXPECTED-LOCATION [STATUS [curl args]]
redirect() {
	local host=$1 target=$2 want=$3 status=${4:-301}
	shift 3
	[ $# -gt 0 ] && shift
	assert_status GET "$target" "$status" -H "Host: $host" "$@"
	assert_header location "$want" "$host$target -> $want"
}

redirect secure.example.com /echo https://secure.example.com/echo
assert_header content-length 0 "the redirect has an empty body"
redirect secure.example.com '/a/b?x=1&y=two%20words' 'https://secure.example.com/a/b?x=1&y=two%20words'
redirect secure.example.com '/dir/../other/./page?q' 'https://secure.example.com/other/page?q' 301 \
	--path-as-is
redirect secure.example.com:80 /p https://secure.example.com/p
redirect secure.example.com:8080 /p https://secure.example.com:8080/p
redirect SECURE.example.com / https://SECURE.example.com/
# a host of the server that no VirtualService binds redirects as well
redirect x.secure.test /deep/path?k=v https://x.secure.test/deep/path?k=v
assert_status HEAD /echo 301 -H "Host: y.secure.test"
assert_header location https://y.secure.test/echo "HEAD is redirected too"
# a request body is not read: the redirect closes the connection
assert_status POST /form 301 -H "Host: secure.example.com" --data-binary 'a=1'
assert_header location https://secure.example.com/form
assert_header connection close "a redirected request with a body closes the connection"
assert_eq "$(mg_upstream_count a)" 0 "no redirected request reached the upstream"

# keep-alive: two redirects on one connection
out=$(printf 'GET /1 HTTP/1.1\r\nHost: secure.example.com\r\n\r\nGET /2?x HTTP/1.1\r\nHost: x.secure.test\r\n\r\n' |
	mg_raw -t 1 "$MG_PORT")
assert_contains "$out" "location: https://secure.example.com/1" "first of two pipelined"
assert_contains "$out" "location: https://x.secure.test/2?x" "second of two pipelined"
assert_eq "$(grep -c '^HTTP/1.1 301' <<<"$out")" 2 "two 301s on one connection"

# the other server's host on the same port is proxied
assert_status GET /echo 200 -H "Host: plain.example.com"
assert_header x-upstream a "plain.example.com reached upstream a"
assert_status GET /echo 404 -H "Host: nobody.example.com"
assert_log_contains '"GET /echo HTTP/1.1" 301 - https_redirect ' "$MG_ACCESS_LOG"

# /explain says why
exp=$(curl -s "http://127.0.0.1:$MG_ADMIN_PORT/explain?host=secure.example.com&path=/x")
assert_contains "$exp" "tls.httpsRedirect" "/explain names the redirect"

# 308 keeps the method: the main config chooses the code
sed -i '1i httpsRedirectCode: 308' "$MG_CONFIG"
assert_reload applied
redirect secure.example.com '/api?v=2' 'https://secure.example.com/api?v=2' 308
assert_status POST /api 308 -H "Host: x.secure.test" --data-binary '{}'
assert_header location https://x.secure.test/api
assert_status GET /echo 200 -H "Host: plain.example.com"

# a code that is not a redirect is refused at load time
sed -i 's/^httpsRedirectCode: 308$/httpsRedirectCode: 303/' "$MG_CONFIG"
assert_invalid "httpsRedirectCode: must be 301, 302, 307 or 308" "httpsRedirectCode 303 is refused"

mg_finish
