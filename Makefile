# One entry point for newcomers and CI. Every target sets up what it needs from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-embedded test-services lint schema bench clean

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

## test-embedded: the suite on the embedded defaults (SQLite, in-process bus)
test-embedded: $(STAMP)
	$(BIN)/pytest -q

## test-services: the suite that runs on PostgreSQL + RabbitMQ (HUB_TEST_STACK=services)
test-services: $(STAMP)
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
