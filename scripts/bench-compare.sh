#!/usr/bin/env bash
# Compare signalhub with the peer servers of ../shared/bench in one run: shared/bench's
# compare.sh (every scenario of its run.sh, REPEATS interleaved rounds, a fresh server each
# time) with signalhub added, plus the 10x longer fan-out runs, then one table of medians with
# signalhub's ratios and the performance issue's targets checked (scripts/bench-report.py).
#
# signalhub runs as deployed: `signalhub serve --ws 127.0.0.1:{port}`, the release binary.
# Usage: scripts/bench-compare.sh ['NAME=COMMAND with {port}' ...]   (more servers to include)
# Env (passed on to compare.sh): REPEATS (3), PEERS (subset of peer names), SCENARIOS (every
#   standard scenario and both -long ones unless set), UWS_BIN (another uWebSockets build;
#   compare.sh builds its vendored one itself, and skips it, saying so, where it cannot); OUT
#   defaults to bench-results/compare-DATE.jsonl, and the table goes beside it (.md).
# shared/bench is copied to target/bench-copy (and built there once), so it stays untouched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-env.sh"
prepare_bench
# run.sh leaves the -long runs out unless SCENARIOS names them; the targets are read on them.
export SCENARIOS=${SCENARIOS:-"fanout-100 fanout-1000 fanout-100-long fanout-1000-long direct paths idle"}
export OUT=${OUT:-$root/bench-results/compare-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$OUT")"
# compare.sh finds its peers under its own target/, so it must not inherit CARGO_TARGET_DIR.
env -u CARGO_TARGET_DIR "$BENCH/compare.sh" "signalhub=$SIGNALHUB_CMD" "$@" >/dev/null
python3 "$root/scripts/bench-report.py" "$OUT" | tee "${OUT%.jsonl}.md"
