"""Per-key rate limiting that matches the services' sliding windows, in one process or
shared by many through a window store.

- :mod:`.store`: what a window store is (the protocols every store implements);
- :mod:`.memory_store`: :class:`MemoryWindowStore` (``"memory"``), a list under a thread lock,
  shared by every thread and event loop of one process;
- :mod:`.sqlite_store`: :class:`SqliteWindowStore`, a SQLite file shared by every process of
  one host — chunk steps under Dagster's multiprocess executor, or the runs of a backfill.
  Start times are wall-clock seconds, the one clock they agree on;
- :mod:`.redis_store`: :class:`RedisWindowStore`, a Redis server shared by every process of
  every host that reaches it (Dagster's k8s, celery or dask executors). Start times are on
  the Redis server's clock;
- :mod:`.store_url`: :func:`open_window_store`, the store a ``rate_limit_store`` URL names
  (``"auto"``, the default: a SQLite file in the user's cache folder);
- :mod:`.fallback_store`: :class:`FallbackWindowStore`, which keeps a shared store's window
  in the process, at a conservative share of the rate, while the store is unavailable;
- :mod:`.limiter`: :class:`RateLimiter`, which decides when a request may start;
- :mod:`.registry`: :func:`shared_limiter`, one limiter per key in a process.

Each module imports only modules listed before it.
"""

from .fallback_store import FallbackWindowStore, StoreUnavailable
from .limiter import RateLimiter
from .memory_store import MemoryWindowStore
from .redis_store import RedisWindowStore
from .registry import shared_limiter
from .sqlite_store import SqliteWindowStore
from .store import PrunableView, PruneSchedule, WindowStore, WindowView
from .store_url import (
    AUTO,
    REDIS_SCHEMES,
    SQLITE_SCHEME,
    auto_store_path,
    check_store_url,
    open_window_store,
)

__all__ = [
    "AUTO",
    "REDIS_SCHEMES",
    "SQLITE_SCHEME",
    "FallbackWindowStore",
    "MemoryWindowStore",
    "PrunableView",
    "PruneSchedule",
    "RateLimiter",
    "RedisWindowStore",
    "SqliteWindowStore",
    "StoreUnavailable",
    "WindowStore",
    "WindowView",
    "auto_store_path",
    "check_store_url",
    "open_window_store",
    "shared_limiter",
]
