"""How the engine talks to a service: one typed, frozen set of options, checked once.

The Dagster resources, the ``runwf`` command and code calling the engine directly all build
an :class:`EngineOptions` and hand it to :class:`~dagster_runwf.engine.fanout.WorkflowRun`
or :func:`~dagster_runwf.engine.enrich.enrich`; what differs per job (the rows, the journal,
the budget, progress reporting) is passed beside it. A misspelt option is a type error, and
a bad value is a :class:`~dagster_runwf.errors.ConfigError` before any request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import httpx

from ..errors import ConfigError
from ..services.base import Workflow
from ..services.rate import Rate
from .claims import AUTO as CLAIMS_AUTO
from .claims import check_claim_store
from .client import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    HttpBackend,
    check_base_url,
)
from .ratelimit import RateLimiter, shared_limiter
from .ratelimit.store_url import AUTO
from .retry import RetryPolicy

RateSetting = Rate | str | Literal["unlimited"] | None
"""A key's rate: ``"10/s"`` or a :class:`Rate`; ``None`` for the service's documented limit;
``"unlimited"`` for no limiter."""


def key_fingerprint(api_key: str) -> str:
    """A short, one-way id of an API key: safe to log, enough to tell keys apart."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


DEFAULT_MAX_CONSECUTIVE_FAILURES = 25
"""Rows in a row failing at the service before the circuit breaker stops the fan-out."""


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How to reach a service and how hard to push it; the same for every job of a key.

    Change one option with ``dataclasses.replace(options, rate="5/s")``. The key is never
    part of the repr (nor of any message).

    Example::

        options = EngineOptions(api_key=os.environ["AITUTOR_API_KEY"], rate="10/s")
        results, stats = run_workflow_rows_sync(workflow, rows, options)

    Attributes:
        api_key: the service's API key; sent only over https or to loopback.
        base_url: the service's API root; ``None`` for the service's public URL.
        rate: the key's rate, e.g. ``"10/s"``; ``None`` for the service's documented limit
            (then ``x-ratelimit-limit`` may adjust it); ``"unlimited"`` for no limiter.
        concurrency: rows in flight at once; ``None`` for the workflow's
            ``default_concurrency``.
        retry: the retry policy for transient errors.
        backend: ``"aiohttp"`` (httpx over aiohttp: the default, several times faster at
            high concurrency, see ``bench/``) or ``"httpx"`` (httpx's own pool); ignored
            when ``transport`` is given.
        transport: an ``httpx.AsyncBaseTransport`` to use instead.
        timeout: httpx timeouts; the default allows 300-second runs.
        attempt_timeout_s: the deadline of one attempt as a whole (connecting, sending,
            waiting for the run, reading the answer), in seconds; an attempt past it is a
            transient error, retried like a timeout. ``None`` (the default): the connect
            timeout plus the read timeout (345 s unless ``timeout`` says otherwise), what the
            timeouts promise for an answer that arrives in one piece, so one arriving a byte
            at a time cannot outlast it.
        rate_limit_store: where the key's rate-limit window is kept, so that every job
            using the key at once shares its rate: ``"auto"`` (the default) for a SQLite
            file in the user's cache folder (``$XDG_CACHE_HOME/dagster-runwf/`` or
            ``~/.cache/dagster-runwf/``), shared by every process of the host;
            ``"memory"`` (or ``None``) for this process only;
            ``"sqlite:///path/limits.sqlite"`` for another file shared by the host; or
            ``"redis://host:6379/0"`` for every host reaching that Redis server. The store
            keeps start times under a fingerprint of the key and the base URL, never the
            key. While a shared store is unavailable the run goes on at a conservative
            share of the rate, with one warning, and uses the store again once it answers.
        limiter: a :class:`RateLimiter` to use instead of the shared one of this key.
        claim_store: where the writers of one job claim rows before paying for them, so
            two writers at once (two identical commands, a schedule tick over a manual
            launch) never pay for a row twice and share the job's budget: ``"auto"`` (a
            SQLite file in a local journal's folder; none for a journal in object storage,
            with a warning), ``"redis://host:6379/0"`` (every host reaching the server),
            ``"sqlite:///path/claims.sqlite"`` or ``"off"``. Used only with a journal.
        claim_ttl_s: how long a writer's claims outlive its last heartbeat (renewed every
            third of it): another writer takes the rows of a writer that died after this.
        max_consecutive_failures: stop after this many rows in a row failed at the service
            (a circuit breaker, so a broken workflow does not burn credits); ``None`` = never.
        dedup_cache_size: finished results kept (most recent first) to answer identical rows
            later in the call, bounded so memory stays flat; identical rows in flight at once
            always share one request, and the journal answers older duplicates.
        max_response_bytes: the largest answer read; a larger one fails its row with a
            :class:`ResponseTooLargeError` instead of filling memory.
        progress_interval_s: seconds between progress reports (see ``on_progress``).
        seed: seed for the retry jitter (for reproducible tests).

    Raises:
        ConfigError: an option is wrong (the key is empty, ``base_url`` is not https or
            loopback, the rate is not understood, ...).
    """

    api_key: str = field(repr=False)
    base_url: str | None = None
    rate: RateSetting = None
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    backend: HttpBackend = "aiohttp"
    transport: httpx.AsyncBaseTransport | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    attempt_timeout_s: float | None = None
    rate_limit_store: str | None = AUTO
    limiter: RateLimiter | None = None
    claim_store: str | None = CLAIMS_AUTO
    claim_ttl_s: float = 30.0
    max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES
    dedup_cache_size: int = 10_000
    max_response_bytes: int = MAX_RESPONSE_BYTES
    progress_interval_s: float = 5.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise ConfigError(
                "api_key is empty; set it (e.g. from an environment variable) to the "
                "service's secret key"
            )
        if self.base_url:
            check_base_url(self.base_url)
        concurrency = self.concurrency
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if self.attempt_timeout_s is not None and not self.attempt_timeout_s > 0:
            raise ConfigError(
                f"attempt_timeout_s must be > 0 seconds or None, got {self.attempt_timeout_s!r}"
            )
        if self.max_consecutive_failures is not None and self.max_consecutive_failures < 1:
            raise ConfigError("max_consecutive_failures must be >= 1 or None")
        if not self.unlimited and self.rate is not None:
            Rate.parse(self.rate)
        check_claim_store(self.claim_store)
        if not isinstance(self.claim_ttl_s, (int, float)) or not self.claim_ttl_s > 0:
            raise ConfigError(f"claim_ttl_s must be seconds > 0, got {self.claim_ttl_s!r}")

    @property
    def unlimited(self) -> bool:
        """``rate="unlimited"``: no rate limiter at all."""
        return isinstance(self.rate, str) and self.rate.strip().lower() == "unlimited"

    @property
    def attempt_deadline_s(self) -> float | None:
        """The deadline of one attempt: ``attempt_timeout_s``, else the connect timeout plus
        the read timeout (``None`` when the read timeout is unbounded)."""
        if self.attempt_timeout_s is not None:
            return self.attempt_timeout_s
        read, connect = self.timeout.read, self.timeout.connect
        return None if read is None else read + (connect or 0.0)

    def base_url_for(self, workflow: Workflow) -> str:
        """Where ``workflow``'s requests go: ``base_url``, or the service's public URL."""
        return check_base_url(self.base_url or workflow.default_base_url)

    def concurrency_for(self, workflow: Workflow) -> int:
        """Rows in flight at once: ``concurrency``, or the workflow's default."""
        return workflow.default_concurrency if self.concurrency is None else self.concurrency

    def limiter_for(self, workflow: Workflow) -> RateLimiter | None:
        """The rate limiter of this key at ``workflow``'s service (``None``: unlimited).

        Every run of the key in the process shares one limiter, and the limiters of the
        processes sharing ``rate_limit_store`` (by default, every process of the host) share
        one window, so concurrent jobs share the key's rate.
        """
        if self.limiter is not None:
            return self.limiter
        if self.unlimited:
            return None
        explicit = self.rate is not None
        rate = Rate.parse(self.rate) if self.rate is not None else workflow.default_rate
        scope = f"{workflow.service} {self.base_url_for(workflow)}"
        return shared_limiter(
            key_fingerprint(self.api_key),
            scope,
            rate,
            explicit=explicit,
            store=self.rate_limit_store,
        )
