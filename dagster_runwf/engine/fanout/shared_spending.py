"""What a job's writers spend, counted together in the claim store (:mod:`..claims`), so a
budget holds across them: two writers with ``max_runs=50`` pay for 50 runs together, two with
``max_credits=20`` for about 20 credits together.

Every writer of the job counts, with a budget of its own or not. A run is counted before it
is sent, and given back if it never went out. What it costs is known only once it is
answered, so an estimate is set aside before it is sent — the dearest run this writer has
seen, else the job's average run so far, else nothing — and replaced by the cost the service
reported once it answers. A writer that has not seen a run's cost yet sends one run at a
time (:class:`~dagster_runwf.engine.budget.BudgetGate`), so together the writers pass a
credit cap by at most one run's cost each.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..budget import Budget
from ..claims import RowClaims, Spending


@dataclass(frozen=True, slots=True)
class Reservation:
    """One run counted for the job, and the credits set aside for it."""

    credits: float


class SharedSpending:
    """One writer's view of what its job spent with the job's other writers.

    Args:
        claims: the job's claims (their store keeps the counts).
        budget: this writer's caps (``None``: it only counts, for the others).
        runs_at_open: runs the job's journal shows (the count is at least that).
        credits_at_open: credits the job's journal shows.
    """

    def __init__(
        self,
        claims: RowClaims,
        budget: Budget | None,
        *,
        runs_at_open: int,
        credits_at_open: float,
    ) -> None:
        self._claims = claims
        self._max_runs = None if budget is None else budget.max_runs
        self._max_credits = None if budget is None else budget.max_credits
        self._runs_at_open = runs_at_open
        self._credits_at_open = credits_at_open
        self.runs = float(runs_at_open)
        """The job's runs, as last counted."""
        self.credits = credits_at_open
        """The job's credits (spent and set aside), as last counted."""

    def average_run(self) -> float | None:
        """What the job's runs cost on average so far, if any cost was counted."""
        if self.runs <= 0 or self.credits <= 0:
            return None
        return self.credits / self.runs

    async def reserve(self, credits: float) -> Reservation | None:
        """Count one run and set ``credits`` aside for it, within this writer's caps;
        ``None`` (and nothing counted) when a cap would be passed."""
        if not await self._add("runs", 1, limit=self._max_runs):
            return None
        if self._max_credits is None:
            return Reservation(0.0)
        if not await self._add("credits", credits, limit=self._max_credits):
            await self._add("runs", -1)
            return None
        return Reservation(credits)

    async def settle(self, reservation: Reservation, *, sent: bool, cost: float | None) -> None:
        """The reserved run is over: give it back if it was never sent; else count what it
        cost instead of what was set aside."""
        if not sent:
            await self._add("runs", -1)
        spent = (cost or 0.0) if sent else 0.0
        if spent != reservation.credits:
            await self._add("credits", spent - reservation.credits)

    async def _add(self, what: Spending, amount: float, *, limit: float | None = None) -> bool:
        """Count ``amount`` of ``what`` (see :meth:`~..claims.ClaimStore.add_spent`), and
        note the job's count."""
        if what == "runs":
            counted, self.runs = await self._claims.add_spent(
                what, amount, at_least=self._runs_at_open, limit=limit
            )
        else:
            counted, self.credits = await self._claims.add_spent(
                what, amount, at_least=self._credits_at_open, limit=limit
            )
        return counted
