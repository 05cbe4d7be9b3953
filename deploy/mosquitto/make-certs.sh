#!/bin/sh
# Make a private CA and a broker certificate for the TLS listener (test or deployment).
# Usage: make-certs.sh OUTDIR [HOSTNAME_OR_IP ...]   (default names: localhost 127.0.0.1)
# Optional: CLIENT=gw-001 make-certs.sh OUTDIR ... also makes client.crt/client.key for a gateway
# whose certificate CN is its id. Keys are EC P-256; certificates last DAYS days (default 825).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [HOSTNAME_OR_IP ...]" >&2
    exit 2
fi
out=$1
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1
days=${DAYS:-825}
mkdir -p "$out"
cd "$out"
umask 077

san=""
for name in "$@"; do
    case $name in
        *:*) entry="IP:$name" ;;  # IPv6
        *[!0-9.]*) entry="DNS:$name" ;;
        *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
done

if [ ! -f ca.key ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=hazwatch test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt
fi

sign() {  # sign NAME CN EXTENSIONS
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

sign server "$1" "subjectAltName=$san
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"

if [ -n "${CLIENT:-}" ]; then
    sign client "$CLIENT" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi

# Certificates are public; the broker's key is readable by the mosquitto group only (the broker
# usually runs as that user); the CA key stays private to the owner.
chmod 644 ca.crt server.crt
chmod 640 server.key
if getent group mosquitto >/dev/null 2>&1; then
    chgrp mosquitto server.key
fi
echo "wrote $(pwd)/ca.crt server.crt server.key${CLIENT:+ client.crt client.key}"
