# Sourced by scripts/bench-compare.sh and scripts/bench-plot.sh (with $root set to the
# repository): a private, writable copy of ../shared/bench, built once and kept in
# target/bench-copy; the command that runs signalhub; the peers' commands; and run_wsload,
# which runs one wsload case against a fresh server.
#
# The 10x longer fan-out runs the performance issue reads its targets on (fanout-100-long,
# fanout-1000-long) are in shared/bench's run.sh now; an older copy without them gets them.
target=${CARGO_TARGET_DIR:-$root/target}
bench_src=$(cd "$root/../shared/bench" && pwd)
BENCH=$target/bench-copy
# What users deploy: the binary, Ws only, with its glibc settings (src/cli/tunables.rs).
SIGNALHUB_CMD="$target/release/signalhub serve --ws 127.0.0.1:{port} --log-level warn"

# Copies ../shared/bench when it changed (keeping what was built), builds wsload and the
# peers, and adds the long scenarios to an older run.sh.
prepare_bench() {
  cargo build --release --bin signalhub --manifest-path "$root/Cargo.toml"
  local stamp
  stamp=$(cd "$bench_src" && find . -type f -not -path './target/*' -not -path '*/node_modules/*' \
    -not -path '*/.venv/*' -not -path './results/*' | sort | xargs md5sum | md5sum)
  if [ "$(cat "$BENCH/.source-stamp" 2>/dev/null)" != "$stamp" ]; then
    mkdir -p "$BENCH"
    (cd "$bench_src" && tar --exclude=./target --exclude=node_modules --exclude=.venv \
      --exclude=./results -cf - .) | (cd "$BENCH" && tar -xf -)
    chmod -R u+w "$BENCH"
    echo "$stamp" >"$BENCH/.source-stamp"
  fi
  if ! grep -q fanout-1000-long "$BENCH/run.sh"; then
    sed -i '/^run_case fanout-1000 /a\
run_case fanout-100-long  fanout --url @URL --clients 100 --messages 20000 --rate 0 --payload 64 --pid @PID\
run_case fanout-1000-long fanout --url @URL --clients 1000 --messages 2000 --rate 0 --payload 64 --pid @PID' \
      "$BENCH/run.sh"
  fi
  (cd "$BENCH" && env -u CARGO_TARGET_DIR cargo build --quiet --release)
  [ -d "$BENCH/peers/node-ws/node_modules" ] ||
    (cd "$BENCH/peers/node-ws" && npm install --no-audit --no-fund --silent)
  local py=$BENCH/peers/python-websockets/.venv/bin/python
  [ -x "$py" ] || { python3 -m venv "$BENCH/peers/python-websockets/.venv" &&
    "$py" -m pip install -q -r "$BENCH/peers/python-websockets/requirements.txt"; }
}

# peer_cmd NAME: the command (run in $BENCH) for a peer: tokio, node, python or sync.
peer_cmd() {
  case $1 in
    tokio) echo "target/release/peer-tokio-tungstenite {port}" ;;
    node) echo "node peers/node-ws/server.js {port}" ;;
    python) echo "peers/python-websockets/.venv/bin/python peers/python-websockets/server.py {port}" ;;
    sync) echo "target/release/peer-sync-tungstenite {port}" ;;
    *) echo "unknown peer $1" >&2; return 1 ;;
  esac
}

# run_wsload NAME COMMAND LABEL WSLOAD-ARGS...: starts COMMAND ({port} filled in) in $BENCH,
# waits until it accepts TCP (20 s), runs wsload against it and prints `NAME {json}`.
run_wsload() {
  local name=$1 cmd=$2 label=$3 port pid out
  shift 3
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$BENCH" && exec bash -c "exec ${cmd//\{port\}/$port}") >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  out=$(timeout 200 "$BENCH/target/release/wsload" --label "$label" "$@" \
    --url "ws://127.0.0.1:$port/" --pid "$pid" 2>/dev/null) || true
  [ -n "$out" ] || out="{\"label\":\"$label\",\"ok\":false,\"error\":\"no report\"}"
  echo "$name $out"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# bench_python PACKAGE...: a python3 with PACKAGEs, from the virtualenv .venv-bench.
bench_python() {
  local venv=$root/.venv-bench
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/python" -c "import $(IFS=,; echo "$*")" 2>/dev/null ||
    "$venv/bin/pip" install -q "$@" >&2
  echo "$venv/bin/python"
}
