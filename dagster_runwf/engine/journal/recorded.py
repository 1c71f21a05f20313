"""The rows one writer recorded, kept in memory compressed.

A lookup of a recorded row is rare (an identical row further apart than the engine's dedup
cache), so the rows are kept as the Parquet bytes of a few thousand rows at a time, about a
tenth of their Arrow size, and decoded one row group at a time when a lookup needs one.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right

import pyarrow as pa
import pyarrow.parquet as pq

from .files import parquet_bytes
from .schema import JOURNAL_SCHEMA, column_arrays

SEGMENT_ROWS = 4096
"""Rows kept decoded until there are this many, then compressed into one segment."""


class RecordedRows:
    """The rows one writer recorded, numbered in recording order: the latest few thousand
    as Arrow arrays, the rest as compressed Parquet segments.

    Not thread-safe: the row store calls it under its lock.
    """

    def __init__(self) -> None:
        # Per segment: its Parquet bytes and the offset of each of its row groups.
        self._segments: list[tuple[bytes, list[int]]] = []
        self._segment_starts: list[int] = []
        self._tail: list[list[pa.Array]] = []
        self._tail_starts: list[int] = []
        self._rows = 0
        # The row group decoded last: (segment, row group, its columns).
        self._decoded: tuple[int, int, list[pa.Array]] | None = None

    def add(self, table: pa.Table) -> int:
        """Keep a journal table's rows; the number of its first row."""
        start = self._rows
        self._tail.append(column_arrays(table))
        self._tail_starts.append(start)
        self._rows += table.num_rows
        if self._rows - self._tail_starts[0] >= SEGMENT_ROWS:
            self._seal_tail()
        return start

    def row(self, number: int) -> tuple[list[pa.Array], int]:
        """The columns holding row ``number``, and its position in them."""
        if self._tail_starts and number >= self._tail_starts[0]:
            at = bisect_right(self._tail_starts, number) - 1
            return self._tail[at], number - self._tail_starts[at]
        segment = bisect_right(self._segment_starts, number) - 1
        data, group_starts = self._segments[segment]
        offset = number - self._segment_starts[segment]
        group = bisect_right(group_starts, offset) - 1
        if self._decoded is None or self._decoded[:2] != (segment, group):
            table = pq.ParquetFile(pa.BufferReader(data)).read_row_group(group, use_threads=False)
            self._decoded = (segment, group, column_arrays(table))
        return self._decoded[2], offset - group_starts[group]

    def _seal_tail(self) -> None:
        """Compress the decoded rows into one segment."""
        tail = pa.Table.from_arrays(
            [pa.chunked_array(c) for c in zip(*self._tail, strict=True)], schema=JOURNAL_SCHEMA
        )
        data = parquet_bytes(tail)
        metadata = pq.read_metadata(pa.BufferReader(data))
        groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self._segments.append((data, list(itertools.accumulate(groups, initial=0))))
        self._segment_starts.append(self._tail_starts[0])
        self._tail, self._tail_starts = [], []
