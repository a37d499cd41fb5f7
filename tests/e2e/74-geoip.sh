#!/usr/bin/env bash
# 74-geoip: the main config's geoip section fills request headers from a MaxMind database
# (libmaxminddb), as Envoy's geoip filter does: country, city, region and AS number of the
# client (behind numTrustedProxies, the one x-forwarded-for names), never the client's own
# fields of those names; an AuthorizationPolicy denies by country, a VirtualService routes
# by it, the upstream sees them, HTTP/2 too; an address the database does not know gets
# none; a database that cannot be opened is refused with its position, and a reload keeps
# the old one.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
DB="$MG_DIR/geo.mmdb"
"$PYTHON" "$MG_LIBDIR/../upstream/mg-mmdb-write.py" "$DB" \
	"203.0.113.0/24=DE:Berlin:BE:64500" "203.0.113.128/25=FR:Paris:IDF" \
	"10.0.0.0/8=US::CA:65001" "2001:db8::/32=JP" || mg_fatal "cannot write $DB"

main_config() { # DATABASE
	mg_start_config <<EOF
workers: 2
numTrustedProxies: 1
geoip:
  database: $1
  headers: {country: x-geo-country, city: x-geo-city, region: X-Geo-Region, asn: x-geo-asn}
EOF
}
main_config "$DB"
mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{headers: {x-geo-country: {exact: JP}}}]
    directResponse: {status: 200, body: {string: "konnichiwa\n"}}
  - route: [{destination: {host: a}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-fr}
spec:
  action: DENY
  rules:
  - when: [{key: "request.headers[x-geo-country]", values: [FR]}]
EOF
assert_valid
mg_start

from() { # IP [curl args...]: GET /echo as if from IP (one trusted proxy in front)
	local ip=$1
	shift
	assert_status GET /echo 200 -H "X-Forwarded-For: $ip" "$@"
}
from 203.0.113.5
assert_eq "$(mg_json headers.x-geo-country)" DE "country"
assert_eq "$(mg_json headers.x-geo-city)" Berlin "city"
assert_eq "$(mg_json headers.x-geo-region)" BE "region (its configured name is lower-cased)"
assert_eq "$(mg_json headers.x-geo-asn)" 64500 "AS number"
from 10.9.8.7 -H 'X-Geo-Country: FR' -H 'x-geo-city: Paris'
assert_eq "$(mg_json headers.x-geo-country)" US "the client's own x-geo-country is replaced"
assert_eq "$(mg_json headers.x-geo-city)" "" "... and its x-geo-city dropped (the database has none)"
assert_eq "$(mg_json headers.x-geo-asn)" 65001 "... the rest from the database"
from 192.0.2.1 -H 'x-geo-country: DE'
assert_eq "$(mg_json headers.x-geo-country)" "" "an unknown address gets no geo headers"
assert_status GET /echo 200 -H 'x-geo-country: FR'
assert_eq "$(mg_json headers.x-geo-country)" "" "no x-forwarded-for: the peer (127.0.0.1), unknown"

assert_status GET /echo 403 -H 'X-Forwarded-For: 203.0.113.200'
assert_contains "$(cat "$MG_BODY")" "RBAC: access denied" "France is denied by the policy on x-geo-country"
assert_status GET /echo 200 -H 'X-Forwarded-For: 203.0.113.200, 203.0.113.5'
assert_status GET /echo 200 -H 'X-Forwarded-For: 2001:db8::7'
assert_eq "$(cat "$MG_BODY")" "konnichiwa" "a VirtualService routes on the country"

out=$(curl -s --http2-prior-knowledge -H 'X-Forwarded-For: 203.0.113.9' "$(mg_url /echo)")
assert_contains "$out" '"x-geo-country": "DE"' "HTTP/2 requests get them too"

# a database that cannot be opened: refused with its position; the old one stays
main_config "$MG_DIR/missing.mmdb"
assert_invalid "geoip.database: cannot open $MG_DIR/missing.mmdb"
assert_reload refused
from 203.0.113.5
assert_eq "$(mg_json headers.x-geo-country)" DE "the running configuration keeps its database"
printf 'not a database' >"$MG_DIR/bad.mmdb"
main_config "$MG_DIR/bad.mmdb"
assert_invalid "cannot open $MG_DIR/bad.mmdb"
mg_finish
