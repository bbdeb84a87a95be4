# signalhub: `make run-example` runs the example server, `make test` runs every check CI runs.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build run-example test lint unit python-websockets redis-server conformance browser-test fuzz bench bench-compare bench-plot soak clean

all: build

build:
	$(CARGO) build --release

## The browser example (Pode's web-signal): the page on http://127.0.0.1:8090/, WebSockets on
## 8091 (SIGNALHUB_HTTP / SIGNALHUB_WS change them; the same address for both shares one port).
## It prints the URL to open in two browsers. Its /time clock is a cron schedule: feature
## schedules.
run-example:
	$(CARGO) build --release --features schedules --example web_signal
	./target/release/examples/web_signal

## Everything CI checks: formatting, lints, unit, integration and doc tests, Autobahn
## conformance, and the example in a real browser.
test: lint unit conformance browser-test

## --workspace: signalhub and tools/loadgen; then signalhub with every feature, and as a
## library alone (no default feature: no binary, no cli dependencies). clippy.toml's msrv makes
## clippy flag anything newer than the declared rust-version. The API documentation must build
## without a warning (broken or private links).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	$(CARGO) clippy --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features

## Default features (cli, webpki-roots), then every optional one (schedules, redis) on top,
## then the library alone. The Redis backplane's tests start their own redis-server (installed
## here when missing; without it they say SKIPPING and pass).
unit: redis-server python-websockets
	SIGNALHUB_TEST_PYTHON=$(CURDIR)/.venv-test/bin/python $(CARGO) test --all-targets
	$(CARGO) test --doc --all-features
	$(CARGO) test --all-features --lib --bins --test schedule --test tls_certs --test wss --test backplane
	$(CARGO) test --no-default-features --lib

## Python's `websockets` (pinned, in .venv-test) for tests/compression.rs: a client that offers
## permessage-deflate by default. Without Python or the network, that test says SKIPPING.
python-websockets:
	@[ -x .venv-test/bin/python ] && .venv-test/bin/python -c 'import websockets' 2>/dev/null || { \
	    python3 -m venv .venv-test && .venv-test/bin/pip install --quiet --disable-pip-version-check 'websockets==15.0.1'; } \
	    || echo "!!! Python websockets not installable here: its compression test will SKIP !!!"

## Debian's redis-server for tests/backplane.rs, when missing (needs root and apt-get).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	    if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	    else \
	        echo "!!! redis-server missing and not installable here: the backplane tests will SKIP !!!"; \
	    fi; }

## The Autobahn TestSuite's cases (kosoku, pinned, in a virtualenv made in .venv-conformance)
## against the echo server (examples/autobahn_server.rs) and the outbound client
## (examples/autobahn_client.rs). The server runs with permessage-deflate and takes every case;
## the client side leaves out 12.*/13.* (outbound clients do not offer the extension). Fails
## unless every case is OK, NON-STRICT or INFORMATIONAL, with no NON-STRICT on the server side.
## Reports in conformance-reports/.
conformance:
	CARGO="$(CARGO)" ./scripts/conformance.sh

## The web-signal example in headless Chromium (installs Debian's chromium and playwright-core
## when missing; says SKIPPING loudly where it cannot). UPDATE_SCREENSHOT=1 refreshes
## docs/screenshot.png.
browser-test:
	CARGO="$(CARGO)" ./tests/browser/run.sh

## Our own load scenarios (tools/loadgen: fan-out, direct, idle) against the example server;
## against the binary, 15,000 connections, HTTP (GET / and POST /broadcast over 50 keep-alive
## connections, alone and beside 50 stalled requests) and the RSS growth for one 8 MiB broadcast
## to 20 clients that do not read (target: about one copy); the two-node Redis case; and the
## binary's size, RSS after start and time to listening.
bench:
	./scripts/bench.sh
	./scripts/bench-cluster.sh
	./scripts/bench-binary.sh

## shared/bench's comparison: signalhub beside tokio-tungstenite, Node ws, Python websockets
## and a naive sync server, 3 interleaved rounds plus 10x longer fan-out runs; prints one
## table with ratios and the performance targets checked (bench-results/compare-DATE.md).
bench-compare:
	./scripts/bench-compare.sh

## Fan-out deliveries/s and p99 against client count (100 to 19,000), signalhub and the
## peers: docs/fanout-scaling.png (matplotlib in .venv-bench).
bench-plot:
	./scripts/bench-plot.sh

## Long property-test runs: the parsers' own properties in the crate (client messages and
## their targets, src/protocol/properties/; request heads and the door's rules,
## src/server/properties/), 200,000 cases each without sockets (about 20 s), then the
## end-to-end ones through a running server (tests/properties.rs), 2,000 cases each (about
## 40 s). make test runs them bounded (2,000 cases each in the crate, 60 and 40 end to end).
fuzz:
	PROPTEST_CASES=200000 $(CARGO) test --release --lib properties::
	PROPTEST_CASES=2000 $(CARGO) test --release --test properties

## Not in CI (10 minutes): 500 steady clients count every broadcast while 2000 clients churn;
## fails if any message is lost or the server's RSS, threads or open files end over 110 % of
## the start. SOAK_SECS (600), SOAK_RATE (50 messages/s) and others: see scripts/soak.sh.
soak:
	./scripts/soak.sh

clean:
	$(CARGO) clean
