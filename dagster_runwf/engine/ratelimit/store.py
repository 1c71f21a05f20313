"""What a rate limiter's window store is: the protocols every store implements.

A :class:`~dagster_runwf.engine.ratelimit.limiter.RateLimiter` decides *when* a request may
start; the store holds what that decision is made from — the reserved start times of the
key's recent requests and the time before which nothing may start (after a 429). Every
decision runs in one :meth:`WindowStore.transaction`, so two limiters on one store never
hand out the same slot. The stores themselves are in the sibling modules (see the
package's docstring).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

NEVER = float("-inf")
"""``forgotten_before`` of a window that has forgotten nothing yet."""


class WindowView(Protocol):
    """The window of one key, inside a transaction."""

    blocked_until: float
    """Time before which no request may start (set it with :meth:`block_until`)."""

    forgotten_before: float
    """Start times before this have been dropped: no judgement on windows before it."""

    def block_until(self, until: float) -> None:
        """Let nothing start before ``until`` (never moves the block earlier)."""

    def latest(self, n: int) -> float | None:
        """The ``n``-th most recent start time (1 = the latest), if there are that many."""

    def count_between(self, since: float, until: float) -> int:
        """Start times in ``(since, until]``."""

    def append(self, start: float) -> None:
        """Record a start time."""

    def remove(self, start: float) -> None:
        """Drop one recorded start time equal to ``start`` (a slot given up)."""

    def forget_before(self, horizon: float) -> None:
        """Drop start times before ``horizon``; they no longer constrain anything."""


class PrunableView(WindowView, Protocol):
    """A view of a store kept outside the process, whose dropped start times are deleted in
    bulk now and then rather than on every transaction."""

    appended: int
    """Start times appended in this transaction."""

    def delete_forgotten(self) -> None:
        """Delete the start times :meth:`forget_before` dropped."""


class PruneSchedule:
    """Deletes a shared store's forgotten start times once every ``every`` appends (a delete
    per request would be a wasted round trip)."""

    def __init__(self, every: int = 256) -> None:
        self.every = every
        self._appends = 0

    def after(self, view: PrunableView) -> None:
        """Call at the end of each transaction, with its view."""
        self._appends += view.appended
        if self._appends >= self.every:
            self._appends = 0
            view.delete_forgotten()


class WindowStore(Protocol):
    """Holds the window of one key for a
    :class:`~dagster_runwf.engine.ratelimit.limiter.RateLimiter`."""

    clock: Callable[[], float]
    """The clock start times are measured on (seconds)."""

    shared: bool
    """Other processes use the store too, so a transaction may wait for their turn."""

    share: float
    """The part of the key's limit this process may use now: 1 but while a shared store is
    unreachable (see :mod:`~dagster_runwf.engine.ratelimit.fallback_store`)."""

    def transaction(self) -> contextlib.AbstractContextManager[WindowView]:
        """Exclusive access to the window until the block ends."""
        ...
