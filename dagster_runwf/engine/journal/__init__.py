"""The row journal: every paid row, durably recorded, so nothing paid is paid twice.

A journal location (a local folder or an object-storage prefix) holds one folder of files per
job and the snapshots old jobs were folded into (:mod:`.files`). Every file is immutable and
written atomically (see :mod:`..storage`), so a reader never sees a torn file and ``kill -9``
at any moment loses only rows not yet written — the engine reports a row only after the file
holding it is written. Several processes may write journals for the same location at once:
each writes its own uniquely named files; the only files ever deleted are ones a writer has
first merged into a file it wrote itself.

A job named by what it computes rather than by a run (:meth:`RowJournal.open_job`) has
*generations*: every run resumes the newest one until its results land
(:meth:`RowJournal.mark_landed`), then the next run starts a new one (:mod:`.generations`).

A *job* is one logical run of a table through a workflow, named by ``job_id``. A rerun of
the same job (after a crash, a step retry, a re-execution) reads the job's rows and sends
only rows not yet done — succeeded, or failed with a row error; rows whose transient errors
ran out of retries are not recorded, so they are tried again. A new job starts fresh,
unless ``incremental=True``: then the latest success of any earlier job (within
``max_age``) answers rows whose inputs did not change. Failed rows are never reused across
jobs.

The journal stays bounded: a writer merges its files in tiers while it runs and into one
when it closes (:mod:`.merging`), and jobs beyond the ``keep_jobs`` most recent (and not
written to within ``keep_recent``) are folded into one snapshot holding the latest success
per input (:mod:`.compaction`); a folded job still finds its successes there when resumed.
:meth:`RowJournal.clear` deletes everything.

Memory: rows read when the journal opens are kept decoded, rows this writer records only
compressed (:mod:`.store`, :mod:`.recorded`); the index from input hash to row costs 16
bytes a row (:mod:`.index`); a merge copies one row group at a time, so it never holds the
job decoded.

Every file's name ends with a digest of its bytes, checked whenever it is read: a damaged
file (a flipped byte anywhere, a truncated file) is named in a
:class:`DamagedJournalFileWarning`, moved below ``<location>/damaged/`` and its rows are run
again; it never answers a row (:mod:`.damage`).

The parts, each importing only those listed before it: :mod:`.schema` (the columns, rows to
and from results), :mod:`.files` (names, digests, reading and writing), :mod:`.damage`
(setting damaged files aside), :mod:`.location`,
:mod:`.index`, :mod:`.recorded`, :mod:`.store`, :mod:`.loading`, :mod:`.merging`,
:mod:`.compaction`, :mod:`.generations`, :mod:`.history` (what recorded runs cost),
:mod:`.earlier` (the answers earlier jobs gave), :mod:`.export` (a job's rows as a results
table), and :mod:`.row_journal` (:class:`RowJournal`, wiring them).
"""

from .damage import DamagedJournalFileWarning
from .files import job_folder_name
from .generations import current_generation, generation_job_id, mark_landed
from .row_journal import RowJournal
from .schema import JOURNAL_SCHEMA

__all__ = [
    "JOURNAL_SCHEMA",
    "DamagedJournalFileWarning",
    "RowJournal",
    "current_generation",
    "generation_job_id",
    "job_folder_name",
    "mark_landed",
]
