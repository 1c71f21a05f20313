# The two commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/python -m dagster_runwf.demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check dagster_runwf tests bench
	$(BIN)/ruff format --check dagster_runwf tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info
