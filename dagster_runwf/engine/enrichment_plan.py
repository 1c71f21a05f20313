"""A table's plan, free and exact: what enriching it would send, reuse, deduplicate, retry,
skip and reject, and what the journal's history says it would cost — with no request.

:func:`plan_enrichment` classifies the rows with the fan-out's own plan
(:func:`~.fanout.plan.plan_rows`: each row as the workers will answer it) against the
journal job the run would use, so its counts are those of the run that follows. The
expected credits are the mean credits per paid run recorded at the journal's location
(under its version, in the jobs the caller counts: the same workflow, or the same
answers' version) times the rows to send; unknown when no recorded run reported credits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..services.base import Workflow
from ..wording import setting
from .enrich import column_mapping, table_rows
from .fanout.plan import RowPlan, plan_rows
from .journal import RowJournal
from .journal.history import CreditHistory
from .results import Journal


@dataclass(frozen=True)
class EnrichmentPlan:
    """What enriching a table would do, counted without a request.

    Attributes:
        rows: the rows' counts (see :class:`RowPlan`): to send, reused, deduplicated,
            retried, skipped, rejected.
        history: the credits of the paid runs recorded in the journal (``None``: no
            journal, so no history).
    """

    rows: RowPlan
    history: CreditHistory | None = None

    @property
    def credits_per_run(self) -> float | None:
        """Mean credits of a paid run in the journal's history; ``None``: unknown."""
        return None if self.history is None else self.history.per_run

    @property
    def expected_credits(self) -> float | None:
        """The credits the rows to send are expected to cost (0 with none to send);
        ``None``: unknown (no run in the journal's history reported credits)."""
        if self.rows.send == 0:
            return 0.0
        per_run = self.credits_per_run
        return None if per_run is None else per_run * self.rows.send

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for ``--json`` and metadata): the counts, then the credits."""
        return {
            **asdict(self.rows),
            "expected_credits": self.expected_credits,
            "credits_per_run": self.credits_per_run,
            "history_runs": 0 if self.history is None else self.history.runs,
        }

    def lines(self) -> list[str]:
        """The plan as lines of text, one a count, settings named in the words in force."""
        rows = self.rows
        retry = setting("retry_failed", True)
        send = f"{_rows(rows.send)} to pay for"
        if rows.retried:
            send += f" ({rows.retried} of them failed before: sent again, {retry})"
        reused = f"{rows.reused} from the journal"
        if rows.reused_failed:
            reused += f" ({rows.reused_failed} of them failed; {retry} would send them again)"
        return [
            f"send          {send}",
            f"reused        {reused}",
            f"deduplicated  {_rows(rows.deduplicated)} identical to an earlier row, answered by it",
            f"skipped       {rows.skipped} with a missing input ({setting('on_missing', 'skip')})",
            f"rejected      {rows.rejected} whose inputs cannot be sent (row errors, unpaid)",
            f"credits       {self._credits()}",
        ]

    def _credits(self) -> str:
        expected, per_run = self.expected_credits, self.credits_per_run
        if per_run is None:
            if expected == 0:
                return "none expected (nothing to send)"
            return "unknown (no paid run in the journal reported credits)"
        assert self.history is not None and expected is not None
        runs = self.history.runs
        return (
            f"about {expected:,.4g} expected ({per_run:,.4g} a run on average over "
            f"{runs} paid run{'' if runs == 1 else 's'} in the journal)"
        )


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def plan_enrichment(
    frame: pd.DataFrame,
    workflow: Workflow,
    *,
    columns: Mapping[str, str] | None = None,
    journal: Journal | None = None,
    history_jobs: Callable[[str], bool] | None = None,
) -> EnrichmentPlan:
    """What :func:`~dagster_runwf.enrich` would do with the same arguments, without a
    request: the rows it would send, reuse, deduplicate, retry, skip and reject, and the
    credits expected from the journal's history.

    Reads the journal (in memory, and its location's files for the history) and writes
    nothing, so a plan is free and leaves the journal as it was.

    Args:
        frame: the input table.
        workflow: the workflow the rows would run through.
        columns: workflow input -> column, as for :func:`~dagster_runwf.enrich`.
        journal: the journal job the run would use (open it with the same settings:
            ``incremental`` and ``retry_failed`` change the plan); ``None``: no journal.
        history_jobs: which journal jobs' runs tell the cost (``job_id -> bool``); default
            every job at the journal's location (one location per enriched table).

    Raises:
        ConfigError: the column mapping is wrong (as :func:`~dagster_runwf.enrich`).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    mapping = column_mapping(frame, workflow, columns)
    rows = plan_rows(table_rows(frame, mapping), workflow, journal)
    history = journal.credit_history(history_jobs) if isinstance(journal, RowJournal) else None
    return EnrichmentPlan(rows, history)
