"""Why and how a fan-out stops before its last row.

A fatal answer, the budget running out, too many failed rows in a row (the circuit breaker)
or a crash (a bug, the input failing, the journal failing) sets one :class:`StopSignal`:
no request starts after it, requests in flight finish and are reported, then the iteration
raises :class:`~dagster_runwf.errors.FanOutStopped` (or the crash itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...errors import BudgetReachedError, FanOutStopped, ServiceError
from ...services.base import Workflow
from ...wording import setting
from ..budget import BudgetGate
from ..deadline import deadline
from ..results import RowResult
from ..stats import RunStats


class StopSignal:
    """The fan-out's stop: set once, by the first cause; every worker watches it.

    Attributes:
        cause: the service error that stopped the fan-out (the first one), if one did.
        message: what to tell the user about ``cause``.
        crash: an unexpected exception to re-raise instead, if one happened.
    """

    def __init__(self, stats: RunStats) -> None:
        self._stats = stats
        self._event = asyncio.Event()
        self._on_stop: list[Callable[[], None]] = []
        self.cause: ServiceError | None = None
        self.message: str | None = None
        self.crash: BaseException | None = None

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at every stop (e.g. to wake the waiters of a budget gate)."""
        self._on_stop.append(callback)

    def stop(self, cause: ServiceError, message: str) -> None:
        """Stop for ``cause``; the first cause is the one reported."""
        if self.cause is None:
            self.cause = cause
            self.message = message
            self._stats.stopped_by = message
        self.set()

    def crash_with(self, exc: BaseException) -> None:
        """Stop because of an unexpected exception, re-raised at the end of the iteration."""
        if self.crash is None:
            self.crash = exc
        self.set()

    def set(self) -> None:
        """Stop without a cause (the consumer stopped iterating)."""
        self._event.set()
        for callback in self._on_stop:
            callback()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a stop; ``True`` if the full time passed."""
        if seconds <= 0:
            return not self._event.is_set()
        try:
            async with deadline(seconds):
                await self._event.wait()
        except asyncio.TimeoutError:
            return True
        return False

    def raise_if_stopped(self, total: int | None) -> None:
        """After the last result: re-raise a crash, or raise :class:`FanOutStopped`."""
        if self.crash is not None:
            raise self.crash
        if self.cause is None:
            return
        stats = self._stats
        left = None if total is None else total - stats.rows
        if isinstance(self.cause, BudgetReachedError):
            self.cause.rows_left = left
        raise FanOutStopped(
            f"{self.message}\nStopped after {stats.rows} rows finished "
            f"({stats.succeeded} succeeded, {stats.failed} failed)"
            + ("" if left is None else f"; {left} rows are not done yet")
            + ". No further request was sent. Re-run to continue: finished rows are kept.",
            cause=self.cause,
            finished=stats.rows,
        )

    def budget_reached(self, gate: BudgetGate, workflow: Workflow) -> None:
        """Stop because ``gate`` admits no further paid run."""
        if self.is_set:
            return
        budget = gate.budget
        caps = [
            setting(name, value)
            for name, value in (("max_runs", budget.max_runs), ("max_credits", budget.max_credits))
            if value is not None
        ]
        spent = f"{gate.runs_spent} runs"
        if workflow.reports_credits:
            spent += f" and {gate.credits_spent:g} credits"
        message = (
            f"The budget ({', '.join(caps)}) is reached: this job has paid for {spent}, "
            "earlier attempts included. Raise the budget and re-run with the same journal "
            "to continue."
        )
        cause = BudgetReachedError(
            message,
            service=workflow.display_name,
            runs_spent=gate.runs_spent,
            credits_spent=gate.credits_spent,
            rows_left=None,
        )
        self.stop(cause, message)


class CircuitBreaker:
    """Stops the fan-out after ``limit`` rows in a row failed at the service, so a broken
    workflow does not burn credits (``limit=None``: never)."""

    def __init__(self, limit: int | None, workflow: Workflow, stop: StopSignal) -> None:
        self._limit = limit
        self._workflow = workflow
        self._stop = stop
        self._consecutive_failures = 0
        self._last_failure: ServiceError | None = None

    def note_failure(self, exc: ServiceError) -> None:
        """A row sent by this call failed with ``exc`` (named when the breaker opens)."""
        self._last_failure = exc

    def count_row(self, result: RowResult) -> None:
        """Count a row sent by this call; open the breaker (stop) at the limit."""
        if result.status == "succeeded":
            self._consecutive_failures = 0
            return
        self._consecutive_failures += 1
        limit, last = self._limit, self._last_failure
        if limit is not None and self._consecutive_failures >= limit and last:
            self._stop.stop(
                last,
                f"{self._consecutive_failures} rows in a row failed at "
                f"{self._workflow.display_name} (the last: {last}); stopped so "
                "as not to pay for more failing runs. Check the workflow and its inputs, or "
                f"raise {setting('max_consecutive_failures')} (now {limit}).",
            )
