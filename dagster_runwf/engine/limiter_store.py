"""Where a rate limiter keeps its window: in this process, or in a store shared by processes.

A :class:`~dagster_runwf.engine.limiter.RateLimiter` decides *when* a request may start; the
store holds what that decision is made from — the reserved start times of the key's recent
requests and the time before which nothing may start (after a 429). Every decision runs in
one :meth:`WindowStore.transaction`, so two limiters on one store never hand out the same
slot:

- :class:`MemoryWindowStore` (the default): a list under a thread lock, shared by every
  thread and event loop of one process.
- :class:`SqliteWindowStore`: a SQLite file, shared by every process of one host — chunk
  steps under Dagster's multiprocess executor, or several runs of a backfill. Start times
  are wall-clock seconds, the one clock all processes agree on.

``open_window_store("sqlite:///path/limits.sqlite", bucket)`` picks one from a URL.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from ..services.errors import ConfigError

_NEVER = float("-inf")


class WindowView(Protocol):
    """The window of one key, inside a transaction."""

    @property
    def blocked_until(self) -> float:
        """Time before which no request may start."""
        ...

    @property
    def forgotten_before(self) -> float:
        """Start times before this have been dropped: no judgement on windows before it."""
        ...

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


class WindowStore(Protocol):
    """Holds the window of one key for a :class:`RateLimiter`."""

    clock: Callable[[], float]
    """The clock start times are measured on (seconds)."""

    def transaction(self) -> contextlib.AbstractContextManager[WindowView]:
        """Exclusive access to the window until the block ends."""
        ...


class MemoryWindowStore:
    """A key's window in this process only (threads and event loops share it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # Start times in order; entries before _head are forgotten and dropped in batches.
        self._starts: list[float] = []
        self._head = 0
        self._forgotten_before = _NEVER
        self._blocked_until = 0.0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WindowView]:
        with self._lock:
            yield self

    @property
    def blocked_until(self) -> float:
        return self._blocked_until

    @property
    def forgotten_before(self) -> float:
        return self._forgotten_before

    def block_until(self, until: float) -> None:
        self._blocked_until = max(self._blocked_until, until)

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
        self._forgotten_before = max(self._forgotten_before, horizon)
        self._head = bisect.bisect_left(starts, horizon, lo=self._head)
        if self._head > 1024 and self._head * 2 > len(starts):
            del starts[: self._head]
            self._head = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runwf_starts (bucket TEXT NOT NULL, start REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runwf_starts_by_bucket ON runwf_starts (bucket, start);
CREATE TABLE IF NOT EXISTS runwf_buckets (
    bucket TEXT PRIMARY KEY,
    blocked_until REAL NOT NULL,
    forgotten_before REAL NOT NULL
);
"""

_FORGET_EVERY = 256
"""Appends between two deletions of forgotten start times (a delete per request is waste)."""


class SqliteWindowStore:
    """A key's window in a SQLite file, shared by every process of one host.

    Each decision is one ``BEGIN IMMEDIATE`` transaction (a few hundred microseconds), so
    processes take turns and never reserve the same slot. The file holds only start times
    and blocks, keyed by ``bucket`` (a fingerprint of the key and service, never the key);
    it is not synced to disk on every commit because losing it loses nothing but a few
    seconds of history. Needs a local file system: SQLite's locks do not work over NFS.

    Args:
        path: the SQLite file (created with its folder if missing).
        bucket: which key's window this is.
        clock: wall-clock seconds; every process of the host must use the same clock.
    """

    def __init__(
        self, path: str | os.PathLike[str], bucket: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.bucket = bucket
        self.clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._appends = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.transaction():
                pass
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"rate-limit store {str(self.path)!r} cannot be opened: {exc}; give a "
                "writable path on a local disk"
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child opens its own.
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.executescript(_SCHEMA)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WindowView]:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                view = _SqliteView(connection, self.bucket)
                yield view
                if view.appended:
                    self._appends += view.appended
                    if self._appends >= _FORGET_EVERY:
                        self._appends = 0
                        view.delete_forgotten()
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        """Close this process's connection (the file stays for others)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None


class _SqliteView:
    def __init__(self, connection: sqlite3.Connection, bucket: str) -> None:
        self._db = connection
        self._bucket = bucket
        self.appended = 0
        row = connection.execute(
            "SELECT blocked_until, forgotten_before FROM runwf_buckets WHERE bucket = ?",
            (bucket,),
        ).fetchone()
        if row is None:
            connection.execute("INSERT INTO runwf_buckets VALUES (?, ?, ?)", (bucket, 0.0, _NEVER))
            row = (0.0, _NEVER)
        self._blocked_until, self._forgotten_before = float(row[0]), float(row[1])

    @property
    def blocked_until(self) -> float:
        return self._blocked_until

    @property
    def forgotten_before(self) -> float:
        return self._forgotten_before

    def block_until(self, until: float) -> None:
        if until > self._blocked_until:
            self._blocked_until = until
            self._db.execute(
                "UPDATE runwf_buckets SET blocked_until = ? WHERE bucket = ?",
                (until, self._bucket),
            )

    def latest(self, n: int) -> float | None:
        row = self._db.execute(
            "SELECT start FROM runwf_starts WHERE bucket = ? AND start >= ? "
            "ORDER BY start DESC LIMIT 1 OFFSET ?",
            (self._bucket, self._forgotten_before, n - 1),
        ).fetchone()
        return None if row is None else float(row[0])

    def count_between(self, since: float, until: float) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM runwf_starts WHERE bucket = ? AND start > ? AND start <= ?",
            (self._bucket, since, until),
        ).fetchone()
        return int(row[0])

    def append(self, start: float) -> None:
        self._db.execute("INSERT INTO runwf_starts VALUES (?, ?)", (self._bucket, start))
        self.appended += 1

    def remove(self, start: float) -> None:
        self._db.execute(
            "DELETE FROM runwf_starts WHERE rowid = (SELECT rowid FROM runwf_starts "
            "WHERE bucket = ? AND start = ? LIMIT 1)",
            (self._bucket, start),
        )

    def forget_before(self, horizon: float) -> None:
        if horizon > self._forgotten_before:
            self._forgotten_before = horizon
            self._db.execute(
                "UPDATE runwf_buckets SET forgotten_before = ? WHERE bucket = ?",
                (horizon, self._bucket),
            )

    def delete_forgotten(self) -> None:
        self._db.execute(
            "DELETE FROM runwf_starts WHERE bucket = ? AND start < ?",
            (self._bucket, self._forgotten_before),
        )


SQLITE_SCHEME = "sqlite://"


def open_window_store(url: str | None, bucket: str) -> WindowStore:
    """The store a URL names: ``None``/``"memory"`` for this process only, or
    ``"sqlite:///absolute/path.sqlite"`` (or ``"sqlite://relative/path.sqlite"``) for every
    process of this host.
    """
    if url is None or url == "memory":
        return MemoryWindowStore()
    if url.startswith(SQLITE_SCHEME):
        path = url[len(SQLITE_SCHEME) :]
        if not path:
            raise ConfigError(f"rate-limit store {url!r} names no file")
        return SqliteWindowStore(path, bucket)
    raise ConfigError(
        f"rate-limit store {url!r} is not supported: use 'memory' (this process) or "
        "'sqlite:///path/to/limits.sqlite' (every process of this host)"
    )
