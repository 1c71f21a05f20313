"""Opening a journal: reading the rows it may answer from into a :class:`~.store.RowStore`.

Those are the rows of this job (its files, and its successes in a snapshot when the job was
folded) and, in incremental mode, the successes of earlier jobs under the same version,
younger than ``max_age``.

Every file is checked as it is read; a damaged one is set aside with a warning and its rows
are left out, so they are run again (:mod:`.damage`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..storage import Storage
from .damage import read_or_set_aside, set_aside
from .files import SUFFIX, DamagedFile, file_name, snapshot_jobs
from .store import RowStore

_ATTEMPTS = 3
"""Reads retried from scratch when a file vanishes meanwhile (a concurrent compaction)."""


def read_new_job_files(
    storage: Storage,
    job_folder: str,
    seen: set[str],
    skip: Callable[[str], bool] = lambda path: False,
) -> Iterator[pa.Table]:
    """The tables of a job's files not in ``seen`` (nor ``skip``-ped), each added to
    ``seen`` as it is read; a damaged file gives none (it is set aside).

    Safe while other writers of the job merge their files: a file gone since the listing
    was merged into a new file (written before the old ones were deleted), which the next
    listing holds; it lists again until a round misses none.
    """
    missed = True
    while missed:
        missed = False
        for path in storage.list_files(job_folder, SUFFIX):
            if path in seen or skip(path):
                continue
            seen.add(path)
            try:
                table = read_or_set_aside(storage, path)
            except FileNotFoundError:
                missed = True
                continue
            if table is not None:
                yield table


class RowLoader:
    """Reads what a journal opening for a job answers from.

    Args:
        storage: the journal's location.
        job_folder: the folder of the job's files.
        job_id: the job.
        version: only rows recorded under this version are read.
        incremental: also read the successes of earlier jobs.
        cutoff: in incremental mode, read only successes finished since then.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        job_folder: str,
        job_id: str,
        version: str,
        incremental: bool,
        cutoff: dt.datetime | None,
    ) -> None:
        self.storage = storage
        self.job_folder = job_folder
        self.job_id = job_id
        self.version = version
        self.incremental = incremental
        self.cutoff = cutoff
        self.read_files: set[str] = set()
        """The job's files the last load read (or found merged away)."""

    def load(self) -> RowStore:
        """The rows, read into a new store."""
        for _ in range(_ATTEMPTS - 1):
            try:
                return self._load_once()
            except FileNotFoundError:
                pass  # a concurrent compaction moved files while we read: start over
        return self._load_once()

    def _load_once(self) -> RowStore:
        rows = RowStore()
        # Job folders are listed before snapshots: a compaction writes its snapshot before
        # deleting the files it folded, so every row is in one listing or the other.
        other_files = self._other_jobs_files() if self.incremental else []
        self._read_job_files(rows)
        snapshots = self.storage.list_files(self.storage.path("snapshots"), SUFFIX)
        for path in snapshots:
            # A folded job's successes live on in the snapshot: resuming it still finds them.
            if not self.incremental and not self._holds_job(path):
                continue
            table = read_or_set_aside(self.storage, path)
            if table is None:
                continue
            self._keep(rows, table.filter(pc.equal(table.column("job_id"), self.job_id)), own=True)
            if self.incremental:
                self._keep(rows, table, own=False)
        for path in sorted(other_files, key=file_name):
            self._keep(rows, read_or_set_aside(self.storage, path), own=False)
        return rows

    def _read_job_files(self, rows: RowStore) -> None:
        self.read_files = set()
        for table in read_new_job_files(self.storage, self.job_folder, self.read_files):
            self._keep(rows, table, own=True)

    def _holds_job(self, snapshot: str) -> bool:
        """Whether a snapshot's footer lists this job (a damaged footer: set aside, no)."""
        try:
            return self.job_id in snapshot_jobs(self.storage, snapshot)
        except DamagedFile as damaged:
            set_aside(self.storage, damaged)
            return False

    def _other_jobs_files(self) -> list[str]:
        files: list[str] = []
        for folder in self.storage.list_folders(self.storage.path("jobs")):
            if folder.rstrip("/") != self.job_folder.rstrip("/"):
                files.extend(self.storage.list_files(folder, SUFFIX))
        return files

    def _keep(self, rows: RowStore, table: pa.Table | None, *, own: bool) -> None:
        """Add a table's rows of this version: all of them for this job's, only the recent
        enough successes for reusable ones (none of a damaged file's)."""
        if table is None:
            return
        table = table.filter(pc.equal(table.column("version"), self.version))
        if not own:
            keep = pc.equal(table.column("status"), "succeeded")
            if self.cutoff is not None:
                keep = pc.and_(keep, pc.greater_equal(table.column("finished_at"), self.cutoff))
            table = table.filter(keep)
        rows.add_read(table, own=own)
