"""Progress of a fan-out: what is finished and in flight, what the run waits for (the key's
rate, a long ``Retry-After``) and how long it has left, reported to ``on_progress`` once
before the first row (the plan), every ``progress_interval_s``, and once at the end.

The run is *rate-bound* when its workers wait longer for the rate limiter's slots than for
answers: then the key's rate sets the pace, and the ETA is the rows that still need a paid
request at that rate — steady, where the rows finished per second so far swing with each
window of a slow rate (Runchat's 10/min) and with rows answered from the journal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..ratelimit import RateLimiter
from ..stats import Progress, RunStats
from .waits import Waits


class ProgressReporter:
    """Times the fan-out and reports its progress (only the timing without a callback).

    Args:
        stats: the fan-out's live counts.
        total: rows in the input, when known.
        on_progress: the callback, if any.
        interval_s: seconds between reports.
        waits: how long the workers waited for slots and for answers.
        limiter: the key's rate limiter (``None``: unlimited).

    Attributes:
        in_flight: rows the workers are working on now.
    """

    def __init__(
        self,
        stats: RunStats,
        total: int | None,
        on_progress: Callable[[Progress], None] | None,
        interval_s: float,
        *,
        waits: Waits | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.in_flight = 0
        self._stats = stats
        self._total = total
        self._on_progress = on_progress
        self._interval_s = interval_s
        self._waits = waits if waits is not None else Waits()
        self._limiter = limiter
        self._started = time.monotonic()
        self._to_send: int | None = total
        self._waited = (0.0, 0.0)
        self._rate_bound = False
        self._share = 1.0
        self._share_at: float | None = None

    @property
    def reports(self) -> bool:
        """A callback takes the reports (else the plan need not be counted)."""
        return self._on_progress is not None

    def start(self) -> None:
        """The fan-out starts now."""
        self._started = time.monotonic()

    def plan(self, to_send: int | None) -> None:
        """Before the first request: ``to_send`` rows to pay for (if known). Sends the first
        report, with the plan."""
        self._to_send = to_send if to_send is not None else self._total
        self._waited = (self._waits.slots.total(), self._waits.answers.total())
        if self._on_progress is None:
            return
        rate = self._limiter.rate if self._limiter is not None else None
        self._rate_bound = rate is not None and (self._to_send or 0) > rate.requests
        self._report(starting=True)

    async def run(self) -> None:
        """Report every ``interval_s`` until cancelled."""
        if self._on_progress is None:
            return
        while True:
            await asyncio.sleep(self._interval_s)
            self._stats.elapsed_s = time.monotonic() - self._started
            self._report()

    def finish(self) -> None:
        """The fan-out is over: final elapsed time and the last report."""
        self._stats.elapsed_s = time.monotonic() - self._started
        self._report()

    def _report(self, *, starting: bool = False) -> None:
        if self._on_progress is None:
            return
        elapsed = time.monotonic() - self._started
        done = self._stats.rows
        rows_per_s = done / elapsed if elapsed > 0 and not starting else 0.0
        to_send = self._left_to_send()
        rate_bound = self._rate_bound if starting else self._paced()
        limiter = self._limiter
        rate = limiter.rate if limiter is not None else None
        share = self._smoothed_share()
        rate_per_s = rate.per_second * share if rate is not None else None
        eta = None
        if rate_bound and to_send is not None and rate_per_s:
            eta = to_send / rate_per_s
        elif self._total is not None and rows_per_s > 0:
            eta = max(0.0, (self._total - done) / rows_per_s)
        waiting = self._stats.waiting_now()
        self._on_progress(
            Progress(
                done=done,
                succeeded=self._stats.succeeded,
                failed=self._stats.failed,
                in_flight=self.in_flight,
                total=self._total,
                elapsed_s=0.0 if starting else elapsed,
                rows_per_s=rows_per_s,
                eta_s=eta,
                waiting=None if waiting is None else str(waiting),
                to_send=to_send,
                rate=None if rate is None else str(rate),
                rate_per_s=rate_per_s,
                rate_share=share,
                rate_bound=rate_bound,
                starting=starting,
            )
        )

    def _left_to_send(self) -> int | None:
        """Rows not finished that need a paid request: the plan less the rows paid, and
        never more than the rows left."""
        if self._total is None or self._to_send is None:
            return None
        stats = self._stats
        paid = stats.sent + stats.unreached
        return max(0, min(self._total - stats.rows, self._to_send - paid))

    def _smoothed_share(self) -> float:
        """This process's part of the key's rate, averaged over about two windows: the
        limiter measures it from the last one (see ``RateLimiter.own_share``), which swings
        while another process reserves its slots ahead."""
        limiter = self._limiter
        if limiter is None:
            return 1.0
        now = time.monotonic()
        if self._share_at is not None:
            weight = min(1.0, (now - self._share_at) / (2 * limiter.window_s))
            self._share += weight * (limiter.own_share - self._share)
        self._share_at = now
        return self._share

    def _paced(self) -> bool:
        """Since the last report, did the workers wait longer for slots than for answers?
        (No waiting at all since: as it was.)"""
        if self._limiter is None:
            return False
        slots, answers = self._waits.slots.total(), self._waits.answers.total()
        waited_slots, waited_answers = slots - self._waited[0], answers - self._waited[1]
        self._waited = (slots, answers)
        if waited_slots + waited_answers > 0:
            self._rate_bound = waited_slots > waited_answers
        return self._rate_bound
