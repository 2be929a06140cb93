# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILE_STAMP := $(VENV)/.compiled
# The modules setup.py compiles with mypyc (pyproject.toml, [tool.streamer] compiled).
COMPILED := $(shell $(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['streamer']['compiled'])")

.PHONY: setup compile demo test lint unit broker-tests bench bench-all clean

# The package is installed editable without extensions (quick); `compile` builds them in place with
# the venv's mypy, and again whenever a compiled module's source changes.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=68'
	STREAMER_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	@# The compiled modules load streamer__mypyc.so from beside the package: put the checkout itself
	@# on the venv's import path (the editable install maps only the package).
	$(BIN)/python -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'streamer-checkout.pth').write_text('$(CURDIR)\\n')"
	touch $(STAMP)

$(COMPILE_STAMP): $(STAMP) $(COMPILED)
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $(COMPILE_STAMP)

setup: $(COMPILE_STAMP)

compile: $(COMPILE_STAMP)

## The whole pipeline on an embedded broker: streamer, pydicom's sample studies, one Bundle per study.
demo: $(COMPILE_STAMP)
	$(BIN)/python -m streamer demo

lint: $(STAMP)
	$(BIN)/ruff check streamer tests bench setup.py
	$(BIN)/ruff format --check streamer tests bench setup.py
	$(BIN)/mypy

## The whole suite: lint, types, unit + broker tests on Apache Kafka (from Maven Central jars when
## java and mvn exist, else Tansu), then the broker tests again on Tansu.
test: lint $(COMPILE_STAMP)
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/python -m streamer.devbroker fetch-kafka; fi
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/python -m tests.hl7.validator fetch; fi
	@if command -v java >/dev/null && command -v mvn >/dev/null; then $(BIN)/python -m streamer.devfhir fetch; fi
	$(BIN)/python -m pytest
	STREAMER_TEST_BROKER=tansu $(BIN)/python -m pytest -m "kafka and not real_kafka"

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(COMPILE_STAMP)
	STREAMER_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev,bench]'
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
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache build
	find streamer -name '*.so' -delete; rm -f streamer__mypyc*.so
