"""Budget admission: a row's first request is sent only if the job's budget admits one more
paid run (see :class:`~dagster_runwf.engine.budget.BudgetGate`); the first row it turns
away stops the fan-out.

With row claims (:mod:`..claims`) the job's paid runs are also counted in the claim store,
by every writer of the job (with a budget of its own or not), and a run cap is kept on
that count: two writers with ``max_runs=50`` pay for 50 runs together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ...errors import ConfigError
from ...services.base import Workflow
from ..budget import Budget, BudgetGate
from ..claims import RowClaims
from ..results import Journal, RowResult
from .attempts import RowAttempts
from .stopping import StopSignal


class BudgetAdmission:
    """Admits rows to be sent while the budget allows; admits every row without a budget.

    Raises:
        ConfigError: a credit budget for a service that does not report what a run costs.
    """

    def __init__(
        self,
        budget: Budget | None,
        journal: Journal | None,
        workflow: Workflow,
        stop: StopSignal,
        claims: RowClaims | None = None,
    ) -> None:
        if budget is not None and budget.max_credits is not None and not workflow.reports_credits:
            raise ConfigError(
                f"{workflow.display_name} does not report what a run costs, so a credit budget "
                "cannot be kept; cap its paid runs with Budget(max_runs=...) instead"
            )
        self._budget = budget
        self._journal = journal
        self._workflow = workflow
        self._stop = stop
        self._gate: BudgetGate | None = None
        self._claims = claims
        self._runs_at_open = 0
        self._shared_total = 0
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def open(self) -> None:
        """Start counting, from what earlier attempts of the job spent (in the journal)."""
        runs, credits = (0, 0.0) if self._journal is None else self._journal.spent()
        self._runs_at_open = runs
        if self._budget is None:
            return
        self._gate = BudgetGate(self._budget, runs_spent=runs, credits_spent=credits)
        self._stop.on_stop(self._gate.close)

    async def send(
        self, send_row: Callable[[RowAttempts], Awaitable[RowResult | None]], row: RowAttempts
    ) -> RowResult | None:
        """``send_row(row)`` once the budget admits it; ``None`` if it never will."""
        gate = self._gate
        if gate is None:
            return await self._send_counted(send_row, row)
        self._busy_rows(+1)
        busy, counted, sent = True, None, False
        try:
            counted = await self._count_shared(1)
            if counted is False:
                # The job's cap is reached. Rows this writer counted are on their way: let
                # them start (stopping would keep them from it) before stopping.
                self._busy_rows(-1)
                busy = False
                await self._idle.wait()
                gate.runs_spent = max(gate.runs_spent, self._shared_total)
                self._stop.budget_reached(gate, self._workflow)
                return None
            if not await gate.acquire():
                self._stop.budget_reached(gate, self._workflow)
                return None
            result: RowResult | None = None
            try:
                result = await send_row(row)
                return result
            finally:
                cost = result.outcome.credits if result and result.outcome else None
                sent = row.attempts > 0
                gate.release(cost, sent=sent)
        finally:
            if busy:
                self._busy_rows(-1)
            if counted and not sent:
                await self._count_shared(-1)

    async def _send_counted(
        self, send_row: Callable[[RowAttempts], Awaitable[RowResult | None]], row: RowAttempts
    ) -> RowResult | None:
        """``send_row(row)`` without a budget of this writer's own, its run still counted
        for the job's other writers (with claims)."""
        if self._claims is None:
            return await send_row(row)
        await self._claims.add_runs(1, at_least=self._runs_at_open, limit=None)
        try:
            return await send_row(row)
        finally:
            if row.attempts == 0:
                await self._claims.add_runs(-1, at_least=self._runs_at_open, limit=None)

    def _busy_rows(self, change: int) -> None:
        """Count rows between their budget admission and their answer."""
        self._busy += change
        if self._busy == 0:
            self._idle.set()
        else:
            self._idle.clear()

    async def _count_shared(self, runs: int) -> bool | None:
        """Count ``runs`` in the job's run count shared by its writers: whether the cap
        allowed it; ``None`` without claims or without a run cap (nothing shared)."""
        claims, budget = self._claims, self._budget
        if claims is None or budget is None or budget.max_runs is None:
            return None
        counted, total = await claims.add_runs(
            runs, at_least=self._runs_at_open, limit=budget.max_runs
        )
        self._shared_total = total
        return counted
