#!/bin/sh
# Config scale benchmark (DESIGN.md §6): load + link + compile time and peak memory of
# `meshgate -t` for N virtual hosts x 10 routes.  Target: 10 000 vhosts x 10 routes in
# <= 1 s and <= 64 MiB.  A benchmark, not a test: it prints numbers and never fails on them.
#
# Usage: bench/config-scale.sh [path/to/meshgate]     (default: ./meshgate of this tree)
#        bench/config-scale.sh --gen N DIR            only write the config for N vhosts in DIR
# Environment: SIZES="10 1000 10000" (vhost counts), RUNS=3 (best wall time of RUNS),
#              KEEP=1 keeps the generated configs (their directory is printed),
#              GW_PORT=18080 (the Gateway's port), UPSTREAM_PORT (when set, the four
#              endpoints 127.0.0.1-4 are reached on this port: bench/run serves them).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
gw_port=${GW_PORT:-18080}
up_port=${UPSTREAM_PORT:-}
gen_only=
if [ "${1:-}" = --gen ]; then
	[ $# -eq 3 ] || { echo "usage: config-scale.sh --gen N DIR" >&2; exit 2; }
	gen_only=1
fi
bin=${1:-$here/meshgate}
sizes=${SIZES:-10 1000 10000}
runs=${RUNS:-3}

[ -n "$gen_only" ] || [ -x "$bin" ] ||
	{ echo "config-scale: $bin is not executable (build first)" >&2; exit 1; }
timer=
if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
	timer=/usr/bin/time
else
	echo "config-scale: /usr/bin/time (GNU time) not found: no memory figures" \
	     "(apt-get install -y time)" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mg-config-scale.XXXXXX")
if [ -z "${KEEP:-}" ]; then
	trap 'rm -rf "$tmp"' EXIT INT TERM
fi

# One directory per size: main.yaml, base.yaml (Gateway, ServiceEntry, DestinationRule) and
# vs.yaml with N VirtualServices, each one host and 10 routes mixing exact, prefix, header
# and regex matches, split over the two subsets of one ServiceEntry.  One regex per vhost is
# unique (per-service paths), the other is shared by all (a common header pattern).
gen() {
	n=$1 dir=$2
	ports=
	[ -z "$up_port" ] || ports=" ports: {http: $up_port},"
	eps=$(for a in 1 2 3 4; do
		v=v1
		[ "$a" -le 2 ] || v=v2
		printf '\n  - {address: 127.0.0.%d,%s labels: {version: %s}}' "$a" "$ports" "$v"
	done)
	mkdir -p "$dir"
	cat >"$dir/main.yaml" <<-MAIN
	labels: {istio: ingressgateway}
	admin: {address: ""}
	resources: [base.yaml, vs.yaml]
	MAIN
	cat >"$dir/base.yaml" <<-BASE
	apiVersion: networking.istio.io/v1
	kind: Gateway
	metadata: {name: bench-gw}
	spec:
	  selector: {istio: ingressgateway}
	  servers:
	  - port: {number: $gw_port, name: http, protocol: HTTP}
	    hosts: ["*"]
	---
	apiVersion: networking.istio.io/v1
	kind: ServiceEntry
	metadata: {name: backend}
	spec:
	  hosts: [backend.bench.internal]
	  location: MESH_INTERNAL
	  ports:
	  - {number: 8080, name: http, protocol: HTTP}
	  resolution: STATIC
	  endpoints:$eps
	---
	apiVersion: networking.istio.io/v1
	kind: DestinationRule
	metadata: {name: backend}
	spec:
	  host: backend.bench.internal
	  subsets:
	  - {name: v1, labels: {version: v1}}
	  - {name: v2, labels: {version: v2}}
	BASE
	awk -v n="$n" 'BEGIN {
		d1 = "    - destination: {host: backend.bench.internal, subset: v1}"
		d2 = "    - destination: {host: backend.bench.internal, subset: v2}"
		for (i = 0; i < n; i++) {
			print "---"
			print "apiVersion: networking.istio.io/v1"
			print "kind: VirtualService"
			printf "metadata: {name: vh-%d}\n", i
			print "spec:"
			printf "  hosts: [vh-%d.bench.example]\n", i
			print "  gateways: [bench-gw]"
			print "  http:"
			printf "  - match: [{uri: {exact: /svc-%d/health}}]\n    route:\n%s\n", i, d1
			printf "  - match: [{uri: {prefix: /svc-%d/api/v2/}}]\n    route:\n%s\n", i, d2
			print  "  - match: [{headers: {x-canary: {exact: \"true\"}}}]\n    route:\n" d2
			printf "  - match: [{uri: {regex: \"/svc-%d/items/[0-9]+\"}}]\n    route:\n%s\n", i, d1
			print  "  - match: [{headers: {user-agent: {regex: \".*Mobile.*\"}}}]\n    route:\n" d2
			printf "  - match: [{uri: {prefix: /svc-%d/admin}, method: {exact: POST}}]\n", i
			print  "    route:\n" d1
			printf "  - match: [{uri: {exact: /svc-%d/login}}, {uri: {exact: /svc-%d/logout}}]\n", i, i
			print  "    route:\n" d1
			printf "  - match: [{uri: {prefix: /svc-%d/static/}, headers: {accept: {prefix: image/}}}]\n", i
			print  "    route:\n" d2
			printf "  - match: [{uri: {prefix: /svc-%d/}}]\n", i
			print  "    route:\n" d1 "\n      weight: 90\n" d2 "\n      weight: 10"
			print  "  - route:\n" d1
		}
	}' >"$dir/vs.yaml"
}

if [ -n "$gen_only" ]; then
	gen "$2" "$3"
	exit 0
fi

# Prints "wall_seconds max_rss_kib" of one `meshgate -t` run; exits when -t fails.  Wall time
# is taken around the run (GNU time prints it in centiseconds only).
measure() {
	dir=$1 out=$tmp/time.out
	start=$(date +%s%N)
	if ! $timer ${timer:+-v -o "$out"} "$bin" -t -c "$dir/main.yaml" >"$tmp/t.log" 2>&1; then
		echo "config-scale: meshgate -t failed on $dir:" >&2
		head -20 "$tmp/t.log" >&2
		exit 1
	fi
	end=$(date +%s%N)
	rss=0
	[ -n "$timer" ] && rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out")
	echo "$start $end $rss" | awk '{ printf "%.3f %d\n", ($2 - $1) / 1e9, $3 }'
}

printf '%-8s %-7s %-9s %-10s %-10s %s\n' vhosts routes yaml_KiB wall_s maxrss_MiB note
for n in $sizes; do
	dir=$tmp/n$n
	gen "$n" "$dir"
	kib=$(du -k "$dir" | awk '{ print $1 }')
	best='' rss=0
	i=0
	while [ "$i" -lt "$runs" ]; do
		r=$(measure "$dir") || exit 1
		wall=${r% *} peak=${r#* }
		if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$wall
		fi
		if [ "$peak" -gt "$rss" ]; then rss=$peak; fi
		i=$((i + 1))
	done
	note=
	if [ "$n" -eq 10000 ]; then
		note=$(awk -v w="$best" -v r="$rss" 'BEGIN {
			printf "target <=1 s %s, <=64 MiB %s", (w <= 1 ? "met" : "MISSED"),
				(r == 0 ? "n/a" : (r / 1024 <= 64 ? "met" : "MISSED")) }')
	fi
	printf '%-8s %-7s %-9s %-10s %-10s %s\n' "$n" $((n * 10)) "$kib" "$best" \
		"$(awk -v r="$rss" 'BEGIN { printf "%.1f", r / 1024 }')" "$note"
done
tail -1 "$tmp/t.log"
[ -n "${KEEP:-}" ] && echo "configs kept in $tmp"
exit 0
