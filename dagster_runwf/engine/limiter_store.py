"""Where a rate limiter keeps its window: in this process, or in a store shared by processes.

A :class:`~dagster_runwf.engine.limiter.RateLimiter` decides *when* a request may start; the
store holds what that decision is made from — the reserved start times of the key's recent
requests and the time before which nothing may start (after a 429). Every decision runs in
one :meth:`WindowStore.transaction`, so two limiters on one store never hand out the same
slot:

- :class:`MemoryWindowStore` (the default): a list under a thread lock, shared by every
  thread and event loop of one process.
- :class:`~dagster_runwf.engine.limiter_sqlite.SqliteWindowStore`: a SQLite file, shared
  by every process of one host — chunk steps under Dagster's multiprocess executor, or the
  runs of a backfill. Start times are wall-clock seconds, the one clock they agree on.
- :class:`~dagster_runwf.engine.limiter_redis.RedisWindowStore`: a Redis server, shared by
  every process of every host that reaches it (Dagster's k8s, celery or dask executors).
  Start times are on the Redis server's clock.

:func:`open_window_store` picks one from a URL.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from ..errors import ConfigError

_NEVER = float("-inf")


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
    """Holds the window of one key for a :class:`RateLimiter`."""

    clock: Callable[[], float]
    """The clock start times are measured on (seconds)."""

    shared: bool
    """Other processes use the store too, so a transaction may wait for their turn."""

    def transaction(self) -> contextlib.AbstractContextManager[WindowView]:
        """Exclusive access to the window until the block ends."""
        ...


class MemoryWindowStore:
    """A key's window in this process only (threads and event loops share it)."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # Start times in order; entries before _head are forgotten and dropped in batches.
        self._starts: list[float] = []
        self._head = 0
        self.forgotten_before = _NEVER
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


SQLITE_SCHEME = "sqlite://"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_window_store(url: str | None, bucket: str) -> WindowStore:
    """The store ``url`` names, holding the window of ``bucket`` (a key's fingerprint).

    - ``None`` or ``"memory"``: this process only;
    - ``"sqlite:///absolute/path.sqlite"`` (or ``"sqlite://relative/path"``): every process
      of this host;
    - ``"redis://host:6379/0"`` (``rediss://`` for TLS, ``unix://`` for a socket): every
      process that reaches the Redis server; needs the ``redis`` extra.

    Raises:
        ConfigError: the URL names no supported store, or the store cannot be opened.
    """
    if url is None or url == "memory":
        return MemoryWindowStore()
    if url.startswith(SQLITE_SCHEME):
        from .limiter_sqlite import SqliteWindowStore

        path = url[len(SQLITE_SCHEME) :]
        if not path:
            raise ConfigError(f"rate-limit store {url!r} names no file")
        return SqliteWindowStore(path, bucket)
    if url.startswith(REDIS_SCHEMES):
        from .limiter_redis import RedisWindowStore

        return RedisWindowStore(url, bucket)
    raise ConfigError(
        f"rate-limit store {url!r} is not supported: use 'memory' (this process), "
        "'sqlite:///path/to/limits.sqlite' (every process of this host) or "
        "'redis://host:6379/0' (every host reaching that Redis server)"
    )
