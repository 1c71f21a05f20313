"""The row journal itself: :class:`RowJournal` wires the journal's parts together.

Opening reads the rows it may answer from (:mod:`.loading`) into the in-memory store
(:mod:`.store`); :meth:`RowJournal.record` writes each batch as a new file (:mod:`.files`),
keeps its rows and merges the writer's files in tiers (:mod:`.merging`); closing merges
them into one and compacts old jobs into a snapshot (:mod:`.compaction`).
:meth:`RowJournal.open_job` and :meth:`RowJournal.mark_landed` give a job generations
that resume until their results land (:mod:`.generations`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow.compute as pc

from ...errors import ConfigError, JournalError
from ..results import RowResult
from ..storage import Storage
from .compaction import Retention, compact
from .files import WriterFiles, job_folder_name
from .generations import current_generation, generation_job_id, mark_landed
from .history import CreditHistory, credit_history
from .loading import RowLoader, read_new_job_files
from .merging import TieredMerges
from .schema import encode
from .store import RowStore


class RowJournal:
    """A durable record of finished rows, on a local path or in object storage.

    Pass it to the engine (``journal=``) and close it when the run is over (or use it as a
    context manager); closing merges this writer's files and compacts old jobs.

    Args:
        location: a local folder or an fsspec URL, e.g. ``s3://bucket/journals/companies``.
            One location per enriched table; create nothing else below it.
        job_id: names the job; reruns with the same id resume it. To resume until the
            results land whatever starts the next run, see :meth:`open_job`.
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
            one file per write. Default 0 locally (write as soon as the previous write is
            done), 2 s in object storage (a write is a round trip and a file a request).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``…).
        retry_failed: send this job's failed rows again instead of answering them from the
            journal. Rows whose failure is final (a run that failed, an unusable answer
            that was most likely paid) are otherwise never paid for twice; with this they
            are, once more each.

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
        retry_failed: bool = False,
    ) -> None:
        _check_settings(job_id, max_age, keep_jobs, keep_recent, flush_interval_s)
        self.storage = Storage(location, storage_options)
        self.job_id = job_id
        self.job = job_id
        """What the job computes; ``job_id`` is its generation's id (see :meth:`open_job`)."""
        self.generation: int | None = None
        """The generation of :attr:`job` this is (``None``: a job without generations)."""
        self.incremental = incremental
        self.max_age = max_age
        self.version = version
        self.keep_jobs = keep_jobs
        self.keep_recent = keep_recent
        self.retry_failed = retry_failed
        self.flush_interval_s = (
            flush_interval_s
            if flush_interval_s is not None
            else (0.0 if self.storage.local else 2.0)
        )
        self._files = WriterFiles(self.storage, self.storage.path("jobs", job_folder_name(job_id)))
        self._merges = TieredMerges(self._files)
        self._closed = False
        self._lock = threading.Lock()  # files: one record() or merge at a time
        self._refresh_lock = threading.Lock()
        loader = self._loader()
        self._rows = loader.load()
        self._read_files = loader.read_files  # refresh() reads only the files written since

    @classmethod
    def open_job(
        cls,
        location: str | os.PathLike[str],
        *,
        job: str,
        storage_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RowJournal:
        """The journal of ``job``'s open generation: the one every run resumes until its
        results land (:meth:`mark_landed`), then the next one, which starts fresh (or, with
        ``incremental=True``, reuses earlier successes).

        Name the job by what it computes (e.g. an asset, its partition and a fingerprint of
        its configuration), not by a run, so that any later run of the same thing resumes
        what a failed or killed one paid for. ``options`` are those of :class:`RowJournal`.

        Raises:
            ConfigError: as :class:`RowJournal`.
        """
        if not isinstance(job, str) or not job.strip():
            raise ConfigError("journal job must be a non-empty string")
        generation = current_generation(Storage(location, storage_options), job)
        journal = cls(
            location,
            job_id=generation_job_id(job, generation),
            storage_options=storage_options,
            **options,
        )
        journal.job = job
        journal.generation = generation
        return journal

    def mark_landed(self) -> None:
        """Record that this generation's results landed: the next :meth:`open_job` of the
        same job starts a new generation. Call it after the results are stored (the journal
        may be closed by then).

        Raises:
            RuntimeError: the journal was not opened with :meth:`open_job`.
        """
        if self.generation is None:
            raise RuntimeError("only a journal opened with RowJournal.open_job can land")
        mark_landed(self.storage, self.job, self.generation)

    def __repr__(self) -> str:
        return (
            f"RowJournal({self.storage.url!r}, job_id={self.job_id!r}, "
            f"incremental={self.incremental}"
            + (", retry_failed=True" if self.retry_failed else "")
            + ")"
        )

    def __enter__(self) -> RowJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # An error is in flight (often a JournalError: the disk is full): closing will likely
        # fail the same way, and its error must not replace the one that says what happened.
        try:
            self.close()
        except Exception as closing:
            _note(exc, f"closing the journal failed too: {closing}")

    # -- what the engine calls --------------------------------------------------------------

    def lookup(self, input_hash: str) -> RowResult | None:
        """This job's finished row for these inputs, else (incremental) an earlier success.

        With ``retry_failed``, this job's failed rows are not answered: they are sent again.
        """
        return self._rows.lookup(input_hash, failed=not self.retry_failed)

    def failed_before(self, input_hash: str) -> bool:
        """Whether this job recorded these inputs as failed (with ``retry_failed``, such a
        row is sent again: :meth:`lookup` passes over it)."""
        found = self._rows.lookup(input_hash, failed=True)
        return found is not None and found.status == "failed"

    def credit_history(self, counts: Callable[[str], bool] | None = None) -> CreditHistory:
        """The credits the service reported for the paid runs recorded at this location
        under this journal's version, in the jobs for which ``counts(job_id)`` is true (all
        by default): what a plan expects a run to cost. Reads every file there."""
        return credit_history(self.storage, self.version, counts or (lambda job_id: True))

    def record(self, results: Sequence[RowResult]) -> None:
        """Write finished rows as one new file; returns once the file is durable."""
        if self._closed:
            raise RuntimeError("this RowJournal is closed")
        results = [r for r in results if r.input_hash is not None]
        if not results:
            return
        table = encode(results, self.job_id, self.version)
        with self._lock:  # the engine records from worker threads
            path = self._files.write(table)
            self._rows.add_recorded(table)
            self._merges.add(path)

    def spent(self) -> tuple[int, float]:
        """Runs paid and credits reported by this job's earlier attempts (at opening, plus
        the rows :meth:`refresh` read since)."""
        return self._rows.spent()

    # -- other writers of the job -----------------------------------------------------------

    @property
    def claim_scope(self) -> str:
        """The job's name among claims: its location, id and version, hashed."""
        where = self.storage.root if self.storage.local else self.storage.url
        text = "\0".join((where, self.job_id, self.version))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def location_url(self) -> str:
        """Where the journal is, as given (a local folder or a URL)."""
        return self.storage.url

    @property
    def local_folder(self) -> str | None:
        """The journal's folder on a local disk; ``None`` in object storage."""
        return self.storage.root if self.storage.local else None

    def refresh(self) -> int:
        """Read the rows other writers of this job recorded since this journal opened (or
        last refreshed), so :meth:`lookup` finds them; how many rows were new.

        Lists the job's folder and reads only files not read before. Safe while other
        writers merge their files: a file gone meanwhile is found merged in the next
        listing, which is taken at once.
        """
        added = 0
        with self._refresh_lock:
            new_tables = read_new_job_files(
                self.storage, self._files.job_folder, self._read_files, skip=self._files.wrote
            )
            for table in new_tables:
                table = table.filter(pc.equal(table.column("version"), self.version))
                self._rows.add_read(table, own=True)
                added += table.num_rows
        return added

    # -- housekeeping -----------------------------------------------------------------------

    @property
    def reusable_rows(self) -> int:
        """Rows of earlier jobs that may answer this one (incremental mode)."""
        return len(self._rows.reusable)

    @property
    def finished_rows(self) -> int:
        """Rows this job has recorded (earlier attempts included)."""
        return len(self._rows.own)

    def close(self) -> None:
        """Merge this writer's files into one and compact old jobs. Idempotent.

        Raises:
            JournalError: a file could not be written, read or deleted (it names the path;
                the storage's error is its cause). Every recorded row is still in the
                journal: merges and compactions write before they delete.
        """
        if self._closed:
            return
        self._closed = True
        try:
            with self._lock:
                self._merges.merge_all()
            self.compact()
        except OSError as exc:
            raise JournalError(
                f"the row journal at {self.storage.url!r} could not merge or compact its "
                f"files: {exc}. Every recorded row is kept; free space or fix the location's "
                "permissions (the next close merges them)."
            ) from exc

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
        return compact(self._files, Retention(self.keep_jobs, self.keep_recent, self._cutoff()))

    def clear(self) -> None:
        """Delete every job and snapshot at this location (and forget them here)."""
        with self._lock:
            self.storage.delete_tree(self.storage.root)
            self._rows = RowStore()
            self._merges.forget()
            self._read_files = set()

    def _cutoff(self) -> dt.datetime | None:
        if self.max_age is None:
            return None
        return dt.datetime.now(dt.timezone.utc) - self.max_age

    def _loader(self) -> RowLoader:
        return RowLoader(
            self.storage,
            job_folder=self._files.job_folder,
            job_id=self.job_id,
            version=self.version,
            incremental=self.incremental,
            cutoff=self._cutoff(),
        )


def _note(exc: BaseException, note: str) -> None:
    """Add a note to an exception in flight (a warning before Python 3.11, which has none)."""
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)
    else:
        warnings.warn(note, RuntimeWarning, stacklevel=3)


def _check_settings(
    job_id: str,
    max_age: dt.timedelta | None,
    keep_jobs: int,
    keep_recent: dt.timedelta,
    flush_interval_s: float | None,
) -> None:
    """Raise :class:`ConfigError` for an invalid setting of :class:`RowJournal`."""
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
    if not isinstance(keep_recent, dt.timedelta) or keep_recent < dt.timedelta(0):
        raise ConfigError(f"journal keep_recent must be a timedelta >= 0, got {keep_recent!r}")
