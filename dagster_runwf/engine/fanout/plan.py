"""How many rows of a fan-out need a paid request, counted before the first one is sent, so
the first progress report can say how long the key's rate makes the run."""

from __future__ import annotations

from collections.abc import Iterable, Sized

from ...errors import RowInputError
from ...services.base import Workflow
from ..journal import RowJournal
from ..results import Journal
from .rows import Row, Rows

PLAN_SCAN_ROWS = 250_000
"""The most rows counted one by one (about 2 s of hashing): beyond, or for rows that can be
read only once, the rows to send are estimated as the rows less those the job's journal
holds."""


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
        return _count(rows, workflow, journal)
    finished = journal.finished_rows if isinstance(journal, RowJournal) else 0
    return max(0, total - finished)


def _count(rows: Iterable[Row], workflow: Workflow, journal: Journal | None) -> int:
    """The rows to send, one by one."""
    seen: set[int] = set()  # hashes of the input hashes: a third of the memory
    to_send = 0
    for row in rows:
        try:
            key = workflow.prepare(row).input_hash
        except RowInputError:
            continue  # fails before any request
        if hash(key) in seen:
            continue  # answered by the identical row before it
        seen.add(hash(key))
        if journal is None or journal.lookup(key) is None:
            to_send += 1
    return to_send


def _rereadable(rows: Rows) -> bool:
    """``rows`` can be iterated again from the start without consuming the fan-out's."""
    if not (isinstance(rows, Sized) and isinstance(rows, Iterable)):
        return False
    iterator: object = iter(rows)
    return iterator is not rows
