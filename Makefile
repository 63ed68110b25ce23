# Lakeport — every target a new user needs on a fresh machine.
PYTHON ?= python3
# make bench KAFKA=tansu,apache: the ingest bench on both brokers, in one run
# make demo KAFKA=apache DEBEZIUM=1: the demo on Apache Kafka with the real Debezium connector
KAFKA  ?= tansu
DEMO_FLAGS = $(if $(filter apache,$(KAFKA)),--kafka apache) $(if $(DEBEZIUM),--debezium)
DEMO_DEPS = $(if $(filter apache,$(KAFKA)),jvm-deps)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install e2e-deps jvm-deps lint fmt test test-fast demo demo-keep notebooks dagster bench clean dev-up dev-down

install: $(STAMP)  ## create .venv and install lakeport (editable) with test, demo and bench tools

$(STAMP): pyproject.toml setup.py ingestion/_fastjson.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

jvm-deps: install  ## Apache Kafka, Kafka Connect and Debezium jars (Maven Central) for the compatibility tier
	bash scripts/jvm-deps.sh $(VENV)

e2e-deps:  ## headless Chromium + chromedriver for the UI tests (Debian packages; no-op when present)
	bash scripts/e2e-deps.sh

lint: install  ## ruff format + lint, mypy on the library
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install e2e-deps jvm-deps lint  ## the whole suite: unit tests and integration tests on the real local stack
	$(BIN)/pytest

test-fast: install  ## only the tests that need no local stack
	$(BIN)/pytest -m "not stack"

demo: install $(DEMO_DEPS)  ## start the stack, produce e-commerce traffic, ingest it, show the lake, stop (KAFKA=apache DEBEZIUM=1: the real thing)
	$(BIN)/lakeport demo run $(DEMO_FLAGS)

demo-keep: install $(DEMO_DEPS)  ## the demo, leaving the stack up for `lakeport sql` (stop: make dev-down)
	$(BIN)/lakeport demo run --keep $(DEMO_FLAGS)

notebooks: install  ## run the demo (stack left up), execute notebooks/ into .lakeport/notebooks, stop the stack
	$(BIN)/lakeport demo run --keep
	$(BIN)/python -m lakeport.dev.notebooks --config lakeport.yaml --out .lakeport/notebooks; rc=$$?; \
	$(BIN)/lakeport dev down; exit $$rc

dagster: dev-up  ## the Dagster UI, daemon and code server on http://127.0.0.1:3000 over the local stack
	$(BIN)/lakeport dagster

dev-up: install
	$(BIN)/lakeport dev up

dev-down: install
	$(BIN)/lakeport dev down

bench: install jvm-deps  ## ingest (raw vs naive vs lakeport), silver MERGE, compaction, gold and analyst queries; into bench/results.json
	$(BIN)/python benchmarks/bench_ingest.py --kafka $(KAFKA)
	$(BIN)/python benchmarks/bench_silver.py
	$(BIN)/python benchmarks/bench_compaction.py
	$(BIN)/python benchmarks/bench_gold.py
	$(BIN)/python benchmarks/bench_replay.py

clean:
	rm -rf .lakeport bench/results.json .pytest_cache .mypy_cache .ruff_cache
