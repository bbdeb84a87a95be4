#!/usr/bin/env bash
# The two-node case of `make bench`: fan-out to 1000 clients split over two signalhub nodes
# sharing signals through Redis, beside the same 1000 clients on one node, interleaved
# ROUNDS times (default 3); prints both medians and the ratio. Needs redis-server (make test
# installs it); without it this says SKIPPING and exits 0. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "!!! SKIPPING the two-node bench: redis-server is not installed !!!"
  exit 0
fi
ulimit -n "$(ulimit -Hn)"
cargo build --release -p loadgen
cargo build --release --features redis --bin signalhub
target=${CARGO_TARGET_DIR:-target}/release
logs=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$logs"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$logs/redis" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done

# start_node NAME [ARGS...]: starts a node, sets node_pid and node_port.
start_node() {
  local name=$1; shift
  "$target/signalhub" serve --ws 127.0.0.1:0 --ping-interval 0 --log-level warn "$@" >"$logs/$name" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 100); do grep -q "listening on" "$logs/$name" && break; sleep 0.1; done
  node_port=$(grep -o 'ws://127.0.0.1:[0-9]*' "$logs/$name" | grep -o '[0-9]*$')
}
backplane=(--redis "redis://127.0.0.1:$redis_port/" --cluster bench)
start_node one;   one_pid=$node_pid;   one_port=$node_port
start_node node1 "${backplane[@]}"; node1_pid=$node_pid; node1_port=$node_port
start_node node2 "${backplane[@]}"; node2_port=$node_port

run=(fanout --clients 1000 --messages 200 --payload 64)
: >"$logs/results"
for _ in $(seq "${ROUNDS:-3}"); do
  "$target/loadgen" "${run[@]}" --url "ws://127.0.0.1:$one_port/" --pid "$one_pid" \
    --label one-node 2>/dev/null >>"$logs/results" || true
  "$target/loadgen" "${run[@]}" --url "ws://127.0.0.1:$node1_port/" \
    --url2 "ws://127.0.0.1:$node2_port/" --pid "$node1_pid" --label two-nodes 2>/dev/null \
    >>"$logs/results" || true
done
python3 - "$logs/results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        d = json.loads(line)
        runs.setdefault(d.get("label"), []).append(d)
def med(label, key):
    return statistics.median(key(d) for d in runs.get(label, []))
bad = [d.get("label") for ds in runs.values() for d in ds if not d.get("ok")]
for label in ("one-node", "two-nodes"):
    print(f"{label}: {med(label, lambda d: d['deliveries_per_sec']):,.0f} deliveries/s, "
          f"p99 {med(label, lambda d: d['latency_us']['p99']) / 1000:.1f} ms "
          f"({len(runs.get(label, []))} runs)")
ratio = med("two-nodes", lambda d: d["deliveries_per_sec"]) / med("one-node", lambda d: d["deliveries_per_sec"])
p99 = med("two-nodes", lambda d: d["latency_us"]["p99"]) / med("one-node", lambda d: d["latency_us"]["p99"])
print(f"two nodes through Redis vs one node: {ratio:.2f}x the deliveries/s, {p99:.2f}x the p99")
if bad:
    print("runs not ok:", bad)
    sys.exit(1)
PY
