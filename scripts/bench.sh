#!/usr/bin/env bash
# Benchmark signalhub's example server with tools/loadgen: one fresh server per scenario,
# raw JSON reports appended to bench-results/bench-DATE.jsonl, then a Markdown summary.
#
# Usage: scripts/bench.sh
# Env:
#   SERVER_CMD  server command instead of target/release/examples/signal_server 127.0.0.1:0.
#               With `{port}` in it, a free port is substituted and the script waits until the
#               port accepts TCP; otherwise the port is read from the server's stdout line
#               `listening on ws://127.0.0.1:PORT` (or wss://; 10 s limit).
#   SCENARIOS   subset of: fanout-100 fanout-1000 fanout-1000-wss direct idle-10000
#               scale-15000 http-50 http-50-stalled bigcast-20 path-1000 group-1000
#               compress-4k-off compress-4k-on compress-64-off compress-64-on idle-2000
#               idle-2000-compression (default: all; scale-15000 and the cases after it run
#               the binary, so not with SERVER_CMD)
#   OUT         raw results file (default: bench-results/bench-DATE.jsonl)
# fanout-1000-wss is fanout-1000 over TLS: `loadgen make-cert` writes a CA and a localhost
# certificate into a temporary folder, the server runs with `--tls CERT KEY` and loadgen trusts
# the CA. It needs the example server, so SERVER_CMD skips it. When fanout-1000 ran too, the
# summary ends with the Wss/Ws ratio of deliveries/s (issue target: at least 0.70).
# http-50 and http-50-stalled: the binary's HTTP side, GET / and POST /broadcast in turn over
# 50 keep-alive connections, alone and beside 50 requests stalled mid-body; the summary gives
# both rates and stalled/plain (target: at least 0.50).
# bigcast-20: the binary's memory for one 8 MiB broadcast to 20 clients that do not read (a 4 KiB
# receive buffer each) plus its sender: RSS growth once it settles, as a multiple of the message
# size (target: about one copy, at most 3; a copy per receiver would be 20).
# compress-*, idle-2000*: permessage-deflate, the binary without and with `--compression`
# (-off, -on; idle-2000 and idle-2000-compression), three interleaved rounds. Fan-outs to
# 1000 clients of a 4 KiB JSON signal (200 messages) and of a 64-byte one (2000 messages)
# (`--payload-kind json`: objects of numbers and short strings, not x padding); their
# clients offer the extension either way (`--compression true`, as browsers do: the server
# without the flag declines it) and count the bytes they read. idle-2000: 2000 plain idle
# connections; idle-2000-compression: 2000 with the extension accepted. The summary gives
# medians over the rounds of on/off: wire bytes per delivery for 4 KiB (target at most 1/3),
# deliveries/s for 4 KiB (target at least 0.90), server CPU per delivery for 64 B (target at
# most 1.05), and idle RSS per connection on minus off (target at most 1 KiB).
# Exit status: 0 if every scenario was ok, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
loadgen=$target/release/loadgen

ulimit -n "$(ulimit -Hn)" # 10,000 idle connections need more than the usual 1024 files
cargo build --release -p loadgen
[ -n "${SERVER_CMD:-}" ] || cargo build --release --example signal_server
server_cmd=${SERVER_CMD:-"$target/release/examples/signal_server 127.0.0.1:0"}
out=${OUT:-bench-results/bench-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$out")"
logdir=$(mktemp -d)
pid=
port=
why=
failed=0
scheme=ws    # of @URL; run_wss_case sets wss, the http cases http
server_tls=  # server arguments for Wss, likewise
certs=       # the folder `loadgen make-cert` wrote, once a Wss case needed it

cleanup() {
  stop_server
  rm -rf "$logdir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start the server (with $server_tls) in the background; sets pid and port. Returns 1 (reason
# in $why) if it is not ready within 10 s.
start_server() {
  local cmd="$server_cmd $server_tls"
  port= why="not ready within 10 s"
  if [[ $cmd == *"{port}"* ]]; then
    port=$(free_port)
    cmd=${cmd//\{port\}/$port}
  fi
  bash -c "exec $cmd" </dev/null >"$logdir/server.out" 2>"$logdir/server.err" &
  pid=$!
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { why="exited"; return 1; }
    if [[ $server_cmd == *"{port}"* ]]; then
      (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    else
      port=$(sed -nE 's#.*listening on wss?://[^:/]+:([0-9]+).*#\1#p' "$logdir/server.out" | head -n 1)
      [ -n "$port" ] && return 0
    fi
    sleep 0.1
  done
  return 1
}

# TERM, then KILL after 5 s.
stop_server() {
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

want() { [ -z "${SCENARIOS:-}" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

# run_case LABEL LOADGEN-ARGS...: @URL and @PID are replaced by the fresh server's. The
# loadgen's --timeout is 150 s unless the arguments give one (at most 190: the last of a
# repeated flag counts, and the case is killed after 200 s).
run_case() {
  local label=$1 line a args=()
  shift
  want "$label" || return 0
  echo "== $label" >&2
  if start_server; then
    for a in "$@"; do
      a=${a//@URL/$scheme://127.0.0.1:$port/}
      args+=("${a//@PID/$pid}")
    done
    [[ " $* " == *" --timeout "* ]] || args+=(--timeout 150)
    line=$(timeout 200 "$loadgen" "${args[@]}" --label "$label" 2>"$logdir/loadgen.err") || true
    [ -n "$line" ] || line=$(error_json "$label" "no report: $(tail -n 1 "$logdir/loadgen.err")")
  else
    line=$(error_json "$label" "server $why: $(tail -q -n 3 "$logdir/server.err" "$logdir/server.out" | tr '\n' ' ')")
  fi
  stop_server
  record "$line"
}

# record JSON-LINE: to $out, and to this invocation's results (for the Wss/Ws ratio).
record() {
  echo "$1" | tee -a "$out"
  echo "$1" >>"$logdir/run.jsonl"
  [[ $1 == *'"ok":true'* ]] || failed=1
}

error_json() {
  python3 -c 'import json, sys; print(json.dumps({"label": sys.argv[1], "ok": False, "error": sys.argv[2]}))' "$1" "$2"
}

# run_wss_case LABEL LOADGEN-ARGS...: run_case against the example server serving Wss with a
# certificate made for this run; loadgen trusts its CA.
run_wss_case() {
  want "$1" || return 0
  if [ -n "${SERVER_CMD:-}" ]; then
    echo "== $1: skipped (needs the example server, SERVER_CMD is set)" >&2
    return 0
  fi
  if [ -z "$certs" ] && ! "$loadgen" make-cert "$logdir/certs" 2>"$logdir/certs.err"; then
    record "$(error_json "$1" "make-cert: $(tail -n 1 "$logdir/certs.err")")"
    return 0
  fi
  certs=$logdir/certs
  scheme=wss server_tls="--tls $(printf %q "$certs/cert.pem") $(printf %q "$certs/key.pem")"
  run_case "$@" --ca "$certs/ca.pem"
  scheme=ws server_tls=
}

run_case fanout-100 fanout --url @URL --clients 100 --messages 2000 --payload 64 --pid @PID
run_case fanout-1000 fanout --url @URL --clients 1000 --messages 200 --payload 64 --pid @PID
run_wss_case fanout-1000-wss fanout --url @URL --clients 1000 --messages 200 --payload 64 --pid @PID
run_case direct direct --url @URL --clients 100 --messages 1000 --pid @PID
run_case idle-10000 idle --url @URL --clients 10000 --hold 5 --pid @PID

# scale-15000: the binary capped at 15,000 connections holds 14,999 receivers and the sender,
# broadcasts 20 messages one at a time (--window 1, as websocket-shootout does), and a
# 15,001st connection must get 503. Target: 95% of deliveries within 500 ms.
if want scale-15000 && [ -z "${SERVER_CMD:-}" ]; then
  cargo build --release --bin signalhub
  saved=$server_cmd
  server_cmd="$target/release/signalhub serve --ws 127.0.0.1:0 --max-connections 15000 --log-level warn"
  run_case scale-15000 fanout --url @URL --clients 14999 --messages 20 --window 1 --payload 64 \
    --one-more true --timeout 170 --pid @PID
  server_cmd=$saved
fi

# http-50, http-50-stalled: the binary with an Http endpoint of its own (its page and routes;
# Ws elsewhere). 50 keep-alive connections send GET / and POST /broadcast in turn, 40,000
# requests in all, one at a time each; -stalled first opens 50 more that each send a
# POST /broadcast head promising 100,000 bytes and one byte of it, then hold still. A request
# times out after 10 s (--stall) and a case after 60 s, so a server that stops answering is
# reported as timeouts rather than waited on. Target: the stalled rate at least half the plain.
if { want http-50 || want http-50-stalled; } && [ -z "${SERVER_CMD:-}" ]; then
  cargo build --release --bin signalhub
  saved=$server_cmd
  server_cmd="$target/release/signalhub serve --http 127.0.0.1:{port} --ws 127.0.0.1:0 --log-level warn"
  scheme=http
  for stalled in 0 50; do
    label=http-50
    [ "$stalled" = 0 ] || label=http-50-stalled
    run_case "$label" http --url @URL --connections 50 --requests 40000 --stalled "$stalled" \
      --stall 10 --pid @PID --timeout 60
  done
  scheme=ws server_cmd=$saved
elif { want http-50 || want http-50-stalled; }; then
  echo "== http-50, http-50-stalled: skipped (they run the binary, SERVER_CMD is set)" >&2
fi

# bigcast-20: the binary; 20 receivers whose SO_RCVBUF is 4096 never read after the handshake,
# one sender broadcasts one text frame of 8 MiB, which the server keeps for them (one frame
# over its 4 MiB queue limit is accepted when nothing else waits). loadgen samples the
# server's RSS before and after, each time until it stops changing, and reports the growth
# over the message size. Target: about 1 (one shared frame), at most 3.
if want bigcast-20 && [ -z "${SERVER_CMD:-}" ]; then
  cargo build --release --bin signalhub
  saved=$server_cmd
  server_cmd="$target/release/signalhub serve --ws 127.0.0.1:{port} --log-level warn"
  run_case bigcast-20 bigcast --url @URL --clients 20 --size 8388608 --pid @PID --timeout 60
  server_cmd=$saved
elif want bigcast-20; then
  echo "== bigcast-20: skipped (it runs the binary, SERVER_CMD is set)" >&2
fi

# path-1000, group-1000: the binary requiring tokens (--jwt-secret-env); 1000 receivers and
# the sender all on /bench with one token (subject bench, group bench). The sender's messages
# name `"path":"/bench"` or `"group":"bench"` (it is a member): the same receivers reached
# through the path index or the group index. Three interleaved rounds; the summary gives the
# median group/path ratio of deliveries/s (target: at least 0.95).
if { want path-1000 || want group-1000; } && [ -z "${SERVER_CMD:-}" ]; then
  cargo build --release --bin signalhub
  saved=$server_cmd
  export SIGNALHUB_BENCH_JWT=bench-secret-of-at-least-thirty-two-bytes
  token=$("$loadgen" make-token "$SIGNALHUB_BENCH_JWT" bench)
  server_cmd="$target/release/signalhub serve --ws 127.0.0.1:{port} --jwt-secret-env SIGNALHUB_BENCH_JWT --log-level warn"
  for round in 1 2 3; do
    for to in path:/bench group:bench; do
      run_case "${to%%:*}-1000" fanout --url "@URLbench?token=$token" --to "$to" --clients 1000 \
        --messages 2000 --payload 64 --pid @PID
    done
  done
  unset SIGNALHUB_BENCH_JWT
  server_cmd=$saved
elif { want path-1000 || want group-1000; }; then
  echo "== path-1000, group-1000: skipped (they run the binary, SERVER_CMD is set)" >&2
fi

# compress-4k-off/on, compress-64-off/on, idle-2000, idle-2000-compression: the binary without
# and with --compression (permessage-deflate), three rounds, each case beside its pair. The
# fan-outs' clients offer the extension in both (--compression true); the summary checks that
# the server without the flag declined it and with the flag accepted it for every client.
compress_cases="compress-4k-off compress-4k-on compress-64-off compress-64-on idle-2000 idle-2000-compression"
wanted_compress=
for c in $compress_cases; do want "$c" && wanted_compress=1; done
if [ -n "$wanted_compress" ] && [ -z "${SERVER_CMD:-}" ]; then
  cargo build --release --bin signalhub
  saved=$server_cmd
  plain="$target/release/signalhub serve --ws 127.0.0.1:{port} --log-level warn"
  for round in 1 2 3; do
    for size in 4k 64; do
      case $size in
        4k) sized=(--messages 200 --payload 4096) ;;
        64) sized=(--messages 2000 --payload 64) ;;
      esac
      for mode in off on; do
        server_cmd=$plain
        [ "$mode" = off ] || server_cmd="$plain --compression"
        run_case "compress-$size-$mode" fanout --url @URL --clients 1000 "${sized[@]}" \
          --payload-kind json --compression true --pid @PID
      done
    done
    server_cmd=$plain
    run_case idle-2000 idle --url @URL --clients 2000 --hold 5 --pid @PID
    server_cmd="$plain --compression"
    run_case idle-2000-compression idle --url @URL --clients 2000 --hold 5 --compression true \
      --pid @PID
  done
  server_cmd=$saved
elif [ -n "$wanted_compress" ]; then
  echo "== compress-*, idle-2000*: skipped (they run the binary, SERVER_CMD is set)" >&2
fi

echo "raw results: $out" >&2
touch "$out" "$logdir/run.jsonl"
python3 - "$out" "$logdir/run.jsonl" <<'EOF'
import json, sys

def num(v, fmt="{:,.0f}"):
    return fmt.format(v) if isinstance(v, (int, float)) else "–"

def ms_to_us(lat):
    return {k: v * 1000 if isinstance(v, (int, float)) else v for k, v in (lat or {}).items()}

print("| scenario | deliveries/s, round trips/s or requests/s | p50 µs | p99 µs | server CPU µs/msg | RSS/conn KiB | threads | ok |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    lat = r.get("latency_us") or r.get("rtt_us") or ms_to_us(r.get("latency_ms"))
    rate = r.get("deliveries_per_sec", r.get("round_trips_per_sec", r.get("requests_per_s")))
    cpu = r.get("server_cpu_us_per_delivery",
                r.get("server_cpu_us_per_round_trip", r.get("server_cpu_us_per_request")))
    if r.get("scenario") == "idle":
        cpu_note = "idle: " + num(r.get("cpu_secs_during_hold"), "{:.2f}") + " s"
    else:
        cpu_note = num(cpu, "{:.1f}")
    threads = r.get("threads_after", r.get("server_threads"))
    ok = "yes" if r.get("ok") else "NO: " + str(r.get("error") or r.get("error_samples") or
                                              f"lost {r.get('lost')}, misrouted {r.get('misrouted', 0)}")
    print(f"| {r.get('label')} | {num(rate)} | {num(lat.get('p50'))} | {num(lat.get('p99'))} | "
          f"{cpu_note} | {num(r.get('rss_per_conn_kib'), '{:.1f}')} | {num(threads)} | {ok} |")

# Wss against Ws, when this invocation ran both fan-outs to 1000 clients.
runs = list(map(json.loads, open(sys.argv[2])))
this_run = {r.get("label"): r for r in runs}
ws, wss = this_run.get("fanout-1000"), this_run.get("fanout-1000-wss")
if ws and wss:
    if ws.get("ok") and wss.get("ok") and ws.get("deliveries_per_sec"):
        ratio = wss["deliveries_per_sec"] / ws["deliveries_per_sec"]
        cpu = [r.get("server_cpu_us_per_delivery") for r in (wss, ws)]
        print(f"\nWss/Ws fan-out to 1000 clients: {ratio:.2f} of the deliveries/s "
              f"({num(wss['deliveries_per_sec'])} vs {num(ws['deliveries_per_sec'])}; target ≥ 0.70, "
              f"{'met' if ratio >= 0.7 else 'NOT met'}); server CPU {num(cpu[0], '{:.2f}')} vs "
              f"{num(cpu[1], '{:.2f}')} µs/delivery")
    else:
        print("\nWss/Ws fan-out to 1000 clients: not compared, a run was not ok")

scale = this_run.get("scale-15000")
if scale and scale.get("connected") is not None:
    held = scale["connected"] + 1  # and the sender
    share = scale.get("within_500ms")
    status = scale.get("one_more_status")
    lat = scale.get("latency_us") or {}
    print(f"\nScale: {held:,} connections held; broadcasts one at a time: "
          f"{num(share * 100 if share is not None else None, '{:.1f}')}% of deliveries within 500 ms "
          f"(p50 {num(lat.get('p50'))} µs, p95 {num(lat.get('p95'))} µs; target 95%, "
          f"{'met' if share is not None and share >= 0.95 else 'NOT met'}); the 15,001st got "
          f"{status if status is not None else 'no answer'} "
          f"({'met' if status == 503 else 'NOT met'}); server threads {num(scale.get('server_threads'))}")

# HTTP with and without stalled requests beside the load, when this invocation ran either.
plain, stalled = this_run.get("http-50"), this_run.get("http-50-stalled")
if plain or stalled:
    print("\nHTTP, GET / and POST /broadcast in turn over 50 keep-alive connections:")
    for name, r in (("http-50", plain), ("http-50-stalled", stalled)):
        if not r:
            continue
        if r.get("requests_per_s") is None:
            print(f"- {name}: no report ({r.get('error')})")
            continue
        lat = r.get("latency_ms") or {}
        kinds = ", ".join(f"{k} {v:,}" for k, v in (r.get("error_kinds") or {}).items() if v)
        line = (f"- {name}: {num(r['requests_per_s'])} requests/s, p99 {num(lat.get('p99'), '{:.1f}')} ms; "
                f"{num(r.get('requests'))} of {num(r.get('requests_planned'))} answered 2xx, "
                f"{num(r.get('errors'))} errors{f' ({kinds})' if kinds else ''}, "
                f"{num(r.get('reconnects'))} reconnects")
        if r.get("unannounced_closes"):
            line += f" ({num(r['unannounced_closes'])} after closes without Connection: close)"
        if r.get("stalled"):
            first = r.get("stalled_first_event_secs")
            line += (f"; stalled requests {num(r.get('stalled_open'))} open, "
                     f"{num(r.get('stalled_closed'))} closed by the server"
                     + (f" (the first answered or closed {first:.1f} s into the load)"
                        if first is not None else ""))
        print(line)
    rates = [r and r.get("requests_per_s") for r in (plain, stalled)]
    if all(isinstance(v, (int, float)) for v in rates) and rates[0] > 0:
        ratio = rates[1] / rates[0]
        both_ok = plain.get("ok") and stalled.get("ok")
        met = ratio >= 0.5 and both_ok
        print(f"- stalled/plain: {ratio:.2f} of the requests/s ({num(rates[1])} vs {num(rates[0])}; "
              f"target ≥ 0.50, {'met' if met else 'NOT met'}"
              f"{'' if both_ok else '; a run was not ok'})")
    else:
        print("- stalled/plain: not compared, a run is missing or has no rate")

# A group of 1000 against a path of 1000, round by round (interleaved), when run.
paths = [r for r in runs if r.get("label") == "path-1000"]
groups = [r for r in runs if r.get("label") == "group-1000"]
if paths and groups:
    pairs = [(g.get("deliveries_per_sec"), p.get("deliveries_per_sec")) for p, g in zip(paths, groups)
             if p.get("ok") and g.get("ok")]
    ratios = sorted(g / p for g, p in pairs if g and p)
    if ratios:
        median = ratios[len(ratios) // 2]
        print(f"\nGroup/path fan-out to 1000 clients: median {median:.2f} of the deliveries/s over "
              f"{len(ratios)} rounds ({', '.join(f'{r:.2f}' for r in ratios)}; target ≥ 0.95, "
              f"{'met' if median >= 0.95 else 'NOT met'})")
    else:
        print("\nGroup/path fan-out to 1000 clients: not compared, no round was ok")

# permessage-deflate off and on, round by round (interleaved), when run.
def rounds(off_label, on_label):
    """(off, on) reports of the same round, both ok."""
    offs = [r for r in runs if r.get("label") == off_label]
    ons = [r for r in runs if r.get("label") == on_label]
    return [(a, b) for a, b in zip(offs, ons) if a.get("ok") and b.get("ok")], len(offs) + len(ons)

def negotiation_note(pairs):
    """Why a fan-out comparison is void: the server with --compression did not accept the
    extension for every client, or the one without it accepted it."""
    on_short = [b.get("compression_negotiated") for _, b in pairs
                if b.get("compression_negotiated") != b.get("connected")]
    off_some = [a.get("compression_negotiated") for a, _ in pairs if a.get("compression_negotiated")]
    if on_short:
        return f"with --compression the extension was accepted for {on_short[0]} of the clients"
    if off_some:
        return f"without --compression the extension was accepted for {off_some[0]} clients"
    return None

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None

def compare(title, off_label, on_label, key, target, ok, fmt="{:.2f}", vfmt="{:,.1f}", diff=False,
            fan_out=True):
    pairs, seen = rounds(off_label, on_label)
    if not seen:
        return
    pairs = [(a, b) for a, b in pairs if isinstance(a.get(key), (int, float))
             and isinstance(b.get(key), (int, float)) and (diff or a[key])]
    if not pairs:
        print(f"- {title}: not compared, no round had both ok")
        return
    note = negotiation_note(pairs) if fan_out else None
    values = sorted((b[key] - a[key]) if diff else b[key] / a[key] for a, b in pairs)
    m = median(values)
    detail = ", ".join(fmt.format(v) for v in values)
    on, off = median([b[key] for _, b in pairs]), median([a[key] for a, _ in pairs])
    verdict = "not judged: " + note if note else ("met" if ok(m) else "NOT met")
    print(f"- {title}: {fmt.format(m)}, the median of {len(values)} rounds ({detail}; medians "
          f"on {num(on, vfmt)}, off {num(off, vfmt)}; target {target}, {verdict})")

if any(r.get("label", "").startswith(("compress-", "idle-2000")) for r in runs):
    print("\npermessage-deflate, the binary with --compression (on) and without (off):")
    compare("4 KiB JSON to 1000 clients, wire bytes per delivery on/off", "compress-4k-off",
            "compress-4k-on", "wire_bytes_per_delivery", "≤ 1/3", lambda m: m <= 1 / 3)
    compare("4 KiB JSON to 1000 clients, deliveries/s on/off", "compress-4k-off",
            "compress-4k-on", "deliveries_per_sec", "≥ 0.90", lambda m: m >= 0.9, vfmt="{:,.0f}")
    compare("64 B JSON to 1000 clients, server CPU µs per delivery on/off", "compress-64-off",
            "compress-64-on", "server_cpu_us_per_delivery", "≤ 1.05", lambda m: m <= 1.05,
            vfmt="{:.3f}")
    compare("2000 idle connections, RSS per connection on minus off (KiB)", "idle-2000",
            "idle-2000-compression", "rss_per_conn_kib", "≤ 1 KiB", lambda m: m <= 1.0,
            fmt="{:+.1f}", diff=True, fan_out=False)

# One big broadcast to clients that do not read, when this invocation ran it.
big = this_run.get("bigcast-20")
if big:
    copies = big.get("growth_per_message")
    if copies is None:
        print(f"\nBig broadcast: no figure ({big.get('error')})")
    else:
        print(f"\nBig broadcast: RSS growth for one {num(big.get('message_kib'))} KiB broadcast to "
              f"{big.get('connected')} of {big.get('clients')} clients that do not read: "
              f"{copies:.2f}x the message size ({num(big.get('rss_before_kib'))} -> "
              f"{num(big.get('rss_after_kib'))} KiB; target about 1, at most 3, "
              f"{'met' if big.get('ok') else 'NOT met'}); server threads {num(big.get('threads_after'))}")
EOF
exit "$failed"
