#!/usr/bin/env bash
# Writes scripts/startup-order.txt: the functions `signalhub serve` runs from its start until
# it listens, in the order it first runs them, for the linker to lay out together (build.rs
# passes it to LLD as --symbol-ordering-file). The kernel maps a program's code in 64 KiB
# runs around each page touched; with start-up code scattered among the rest, 383 of the 511
# pages of .text were resident once listening, together 63 (docs/PERFORMANCE.md, "The
# binary's size and RSS").
#
# The names carry hashes that change with the Rust toolchain, dependency versions and
# features: a stale list costs nothing but the gain (scripts/bench-binary.sh says how much of
# it the binary still has). Run again after such a change: scripts/startup-order.sh (needs
# valgrind; a release build, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin signalhub
binary=$target/release/signalhub
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# With GLIBC_TUNABLES set, serve does not run itself again (src/cli/tunables.rs): the
# functions recorded are those of the process that listens.
GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0 \
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/cg.out" \
    "$binary" serve --http 127.0.0.1:0 --ws 127.0.0.1:0 --log-level warn \
    >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
for _ in $(seq 600); do
    [ "$(grep -c '^listening on ' "$tmp/stdout" || true)" -ge 2 ] && break
    sleep 0.1
done
sleep 1 # the threads that start with the server are waiting
callgrind_control --dump "$pid" >/dev/null 2>&1
kill -INT "$pid"
wait "$pid" || true
nm "$binary" | awk '{print $3}' | sort -u >"$tmp/symbols"
# Function names from the dump (fn= and cfn= lines, first mention), without callgrind's
# recursion suffix ('2), kept if the binary defines them.
python3 - "$tmp/cg.out.1" "$tmp/symbols" >scripts/startup-order.txt <<'PY'
import re, sys
symbols = set(open(sys.argv[2]).read().split())
seen = set()
for line in open(sys.argv[1]):
    m = re.match(r"c?fn=\(\d+\) (.*)$", line.strip())
    if m:
        name = re.sub(r"'\d+$", "", m.group(1))
        if name in symbols and name not in seen:
            seen.add(name)
            print(name)
PY
echo "scripts/startup-order.txt: $(wc -l <scripts/startup-order.txt) functions"
