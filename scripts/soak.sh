#!/usr/bin/env bash
# Soak the signalhub binary (`signalhub serve --ws`, with its glibc settings) with `loadgen soak` (not run in CI): SOAK_SECS (600) of
# SOAK_STEADY (500) steady clients counting every numbered broadcast (SOAK_RATE, 50 messages/s,
# to everyone) while up to SOAK_CHURN (2000) clients at a time connect, send one direct
# message, await its echo and disconnect. Then churn stops and the server's RSS, threads and
# open files are compared with those at the start.
#
# Usage: scripts/soak.sh            (or `make soak`)
# Env:   SOAK_SECS SOAK_STEADY SOAK_CHURN SOAK_RATE, OUT (default bench-results/soak-DATE.json)
# Exit status: 0 if nothing was lost and every end/start figure is within 1.10, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
loadgen=$target/release/loadgen
secs=${SOAK_SECS:-600}
out=${OUT:-bench-results/soak-$(date +%Y%m%d-%H%M%S).json}

ulimit -n "$(ulimit -Hn)" # 2,500 connections on each side need more than 1024 files
cargo build --release -p loadgen
cargo build --release --bin signalhub
mkdir -p "$(dirname "$out")"
logdir=$(mktemp -d)
pid=

stop_server() { # TERM, then KILL after 5 s
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
cleanup() {
  stop_server
  rm -rf "$logdir"
}
trap cleanup EXIT

"$target/release/signalhub" serve --ws 127.0.0.1:0 --log-level warn </dev/null >"$logdir/server.out" 2>"$logdir/server.err" &
pid=$!
port=
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  port=$(sed -nE 's#.*listening on ws://[^:/]+:([0-9]+).*#\1#p' "$logdir/server.out" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "soak: the server did not start: $(tail -q -n 3 "$logdir/server.err" "$logdir/server.out")" >&2
  exit 1
fi
echo "== soak: ${secs}s against ws://127.0.0.1:$port/ (server pid $pid)" >&2

# loadgen logs a line a minute to stderr (shown as it goes); its JSON report is on stdout.
status=0
timeout $((secs + 300)) "$loadgen" soak --url "ws://127.0.0.1:$port/" \
  --steady "${SOAK_STEADY:-500}" --churn "${SOAK_CHURN:-2000}" --rate "${SOAK_RATE:-50}" \
  --duration "$secs" --pid "$pid" >"$logdir/report.json" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "soak: the server died during the run" >&2
  status=1
fi
stop_server
if [ ! -s "$logdir/report.json" ]; then
  echo "soak: no report from loadgen (exit $status)" >&2
  exit 1
fi
cp "$logdir/report.json" "$out"
echo "raw result: $out" >&2
python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "messages_sent" not in r:
    print(f"soak NOT ok: {r.get('error')}")
    sys.exit()
s, e, q = r.get("server_start") or {}, r.get("server_end") or {}, r.get("end_over_start") or {}
rc = r.get("received_per_client") or {}
print(f"soak {r['duration_secs']:.0f}s: {r['steady_connected']}/{r['steady_clients']} steady clients, "
      f"{r['messages_sent']:,} messages sent at {r['rate_per_sec']:g}/s, received per client "
      f"{rc.get('min')}..{rc.get('max')}, lost {r['lost']}")
print(f"churn: {r['churn_completed']:,} connections completed, {r['churn_errors']:,} errors "
      f"{r.get('churn_error_samples') or ''}")
for key, label in (("rss_kib", "RSS KiB"), ("threads", "threads"), ("open_files", "open files")):
    short = {"rss_kib": "rss"}.get(key, key)
    print(f"  {label:>10}: start {s.get(key)}, end {e.get(key)}, end/start {q.get(short)}")
print("ok" if r["ok"] else "NOT ok")
PY
exit "$status"
