#!/usr/bin/env bash
# Makes the PKCS#12 files that src/tls/pkcs12.rs's tests and tests/tls_certs.rs read: what
# OpenSSL writes, in each of the encryptions signalhub reads (the tests' own PKCS#12 files,
# written by p12-keystore, cover only its choice). Each holds the key of ec-p256.pkcs8.pem
# (rsa-2048.pkcs8.pem for legacy.pfx) and a chain root -> intermediate -> leaf for
# "localhost", valid for 100 years; the password is "pw". Test-only.
# Run once with OpenSSL 3 from this folder: ./make-pfx.sh
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ca() { # name, subject, issuer-name (empty: self-signed)
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$1.key"
    printf 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n' > "$tmp/$1.ext"
    openssl req -new -key "$tmp/$1.key" -subj "$2" -out "$tmp/$1.csr"
    if [ -z "$3" ]; then
        openssl x509 -req -in "$tmp/$1.csr" -signkey "$tmp/$1.key" -days 36500 \
            -extfile "$tmp/$1.ext" -out "$tmp/$1.crt"
    else
        openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$3.crt" -CAkey "$tmp/$3.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 36500 -extfile "$tmp/$1.ext" -out "$tmp/$1.crt"
    fi
}
leaf() { # name, key file
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$tmp/$1.ext"
    openssl req -new -key "$2" -subj "/CN=localhost" -out "$tmp/$1.csr"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/intermediate.crt" -CAkey "$tmp/intermediate.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 36500 -extfile "$tmp/$1.ext" -out "$tmp/$1.crt"
}
ca root "/CN=signalhub test root" ""
ca intermediate "/CN=signalhub test intermediate" root
leaf ec ec-p256.pkcs8.pem
leaf rsa rsa-2048.pkcs8.pem
# The CA certificates root first: the reader must put them in chain order itself.
cat "$tmp/root.crt" "$tmp/intermediate.crt" > "$tmp/cas.pem"
p12() { openssl pkcs12 -export -passout pass:pw -certfile "$tmp/cas.pem" "$@"; }
# OpenSSL 3's default: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), HMAC-SHA256.
p12 -inkey ec-p256.pkcs8.pem -in "$tmp/ec.crt" -out modern.pfx
# OpenSSL 1.x and older Windows: RC2-40 certificates, a 3DES key, HMAC-SHA1.
p12 -legacy -inkey rsa-2048.pkcs8.pem -in "$tmp/rsa.crt" -out legacy.pfx
# PBES2 with 3DES for the key and AES-128 for the certificates, HMAC-SHA384.
p12 -keypbe DES-EDE3-CBC -certpbe AES-128-CBC -macalg sha384 -iter 1000 \
    -inkey ec-p256.pkcs8.pem -in "$tmp/ec.crt" -out mixed.pfx
# Nothing encrypted (a plain key bag), HMAC-SHA512.
p12 -keypbe NONE -certpbe NONE -macalg sha512 -inkey ec-p256.pkcs8.pem -in "$tmp/ec.crt" \
    -out plain.pfx
# No integrity check: a wrong password shows only when decrypting.
p12 -nomac -inkey ec-p256.pkcs8.pem -in "$tmp/ec.crt" -out nomac.pfx
