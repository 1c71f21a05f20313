"""Engine results as Dagster metadata: counts, latencies, schema and column lineage.

Numeric values are plain numbers so the UI plots them across materializations. Keys are
namespaced ``runwf/`` except Dagster's own ``dagster/`` keys (row count, column schema,
column lineage), which the UI shows in their dedicated places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from ..engine.stats import RunStats


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The Arrow schema as a Dagster table schema (index columns included)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=field.name, type=str(field.type)) for field in schema]
    )


def column_lineage(
    source: dg.AssetKey,
    kept_columns: Sequence[str],
    input_columns: Sequence[str],
    result_columns: Sequence[str],
) -> dg.TableColumnLineage:
    """Kept columns come from their namesakes; every result column from the mapped inputs."""
    deps: dict[str, list[dg.TableColumnDep]] = {
        column: [dg.TableColumnDep(asset_key=source, column_name=column)] for column in kept_columns
    }
    from_inputs = [dg.TableColumnDep(asset_key=source, column_name=c) for c in input_columns]
    for column in result_columns:
        deps[column] = list(from_inputs)
    return dg.TableColumnLineage(deps_by_column=deps)


def run_metadata(stats: RunStats) -> dict[str, Any]:
    """The run's counts, rates and latencies (``runwf/…``), numbers only where plottable."""
    rows = stats.rows
    metadata: dict[str, Any] = {
        "runwf/rows": rows,
        "runwf/succeeded": stats.succeeded,
        "runwf/failed": stats.failed,
        "runwf/failure_rate": round(stats.failed / rows, 6) if rows else 0.0,
        "runwf/sent": stats.sent,
        "runwf/reused": stats.reused,
        "runwf/deduplicated": stats.deduplicated,
        "runwf/invalid": stats.invalid,
        "runwf/skipped": stats.skipped,
        "runwf/retried": stats.retried,
        "runwf/requests": stats.requests,
        "runwf/rate_limited_429": stats.rate_limited,
        "runwf/transient_errors": stats.transient_errors,
        "runwf/elapsed_s": round(stats.elapsed_s, 3),
    }
    if stats.sent and stats.elapsed_s:
        # Paid rows only: a run answered from the journal says nothing of the service's pace.
        metadata["runwf/rows_per_s"] = round(stats.sent / stats.elapsed_s, 3)
    for name, q in (("p50", 50), ("p95", 95)):
        value = stats.latency.percentile(q)
        if value is not None:
            metadata[f"runwf/latency_{name}_s"] = round(value, 4)
    if stats.credits is not None:
        metadata["runwf/credits"] = stats.credits
    return metadata


def cost_metadata(
    stats: RunStats, extra: Mapping[str, Any], balance_after: float | None
) -> dict[str, Any]:
    """The credits this materialization spent, as a float Dagster plots (and Dagster+
    Insights can chart as a custom metric): AI Tutor's balance before the run
    (``runwf/credits_before``, from the pre-flight) less the balance after; else the credits
    the service reported for the rows paid now (Runchat's metadata); 0 when no request was
    sent. Absent when none of these is known."""
    before = extra.get("runwf/credits_before")
    if isinstance(before, (int, float)) and balance_after is not None:
        return {
            "runwf/credits_after": dg.MetadataValue.float(float(balance_after)),
            "runwf/credits_spent": dg.MetadataValue.float(round(float(before) - balance_after, 6)),
        }
    if stats.credits is not None:
        return {"runwf/credits_spent": dg.MetadataValue.float(round(stats.credits, 6))}
    if stats.sent == 0 and stats.requests == 0:
        # Nothing reached the service (every row reused, or rejected before sending).
        return {"runwf/credits_spent": dg.MetadataValue.float(0.0)}
    return {}


def table_metadata(
    table: pa.Table, lineage: dg.TableColumnLineage | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """Row count, schema and (for an asset) lineage of the results table, plus ``extra``."""
    metadata: dict[str, Any] = {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(table.schema),
    }
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return {**metadata, **extra}
