# Mafalda: every set-up step is here, so that `make run` and `make test` work
# on a fresh machine (package registries only, no other network).
#
# Persistent caches live outside the clone so that CI and later runs reuse the
# C++ worker build, npm and pip downloads.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MAFALDA_CACHE ?= /var/cache/mafalda
CARGO_TARGET_DIR ?= $(MAFALDA_CACHE)/target
export MAFALDA_CACHE CARGO_TARGET_DIR
export npm_config_cache := $(MAFALDA_CACHE)/npm
export PIP_CACHE_DIR := $(MAFALDA_CACHE)/pip

CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug/mafalda
# Run a command in a private network namespace that has only loopback:
# nothing under test can reach (or be reached from) outside the machine.
ISOLATED := unshare -n -- bash -c 'ip link set lo up && exec "$$@"' isolated

.PHONY: help docs deps deps-sys mediasoup web web-page python build run cluster test test-rust test-srtp test-e2e test-cluster \
        bench fuzz lint fmt clean-cache

help:
	@echo "make run    - set up everything, build, and run one node with the browser demo"
	@echo "make test   - set up everything, build, and run every test (unit, integration, e2e)"
	@echo "make cluster N=3 - N local nodes in network namespaces, one demo URL each (Ctrl-C stops)"
	@echo "make test-cluster - only the 3-node cluster e2e with real clients (part of make test)"
	@echo "make bench  - run the benchmarks (figures go in docs/benchmarks.md)"
	@echo "make fuzz   - long property/garbage-input run of the cluster frame codec"
	@echo "make lint   - rustfmt check and clippy -D warnings"
	@echo "make docs   - render docs/architecture.svg from docs/architecture.dot"

## ---- set-up -------------------------------------------------------------

deps-sys:
	@need=(); \
	command -v unshare >/dev/null || need+=(util-linux); \
	command -v ip >/dev/null || need+=(iproute2); \
	command -v pkg-config >/dev/null || need+=(pkg-config); \
	if [ $${#need[@]} -gt 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
	  apt-get install -y --no-install-recommends "$${need[@]}"; fi

mediasoup: deps-sys
	scripts/setup-mediasoup.sh

web:
	scripts/setup-web.sh

# The demo page alone (npm + bundle), without the Chromium the tests use.
web-page:
	SKIP_CHROMIUM=1 scripts/setup-web.sh

python:
	scripts/setup-python.sh

deps: deps-sys mediasoup web python

build: mediasoup
	$(CARGO) build --workspace --all-targets

## ---- run ----------------------------------------------------------------

# The demo's node configuration: the defaults plus `[rooms] active_speaker`
# (CONFIG=file runs with that file instead).
RUN_CONFIG := web/demo-node.toml

run: mediasoup web-page
	$(CARGO) build --bin mafalda
	$(BIN) node --config $(or $(CONFIG),$(RUN_CONFIG))

# N nodes in network namespaces on a private bridge of this host (198.18.0.i),
# a fresh CA and certificates, one demo URL per node; Ctrl-C tears it down.
N ?= 3
cluster: mediasoup web-page
	$(CARGO) build --bin mafalda
	N=$(N) MAFALDA_BIN=$(BIN) scripts/cluster.sh

## ---- tests --------------------------------------------------------------

test: deps build
	$(MAKE) --no-print-directory test-rust test-srtp test-e2e test-cluster

# The examples are run from what `make build` built (`cargo run` would
# resolve features for one package alone and rebuild the C++ worker).
test-rust:
	$(ISOLATED) $(CARGO) test --workspace --offline
	@echo "== mediasoup's own tests, rewritten against mafalda::mediasoup, in two modes"
	$(ISOLATED) scripts/mediasoup-suite.sh
	@echo "== examples run to completion"
	$(ISOLATED) $(CARGO_TARGET_DIR)/debug/examples/embed_router
	$(ISOLATED) $(CARGO_TARGET_DIR)/debug/examples/custom_actor
	$(ISOLATED) $(CARGO_TARGET_DIR)/debug/examples/moderator
	@echo "== fuzz, a short budget (make fuzz runs 10 million inputs per parser)"
	$(CARGO_TARGET_DIR)/debug/examples/fuzz all 100000
	@echo "== loadgen: a 2-worker room in process (one subscriber in 4 measured) and plain mediasoup on 2 piped routers, each must deliver with <1% loss"
	$(ISOLATED) $(BIN) loadgen --workers 2 --placement spread --publishers 2 --subscribers 20 --settle 1 --duration 2 --measure-one-in 4
	$(ISOLATED) $(BIN) loadgen --target baseline --workers 2 --subscribers 20 --settle 1 --duration 2

test-srtp:
	scripts/test-srtp-compat.sh

test-e2e:
	MAFALDA_BIN=$(BIN) scripts/e2e.sh
	@echo "== e2e again: participants spread over 2 workers (media piped between them); the demo's features (simulcast layers, chat, active speaker)"
	MAFALDA_BIN=$(BIN) E2E_SKIP_SETUP=1 E2E_WORKERS=2 E2E_PLACEMENT=spread \
	  E2E_TESTS="browser features cleanup" E2E_BROWSER_ARGS="--expectWorkers 2" scripts/e2e.sh

# Three nodes in network namespaces on a private bridge, one room across
# them, 3 Chromium + 1 aiortc participants, then loadgen, a partition,
# spill-over (4 Chromium through one node) and clients moving off a killed
# and a draining node (see tests/e2e/README.md). Uses the
# web bundle and venv that test-e2e set up (run `make web python` first when
# running it alone).
test-cluster:
	MAFALDA_BIN=$(BIN) E2E_SKIP_SETUP=1 scripts/e2e-cluster.sh

## ---- other --------------------------------------------------------------

bench: mediasoup
	$(CARGO) bench -p mafalda-actors --bench fabric
	$(CARGO) build --release --bin mafalda
	scripts/bench-scaling.sh
	scripts/bench-cluster.sh
	$(CARGO) bench --bench spill
	$(CARGO) build --bin mafalda
	MAFALDA_BIN=$(BIN) scripts/bench-failover.sh

# The README's picture: docs/architecture.svg rendered from docs/architecture.dot
# (Graphviz, installed from Debian when missing); the SVG is checked in with
# the source's sha256, which tests/docs_truth.rs compares.
docs: docs/architecture.svg

docs/architecture.svg: docs/architecture.dot
	@command -v dot >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends graphviz >/dev/null; }
	dot -Tsvg $< > $@.tmp
	echo "<!-- rendered from docs/architecture.dot, sha256 $$(sha256sum $< | cut -d' ' -f1) -->" >> $@.tmp
	mv $@.tmp $@

# FUZZ_INPUTS mutated inputs for each of the two parsers of untrusted input
# (signalling JSON, fabric frames and messages); see examples/fuzz.rs.
FUZZ_INPUTS ?= 10000000
fuzz: mediasoup
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test -p mafalda-actors --release --test codec_props
	$(CARGO) run --release --example fuzz -- all $(FUZZ_INPUTS)

lint: mediasoup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-cache:
	rm -rf $(MAFALDA_CACHE)
