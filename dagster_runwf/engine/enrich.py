"""A whole table through a workflow: DataFrame in, results table (Parquet) out.

This is what the Dagster assets and the ``runwf enrich`` command run. It checks the column
mapping before the first paid request, streams the rows through the engine (with the journal
and budget given), and builds the results table in input order as results arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, FanOutStopped
from ..services.base import Workflow
from ..wording import setting
from .budget import Budget
from .fanout import WorkflowRun
from .options import EngineOptions
from .results import Journal
from .stats import Progress, RunStats
from .storage import Storage
from .table import DEFAULT_PREFIX, DEFAULT_ROW_GROUP_SIZE, ResultsTableWriter, check_column_names


@dataclass(frozen=True)
class Enrichment:
    """What :func:`enrich` produced.

    Attributes:
        stats: counts, latencies and credits of the run.
        path: where the Parquet file was written, when a destination was given.
        table: the results table, when built in memory (no destination).
        schema: the results table's Arrow schema.
        storage_options: the fsspec options used for ``path`` (to read it back).
    """

    stats: RunStats
    path: str | None
    table: pa.Table | None
    schema: pa.Schema
    storage_options: Mapping[str, Any] | None = None

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The results table, or its ``columns`` (read back from ``path`` when it was
        written there: only those columns)."""
        if self.table is not None:
            return self.table if columns is None else self.table.select(list(columns))
        assert self.path is not None
        storage = Storage(self.path, self.storage_options)
        with storage.fs.open(storage.root, "rb") as handle:
            return pq.read_table(handle, columns=None if columns is None else list(columns))

    def to_pandas(self) -> pd.DataFrame:
        """The results table as a DataFrame (the input index restored)."""
        frame: pd.DataFrame = self.to_arrow().to_pandas()
        return frame


def column_mapping(
    frame: pd.DataFrame, workflow: Workflow, columns: Mapping[str, str] | None
) -> dict[str, str]:
    """Check and complete the input -> column mapping (identity for unmapped inputs).

    Raises:
        ConfigError: a mapped input is not one of the workflow's, or a column is missing.
    """
    check_column_names(frame)
    mapping = dict(columns or {})
    kind = workflow.inputs_setting
    unknown = sorted(set(mapping) - set(workflow.input_names))
    if unknown:
        raise ConfigError(
            f"columns maps {unknown}, which are not {kind} of {workflow!r}; its {kind} are "
            f"{list(workflow.input_names)}"
        )
    for name in workflow.input_names:
        mapping.setdefault(name, name)
    for name, column in workflow.row_columns().values():
        if column not in frame.columns:
            raise ConfigError(
                f"{setting(name, column)}: the table has no column {column!r}; its columns "
                f"are {list(frame.columns)}"
            )
    missing = {name: col for name, col in mapping.items() if col not in frame.columns}
    if missing:
        detail = ", ".join(f"{name!r} -> column {col!r}" for name, col in missing.items())
        raise ConfigError(
            f"the table has no column for {detail}; its columns are {list(frame.columns)}. "
            f"Map each of the workflow's {kind} to a column with columns={{name: column}}"
        )
    return mapping


def row_fields(workflow: Workflow) -> dict[str, str]:
    """The fields each row carries besides its inputs (e.g. Runchat's ``continue_by``
    key), each with its column."""
    return {field: column for field, (_, column) in workflow.row_columns().items()}


def table_rows(frame: pd.DataFrame, mapping: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """``frame``'s rows as the engine takes them: each workflow input -> its cell."""
    names = list(mapping)
    selected = frame[[mapping[n] for n in names]]
    for values in selected.itertuples(index=False, name=None):
        yield dict(zip(names, values, strict=True))


class _SizedRows:
    """The rows, lazily, with a length (so progress can show an ETA)."""

    def __init__(self, frame: pd.DataFrame, mapping: Mapping[str, str]) -> None:
        self._frame = frame
        self._mapping = mapping

    def __len__(self) -> int:
        return len(self._frame)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return table_rows(self._frame, self._mapping)


async def enrich_async(
    frame: pd.DataFrame,
    workflow: Workflow,
    options: EngineOptions,
    *,
    columns: Mapping[str, str] | None = None,
    keep_columns: Sequence[str] | None = None,
    output_columns: Mapping[str, str] | None = None,
    output_types: Mapping[str, pa.DataType] | None = None,
    prefix: str = DEFAULT_PREFIX,
    destination: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    journal: Journal | None = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    budget: Budget | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    first_row: int = 0,
    land_partial: bool = False,
) -> Enrichment:
    """Run every row of ``frame`` through ``workflow``; see :func:`enrich`."""
    mapping = column_mapping(frame, workflow, columns)
    run = WorkflowRun(
        workflow,
        _SizedRows(frame, {**mapping, **row_fields(workflow)}),
        options,
        journal=journal,
        budget=budget,
        on_progress=on_progress,
        first_row=first_row,
    )
    writer = ResultsTableWriter(
        frame,
        keep_columns=keep_columns,
        prefix=prefix,
        output_columns=output_columns,
        output_schema=workflow.output_schema,
        output_types=output_types,
        destination=destination,
        storage_options=storage_options,
        row_group_size=row_group_size,
    )
    try:
        async with contextlib.aclosing(aiter(run)) as results:
            async for result in results:
                writer.add(result)
        table = writer.finish()
    except FanOutStopped as exc:
        exc.stats = run.stats
        if not land_partial:
            writer.abort()
            raise
        try:
            exc.pending = writer.fill_pending()
            partial = writer.finish()
        except BaseException:
            writer.abort()
            raise
        exc.partial = Enrichment(run.stats, writer.path, partial, writer.schema, storage_options)
        raise
    except BaseException:
        writer.abort()
        raise
    return Enrichment(run.stats, writer.path, table, writer.schema, storage_options)


def enrich(
    frame: pd.DataFrame,
    workflow: Workflow,
    options: EngineOptions,
    *,
    columns: Mapping[str, str] | None = None,
    keep_columns: Sequence[str] | None = None,
    output_columns: Mapping[str, str] | None = None,
    output_types: Mapping[str, pa.DataType] | None = None,
    prefix: str = DEFAULT_PREFIX,
    destination: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    journal: Journal | None = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    budget: Budget | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    first_row: int = 0,
    land_partial: bool = False,
) -> Enrichment:
    """Run every row of a DataFrame through a workflow and build the results table.

    The mapping is checked before the first paid request. Rows go through the engine
    (:class:`WorkflowRun`: rate limit, retries, fatal stop, dedup); with a ``journal`` every
    finished row is recorded before it counts, so a rerun with the same journal job sends
    only the rows not yet done.

    Args:
        frame: the input table (any index; row ``i`` of the result is ``frame.iloc[i]``).
        workflow: e.g. ``AITutorWorkflow("wf_abc123", ["company"])``.
        options: the key, the service and how hard to push it (:class:`EngineOptions`).
        columns: workflow input -> column name, for inputs named differently from their
            column (inputs not listed use the column of the same name).
        keep_columns: input columns to carry into the results; ``None`` for all.
        output_columns: new column -> output label (or id) to lift from ``wf_outputs``.
        output_types: lifted column -> its Arrow type (default text; e.g. from a Runchat
            flow's schema: :func:`~dagster_runwf.services.runchat_schema.output_types`).
        prefix: prefix of the result columns (default ``"wf_"``).
        destination: a local path or fsspec URL for the Parquet file, written atomically
            and streamed in row groups; ``None`` to keep the table in memory.
        storage_options: fsspec options for a URL destination.
        journal: a :class:`RowJournal` (or any :class:`Journal`).
        row_group_size: rows per Parquet row group.
        budget: a cap on paid runs / credits for the job (see :class:`WorkflowRun`).
        on_progress: called with a :class:`Progress` every ``options.progress_interval_s``
            and at the end.
        first_row: the position of ``frame``'s first row in the whole table, when it is a
            part of it (a chunk), so that messages name the table's row.
        land_partial: when a fatal error or the budget stops the run, land the table anyway
            (written to ``destination`` when given): the finished rows, and every other row
            with status ``pending``; it is then ``exc.partial`` of the
            :class:`FanOutStopped` still raised (``exc.pending`` counts the pending rows).

    Returns:
        an :class:`Enrichment` with the stats and the table (or its path).

    Raises:
        ConfigError: a setting or the column mapping is wrong (before any request).
        FanOutStopped: a fatal error or the budget stopped the run; finished rows are in
            the journal and no results file was written (unless ``land_partial``).
            ``exc.stats`` has the counts.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            enrich_async(
                frame,
                workflow,
                options,
                columns=columns,
                keep_columns=keep_columns,
                output_columns=output_columns,
                output_types=output_types,
                prefix=prefix,
                destination=destination,
                storage_options=storage_options,
                journal=journal,
                row_group_size=row_group_size,
                budget=budget,
                on_progress=on_progress,
                first_row=first_row,
                land_partial=land_partial,
            )
        )
    raise RuntimeError(
        "enrich() cannot run inside a running event loop (e.g. a notebook); "
        "use `await enrich_async(...)` there"
    )
