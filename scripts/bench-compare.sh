#!/usr/bin/env bash
# Compare signalhub with the peer servers of ../shared/bench: builds the signal_server example,
# then runs shared/bench/compare.sh with it added as `signalhub` (wsload drives every server).
#
# Usage: scripts/bench-compare.sh ['NAME=COMMAND with {port}' ...]   (more servers to include)
# Env (passed on to compare.sh): REPEATS (3), PEERS (subset of peer names), SCENARIOS,
#   UWS_BIN; OUT defaults to bench-results/compare-DATE.jsonl in this repository.
# compare.sh builds wsload and the Rust peers, runs `npm install` for the node peer and makes a
# Python venv for the python peer when those are missing (see shared/bench/README.md). If the
# bench directory is read-only, it is run from a temporary copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$(cd "$(dirname "$0")/../../shared/bench" && pwd)
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --example signal_server --manifest-path "$root/Cargo.toml"
export OUT=${OUT:-$root/bench-results/compare-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$OUT")"

if [ ! -w "$bench" ]; then
  copy=$(mktemp -d)
  trap 'rm -rf "$copy"' EXIT
  cp -r "$bench" "$copy/bench"
  chmod -R u+w "$copy/bench"
  echo "note: $bench is read-only; running from a copy in $copy" >&2
  bench=$copy/bench
fi

# compare.sh finds its peers under its own target/, so it must not inherit CARGO_TARGET_DIR.
env -u CARGO_TARGET_DIR "$bench/compare.sh" \
  "signalhub=$target/release/examples/signal_server 127.0.0.1:{port}" "$@"
