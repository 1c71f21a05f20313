"""One rate limiter per API key in a process, so concurrent jobs on one key share its rate."""

from __future__ import annotations

import threading

from ...services.rate import Rate
from .limiter import RateLimiter
from .store_url import open_window_store

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
        store: where the window is kept: ``None`` or ``"memory"`` for this process, or
            ``"sqlite:///path/limits.sqlite"`` to share it with every process of the host
            (see :func:`~dagster_runwf.engine.ratelimit.store_url.open_window_store`).
    """
    store_url = store or "memory"
    with _registry_lock:
        limiter = _registry.get((scope, key_id, store_url))
        if limiter is None:
            bucket = f"{scope} {key_id}"
            limiter = RateLimiter(rate, explicit=explicit, store=open_window_store(store, bucket))
            _registry[(scope, key_id, store_url)] = limiter
        elif explicit:
            limiter.tighten(rate)
        return limiter
