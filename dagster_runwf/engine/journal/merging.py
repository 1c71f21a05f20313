"""Merging a writer's files, so a long run (or one killed before it could close) leaves few.

A writer writes one file per :meth:`RowJournal.record` call. It merges them in tiers: every
:data:`MERGE_EVERY` small files into one, every :data:`MERGE_EVERY` merged files into a
larger one, and so on, so no row is rewritten more than once per tier; when the journal
closes, all of them into one. A merge copies one row group at a time, so it never holds the
job decoded, and writes the new file before deleting the old ones, so nothing is ever lost.
A file is checked against its digest before it is copied, so a damaged file is never merged
into a new file that looks whole: it is set aside (:mod:`.damage`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from .damage import set_aside
from .files import ROW_GROUP, DamagedFile, WriterFiles, verified_bytes
from .schema import JOURNAL_SCHEMA, conform

MERGE_EVERY = 64
"""Files of one tier a writer accumulates before merging them into one."""


class TieredMerges:
    """The files one writer wrote for its job, by tier (0: one per record), merged as they
    accumulate.

    Not thread-safe: the journal calls it under its file lock.

    Args:
        files: the writer's files (where merged files go, named as its own).
    """

    def __init__(self, files: WriterFiles) -> None:
        self._files = files
        self._tiers: list[list[str]] = [[]]

    def add(self, path: str, tier: int = 0) -> None:
        """Note a file this writer wrote; merge a tier once it holds :data:`MERGE_EVERY`."""
        while len(self._tiers) <= tier:
            self._tiers.append([])
        self._tiers[tier].append(path)
        if len(self._tiers[tier]) >= MERGE_EVERY:
            paths, self._tiers[tier] = self._tiers[tier], []
            merged = self._merge(paths)
            if merged is not None:
                self.add(merged, tier + 1)

    def merge_all(self) -> None:
        """Merge every file of every tier into one."""
        paths = [path for tier in self._tiers for path in tier]
        if len(paths) > 1:
            merged = self._merge(paths)
            self._tiers = [[merged] if merged else []]

    def forget(self) -> None:
        """Forget every file (they were deleted)."""
        self._tiers = [[]]

    def _merge(self, paths: list[str]) -> str | None:
        """Replace files with one new file, its path; ``None`` when none of them is left."""
        merged, present = merge_files(self._files, paths)
        self._files.storage.delete(present)
        return merged


def merge_files(files: WriterFiles, paths: list[str]) -> tuple[str | None, list[str]]:
    """Copy the rows of ``paths`` into a new file; its path (``None`` when none of them is
    left) and the paths that were copied.

    Rows are copied a row group at a time into the new file, built in memory (compressed:
    about a tenth of the rows' Arrow size) and then written atomically. A file already gone
    was folded into a snapshot by a concurrent compaction: its rows are there. When every
    file is gone, no file is written. A damaged file is set aside, not copied.
    """
    present: list[str] = []
    sink = pa.BufferOutputStream()
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []
    for path in paths:
        try:
            data = verified_bytes(files.storage, path)
        except FileNotFoundError:
            continue
        except DamagedFile as damaged:
            set_aside(files.storage, damaged)
            continue
        if writer is None:
            writer = pq.ParquetWriter(sink, JOURNAL_SCHEMA, compression="zstd")
        reader = pq.ParquetFile(pa.BufferReader(data))
        for group in range(reader.num_row_groups):
            pending.append(conform(reader.read_row_group(group, use_threads=False)))
            if sum(t.num_rows for t in pending) >= ROW_GROUP:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
                pending = []
        present.append(path)
    if writer is not None:
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
        writer.close()
        return files.write_bytes(memoryview(sink.getvalue())), present  # no copy of the file
    return None, present
