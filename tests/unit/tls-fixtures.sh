#!/bin/sh
# Throwaway PKI for the TLS tests: tls-fixtures.sh DIR
#
# Everything is generated fresh with the openssl CLI into DIR (created if missing), so the
# tests never ship keys and never depend on the clock of whoever made them.
#
#   ca.{crt,key}                 test root CA (ECDSA P-256)
#   int.{crt,key}                intermediate CA signed by the root
#   other-ca.{crt,key}           an unrelated root (for wrong-CA client certificates)
#   a.{crt,key}                  a.example.com (ECDSA P-256, signed by the root)
#   wild.{crt,key}               *.wild.example.com
#   default.{crt,key}            default.example.com (served for "*" and clients without SNI)
#   dual-rsa.{crt,key}           dual.example.com, RSA 2048
#   dual-ec.{crt,key}            dual.example.com, ECDSA P-256
#   chain.{crt,key}              chain.example.com signed by the intermediate; chain.crt holds
#                                leaf + intermediate
#   expired.{crt,key}            expired.example.com, validity 2020-01-01 .. 2020-02-01
#   soon.{crt,key}               soon.example.com, expires in 3 days
#   client.{crt,key}             client certificate: URI spiffe://cluster.local/ns/default/sa/client
#                                and DNS client.example.com, O=meshgate "test", CN=client
#   revoked.{crt,key}            client certificate revoked by ca.crl
#   wrong-client.{crt,key}       client certificate signed by other-ca
#   mesh-server.{crt,key}        a mesh workload's certificate: URI
#                                spiffe://cluster.local/ns/default/sa/server, server and client
#                                use (what a sidecar presents)
#   ca.crl                       CRL of the root revoking revoked.crt
#   creds/NAME/...               credentialName layouts:
#     a-cred/{tls.crt,tls.key,ca.crt}, dual-rsa/{tls.crt,tls.key}, dual-ec/{tls.crt,tls.key},
#     k8s-names/{cert,key,cacert}, split/{tls.crt,tls.key} + split-cacert/ca.crt,
#     crl-cred/{tls.crt,tls.key,ca.crt,ca.crl}
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
command -v openssl >/dev/null 2>&1 || {
	echo "$0: openssl CLI not found" >&2
	exit 77
}

D=$1
mkdir -p "$D"
cd "$D"

# ec_key NAME / rsa_key NAME: a fresh private key in NAME.key
ec_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null
}
rsa_key() {
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
}

# sign NAME ISSUER DAYS EXTFILE SUBJECT: NAME.csr signed by ISSUER into NAME.crt
sign() {
	openssl req -new -key "$1.key" -subj "$5" -out "$1.csr" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
		-days "$3" -sha256 -extfile "$4" -out "$1.crt" 2>/dev/null
	rm -f "$1.csr"
}

# server_ext FILE SANS: extensions of a TLS server certificate
server_ext() {
	cat >"$1" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $2
EOF
}

client_ext() {
	cat >"$1" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = $2
EOF
}

# Roots and the intermediate.
openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
	-subj "/O=meshgate test/CN=meshgate test root" -days 3650 -sha256 \
	-addext "basicConstraints=critical,CA:true" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt 2>/dev/null
openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key \
	-subj "/O=somebody else/CN=other root" -days 3650 -sha256 \
	-addext "basicConstraints=critical,CA:true" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out other-ca.crt 2>/dev/null
ec_key int
cat >int.ext <<EOF
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
EOF
sign int ca 3650 int.ext "/O=meshgate test/CN=meshgate test intermediate"

# Server certificates.
server_leaf() { # NAME KEYTYPE ISSUER DAYS SANS CN
	$2 "$1"
	server_ext "$1.ext" "$5"
	sign "$1" "$3" "$4" "$1.ext" "/O=meshgate test/CN=$6"
}
server_leaf a ec_key ca 825 "DNS:a.example.com" a.example.com
server_leaf wild ec_key ca 825 "DNS:*.wild.example.com" "*.wild.example.com"
server_leaf default ec_key ca 825 "DNS:default.example.com" default.example.com
server_leaf dual-rsa rsa_key ca 825 "DNS:dual.example.com" dual.example.com
server_leaf dual-ec ec_key ca 825 "DNS:dual.example.com" dual.example.com
server_leaf soon ec_key ca 3 "DNS:soon.example.com" soon.example.com
server_leaf chain ec_key int 825 "DNS:chain.example.com" chain.example.com
server_leaf loopback ec_key ca 825 "IP:127.0.0.1" 127.0.0.1
cat int.crt >>chain.crt

# Client certificates.
ec_key client
client_ext client.ext "URI:spiffe://cluster.local/ns/default/sa/client, DNS:client.example.com"
sign client ca 825 client.ext "/O=meshgate \"test\"/CN=client"
ec_key revoked
client_ext revoked.ext "URI:spiffe://cluster.local/ns/default/sa/revoked"
sign revoked ca 825 revoked.ext "/O=meshgate test/CN=revoked"
ec_key wrong-client
client_ext wrong-client.ext "URI:spiffe://cluster.local/ns/default/sa/client"
sign wrong-client other-ca 825 wrong-client.ext "/O=somebody else/CN=client"

ec_key mesh-server
cat >mesh-server.ext <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://cluster.local/ns/default/sa/server
EOF
sign mesh-server ca 825 mesh-server.ext "/O=cluster.local/CN=server"

# `openssl ca` for what `openssl x509` cannot do here: a validity period in the past and a CRL.
mkdir -p cadb
: >cadb/index.txt
echo 1000 >cadb/serial
echo 1000 >cadb/crlnumber
cat >cadb/ca.cnf <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = cadb
database = cadb/index.txt
new_certs_dir = cadb
serial = cadb/serial
crlnumber = cadb/crlnumber
certificate = ca.crt
private_key = ca.key
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
organizationName = optional
commonName = supplied
EOF
ec_key expired
server_ext expired.ext "DNS:expired.example.com"
openssl req -new -key expired.key -subj "/O=meshgate test/CN=expired.example.com" \
	-out expired.csr 2>/dev/null
openssl ca -batch -config cadb/ca.cnf -in expired.csr -out expired.crt -notext \
	-startdate 20200101000000Z -enddate 20200201000000Z -extfile expired.ext 2>/dev/null
rm -f expired.csr
openssl ca -config cadb/ca.cnf -revoke revoked.crt 2>/dev/null
openssl ca -config cadb/ca.cnf -gencrl -out ca.crl 2>/dev/null

# credentialName layouts (Kubernetes secret key names).
mkdir -p creds/a-cred creds/dual-rsa creds/dual-ec creds/k8s-names creds/split \
	creds/split-cacert creds/crl-cred
cp a.crt creds/a-cred/tls.crt
cp a.key creds/a-cred/tls.key
cp ca.crt creds/a-cred/ca.crt
cp dual-rsa.crt creds/dual-rsa/tls.crt
cp dual-rsa.key creds/dual-rsa/tls.key
cp ca.crt creds/dual-rsa/ca.crt
cp dual-ec.crt creds/dual-ec/tls.crt
cp dual-ec.key creds/dual-ec/tls.key
cp a.crt creds/k8s-names/cert
cp a.key creds/k8s-names/key
cp ca.crt creds/k8s-names/cacert
cp a.crt creds/split/tls.crt
cp a.key creds/split/tls.key
cp ca.crt creds/split-cacert/ca.crt
cp a.crt creds/crl-cred/tls.crt
cp a.key creds/crl-cred/tls.key
cp ca.crt creds/crl-cred/ca.crt
cp ca.crl creds/crl-cred/ca.crl

rm -f ./*.ext ./*.srl
