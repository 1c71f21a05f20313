"""A rate limiter's window in this process only: the default store."""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from .store import NEVER, WindowView


class MemoryWindowStore:
    """A key's window in this process only (threads and event loops share it)."""

    shared = False
    share = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # Start times in order; entries before _head are forgotten and dropped in batches.
        self._starts: list[float] = []
        self._head = 0
        self.forgotten_before = NEVER
        self.blocked_until = 0.0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WindowView]:
        with self._lock:
            yield self

    def block_until(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def latest(self, n: int) -> float | None:
        if len(self._starts) - self._head < n:
            return None
        return self._starts[-n]

    def count_between(self, since: float, until: float) -> int:
        lo = bisect.bisect_right(self._starts, since, lo=self._head)
        return bisect.bisect_right(self._starts, until, lo=lo) - lo

    def append(self, start: float) -> None:
        # Usually the latest; a late request moved to its real start time may not be.
        if self._starts and start < self._starts[-1]:
            bisect.insort(self._starts, start, lo=self._head)
        else:
            self._starts.append(start)

    def remove(self, start: float) -> None:
        i = bisect.bisect_left(self._starts, start, lo=self._head)
        if i < len(self._starts) and self._starts[i] == start:
            del self._starts[i]

    def forget_before(self, horizon: float) -> None:
        starts = self._starts
        self.forgotten_before = max(self.forgotten_before, horizon)
        self._head = bisect.bisect_left(starts, horizon, lo=self._head)
        if self._head > 1024 and self._head * 2 > len(starts):
            del starts[: self._head]
            self._head = 0
