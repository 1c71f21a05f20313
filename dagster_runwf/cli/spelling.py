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
        "rate_limit_store": "--rate-limit-store",
        "keep_columns": "--keep",
        "instance_id_column": "--instance-id-column",
        "continue_by": "--continue-by",
        "output_schema": "--output-schema",
        # --attempt-timeout sets the read timeout too (it is never shorter than the deadline).
        "attempt_timeout_s": "--attempt-timeout",
        "read_timeout": "--attempt-timeout",
        "max_attempts": "--max-attempts",
        "max_response_bytes": "--max-response-bytes",
        "budget.max_runs": "--max-runs N",
        "land_partial": "--land-partial",
    },
    assignment="{name} {value}",
    switches=frozenset({"retry_failed", "land_partial"}),
    phrases={"api_key": "${value}"},
    # runwf reads a CSV with keep_default_na=False: only an empty cell is missing.
    # The rate is what to change when a row meets 429 after 429; no flag for this one.
    lacks=frozenset({"max_rate_limited"}),
    notes={"missing_nan": "an empty cell, or a null in Parquet"},
)
"""How ``runwf`` messages name settings: as the flags that set them."""
