"""One rate limiter per API key in a process, so concurrent jobs on one key share its rate."""

from __future__ import annotations

import logging
import threading

from ... import wording
from ...errors import ConfigError
from ...services.rate import Rate
from .fallback_store import FallbackWindowStore
from .limiter import RateLimiter
from .memory_store import MemoryWindowStore
from .redis_store import RedisWindowStore
from .sqlite_store import SqliteWindowStore
from .store import WindowStore
from .store_url import AUTO, open_window_store, resolve_store_url

logger = logging.getLogger(__name__)

_registry: dict[tuple[str, str, str], RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(
    key_id: str, scope: str, rate: Rate, *, explicit: bool, store: str | None = None
) -> RateLimiter:
    """The limiter of one API key shared by this process, so concurrent jobs share its rate.

    Args:
        key_id: a fingerprint of the API key (never the key itself).
        scope: the service and base URL the key belongs to.
        rate: the rate this caller wants; a stricter explicit rate tightens a shared limiter.
        explicit: the caller chose ``rate`` rather than taking the service's default.
        store: where the window is kept: ``None`` or ``"memory"`` for this process,
            ``"auto"`` for a SQLite file in the user's cache folder, or a
            ``"sqlite:///path/limits.sqlite"`` / ``"redis://host:6379/0"`` URL (see
            :func:`~dagster_runwf.engine.ratelimit.store_url.open_window_store`). A shared
            store is used through a
            :class:`~dagster_runwf.engine.ratelimit.fallback_store.FallbackWindowStore`, so
            the run goes on while it is unavailable.
    """
    store_url = resolve_store_url(store)
    with _registry_lock:
        limiter = _registry.get((scope, key_id, store_url))
        if limiter is None:
            window = _open(store, store_url, f"{scope} {key_id}", rate)
            limiter = RateLimiter(rate, explicit=explicit, store=window)
            _registry[(scope, key_id, store_url)] = limiter
        elif explicit:
            limiter.tighten(rate)
        return limiter


def _open(setting: str | None, url: str, bucket: str, rate: Rate) -> WindowStore:
    """The store of ``url``; with ``"auto"``, this process only if its file cannot be used
    (a read-only home, say): the default must never stop a run."""
    try:
        store = open_window_store(url, bucket)
    except ConfigError as exc:
        if setting != AUTO:
            raise
        logger.warning(
            f"{exc}; the key's rate is kept by this process only (set "
            f"{wording.setting('rate_limit_store')} to share it)"
        )
        return MemoryWindowStore()
    if isinstance(store, SqliteWindowStore | RedisWindowStore):
        return FallbackWindowStore(store, window_s=rate.window_s)
    return store
