# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit broker-tests bench clean

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

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
