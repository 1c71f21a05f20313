"""Compaction: folding old jobs into one snapshot, so a journal stays about one row per input.

Jobs beyond the ``keep_jobs`` most recent, and not written to within ``keep_recent``, are
folded with the existing snapshots into one new snapshot holding, per input and version, the
latest success (younger than ``max_age``); failures are dropped. Safe while other processes
write: only files read into the new snapshot are deleted, after it is written, and if a file
vanishes while reading (another process compacting), the compaction gives up without
deleting anything. A damaged file is set aside (:mod:`.damage`), not folded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..storage import Storage
from .damage import read_or_set_aside
from .files import SUFFIX, WriterFiles, file_name, stamp, with_snapshot_jobs


@dataclass(frozen=True, slots=True)
class Retention:
    """What compaction keeps.

    Attributes:
        keep_jobs: jobs kept whole, the most recent first.
        keep_recent: jobs written to within this long are kept whole too.
        cutoff: successes finished before this are dropped (``None``: none are).
    """

    keep_jobs: int
    keep_recent: dt.timedelta
    cutoff: dt.datetime | None


def compact(files: WriterFiles, retention: Retention) -> int:
    """Fold old jobs (never the writer's own) and the snapshots into one snapshot.

    Returns:
        the number of files folded (0 when there was nothing to do).
    """
    storage = files.storage
    snapshots = storage.list_files(storage.path("snapshots"), SUFFIX)
    storage.remove_stale_temporaries(storage.root)
    jobs = _jobs(storage)
    kept = _kept_jobs(jobs, files.job_folder, retention)
    folded = [path for folder, paths in jobs if folder not in kept for path in paths]
    if not folded and len(snapshots) <= 1:
        return 0
    sources, tables = [], []
    for path in snapshots + folded:
        try:
            table = read_or_set_aside(storage, path)
        except FileNotFoundError:
            return 0
        if table is not None:  # else set aside: its rows are run again
            sources.append(path)
            tables.append(table)
    if not tables:
        return 0
    merged = latest_successes(pa.concat_tables(tables), retention.cutoff)
    jobs_in = sorted(set(merged.column("job_id").unique().to_pylist()))
    files.write(with_snapshot_jobs(merged, jobs_in), folder=storage.path("snapshots"))
    storage.delete(sources)
    if storage.local:
        for folder, _ in jobs:
            if folder not in kept:
                _remove_empty_folder(folder)
    return len(sources)


def _jobs(storage: Storage) -> list[tuple[str, list[str]]]:
    """Every job folder (without a trailing slash) that holds files, and its files."""
    jobs: list[tuple[str, list[str]]] = []
    for folder in storage.list_folders(storage.path("jobs")):
        paths = storage.list_files(folder, SUFFIX)
        if paths:
            jobs.append((folder.rstrip("/"), paths))
    return jobs


def _kept_jobs(
    jobs: list[tuple[str, list[str]]], own_folder: str, retention: Retention
) -> set[str]:
    """The folders of the jobs kept whole: the writer's own, the ``keep_jobs`` written to
    last, and any written to within ``keep_recent``."""
    latest = {folder: max(map(file_name, paths)) for folder, paths in jobs}
    by_age = sorted(latest, key=latest.__getitem__, reverse=True)
    recent = stamp(dt.datetime.now(dt.timezone.utc) - retention.keep_recent)
    kept = {own_folder.rstrip("/")} | set(by_age[: retention.keep_jobs])
    # A job written to lately may still be running, or be re-executed: keep it whole.
    return kept | {folder for folder, last in latest.items() if last >= recent}


def latest_successes(table: pa.Table, cutoff: dt.datetime | None) -> pa.Table:
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


def _remove_empty_folder(folder: str) -> None:
    with contextlib.suppress(OSError):  # not empty: another writer added a file meanwhile
        os.rmdir(folder)
