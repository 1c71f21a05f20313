"""Claims on a Redis server, shared by every process on every host that reaches it.

Each call is one Lua script, so it is atomic on the server; expiry times are taken from the
server's clock (``TIME``), so hosts whose clocks disagree still agree on who is alive. A
row's claim is one string, ``"<holder> <expires ms>"``, or ``"- <answered ms>"`` once
answered; a holder's claims are also listed in a set, so its heartbeat renews them all in
one call. Keys (``runwf:claims:{scope}:…``, one hash slot per job on a cluster) expire a
week after their last use.
"""

from __future__ import annotations

import threading
from typing import Any

from ...errors import ConfigError
from .store import Claim, Spending

_KEEP_MS = 7 * 24 * 3600 * 1000

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

_CLAIM = (
    _NOW
    + """
local holder, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local value = redis.call('GET', KEYS[1])
local seen = 0
if value then
    local who, expires = string.match(value, '^(%S+) (%d+)$')
    if who ~= '-' and who ~= holder and tonumber(expires) > now then
        return {0, who}
    end
    if who ~= holder then seen = 1 end
end
redis.call('SET', KEYS[1], holder .. ' ' .. (now + ttl), 'PX', keep)
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], keep)
return {1, seen}
"""
)

_RENEW = (
    _NOW
    + """
local holder, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local value = redis.call('GET', key)
    if value and string.match(value, '^(%S+) ') == holder then
        redis.call('SET', key, holder .. ' ' .. (now + ttl), 'PX', keep)
    else
        redis.call('SREM', KEYS[1], key)
    end
end
redis.call('PEXPIRE', KEYS[1], keep)
return 0
"""
)

_RELEASE = (
    _NOW
    + """
local holder, keep = ARGV[1], tonumber(ARGV[2])
for i = 2, #KEYS do
    local value = redis.call('GET', KEYS[i])
    if value and string.match(value, '^(%S+) ') == holder then
        redis.call('SET', KEYS[i], '- ' .. now, 'PX', keep)
    end
    redis.call('SREM', KEYS[1], KEYS[i])
end
return 0
"""
)

_HOLDER = (
    _NOW
    + """
local value = redis.call('GET', KEYS[1])
if not value then return false end
local who, expires = string.match(value, '^(%S+) (%d+)$')
if who == '-' or tonumber(expires) <= now then return false end
return who
"""
)

# Counts go back as text: Redis truncates a Lua number in a reply to an integer.
_ADD_SPENT = """
local amount, at_least, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local counted = math.max(at_least, tonumber(redis.call('GET', KEYS[1]) or '0'))
if limit >= 0 and amount >= 0 and counted + math.max(amount, 1e-9) > limit then
    return {0, string.format('%.17g', counted)}
end
counted = math.max(counted + amount, 0)
redis.call('SET', KEYS[1], string.format('%.17g', counted), 'PX', tonumber(ARGV[4]))
return {1, string.format('%.17g', counted)}
"""


class RedisClaimStore:
    """Claims on a Redis server (see the module docstring).

    Args:
        url: the server, e.g. ``"redis://claims.internal:6379/0"`` (``rediss://`` for TLS).

    Raises:
        ConfigError: the ``redis`` package is missing or the server cannot be reached.
    """

    shared = True

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "a Redis claim store needs the redis package: pip install 'dagster-runwf[redis]'"
            ) from exc
        self._lock = threading.Lock()
        self.where = "redis at " + url.rsplit("@", 1)[-1]  # the URL may carry a password
        try:
            self._client: Any = redis.Redis.from_url(url, socket_timeout=10.0)
            self._client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise ConfigError(
                f"claim store {self.where!r} cannot be reached: {type(exc).__name__}: {exc}"
            ) from None
        self._claim = self._client.register_script(_CLAIM)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._holder = self._client.register_script(_HOLDER)
        self._add_spent = self._client.register_script(_ADD_SPENT)

    @staticmethod
    def _prefix(scope: str) -> str:
        return f"runwf:claims:{{{scope}}}"

    def claim(self, scope: str, key: str, holder: str, ttl_s: float) -> Claim:
        prefix = self._prefix(scope)
        keys = [f"{prefix}:row:{key}", f"{prefix}:holder:{holder}"]
        won, detail = self._claim(keys=keys, args=[holder, int(ttl_s * 1000), _KEEP_MS])
        if not won:
            return Claim(False, holder=detail.decode() if isinstance(detail, bytes) else detail)
        return Claim(True, seen_before=bool(detail))

    def renew(self, scope: str, holder: str, ttl_s: float) -> None:
        key = f"{self._prefix(scope)}:holder:{holder}"
        self._renew(keys=[key], args=[holder, int(ttl_s * 1000), _KEEP_MS])

    def release(self, scope: str, holder: str, keys: list[str]) -> None:
        if not keys:
            return
        prefix = self._prefix(scope)
        rows = [f"{prefix}:row:{key}" for key in keys]
        self._release(keys=[f"{prefix}:holder:{holder}", *rows], args=[holder, _KEEP_MS])

    def holder(self, scope: str, key: str) -> str | None:
        found = self._holder(keys=[f"{self._prefix(scope)}:row:{key}"])
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)

    def add_spent(
        self, scope: str, what: Spending, amount: float, *, at_least: float, limit: float | None
    ) -> tuple[bool, float]:
        key = f"{self._prefix(scope)}:spent:{what}"
        args = [
            repr(float(amount)),
            repr(float(at_least)),
            -1 if limit is None else repr(float(limit)),
            _KEEP_MS,
        ]
        counted, total = self._add_spent(keys=[key], args=args)
        return bool(counted), float(total)

    def close(self) -> None:
        """Close this process's connections."""
        self._client.close()
