#!/usr/bin/env bash
# The signalhub binary's own figures, against the performance issue's targets: its stripped
# release size (at most 3 MiB), RSS once `signalhub serve` is listening (at most 4 MiB;
# median of 5 starts) and the time from start to its `listening on` line (under 20 ms;
# median of 10). The server runs with its default endpoints moved to free ports
# (--http and --ws on 127.0.0.1:0), so it serves both as `signalhub serve` does. It also
# says how much of the start-up order (scripts/startup-order.txt) the binary has.
# Usage: scripts/bench-binary.sh   (part of `make bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin signalhub
python3 - "$target/release/signalhub" <<'PY'
import os, shutil, statistics, subprocess, sys, tempfile, time

binary = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    stripped = os.path.join(tmp, "signalhub")
    shutil.copy(binary, stripped)
    subprocess.run(["strip", stripped], check=True)
    size = os.path.getsize(stripped)

# How much of scripts/startup-order.txt (build.rs lays those functions out together) the binary
# still has: its names carry hashes that change with the toolchain and dependencies.
order_file = "scripts/startup-order.txt"
order = None
if os.path.exists(order_file):
    wanted = set(open(order_file).read().split())
    symbols = subprocess.run(["nm", binary], capture_output=True, text=True).stdout.split()
    order = (len(wanted & set(symbols)), len(wanted))

def start():
    """Starts serve; returns (process, seconds until both listening lines)."""
    began = time.monotonic()
    proc = subprocess.Popen(
        [binary, "serve", "--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--log-level", "warn"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for _ in range(2):
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            sys.exit(f"unexpected output: {line!r}")
    return proc, time.monotonic() - began

def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

starts, rss = [], []
for i in range(10):
    proc, took = start()
    starts.append(took * 1000)
    if i < 5:
        time.sleep(0.3)  # everything that starts with the server has started
        rss.append(rss_kib(proc.pid))
    stop(proc)

def verdict(ok):
    return "met" if ok else "NOT met"

mib = 1 << 20
print(f"stripped size: {size:,} bytes ({size / mib:.2f} MiB; target 3 MiB): {verdict(size <= 3 * mib)}")
if order:
    print(f"start-up order: {order[0]} of {order[1]} functions found"
          + ("" if order[0] * 10 >= order[1] * 9 else "; renew it: scripts/startup-order.sh"))
r = statistics.median(rss)
print(f"RSS after start: {r:,.0f} KiB ({r / 1024:.2f} MiB, median of {len(rss)}: {sorted(rss)}; "
      f"target 4 MiB): {verdict(r <= 4096)}")
s = statistics.median(starts)
print(f"start to listening: {s:.1f} ms (median of {len(starts)}; target 20 ms): {verdict(s < 20)}")
PY
