# The two commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test install install-test lint typecheck bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)
install-test: $(TSTAMP)

## Set up and run the whole service on one machine (SQLite, ./var/storage, its own Redis).
run: $(STAMP)
	$(BIN)/roomcast up

## Set up and run every test.
test: $(TSTAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(TSTAMP)
	$(BIN)/ruff check core live recorder workers api roomcast tests bench

typecheck: $(TSTAMP)
	$(BIN)/mypy

## Full benchmarks (not part of `make test`); each writes its table to docs/performance.md.
bench: $(TSTAMP)
	$(BIN)/python -m bench

soak: $(TSTAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
