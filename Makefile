# One entry point for newcomers and CI. Every target sets up what it needs from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := tests/node/node_modules/.hub-stamp

.PHONY: run browser test test-embedded test-services lint schema bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the hub on its embedded defaults (SQLite, in-process bus) with demo data, on :8000
run: $(STAMP)
	$(BIN)/hub serve --demo

## test: the whole suite, then again on PostgreSQL + RabbitMQ, plus lint
test: $(STAMP) lint test-embedded test-services

## browser: Debian's Chromium (and its driver) for the real-browser tests in tests/browser, where missing
browser:
	test -x /usr/bin/chromium || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  chromium chromium-driver; }

## tests/node: the Node tools tests/ecosystem runs (graphql-http's audit, graphql-ws, Apollo composition),
## installed from the lock file when it changed (the stamp holds its hash, as the tests check it)
$(NODE_STAMP): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	sha256sum tests/node/package-lock.json | cut -d' ' -f1 > $(NODE_STAMP)

## test-embedded: the suite on the embedded defaults (SQLite, in-process bus)
test-embedded: $(STAMP) browser $(NODE_STAMP)
	$(BIN)/pytest -q

## test-services: the suite that runs on PostgreSQL + RabbitMQ (HUB_TEST_STACK=services)
test-services: $(STAMP) $(NODE_STAMP)
	HUB_TEST_STACK=services $(BIN)/pytest -q -m "stack"

## lint: ruff, and mypy on the runtime and adapters
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy hub adapters

## schema: re-export schema/schema.graphql from the code
schema: $(STAMP)
	$(BIN)/hub export-schema

## bench: side-by-side benchmarks (ratios against a baseline); results in bench/RESULTS.md
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py --rounds 7

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
