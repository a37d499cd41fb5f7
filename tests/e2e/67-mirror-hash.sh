#!/usr/bin/env bash
# 67-mirror-hash: a mirror cluster whose DestinationRule has loadBalancer.consistentHash
# picks the copy's endpoint by that policy's key, taken from the client's request: the same
# header value (or cookie, or query parameter, or source address) always lands on the same
# mirror endpoint, different values spread; a missing key spreads as for a main request.
# A mirror never sets a cookie; a cookie the main destination's policy sets under the same
# name is the copy's key at once.  The copies are seen in the upstreams' stats file.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream main --quiet
mg_upstream cmain --quiet
for u in s1 s2 s3 s4; do mg_upstream "$u" --quiet; done

mg_start_config <<EOF
workers: 2
EOF

eps=""
for p in "$UP_S1_PORT" "$UP_S2_PORT" "$UP_S3_PORT" "$UP_S4_PORT"; do eps+=$(mg_yaml_endpoint "$p")$'\n'; done
# hashdr: the mirror pool, one DestinationRule per host (header, cookie, ip, query, sticky)
hashdr() {
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1}
spec:
  host: $1.example
  trafficPolicy: {loadBalancer: {consistentHash: $2}}
EOF
}
mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service main "$UP_MAIN_PORT")
$(mg_yaml_service cmain "$UP_CMAIN_PORT")
$(mg_yaml_service_head pool '[hdr.example, cookie.example, ip.example, query.example]')
$eps
$(hashdr hdr '{httpHeaderName: x-user}')
$(hashdr cookie '{httpCookie: {name: affinity, ttl: 3600s}}')
$(hashdr ip '{useSourceIp: true}')
$(hashdr query '{httpQueryParameterName: u}')
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cmain}
spec:
  host: cmain
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: affinity, ttl: 3600s}}}}
$(mg_yaml_routes)
  - match: [{uri: {prefix: /h/}}]
    route: [{destination: {host: main}}]
    mirror: {host: hdr.example}
  - match: [{uri: {prefix: /c/}}]
    route: [{destination: {host: main}}]
    mirror: {host: cookie.example}
  - match: [{uri: {prefix: /cm/}}]
    route: [{destination: {host: cmain}}]
    mirror: {host: cookie.example}
  - match: [{uri: {prefix: /ip/}}]
    route: [{destination: {host: main}}]
    mirror: {host: ip.example}
  - match: [{uri: {prefix: /q/}}]
    route: [{destination: {host: main}}]
    mirror: {host: query.example}
EOF
mg_start

# get PATH [CURL-ARGS...]: one request that must be answered 200 (by the main upstream).
get() {
	local path=$1 code
	shift
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$MG_CURL_TIMEOUT" "$@" "$(mg_url "$path")")
	[ "$code" = 200 ] || mg_fail "GET $path: $code, expected 200"
}
# copies ERE: how many copies (requests to s1..s4) have a target matching ERE.
copies() { awk -v re="$1" '$1 ~ /^s[1-4]$/ && $5 ~ re { c++ } END { print c + 0 }' "$MG_STATS"; }
# copy_owners ERE: the mirror endpoints that got those copies, sorted, space separated.
copy_owners() { awk -v re="$1" '$1 ~ /^s[1-4]$/ && $5 ~ re { print $1 }' "$MG_STATS" | sort -u | paste -sd' '; }
# shellcheck disable=SC2317 # called through mg_wait_until
copies_are() { [ "$(copies "$1")" -ge "$2" ]; }
# wait_copies ERE N: wait for N copies (they are sent on their own, after the answers).
wait_copies() {
	mg_wait_until 10 copies_are "$1" "$2" || mg_fail "only $(copies "$1") of $2 copies of /$1/ arrived"
	sleep 0.2 # any extra copy would show now
	assert_eq "$(copies "$1")" "$2" "$2 copies of /$1/"
}

# sticky PREFIX KEYS CURL-ARG-FORMAT: for each key, 5 requests carrying it (the format's %s);
# all copies of a key land on one mirror endpoint, and the keys spread over more than one.
sticky() {
	local prefix=$1 fmt=$3 k i all="" args
	for k in $2; do
		# shellcheck disable=SC2059 # the format is the caller's
		printf -v args -- "$fmt" "$k"
		for i in 1 2 3 4 5; do
			# shellcheck disable=SC2086 # args is two words: an option and its value
			get "/$prefix/$k/$i" $args
		done
	done
	for k in $2; do
		wait_copies "^/$prefix/$k/" 5
		assert_match "$(copy_owners "^/$prefix/$k/")" '^s[1-4]$' "$prefix: key $k: every copy on one endpoint"
		all+=" $(copy_owners "^/$prefix/$k/")"
	done
	all=$(tr ' ' '\n' <<<"$all" | sed '/^$/d' | sort -u | wc -l)
	assert_cmp "$all" -ge 2 "$prefix: 20 keys spread over $all mirror endpoints"
}
KEYS=$(seq -f 'k%g' 1 20)

# --- header --------------------------------------------------------------------------------
sticky h "$KEYS" '-Hx-user:%s'
assert_eq "$(mg_upstream_count main '^/h/')" 100 "the main upstream got every request"
# the copies agree with a reload's new generation (the table comes from endpoint names)
assert_reload applied
get /h/k7/again -H 'x-user: k7'
wait_copies '^/h/k7/' 6
assert_match "$(copy_owners '^/h/k7/')" '^s[1-4]$' "header: key k7 on the same endpoint after a reload"

# no header: no key, the copies spread (Envoy picks at random without a key)
for i in $(seq 1 20); do get "/h/nokey/$i"; done
wait_copies '^/h/nokey/' 20
assert_match "$(copy_owners '^/h/nokey/')" ' ' "header absent: the copies spread ($(copy_owners '^/h/nokey/'))"

# --- query parameter -------------------------------------------------------------------------
for k in $KEYS; do
	for i in 1 2 3 4 5; do get "/q/$k/$i?u=$k&i=$i"; done
done
owners=""
for k in $KEYS; do
	wait_copies "^/q/$k/" 5
	assert_match "$(copy_owners "^/q/$k/")" '^s[1-4]$' "query: key $k: every copy on one endpoint"
	owners+=" $(copy_owners "^/q/$k/")"
done
assert_cmp "$(tr ' ' '\n' <<<"$owners" | sed '/^$/d' | sort -u | wc -l)" -ge 2 "query: 20 keys spread"

# --- source address: every copy from 127.0.0.1 on one endpoint -----------------------------------
for i in $(seq 1 20); do get "/ip/$i"; done
wait_copies '^/ip/' 20
assert_match "$(copy_owners '^/ip/')" '^s[1-4]$' "useSourceIp: every copy from one address on one endpoint"

# --- cookie: present in the request -> sticky; absent -> no cookie is set for the mirror --------
sticky c "$KEYS" '-baffinity=%s'
assert_status GET /c/nocookie 200
assert_no_header set-cookie "a mirror's cookie policy never sets a cookie"
wait_copies '^/c/nocookie$' 1

# the main destination sets the cookie; the copy hashes by that very value, so the first
# request's copy lands where the later requests' copies (carrying the cookie) land
for j in 1 2 3 4 5 6; do
	assert_status GET "/cm/new$j/0" 200
	v=$(mg_header set-cookie | sed -n 's/^affinity="\([0-9a-f]*\)".*/\1/p')
	assert_match "$v" '^[0-9a-f]{16}$' "the main destination's policy set the cookie ($v)"
	for i in 1 2 3; do get "/cm/new$j/$i" -b "affinity=$v"; done
	wait_copies "^/cm/new$j/" 4
	assert_match "$(copy_owners "^/cm/new$j/")" '^s[1-4]$' "the copy of the request that got cookie $j is with the later ones"
done
assert_log_not_contains 'mirror.*(failed|dropped)'
assert_eq "$(mg_metric upstream_rq_mirror_failed)" 0 "no copy failed"
mg_finish
