# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit broker-tests bench bench-all clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The whole pipeline on an embedded broker: streamer, pydicom's sample studies, one Bundle per study.
demo: $(STAMP)
	$(BIN)/python -m streamer demo

lint: $(STAMP)
	$(BIN)/ruff check streamer tests bench
	$(BIN)/ruff format --check streamer tests bench
	$(BIN)/mypy

## The whole suite: lint, types, unit + broker tests on Apache Kafka (from Maven Central jars when
## java and mvn exist, else Tansu), then the broker tests again on Tansu.
test: lint
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/python -m streamer.devbroker fetch-kafka; fi
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/python -m tests.hl7.validator fetch; fi
	@if command -v java >/dev/null && command -v mvn >/dev/null; then $(BIN)/python -m streamer.devfhir fetch; fi
	$(BIN)/python -m pytest
	STREAMER_TEST_BROKER=tansu $(BIN)/python -m pytest -m "kafka and not real_kafka"

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## The library vs the seed (bench/run.py then bench/library.py); the seed gets its own venv.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

## Every issue-12 benchmark one after the other (about 30 minutes), then the README headline table.
bench-all: $(BENCH_STAMP)
	$(BIN)/python bench/library.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/headline.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
