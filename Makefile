# The two commands in the README: `make demo` and `make test`. Before a commit: `make format`,
# then `make check`, which is what CI runs.
#
# Environments are uv's (https://docs.astral.sh/uv/): `.venv/` is synced to the committed
# lockfile, uv.lock (after changing dependencies in pyproject.toml: `uv lock`). A sync with
# nothing to do takes milliseconds, so every target runs one. uv is the one on PATH, or else
# installed once from pip into .tools/uv/ (a fresh machine needs only Python 3.10+, pip, make).
PYTHON ?= python3
VENV ?= .venv
SOURCES := dagster_runwf tests bench example_project
UV_HOME := .tools/uv
ifeq ($(origin UV),undefined)
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_HOME)/bin/uv)
endif
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
# `--locked`: stop if uv.lock no longer matches pyproject.toml instead of quietly re-resolving.
SYNC := $(UV) sync --locked
# Run in .venv as synced by the target's prerequisite (`uv run` alone would sync the dev group).
RUN := $(UV) run --no-sync

.PHONY: install install-demo demo test format lint types docs check clean

$(UV_HOME)/bin/uv:
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install --quiet --disable-pip-version-check \
		--target $(UV_HOME) uv

# Everything for working on the code: the package (editable), every extra, the dev group
# (tests, linters, type checker, the docs site).
install: | $(UV)
	$(SYNC)

# What the demo needs and nothing more: the package and its `ui` extra, so that the
# `dagster dev` command the demo prints works. `--inexact` keeps the dev tools if `make
# install` put them there, so that switching between targets reinstalls nothing.
install-demo: | $(UV)
	$(SYNC) --no-dev --extra ui --inexact

demo: install-demo
	$(RUN) python -m example_project.demo

test: install
	$(RUN) pytest -q

# Every benchmark scenario (about a quarter of an hour; not part of CI): bench/RESULTS.md.
.PHONY: bench
bench: install
	$(RUN) python bench/run_all.py

# Fix what ruff can (imports, modern syntax) and format the code.
format: install
	$(RUN) ruff check --fix $(SOURCES)
	$(RUN) ruff format $(SOURCES)

# Style, complexity and the import layers ([tool.importlinter] in pyproject.toml).
lint: install
	$(RUN) ruff check $(SOURCES)
	$(RUN) ruff format --check $(SOURCES)
	$(RUN) lint-imports

types: install
	$(RUN) mypy

# The documentation site, into site/; any warning (a broken link or reference, a docstring
# that does not parse) fails the build.
docs: install
	$(RUN) mkdocs build --strict --site-dir site

check: lint types docs test

clean:
	rm -rf $(VENV) build dist *.egg-info site
