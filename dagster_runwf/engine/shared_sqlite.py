"""Opening a SQLite file that several processes open at once (the rate-limit store, the
claim store).

Switching a database to WAL takes a lock that SQLite's busy timeout does not always wait
for: two processes opening a new file together could get ``database is locked`` at once.
:func:`open_shared` retries the opening until ``timeout_s`` has passed.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def open_shared(
    path: str | Path, *, timeout_s: float, synchronous: str, schema: str
) -> sqlite3.Connection:
    """A connection in autocommit mode, the file in WAL mode with ``schema`` created.

    Raises:
        sqlite3.OperationalError: the file could not be opened within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        connection = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={synchronous}")
            connection.executescript(schema)
            return connection
        except sqlite3.OperationalError as exc:
            connection.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
