"""The results table: the input rows, then one set of result columns per row.

Columns, with the default prefix ``wf_`` (see :data:`RESULT_FIELDS` for the types):

==================  ===================================================================
``wf_status``       ``"succeeded"`` or ``"failed"``; ``"pending"`` for a row a stopped run
                    did not finish, in a table landed with ``land_partial``
``wf_result``       the answer text (null when failed)
``wf_citations``    ``list<string>`` of cited URLs; an empty list, never null
``wf_outputs``      named outputs as a JSON object, by label (Runchat); null when none
``wf_error``        what went wrong (null when succeeded)
``wf_error_type``   the error's class, e.g. ``RunFailedError``
``wf_attempts``     requests sent for the row by the run that answered it
``wf_latency_s``    seconds from the first request to the answer
``wf_instance_id``  the service's id of the run, when it names one
``wf_metadata``     the service's run metadata as JSON
``wf_credits``      credits the run cost, when the service says
``wf_input_hash``   the key of the row in the journal (service, workflow, inputs)
``wf_finished_at``  when the answer arrived (UTC); for reused rows, the first time
``wf_reused``       true when the row was answered without a request of this run (the
                    journal, or an identical row of the table)
==================  ===================================================================

With an output schema (the workflow's ``output_schema``), the answer's JSON fields follow,
one typed column each (``wf_score``, ``wf_tags``...; null when the answer did not fit or the
row failed), then ``wf_parse_error``: why the answer did not fit the schema (null when it
did, and for failed rows). The row's ``wf_status`` stays ``succeeded`` (the run was paid)
and ``wf_result`` keeps the raw answer. See :func:`typed_fields`.

Chosen outputs can also be lifted into their own columns (``output_columns``): as text, or
typed when their types are given (``output_types``: a Runchat flow's schema).

The schema is explicit, so an all-empty column keeps its type from run to run, and the
table is built in input order from results that arrive in any order, one row group at a
time: with a destination, each row group goes to the Parquet file as soon as it is
complete, so a million rows never sit in memory twice. The file appears atomically when
the table is complete (see :mod:`.storage`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..services.typed_answer import OutputSchema, OutputSchemaLike
from ..wording import setting
from .result_columns import (
    ATTEMPTS,
    CITATIONS,
    CREDITS,
    ERROR,
    ERROR_TYPE,
    FINISHED_AT,
    INPUT_HASH,
    INSTANCE_ID,
    LATENCY_S,
    METADATA,
    OUTPUTS_BY_LABEL,
    PARSE_ERROR,
    RESULT,
    REUSED,
    STATUS,
    ResultColumn,
    lifted_output,
    typed_columns,
)
from .results import RowResult
from .storage import Storage

RESULTS_TABLE_COLUMNS: tuple[ResultColumn, ...] = (
    STATUS,
    RESULT,
    CITATIONS,
    OUTPUTS_BY_LABEL,
    ERROR,
    ERROR_TYPE,
    ATTEMPTS,
    LATENCY_S,
    INSTANCE_ID,
    METADATA,
    CREDITS,
    INPUT_HASH,
    FINISHED_AT,
    REUSED,
)
"""The result columns of the table, in order (declared in :mod:`.result_columns`)."""

RESULT_FIELDS: tuple[tuple[str, pa.DataType, bool], ...] = tuple(
    (column.name, column.type, column.nullable) for column in RESULTS_TABLE_COLUMNS
)
"""(name without prefix, Arrow type, nullable) of every result column, in order."""

DEFAULT_PREFIX = "wf_"
DEFAULT_ROW_GROUP_SIZE = 65_536
_CONVERT_ROWS = 4_096
"""Results converted to Arrow at a time (a row group is written once it is complete)."""


def result_fields(
    prefix: str = DEFAULT_PREFIX,
    output_columns: Mapping[str, str] | None = None,
    *,
    output_schema: OutputSchemaLike | None = None,
    output_types: Mapping[str, pa.DataType] | None = None,
) -> list[pa.Field]:
    """The declared Arrow fields of a results table's result columns: the fixed ones, the
    output schema's typed ones (:func:`typed_fields`), then lifted outputs (strings, or the
    type ``output_types`` gives a column): what every writer of results stores, whatever
    the rows hold.

    The one source of the result columns' types: :class:`ResultsTableWriter` (the engine,
    ``runwf enrich``) builds its schema from it, and the Parquet IO manager gives the
    ``wf_`` columns of an enriched asset's DataFrame these types (see
    :func:`with_result_types`) instead of what pandas' values suggest (``list<null>`` for
    citations that are all empty, ``null`` for a column that is all null).
    """
    fields = [column.field(prefix) for column in RESULTS_TABLE_COLUMNS]
    fields += typed_fields(prefix, output_schema)
    return fields + [column.field() for column in _lifted(output_columns or {}, output_types)]


def typed_fields(prefix: str, output_schema: OutputSchemaLike | None) -> list[pa.Field]:
    """The typed columns an output schema adds to the results table, prefixed: one per
    field, of its Arrow type (always nullable), then ``<prefix>parse_error`` (text); none
    without a schema.

    For a writer of the table that must declare its schema (an IO manager, a reader of
    several files) beside :func:`result_fields`' fixed columns. ``output_schema`` may be an
    :class:`OutputSchema` or anything :meth:`OutputSchema.of` reads, such as its
    :meth:`~OutputSchema.describe` (plain JSON, for definition metadata)."""
    if output_schema is None:
        return []
    return [column.field(prefix) for column in typed_columns(OutputSchema.of(output_schema))]


def _lifted(
    output_columns: Mapping[str, str], output_types: Mapping[str, pa.DataType] | None = None
) -> list[ResultColumn]:
    """The columns of ``output_columns`` (new column -> output label or id), each typed as
    ``output_types`` says, else text."""
    types = output_types or {}
    return [
        lifted_output(column, wanted, types.get(column, pa.string()))
        for column, wanted in output_columns.items()
    ]


def with_result_types(schema: pa.Schema, fields: Sequence[pa.Field]) -> pa.Schema:
    """``schema`` with each column named in ``fields`` given that field's type and
    nullability (columns it does not name, and its metadata, unchanged)."""
    declared = {field.name: field for field in fields}
    for i, field in enumerate(schema):
        wanted = declared.get(field.name)
        if wanted is not None and (field.type, field.nullable) != (wanted.type, wanted.nullable):
            schema = schema.set(i, wanted.with_metadata(field.metadata))
    return schema


class ResultsTableWriter:
    """Builds the results table in input order, streaming it to Parquet when given a path.

    Args:
        frame: the input table; row ``i`` of the output pairs with ``frame.iloc[i]``.
        keep_columns: input columns to carry into the output; ``None`` for all of them.
        prefix: prefix of the result columns.
        output_columns: new column -> output label (or id) to lift into its own column.
        output_schema: the fields of the answer's JSON to add as typed columns.
        output_types: lifted column -> its Arrow type (default: text).
        destination: a local path or fsspec URL for the Parquet file; ``None`` to build the
            table in memory (see :meth:`finish`).
        storage_options: fsspec options for a URL destination.
        row_group_size: rows per Parquet row group.

    Raises:
        ConfigError: a kept column is missing, names collide, or a name is not a string.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        keep_columns: Sequence[str] | None = None,
        prefix: str = DEFAULT_PREFIX,
        output_columns: Mapping[str, str] | None = None,
        output_schema: OutputSchema | None = None,
        output_types: Mapping[str, pa.DataType] | None = None,
        destination: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    ) -> None:
        check_column_names(frame)
        if not isinstance(prefix, str):
            raise ConfigError(f"the result column prefix must be a string, got {prefix!r}")
        if row_group_size < 1:
            raise ConfigError("row_group_size must be >= 1")
        kept = list(frame.columns) if keep_columns is None else list(keep_columns)
        missing = [c for c in kept if c not in frame.columns]
        if missing:
            raise ConfigError(
                f"keep_columns names {missing}, not in the table; its columns are "
                f"{list(frame.columns)}"
            )
        self._outputs = dict(output_columns or {})
        typed = [] if output_schema is None else typed_columns(output_schema)
        # The result columns, the typed fields, then the lifted outputs: how results become
        # Arrow.
        self._columns = [
            *RESULTS_TABLE_COLUMNS,
            *typed,
            *_lifted(self._outputs, output_types),
        ]
        fields = result_fields(
            prefix, self._outputs, output_schema=output_schema, output_types=output_types
        )
        _check_typed_names(prefix, output_schema)
        clash = sorted({f.name for f in fields} & {str(c) for c in kept})
        if clash:
            raise ConfigError(
                f"result column(s) {clash} would overwrite input columns of the same name; "
                "choose another prefix (e.g. prefix='enriched_') or drop them with keep_columns"
            )
        if len({f.name for f in fields}) != len(fields):
            raise ConfigError(f"output_columns repeat a result column name: {self._outputs}")
        self._frame = frame[kept] if keep_columns is not None else frame
        self._input_schema = _input_schema(self._frame)
        # A non-default index is stored as columns too: its names must not collide either.
        index_clash = sorted({f.name for f in fields} & set(self._input_schema.names))
        if index_clash:
            raise ConfigError(
                f"the table's index {index_clash} would collide with the result column(s) of the "
                "same name; rename the index (frame.rename_axis(...)), reset it "
                "(frame.reset_index(drop=True)) or choose another prefix"
            )
        _check_convertible(self._frame, self._input_schema, row_group_size)
        self.schema = pa.schema(
            list(self._input_schema) + fields, metadata=self._input_schema.metadata
        )
        self._row_group_size = row_group_size
        self._rows = len(frame)
        self._pending: dict[int, RowResult] = {}
        self._ready: list[RowResult] = []
        self._next = 0
        # Ready results already converted to Arrow, not yet a whole row group.
        self._converted: list[pa.Table] = []
        self._converted_rows = 0
        self._batches: list[pa.Table] = []
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None
        self.path: str | None = None
        if destination is not None:
            storage = Storage(destination, storage_options)
            self.path = storage.url
            handle = self._stack.enter_context(storage.open_for_write(storage.root))
            self._writer = pq.ParquetWriter(handle, self.schema, compression="zstd")

    def add(self, result: RowResult) -> None:
        """Take a row's result (any order); complete row groups are converted at once."""
        if not 0 <= result.index < self._rows or result.index in self._pending:
            raise ValueError(f"unexpected result for row {result.index}")
        self._pending[result.index] = result
        while self._next in self._pending:
            self._ready.append(self._pending.pop(self._next))
            self._next += 1
            if len(self._ready) >= min(_CONVERT_ROWS, self._row_group_size - self._converted_rows):
                self._convert()
                if self._converted_rows >= self._row_group_size:
                    self._flush()

    @property
    def missing_rows(self) -> int:
        """Rows without a result yet."""
        return self._rows - self._next

    def fill_pending(self) -> int:
        """Give every row without a result the status ``pending`` (a stopped run's table,
        landed anyway); the number of such rows."""
        missing = [i for i in range(self._next, self._rows) if i not in self._pending]
        for index in missing:
            self.add(RowResult.pending(index))
        return len(missing)

    def finish(self) -> pa.Table | None:
        """Write the last row group and publish the file; the table if built in memory."""
        if self.missing_rows:
            raise ValueError(f"{self.missing_rows} rows have no result yet")
        self._flush()
        if self._writer is None:
            if not self._batches:
                return self.schema.empty_table()
            return pa.concat_tables(self._batches)
        if self._rows == 0:  # a file with the schema and no rows
            self._writer.write_table(self.schema.empty_table())
        self._writer.close()
        self._stack.close()
        return None

    def abort(self) -> None:
        """Give up: no file appears (a partial upload or temporary file is removed)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(_Aborted):
            self._stack.__exit__(_Aborted, _Aborted(), None)

    def input_arrays(self, start: int, stop: int) -> list[pa.ChunkedArray]:
        """The kept input columns (and any stored index) of rows ``start:stop``."""
        inputs = pa.Table.from_pandas(
            self._frame.iloc[start:stop], schema=self._input_schema, preserve_index=None
        )
        return list(inputs.columns)

    def _convert(self) -> None:
        """Turn the ready results into Arrow, a few thousand at a time: Arrow holds a row in
        a fraction of the memory of its Python objects, so a row group's worth of results is
        never held as objects."""
        if not self._ready:
            return
        start = self._ready[0].index
        stop = start + len(self._ready)
        results = [column.array(self._ready) for column in self._columns]
        arrays = self.input_arrays(start, stop) + results
        self._converted.append(pa.Table.from_arrays(arrays, schema=self.schema))
        self._converted_rows += len(self._ready)
        self._ready = []

    def _flush(self) -> None:
        self._convert()
        if not self._converted:
            return
        table = pa.concat_tables(self._converted)
        self._converted, self._converted_rows = [], 0
        if self._writer is not None:
            self._writer.write_table(table, row_group_size=self._row_group_size)
        else:
            self._batches.append(table)


def join_results(
    frame: pd.DataFrame,
    result_columns: pa.Table,
    *,
    keep_columns: Sequence[str] | None = None,
    prefix: str = DEFAULT_PREFIX,
    output_columns: Mapping[str, str] | None = None,
    output_schema: OutputSchema | None = None,
    output_types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """The results table of ``frame`` from result columns computed elsewhere (e.g. chunk by
    chunk, in input order): the same schema and rows as :class:`ResultsTableWriter` builds.

    Raises:
        ValueError: ``result_columns`` does not have one row per row of ``frame``.
    """
    writer = ResultsTableWriter(
        frame,
        keep_columns=keep_columns,
        prefix=prefix,
        output_columns=output_columns,
        output_schema=output_schema,
        output_types=output_types,
    )
    if result_columns.num_rows != len(frame):
        raise ValueError(f"{result_columns.num_rows} result rows for {len(frame)} input rows")
    fields = result_fields(
        prefix, output_columns, output_schema=output_schema, output_types=output_types
    )
    arrays = writer.input_arrays(0, len(frame)) + [
        result_columns.column(f.name).cast(f.type) for f in fields
    ]
    return pa.Table.from_arrays(arrays, schema=writer.schema)


def _check_typed_names(prefix: str, output_schema: OutputSchema | None) -> None:
    """A clear error for an output schema field named like a result column (``status``)."""
    if output_schema is None:
        return
    taken = {column.field(prefix).name for column in RESULTS_TABLE_COLUMNS}
    taken.add(prefix + PARSE_ERROR)
    clash = sorted(prefix + f.name for f in output_schema.fields if prefix + f.name in taken)
    if clash:
        raise ConfigError(
            f"{setting('output_schema')} names field(s) whose column(s) {clash} are already "
            "result columns; rename the field(s) or choose another prefix"
        )


class _Aborted(Exception):
    """Raised into the output's context so it discards what was written."""


def check_column_names(frame: pd.DataFrame) -> None:
    """A clear error for column names Parquet cannot hold (duplicates, non-strings)."""
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    names = list(frame.columns)
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"the table has duplicate column names {repeated}; rename them first")
    odd = [n for n in names if not isinstance(n, str)]
    if odd:
        raise ConfigError(
            f"column names must be strings, got {odd[:5]}; rename them (e.g. "
            "frame.columns = frame.columns.map(str))"
        )


_ARROW_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError, KeyError)
"""What pyarrow raises for pandas data it cannot convert (its own errors, but also a
UnicodeEncodeError for a lone surrogate, an OverflowError for a huge int, a KeyError or
ValueError for index names it cannot place)."""


def _input_schema(frame: pd.DataFrame) -> pa.Schema:
    """The kept input columns' schema, from the whole table so every batch agrees."""
    try:
        schema = pa.Schema.from_pandas(frame, preserve_index=None)
    except _ARROW_ERRORS as exc:
        raise _unstorable(frame, exc) from None
    # A column of only nulls would be typed `null`; store it as text (typed as this pandas
    # version types text) so its type does not change on the night it gets a value.
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(_text_type()))
    return schema


def _check_convertible(frame: pd.DataFrame, schema: pa.Schema, batch_rows: int) -> None:
    """Convert the input columns batch by batch, keeping nothing, so a table Parquet cannot
    hold fails here, before the first paid request, and not when a row group is written."""
    for start in range(0, max(len(frame), 1), batch_rows):
        try:
            pa.Table.from_pandas(
                frame.iloc[start : start + batch_rows], schema=schema, preserve_index=None
            )
        except _ARROW_ERRORS as exc:
            raise _unstorable(frame, exc) from None


def _unstorable(frame: pd.DataFrame, error: BaseException) -> ConfigError:
    """A :class:`ConfigError` naming the column (or the index) Parquet cannot hold."""
    for name in frame.columns:
        try:
            pa.Schema.from_pandas(frame[[name]], preserve_index=False)
        except _ARROW_ERRORS as exc:
            column = frame[name]
            kinds = ""
            if column.dtype == object:
                found = sorted({type(v).__name__ for v in column if v is not None})
                kinds = f"; it holds values of type {', '.join(found)}" if found else ""
            return ConfigError(
                f"input column {name!r} cannot be stored in the results table (Parquet): "
                f"{type(exc).__name__}: {exc}{kinds}. Convert it first (e.g. "
                f"frame[{name!r}] = frame[{name!r}].astype(str)) or leave it out with "
                f"{setting('keep_columns')}"
            )
    reserved = [n for n in frame.columns if str(n).startswith("__index_level_")]
    hint = f"rename the column(s) {reserved}, " if reserved else ""
    return ConfigError(
        f"the table's index cannot be stored with its columns in the results table "
        f"(Parquet): {type(error).__name__}: {error}. Fix: {hint}reset the index "
        "(frame.reset_index(drop=True)) or give its levels distinct names"
    )


@functools.cache
def _text_type() -> pa.DataType:
    return pa.Schema.from_pandas(pd.DataFrame({"text": ["a"]})).field("text").type
