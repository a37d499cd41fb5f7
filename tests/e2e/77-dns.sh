#!/usr/bin/env bash
# 77-dns: ServiceEntry resolution DNS and DNS_ROUND_ROBIN, as Istio's egress tasks use
# them: an endpoint given by name (localhost here, so no network is needed) reaches the
# upstream (a host resolved itself is test_dnsresolve's); -t resolves nothing and says
# when it will; /clusters shows the addresses the names resolved to; a reload resolves
# again.  Where localhost also has ::1, an upstream listens there too.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a
if getent ahosts localhost | grep -q '^::1 '; then
	# localhost has an IPv6 address too: the same port there, so either address answers
	mg__upstream_run "$MG_UPSTREAM_PY" a6 --listen "[::1]:$UP_A_PORT" --name a
fi
mg_start_config <<EOF
workers: 2
EOF
mg_resource all <<EOF
$(mg_yaml_gateway)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: by-endpoint}
spec:
  hosts: [api.example.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints:
  - address: localhost
    ports: {http: $UP_A_PORT}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: api.example.internal}}]
EOF
assert_valid
assert_contains "$MG_VALIDATE_OUT" \
	"ServiceEntry default/by-endpoint: spec.resolution: its names are resolved when meshgate serves" \
	"-t resolves no name and says when it will"
assert_not_contains "$MG_VALIDATE_OUT" "has no endpoints" "... and warns of no empty cluster"
mg_start

assert_status GET /echo 200
assert_eq "$(mg_json name)" a "an endpoint given by name reaches the upstream"
clusters=$(mg_clusters)
assert_contains "$clusters" "127.0.0.1:$UP_A_PORT" "/clusters shows the address the name resolved to"
assert_not_contains "$clusters" "localhost:$UP_A_PORT" "... never the name"
for _ in 1 2 3 4 5 6; do mg_curl -o /dev/null /echo; done
assert_status GET /echo 200
mg_reload
assert_status GET /echo 200
assert_eq "$(mg_json name)" a "after a reload the names resolve again"
mg_finish
