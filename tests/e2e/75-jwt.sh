#!/usr/bin/env bash
# 75-jwt: RequestAuthentication at the gateway, as Istio's JWT tasks use it, with tokens
# that python3-cryptography signs.  No token passes (a DENY on notRequestPrincipals makes
# /headers need one); a valid token (RS256, PS256, from the Authorization field or
# ?access_token=) reaches the upstream without its Authorization field and with the
# claim and payload fields the rule outputs (the client's own of those names dropped);
# bad tokens get 401 with Envoy's words and a www-authenticate challenge: malformed,
# expired, signed by an unknown key, of an unknown issuer, of an audience not allowed;
# an issuer whose jwksUri (served here over HTTP) gives the keys verifies ES256 tokens, one
# whose jwksUri cannot be fetched refuses its tokens and the log says why, and one over
# HTTPS (a certificate for 127.0.0.1 from the test CA, trusted through SSL_CERT_FILE)
# verifies; claims route (@request.auth.claims.groups, a list) and authorize
# (request.auth.claims[groups]); the same over HTTP/2; a reload with a broken key set is
# refused with its position, one that rotates the keys refuses the old tokens.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
"$PYTHON" -c 'import cryptography' 2>/dev/null || mg_skip "python3-cryptography is not installed"
mg_upstream a
JWT="$MG_LIBDIR/../upstream/mg-jwt.py"
KEYS="$MG_DIR/keys"
"$PYTHON" "$JWT" keys "$KEYS" || mg_fatal "cannot make keys"
JWKS_PORT=$(mg_port) || mg_fatal "no free port"
DEAD_PORT=$(mg_port) || mg_fatal "no free port"
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$KEYS" "$JWKS_PORT" \
	>"$MG_DIR/jwks-server.log" 2>&1 &
mg__track $!
mg_wait_until 10 curl -sf -o /dev/null "http://127.0.0.1:$JWKS_PORT/jwks-ec.json" ||
	mg_fatal "the key set server did not start"
# the same keys over HTTPS, with a certificate for 127.0.0.1 from the test CA, which
# meshgate trusts through SSL_CERT_FILE (OpenSSL's default verify paths)
mg_pki
JWKS_TLS_PORT=$(mg_port) || mg_fatal "no free port"
"$PYTHON" - "$KEYS" "$JWKS_TLS_PORT" "$PKI/loopback.crt" "$PKI/loopback.key" \
	>"$MG_DIR/jwks-tls.log" 2>&1 <<'JWKSPY' &
import functools, http.server, ssl, sys
d, port, crt, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), h)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
JWKSPY
mg__track $!
mg_wait_until 10 curl -sf -o /dev/null --cacert "$PKI/ca.crt" \
	"https://127.0.0.1:$JWKS_TLS_PORT/jwks-ec.json" ||
	mg_fatal "the HTTPS key set server did not start"
export SSL_CERT_FILE="$PKI/ca.crt"

tok() { "$PYTHON" "$JWT" token "$KEYS" "$@"; }
ISS=testing@secure.istio.io
GOOD=$(tok rsa RS256 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"groups\":[\"group1\",\"group2\"]}")
PSS=$(tok rsa PS256 "{\"iss\":\"$ISS\",\"sub\":\"bob\",\"groups\":[\"group2\"]}")
EXPIRED=$(tok rsa RS256 "{\"iss\":\"$ISS\",\"sub\":\"alice\"}" -600)
FORGED=$(tok other RS256 "{\"iss\":\"$ISS\",\"sub\":\"alice\"}" 3600 rsa)
STRANGER=$(tok rsa RS256 '{"iss":"someone@else","sub":"alice"}')
EC=$(tok ec ES256 '{"iss":"ec-issuer","sub":"carol","aud":"https://api.example.com/"}')
EC_AUD=$(tok ec ES256 '{"iss":"ec-issuer","sub":"carol","aud":"other"}')
UNFETCHED=$(tok rsa RS256 '{"iss":"unreachable","sub":"dave"}')
EC_HTTPS=$(tok ec ES256 '{"iss":"ec-over-https","sub":"erin"}')

mg_start_config <<EOF
workers: 2
labels: {istio: ingressgateway}
EOF
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
  - match:
    - uri: {prefix: /claims}
      headers:
        "@request.auth.claims.groups": {exact: group1}
    route: [{destination: {host: a}}]
  - match: [{uri: {prefix: /claims}}]
    directResponse: {status: 404, body: {string: "not for you\n"}}
  - route: [{destination: {host: a}}]
EOF
# rules JWKS-TEXT: the RequestAuthentication and the policies that use it
rules() {
	cat <<EOF
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: "$ISS"
    jwks: '$1'
    outputClaimToHeaders:
    - {header: x-jwt-sub, claim: sub}
    - {header: x-jwt-groups, claim: groups}
    outputPayloadToHeader: x-jwt-payload
  - issuer: ec-issuer
    jwksUri: http://127.0.0.1:$JWKS_PORT/jwks-ec.json
    audiences: [api.example.com]
    forwardOriginalToken: true
  - issuer: unreachable
    jwksUri: http://127.0.0.1:$DEAD_PORT/jwks.json
    timeout: 2s
  - issuer: ec-over-https
    jwksUri: https://127.0.0.1:$JWKS_TLS_PORT/jwks-ec.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: [/headers]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: group1-only}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/group*"]}}]
    when: [{key: "request.auth.claims[groups]", notValues: [group1]}]
EOF
}
rules "$(cat "$KEYS/jwks-rsa.json")" | mg_resource rules
assert_valid
assert_contains "$MG_VALIDATE_OUT" "JWT issuers: 4 (jwksUris are fetched when serving)" \
	"-t counts the issuers and fetches nothing"
mg_start
assert_contains "$(cat "$MG_LOG")" "jwksUri http://127.0.0.1:$DEAD_PORT/jwks.json: connect" \
	"the log says why a jwksUri gave no keys"

# refused TOKEN STATUS-TEXT: the last response was our 401 with Envoy's words
refused() {
	assert_eq "$MG_STATUS" 401 "$1: 401"
	assert_eq "$(cat "$MG_BODY")" "$2" "$1: \"$2\""
	assert_contains "$(mg_header www-authenticate)" 'Bearer realm="http://' "$1: a Bearer challenge"
	assert_contains "$(mg_header www-authenticate)" 'error="invalid_token"' "$1: ... naming the error"
}

before=$(mg_upstream_count a)
# no token: passes RequestAuthentication; the DENY policy wants one on /headers only
assert_status GET /ip 200
assert_status GET /headers 403
assert_eq "$(cat "$MG_BODY")" "RBAC: access denied" "no token on /headers: the DENY policy's 403"
# a valid token
assert_status GET /headers 200 -H "Authorization: Bearer $GOOD" -H "x-jwt-sub: mallory"
assert_eq "$(mg_json headers.authorization)" "" "the upstream does not get the token"
assert_eq "$(mg_json headers.x-jwt-sub)" alice "outputClaimToHeaders: sub"
assert_eq "$(mg_json headers.x-jwt-groups)" "group1,group2" "outputClaimToHeaders: a list claim"
payload=$(mg_json headers.x-jwt-payload)
assert_eq "$payload" "$(echo "$GOOD" | cut -d. -f2)" "outputPayloadToHeader: the token's payload"
assert_status GET /ip 200 -H "x-jwt-sub: mallory"
assert_eq "$(mg_json headers.x-jwt-sub)" "" "the client's own x-jwt-sub never passes"
assert_status GET /headers 200 -H "authorization: bearer $PSS"
assert_status GET "/headers?access_token=$GOOD" 200
# bad tokens
assert_status GET /ip 401 -H "Authorization: Bearer deadbeef"
refused malformed "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
assert_status GET /ip 401 -H "Authorization: Bearer $EXPIRED"
refused expired "Jwt is expired"
assert_status GET /ip 401 -H "Authorization: Bearer $FORGED"
refused "signed by another key" "Jwt verification fails"
assert_status GET /ip 401 -H "Authorization: Bearer $STRANGER"
refused "unknown issuer" "Jwt issuer is not configured"
assert_status GET "/ip?access_token=$EXPIRED" 401
assert_status GET /ip 401 -H "Authorization: Bearer $UNFETCHED"
refused "issuer without keys" "Jwks remote fetch is failed"
assert_status GET /ip 401 -H "Authorization: Bearer $EC_AUD"
refused "audience" "Audiences in Jwt are not allowed"
mg_wait_until 5 grep -qF "jwt_authn_access_denied{Jwt_is_expired}" "$MG_ACCESS_LOG"
assert_contains "$(cat "$MG_ACCESS_LOG")" '"GET /ip HTTP/1.1" 401 - jwt_authn_access_denied{Jwt_is_expired}' \
	"the access log says why"
assert_eq "$(mg_upstream_count a)" "$((before + 5))" "refused requests never reach the upstream"
assert_cmp "$(mg_metric downstream_rq_jwt_denied)" -ge 7 "refusals are counted"
assert_cmp "$(mg_metric downstream_rq_jwt_verified)" -ge 3 "verified tokens are counted"
# keys from a jwksUri; forwardOriginalToken keeps the field
assert_status GET /headers 200 -H "Authorization: Bearer $EC"
assert_eq "$(mg_json headers.authorization)" "Bearer $EC" "forwardOriginalToken: the upstream gets it"
# keys from an HTTPS jwksUri, verified against the CA
assert_status GET /headers 200 -H "Authorization: Bearer $EC_HTTPS"
# claims: routing and authorization
assert_status GET /claims 200 -H "Authorization: Bearer $GOOD"
assert_eq "$(mg_json name)" a "group1 in the groups list: routed by the claim"
assert_status GET /claims 404 -H "Authorization: Bearer $PSS"
assert_status GET /claims 404
assert_status GET /group 200 -H "Authorization: Bearer $GOOD"
assert_status GET /group 403 -H "Authorization: Bearer $PSS"
assert_status GET /group 403
# /explain tells the JWT verdict and routes on its claims
explain() { curl -s --max-time 5 "http://127.0.0.1:$MG_ADMIN_PORT/explain?port=$MG_PORT&$1"; }
out=$(explain "host=x&path=/claims&header=authorization:Bearer%20$GOOD")
assert_contains "$out" "verified, request principal $ISS/alice" "/explain: the token's principal"
out=$(explain "host=x&path=/claims&header=authorization:Bearer%20$PSS")
assert_contains "$out" 'match[0]: @request.auth.claims.groups: no value matched' \
	"/explain: why the claim route did not match"
out=$(explain "host=x&path=/ip&header=authorization:Bearer%20$FORGED")
assert_contains "$out" "REFUSED -> 401 Jwt verification fails" "/explain: why a 401"

# HTTP/2
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
	-H "Authorization: Bearer $GOOD" "$(mg_url /headers)")
assert_eq "$out" "200 2" "HTTP/2: a valid token"
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $FORGED" "$(mg_url /ip)")
assert_eq "$out" 401 "HTTP/2: a forged token"

# a broken key set is refused with its position; the old keys keep verifying
rules '{"keys": [{"kty": "RSA", "n": "AQAB"}]}' | mg_resource rules
assert_reload refused
assert_contains "$MG_RELOAD_LINES" "rules.yaml:" "the refusal names the file"
assert_contains "$MG_RELOAD_LINES" "jwks: \"e\" is missing" "... and says why"
assert_status GET /headers 200 -H "Authorization: Bearer $GOOD"
# keys rotated: a token verified (and remembered) under the old keys is refused now
rules "$(cat "$KEYS/jwks-ec.json")" | mg_resource rules
assert_reload applied
assert_status GET /headers 401 -H "Authorization: Bearer $GOOD"
refused "rotated keys" "Jwks doesn't have key to match kid or alg from Jwt"
mg_finish
