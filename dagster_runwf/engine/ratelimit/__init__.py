"""Per-key rate limiting that matches the services' sliding windows, in one process or
shared by many through a window store.

- :mod:`.store`: what a window store is (the protocols every store implements);
- :mod:`.memory_store`: :class:`MemoryWindowStore` (the default), a list under a thread lock,
  shared by every thread and event loop of one process;
- :mod:`.sqlite_store`: :class:`SqliteWindowStore`, a SQLite file shared by every process of
  one host — chunk steps under Dagster's multiprocess executor, or the runs of a backfill.
  Start times are wall-clock seconds, the one clock they agree on;
- :mod:`.redis_store`: :class:`RedisWindowStore`, a Redis server shared by every process of
  every host that reaches it (Dagster's k8s, celery or dask executors). Start times are on
  the Redis server's clock;
- :mod:`.store_url`: :func:`open_window_store`, the store a ``rate_limit_store`` URL names;
- :mod:`.limiter`: :class:`RateLimiter`, which decides when a request may start;
- :mod:`.registry`: :func:`shared_limiter`, one limiter per key in a process.

Each module imports only modules listed before it.
"""

from .limiter import RateLimiter
from .memory_store import MemoryWindowStore
from .redis_store import RedisWindowStore
from .registry import shared_limiter
from .sqlite_store import SqliteWindowStore
from .store import PrunableView, PruneSchedule, WindowStore, WindowView
from .store_url import REDIS_SCHEMES, SQLITE_SCHEME, open_window_store

__all__ = [
    "REDIS_SCHEMES",
    "SQLITE_SCHEME",
    "MemoryWindowStore",
    "PrunableView",
    "PruneSchedule",
    "RateLimiter",
    "RedisWindowStore",
    "SqliteWindowStore",
    "WindowStore",
    "WindowView",
    "open_window_store",
    "shared_limiter",
]
