#!/usr/bin/env bash
# 01-quickstart: the shipped example configurations do what the README says.
# conf/examples/quickstart.yaml (on test ports) validates, starts, answers
# hello/health/redirect by itself and logs in Envoy's text format; its
# commented-out backend example, uncommented, validates and routes after a
# reload; the packaged conf/meshgate.yaml validates.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup

# The example, moved to this test's ports; access log "-" lands in $MG_OUT.
cp -R "$MG_TOP_SRCDIR/conf/examples/." "$MG_DIR/"
chmod -R u+w "$MG_DIR" # the source tree is read-only under make distcheck
sed -i "s/127\.0\.0\.1:15000/127.0.0.1:$MG_ADMIN_PORT/" "$MG_DIR/quickstart.yaml"
sed -i "s/number: 8080/number: $MG_PORT/" "$MG_DIR/quickstart.d/hello.yaml"
MG_CONFIG="$MG_DIR/quickstart.yaml"
# see mg_start_config: stay root when running as root
if [ "$(id -u)" = 0 ]; then echo "user: root" >>"$MG_CONFIG"; fi

assert_valid "quickstart.yaml is valid"
assert_valid "conf/meshgate.yaml is valid" "$MG_TOP_SRCDIR/conf/meshgate.yaml"

mg_start
H='Host: hello.local'
assert_status GET / 200 -H "$H"
assert_eq "$(cat "$MG_BODY")" "hello from meshgate" "hello body"
assert_header x-served-by meshgate "response header set by the route"
assert_header server meshgate
assert_status GET / 200 -H 'Host: anything.example'
assert_status GET /health 200 -H "$H"
assert_eq "$(cat "$MG_BODY")" ok "health body"
assert_status GET /old 301 -H "$H"
assert_match "$(mg_header location)" '^(http://hello\.local(:[0-9]+)?)?/$' "redirect to /"
assert_status HEAD / 200 -H "$H"
assert_status GET /no-such-path 404 -H "$H"
assert_log_contains '"GET / HTTP/1.1" 200 ' "$MG_OUT"
assert_log_contains '"GET /no-such-path HTTP/1.1" 404 NR ' "$MG_OUT"

# The commented backend example, uncommented, pointed at a test upstream.
mg_upstream backend
awk 'done { sub(/^# ?/, ""); print; next } /^# ---$/ { done = 1; print "---"; next } { print }' \
	"$MG_DIR/quickstart.d/hello.yaml" |
	sed "s/http: 9001/http: $UP_BACKEND_PORT/" >"$MG_DIR/backend.yaml"
mv "$MG_DIR/backend.yaml" "$MG_DIR/quickstart.d/hello.yaml"
assert_valid "the uncommented backend example is valid"
assert_reload applied
assert_status GET /api/echo 200 -H 'Host: backend.local'
assert_header x-upstream backend
assert_eq "$(mg_json path)" /echo "rewrite /api/ -> /"
assert_eq "$(mg_upstream_count backend)" 1 "one request reached the backend"
assert_status GET / 200 -H "$H"

mg_finish
