#!/usr/bin/env bash
# Fan-out against client count, signalhub beside the peers of ../shared/bench: for each server
# and each count in CLIENTS, a fresh server on a free port and one `wsload fanout` of about
# 200,000 deliveries (64-byte payloads, --rate 0, window 16). Raw reports go to
# bench-results/plot-DATE.jsonl; scripts/plot.py draws deliveries/s and p99 latency against
# client count into docs/fanout-scaling.png (matplotlib, in the virtualenv .venv-bench).
#
# Usage: scripts/bench-plot.sh            (or `make bench-plot`)
# Env:   CLIENTS ("100 500 1000 2000 5000 10000 15000 19000"), PEERS (tokio node python sync),
#        ROUNDS (3; the plot shows medians), OUT (raw results, appended to), PNG
#        (docs/fanout-scaling.png)
# A count over a server's connection cap shows as a missing point (signalhub refuses past
# its cap, 15,382 on this machine; the sync peer's two threads per client stop near 16,000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/bench-env.sh
prepare_bench
clients=${CLIENTS:-"100 500 1000 2000 5000 10000 15000 19000"}
out=${OUT:-bench-results/plot-$(date +%Y%m%d-%H%M%S).jsonl}
png=${PNG:-docs/fanout-scaling.png}
mkdir -p "$(dirname "$out")"
ulimit -n "$(ulimit -Hn)"

for round in $(seq "${ROUNDS:-3}"); do
  for n in $clients; do
    messages=$(( 200000 / n ))
    [ "$messages" -ge 10 ] || messages=10
    for name in signalhub ${PEERS:-tokio node python sync}; do
      if [ "$name" = signalhub ]; then cmd=$SIGNALHUB_CMD; else cmd=$(peer_cmd "$name"); fi
      echo "== round $round: $name, $n clients" >&2
      run_wsload "$name" "$cmd" "fanout-$n" fanout --clients "$n" --messages "$messages" \
        --rate 0 --payload 64 --timeout 170 >>"$out"
    done
  done
done
echo "raw results: $out" >&2
plot_python=$(bench_python matplotlib)
"$plot_python" scripts/plot.py "$out" "$png"
