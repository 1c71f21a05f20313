"""Which window store a URL names (the ``rate_limit_store`` setting)."""

from __future__ import annotations

from ...errors import ConfigError
from .memory_store import MemoryWindowStore
from .redis_store import RedisWindowStore
from .sqlite_store import SqliteWindowStore
from .store import WindowStore

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
        path = url[len(SQLITE_SCHEME) :]
        if not path:
            raise ConfigError(f"rate-limit store {url!r} names no file")
        return SqliteWindowStore(path, bucket)
    if url.startswith(REDIS_SCHEMES):
        return RedisWindowStore(url, bucket)
    raise ConfigError(
        f"rate-limit store {url!r} is not supported: use 'memory' (this process), "
        "'sqlite:///path/to/limits.sqlite' (every process of this host) or "
        "'redis://host:6379/0' (every host reaching that Redis server)"
    )
