"""A per-key rate limiter that matches the services' sliding windows exactly.

The services count requests per key in a sliding window (AI Tutor: 1 s; Runchat: 1 min). The
limiter keeps the start times of the last ``limit`` requests and lets a new one start only
once the oldest of them has left the window (plus a small safety margin for network jitter),
so among the limiters sharing a window store the key's rate is never exceeded while the
window is used to the full.

Start times are *reserved* in one transaction of the limiter's window store rather than
awaited under an asyncio lock, so one limiter can serve several event loops and threads of a
process, and limiters of several processes can share one key through a shared store (see
:mod:`~dagster_runwf.engine.ratelimit`); the caller sleeps until its reserved time.
Besides its own requests the limiter learns from the services:

- ``x-ratelimit-limit`` sets the limit (never above a rate the user set explicitly);
- ``x-ratelimit-remaining: 0`` while this process has not used the window up means someone
  else shares the key: new starts pause until the window has passed;
- a 429 pauses new starts for ``Retry-After`` or, without it, an exponential share of the
  window, and a success resets that backoff.

While a shared store is unavailable its
:class:`~dagster_runwf.engine.ratelimit.fallback_store.FallbackWindowStore` keeps the window
in the process: a decision that met the failure is taken again there, with the limit cut to
the store's ``share`` of the key's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ...services.http import RateLimitInfo
from ...services.rate import Rate
from .fallback_store import StoreUnavailable
from .memory_store import MemoryWindowStore
from .store import WindowStore, WindowView

_T = TypeVar("_T")

_RESPONSE_HORIZON_S = 360.0
"""How long start times are kept after their window: a response (which may come 300 s after
its request started) is judged against the window it was sent in."""


class RateLimiter:
    """Sliding-window log limiter for one API key.

    Args:
        rate: the allowed rate.
        explicit: the user chose ``rate``; a larger ``x-ratelimit-limit`` does not raise it.
        margin_s: extra spacing added to the window for network jitter; by default 1% of the
            window plus 5 ms, or with a shared store 2% plus 30 ms (other processes' requests
            meet more scheduling jitter between their slot and the wire).
        clock: a monotonic clock in seconds (injectable for tests); ignored with ``store``.
        store: where the window is kept; by default in this process only. A
            :class:`~dagster_runwf.engine.ratelimit.sqlite_store.SqliteWindowStore` shares it with
            every process of the host.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        explicit: bool = False,
        margin_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: WindowStore | None = None,
    ) -> None:
        self._configured = rate
        self._explicit = explicit
        self.window_s = rate.window_s
        self.store: WindowStore = store if store is not None else MemoryWindowStore(clock)
        if margin_s is None:
            shared = self.store.shared
            margin_s = rate.window_s * (0.02 if shared else 0.01) + (0.03 if shared else 0.005)
        self.margin_s = margin_s
        self._lock = threading.Lock()
        self._limit = rate.requests
        self._backoff_level = 0

    @property
    def clock(self) -> Callable[[], float]:
        """The clock reserved start times are on (sleep until them on this clock)."""
        return self.store.clock

    @property
    def limit(self) -> int:
        """Requests allowed per window now (configured, or learned from the service)."""
        return self._limit

    @property
    def rate(self) -> Rate:
        """The rate kept now: the limit per window (configured, or learned from the
        service), cut to this process's share while a shared store is unavailable."""
        return Rate(self._limit_now(), self.window_s)

    @property
    def own_share(self) -> float:
        """This process's part of the key's recent requests: 1 unless other processes use
        the key through a shared store (see ``FallbackWindowStore.own_share``)."""
        share = getattr(self.store, "own_share", 1.0)
        return share if isinstance(share, float) else 1.0

    @property
    def blocked_until(self) -> float:
        """Clock time before which no request may start (after a 429 or a full window)."""
        return self._decide(lambda window: window.blocked_until)

    def _decide(self, decision: Callable[[WindowView], _T]) -> _T:
        """``decision`` in one transaction of the store; taken again if the store failed
        during it (the store then keeps the window in this process)."""
        try:
            with self.store.transaction() as window:
                return decision(window)
        except StoreUnavailable:
            with self.store.transaction() as window:
                return decision(window)

    def _limit_now(self) -> int:
        """The limit to keep (in a transaction, or to report): this process's share of the
        key's."""
        share = self.store.share
        return self._limit if share >= 1.0 else max(1, int(self._limit * share))

    def tighten(self, rate: Rate) -> None:
        """Adopt ``rate`` as an explicit limit if it is stricter than the current one."""
        with self._lock:
            if rate.per_second < self.limit / self.window_s:
                self._configured = rate
                self._explicit = True
                self.window_s = rate.window_s
                self._limit = rate.requests

    def reserve(self, setup_s: float = 0.0) -> tuple[float, bool]:
        """Reserve the earliest allowed start time for one request.

        Args:
            setup_s: how much later than its start the request may reach the service, e.g.
                the first request of a new client, which opens its connection first (give
                :meth:`confirm` the same). The server counts it somewhere in that span, so
                it holds two places of the window meanwhile: at its start and at its end.

        Returns:
            ``(time, True)``: the slot is reserved; sleep until ``time``, then
            :meth:`confirm` it. ``(time, False)``: the
            next free slot is more than a window away, so nothing is reserved (a limit
            learned meanwhile may free an earlier one); call again at ``time``.
        """
        return self._decide(lambda window: self._reserve(window, setup_s))

    def _reserve(self, window: WindowView, setup_s: float) -> tuple[float, bool]:
        limit, window_s, margin_s = self._limit_now(), self.window_s, self.margin_s
        now = self.store.clock()
        window.forget_before(now - window_s - margin_s - _RESPONSE_HORIZON_S)
        start = max(now, window.blocked_until)
        latest = window.latest(1)
        if latest is not None:
            # Spread each window's requests over at least half of it: a burst of new
            # connections would arrive in a different order and density than it was sent.
            start = max(start, latest + window_s / limit / 2)
        oldest_counted = window.latest(limit)
        if oldest_counted is not None:
            start = max(start, oldest_counted + window_s + margin_s)
        if setup_s > 0 and limit > 1:
            # Room for the second place too, in the window ending setup_s later.
            second = window.latest(limit - 1)
            if second is not None:
                start = max(start, second + window_s + margin_s - setup_s)
        if start > now + window_s:
            return start - window_s, False
        window.append(start)
        if setup_s > 0:
            window.append(start + setup_s)
        return start, True

    def confirm(self, start: float, setup_s: float = 0.0) -> float | None:
        """Just before sending on a slot reserved for ``start``: the start time to report to
        :meth:`observe`, or ``None`` if the slot is lost (reserve again).

        A slot is lost when a 429 has blocked new starts past it meanwhile, or when the
        request is late — its process was starved of CPU, say — and moving it to its real
        start time would put one request too many in a window: slots reserved after it
        were spaced from the time it was meant to start, not the time it really does.
        ``setup_s`` is the one the slot was reserved with.
        """
        return self._decide(lambda window: self._confirm(window, start, setup_s))

    def _confirm(self, window: WindowView, start: float, setup_s: float) -> float | None:
        limit, span = self._limit_now(), self.window_s + self.margin_s

        def give_up(at: float) -> None:
            window.remove(at)
            if setup_s > 0:
                window.remove(at + setup_s)

        if window.blocked_until > start:
            give_up(start)
            return None
        now = self.store.clock()
        if now - start <= self.margin_s:
            # On time; but a late request moved into this window may have filled it.
            if window.count_between(start - span, start) <= limit:
                return start
            give_up(start)
            return None
        give_up(start)
        if window.count_between(now - span, now) >= limit:
            return None
        if setup_s > 0:
            arrives = now + setup_s
            if window.count_between(arrives - span, arrives) >= max(limit - 1, 1):
                return None
            window.append(now + setup_s)
        window.append(now)
        return now

    def observe(self, info: RateLimitInfo | None, started_at: float) -> None:
        """Learn from a response's rate-limit headers; ``started_at`` is its reserved start."""
        if info is None:
            return
        with self._lock:
            if info.limit is not None and info.limit >= 1 and info.limit != self._limit:
                wanted = info.limit
                if self._explicit:
                    wanted = min(wanted, self._configured.requests)
                self._limit = wanted
        if info.remaining != 0:
            return
        # The starts the server may have counted in that window: those before it (widened by
        # the jitter margin), and those reserved just after it that overtook it on the way
        # (event-loop lag). Fewer than the limit means a client outside this store shares
        # the key and filled the window.
        since = started_at - self.window_s - 2 * self.margin_s
        until = started_at + max(4 * self.margin_s, 0.1 * self.window_s)
        limit, block_until = self._limit, started_at + self.window_s + self.margin_s

        def judge(window: WindowView) -> None:
            if since < window.forgotten_before:
                return  # that window is older than the history kept: no judgement
            if window.count_between(since, until) < limit:
                window.block_until(block_until)

        self._decide(judge)

    def on_rate_limited(self, retry_after: float | None) -> float:
        """A 429 arrived: pause new starts; returns the pause in seconds."""
        with self._lock:
            if retry_after is not None:
                pause = retry_after
            else:
                pause = min(self.window_s, self.window_s / self._limit * 2**self._backoff_level)
                self._backoff_level += 1
        self._decide(lambda window: window.block_until(self.store.clock() + pause))
        return pause

    def on_success(self) -> None:
        """A request succeeded: the 429 backoff starts again from its first step."""
        self._backoff_level = 0
