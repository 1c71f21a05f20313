"""A rate limiter's window on a Redis server, shared by every process on every host that
reaches it — the steps of Dagster's k8s, celery or dask executors.

A decision holds a per-key Redis lock (``SET NX PX``, released by a script that checks the
owner, from the ``redis`` package) for the few round trips it takes, so processes on
different hosts take turns and never reserve the same slot; a process that dies holding the
lock loses it after ``lock_timeout_s``. Start times are sorted-set scores on the Redis
server's clock: each process measures its offset from ``TIME`` when it connects, so hosts
whose clocks disagree still agree on the window.

Keys (``runwf:{bucket}:…``, where the bucket is a fingerprint of the API key and the
service, never the key) expire an hour after their last use.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import ConfigError
from .store import NEVER, PruneSchedule, WindowView

_EXPIRE_S = 3600
_SOCKET_TIMEOUT_S = 2.0


class RedisWindowStore:
    """A key's window on a Redis server.

    Args:
        url: the server, e.g. ``"redis://limits.internal:6379/0"`` (``rediss://`` for TLS);
            a password goes in the URL or the server's ACL, like any Redis client's.
        bucket: which key's window this is.
        lock_timeout_s: how long a decision may hold the lock before Redis frees it.
        clock: a clock to use instead of the server's (for tests).
    """

    shared = True
    share = 1.0

    def __init__(
        self,
        url: str,
        bucket: str,
        *,
        lock_timeout_s: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ConfigError(
                "a Redis rate-limit store needs the redis package: "
                "pip install 'dagster-runwf[redis]'"
            ) from exc
        self._redis = redis
        self._prefix = f"runwf:{{{bucket}}}"  # one hash slot per bucket on a cluster
        self._lock_timeout_s = lock_timeout_s
        self._thread_lock = threading.Lock()
        self._prune = PruneSchedule()
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, TimeoutError, OSError)
        """What this store raises when it cannot be used (the server is down or stalled)."""
        self.where = url.rsplit("@", 1)[-1]
        """The server, without the password a URL may hold."""
        self.name = f"Redis at {self.where!r}"
        """The store as messages name it."""
        try:
            # A decision takes a few round trips of a millisecond: a server that does not
            # answer in 2 s (killed, paused, cut off) is unavailable, and the limiter goes
            # on without it rather than waiting out redis-py's default retries.
            self._client: Any = redis.Redis.from_url(
                url,
                socket_timeout=_SOCKET_TIMEOUT_S,
                socket_connect_timeout=_SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1),
            )
            self._offset = self._measure_offset()
            self.clock: Callable[[], float] = clock or self._server_clock
        except (redis.RedisError, ValueError) as exc:
            # The URL may carry a password: name only the host part.
            raise ConfigError(
                f"rate-limit store redis at {self.where!r} cannot be reached: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def _measure_offset(self) -> float:
        """The server clock minus ours, taken at the middle of the fastest of a few asks."""
        best: tuple[float, float] | None = None
        for _ in range(3):
            before = time.time()
            seconds, micros = self._client.time()
            after = time.time()
            if best is None or after - before < best[0]:
                best = (after - before, seconds + micros / 1e6 - (before + after) / 2)
        assert best is not None
        return best[1]

    def _server_clock(self) -> float:
        """Seconds on the Redis server's clock."""
        return time.time() + self._offset

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WindowView]:
        # Poll briefly: a decision holds the lock for a few round trips only.
        lock = self._client.lock(
            f"{self._prefix}:lock",
            timeout=self._lock_timeout_s,
            sleep=0.002,
            blocking_timeout=2 * self._lock_timeout_s,
        )
        with self._thread_lock:
            if not lock.acquire():
                raise TimeoutError(
                    f"the Redis rate-limit lock was not free within {2 * self._lock_timeout_s:g} s"
                )
            try:
                view = _RedisView(self._client, self._prefix)
                yield view
                self._prune.after(view)
            finally:
                with contextlib.suppress(self._redis.exceptions.LockError):
                    lock.release()

    def close(self) -> None:
        """Close this process's connections."""
        self._client.close()


class _RedisView:
    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._starts = f"{prefix}:starts"
        self._state = f"{prefix}:state"
        self.appended = 0
        blocked, forgotten = client.hmget(self._state, "blocked_until", "forgotten_before")
        self.blocked_until = 0.0 if blocked is None else float(blocked)
        self.forgotten_before = NEVER if forgotten is None else float(forgotten)

    def block_until(self, until: float) -> None:
        if until > self.blocked_until:
            self.blocked_until = until
            self._set_state("blocked_until", until)

    def latest(self, n: int) -> float | None:
        found = self._client.zrevrangebyscore(
            self._starts, "+inf", _score(self.forgotten_before), start=n - 1, num=1,
            withscores=True,
        )  # fmt: skip
        return float(found[0][1]) if found else None

    def count_between(self, since: float, until: float) -> int:
        return int(self._client.zcount(self._starts, f"({_score(since)}", _score(until)))

    def append(self, start: float) -> None:
        # Members must be unique; the score is the start time.
        self._client.zadd(self._starts, {uuid.uuid4().hex: start})
        self._client.expire(self._starts, _EXPIRE_S)
        self.appended += 1

    def remove(self, start: float) -> None:
        found = self._client.zrangebyscore(self._starts, start, start, start=0, num=1)
        if found:
            self._client.zrem(self._starts, found[0])

    def forget_before(self, horizon: float) -> None:
        if horizon > self.forgotten_before:
            self.forgotten_before = horizon
            self._set_state("forgotten_before", horizon)

    def delete_forgotten(self) -> None:
        self._client.zremrangebyscore(self._starts, "-inf", f"({_score(self.forgotten_before)}")

    def _set_state(self, field: str, value: float) -> None:
        self._client.hset(self._state, field, repr(value))
        self._client.expire(self._state, _EXPIRE_S)


def _score(value: float) -> str:
    if value == NEVER:
        return "-inf"
    return repr(value)
