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

The journal stays bounded: when a writer closes, it merges its files of this job into one,
and jobs beyond the ``keep_jobs`` most recent (and not written to within ``keep_recent``)
are folded into one snapshot holding the latest success per input (failures and answers
older than ``max_age`` are dropped); a folded job still finds its successes there when
resumed. :meth:`RowJournal.clear` deletes everything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..services.errors import ConfigError
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
_SUFFIX = ".parquet"
_STAMP = "%Y%m%dT%H%M%S%fZ"
"""File names start with the UTC time of writing, so they sort by age."""
_JOBS_KEY = b"runwf_jobs"
"""Snapshot metadata: the job ids whose rows it holds (read without reading the rows)."""
_MERGE_EVERY = 64
"""Small files a writer accumulates before merging them into one, so a long run (or one
killed before it could close) leaves few files."""


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
        self._written: list[str] = []
        # Per table read or written: its columns (one Arrow array each, in schema order).
        self._tables: list[list[pa.Array]] = []
        self._finished: list[Any] = []  # per table: finished_at as int64 microseconds
        self._own: dict[int, tuple[int, int]] = {}
        self._reusable: dict[int, tuple[int, int]] = {}
        # Rows whose 64-bit key collides with another row's, by full hash (almost always empty).
        self._own_spill: dict[str, tuple[int, int]] = {}
        self._spill: dict[str, tuple[int, int]] = {}
        self._runs_spent = 0
        self._credits_spent = 0.0
        self._closed = False
        self._lock = threading.Lock()
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
            if where is not None and self._hash_at(where) != input_hash:
                where = spill.get(input_hash)
            if where is not None:
                return _decode(self._tables[where[0]], where[1])
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
            self._written.append(path)
            self._add(table, own=True)
            if len(self._written) >= _MERGE_EVERY:
                self._merge_written()

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
        if len(self._written) > 1:
            self._merge_written()
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
        self.storage.delete_tree(self.storage.root)
        self._forget()
        self._written.clear()

    def _forget(self) -> None:
        """Drop every row read or written (before reading again)."""
        for table_state in (self._tables, self._finished):
            table_state.clear()
        for index in (self._own, self._reusable):
            index.clear()
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
        table = table.filter(pc.equal(table.column("version"), self.version))
        if not own:
            keep = pc.equal(table.column("status"), "succeeded")
            cutoff = self._cutoff()
            if cutoff is not None:
                keep = pc.and_(keep, pc.greater_equal(table.column("finished_at"), cutoff))
            table = table.filter(keep)
        if table.num_rows == 0:
            return
        table = table.combine_chunks()
        number = len(self._tables)
        self._tables.append([column.chunk(0) for column in table.columns])
        finished = table.column("finished_at").cast(pa.int64()).to_numpy()
        self._finished.append(finished)
        index, spill = (self._own, self._own_spill) if own else (self._reusable, self._spill)
        for row, input_hash in enumerate(table.column("input_hash").to_pylist()):
            key = _key(input_hash)
            earlier = index.get(key)
            if earlier is not None and self._hash_at(earlier) != input_hash:
                # Two hashes share 64 bits: keep the newcomer by its full hash.
                earlier = spill.get(input_hash)
                if earlier is None or self._finished_at(earlier) <= finished[row]:
                    spill[input_hash] = (number, row)
            elif earlier is None or self._finished_at(earlier) <= finished[row]:
                index[key] = (number, row)  # the latest answer wins
        if count_spent:
            self._runs_spent += table.num_rows
            credits = pc.sum(table.column("credits")).as_py()
            self._credits_spent += float(credits or 0.0)

    def _finished_at(self, where: tuple[int, int]) -> int:
        return int(self._finished[where[0]][where[1]])

    def _hash_at(self, where: tuple[int, int]) -> str:
        value: str = self._tables[where[0]][_HASH_COLUMN][where[1]].as_py()
        return value

    def _write(self, table: pa.Table, folder: str | None = None) -> str:
        self._sequence += 1
        stamp = dt.datetime.now(dt.timezone.utc).strftime(_STAMP)
        name = f"{stamp}-{self._writer}-{self._sequence:06d}{_SUFFIX}"
        path = f"{folder or self._job_folder}/{name}"
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self.storage.write_bytes(path, buffer.getvalue())
        return path

    def _merge_written(self) -> None:
        """Replace this writer's files with one (written first, so nothing is ever lost)."""
        tables = []
        present = []
        for path in self._written:
            try:
                tables.append(_read(self.storage, path))
                present.append(path)
            except FileNotFoundError:  # folded into a snapshot by a concurrent compaction
                continue
        self._written = []
        if not tables:
            return
        merged = self._write(pa.concat_tables(tables))
        self.storage.delete(present)
        self._written = [merged]


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


def _read(storage: Storage, path: str) -> pa.Table:
    table = pq.read_table(io.BytesIO(storage.read_bytes(path)))
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
