"""Answers for rows identical to another: a row whose request body was already sent (or is
being sent) by this call, or is in the journal, is answered without paying again.

Rows are identical when their input hashes (service, workflow, request body) are. Where the
answer comes from, in order: a bounded cache of this call's recent answers; the rows this
call finished that the journal has not recorded yet; a request of this call still in flight
(the row waits for it and shares its answer); the journal; another writer of the job paying
for the row right now (with claims, :mod:`..claims`: the row waits for its answer to reach
the journal). Only a row found in none of them is sent, under its claim, released once the
journal holds the row.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from ..claims import RowClaims
from ..results import Journal, RowResult


class Answers:
    """The answers this fan-out can give without a request (see the module docstring).

    Args:
        journal: where earlier calls' answers are looked up, if anywhere.
        cache_size: recent answers kept for identical rows later in the call (most recent
            first), so memory stays flat; ``0`` keeps none (in-flight sharing and the
            journal still answer duplicates).
        claims: the job's row claims, shared with its other writers; ``None``: none.
    """

    def __init__(
        self, journal: Journal | None, cache_size: int, claims: RowClaims | None = None
    ) -> None:
        self._journal = journal
        self._claims = claims
        self._releasing: set[asyncio.Task[None]] = set()
        self._cache_size = cache_size
        self._cache: OrderedDict[str, RowResult] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[RowResult | None]] = {}
        # Finished rows not yet in the journal, by input hash, so duplicates still match.
        self._awaiting_journal: dict[str, RowResult] = {}

    async def answer(
        self, index: int, key: str, send: Callable[[], Awaitable[RowResult | None]]
    ) -> RowResult | None:
        """Row ``index``'s result: an earlier answer for ``key`` if there is one, else what
        ``send()`` gets (shared with identical rows meanwhile); ``None`` when it stopped."""
        known = self._cache.get(key) or self._awaiting_journal.get(key)
        if known is not None:
            return known.for_row(index, "duplicate")
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            shared = await in_flight
            return None if shared is None else shared.for_row(index, "duplicate")
        if self._journal is not None:
            earlier = self._journal.lookup(key)
            if earlier is not None:
                reused = earlier.for_row(index, "journal")
                self._remember(key, reused)
                return reused
        future: asyncio.Future[RowResult | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        result: RowResult | None = None
        try:
            result = await self._claimed_send(index, key, send)
        finally:
            del self._in_flight[key]
            future.set_result(result)
        if result is not None and not result.retryable:
            self._remember(key, result)
        return result

    async def _claimed_send(
        self, index: int, key: str, send: Callable[[], Awaitable[RowResult | None]]
    ) -> RowResult | None:
        """``send()`` under the row's claim; another writer's answer if it had the row."""
        claims = self._claims
        if claims is None:
            return await send()
        answered = await claims.claim(key)
        if answered is not None:
            return answered.for_row(index, "journal")
        if not claims.holds(key):
            return None  # the fan-out stopped while the row waited for another writer
        result: RowResult | None = None
        try:
            result = await send()
        finally:
            if result is None or result.source != "run" or result.retryable:
                await claims.release([key])  # not journaled: free for another writer now
        return result

    async def close(self) -> None:
        """Release the claims still held (rows not journaled: the fan-out stopped)."""
        if self._claims is None:
            return
        await asyncio.gather(*self._releasing, return_exceptions=True)
        await self._claims.close()

    def awaiting_journal(self, result: RowResult) -> None:
        """``result`` is handed to the journal: answer its duplicates until it is recorded."""
        if result.input_hash is not None:
            self._awaiting_journal[result.input_hash] = result

    def journaled(self, results: Iterable[RowResult]) -> None:
        """``results`` are recorded: the journal answers their duplicates from now on."""
        keys = [result.input_hash for result in results if result.input_hash is not None]
        for key in keys:
            self._awaiting_journal.pop(key, None)
        if self._claims is not None and keys:
            # Journaled: other writers of the job find these rows now; free their claims.
            task = asyncio.get_running_loop().create_task(self._claims.release(keys))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    def _remember(self, key: str, result: RowResult) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
