"""Progress of a fan-out: what is finished and in flight, and what the run waits for (a
long ``Retry-After``), reported to ``on_progress`` every ``progress_interval_s`` and once at
the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..stats import Progress, RunStats


class ProgressReporter:
    """Times the fan-out and reports its progress (only the timing without a callback).

    Attributes:
        in_flight: rows the workers are working on now.
    """

    def __init__(
        self,
        stats: RunStats,
        total: int | None,
        on_progress: Callable[[Progress], None] | None,
        interval_s: float,
    ) -> None:
        self.in_flight = 0
        self._stats = stats
        self._total = total
        self._on_progress = on_progress
        self._interval_s = interval_s
        self._started = time.monotonic()

    def start(self) -> None:
        """The fan-out starts now."""
        self._started = time.monotonic()

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

    def _report(self) -> None:
        if self._on_progress is None:
            return
        elapsed = time.monotonic() - self._started
        done = self._stats.rows
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self._total is not None and rate > 0:
            eta = max(0.0, (self._total - done) / rate)
        waiting = self._stats.waiting_now()
        self._on_progress(
            Progress(
                done=done,
                succeeded=self._stats.succeeded,
                failed=self._stats.failed,
                in_flight=self.in_flight,
                total=self._total,
                elapsed_s=elapsed,
                rows_per_s=rate,
                eta_s=eta,
                waiting=None if waiting is None else str(waiting),
            )
        )
