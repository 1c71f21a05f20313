"""One row's result, and the interface the row journal implements."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..services.outcome import Outcome

RowStatus = Literal["succeeded", "failed", "pending"]
"""``pending``: a row of a stopped run that did not finish, in a table landed anyway
(``land_partial``); never journaled."""
RowSource = Literal["run", "journal", "duplicate", "none"]
"""Where a row's result came from: a request sent by this call, the journal, an identical row
of this call, or nowhere (inputs rejected before any request)."""


@dataclass(frozen=True, slots=True)
class RowResult:
    """The result of one input row.

    Attributes:
        index: the row's position in the input (0-based), pairing the result with its row.
        input_hash: the hash of the row's service, workflow and request body; ``None`` when
            the inputs were rejected before a request could be built.
        status: ``"succeeded"`` or ``"failed"`` (``"pending"``: not finished when the run
            stopped, only in a partial table).
        outcome: the answer, when succeeded.
        error: what went wrong, when failed (never contains the API key).
        error_type: the error's class name, e.g. ``"RunFailedError"``.
        attempts: requests sent for this row (429s included); 0 when not sent by this call.
        latency_s: seconds from the first request to the answer; ``None`` when not sent.
        finished_at: when the row finished (UTC); for reused rows, when it first finished.
        source: where the result came from (see :data:`RowSource`).
        retryable: the row failed on a transient error whose retries ran out, so a later
            run should send it again (it is not journaled as done).
    """

    index: int
    input_hash: str | None
    status: RowStatus
    outcome: Outcome | None = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = 0
    latency_s: float | None = None
    finished_at: dt.datetime = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc)
    )
    source: RowSource = "run"
    retryable: bool = False

    @property
    def reused(self) -> bool:
        """``True`` when no request of this call was sent for this row."""
        return self.source in ("journal", "duplicate")

    @classmethod
    def pending(cls, index: int) -> RowResult:
        """The result of row ``index`` when a run stopped before it finished."""
        return cls(index=index, input_hash=None, status="pending", source="none")

    def for_row(self, index: int, source: RowSource) -> RowResult:
        """This result, handed to another row with the same inputs."""
        return dataclasses.replace(self, index=index, source=source)


class Journal(Protocol):
    """Durable storage of finished rows, keyed by input hash (see :class:`RowJournal`).

    The engine asks :meth:`lookup` before sending a row. It hands every row it finished by a
    request (succeeded, or failed with a row error) to :meth:`record`, in batches, from a
    worker thread, and reports those rows only once :meth:`record` has returned — so a
    crash, even ``kill -9``, loses at most the rows in flight: sent and not yet recorded
    (waiting for an answer, or answered within the last ``flush_interval_s``).
    """

    flush_interval_s: float
    """Least time between two :meth:`record` calls: batches rows into fewer writes."""

    def lookup(self, input_hash: str) -> RowResult | None:
        """A finished result for these inputs that may be reused, or ``None``."""

    def record(self, results: Sequence[RowResult]) -> None:
        """Store finished rows durably; return only once they are."""

    def spent(self) -> tuple[int, float]:
        """Runs paid and credits reported by earlier attempts of this job (for budgets)."""
