"""Mutable per-key state of the emulator: rate windows, credits, counters, request log.

Everything here is touched only from the server's event loop, so it needs no locks, and
every operation is O(1) amortised: the emulator must not become the bottleneck of the
benchmarks that use it.

Two kinds of window are kept per (service, key):

- the *limiter* window holds the requests it admitted, as the real services' sliding
  window limiters do (a refused request does not take a slot);
- the *arrival* window holds every request that reached a rate-limited endpoint,
  refused or not, and remembers the most it ever held. That maximum is what tests use to
  prove a client never sent more than the limit within any window.

Keys are never stored in anything that leaves the process: stats and the log carry a
short fingerprint (:func:`fingerprint`) instead.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections import Counter, deque
from functools import lru_cache
from typing import Any

from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.workflow_spec import Service

UNLIMITED_BALANCE = 1_000_000_000


@lru_cache(maxsize=4096)
def fingerprint(key: str) -> str:
    """A stable, non-reversible short name for a bearer key."""
    return "key_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


class SlidingWindow:
    """Timestamps within the last ``window`` seconds (exact, not approximated)."""

    __slots__ = ("hits", "peak")

    def __init__(self) -> None:
        self.hits: deque[float] = deque()
        self.peak = 0

    def _expire(self, now: float, window: float) -> None:
        hits = self.hits
        cutoff = now - window
        while hits and hits[0] <= cutoff:
            hits.popleft()

    def try_acquire(self, now: float, window: float, limit: int) -> tuple[bool, int]:
        """Admit one request if fewer than ``limit`` were admitted in the window.

        Returns (admitted, remaining slots after this request).
        """
        self._expire(now, window)
        if len(self.hits) >= limit:
            return False, 0
        self.hits.append(now)
        return True, limit - len(self.hits)

    def record(self, now: float, window: float) -> int:
        """Count one arrival; returns how many arrived within the window, this one included."""
        self._expire(now, window)
        self.hits.append(now)
        n = len(self.hits)
        if n > self.peak:
            self.peak = n
        return n


class StreamTokens:
    """Single-use stream tokens of the AI Tutor ``/token`` call."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}

    def issue(self, token: str, key: str, ttl_s: float, now: float) -> None:
        if len(self._tokens) > 10_000:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        self._tokens[token] = (key, now + ttl_s)

    def redeem(self, token: str, now: float) -> str | None:
        """The key the token was issued to, once; ``None`` if unknown, used or expired."""
        entry = self._tokens.pop(token, None)
        if entry is None or entry[1] < now:
            return None
        return entry[0]


LogRow = tuple[
    int,  # seq
    float,  # time (epoch seconds)
    str,  # service
    str,  # endpoint
    str,  # method
    str,  # path
    str | None,  # workflow
    int | str,  # status, or "dropped" / "cancelled"
    str | None,  # key fingerprint
    str | None,  # body sha256
    bytes | None,  # raw body
    float,  # duration in seconds
]
LOG_FIELDS = (
    "seq",
    "time",
    "service",
    "endpoint",
    "method",
    "path",
    "workflow",
    "status",
    "key",
    "body_sha256",
    "body",
    "duration_ms",
)


class RequestLog:
    """The last ``limit`` requests, oldest first.

    Rows are flat tuples holding the raw body bytes; they become dicts (with the body
    decoded as JSON) only when read. Flat rows of atomic values are untracked by Python's
    garbage collector, so even a million of them do not slow the server down.
    """

    def __init__(self, limit: int) -> None:
        self.rows: deque[LogRow] = deque(maxlen=limit)
        self.total = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dropped(self) -> int:
        return self.total - len(self.rows)

    def add(self, row: LogRow) -> None:
        self.total += 1
        if self.rows.maxlen:
            self.rows.append(row)

    def resize(self, limit: int) -> None:
        if self.rows.maxlen != limit:
            self.rows = deque(self.rows, maxlen=limit)

    def entries(self, limit: int | None = None, service: str | None = None) -> list[dict[str, Any]]:
        rows: list[LogRow] = list(self.rows)
        if service:
            rows = [r for r in rows if r[2] == service]
        if limit is not None and limit >= 0:
            rows = rows[-limit:] if limit else []
        return [_row_dict(r) for r in rows]


def _row_dict(row: LogRow) -> dict[str, Any]:
    out = dict(zip(LOG_FIELDS, row, strict=True))
    raw = row[10]
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    out["body"] = body
    out["duration_ms"] = round(row[11] * 1000.0, 3)
    return out


class EmulatorState:
    """All the state the handlers share; rebuilt by :meth:`reset`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.started = time.time()
        self.reset()

    def reset(self) -> None:
        """Forget traffic, windows and spent credits; keep the configuration."""
        cfg = self.config
        self.limiters: dict[tuple[Service, str], SlidingWindow] = {}
        self.arrivals: dict[tuple[Service, str], SlidingWindow] = {}
        self.credits: dict[str, float | None] = {}
        if cfg.keys is not None:
            for key, kc in cfg.keys.items():
                self.credits[key] = kc.credits
        self.tokens = StreamTokens()
        # Instance ids come from their own generator so they never shift fault draws.
        self.id_rng = random.Random(f"instance-ids-{cfg.seed}")
        self.log = RequestLog(cfg.log_limit)
        self.total_requests = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.runs_by_workflow: Counter[str] = Counter()
        self.bodies_by_sha256: Counter[str] = Counter()
        self.runs_by_sha256: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.undefined_substitutions = 0
        self.instance_runs: list[dict[str, Any]] = []
        """Runchat runs that produced an answer, in order: the flow, the instance, whether
        the request continued it (sent its id) and the inputs (see :meth:`run_instance`)."""
        self.instance_turns: Counter[str] = Counter()
        self.credits_spent = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.reset_at = time.time()

    # -- keys and credits ---------------------------------------------------------------

    def key_known(self, key: str) -> bool:
        return self.config.keys is None or key in self.config.keys

    def rearm_credits(self, keys: list[str]) -> None:
        """Take the credits of ``keys`` (``"*"``: all) from the configuration again."""
        cfg_keys = self.config.keys
        if "*" in keys:
            self.credits = {}
        for key in list(self.credits):
            if cfg_keys is None or key not in cfg_keys:
                del self.credits[key]
        if cfg_keys is None:
            return
        for key, kc in cfg_keys.items():
            if "*" in keys or key in keys or key not in self.credits:
                self.credits[key] = kc.credits

    def balance(self, key: str) -> float | None:
        """Credits left; ``None`` means unlimited."""
        return self.credits.get(key)

    def has_credits(self, key: str) -> bool:
        left = self.credits.get(key)
        return left is None or left > 0

    def charge(self, key: str, amount: float) -> None:
        self.credits_spent += amount
        left = self.credits.get(key)
        if left is not None:
            self.credits[key] = left - amount

    # -- windows ------------------------------------------------------------------------

    def arrive(self, service: Service, key: str, now: float) -> None:
        """Record a request reaching a rate-limited endpoint."""
        slot = (service, key)
        window = self.arrivals.get(slot)
        if window is None:
            window = self.arrivals[slot] = SlidingWindow()
        window.record(now, self.config.window_s(service))

    def admit(self, service: Service, key: str, now: float) -> tuple[bool, int, int]:
        """Rate-limit check; returns (admitted, limit, remaining)."""
        cfg = self.config
        limit = cfg.rate_limit(service, key)
        slot = (service, key)
        window = self.limiters.get(slot)
        if window is None:
            window = self.limiters[slot] = SlidingWindow()
        if not cfg.rate_limit_enabled:
            return True, limit, limit
        ok, remaining = window.try_acquire(now, cfg.window_s(service), limit)
        return ok, limit, remaining

    # -- Runchat instances --------------------------------------------------------------

    def run_instance(self, flow: str, continued: str | None, inputs: Any) -> tuple[str, int]:
        """Record a Runchat run: it continued the instance ``continued`` (the id its request
        sent) or started a new one. Returns the instance and its turn (1 for a new one)."""
        instance = continued
        if instance is None:
            instance = str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4))
        self.instance_turns[instance] += 1
        turn = self.instance_turns[instance]
        self.instance_runs.append(
            {
                "flow": flow,
                "instance_id": instance,
                "continued": continued is not None,
                "turn": turn,
                "inputs": inputs,
            }
        )
        return instance, turn

    # -- log and stats ------------------------------------------------------------------

    def resize_log(self) -> None:
        self.log.resize(self.config.log_limit)

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot; see the ``/_emulator/stats`` endpoint."""
        cfg = self.config
        peaks: dict[str, dict[str, int]] = {"aitutor": {}, "runchat": {}}
        for (service, key), window in self.arrivals.items():
            peaks[service][fingerprint(key)] = window.peak
        limits: dict[str, dict[str, int]] = {"aitutor": {}, "runchat": {}}
        for service, key in self.arrivals:
            limits[service][fingerprint(key)] = cfg.rate_limit(service, key)
        credits = {
            fingerprint(k): (UNLIMITED_BALANCE if v is None else v) for k, v in self.credits.items()
        }
        return {
            "total_requests": self.total_requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "runs_by_workflow": dict(self.runs_by_workflow),
            "max_requests_in_window": peaks,
            "rate_limits": limits,
            "window_s": {"aitutor": cfg.aitutor_window_s, "runchat": cfg.runchat_window_s},
            "undefined_substitutions": self.undefined_substitutions,
            "instances_started": sum(not r["continued"] for r in self.instance_runs),
            "instances_continued": sum(r["continued"] for r in self.instance_runs),
            "bodies_by_sha256": dict(self.bodies_by_sha256),
            "runs_by_sha256": dict(self.runs_by_sha256),
            "duplicate_runs": sum(n - 1 for n in self.runs_by_sha256.values() if n > 1),
            "faults_injected": dict(self.faults_injected),
            "credits_remaining": credits,
            "credits_spent": self.credits_spent,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "log_entries": len(self.log),
            "log_dropped": self.log.dropped,
            "uptime_s": round(time.time() - self.started, 3),
            "since_reset_s": round(time.time() - self.reset_at, 3),
        }
