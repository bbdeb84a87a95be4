#!/usr/bin/env bash
# Makes the private keys that tests/tls_certs.rs and src/tls's tests load in formats rcgen
# (on ring) cannot write: RSA as PKCS#1 and EC P-256 as SEC1, each beside the same key in
# PKCS#8 (rcgen signs test certificates with the PKCS#8 copy). Certificates are not kept
# here: the tests make them, with their dates, when they run. These keys are test-only.
# Run once with OpenSSL 3 from this folder: ./make-keys.sh
set -euo pipefail
cd "$(dirname "$0")"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa-2048.pkcs8.pem
openssl pkey -in rsa-2048.pkcs8.pem -traditional -out rsa-2048.pkcs1.pem
openssl ecparam -name prime256v1 -genkey -noout -out ec-p256.sec1.pem
openssl pkcs8 -topk8 -nocrypt -in ec-p256.sec1.pem -out ec-p256.pkcs8.pem
# A key type rustls's ring provider cannot sign with (ECDSA P-521), for the refusal test.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out ec-p521.pkcs8.pem
