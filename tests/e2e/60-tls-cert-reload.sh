#!/usr/bin/env bash
# 60-tls-cert-reload: certificate files are watched and swapped without dropping
# connections. A credentialName directory in the Kubernetes secret-volume layout (the
# "..data" symlink swapped to a new directory) and a plain serverCertificate file
# replaced by rename are both picked up without a signal: new connections get the new
# certificate (serial checked with openssl s_client), a keep-alive TLS connection opened
# before the swap keeps getting answers. A broken replacement (key mismatch, expired) is
# refused with the file named and the previous certificate keeps serving; fixing the
# file is picked up again. Everything is polled with deadlines, nothing sleeps a fixed
# amount.

# Log lines come from a reload that follows a file event: give them time on a loaded machine.
MG_LOG_WAIT=${MG_LOG_WAIT:-20}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_need openssl
mg_upstream a
mg_pki

# gen NAME HOST: a fresh ECDSA certificate for HOST signed by the test CA, NAME.{crt,key}
gen() {
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
	if ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" &&
		openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" &&
		openssl x509 -req -in "$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
			-CAcreateserial -days 30 -sha256 -extfile "$1.ext" -out "$1.crt"; } 2>/dev/null; then
		mg_fatal "cannot make a certificate for $2"
	fi
}
serial_of_file() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }

G="$MG_DIR/gen"
mkdir -p "$G"
for n in a1 a2; do gen "$G/$n" a.example.com; done
for n in b1 b2 b3; do gen "$G/$n" b.example.com; done

# a.example.com: credentialName in the layout of a Kubernetes secret volume
CREDS="$MG_DIR/creds"
mkdir -p "$CREDS/a-rot/..v1"
cp "$G/a1.crt" "$CREDS/a-rot/..v1/tls.crt"
cp "$G/a1.key" "$CREDS/a-rot/..v1/tls.key"
ln -s ..v1 "$CREDS/a-rot/..data"
ln -s ..data/tls.crt "$CREDS/a-rot/tls.crt"
ln -s ..data/tls.key "$CREDS/a-rot/tls.key"
# b.example.com: plain files
PLAIN="$MG_DIR/plain"
mkdir -p "$PLAIN"
cp "$G/b1.crt" "$PLAIN/b.crt"
cp "$G/b1.key" "$PLAIN/b.key"

mg_start_config <<EOF
workers: 2
credentialsDir: $CREDS
EOF
mg_resource all <<EOF
$(mg_yaml_gateway_head)
$(mg_yaml_server https-a HTTPS '[a.example.com]' '{mode: SIMPLE, credentialName: a-rot}')
$(mg_yaml_server https-b HTTPS '[b.example.com]' "{mode: SIMPLE, serverCertificate: $PLAIN/b.crt, privateKey: $PLAIN/b.key}")
$(mg_yaml_service a "$UP_A_PORT")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: a}}]
EOF
mg_start
assert_log_contains "watching [0-9]+ TLS files for changes"

# served_serial SNI: the serial of the certificate a new connection gets
served_serial() {
	openssl s_client -connect "127.0.0.1:$MG_PORT" -servername "$1" -CAfile "$PKI/ca.crt" \
		</dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
# shellcheck disable=SC2317 # called through mg_wait_until
serial_is() { [ "$(served_serial "$1")" = "$2" ]; }
count() { grep -Ec -- "$1" "$MG_LOG"; }
# wait_log ERE N: until the log has more than N lines matching ERE (20 s at most)
# shellcheck disable=SC2317 # called through mg_wait_until
more_than() { [ "$(count "$1")" -gt "$2" ]; }
wait_log() { mg_wait_until 20 more_than "$1" "$2"; }

assert_eq "$(served_serial a.example.com)" "$(serial_of_file "$G/a1.crt")" "a: first certificate"
assert_eq "$(served_serial b.example.com)" "$(serial_of_file "$G/b1.crt")" "b: first certificate"

# A keep-alive TLS connection opened now: one request, then another on the same
# connection when $MG_DIR/go appears.
cat >"$MG_DIR/keepalive.py" <<'EOF'
import os, socket, ssl, sys, time
port, host, ca, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                    server_hostname=host)
print("serial", t.getpeercert()["serialNumber"], flush=True)
f = t.makefile("rb")
def get():
    t.sendall(b"GET /echo HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    status = f.readline().split()[1].decode()
    n = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    f.read(n)
    return status
print("first", get(), flush=True)
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
print("second", get(), flush=True)
EOF
"$PYTHON" "$MG_DIR/keepalive.py" "$MG_PORT" a.example.com "$PKI/ca.crt" "$MG_DIR/go" \
	>"$MG_DIR/keepalive.out" 2>"$MG_DIR/keepalive.err" &
KA_PID=$!
mg__track "$KA_PID"
# shellcheck disable=SC2317 # called through mg_wait_until
first_done() { grep -q '^first ' "$MG_DIR/keepalive.out"; }
mg_wait_until 20 first_done || mg_fail "keep-alive client got no first answer"
assert_eq "$(sed -n 's/^first //p' "$MG_DIR/keepalive.out")" 200 "keep-alive connection: first answer"

# Kubernetes-style rotation of a: a new directory, then the ..data symlink swapped.
ok=$(count 'reload ok')
mkdir "$CREDS/a-rot/..v2"
cp "$G/a2.crt" "$CREDS/a-rot/..v2/tls.crt"
cp "$G/a2.key" "$CREDS/a-rot/..v2/tls.key"
ln -s ..v2 "$CREDS/a-rot/..data_tmp"
mv -T "$CREDS/a-rot/..data_tmp" "$CREDS/a-rot/..data"
rm -rf "$CREDS/a-rot/..v1"
if wait_log 'reload ok' "$ok"; then mg_ok "symlink swap reloaded without a signal"; else
	mg_fail "no reload after the symlink swap"
fi
assert_log_contains "a-rot/tls\.(crt|key) changed"
if mg_wait_until 10 serial_is a.example.com "$(serial_of_file "$G/a2.crt")"; then
	mg_ok "a: new connections get the rotated certificate"
else
	mg_fail "a: still serving $(served_serial a.example.com)"
fi

# The connection opened before the rotation still answers.
touch "$MG_DIR/go"
# shellcheck disable=SC2317 # called through mg_wait_until
second_done() { grep -q '^second ' "$MG_DIR/keepalive.out"; }
mg_wait_until 20 second_done
assert_eq "$(sed -n 's/^second //p' "$MG_DIR/keepalive.out")" 200 \
	"keep-alive connection opened before the rotation still answers"
assert_eq "$(sed -n 's/^serial //p' "$MG_DIR/keepalive.out" | sed 's/^0*//')" \
	"$(serial_of_file "$G/a1.crt" | sed 's/^0*//')" "it kept the certificate it started with"

# Rename into place of b (certificate then key, as a deploy tool would): one reload.
ok=$(count 'reload ok')
cp "$G/b2.crt" "$PLAIN/.b.crt.tmp" && mv "$PLAIN/.b.crt.tmp" "$PLAIN/b.crt"
cp "$G/b2.key" "$PLAIN/.b.key.tmp" && mv "$PLAIN/.b.key.tmp" "$PLAIN/b.key"
wait_log 'reload ok' "$ok"
if mg_wait_until 10 serial_is b.example.com "$(serial_of_file "$G/b2.crt")"; then
	mg_ok "b: renamed-into-place certificate served"
else
	mg_fail "b: still serving $(served_serial b.example.com)"
fi

# A certificate that does not match the key: refused, the file named, b2 keeps serving.
bad=$(count 'reload failed')
cp "$G/b3.crt" "$PLAIN/.b.crt.tmp" && mv "$PLAIN/.b.crt.tmp" "$PLAIN/b.crt"
if wait_log 'reload failed' "$bad"; then mg_ok "mismatched key: reload refused"; else
	mg_fail "mismatched key: no refused reload"
fi
assert_log_contains "does not match certificate $PLAIN/b.crt"
assert_eq "$(served_serial b.example.com)" "$(serial_of_file "$G/b2.crt")" \
	"b: the previous certificate keeps serving"
assert_eq "$(served_serial a.example.com)" "$(serial_of_file "$G/a2.crt")" \
	"a: unaffected by b's broken file"

# An expired pair: refused too, naming the file.
bad=$(count 'reload failed')
cp "$PKI/expired.key" "$PLAIN/.b.key.tmp" && mv "$PLAIN/.b.key.tmp" "$PLAIN/b.key"
cp "$PKI/expired.crt" "$PLAIN/.b.crt.tmp" && mv "$PLAIN/.b.crt.tmp" "$PLAIN/b.crt"
wait_log 'reload failed' "$bad"
assert_log_contains "$PLAIN/b.crt expired on"
assert_eq "$(served_serial b.example.com)" "$(serial_of_file "$G/b2.crt")" \
	"b: still the previous certificate after an expired replacement"

# The good pair written back in place (no rename): picked up.
ok=$(count 'reload ok')
cat "$G/b3.key" >"$PLAIN/b.key"
cat "$G/b3.crt" >"$PLAIN/b.crt"
wait_log 'reload ok' "$ok"
if mg_wait_until 10 serial_is b.example.com "$(serial_of_file "$G/b3.crt")"; then
	mg_ok "b: fixed files served"
else
	mg_fail "b: still serving $(served_serial b.example.com)"
fi

# SIGHUP reloads the files as well (nothing changed: the same certificate).
assert_reload applied
assert_eq "$(served_serial b.example.com)" "$(serial_of_file "$G/b3.crt")" "b after SIGHUP"

assert_alive
mg_finish
