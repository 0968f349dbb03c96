#!/usr/bin/env bash
# Test certificates for wss:// (openssl CLI), made fresh by each test that needs them:
#   tls_certs.sh DIR [IP...]
# writes into DIR:
#   ca.pem ca.key            a test CA
#   server.pem server.key    the engine's certificate from that CA: SANs localhost, 127.0.0.1, ::1
#                            and each IP given (the two-host test's private address)
#   client.pem client.key    a client certificate from that CA (mutual TLS)
#   other-ca.pem             another CA, which signed nothing here (a wrong trust anchor)
#   self.pem self.key        a self-signed certificate for 127.0.0.1 (no CA)
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for ip in "$@"; do san="$san,IP:$ip"; done
q() { "$@" 2>/dev/null >/dev/null || { echo "tls_certs.sh: failed: $*" >&2; "$@" >&2; exit 1; }; }
key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

key ca.key
q openssl req -x509 -new -key ca.key -days 2 -subj "/CN=shmchan test CA" -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
key other-ca.key
q openssl req -x509 -new -key other-ca.key -days 2 -subj "/CN=shmchan other CA" -out other-ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign

# leaf NAME CN SANS USAGE OPENSSL_ARGS...: NAME.key and NAME.pem, signed by the test CA
leaf() {
  local name=$1 cn=$2 sans=$3 usage=$4; shift 4
  key "$name.key"
  q openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$sans" "$usage" > "$name.ext"
  q openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -extfile "$name.ext" \
    -out "$name.pem" "$@"
  rm -f "$name.csr" "$name.ext"
}
leaf server "shmchan test engine" "$san" serverAuth -days 2
leaf client "shmchan test client" "DNS:client" clientAuth -days 2
key self.key
q openssl req -x509 -new -key self.key -days 2 -subj "/CN=self-signed" -out self.pem \
  -addext subjectAltName=IP:127.0.0.1
