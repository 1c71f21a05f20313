"""What an enriched asset does in a step, whether the table is enriched in one step or chunk
by chunk: resolve the settings against the resource (with the pre-flight), open the row
journal, run the engine, and turn the results into the materialization's value, metadata and
check results. What the asset is (fixed when it is defined) is :class:`~.spec.EnrichmentSpec`.

Job identity (see ``docs/journal.md``): a journal job is what the step computes — the asset
key, the partition and the version of its answers (:attr:`EnrichmentSpec.answers_version`:
the workflow, the column mapping, ``journal_version``), plus the chunk when chunked; never a
run id — and it resumes until its results land: any later run of the same asset, partition and
configuration (a step retry, a re-execution, a fresh materialization, a backfill's
re-launch, a run after ``kill -9``) pays only for unfinished rows. Once the materialization
is stored, the job's generation is marked landed, and the next run starts a new one, which
with ``incremental=True`` still reuses every unchanged row's answer. A step whose run's
process died stops paying (:mod:`.run_process`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..engine.answer_quality import succeeded, unsent_columns
from ..engine.budget import Budget
from ..engine.enrich import Enrichment, column_mapping, enrich_async
from ..engine.flow_records import check_schema, read_instances, record_table_instances
from ..engine.journal import RowJournal, mark_landed
from ..engine.journal.earlier import earlier_answers
from ..engine.options import EngineOptions
from ..engine.stats import Progress, RunStats
from ..engine.storage import Storage
from ..engine.table import ResultsTableWriter, result_fields, typed_fields
from ..errors import FanOutStopped, JournalError, RunwfError, TransientError
from ..services.base import Workflow
from ..services.runchat import RunchatWorkflow
from ..services.runchat_schema import output_types
from ..wording import spelled
from .answer_checks import AnswerFacts, answer_check_results
from .checks import PENDING, complete_result, every_row_result, failure_rate_result
from .frames import FrameKind, as_pandas, in_kind
from .metadata import column_lineage, cost_metadata, run_metadata, table_metadata
from .resources import Preflight, WorkflowServiceResource
from .results_schema import lifted_types_metadata
from .run_process import RunProcessGone, unless_orphaned
from .spec import EnrichmentSpec, identifier

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext

RATE_LIMIT_FILE = "runwf_rate_limits.sqlite"
"""The shared rate-limit store's file in a persistent Dagster instance's storage folder."""


@dataclass(frozen=True)
class StepSettings:
    """What a step resolved before its first paid request."""

    mapping: dict[str, str]
    engine: EngineOptions
    checked: dict[str, Any] = field(default_factory=dict)
    workflow: Workflow | None = None
    """The workflow as the step runs it (tied to a Runchat flow's schema and to
    ``continue_by``'s records); ``None``: the spec's, as defined."""
    output_types: dict[str, pa.DataType] = field(default_factory=dict)
    """Lifted output column -> its type, from the service (a Runchat flow's schema, read
    with the pre-flight); a column not named is text."""


class EnrichmentStep:
    """One step's work for an enriched asset: the whole table's, or one chunk's.

    Args:
        spec: the asset (or op), as defined.
        context: the step's context (its resources, run, partition and log).
        journal_key: what names the step's journal location and job (with the partition and
            the answers' version); default: the asset key's path.
    """

    def __init__(
        self,
        spec: EnrichmentSpec,
        context: StepContext,
        *,
        journal_key: Sequence[str] | None = None,
    ) -> None:
        self.spec = spec
        self.context = context
        self.journal_key = list(spec.asset_key.path if journal_key is None else journal_key)
        # With land_partial, the stop that ended enrich(): raised once the partial table
        # is stored (raise_if_stopped).
        self.stopped: dg.Failure | None = None

    def rows(
        self, value: object, what: str = "the source asset's value"
    ) -> tuple[pd.DataFrame, FrameKind]:
        """The step's input as the pandas DataFrame the engine reads, and the kind it came
        as (pandas, polars or pyarrow), for :meth:`materialization` to give back.

        Raises:
            dagster.Failure: the input is no table (not retried).
        """
        try:
            return as_pandas(value, what)
        except RunwfError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def resolve(
        self, rows: pd.DataFrame, *, preflight: bool = True, record: bool = True
    ) -> StepSettings:
        """Check the mapping and, with ``preflight``, the key; the engine's settings (which
        hold the key: never pass them between steps). ``record=False`` (a plan) leaves the
        journal's records of a Runchat flow as they are.

        Raises:
            dagster.Failure: a setting is wrong or the pre-flight failed (not retried), with
                the run's counts (all 0: no row was sent) as metadata.
        """
        context, spec, declared = self.context, self.spec, self.spec.settings
        service: WorkflowServiceResource = getattr(context.resources, spec.resource_key)
        try:
            with spelled(spec.spelling):
                mapping = column_mapping(rows, spec.workflow, declared.columns)
                wanted = preflight and declared.preflight
                found = (
                    service.preflight_workflow(spec.workflow)
                    if wanted
                    else Preflight(spec.workflow, {})
                )
                options = service.engine_options()
                workflow = self._tied_to_records(found, record) if preflight else found.workflow
        except TransientError as exc:
            # A 429 or 5xx on the free pre-flight call: worth the step's retry policy.
            raise _before_any_row(exc, rows, allow_retries=True) from None
        except RunwfError as exc:
            raise _before_any_row(exc, rows, allow_retries=False) from None
        options = dataclasses.replace(
            options,
            rate=options.rate if declared.rate is None else declared.rate,
            concurrency=options.concurrency
            if declared.concurrency is None
            else declared.concurrency,
            rate_limit_store=_rate_limit_store(context, service.rate_limit_store),
            progress_interval_s=declared.progress_interval_s,
        )
        # Lifted outputs are typed as the flow's schema (read by the pre-flight) types them.
        types = (
            output_types(found.schema, declared.output_columns)
            if found.schema is not None and declared.output_columns
            else {}
        )
        return StepSettings(dict(mapping), options, found.checked, workflow, types)

    def records(self) -> Storage:
        """Where the journal remembers a Runchat flow between runs (its schema, and
        ``continue_by``'s instances): the asset's journal folder, shared by its partitions
        (see :mod:`~dagster_runwf.engine.flow_records`)."""
        location = "/".join([self._journal_base(), *self.journal_key])
        return Storage(location, self.spec.settings.journal_storage_options)

    def _journal_base(self) -> str:
        """The folder holding the journals: ``journal_dir``, or the instance's storage."""
        base = self.spec.settings.journal_dir or os.path.join(
            self.context.instance.storage_directory(), "runwf_journal"
        )
        return base.rstrip("/")

    def _tied_to_records(self, found: Preflight, record: bool) -> Workflow:
        """The workflow after the pre-flight: a changed flow schema warned about (the log,
        and ``runwf/flow_schema_change`` in ``found.checked``), and ``continue_by``'s
        records read."""
        workflow = found.workflow
        if not isinstance(workflow, RunchatWorkflow):
            return workflow
        records = self.records()
        if found.schema is not None:
            change = check_schema(records, workflow.workflow_id, found.schema, record=record)
            if change.changed:
                message = change.warning(workflow.info.describe(workflow.workflow_id))
                self.context.log.warning(message)
                found.checked["runwf/flow_schema_change"] = change.changes or "changed"
                found.checked["runwf/flow_schema_before"] = change.previous
        elif workflow.schema_fingerprint is None:
            self.context.log.info(
                "pre-flight off: the flow's schema was not read, so answers are not tied to "
                "it (an edit of the flow on the service would not be noticed)"
            )
        if workflow.continue_by is None:
            return workflow
        instances = read_instances(records, workflow.workflow_id, workflow.continue_by)
        self.context.log.info(
            f"continue_by={workflow.continue_by!r}: {len(instances)} keys continue their "
            "recorded instance"
        )
        return workflow.continuing(instances)

    def record_instances(
        self,
        rows: pd.DataFrame,
        table: pa.Table,
        workflow: Workflow | None,
        records: str | None = None,
    ) -> None:
        """Record the instance of each ``continue_by`` key's answer in ``table`` (the
        results of ``rows``), for the next runs to continue; in ``records`` (a location
        from :meth:`records`), by default this step's."""
        if not isinstance(workflow, RunchatWorkflow) or workflow.continue_by is None:
            return
        storage = (
            self.records()
            if records is None
            else Storage(records, self.spec.settings.journal_storage_options)
        )
        recorded = record_table_instances(
            storage,
            workflow.workflow_id,
            workflow.continue_by,
            rows[workflow.continue_by],
            table,
            self.spec.settings.prefix,
        )
        self.context.log.info(f"recorded the instances of {recorded} continue_by keys")

    def check_table(self, rows: pd.DataFrame) -> None:
        """Check that the results table can be built from ``rows`` (names, and columns
        Parquet can hold) — for steps that enrich only part of it.

        Raises:
            dagster.Failure: it cannot (not retried).
        """
        declared = self.spec.settings
        try:
            ResultsTableWriter(
                rows,
                keep_columns=declared.keep_columns,
                prefix=declared.prefix,
                output_columns=declared.output_columns,
                output_schema=self.spec.workflow.output_schema,
            )
        except RunwfError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def journal_location(self) -> str:
        """Where this asset's (and partition's) journal lives."""
        context = self.context
        partition = context.partition_key if context.has_partition_key else None
        folders = [*self.journal_key] + ([identifier(partition)] if partition else [])
        return "/".join([self._journal_base(), *folders])

    def job(self, chunk: str | None = None) -> str:
        """This step's journal job: the asset, partition and answers' version (and chunk).

        Not a run id: every run computing the same thing resumes the job until its results
        land (see :meth:`RowJournal.open_job`)."""
        context = self.context
        partition = context.partition_key if context.has_partition_key else None
        parts = [*self.journal_key, partition or "-", self.spec.answers_version]
        return "/".join(parts + ([chunk] if chunk else []))

    def journal(self, chunk: str | None = None) -> RowJournal:
        """This step's row journal: the open generation of its :meth:`job`."""
        context, declared = self.context, self.spec.settings
        location = self.journal_location()
        journal = RowJournal.open_job(
            location,
            job=self.job(chunk),
            incremental=declared.incremental,
            max_age=declared.max_age,
            version=declared.journal_version,
            storage_options=declared.journal_storage_options,
            retry_failed=declared.retry_failed,
        )
        context.log.info(
            f"journal {location} (job {journal.job_id}, {journal.finished_rows} rows already "
            "done" + (f", {journal.reusable_rows} reusable" if declared.incremental else "") + ")"
        )
        return journal

    def mark_landed(self, job: str, generation: int) -> None:
        """Record that ``job``'s ``generation`` landed (the materialization is stored), so
        the next run starts a new generation."""
        declared = self.spec.settings
        storage = Storage(self.journal_location(), declared.journal_storage_options)
        mark_landed(storage, job, generation)
        self.context.log.info(f"journal job {job} #{generation} landed")

    def enrich(
        self,
        rows: pd.DataFrame,
        settings: StepSettings,
        journal: RowJournal,
        *,
        keep_columns: Sequence[str] | None,
        budget: Budget | None,
        first_row: int = 0,
    ) -> Enrichment:
        """Run the engine over ``rows`` with the journal.

        With ``land_partial``, a fatal stop returns the partial table (finished rows, the
        others ``pending``) and is kept for :meth:`raise_if_stopped`.

        Raises:
            dagster.Failure: a fatal stop (without ``land_partial``) or the run's process
                gone (not retried), or a journal failure (retried).
        """
        context, spec, declared = self.context, self.spec, self.spec.settings
        workflow = settings.workflow or spec.workflow
        context.log.info(f"{len(rows)} rows through {workflow!r}")
        try:
            with journal, spelled(spec.spelling):
                # asyncio.run's tasks inherit the spelling in force.
                return asyncio.run(
                    unless_orphaned(
                        enrich_async(
                            rows,
                            workflow,
                            settings.engine,
                            columns=settings.mapping,
                            keep_columns=keep_columns,
                            output_columns=declared.output_columns,
                            output_types=settings.output_types,
                            prefix=declared.prefix,
                            journal=journal,
                            budget=budget,
                            on_progress=_progress_logger(context),
                            first_row=first_row,
                            land_partial=declared.land_partial,
                        )
                    )
                )
        except RunProcessGone as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        except FanOutStopped as exc:
            failure = dg.Failure(
                description=str(exc),
                metadata=run_metadata(exc.stats) if exc.stats is not None else None,
                allow_retries=False,
            )
            if exc.partial is None:
                raise failure from None
            self.stopped = failure
            context.log.warning(
                f"the run stopped; landing its table anyway (land_partial): {exc.finished} "
                f"rows finished, {exc.pending} pending. Stop: {exc}"
            )
            return exc.partial
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
        kind: FrameKind = FrameKind.PANDAS,
        journal_jobs: Sequence[str] = (),
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        """The asset's value, in the input's ``kind``, with its metadata (``extra`` added),
        then its check results. ``journal_jobs`` are the journal jobs (generation ids) that
        made the table: the ``changed_answers`` check compares with the others'.

        ``table`` is consumed: its Arrow memory is released column by column as it becomes
        a pandas DataFrame, so the step never holds the results twice (it must not be used
        after).
        """
        spec, declared = self.spec, self.spec.settings
        assert spec.source_key is not None, "an asset's step"
        kept = list(rows.columns) if declared.keep_columns is None else list(declared.keep_columns)
        fields = result_fields(
            declared.prefix, declared.output_columns, output_schema=spec.workflow.output_schema
        )
        result_names = [f.name for f in fields]
        lineage = column_lineage(spec.source_key, kept, list(mapping.values()), result_names)
        checks = [
            failure_rate_result(
                table,
                declared.prefix,
                declared.failure_rate_threshold,
                declared.failure_rate_severity,
            ),
            every_row_result(table, declared.prefix, len(rows)),
            *answer_check_results(
                table,
                declared.prefix,
                declared.answer_checks,
                spec.workflow,
                self._answer_facts(rows, table, mapping, extra, journal_jobs),
            ),
        ]
        if declared.land_partial:
            stopped = None if self.stopped is None else self.stopped.description
            checks.append(complete_result(table, declared.prefix, stopped))
        yield self.output(table, stats, extra, kind, lineage)
        yield from checks

    def _answer_facts(
        self,
        rows: pd.DataFrame,
        table: pa.Table,
        mapping: Mapping[str, str],
        extra: Mapping[str, Any],
        journal_jobs: Sequence[str],
    ) -> AnswerFacts:
        """What the answer checks need besides the table: the columns not sent, and the
        answers earlier journal jobs gave (read only if ``changed_answers`` runs)."""
        declared = self.spec.settings
        prefix = declared.prefix

        def earlier() -> Mapping[str, str | None]:
            done = table.filter(succeeded(table, prefix))
            hashes = [h for h in done.column(f"{prefix}input_hash").to_pylist() if h]
            try:
                return earlier_answers(
                    self.journal_location(),
                    input_hashes=hashes,
                    leave_out_jobs=journal_jobs,
                    version=declared.journal_version,
                    storage_options=declared.journal_storage_options,
                )
            except (OSError, RunwfError) as exc:
                # The rows are paid and the table built: a check must not lose them.
                self.context.log.warning(
                    f"changed_answers: the journal's earlier answers could not be read ({exc}); "
                    "no answer was compared"
                )
                return {}

        return AnswerFacts(
            unsent_columns=unsent_columns([str(c) for c in rows.columns], mapping, prefix),
            unmapped_inputs=list(extra.get("runwf/unmapped_inputs") or ()),
            earlier=earlier,
        )

    def raise_if_stopped(self) -> None:
        """Fail the step with the stop's message when the run stopped and its partial table
        was stored (``land_partial``); call it after the output, before marking the journal
        job landed (it stays open, so the next run pays only for the pending rows).

        Raises:
            dagster.Failure: the stop (not retried).
        """
        if self.stopped is not None:
            raise self.stopped

    def output(
        self,
        table: pa.Table,
        stats: RunStats,
        extra: Mapping[str, Any],
        kind: FrameKind = FrameKind.PANDAS,
        lineage: dg.TableColumnLineage | None = None,
    ) -> dg.Output[Any]:
        """The step's value, in the input's ``kind``, with its metadata: the run's counts,
        the table's row count and schema, ``lineage`` when given, and ``extra``.

        ``table`` is consumed as in :meth:`materialization`.
        """
        landed = {**run_metadata(stats), **extra}
        if self.spec.settings.land_partial:
            status = table.column(f"{self.spec.settings.prefix}status")
            landed["runwf/pending"] = int(pc.sum(pc.equal(status, PENDING)).as_py() or 0)
        cost = cost_metadata(stats, extra, self._balance_after(extra))
        # The lifted outputs' types as resolved at run time, for the IO manager to store.
        lifted = lifted_types_metadata(self.spec.settings, self.spec.workflow, table)
        metadata = table_metadata(table, lineage, {**landed, **cost, **lifted})
        declared = self.spec.settings.prefix, self.spec.workflow.output_schema
        value = in_kind(table, kind)
        del table
        if kind is FrameKind.PANDAS:
            value = _nullable_typed_columns(value, typed_fields(*declared))
        return dg.Output(value, metadata=metadata)

    def _balance_after(self, extra: Mapping[str, Any]) -> float | None:
        """The key's credits now, when the pre-flight read them before the run (AI Tutor's
        free ``GET /balance``); ``None`` otherwise, or when the call fails (logged: the
        results are not lost for a missing figure)."""
        if "runwf/credits_before" not in extra:
            return None
        service = getattr(self.context.resources, self.spec.resource_key)
        balance = getattr(service, "balance", None)
        if balance is None:
            return None
        try:
            after: float = balance()
        except RunwfError as exc:
            self.context.log.warning(f"the balance after the run could not be read: {exc}")
            return None
        return after


def _nullable_typed_columns(frame: pd.DataFrame, fields: Sequence[pa.Field]) -> pd.DataFrame:
    """``frame`` with its integer and boolean typed columns (an output schema's) in pandas'
    nullable dtypes (``Int64``, ``boolean``): as NumPy dtypes, a null would turn the integers
    into floats and the booleans into objects, so the stored type would depend on whether
    some answer did not fit (and partitions would disagree)."""
    for f in fields:
        if pa.types.is_integer(f.type):  # int8 -> Int8, uint16 -> UInt16...
            nullable = str(f.type).replace("uint", "UInt").replace("int", "Int")
            frame[f.name] = frame[f.name].astype(nullable)
        elif pa.types.is_boolean(f.type):
            frame[f.name] = frame[f.name].astype(pd.BooleanDtype())
    return frame


def _rate_limit_store(context: StepContext, setting: str) -> str | None:
    """``"auto"``: shared by every process of the host, in the instance's storage when it is
    persistent, else (``materialize()`` in a script) in the user's cache folder like the
    ``runwf`` command's, so that scripts and the command share the key's rate too."""
    if setting != "auto":
        return setting
    if context.instance.is_ephemeral:
        return "auto"
    return "sqlite://" + os.path.join(context.instance.storage_directory(), RATE_LIMIT_FILE)


def _progress_logger(context: StepContext) -> Callable[[Progress], None]:
    def log(progress: Progress) -> None:
        if progress.starting:
            # The plan: rows to pay for, the key's rate and, when it paces the run, how long.
            context.log.info(progress.plan())
            return
        total = "?" if progress.total is None else str(progress.total)
        eta = "" if progress.eta_s is None else f", ETA {progress.eta_s:.0f} s"
        paced = f", {progress.pace()}" if progress.rate_bound else ""
        context.log.info(
            f"{progress.done}/{total} rows done ({progress.failed} failed), "
            f"{progress.in_flight} in flight, {progress.rows_per_s:.1f} rows/s{paced}{eta}"
            + (f"; {progress.waiting}" if progress.waiting else "")
        )

    return log


def _before_any_row(exc: RunwfError, rows: pd.DataFrame, *, allow_retries: bool) -> dg.Failure:
    """The step's failure when it stopped before sending any row (a setting, the mapping or
    the pre-flight): it says so, and carries the run's counts, all 0, as metadata."""
    metadata = {
        **run_metadata(RunStats()),
        "runwf/input_rows": len(rows),
        "runwf/stopped_before": "the first row (nothing was sent or paid)",
    }
    return dg.Failure(
        description=f"{exc}\nStopped before the first row: nothing was sent or paid.",
        metadata=metadata,
        allow_retries=allow_retries,
    )
