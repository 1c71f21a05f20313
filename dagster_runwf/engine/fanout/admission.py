"""Budget admission: a row's first request is sent only if the job's budget admits one more
paid run (see :class:`~dagster_runwf.engine.budget.BudgetGate`); the first row it turns
away stops the fan-out.

With row claims (:mod:`..claims`) what the job spends is also counted with its other
writers (:mod:`.shared_spending`), and the caps are kept on those counts: two writers with
``max_runs=50`` pay for 50 runs together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ...errors import ConfigError
from ...services.base import Workflow
from ...wording import setting
from ..budget import Budget, BudgetGate
from ..claims import RowClaims
from ..results import Journal, RowResult
from .attempts import RowAttempts
from .shared_spending import Reservation, SharedSpending
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
                f"cannot be kept; cap its paid runs with {setting('budget.max_runs')} instead"
            )
        self._budget = budget
        self._journal = journal
        self._workflow = workflow
        self._stop = stop
        self._gate: BudgetGate | None = None
        self._claims = claims
        self._shared: SharedSpending | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def open(self) -> None:
        """Start counting, from what earlier attempts of the job spent (in the journal)."""
        runs, credits = (0, 0.0) if self._journal is None else self._journal.spent()
        if self._claims is not None:
            self._shared = SharedSpending(
                self._claims, self._budget, runs_at_open=runs, credits_at_open=credits
            )
        if self._budget is None:
            return
        self._gate = BudgetGate(self._budget, runs_spent=runs, credits_spent=credits)
        self._stop.on_stop(self._gate.close)

    async def send(
        self, send_row: Callable[[RowAttempts], Awaitable[RowResult | None]], row: RowAttempts
    ) -> RowResult | None:
        """``send_row(row)`` once the budget admits it; ``None`` if it never will."""
        gate, shared = self._gate, self._shared
        self._busy_rows(+1)
        try:
            reservation = await self._admit(gate, shared)
        except BaseException:
            self._busy_rows(-1)
            raise
        if reservation is None:
            self._busy_rows(-1)
            await self._budget_reached(gate)
            return None
        result: RowResult | None = None
        try:
            result = await send_row(row)
            return result
        finally:
            if gate is not None:
                gate.release(_cost(result), sent=row.attempts > 0)
            self._busy_rows(-1)
            if shared is not None:
                await shared.settle(reservation, sent=row.attempts > 0, cost=_cost(result))

    async def _budget_reached(self, gate: BudgetGate | None) -> None:
        """Stop the fan-out, once the rows this writer admitted are on their way (stopping
        sooner would keep an admitted row from being sent: 24 of a budget of 25 went out)."""
        if gate is None:
            return
        await self._idle.wait()
        self._stop.budget_reached(gate, self._workflow)

    async def _admit(
        self, gate: BudgetGate | None, shared: SharedSpending | None
    ) -> Reservation | None:
        """Wait until this writer's budget admits the row's run, then count it (and set its
        credits aside) with the job's other writers; ``None`` once it never will.

        This writer's gate comes first, so a run whose cost is not known yet goes out alone.
        When the job's caps leave no room while rows of this writer are in flight, it waits
        for them before giving up: what they really cost may leave room.
        """
        while True:
            if gate is not None and not await gate.acquire():
                return None
            if shared is None:
                return Reservation(0.0)
            reservation = await shared.reserve(self._estimate(shared, gate))
            if reservation is not None:
                return reservation
            if gate is not None:
                gate.release(None, sent=False)
                gate.catch_up(runs=int(shared.runs), credits=shared.credits)
            if self._busy <= 1:
                return None
            self._busy_rows(-1)
            await self._idle.wait()
            self._busy_rows(+1)

    @staticmethod
    def _estimate(shared: SharedSpending, gate: BudgetGate | None) -> float:
        """The credits to set aside for a run: the dearest this writer saw, else the job's
        average, else none (the gate then sends one run at a time until a cost is seen)."""
        if gate is None or gate.budget.max_credits is None:
            return 0.0
        return gate.dearest_run or shared.average_run() or 0.0

    def _busy_rows(self, change: int) -> None:
        """Count rows between their budget admission and their answer."""
        self._busy += change
        if self._busy == 0:
            self._idle.set()
        else:
            self._idle.clear()


def _cost(result: RowResult | None) -> float | None:
    """What a finished row's run cost, as the service reported it."""
    return result.outcome.credits if result is not None and result.outcome else None
