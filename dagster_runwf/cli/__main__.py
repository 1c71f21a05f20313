"""``python -m dagster_runwf.cli``: the same as the ``runwf`` command."""

from __future__ import annotations

from dagster_runwf.cli import run

run()
