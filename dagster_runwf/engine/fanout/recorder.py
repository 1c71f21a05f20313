"""The journal's group commit: finished rows are written in batches by one task and
reported only once written.

The recorder writes as soon as it is idle: the first finished row starts a write at once,
and the rows that finish during that write make the next batch, so a batch holds only what
arrived during the previous write. A local journal (``flush_interval_s`` 0) also holds each
worker until its row is written before it takes the next row, so rows paid for but not yet
journaled are never more than the concurrency: a crash, even ``kill -9``, pays again for at
most the rows in flight. A journal in object storage, where a write costs a round trip and
every file is a request, keeps a least interval between writes (2 s by default); there the
workers hand rows over and go on, and a crash may also lose the rows answered within the
last interval. A journal slower than the fan-out pauses the workers (back-pressure) instead
of filling memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...errors import JournalError
from ..results import Journal, RowResult
from .answers import Answers
from .stopping import StopSignal

MAX_UNRECORDED = 10_000
"""Finished rows waiting for the journal before workers pause."""


class JournalRecorder:
    """Records the rows a fan-out finished by a request in its journal, in batches (a
    recorder without a journal records nothing and reports nothing)."""

    def __init__(self, journal: Journal | None, answers: Answers, stop: StopSignal) -> None:
        self._journal = journal
        self._answers = answers
        self._stop = stop
        self._unrecorded: list[RowResult] = []
        self._gathering: asyncio.Future[None] | None = None  # done once that batch is written
        self._wake = asyncio.Event()
        self._workers_done = False
        self._wait_for_write = journal is not None and journal.flush_interval_s <= 0

    def needs_record(self, result: RowResult) -> bool:
        """Rows finished by a request of this call, except those a later run should retry."""
        return self._journal is not None and result.source == "run" and not result.retryable

    async def submit(self, result: RowResult) -> None:
        """Hand ``result`` over to be recorded, then reported; with a journal that commits
        when idle, return only once it is written."""
        self._unrecorded.append(result)
        self._answers.awaiting_journal(result)
        self._wake.set()
        if self._wait_for_write:
            if self._gathering is None:
                self._gathering = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._gathering)
            return
        # Back-pressure: a journal slower than the fan-out must not fill memory.
        while len(self._unrecorded) > MAX_UNRECORDED and self._stop.crash is None:
            await asyncio.sleep(0.01)

    def workers_done(self) -> None:
        """No row will be submitted any more: record what is left, then return from
        :meth:`run`."""
        self._workers_done = True
        self._wake.set()

    async def run(self, out: asyncio.Queue[Any]) -> None:
        """Write submitted rows in batches, then put them on ``out`` (group commit)."""
        journal = self._journal
        assert journal is not None or not self._unrecorded
        last_write = -float("inf")
        while True:
            await self._wake.wait()
            self._wake.clear()
            if journal is not None and self._unrecorded:
                pause = last_write + journal.flush_interval_s - time.monotonic()
                if pause > 0 and not self._workers_done:
                    await asyncio.sleep(pause)
                last_write = time.monotonic()
                batch = await self._write(journal)
                # Reported even when the write failed: the rows are paid for.
                for result in batch:
                    await out.put(result)
                if self._unrecorded:
                    self._wake.set()
            if self._workers_done and not self._unrecorded:
                return

    async def _write(self, journal: Journal) -> list[RowResult]:
        """Write the rows gathered so far as one batch; the rows that finish meanwhile make
        the next one."""
        batch, self._unrecorded = self._unrecorded, []
        written, self._gathering = self._gathering, None
        try:
            await asyncio.to_thread(journal.record, batch)
        except Exception as exc:
            self._stop.crash_with(_journal_failed(journal, batch, exc))
        finally:
            if written is not None and not written.done():
                written.set_result(None)
        self._answers.journaled(batch)
        return batch

    async def record_leftovers(self) -> None:
        """The consumer stopped early: still record what was paid for."""
        if self._journal is None or not self._unrecorded:
            return
        await self._write(self._journal)


def _journal_failed(journal: Journal, batch: list[RowResult], exc: Exception) -> JournalError:
    error = JournalError(
        f"the row journal ({journal!r}) could not record {len(batch)} finished rows: "
        f"{type(exc).__name__}: {exc}. The run stopped; these rows are reported but a rerun "
        "will pay for them again. Check that the journal location is writable."
    )
    error.__cause__ = exc
    return error
