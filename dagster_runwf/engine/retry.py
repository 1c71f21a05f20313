"""When and how often to retry a transient failure.

Exponential backoff with full jitter (a random delay between zero and the exponential bound)
spreads retries of many rows over time instead of sending them back in a burst. A
``Retry-After`` sent by the service wins over the computed delay, up to a cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of transient errors (5xx, timeouts, dropped connections, 429s) and of
    unusable 2xx answers.

    Attributes:
        max_attempts: requests a row may make before a transient error becomes its recorded
            error; 429s do not count, they are the limiter's business.
        initial_backoff_s: the bound of the first retry's random delay.
        max_backoff_s: the largest bound any retry's delay may have.
        multiplier: how much the bound grows with each failed attempt.
        max_rate_limited: 429s one row may meet before it is recorded as failed.
        max_retry_after_s: the longest ``Retry-After`` honoured; longer ones are capped.
        unusable_retries: how many times a row is sent again after a 2xx answer it cannot
            use (:class:`~dagster_runwf.errors.UnusableAnswerError`: no text result, a body
            that is not JSON, an answer cut short...). The service most likely ran and
            billed that run, so every retry may be paid again; after these the row is
            recorded as failed and a rerun does not send it unless asked to
            (``retry_failed``). Within ``max_attempts`` in any case.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    multiplier: float = 2.0
    max_rate_limited: int = 100
    max_retry_after_s: float = 300.0
    unusable_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("retry backoff seconds must not be negative")
        if self.multiplier < 1:
            raise ConfigError(f"retry multiplier must be at least 1, got {self.multiplier}")
        if self.max_rate_limited < 0:
            raise ConfigError("retry max_rate_limited must not be negative")
        if self.unusable_retries < 0:
            raise ConfigError("retry unusable_retries must not be negative")

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """The delay before the retry that follows ``failures`` failed attempts (>= 1)."""
        bound = min(
            self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, failures - 1)
        )
        return (rng or random).uniform(0.0, bound)

    def delay(
        self, failures: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """The delay to wait: the service's ``Retry-After`` (capped) or :meth:`backoff`."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return self.backoff(failures, rng)
