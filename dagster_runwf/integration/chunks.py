"""A table enriched chunk by chunk: a split step, one enrich step per chunk (mapped over a
``DynamicOut``) and a collect step that builds the same table and metadata as one step — the
steps of a chunked enriched asset (which adds its checks and column lineage) and of an
enriched graph (:func:`~dagster_runwf.enriched_graph`, for op-based jobs).

Chunk steps run in parallel under the multiprocess executor (or on other hosts with other
executors), each retried on its own by the ``RetryPolicy`` and capped by the ``pool``. They
share the key's rate through the resource's ``rate_limit_store`` (``"auto"``: a SQLite file
in the instance's storage), and each chunk is its own journal job, so any later run of the
asset or job (a retry or re-execution of a chunk, a fresh run) pays only for its unfinished
rows. The collect step marks every chunk's job landed once its output (the asset's value) is
stored, so the next run starts afresh. Only rows and results pass between steps, never the
key.
"""

# No `from __future__ import annotations`: Dagster reads the op functions' annotations.

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from ..engine.budget import Budget
from ..engine.journal import generation_job_id
from ..engine.stats import RunStats
from ..engine.table import join_results, result_fields
from ..services.base import Workflow
from .metadata import run_metadata
from .results_schema import results_metadata
from .spec import EnrichmentSpec
from .step import EnrichmentStep, StepContext

LEVEL_EXECUTORS = frozenset({"dask"})
"""Executors that plan every step of a run before any runs (dagster-dask submits the
steps level by level up front): the steps mapped over a ``DynamicOut`` never run there,
and the run would succeed with no chunk enriched and nothing materialized."""

JournalKey = Callable[[StepContext], Sequence[str]]
"""What names a chunk step's journal location and jobs, from its context (see
:class:`~.step.EnrichmentStep`); for an asset, its key's path (the default)."""


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:start + len(rows)`` of a table of ``table_rows`` rows."""

    number: int
    start: int
    table_rows: int
    rows: pd.DataFrame
    workflow: Workflow | None = None
    """The workflow as the split step's pre-flight tied it (a Runchat flow's schema,
    ``continue_by``'s records); ``None``: the spec's."""
    output_types: dict[str, pa.DataType] | None = None
    """The lifted outputs' types the split step's pre-flight read (chunks have none)."""


@dataclass(frozen=True)
class ChunkResult:
    """A chunk's result columns (no input columns), in its rows' order."""

    number: int
    results: pa.Table
    stats: RunStats
    started_at: float
    finished_at: float
    job: str
    generation: int
    stopped: str | None = None
    """With ``land_partial``: why the chunk's run stopped (its unfinished rows pending)."""


@dataclass(frozen=True)
class SplitSummary:
    """What the split step learnt that the collect step reports (no secrets)."""

    mapping: dict[str, str]
    checked: dict[str, Any]
    journal: str
    workflow: Workflow | None = None
    records: str | None = None
    """Where the split step read the flow's records (``continue_by``'s instances)."""
    output_types: dict[str, pa.DataType] | None = None


def chunk_journal_name(number: int) -> str:
    """The part a chunk adds to its asset's journal job (each chunk resumes its own job)."""
    return f"chunk-{number:05d}"


def chunk_budget(budget: Budget | None, rows: int, table_rows: int) -> Budget | None:
    """A chunk's share of ``budget``, in proportion to its rows, rounded down so the
    chunks' shares never add up to more than the whole."""
    if budget is None or table_rows == 0:
        return budget
    share = rows / table_rows
    return Budget(
        max_runs=None if budget.max_runs is None else math.floor(budget.max_runs * share),
        max_credits=None if budget.max_credits is None else budget.max_credits * share,
    )


def refuse_level_executor(context: dg.OpExecutionContext, name: str) -> None:
    """Fail the split step, before any paid run, on an executor that would never run the
    chunk steps (see :data:`LEVEL_EXECUTORS`)."""
    executor = context.job_def.executor_def.name
    if executor in LEVEL_EXECUTORS:
        raise dg.Failure(
            description=f"{name!r} is enriched in chunk steps (chunk_size), which Dagster's "
            f"{executor} executor never runs: it plans every step before the chunks are known "
            "(steps mapped over a DynamicOut). Run this job on the multiprocess, celery or "
            "k8s executor, or enrich the rows in one step (no chunk_size) or in fixed parts "
            "(see the distributed how-to in the docs).",
            allow_retries=False,
        )


def chunk_steps(
    spec: EnrichmentSpec,
    *,
    name: str,
    chunk_size: int,
    retry_policy: dg.RetryPolicy | None,
    pool: str | None,
    io_manager_key: str | None,
    as_asset: bool,
    journal_key: JournalKey | None = None,
    tags: dict[str, str] | None = None,
    what: str = "the source asset's value",
) -> Callable[[Any], Any]:
    """The chunk steps' ops, composed: a function from the node output of the rows to the
    collect step's outputs, for ``dagster.graph_asset`` or ``dagster.graph``.

    The ops are named ``<name>__split``, ``<name>__enrich_chunk`` and ``<name>__collect``
    (unique in a job) and invoked as ``split``, ``enrich_chunk[chunk_00000]`` and
    ``collect``, so a step key reads ``<graph>.enrich_chunk[chunk_00000]``.

    Args:
        spec: the asset or graph, as defined.
        name: what names the ops.
        chunk_size: rows per chunk.
        retry_policy: each chunk step's.
        pool: each chunk step's.
        io_manager_key: the collect step's output ``result``.
        as_asset: the collect step yields an asset's materialization (the results with
            column lineage, then its checks' results, as outputs named by the checks);
            else only the results, as the output ``result``.
        journal_key: from a step's context, what names the journal location and jobs;
            default: the asset key's path.
        tags: every op's.
        what: the rows' value, in messages (``"the input 'rows' of graph 'x'"``).

    With ``land_partial``, a chunk step whose run stopped returns its partial columns (the
    unfinished rows ``pending``) and succeeds; the collect step stores the whole table,
    then fails with the chunks' stops, and no chunk's job is marked landed (so the next run
    answers the finished chunks from the journal and pays only for the pending rows).
    """
    settings = spec.settings
    check_names = [check.name for check in spec.check_specs()] if as_asset else []
    resources = {spec.resource_key}
    common: dict[str, Any] = {"tags": dict(tags or {}), "code_version": spec.code_version}

    def step_of(context: dg.OpExecutionContext) -> EnrichmentStep:
        key = None if journal_key is None else journal_key(context)
        return EnrichmentStep(spec, context, journal_key=key)

    @dg.op(
        name=f"{name}__split",
        required_resource_keys=resources,
        out={"chunks": dg.DynamicOut(), "summary": dg.Out()},
        **common,
    )
    def split(context: dg.OpExecutionContext, rows: Any) -> Iterator[Any]:
        refuse_level_executor(context, name)
        # Before any paid run: the mapping, the table's columns, and the pre-flight (once).
        step = step_of(context)
        rows, _ = step.rows(rows, what)
        step.check_table(rows)
        resolved = step.resolve(rows)
        location = step.journal_location()
        types = resolved.output_types
        summary = SplitSummary(
            resolved.mapping,
            resolved.checked,
            location,
            resolved.workflow,
            step.records().url,
            types,
        )
        yield dg.Output(summary, "summary")
        starts = range(0, len(rows), chunk_size) if len(rows) else range(1)
        context.log.info(f"{len(rows)} rows in {len(starts)} chunks of up to {chunk_size}")
        for number, start in enumerate(starts):
            part = rows.iloc[start : start + chunk_size]
            chunk = Chunk(number, start, len(rows), part, resolved.workflow, types)
            yield dg.DynamicOutput(chunk, mapping_key=f"chunk_{number:05d}", output_name="chunks")

    @dg.op(
        name=f"{name}__enrich_chunk",
        required_resource_keys=resources,
        retry_policy=retry_policy,
        pool=pool,
        **common,
    )
    def enrich_chunk(context: dg.OpExecutionContext, chunk: Chunk) -> ChunkResult:
        started_at = time.time()
        # Row positions within the chunk; the collect step puts the inputs back.
        rows = chunk.rows.reset_index(drop=True)
        step = step_of(context)
        resolved = dataclasses.replace(
            step.resolve(rows, preflight=False),
            workflow=chunk.workflow,
            output_types=dict(chunk.output_types or {}),
        )
        journal = step.journal(chunk=chunk_journal_name(chunk.number))
        done = step.enrich(
            rows,
            resolved,
            journal,
            keep_columns=[],
            budget=chunk_budget(settings.budget, len(rows), chunk.table_rows),
            first_row=chunk.start,
        )
        fields = result_fields(
            settings.prefix, settings.output_columns, output_schema=spec.workflow.output_schema
        )
        names = [f.name for f in fields]
        results = done.to_arrow().select(names).replace_schema_metadata(None)
        generation = journal.generation or 1
        stopped = None if step.stopped is None else step.stopped.description
        return ChunkResult(
            chunk.number,
            results,
            done.stats,
            started_at,
            time.time(),
            journal.job,
            generation,
            stopped,
        )

    @dg.op(
        name=f"{name}__collect",
        # The service's free balance call after the run (the credits spent).
        required_resource_keys=resources,
        out={
            "result": dg.Out(
                io_manager_key=io_manager_key or "io_manager",
                metadata=results_metadata(settings, spec.workflow),
            ),
            **{check: dg.Out(dagster_type=dg.Nothing, is_required=False) for check in check_names},
        },
        **common,
    )
    def collect(
        context: dg.OpExecutionContext,
        rows: Any,
        summary: SplitSummary,
        parts: list[ChunkResult],
    ) -> Iterator[Any]:
        step = step_of(context)
        rows, kind = step.rows(rows, what)
        ordered = sorted(parts, key=lambda part: part.number)
        table = join_results(
            rows,
            pa.concat_tables([part.results for part in ordered]),
            keep_columns=settings.keep_columns,
            prefix=settings.prefix,
            output_columns=settings.output_columns,
            output_schema=spec.workflow.output_schema,
            output_types=summary.output_types,
        )
        elapsed = max(p.finished_at for p in ordered) - min(p.started_at for p in ordered)
        stats = RunStats.combined((part.stats for part in ordered), elapsed_s=elapsed)
        step.record_instances(rows, table, summary.workflow, summary.records)
        extra = {**summary.checked, "runwf/journal": summary.journal, "runwf/chunks": len(parts)}
        step.stopped = stopped_chunks(ordered, stats)
        if as_asset:
            jobs = [generation_job_id(part.job, part.generation) for part in ordered]
            yield from step.materialization(
                rows, table, stats, summary.mapping, extra, kind, journal_jobs=jobs
            )
        else:
            yield step.output(table, stats, extra, kind)
        # land_partial: the partial table is stored; fail, and leave every chunk's job open.
        step.raise_if_stopped()
        # Dagster stores an output before resuming the step, so the results have landed.
        for part in ordered:
            step.mark_landed(part.job, part.generation)

    def chunked(rows: Any) -> Any:
        chunks, summary = split.alias("split")(rows)
        parts = chunks.map(enrich_chunk.alias("enrich_chunk")).collect()
        return collect.alias("collect")(rows, summary, parts)

    return chunked


def stopped_chunks(parts: Sequence[ChunkResult], stats: RunStats) -> dg.Failure | None:
    """The collect step's failure when chunks stopped (``land_partial``), naming them."""
    stops = [(part.number, part.stopped) for part in parts if part.stopped]
    if not stops:
        return None
    first = stops[0][1]
    numbers = ", ".join(str(number) for number, _ in stops)
    return dg.Failure(
        description=f"{len(stops)} of {len(parts)} chunks stopped (chunks {numbers}); their "
        f"finished rows are stored, the others pending. First stop: {first}",
        metadata=run_metadata(stats),
        allow_retries=False,
    )
