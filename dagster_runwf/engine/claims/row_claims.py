"""One fan-out's claims: rows claimed before they are sent, renewed while they are paid
for, released once the journal holds them; and waiting for another writer's answer.

A row another live writer holds is not sent: the fan-out polls the journal (re-reading the
job's files other writers wrote, :meth:`ClaimedJournal.refresh`) until the answer is
there, or claims the row itself when the holder's claim expires (it stopped renewing: it
died). A row whose claim was held before (answered, or its holder died) is looked up in
the refreshed journal before it is paid for.

A store that fails mid-run (a full disk, Redis gone) stops the run with a
:class:`~dagster_runwf.errors.ClaimStoreError`: without claims two writers may pay for one
row. Only releasing is forgiven (logged): an unreleased claim lapses after its time to
live, and the next holder reads the journal before it pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from ...errors import ClaimStoreError, RunwfError
from ..results import RowResult
from .store import ClaimStore, Spending

_T = TypeVar("_T")

_log = logging.getLogger(__name__)


class ClaimedJournal(Protocol):
    """What claims need of a journal (:class:`~dagster_runwf.engine.journal.RowJournal`):
    where it is, the job's name among claims, and the job's answers, re-read on demand."""

    flush_interval_s: float

    @property
    def claim_scope(self) -> str:
        """The job's name among claims (its location, id and version, hashed)."""

    @property
    def local_folder(self) -> str | None:
        """The journal's folder on a local disk; ``None`` in object storage."""

    @property
    def location_url(self) -> str:
        """Where the journal is (for messages)."""

    def lookup(self, input_hash: str) -> RowResult | None:
        """A finished result for these inputs that may be reused, or ``None``."""

    def refresh(self) -> int:
        """Read the job's rows other writers recorded since; how many were new."""


class RowClaims:
    """The claims one fan-out holds in a job (see the module docstring).

    Args:
        open_store: opens where the job's writers keep their claims; called at the first
            claim, so a run that pays for nothing leaves no file behind.
        scope: the job (its journal location, id and version, hashed).
        journal: the job's journal, refreshed while waiting for another writer.
        ttl_s: how long a claim lasts without a heartbeat; renewed every third of it.
        stopped: ``True`` once the fan-out stops: waiting rows give up.
    """

    def __init__(
        self,
        open_store: Callable[[], ClaimStore],
        scope: str,
        journal: ClaimedJournal,
        *,
        ttl_s: float,
        stopped: Callable[[], bool],
    ) -> None:
        self._open_store = open_store
        self._store: ClaimStore | None = None
        self._store_lock = threading.Lock()
        self.scope = scope
        self.holder = uuid.uuid4().hex
        self.ttl_s = ttl_s
        self.poll_s = min(max(journal.flush_interval_s, 0.1), 2.0)
        self._journal = journal
        self._stopped = stopped
        self._held: set[str] = set()
        self._refresh_lock = asyncio.Lock()
        self._refreshed_at = -float("inf")
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def store(self) -> ClaimStore:
        """The claim store, opened on first use (blocking: call it from a thread)."""
        with self._store_lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    async def add_spent(
        self, what: Spending, amount: float, *, at_least: float, limit: float | None
    ) -> tuple[bool, float]:
        """Count what the job spent, shared by its writers (see
        :meth:`ClaimStore.add_spent`)."""
        return await self._in_store(
            lambda store: store.add_spent(self.scope, what, amount, at_least=at_least, limit=limit)
        )

    async def claim(self, key: str) -> RowResult | None:
        """Hold row ``key``'s claim (``None``), or another writer's answer for it; ``None``
        too when the fan-out stopped meanwhile (the caller sees it stopped)."""
        self._start_heartbeat()
        while not self._stopped():
            asked = time.monotonic()
            claim = await self._in_store(
                lambda store: store.claim(self.scope, key, self.holder, self.ttl_s)
            )
            if claim.won:
                self._held.add(key)
                if not claim.seen_before:
                    return None
                # The last holder journaled the row (if it did) before it released the
                # claim, so before this claim was won: only a journal read begun after now
                # is sure to see it (one begun while the claim was asked for may not).
                answered = await self._lookup_since(key, time.monotonic())
                if answered is not None:
                    await self.release([key])
                return answered
            await asyncio.sleep(self.poll_s)
            answered = await self._lookup_since(key, asked + self.poll_s)
            if answered is not None:
                return answered
        return None

    def holds(self, key: str) -> bool:
        """Whether this fan-out holds row ``key``'s claim."""
        return key in self._held

    async def release(self, keys: Iterable[str]) -> None:
        """Rows ``keys`` are journaled (or given up): other writers may have them."""
        mine = [key for key in keys if key in self._held]
        if not mine:
            return
        self._held.difference_update(mine)
        try:
            await self._in_store(lambda store: store.release(self.scope, self.holder, mine))
        except ClaimStoreError as exc:  # the claims lapse after their time to live instead
            _log.warning("%s", exc)

    async def close(self) -> None:
        """Release every claim still held, stop the heartbeat and close the store."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            await self.release(list(self._held))
        finally:
            if self._store is not None:
                try:
                    await asyncio.to_thread(self._store.close)
                except Exception as exc:  # nothing left to lose: the claims are released
                    _log.warning("could not close the claim store: %s", exc)

    async def _in_store(self, call: Callable[[ClaimStore], _T]) -> _T:
        """``call(store)`` in a thread; a failing store raises :class:`ClaimStoreError`."""
        try:
            return await asyncio.to_thread(lambda: call(self.store))
        except RunwfError:
            raise  # opening it failed: the store says why
        except Exception as exc:
            where = self._store.where if self._store is not None else "the claim store"
            raise ClaimStoreError(
                f"the row claims in {where} could not be read or written: "
                f"{type(exc).__name__}: {exc}. The run stopped so that no row is paid for "
                "twice; what was paid for is journaled. Check that the claim store is "
                "writable (a disk with free space) or reachable, then run again."
            ) from exc

    async def _lookup_since(self, key: str, since: float) -> RowResult | None:
        """``key``'s answer in the journal, re-read at ``since`` or later."""
        async with self._refresh_lock:  # waiting rows share one refresh
            if self._refreshed_at < since:
                self._refreshed_at = time.monotonic()
                await asyncio.to_thread(self._journal.refresh)
        return self._journal.lookup(key)

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            if not self._held:
                continue
            try:
                await self._in_store(lambda store: store.renew(self.scope, self.holder, self.ttl_s))
            except RunwfError as exc:  # a store briefly unreachable: try again next beat
                _log.warning("could not renew row claims: %s", exc)
