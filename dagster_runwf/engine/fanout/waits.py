"""How long the workers of a fan-out wait, and for what: the rate limiter's slots or the
service's answers. Progress compares the two to tell whether the key's rate paces the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class WaitTimer:
    """Seconds spent waiting by all workers together, waits still going on included.

    ``with timer.waiting(): await ...`` times one wait; :meth:`total` may be read at any
    time, so a wait of a minute (Runchat's window) counts in every report while it lasts.
    """

    def __init__(self) -> None:
        self._finished_s = 0.0
        self._ongoing: dict[int, float] = {}
        self._next = 0

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        token = self._next
        self._next += 1
        self._ongoing[token] = time.monotonic()
        try:
            yield
        finally:
            self._finished_s += time.monotonic() - self._ongoing.pop(token)

    def total(self, now: float | None = None) -> float:
        """Seconds waited so far, by every worker."""
        now = time.monotonic() if now is None else now
        return self._finished_s + sum(now - began for began in self._ongoing.values())


class Waits:
    """What the workers of one fan-out wait for: ``slots`` (the key's rate limiter,
    a 429's pause included) and ``answers`` (requests sent, until their answer)."""

    def __init__(self) -> None:
        self.slots = WaitTimer()
        self.answers = WaitTimer()
