"""Which window store a URL names (the ``rate_limit_store`` setting)."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigError
from .memory_store import MemoryWindowStore
from .redis_store import RedisWindowStore
from .sqlite_store import SqliteWindowStore
from .store import WindowStore

SQLITE_SCHEME = "sqlite://"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AUTO = "auto"
"""The default store: a SQLite file in the user's cache folder (see :func:`auto_store_path`)."""
RATE_LIMIT_FILE = "rate-limits.sqlite"


def auto_store_path() -> Path:
    """Where ``"auto"`` keeps the windows: ``$XDG_CACHE_HOME/dagster-runwf/`` or
    ``~/.cache/dagster-runwf/`` (``%LOCALAPPDATA%`` on Windows), shared by every process of
    the user on this host. The file holds start times keyed by a fingerprint of each key and
    its service's URL, never a key."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        local = os.environ.get("LOCALAPPDATA", "") if os.name == "nt" else ""
        cache = local or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "dagster-runwf" / RATE_LIMIT_FILE


def resolve_store_url(url: str | None) -> str:
    """The URL of the store ``url`` names: ``"auto"`` becomes the SQLite file of
    :func:`auto_store_path`; ``None`` is ``"memory"``."""
    if url is None:
        return "memory"
    if url == AUTO:
        return SQLITE_SCHEME + str(auto_store_path())
    return url


def check_store_url(url: str | None) -> None:
    """Raise a :class:`ConfigError` if ``url`` names no supported store (without opening it)."""
    url = resolve_store_url(url)
    if url != "memory" and not url.startswith((SQLITE_SCHEME, *REDIS_SCHEMES)):
        raise _unsupported(url)


def open_window_store(url: str | None, bucket: str) -> WindowStore:
    """The store ``url`` names, holding the window of ``bucket`` (a key's fingerprint).

    - ``None`` or ``"memory"``: this process only;
    - ``"auto"``: a SQLite file in the user's cache folder (:func:`auto_store_path`);
    - ``"sqlite:///absolute/path.sqlite"`` (or ``"sqlite://relative/path"``): every process
      of this host;
    - ``"redis://host:6379/0"`` (``rediss://`` for TLS, ``unix://`` for a socket): every
      process that reaches the Redis server; needs the ``redis`` extra.

    Raises:
        ConfigError: the URL names no supported store, or the store cannot be opened.
    """
    url = resolve_store_url(url)
    if url == "memory":
        return MemoryWindowStore()
    if url.startswith(SQLITE_SCHEME):
        path = url[len(SQLITE_SCHEME) :]
        if not path:
            raise ConfigError(f"rate-limit store {url!r} names no file")
        return SqliteWindowStore(path, bucket)
    if url.startswith(REDIS_SCHEMES):
        return RedisWindowStore(url, bucket)
    raise _unsupported(url)


def _unsupported(url: str) -> ConfigError:
    return ConfigError(
        f"rate-limit store {url!r} is not supported: use 'auto' (every process of this "
        "host, in the user's cache folder), 'memory' (this process), "
        "'sqlite:///path/to/limits.sqlite' (every process of this host) or "
        "'redis://host:6379/0' (every host reaching that Redis server)"
    )
