"""A rate limiter's window in a SQLite file, shared by every process of one host."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ...errors import ConfigError
from ..shared_sqlite import open_shared
from .store import NEVER, PruneSchedule, WindowView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runwf_starts (bucket TEXT NOT NULL, start REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runwf_starts_by_bucket ON runwf_starts (bucket, start);
CREATE TABLE IF NOT EXISTS runwf_buckets (
    bucket TEXT PRIMARY KEY,
    blocked_until REAL NOT NULL,
    forgotten_before REAL NOT NULL
);
"""


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
        timeout_s: how long a transaction waits for another process's lock before the store
            counts as unavailable (a decision holds it for well under a millisecond).
    """

    shared = True
    share = 1.0
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    """What this store raises when it cannot be used (a lock held too long, a lost file)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        bucket: str,
        clock: Callable[[], float] = time.time,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.name = f"SQLite file {str(self.path)!r}"
        """The store as messages name it."""
        self.timeout_s = timeout_s
        self.bucket = bucket
        self.clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._prune = PruneSchedule()
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
            connection = open_shared(
                self.path, timeout_s=self.timeout_s, synchronous="OFF", schema=_SCHEMA
            )
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
                self._prune.after(view)
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
            connection.execute("INSERT INTO runwf_buckets VALUES (?, ?, ?)", (bucket, 0.0, NEVER))
            row = (0.0, NEVER)
        self.blocked_until, self.forgotten_before = float(row[0]), float(row[1])

    def block_until(self, until: float) -> None:
        if until > self.blocked_until:
            self.blocked_until = until
            self._db.execute(
                "UPDATE runwf_buckets SET blocked_until = ? WHERE bucket = ?",
                (until, self._bucket),
            )

    def latest(self, n: int) -> float | None:
        row = self._db.execute(
            "SELECT start FROM runwf_starts WHERE bucket = ? AND start >= ? "
            "ORDER BY start DESC LIMIT 1 OFFSET ?",
            (self._bucket, self.forgotten_before, n - 1),
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
        if horizon > self.forgotten_before:
            self.forgotten_before = horizon
            self._db.execute(
                "UPDATE runwf_buckets SET forgotten_before = ? WHERE bucket = ?",
                (horizon, self._bucket),
            )

    def delete_forgotten(self) -> None:
        self._db.execute(
            "DELETE FROM runwf_starts WHERE bucket = ? AND start < ?",
            (self._bucket, self.forgotten_before),
        )
