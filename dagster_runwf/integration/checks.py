"""Asset checks on an enriched table: the failure rate, and every row answered.

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


def check_specs(asset_key: dg.AssetKey, threshold: float) -> Sequence[dg.AssetCheckSpec]:
    """The two checks of an enriched asset."""
    return [
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
    rows = table.num_rows - skipped
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
    bad_status = pc.invert(pc.or_(succeeded, failed))
    problems = {
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
