# AIkube — the two commands a new machine needs are `make demo` and `make test` (both set up first).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SERVICES := ingestor feature-builder drift-watcher retrain-scheduler trainer-dispatcher deployer
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast test-emulator lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the library, the six services and the test tools (pinned)

$(STAMP): constraints.txt scripts/bqemulator-constraints.txt libs/aikube/pyproject.toml \
		$(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e 'libs/aikube[test,kubernetes]' \
		$(foreach s,$(SERVICES),-e services/$(s)) pytest pytest-timeout ruff kubernetes-validate python-hcl2
	bash scripts/bqemulator-env.sh  # the BigQuery stand-in lives in a virtualenv of its own (.cache/)
	touch $(STAMP)

demo: setup ## run the whole loop on the Capital Bikeshare 2011 data (out/demo)
	$(BIN)/aikube demo --dataset examples/bikeshare.yaml --out out/demo

test: setup ## every tier: unit, contract, services, emulator integration and the end-to-end loop
	$(BIN)/pytest

test-fast: setup ## the quick loop: no emulator, no end-to-end
	$(BIN)/pytest -m "not emulator and not e2e and not gcp_emulators"

test-emulator: setup ## only the tests against the stand-ins (Pub/Sub, Cloud Storage, BigQuery) and the loop
	$(BIN)/pytest -m "emulator or e2e or gcp_emulators"

lint: setup ## ruff: lint and formatting check
	$(BIN)/ruff check libs services tests benchmarks
	$(BIN)/ruff format --check libs services tests benchmarks

bench: setup ## bus throughput vs the plain google-cloud-pubsub client, on the emulator
	$(BIN)/python benchmarks/bus_throughput.py

clean: ## remove the venv and outputs
	rm -rf $(VENV) out .pytest_cache .cache
