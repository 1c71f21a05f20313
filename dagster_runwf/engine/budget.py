"""A cap on what one job may spend: paid runs, and credits where the service reports them.

The gate is asked before a row's first request. It never lets a run start that could take
the job past its cap: for runs that is exact; for credits it reserves, for every run in
flight, the most a run has cost so far (and allows a single run at a time until a first
cost is known), so a cap is never exceeded as long as no run costs more than the dearest
one seen before it.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Budget:
    """The most one job may spend; ``None`` means no cap.

    A *job* is one logical run of a table through a workflow: with a journal, runs paid
    by earlier attempts of the same job (a crash, a retry, a re-execution) count too.

    Args:
        max_runs: rows sent to the service (each row's first request is one paid run; its
            retries are not counted again).
        max_credits: credits, counted from the per-run costs the service reports (Runchat's
            run metadata). AI Tutor reports no per-run cost: cap its runs with ``max_runs``
            (each successful run costs at least one credit).
    """

    max_runs: int | None = None
    max_credits: float | None = None

    def __post_init__(self) -> None:
        runs, credits = self.max_runs, self.max_credits
        if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 0):
            raise ConfigError(f"budget max_runs must be a whole number >= 0, got {runs!r}")
        if credits is not None and (
            isinstance(credits, bool)
            or not isinstance(credits, (int, float))
            or not math.isfinite(credits)
            or credits < 0
        ):
            raise ConfigError(f"budget max_credits must be a number >= 0, got {credits!r}")


class BudgetGate:
    """Admits new paid runs while the budget allows (one gate per fan-out)."""

    def __init__(self, budget: Budget, *, runs_spent: int = 0, credits_spent: float = 0.0):
        self.budget = budget
        self.runs_spent = runs_spent
        self.credits_spent = credits_spent
        self._in_flight = 0
        self._dearest_run: float | None = None
        self._closed = False
        self._changed = asyncio.Event()

    async def acquire(self) -> bool:
        """Wait until a new run fits; ``False`` once the budget (or the fan-out) is done."""
        while not self._closed:
            verdict = self._verdict()
            if verdict is not None:
                if verdict:
                    self._in_flight += 1
                    self.runs_spent += 1
                return verdict
            await self._changed.wait()
        return False

    def _verdict(self) -> bool | None:
        """``True``: start; ``False``: never will; ``None``: wait for a run in flight."""
        max_runs, max_credits = self.budget.max_runs, self.budget.max_credits
        if max_runs is not None and self.runs_spent >= max_runs:
            return False
        if max_credits is None:
            return True
        if self.credits_spent >= max_credits:
            return False
        if self._dearest_run is None:  # no cost seen yet: one run at a time
            return True if self._in_flight == 0 else None
        if self.credits_spent + (self._in_flight + 1) * self._dearest_run <= max_credits:
            return True
        return False if self._in_flight == 0 else None

    @property
    def dearest_run(self) -> float | None:
        """The most a run admitted here has cost so far (``None``: no cost seen yet)."""
        return self._dearest_run

    def catch_up(self, *, runs: int, credits: float) -> None:
        """The job's other writers spent too: count at least ``runs`` and ``credits``."""
        self.runs_spent = max(self.runs_spent, runs)
        self.credits_spent = max(self.credits_spent, credits)

    def release(self, credits: float | None, *, sent: bool = True) -> None:
        """A run admitted by :meth:`acquire` is over (``sent=False``: it never went out)."""
        self._in_flight -= 1
        if not sent:
            self.runs_spent -= 1
        elif credits is not None:
            self.credits_spent += credits
            self._dearest_run = max(credits, self._dearest_run or 0.0)
        self._wake()

    def close(self) -> None:
        """The fan-out is stopping: every waiter gets ``False``."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        # Waiters hold the old event; a fresh one is for the next round of waiting.
        self._changed.set()
        self._changed = asyncio.Event()
