"""Counts, latencies and progress of one fan-out, in constant memory.

Latencies go into a logarithmic histogram (1% wide buckets from 1 ms to about 3 hours), so
percentiles of a million rows cost a few kilobytes, not a list of a million floats.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .results import RowResult

_MIN_S = 0.001
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)


class LatencyHistogram:
    """Approximate percentiles (within 1%) of non-negative durations in seconds."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.max_s = 0.0
        self.total_s = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        index = 0 if seconds <= _MIN_S else int(math.log(seconds / _MIN_S) / _LOG_GROWTH) + 1
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s durations to these."""
        for index, count in other._buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + count
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100), or ``None`` with no data."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                upper = _MIN_S * _GROWTH**index
                return min(upper, self.max_s)
        return self.max_s


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the run waits for and until when (a service's ``Retry-After``).

    Attributes:
        reason: what holds the run up, e.g. ``"the key's rate limit: Retry-After 300 s"``.
        until: when the wait ends (seconds since the epoch).
    """

    reason: str
    until: float

    def __str__(self) -> str:
        clock = dt.datetime.fromtimestamp(self.until).strftime("%H:%M:%S")
        return f"waiting for {self.reason}, until {clock}"


@dataclass
class RunStats:
    """What one fan-out did; updated live while it runs.

    Attributes:
        rows: rows reported so far (each input row once).
        succeeded: rows with an answer (sent now, reused, or shared with a duplicate).
        failed: rows recorded as failed (row errors, invalid inputs, retries exhausted).
        sent: rows whose request this call sent and that reached the service (the paid
            ones).
        reused: rows answered from the journal, without a request.
        deduplicated: rows answered by an identical row of the same call.
        invalid: rows whose inputs were rejected before any request (skipped ones included).
        skipped: rows left out on purpose, unsent: an input was missing and the workflow's
            ``on_missing`` is ``"skip"`` (recorded as failed, with a ``RowSkippedError``).
        unreached: rows whose every attempt failed to connect (refused, unknown host): no
            request reached the service, nothing was paid.
        requests: HTTP requests sent (every attempt, 429s included; not those that could
            not connect).
        retried: rows that needed more than one request.
        rate_limited: 429 answers received.
        transient_errors: 5xx, malformed bodies, timeouts and connection errors met.
        credits: credits reported by the service for this call's runs, if any were.
        elapsed_s: wall time of the call so far.
        stopped_by: the message of the error that stopped the fan-out, if one did.
        waiting: the latest wait a service asked for (``Retry-After``), if any; over once
            its ``until`` is past.
    """

    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    sent: int = 0
    reused: int = 0
    deduplicated: int = 0
    invalid: int = 0
    skipped: int = 0
    unreached: int = 0
    requests: int = 0
    retried: int = 0
    rate_limited: int = 0
    transient_errors: int = 0
    credits: float | None = None
    elapsed_s: float = 0.0
    stopped_by: str | None = None
    waiting: Waiting | None = None
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)

    @property
    def failure_rate(self) -> float:
        """Failed rows as a share of rows reported (0 when none)."""
        return self.failed / self.rows if self.rows else 0.0

    @classmethod
    def combined(cls, parts: Iterable[RunStats], elapsed_s: float) -> RunStats:
        """Several fan-outs (e.g. the chunks of one table) as one, over ``elapsed_s``."""
        total = cls(elapsed_s=elapsed_s)
        for part in parts:
            for name in _COUNTS:
                setattr(total, name, getattr(total, name) + getattr(part, name))
            total.add_credits(part.credits)
            total.latency.merge(part.latency)
            total.stopped_by = total.stopped_by or part.stopped_by
        return total

    def add_result(self, result: RowResult) -> None:
        """Count one reported row."""
        self.rows += 1
        if result.status == "succeeded":
            self.succeeded += 1
        else:
            self.failed += 1
        if result.source == "journal":
            self.reused += 1
        elif result.source == "duplicate":
            self.deduplicated += 1
        elif result.source == "none":
            self.invalid += 1
            if result.error_type == "RowSkippedError":
                self.skipped += 1
        elif result.attempts == 0:
            self.unreached += 1  # no attempt connected: nothing sent, nothing paid
        else:
            self.sent += 1
            if result.attempts > 1:
                self.retried += 1
            if result.latency_s is not None:
                self.latency.add(result.latency_s)
            if result.outcome is not None:
                self.add_credits(result.outcome.credits)

    def note_wait(self, waiting: Waiting) -> None:
        """The run waits for ``waiting`` (the longest wait asked for is kept)."""
        if self.waiting is None or waiting.until >= self.waiting.until:
            self.waiting = waiting

    def waiting_now(self, now: float | None = None) -> Waiting | None:
        """:attr:`waiting`, while it lasts."""
        now = time.time() if now is None else now
        return self.waiting if self.waiting is not None and self.waiting.until > now else None

    def add_credits(self, credits: float | None) -> None:
        if credits is not None:
            self.credits = (self.credits or 0.0) + credits

    def as_dict(self) -> dict[str, Any]:
        """Plain values for logs and metadata (latencies in seconds)."""
        return {
            "rows": self.rows,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "sent": self.sent,
            "reused": self.reused,
            "deduplicated": self.deduplicated,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "unreached": self.unreached,
            "requests": self.requests,
            "retried": self.retried,
            "rate_limited": self.rate_limited,
            "transient_errors": self.transient_errors,
            "credits": self.credits,
            "elapsed_s": round(self.elapsed_s, 3),
            "latency_p50_s": self.latency.percentile(50),
            "latency_p95_s": self.latency.percentile(95),
            "latency_max_s": self.latency.max_s if self.latency.count else None,
            "stopped_by": self.stopped_by,
        }


_COUNTS = (
    "rows",
    "succeeded",
    "failed",
    "sent",
    "reused",
    "deduplicated",
    "invalid",
    "skipped",
    "unreached",
    "requests",
    "retried",
    "rate_limited",
    "transient_errors",
)


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report, delivered to the ``on_progress`` callback every few seconds.

    Attributes:
        done: rows finished so far (succeeded + failed).
        succeeded: rows with an answer.
        failed: rows recorded as failed.
        in_flight: rows being worked on now.
        total: the number of rows, when the input has a length.
        elapsed_s: wall time so far.
        rows_per_s: finished rows per second so far.
        eta_s: estimated seconds left, when ``total`` is known and progress was made; while
            the run is :attr:`rate_bound`, ``to_send / rate_per_s`` (the rows that still
            need a paid request at the key's rate), else from the rows finished so far.
        waiting: what the run waits for and until when (a long ``Retry-After``), while it
            does, e.g. ``"waiting for the key's rate limit: Retry-After 300 s, until
            12:34:56"``.
        to_send: rows left that need a paid request (not answered from the journal, nor by
            an identical row), in flight ones included; counted before the first request
            (exactly for inputs that can be read twice, such as a DataFrame, of up to
            :data:`~dagster_runwf.engine.fanout.plan.PLAN_SCAN_ROWS` rows; else the rows
            left less those the journal has for this job), then less each row paid for.
            ``None`` when the number of rows is unknown.
        rate: the key's rate this run keeps, as written in settings (``"10/min"``); the
            limit learned from ``x-ratelimit-limit`` when it differs, and this process's
            share of it while a shared rate-limit store is unavailable. ``None``: no rate
            limit (``rate="unlimited"``).
        rate_per_s: what this run gets of :attr:`rate`, in requests per second: the rate
            times :attr:`rate_share`.
        rate_share: this process's part of the key's recent requests, averaged over about
            two windows of the rate: 1 unless other processes use the key at once through a
            shared rate-limit store (then, e.g., about 0.5 with one other).
        rate_bound: the key's rate paces the run: since the last report the workers waited
            longer for the rate limiter's slots than for answers (in the start report:
            more rows to send than the key allows in one window). Its :attr:`eta_s` is then
            based on the rate.
        starting: the first report, sent once before any row is sent, with the plan: rows
            to send, the rate and (when rate-bound) the estimate; see :meth:`plan`.
    """

    done: int
    succeeded: int
    failed: int
    in_flight: int
    total: int | None
    elapsed_s: float
    rows_per_s: float
    eta_s: float | None
    waiting: str | None = None
    to_send: int | None = None
    rate: str | None = None
    rate_per_s: float | None = None
    rate_share: float = 1.0
    rate_bound: bool = False
    starting: bool = False

    def __str__(self) -> str:
        if self.starting:
            return self.plan()
        of = f"/{self.total}" if self.total is not None else ""
        eta = f", ETA {self.eta_s:.0f}s" if self.eta_s is not None else ""
        paced = f", {self.pace()}" if self.rate_bound else ""
        waiting = f"; {self.waiting}" if self.waiting else ""
        return (
            f"{self.done}{of} rows done ({self.failed} failed, {self.in_flight} in flight), "
            f"{self.rows_per_s:.1f} rows/s{paced}{eta}{waiting}"
        )

    def pace(self) -> str:
        """What paces the run, e.g. ``"rate-bound at 10/min"`` (``""`` when not rate-bound)."""
        if not (self.rate_bound and self.rate):
            return ""
        if self.rate_share < 0.95:
            return f"rate-bound at {self.rate}, {self.rate_share:.0%} of it for this run"
        return f"rate-bound at {self.rate}"

    def plan(self) -> str:
        """The run's plan in a sentence, e.g. ``"41 rows to send at 10/min (the key's
        rate): about 4 min"``; meant for the :attr:`starting` report."""
        if self.to_send is None:
            rows = "rows to send"
        else:
            rows = f"{self.to_send} row{'' if self.to_send == 1 else 's'} to send"
        if self.rate is None:
            return f"{rows}, no rate limit"
        if self.rate_bound and self.eta_s is not None:
            return f"{rows} at {self.rate} (the key's rate): about {about(self.eta_s)}"
        return f"{rows}; the key allows {self.rate}"


def about(seconds: float) -> str:
    """A duration as people say it: ``"40 s"``, ``"4 min"``, ``"2 h 5 min"``."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
