"""The plan of a fan-out: what each row will need, counted before the first request and
without any — rows to send, reused from the journal, identical to an earlier row, retried
because this job recorded them as failed, skipped or rejected for their inputs.

The fan-out counts it to tell how long the key's rate makes the run (:func:`count_to_send`);
:func:`~dagster_runwf.engine.enrich.plan_enrichment` hands it to users (``runwf enrich
--plan``, an enriched asset's ``plan_only`` run) with the credits the journal's history
says it will cost. Each row is classified as the fan-out's workers will answer it
(:mod:`.answers`), so the plan's counts are those of the run that follows with the same
journal (unless something changes in between: another writer, a transient error whose
retries run out, the budget).
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from dataclasses import dataclass

from ...errors import RowInputError, RowSkippedError
from ...services.base import Workflow
from ..journal import RowJournal
from ..results import Journal
from .rows import Row, Rows

PLAN_SCAN_ROWS = 250_000
"""The most rows counted one by one (about 2 s of hashing) to tell the run's length before
it starts: beyond, or for rows that can be read only once, the rows to send are estimated as
the rows less those the job's journal holds. (:func:`plan_rows` counts any number.)"""


@dataclass(frozen=True)
class RowPlan:
    """What a fan-out will do with each row, counted without any request.

    Every row is in exactly one of ``send``, ``reused``, ``deduplicated``, ``skipped`` and
    ``rejected``; ``retried`` is part of ``send`` and ``reused_failed`` part of ``reused``.
    Their names are :class:`~dagster_runwf.engine.stats.RunStats`'s, which the run will
    report (``sent``, ``reused``, ``deduplicated``, ``skipped``, ``invalid`` less
    ``skipped``).

    Attributes:
        rows: input rows.
        send: rows that need a paid request.
        reused: rows the journal answers: this job's finished rows (failed ones too, unless
            ``retry_failed``) and, in incremental mode, earlier jobs' successes.
        reused_failed: of ``reused``, rows this job recorded as failed (answered by their
            failure; ``retry_failed`` would send them again).
        deduplicated: rows identical to an earlier row of the table (same input hash),
            answered by it whichever way that one is answered.
        retried: of ``send``, rows this job recorded as failed, sent again because the
            journal's ``retry_failed`` is on.
        skipped: rows with a missing input under ``on_missing="skip"``: not sent.
        rejected: rows whose inputs cannot be sent (a missing input under
            ``on_missing="fail"``, a value with no JSON form): row errors, not sent.
    """

    rows: int = 0
    send: int = 0
    reused: int = 0
    reused_failed: int = 0
    deduplicated: int = 0
    retried: int = 0
    skipped: int = 0
    rejected: int = 0


def plan_rows(rows: Iterable[Row], workflow: Workflow, journal: Journal | None) -> RowPlan:
    """Classify every row as the fan-out will answer it, with no request (reads ``rows``
    once; the journal only in memory)."""
    seen: set[int] = set()  # hashes of the input hashes: a third of the memory
    counts = dict.fromkeys(RowPlan.__dataclass_fields__, 0)
    retry_failed = isinstance(journal, RowJournal) and journal.retry_failed
    for row in rows:
        counts["rows"] += 1
        try:
            key = workflow.prepare(row).input_hash
        except RowSkippedError:
            counts["skipped"] += 1
            continue
        except RowInputError:
            counts["rejected"] += 1  # fails before any request
            continue
        if hash(key) in seen:
            counts["deduplicated"] += 1  # answered by the identical row before it
            continue
        seen.add(hash(key))
        earlier = None if journal is None else journal.lookup(key)
        if earlier is not None:
            counts["reused"] += 1
            counts["reused_failed"] += earlier.status == "failed"
            continue
        counts["send"] += 1
        if retry_failed:
            assert isinstance(journal, RowJournal)
            counts["retried"] += journal.failed_before(key)
    return RowPlan(**counts)


def count_to_send(
    rows: Rows, total: int | None, workflow: Workflow, journal: Journal | None
) -> int | None:
    """Rows that need a paid request: not answered by the journal nor by an identical row
    before them, and with inputs that can be sent. ``None`` when ``total`` is unknown.

    Reads ``rows`` once more when they can be read twice (a list, a DataFrame's rows).
    """
    if total is None:
        return None
    if total <= PLAN_SCAN_ROWS and _rereadable(rows):
        assert isinstance(rows, Iterable)
        return plan_rows(rows, workflow, journal).send
    finished = journal.finished_rows if isinstance(journal, RowJournal) else 0
    return max(0, total - finished)


def _rereadable(rows: Rows) -> bool:
    """``rows`` can be iterated again from the start without consuming the fan-out's."""
    if not (isinstance(rows, Sized) and isinstance(rows, Iterable)):
        return False
    iterator: object = iter(rows)
    return iterator is not rows
