"""The row journal: every paid row, durably recorded, so nothing paid is paid twice.

Layout of a journal location (a local folder or an object-storage prefix)::

    <location>/jobs/<job>/<time>-<writer>-<seq>.parquet   rows finished by one job
    <location>/snapshots/<time>-<writer>.parquet          successes folded from old jobs

Every file is immutable and written atomically (see :mod:`.storage`), so a reader never
sees a torn file and ``kill -9`` at any moment loses only rows not yet written — the engine
reports a row only after the file holding it is written. Several processes may write
journals for the same location at once: each writes its own uniquely named files; the only
files ever deleted are ones a writer has first merged into a file it wrote itself.

A *job* is one logical run of a table through a workflow, named by ``job_id``. A rerun of
the same job (after a crash, a step retry, a re-execution) reads the job's rows and sends
only rows not yet done — succeeded, or failed with a row error; rows whose transient errors
ran out of retries are not recorded, so they are tried again. A new job starts fresh,
unless ``incremental=True``: then the latest success of any earlier job (within
``max_age``) answers rows whose inputs did not change. Failed rows are never reused across
jobs.

The journal stays bounded: a writer merges its files 64 at a time while it runs (and 64
merged files into one), when it closes it merges its files of this job into one, and jobs
beyond the ``keep_jobs`` most recent (and not written to within ``keep_recent``)
are folded into one snapshot holding the latest success per input (failures and answers
older than ``max_age`` are dropped); a folded job still finds its successes there when
resumed. :meth:`RowJournal.clear` deletes everything.

Memory: rows read when the journal opens (this job's earlier attempts; in incremental mode
the reusable answers) are kept decoded, as Arrow arrays, since most of them will be asked
for. Rows this writer records are kept only compressed (the Parquet bytes of a few thousand
rows at a time, about a tenth of their Arrow size) and decoded one row group at a time
when a lookup needs one (an identical row further apart than the engine's dedup cache).
The index from input hash to row is two NumPy arrays (16 bytes a row) plus a small dict of
recent additions. A merge copies one row group at a time into the new file (built
compressed in memory, then written atomically), so it never holds the job decoded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import itertools
import json
import os
import re
import threading
import uuid
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..services.outcome import Outcome
from .results import RowResult
from .storage import Storage

JOURNAL_SCHEMA = pa.schema(
    [
        pa.field("input_hash", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("result", pa.string()),
        pa.field("citations", pa.list_(pa.string()), nullable=False),
        pa.field("outputs", pa.string()),
        pa.field("output_labels", pa.string()),
        pa.field("metadata", pa.string()),
        pa.field("instance_id", pa.string()),
        pa.field("credits", pa.float64()),
        pa.field("error", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("latency_s", pa.float64()),
        pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""The columns of every journal file (one row per finished, paid row)."""

_NAMES = tuple(JOURNAL_SCHEMA.names)
_HASH_COLUMN = _NAMES.index("input_hash")
_FINISHED_COLUMN = _NAMES.index("finished_at")
_SUFFIX = ".parquet"
_STAMP = "%Y%m%dT%H%M%S%fZ"
"""File names start with the UTC time of writing, so they sort by age."""
_JOBS_KEY = b"runwf_jobs"
"""Snapshot metadata: the job ids whose rows it holds (read without reading the rows)."""
_MERGE_EVERY = 64
"""Files of one size a writer accumulates before merging them into one (small files into a
merged one, 64 merged files into a larger one…), so a long run (or one killed before it
could close) leaves few files, and no row is re-merged more than once per level."""
_ROW_GROUP = 1024
"""Rows per Parquet row group of the files and in-memory segments the journal writes: a
lookup of a row recorded by this writer decodes one row group."""
_SEGMENT_ROWS = 4096
"""Rows this writer recorded are kept decoded until there are this many, then compressed
into one in-memory segment."""
_WRITTEN = -1
"""Locations below zero are rows this writer recorded: ``-1 - number`` (in recording order);
at or above zero, ``table << 32 | row`` of a table read when the journal opened."""


class RowJournal:
    """A durable record of finished rows, on a local path or in object storage.

    Pass it to the engine (``journal=``) and close it when the run is over (or use it as a
    context manager); closing merges this writer's files and compacts old jobs.

    Args:
        location: a local folder or an fsspec URL, e.g. ``s3://bucket/journals/companies``.
            One location per enriched table; create nothing else below it.
        job_id: names the job; reruns with the same id resume it. In Dagster: the asset,
            partition and the run group (a retry or re-execution keeps the group).
        incremental: also reuse the latest successful answer of earlier jobs for rows whose
            inputs did not change, so only new or changed rows are paid for.
        max_age: in incremental mode, reuse only answers younger than this; also the age
            beyond which compaction drops answers. ``None``: no limit.
        version: a label of anything outside the inputs that changes answers (e.g. you
            edited the workflow's prompt on the service); rows recorded under another
            version are never reused.
        keep_jobs: jobs kept whole (resumable, failures included) before compaction folds
            older ones into the snapshot.
        keep_recent: jobs written to within this long are never folded, however many
            there are (they may still be running, or be re-executed: a backfill).
        flush_interval_s: least time between two writes; finished rows are batched into
            one file per write. Default 0.2 s locally, 2 s in object storage.
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``…).

    Raises:
        ConfigError: a setting is invalid or the location cannot be opened.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        job_id: str,
        incremental: bool = False,
        max_age: dt.timedelta | None = None,
        version: str = "",
        keep_jobs: int = 2,
        keep_recent: dt.timedelta = dt.timedelta(days=1),
        flush_interval_s: float | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ConfigError("journal job_id must be a non-empty string")
        if max_age is not None and (
            not isinstance(max_age, dt.timedelta) or max_age <= dt.timedelta(0)
        ):
            raise ConfigError(f"journal max_age must be a positive timedelta, got {max_age!r}")
        if not isinstance(keep_jobs, int) or keep_jobs < 1:
            raise ConfigError(f"journal keep_jobs must be >= 1, got {keep_jobs!r}")
        if flush_interval_s is not None and flush_interval_s < 0:
            raise ConfigError("journal flush_interval_s must be >= 0")
        self.storage = Storage(location, storage_options)
        self.job_id = job_id
        self.incremental = incremental
        self.max_age = max_age
        self.version = version
        self.keep_jobs = keep_jobs
        if not isinstance(keep_recent, dt.timedelta) or keep_recent < dt.timedelta(0):
            raise ConfigError(f"journal keep_recent must be a timedelta >= 0, got {keep_recent!r}")
        self.keep_recent = keep_recent
        self.flush_interval_s = (
            flush_interval_s
            if flush_interval_s is not None
            else (0.2 if self.storage.local else 2.0)
        )
        self._job_folder = self.storage.path("jobs", job_folder_name(job_id))
        self._writer = uuid.uuid4().hex[:10]
        self._sequence = 0
        # This writer's files of the job, by merge level (0: one per record() call).
        self._levels: list[list[str]] = [[]]
        # Per table read when opening: its columns (one Arrow array each, in schema order)
        # and its finished_at as int64 microseconds.
        self._tables: list[list[pa.Array]] = []
        self._finished: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._written = _WrittenRows()
        # 64-bit key of the input hash -> location (see _WRITTEN).
        self._own = _KeyIndex()
        self._reusable = _KeyIndex()
        # Rows whose 64-bit key collides with another row's, by full hash (almost always empty).
        self._own_spill: dict[str, int] = {}
        self._spill: dict[str, int] = {}
        self._runs_spent = 0
        self._credits_spent = 0.0
        self._closed = False
        self._lock = threading.Lock()  # files: one record() or merge at a time
        self._memory_lock = threading.RLock()  # the in-memory rows and index
        self._load()

    def __repr__(self) -> str:
        return (
            f"RowJournal({self.storage.url!r}, job_id={self.job_id!r}, "
            f"incremental={self.incremental})"
        )

    def __enter__(self) -> RowJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the engine calls --------------------------------------------------------------

    def lookup(self, input_hash: str) -> RowResult | None:
        """This job's finished row for these inputs, else (incremental) an earlier success."""
        key = _key(input_hash)
        for index, spill in ((self._own, self._own_spill), (self._reusable, self._spill)):
            where = index.get(key)
            if where is None:
                continue
            columns, row = self._row(where)
            if columns[_HASH_COLUMN][row].as_py() != input_hash:
                where = spill.get(input_hash)
                if where is None:
                    continue
                columns, row = self._row(where)
            return _decode(columns, row)
        return None

    def record(self, results: Sequence[RowResult]) -> None:
        """Write finished rows as one new file; returns once the file is durable."""
        if self._closed:
            raise RuntimeError("this RowJournal is closed")
        results = [r for r in results if r.input_hash is not None]
        if not results:
            return
        table = _encode(results, self.job_id, self.version)
        with self._lock:  # the engine records from worker threads
            path = self._write(table)
            with self._memory_lock:
                self._remember_written(table)
            self._add_file(path, level=0)

    def spent(self) -> tuple[int, float]:
        """Runs paid and credits reported by this job's earlier attempts (at opening)."""
        return self._runs_spent, self._credits_spent

    # -- housekeeping -----------------------------------------------------------------------

    @property
    def reusable_rows(self) -> int:
        """Rows of earlier jobs that may answer this one (incremental mode)."""
        return len(self._reusable)

    @property
    def finished_rows(self) -> int:
        """Rows this job has recorded (earlier attempts included)."""
        return len(self._own)

    def close(self) -> None:
        """Merge this writer's files into one and compact old jobs. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            files = [path for level in self._levels for path in level]
            if len(files) > 1:
                merged = self._merge_files(files)
                self._levels = [[merged] if merged else []]
        self.compact()

    def compact(self) -> int:
        """Fold jobs into one snapshot, but the ``keep_jobs`` most recent and any written to
        within ``keep_recent``.

        The snapshot keeps, per input, the latest success (younger than ``max_age``);
        failures of folded jobs are dropped (resuming a folded job finds its successes in
        the snapshot and retries its failures). Safe while other processes write: only files
        read into the new snapshot are deleted, and if a file vanishes while reading
        (another process compacting), this compaction gives up without deleting anything.

        Returns:
            the number of files folded (0 when there was nothing to do).
        """
        jobs_root = self.storage.path("jobs")
        snapshots = self.storage.list_files(self.storage.path("snapshots"), _SUFFIX)
        self.storage.remove_stale_temporaries(self.storage.root)
        jobs: list[tuple[str, list[str]]] = []
        for folder in self.storage.list_folders(jobs_root):
            files = self.storage.list_files(folder, _SUFFIX)
            if files:
                jobs.append((folder, files))
        own = self._job_folder.rstrip("/")
        jobs.sort(key=lambda job: max(_file_name(f) for f in job[1]), reverse=True)
        recent = (dt.datetime.now(dt.timezone.utc) - self.keep_recent).strftime(_STAMP)
        kept = {own} | {folder.rstrip("/") for folder, _ in jobs[: self.keep_jobs]}
        # A job written to lately may still be running, or be re-executed: keep it whole.
        kept |= {
            folder.rstrip("/") for folder, files in jobs if max(map(_file_name, files)) >= recent
        }
        folded = [f for folder, files in jobs if folder.rstrip("/") not in kept for f in files]
        if not folded and len(snapshots) <= 1:
            return 0
        sources = snapshots + folded
        tables = []
        for path in sources:
            try:
                tables.append(_read(self.storage, path))
            except FileNotFoundError:
                return 0
        merged = _latest_successes(pa.concat_tables(tables), self._cutoff())
        jobs_in = sorted(set(merged.column("job_id").unique().to_pylist()))
        merged = merged.replace_schema_metadata({_JOBS_KEY: json.dumps(jobs_in)})
        self._write(merged, folder=self.storage.path("snapshots"))
        self.storage.delete(sources)
        if self.storage.local:
            for folder, _ in jobs:
                if folder.rstrip("/") not in kept:
                    _remove_empty_folder(folder)
        return len(sources)

    def clear(self) -> None:
        """Delete every job and snapshot at this location (and forget them here)."""
        with self._lock:
            self.storage.delete_tree(self.storage.root)
            self._forget()
            self._levels = [[]]

    def _forget(self) -> None:
        """Drop every row read or written (before reading again)."""
        with self._memory_lock:
            for table_state in (self._tables, self._finished):
                table_state.clear()
            self._written = _WrittenRows()
            self._own, self._reusable = _KeyIndex(), _KeyIndex()
            for spill in (self._own_spill, self._spill):
                spill.clear()
            self._runs_spent, self._credits_spent = 0, 0.0

    # -- internals --------------------------------------------------------------------------

    def _cutoff(self) -> dt.datetime | None:
        if self.max_age is None:
            return None
        return dt.datetime.now(dt.timezone.utc) - self.max_age

    def _load(self) -> None:
        """Read this job's rows and, in incremental mode, everything reusable."""
        for _ in range(3):  # a concurrent compaction may move files while we read
            try:
                self._load_once()
                return
            except FileNotFoundError:
                self._forget()
        self._load_once()

    def _load_once(self) -> None:
        # Job folders are listed before snapshots: a compaction writes its snapshot before
        # deleting the files it folded, so every row is in one listing or the other.
        other_files: list[str] = []
        if self.incremental:
            for folder in self.storage.list_folders(self.storage.path("jobs")):
                if folder.rstrip("/") != self._job_folder.rstrip("/"):
                    other_files.extend(self.storage.list_files(folder, _SUFFIX))
        own_files = self.storage.list_files(self._job_folder, _SUFFIX)
        snapshots = self.storage.list_files(self.storage.path("snapshots"), _SUFFIX)
        for path in own_files:
            self._add(_read(self.storage, path), own=True, count_spent=True)
        for path in snapshots:
            # A folded job's successes live on in the snapshot: resuming it still finds them.
            if not self.incremental and self.job_id not in _snapshot_jobs(self.storage, path):
                continue
            table = _read(self.storage, path)
            mine = table.filter(pc.equal(table.column("job_id"), self.job_id))
            self._add(mine, own=True, count_spent=True)
            if self.incremental:
                self._add(table, own=False)
        for path in sorted(other_files, key=_file_name):
            self._add(_read(self.storage, path), own=False)

    def _add(self, table: pa.Table, *, own: bool, count_spent: bool = False) -> None:
        """Keep a table read at opening (decoded) and index its rows."""
        table = table.filter(pc.equal(table.column("version"), self.version))
        if not own:
            keep = pc.equal(table.column("status"), "succeeded")
            cutoff = self._cutoff()
            if cutoff is not None:
                keep = pc.and_(keep, pc.greater_equal(table.column("finished_at"), cutoff))
            table = table.filter(keep)
        if table.num_rows == 0:
            return
        with self._memory_lock:
            number = len(self._tables)
            finished = _finished_micros(table)
            self._tables.append(_arrays(table))
            self._finished.append(finished)
            self._index_rows(table, finished, own, lambda row: number << 32 | row)
        if count_spent:
            self._runs_spent += table.num_rows
            credits = pc.sum(table.column("credits")).as_py()
            self._credits_spent += float(credits or 0.0)

    def _remember_written(self, table: pa.Table) -> None:
        """Keep rows this writer recorded (compressed, in time) and index them."""
        start = self._written.add(table)
        finished = _finished_micros(table)
        self._index_rows(table, finished, True, lambda row: _WRITTEN - (start + row))

    def _index_rows(
        self,
        table: pa.Table,
        finished: np.ndarray[Any, np.dtype[np.int64]],
        own: bool,
        location: Callable[[int], int],
    ) -> None:
        """Index every row of ``table``; ``location`` gives the location of its n-th row."""
        for row, input_hash in enumerate(table.column("input_hash").to_pylist()):
            self._index(own, input_hash, location(row), int(finished[row]))

    def _index(self, own: bool, input_hash: str, where: int, finished: int) -> None:
        """Point the input's entry at ``where``, unless an answer finished later is known."""
        index, spill = (self._own, self._own_spill) if own else (self._reusable, self._spill)
        key = _key(input_hash)
        earlier = index.get(key)
        if earlier is not None and self._hash_at(earlier) != input_hash:
            # Two hashes share 64 bits: keep the newcomer by its full hash.
            earlier = spill.get(input_hash)
            if earlier is None or self._finished_at(earlier) <= finished:
                spill[input_hash] = where
        elif earlier is None or self._finished_at(earlier) <= finished:
            index.set(key, where)  # the latest answer wins

    def _row(self, where: int) -> tuple[list[pa.Array], int]:
        """The columns holding a location's row, and the row's position in them."""
        if where >= 0:
            return self._tables[where >> 32], where & 0xFFFFFFFF
        with self._memory_lock:
            return self._written.row(_WRITTEN - where)

    def _finished_at(self, where: int) -> int:
        if where >= 0:
            return int(self._finished[where >> 32][where & 0xFFFFFFFF])
        columns, row = self._row(where)
        finished: int = columns[_FINISHED_COLUMN][row].value
        return finished

    def _hash_at(self, where: int) -> str:
        columns, row = self._row(where)
        value: str = columns[_HASH_COLUMN][row].as_py()
        return value

    def _write(self, table: pa.Table, folder: str | None = None) -> str:
        path = self._next_path(folder)
        self.storage.write_bytes(path, _parquet_bytes(table))
        return path

    def _next_path(self, folder: str | None = None) -> str:
        self._sequence += 1
        stamp = dt.datetime.now(dt.timezone.utc).strftime(_STAMP)
        name = f"{stamp}-{self._writer}-{self._sequence:06d}{_SUFFIX}"
        return f"{folder or self._job_folder}/{name}"

    def _add_file(self, path: str, level: int) -> None:
        """Note a file this writer wrote; merge a level once it holds ``_MERGE_EVERY``."""
        while len(self._levels) <= level:
            self._levels.append([])
        self._levels[level].append(path)
        if len(self._levels[level]) >= _MERGE_EVERY:
            files, self._levels[level] = self._levels[level], []
            merged = self._merge_files(files)
            if merged is not None:
                self._add_file(merged, level + 1)

    def _merge_files(self, paths: list[str]) -> str | None:
        """Replace this writer's files with one (written first, so nothing is ever lost);
        ``None`` when none of them is left.

        Rows are copied a row group at a time into the new file, built in memory (compressed:
        about a tenth of the rows' Arrow size) and then written atomically. A file already
        gone was folded into a snapshot by a concurrent compaction: its rows are there.
        """
        merged = self._next_path()
        present: list[str] = []
        sink = pa.BufferOutputStream()
        writer: pq.ParquetWriter | None = None
        pending: list[pa.Table] = []
        for path in paths:
            try:
                data = self.storage.read_bytes(path)
            except FileNotFoundError:
                continue
            if writer is None:
                writer = pq.ParquetWriter(sink, JOURNAL_SCHEMA, compression="zstd")
            reader = pq.ParquetFile(pa.BufferReader(data))
            for group in range(reader.num_row_groups):
                pending.append(_conform(reader.read_row_group(group, use_threads=False)))
                if sum(t.num_rows for t in pending) >= _ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP)
                    pending = []
            present.append(path)
        if writer is not None:
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP)
            writer.close()
            with self.storage.open_for_write(merged) as handle:
                handle.write(memoryview(sink.getvalue()))  # no copy of the file
        if not present:
            return None
        self.storage.delete(present)
        return merged


class _KeyIndex:
    """64-bit keys -> int64 locations, in about 16 bytes a key: two sorted NumPy arrays, plus
    a dict of recent additions folded into them as it grows.

    Written by one thread at a time (under the journal's memory lock); read without a lock:
    the sorted arrays are replaced as one tuple, before the dict they absorbed is emptied,
    so a reader (dict first, then arrays) always finds a key that is in either.
    """

    _FOLD_AT = 4096

    def __init__(self) -> None:
        empty_keys: np.ndarray[Any, np.dtype[np.uint64]] = np.empty(0, np.uint64)
        empty_values: np.ndarray[Any, np.dtype[np.int64]] = np.empty(0, np.int64)
        self._sorted = (empty_keys, empty_values)
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._sorted[0]) + len(self._recent)

    def get(self, key: int) -> int | None:
        found = self._recent.get(key)
        if found is not None:
            return found
        keys, values = self._sorted
        at = int(keys.searchsorted(np.uint64(key)))
        if at < len(keys) and int(keys[at]) == key:
            return int(values[at])
        return None

    def set(self, key: int, value: int) -> None:
        if key not in self._recent:
            keys, values = self._sorted
            at = int(keys.searchsorted(np.uint64(key)))
            if at < len(keys) and int(keys[at]) == key:
                values[at] = value
                return
        self._recent[key] = value
        if len(self._recent) >= max(self._FOLD_AT, len(self._sorted[0]) // 4):
            self._fold()

    def _fold(self) -> None:
        recent = self._recent
        keys = np.concatenate([self._sorted[0], np.fromiter(recent.keys(), np.uint64, len(recent))])
        values = np.concatenate(
            [self._sorted[1], np.fromiter(recent.values(), np.int64, len(recent))]
        )
        order = np.argsort(keys, kind="stable")
        self._sorted = (keys[order], values[order])
        self._recent = {}


class _WrittenRows:
    """The rows one writer recorded, in recording order: the latest few thousand as Arrow
    arrays, the rest as compressed Parquet segments decoded a row group at a time."""

    def __init__(self) -> None:
        # Per segment: its Parquet bytes and the offset of each of its row groups.
        self._segments: list[tuple[bytes, list[int]]] = []
        self._segment_starts: list[int] = []
        self._tail: list[list[pa.Array]] = []
        self._tail_starts: list[int] = []
        self._rows = 0
        self._decoded: tuple[int, int, list[pa.Array]] | None = None

    def add(self, table: pa.Table) -> int:
        """Keep a table's rows; the number of its first row."""
        start = self._rows
        self._tail.append(_arrays(table))
        self._tail_starts.append(start)
        self._rows += table.num_rows
        if self._rows - self._tail_starts[0] >= _SEGMENT_ROWS:
            tail = pa.Table.from_arrays(
                [pa.chunked_array(c) for c in zip(*self._tail, strict=True)],
                schema=JOURNAL_SCHEMA,
            )
            data = _parquet_bytes(tail)
            metadata = pq.read_metadata(pa.BufferReader(data))
            groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            self._segments.append((data, list(itertools.accumulate(groups, initial=0))))
            self._segment_starts.append(self._tail_starts[0])
            self._tail, self._tail_starts = [], []
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
            self._decoded = (segment, group, _arrays(table))
        return self._decoded[2], offset - group_starts[group]


def job_folder_name(job_id: str) -> str:
    """A folder name for a job id: readable, safe in any store, unique per id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id).strip("._")[:60]
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return f"{readable}-{digest}" if readable else digest


def _key(input_hash: str) -> int:
    # 64 bits of the hash keep the index small; a hit is confirmed against the full hash.
    return int(input_hash[:16], 16)


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _arrays(table: pa.Table) -> list[pa.Array]:
    """One Arrow array per column, in schema order."""
    return [column.chunk(0) for column in table.combine_chunks().columns]


def _finished_micros(table: pa.Table) -> np.ndarray[Any, np.dtype[np.int64]]:
    finished: np.ndarray[Any, np.dtype[np.int64]] = (
        table.column("finished_at").cast(pa.int64()).to_numpy()
    )
    return finished


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=_ROW_GROUP)
    return buffer.getvalue()


def _read(storage: Storage, path: str) -> pa.Table:
    # Every read is single-threaded (use_threads=False here and for row groups): Arrow's
    # reader threads can outlive a short process and abort it at exit (apache/arrow#34314),
    # and the journal's files are small enough for one thread.
    data = storage.read_bytes(path)
    return _conform(pq.read_table(pa.BufferReader(data), use_threads=False, pre_buffer=False))


def _conform(table: pa.Table) -> pa.Table:
    """The journal's columns, in order and of its types (files of older versions too)."""
    return table.select(JOURNAL_SCHEMA.names).cast(JOURNAL_SCHEMA)


def _snapshot_jobs(storage: Storage, path: str) -> list[str]:
    """The job ids a snapshot holds rows of, from its footer alone."""
    with storage.fs.open(path, "rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    jobs: list[str] = json.loads(metadata.get(_JOBS_KEY, b"[]"))
    return jobs


def _remove_empty_folder(folder: str) -> None:
    with contextlib.suppress(OSError):  # not empty: another writer added a file meanwhile
        os.rmdir(folder)


def _json(value: Mapping[str, Any]) -> str | None:
    if not value:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _encode(results: Sequence[RowResult], job_id: str, version: str) -> pa.Table:
    outcomes = [r.outcome for r in results]
    columns: dict[str, list[Any]] = {
        "input_hash": [r.input_hash for r in results],
        "version": [version] * len(results),
        "job_id": [job_id] * len(results),
        "status": [r.status for r in results],
        "result": [o.result if o else None for o in outcomes],
        "citations": [list(o.citations) if o else [] for o in outcomes],
        "outputs": [_json(o.outputs) if o else None for o in outcomes],
        "output_labels": [_json(o.output_labels) if o else None for o in outcomes],
        "metadata": [_json(o.metadata) if o else None for o in outcomes],
        "instance_id": [o.instance_id if o else None for o in outcomes],
        "credits": [o.credits if o else None for o in outcomes],
        "error": [r.error for r in results],
        "error_type": [r.error_type for r in results],
        "attempts": [r.attempts for r in results],
        "latency_s": [r.latency_s for r in results],
        "finished_at": [r.finished_at for r in results],
    }
    return pa.Table.from_pydict(columns, schema=JOURNAL_SCHEMA)


def _decode(columns: list[pa.Array], row: int) -> RowResult:
    value = {name: column[row].as_py() for name, column in zip(_NAMES, columns, strict=True)}
    outcome = None
    if value["status"] == "succeeded":
        outcome = Outcome(
            result=value["result"],
            citations=tuple(value["citations"] or ()),
            outputs=json.loads(value["outputs"] or "{}"),
            output_labels=json.loads(value["output_labels"] or "{}"),
            metadata=json.loads(value["metadata"] or "{}"),
            instance_id=value["instance_id"],
            credits=value["credits"],
        )
    return RowResult(
        index=-1,
        input_hash=value["input_hash"],
        status=value["status"],
        outcome=outcome,
        error=value["error"],
        error_type=value["error_type"],
        attempts=value["attempts"],
        latency_s=value["latency_s"],
        finished_at=value["finished_at"],
        source="journal",
    )


def _latest_successes(table: pa.Table, cutoff: dt.datetime | None) -> pa.Table:
    """One row per (input, version): its latest success, younger than ``cutoff``."""
    keep = pc.equal(table.column("status"), "succeeded")
    if cutoff is not None:
        keep = pc.and_(keep, pc.greater_equal(table.column("finished_at"), cutoff))
    table = table.filter(keep)
    if table.num_rows == 0:
        return table
    table = table.sort_by(
        [("input_hash", "ascending"), ("version", "ascending"), ("finished_at", "descending")]
    ).combine_chunks()
    key = pc.binary_join_element_wise(table.column("input_hash"), table.column("version"), "\0")
    first = pc.not_equal(key.slice(1), key.slice(0, len(key) - 1))
    mask = pa.concat_arrays([pa.array([True]), first.combine_chunks()])
    return table.filter(mask)
