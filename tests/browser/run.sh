#!/usr/bin/env bash
# `make browser-test`: the web-signal example in a real headless Chromium.
#
# Installs Debian's chromium when it is missing (as root, with apt-get), installs
# playwright-core with `npm ci` when node_modules is missing or package-lock.json changed,
# builds the example (release) and runs browser.test.mjs with node's test runner.
# Where Chromium or Node cannot be had, it says so LOUDLY and exits 0.
#
# Environment: CARGO (default cargo), CHROMIUM (default /usr/bin/chromium),
# UPDATE_SCREENSHOT=1 to refresh docs/screenshot.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/browser
cargo=${CARGO:-cargo}
chromium=${CHROMIUM:-/usr/bin/chromium}

skip() {
    echo
    echo "################################################################################"
    echo "##  SKIPPING browser test: $*"
    echo "################################################################################"
    echo
    exit 0
}

if [[ ! -x $chromium ]]; then
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        echo "browser-test: installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        skip "chromium cannot be installed here (no $chromium, and no apt-get as root)"
    fi
fi
[[ -x $chromium ]] || skip "chromium cannot be installed here ($chromium is still missing)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skip "node and npm are needed (Node.js 20 or later)"
fi

# npm ci only when node_modules is missing or the lock file changed since the last one.
stamp=$here/node_modules/.signalhub-lock.sha256
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund)
    echo "$want" >"$stamp"
fi

"$cargo" build --release --features schedules --example web_signal
target_dir=${CARGO_TARGET_DIR:-target}
export WEB_SIGNAL_BIN=$target_dir/release/examples/web_signal
export CHROMIUM=$chromium

# The TLS case: a self-signed certificate for localhost and 127.0.0.1, made now.
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null; then
    export TLS_CERT=$certs/cert.pem TLS_KEY=$certs/key.pem
else
    echo "################################################################################"
    echo "##  SKIPPING the browser test's TLS case: openssl cannot make a certificate here"
    echo "################################################################################"
fi
node --test "$here/browser.test.mjs"
