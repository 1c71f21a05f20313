"""Claims in a SQLite file, shared by every process of one host.

For a journal on a local disk the file lives in the journal's folder, so every process that
writes the journal finds it with no configuration. Each call is one ``BEGIN IMMEDIATE``
transaction, so processes take turns. Needs a local file system (SQLite's locks do not work
over NFS) and one wall clock for every process of the host.
"""

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
from .store import Claim, Spending

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runwf_claims (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT,
    expires REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runwf_claims_by_holder ON runwf_claims (scope, holder);
CREATE TABLE IF NOT EXISTS runwf_job_spent (
    scope TEXT NOT NULL,
    what TEXT NOT NULL,
    amount REAL NOT NULL,
    PRIMARY KEY (scope, what)
) WITHOUT ROWID;
"""

FORGET_ANSWERED_S = 7 * 24 * 3600.0
"""Answered claims older than this are deleted when a store opens (the journal has them)."""


class SqliteClaimStore:
    """Claims in a SQLite file (see the module docstring).

    A row's claim is a line holding its holder and when the claim expires; an answered
    row's line keeps no holder (``NULL``) and, as ``expires``, when it was answered.

    Args:
        path: the SQLite file (created with its folder if missing).
        clock: wall-clock seconds; every process of the host must use the same clock.

    Raises:
        ConfigError: the file cannot be opened.
    """

    shared = True

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.where = str(self.path)
        self.clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._transaction() as db:
                db.execute(
                    "DELETE FROM runwf_claims WHERE holder IS NULL AND expires < ?",
                    (self.clock() - FORGET_ANSWERED_S,),
                )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"claim store {str(self.path)!r} cannot be opened: {exc}; give a writable "
                "path on a local disk"
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child opens its own.
        if self._connection is None or self._pid != os.getpid():
            connection = open_shared(
                self.path, timeout_s=30.0, synchronous="NORMAL", schema=_SCHEMA
            )
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def claim(self, scope: str, key: str, holder: str, ttl_s: float) -> Claim:
        with self._transaction() as db:
            now = self.clock()
            row = db.execute(
                "SELECT holder, expires FROM runwf_claims WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()
            if row is not None and row[0] is not None and row[0] != holder and row[1] > now:
                return Claim(False, holder=row[0])
            db.execute(
                "INSERT OR REPLACE INTO runwf_claims VALUES (?, ?, ?, ?)",
                (scope, key, holder, now + ttl_s),
            )
            return Claim(True, seen_before=row is not None and row[0] != holder)

    def renew(self, scope: str, holder: str, ttl_s: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runwf_claims SET expires = ? WHERE scope = ? AND holder = ?",
                (self.clock() + ttl_s, scope, holder),
            )

    def release(self, scope: str, holder: str, keys: list[str]) -> None:
        if not keys:
            return
        with self._transaction() as db:
            now = self.clock()
            db.executemany(
                "UPDATE runwf_claims SET holder = NULL, expires = ? "
                "WHERE scope = ? AND key = ? AND holder = ?",
                [(now, scope, key, holder) for key in keys],
            )

    def holder(self, scope: str, key: str) -> str | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT holder FROM runwf_claims WHERE scope = ? AND key = ? AND expires > ?",
                (scope, key, self.clock()),
            ).fetchone()
            return None if row is None else row[0]

    def add_spent(
        self, scope: str, what: Spending, amount: float, *, at_least: float, limit: float | None
    ) -> tuple[bool, float]:
        with self._transaction() as db:
            row = db.execute(
                "SELECT amount FROM runwf_job_spent WHERE scope = ? AND what = ?", (scope, what)
            ).fetchone()
            counted = max(at_least, 0.0 if row is None else float(row[0]))
            if limit is not None and amount >= 0 and counted + max(amount, 1e-9) > limit:
                return False, counted
            counted = max(counted + amount, 0.0)
            db.execute(
                "INSERT OR REPLACE INTO runwf_job_spent VALUES (?, ?, ?)", (scope, what, counted)
            )
            return True, counted

    def close(self) -> None:
        """Close this process's connection (the file stays for others)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None
