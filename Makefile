# The two commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/python -m example_project.demo

test: install
	$(BIN)/python -m pytest -q

# Every benchmark scenario (about a quarter of an hour; not part of CI): bench/RESULTS.md.
.PHONY: bench
bench: install
	$(BIN)/python bench/run_all.py

lint: install
	$(BIN)/ruff check dagster_runwf tests bench example_project
	$(BIN)/ruff format --check dagster_runwf tests bench example_project
	$(BIN)/mypy

# The documentation site, into site/; any warning (a broken link or reference, a docstring
# that does not parse) fails the build.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist *.egg-info site
