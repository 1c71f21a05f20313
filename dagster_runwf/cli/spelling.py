"""Settings in ``runwf``'s words: the flags (``--on-missing null``), and the environment
variable a key is read from (see :mod:`dagster_runwf.wording`)."""

from __future__ import annotations

from ..wording import Spelling

CLI = Spelling(
    "cli",
    names={
        "on_missing": "--on-missing",
        "max_consecutive_failures": "--max-consecutive-failures",
        "retry_failed": "--retry-failed",
        "max_runs": "--max-runs",
        "rate": "--rate",
        "base_url": "--base-url",
        "claim_store": "--claims",
    },
    assignment="{name} {value}",
    switches=frozenset({"retry_failed"}),
    phrases={"api_key": "${value}"},
    # runwf reads a CSV with keep_default_na=False: only an empty cell is missing.
    notes={"missing_nan": "an empty cell, or a null in Parquet"},
)
"""How ``runwf`` messages name settings: as the flags that set them."""
