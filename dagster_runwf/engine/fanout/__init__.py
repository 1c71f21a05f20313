"""The fan-out: rows in, workflow runs out, as many in flight as the key's rate allows.

One concept per module: :mod:`.run` wires a fan-out together (:class:`WorkflowRun`);
:mod:`.rows` feeds the input rows; :mod:`.answers` answers identical rows without paying
again; :mod:`.admission` keeps the budget; :mod:`.attempts` sends a row (rate limit,
retries, 429s); :mod:`.recorder` writes finished rows to the journal in batches;
:mod:`.stopping` holds the stop and the circuit breaker; :mod:`.progress` reports progress.
"""

from .rows import Row, Rows
from .run import WorkflowRun, run_workflow_rows, run_workflow_rows_sync

__all__ = ["Row", "Rows", "WorkflowRun", "run_workflow_rows", "run_workflow_rows_sync"]
