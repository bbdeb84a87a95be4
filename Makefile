# signalhub: `make run-example` runs the example server, `make test` runs every check CI runs.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build run-example test lint unit bench bench-compare clean

all: build

build:
	$(CARGO) build --release

## The example server: Pode's [date] signal route on ws://127.0.0.1:8091/messages.
run-example:
	$(CARGO) build --release --example date_route
	@echo "Open a WebSocket client on the URL below and send {\"message\": \"[date]\"}."
	./target/release/examples/date_route $${SIGNALHUB_WS:-127.0.0.1:8091}

## Everything CI checks: formatting, lints, unit, integration and doc tests.
test: lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

## Our own load scenarios (fan-out, direct, idle) against the example server.
bench:
	./scripts/bench.sh

## shared/bench's comparison: signalhub beside Node ws, Python websockets, tokio-tungstenite.
bench-compare:
	./scripts/bench-compare.sh

clean:
	$(CARGO) clean
