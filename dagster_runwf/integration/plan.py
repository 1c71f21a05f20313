"""What an enriched asset does in a step, whether the table is enriched in one step or chunk
by chunk: resolve the settings, open the row journal, run the engine, and turn the results
into the materialization's value, metadata and check results.

Job identity (see ``docs/journal.md``): a journal job is the asset key, the partition and
the *root* run id (plus the chunk, when chunked), so a step retry and a re-execution from
failure resume the same job — only unfinished rows are sent — while the next scheduled run
is a new job, which with ``incremental=True`` still reuses every unchanged row's answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from ..engine.budget import Budget
from ..engine.enrich import Enrichment, column_mapping, enrich_async
from ..engine.journal import RowJournal
from ..engine.options import EngineOptions
from ..engine.stats import Progress, RunStats
from ..engine.table import ResultsTableWriter, result_fields
from ..errors import FanOutStopped, JournalError, RunwfError, TransientError
from ..services.base import Workflow
from .checks import check_specs, every_row_result, failure_rate_result
from .metadata import column_lineage, run_metadata, table_metadata
from .resources import WorkflowServiceResource

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext

RATE_LIMIT_FILE = "runwf_rate_limits.sqlite"
"""The shared rate-limit store's file in a persistent Dagster instance's storage folder."""


@dataclass(frozen=True)
class StepSettings:
    """What a step resolved before its first paid request."""

    mapping: dict[str, str]
    engine: EngineOptions
    checked: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnrichmentPlan:
    """An enriched asset's settings, as given to :func:`enriched_asset`."""

    asset_key: dg.AssetKey
    source_key: dg.AssetKey
    workflow: Workflow
    resource_key: str
    columns: Mapping[str, str]
    keep_columns: Sequence[str] | None
    output_columns: Mapping[str, str] | None
    prefix: str
    rate: str | None
    concurrency: int | None
    budget: Budget | None
    journal_dir: str | None
    journal_storage_options: Mapping[str, Any] | None
    incremental: bool
    max_age: dt.timedelta | None
    journal_version: str
    preflight: bool
    failure_rate_threshold: float
    failure_rate_severity: dg.AssetCheckSeverity
    progress_interval_s: float

    # -- definition time --------------------------------------------------------------------

    @property
    def code_version(self) -> str:
        """Changes whenever the answers or the table's shape would (so the UI flags it)."""
        config = {
            "workflow": self.workflow.fingerprint(),
            "columns": dict(sorted(self.columns.items())),
            "keep_columns": list(self.keep_columns) if self.keep_columns is not None else None,
            "output_columns": dict(self.output_columns or {}),
            "prefix": self.prefix,
            "journal_version": self.journal_version,
        }
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check_specs(self) -> Sequence[dg.AssetCheckSpec]:
        return check_specs(self.asset_key, self.failure_rate_threshold)

    def description(self) -> str:
        return (
            f"{self.workflow.display_name} workflow {self.workflow.workflow_id!r}, run once per "
            f"row of {self.source_key.to_user_string()}."
        )

    def metadata(self) -> dict[str, str]:
        return {"runwf/workflow": self.workflow.workflow_id, "runwf/service": self.workflow.service}

    # -- run time ---------------------------------------------------------------------------

    def resolve(
        self, context: StepContext, rows: pd.DataFrame, *, preflight: bool = True
    ) -> StepSettings:
        """Check the mapping and, with ``preflight``, the key; the engine's settings (which
        hold the key: never pass them between steps).

        Raises:
            dagster.Failure: a setting is wrong or the pre-flight failed (not retried).
        """
        service: WorkflowServiceResource = getattr(context.resources, self.resource_key)
        try:
            mapping = column_mapping(rows, self.workflow, self.columns)
            checked = service.preflight(self.workflow) if preflight and self.preflight else {}
            options = service.engine_options()
        except TransientError as exc:
            # A 429 or 5xx on the free pre-flight call: worth the step's retry policy.
            raise dg.Failure(description=str(exc), allow_retries=True) from None
        except RunwfError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        options = dataclasses.replace(
            options,
            rate=options.rate if self.rate is None else self.rate,
            concurrency=options.concurrency if self.concurrency is None else self.concurrency,
            rate_limit_store=_rate_limit_store(context, service.rate_limit_store),
            progress_interval_s=self.progress_interval_s,
        )
        return StepSettings(dict(mapping), options, checked)

    def check_table(self, rows: pd.DataFrame) -> None:
        """Check that the results table can be built from ``rows`` (names, and columns
        Parquet can hold) — for steps that enrich only part of it.

        Raises:
            dagster.Failure: it cannot (not retried).
        """
        try:
            ResultsTableWriter(
                rows,
                keep_columns=self.keep_columns,
                prefix=self.prefix,
                output_columns=self.output_columns,
            )
        except RunwfError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def journal_location(self, context: StepContext) -> str:
        """Where this asset's (and partition's) journal lives."""
        partition = context.partition_key if context.has_partition_key else None
        base = self.journal_dir or os.path.join(
            context.instance.storage_directory(), "runwf_journal"
        )
        folders = [*self.asset_key.path] + ([identifier(partition)] if partition else [])
        return "/".join([base.rstrip("/"), *folders])

    def journal(self, context: StepContext, chunk: str | None = None) -> RowJournal:
        """This step's row journal (its job: asset, partition, root run id, chunk)."""
        partition = context.partition_key if context.has_partition_key else None
        run_group = context.run.root_run_id or context.run.run_id
        parts = [*self.asset_key.path, partition or "-", run_group]
        job_id = "/".join(parts + ([chunk] if chunk else []))
        location = self.journal_location(context)
        journal = RowJournal(
            location,
            job_id=job_id,
            incremental=self.incremental,
            max_age=self.max_age,
            version=self.journal_version,
            storage_options=self.journal_storage_options,
        )
        context.log.info(
            f"journal {location} (job {job_id}, {journal.finished_rows} rows already done"
            + (f", {journal.reusable_rows} reusable" if self.incremental else "")
            + ")"
        )
        return journal

    def enrich(
        self,
        context: StepContext,
        rows: pd.DataFrame,
        settings: StepSettings,
        journal: RowJournal,
        *,
        keep_columns: Sequence[str] | None,
        budget: Budget | None,
        first_row: int = 0,
    ) -> Enrichment:
        """Run the engine over ``rows`` with the journal.

        Raises:
            dagster.Failure: a fatal stop (not retried) or a journal failure (retried).
        """
        context.log.info(f"{len(rows)} rows through {self.workflow!r}")
        try:
            with journal:
                return asyncio.run(
                    enrich_async(
                        rows,
                        self.workflow,
                        settings.engine,
                        columns=settings.mapping,
                        keep_columns=keep_columns,
                        output_columns=self.output_columns,
                        prefix=self.prefix,
                        journal=journal,
                        budget=budget,
                        on_progress=_progress_logger(context),
                        first_row=first_row,
                    )
                )
        except FanOutStopped as exc:
            raise dg.Failure(
                description=str(exc),
                metadata=run_metadata(exc.stats) if exc.stats is not None else None,
                allow_retries=False,
            ) from None
        except JournalError as exc:
            raise dg.Failure(description=str(exc), allow_retries=True) from None
        except RunwfError as exc:
            # E.g. an input column Parquet cannot hold: no retry would fix it.
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def materialization(
        self,
        rows: pd.DataFrame,
        table: pa.Table,
        stats: RunStats,
        mapping: Mapping[str, str],
        extra: Mapping[str, Any],
    ) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        """The asset's value with its metadata (``extra`` added), then its check results.

        ``table`` is consumed: its Arrow memory is released column by column as it becomes
        the DataFrame, so the step never holds the results twice (it must not be used after).
        """
        kept = list(rows.columns) if self.keep_columns is None else list(self.keep_columns)
        result_names = [f.name for f in result_fields(self.prefix, self.output_columns)]
        lineage = column_lineage(self.source_key, kept, list(mapping.values()), result_names)
        metadata = table_metadata(table, lineage, {**run_metadata(stats), **extra})
        checks = [
            failure_rate_result(
                table, self.prefix, self.failure_rate_threshold, self.failure_rate_severity
            ),
            every_row_result(table, self.prefix, len(rows)),
        ]
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
        del table
        yield dg.Output(frame, metadata=metadata)
        yield from checks


def _rate_limit_store(context: StepContext, setting: str) -> str | None:
    """``"auto"``: shared by every process of the host when the instance is persistent
    (several runs and multiprocess steps may use the key at once), else this process only."""
    if setting != "auto":
        return setting
    if context.instance.is_ephemeral:
        return None
    return "sqlite://" + os.path.join(context.instance.storage_directory(), RATE_LIMIT_FILE)


def identifier(text: str) -> str:
    """``text`` as a name Dagster accepts (letters, digits, underscores)."""
    cleaned = "".join(c if c.isalnum() else "_" for c in text).strip("_")
    return cleaned or "workflow"


def _progress_logger(context: StepContext) -> Any:
    def log(progress: Progress) -> None:
        total = "?" if progress.total is None else str(progress.total)
        eta = "" if progress.eta_s is None else f", ETA {progress.eta_s:.0f} s"
        context.log.info(
            f"{progress.done}/{total} rows done ({progress.failed} failed), "
            f"{progress.in_flight} in flight, {progress.rows_per_s:.1f} rows/s{eta}"
        )

    return log
