# The two commands in the README: `make demo` and `make test`. Before a commit: `make format`,
# then `make check`, which is what CI runs once it has installed the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := dagster_runwf tests bench example_project

.PHONY: install demo test format lint types docs check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled when pyproject.toml changes (the install is editable: code changes need none).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m example_project.demo

test: install
	$(BIN)/python -m pytest -q

# Every benchmark scenario (about a quarter of an hour; not part of CI): bench/RESULTS.md.
.PHONY: bench
bench: install
	$(BIN)/python bench/run_all.py

# Fix what ruff can (imports, modern syntax) and format the code.
format: install
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

# Style, complexity and the import layers ([tool.importlinter] in pyproject.toml).
lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

types: install
	$(BIN)/mypy

# The documentation site, into site/; any warning (a broken link or reference, a docstring
# that does not parse) fails the build.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

check: lint types docs test

clean:
	rm -rf $(VENV) build dist *.egg-info site
