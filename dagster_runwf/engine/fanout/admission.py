"""Budget admission: a row's first request is sent only if the job's budget admits one more
paid run (see :class:`~dagster_runwf.engine.budget.BudgetGate`); the first row it turns
away stops the fan-out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ...errors import ConfigError
from ...services.base import Workflow
from ..budget import Budget, BudgetGate
from ..results import Journal, RowResult
from .attempts import RowAttempts
from .stopping import StopSignal


class BudgetAdmission:
    """Admits rows to be sent while the budget allows; admits every row without a budget.

    Raises:
        ConfigError: a credit budget for a service that does not report what a run costs.
    """

    def __init__(
        self, budget: Budget | None, journal: Journal | None, workflow: Workflow, stop: StopSignal
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

    def open(self) -> None:
        """Start counting, from what earlier attempts of the job spent (in the journal)."""
        if self._budget is None:
            return
        runs, credits = (0, 0.0) if self._journal is None else self._journal.spent()
        self._gate = BudgetGate(self._budget, runs_spent=runs, credits_spent=credits)
        self._stop.on_stop(self._gate.close)

    async def send(
        self, send_row: Callable[[RowAttempts], Awaitable[RowResult | None]], row: RowAttempts
    ) -> RowResult | None:
        """``send_row(row)`` once the budget admits it; ``None`` if it never will."""
        gate = self._gate
        if gate is None:
            return await send_row(row)
        if not await gate.acquire():
            self._stop.budget_reached(gate, self._workflow)
            return None
        result: RowResult | None = None
        try:
            result = await send_row(row)
            return result
        finally:
            cost = result.outcome.credits if result and result.outcome else None
            gate.release(cost, sent=row.attempts > 0)
