"""Asset checks on an enriched table: the failure rate, every row answered, and (with
``land_partial``) the blocking ``complete``.

Both are evaluated in the same step as the materialization, from the table just built, so
they cost nothing extra and always describe the data that was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ..engine.answer_quality import failures_by_type
from ..errors import RowSkippedError
from ..services.base import READ_CSV_NA

FAILURE_RATE_CHECK = "failure_rate"
EVERY_ROW_CHECK = "every_row_answered"
COMPLETE_CHECK = "complete"
PENDING = "pending"
"""The status of a row a stopped run did not finish, in a table landed with land_partial."""


def check_specs(
    asset_key: dg.AssetKey, threshold: float, *, complete: bool = False
) -> Sequence[dg.AssetCheckSpec]:
    """The checks of an enriched asset: two, and ``complete`` with ``land_partial``."""
    specs = [
        dg.AssetCheckSpec(
            FAILURE_RATE_CHECK,
            asset=asset_key,
            description=f"At most {threshold:.1%} of the rows failed.",
        ),
        dg.AssetCheckSpec(
            EVERY_ROW_CHECK,
            asset=asset_key,
            description="Every input row has exactly one result row, with an answer when it "
            "succeeded and an error when it failed.",
        ),
    ]
    if complete:
        specs.append(
            dg.AssetCheckSpec(
                COMPLETE_CHECK,
                asset=asset_key,
                blocking=True,
                description="The run finished every row: no row is pending (a run stopped by "
                "a fatal error or the budget stores its finished rows with land_partial; this "
                "check then fails and stops downstream assets of the run).",
            )
        )
    return specs


def failure_rate_result(
    table: pa.Table, prefix: str, threshold: float, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    """Passed when the share of failed rows is at most ``threshold``; rows skipped on purpose
    (``on_missing="skip"``) count neither as failed nor as rows."""
    failed_rows = pc.equal(table.column(f"{prefix}status"), "failed")
    skipped_rows = pc.and_(
        failed_rows, pc.equal(table.column(f"{prefix}error_type"), RowSkippedError.__name__)
    )
    skipped = int(pc.sum(skipped_rows).as_py() or 0)
    failed = int(pc.sum(failed_rows).as_py() or 0) - skipped
    pending = _count(pc.equal(table.column(f"{prefix}status"), PENDING))
    rows = table.num_rows - skipped - pending
    rate = failed / rows if rows else 0.0
    metadata: dict[str, Any] = {
        "failure_rate": round(rate, 6),
        "failed": failed,
        "skipped": skipped,
        "threshold": threshold,
    }
    missing = _missing_inputs(table, prefix, failed_rows)
    metadata.update(missing)
    groups = failures_by_type(table, prefix, leave_out=[RowSkippedError.__name__])
    if groups:
        # By error type, commonest first: "13 rows RowInputError: input 'tier' is missing".
        metadata["failures_by_type"] = dg.MetadataValue.json(
            {
                group.error_type: {
                    "rows": group.rows,
                    "commonest_error": group.commonest,
                    "rows_with_it": group.commonest_rows,
                }
                for group in groups
            }
        )
        metadata["commonest_failure"] = str(groups[0])
    description = None
    if rate > threshold:
        description = (
            f"{failed} of {rows} rows failed ({rate:.1%} > {threshold:.1%}): "
            + "; ".join(str(group) for group in groups[:3])
            + f"; see the {prefix}error column"
        )
        if "missing_input_hint" in missing:
            description += f". {missing['missing_input_hint']}"
    return dg.AssetCheckResult(
        check_name=FAILURE_RATE_CHECK,
        passed=rate <= threshold,
        severity=severity,
        metadata=metadata,
        description=description,
    )


def _missing_inputs(table: pa.Table, prefix: str, failed_rows: pa.Array) -> dict[str, Any]:
    """How many failed rows had a missing input, and, when some held NaN or pd.NA (what
    ``pandas.read_csv`` makes of the text ``NA``), a hint saying so."""
    errors = table.column(f"{prefix}error")
    missing_rows = pc.and_(
        pc.and_(failed_rows, pc.equal(table.column(f"{prefix}error_type"), "RowInputError")),
        pc.match_substring(errors, " is missing ("),
    )
    nan_rows = pc.and_(
        missing_rows,
        pc.or_(
            pc.match_substring(errors, " is missing (NaN"),
            pc.match_substring(errors, " is missing (pd.NA"),
        ),
    )
    found: dict[str, Any] = {"missing_input": int(pc.sum(missing_rows).as_py() or 0)}
    nan = int(pc.sum(nan_rows).as_py() or 0)
    if nan:
        found["missing_input_hint"] = (
            f"{nan} rows failed on an input that is NaN or pd.NA: {READ_CSV_NA}"
        )
    return found


def every_row_result(table: pa.Table, prefix: str, input_rows: int) -> dg.AssetCheckResult:
    """Passed when each input row has a result with an answer or an error."""
    status = table.column(f"{prefix}status")
    succeeded = pc.equal(status, "succeeded")
    failed = pc.equal(status, "failed")
    no_answer = pc.and_(succeeded, pc.is_null(table.column(f"{prefix}result")))
    no_error = pc.and_(failed, pc.is_null(table.column(f"{prefix}error")))
    pending = pc.equal(status, PENDING)
    bad_status = pc.invert(pc.or_(pc.or_(succeeded, failed), pending))
    problems = {
        "pending": _count(pending),
        "rows_missing": input_rows - table.num_rows,
        "succeeded_without_answer": int(pc.sum(no_answer).as_py() or 0),
        "failed_without_error": int(pc.sum(no_error).as_py() or 0),
        "unknown_status": int(pc.sum(bad_status).as_py() or 0),
    }
    return dg.AssetCheckResult(
        check_name=EVERY_ROW_CHECK,
        passed=not any(problems.values()),
        metadata={"input_rows": input_rows, **problems},
    )


def complete_result(table: pa.Table, prefix: str, stopped: str | None) -> dg.AssetCheckResult:
    """Passed when no row is pending; failed (ERROR, blocking) when a stopped run's
    finished rows were landed, saying why it stopped (``stopped``)."""
    pending = _count(pc.equal(table.column(f"{prefix}status"), PENDING))
    description = None
    if pending:
        description = (
            f"{pending} of {table.num_rows} rows are pending: the run stopped before them"
            + (f" ({stopped})" if stopped else "")
            + ". The next run of the asset (and partition) resumes its journal job and pays "
            "only for the pending rows"
        )
    return dg.AssetCheckResult(
        check_name=COMPLETE_CHECK,
        passed=not pending,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"pending": pending, "finished": table.num_rows - pending},
        description=description,
    )


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0)
