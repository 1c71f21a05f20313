"""The journal's columns: its Parquet schema, and its rows to and from :class:`RowResult`.

A journal file starts with three bookkeeping columns: the input hash (the row's key), the
version and the job id. The result columns follow, declared in :mod:`..result_columns` and
encoded as there, outputs kept by id beside their labels so a row comes back whole. The
finish time ends the row: of two answers for one input, the later one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..result_columns import (
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
    OUTPUT_LABELS,
    OUTPUTS_BY_ID,
    RESULT,
    STATUS,
    result_from_row,
)
from ..results import RowResult

_KEY = INPUT_HASH.required()
_RESULT = (
    STATUS,
    RESULT,
    CITATIONS,
    OUTPUTS_BY_ID,
    OUTPUT_LABELS,
    METADATA,
    INSTANCE_ID,
    CREDITS,
    ERROR,
    ERROR_TYPE,
    ATTEMPTS,
    LATENCY_S,
)
_FINISHED = FINISHED_AT.required()

JOURNAL_SCHEMA = pa.schema(
    [
        _KEY.field(),
        pa.field("version", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        *(column.field() for column in _RESULT),
        _FINISHED.field(),
    ]
)
"""The columns of every journal file (one row per finished, paid row)."""

NAMES = tuple(JOURNAL_SCHEMA.names)
HASH_COLUMN = NAMES.index("input_hash")
FINISHED_COLUMN = NAMES.index("finished_at")

Micros = np.ndarray[Any, np.dtype[np.int64]]
"""Finish times as int64 microseconds since the epoch (UTC), one per row."""


def encode(results: Sequence[RowResult], job_id: str, version: str) -> pa.Table:
    """The journal rows of ``results`` (each with an input hash), recorded for a job."""
    count = len(results)
    arrays = [
        _KEY.array(results),
        pa.array([version] * count, pa.string()),
        pa.array([job_id] * count, pa.string()),
        *(column.array(results) for column in _RESULT),
        _FINISHED.array(results),
    ]
    return pa.Table.from_arrays(arrays, schema=JOURNAL_SCHEMA)


def decode(columns: Sequence[pa.Array], row: int) -> RowResult:
    """The result held by one row of a table's columns (:func:`column_arrays`)."""
    values = {name: column[row].as_py() for name, column in zip(NAMES, columns, strict=True)}
    return result_from_row(values, source="journal")


def conform(table: pa.Table) -> pa.Table:
    """The journal's columns, in order and of its types (files of older versions too)."""
    return table.select(JOURNAL_SCHEMA.names).cast(JOURNAL_SCHEMA)


def column_arrays(table: pa.Table) -> list[pa.Array]:
    """One Arrow array per column, in schema order."""
    return [column.chunk(0) for column in table.combine_chunks().columns]


def finished_micros(table: pa.Table) -> Micros:
    """The finish time of every row of a journal table."""
    finished: Micros = table.column("finished_at").cast(pa.int64()).to_numpy()
    return finished
