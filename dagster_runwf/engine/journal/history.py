"""What runs cost, from a journal's history: the credits the service reported for the paid
runs recorded at a location, for a plan's expected credits.

Every file of the location is read (its jobs' files and its snapshots: folded jobs'
successes), keeping the rows of one version whose job the caller counts (the same workflow,
or the same answers' version) and whose credits the service reported. A run whose service
reports no credits (AI Tutor) adds nothing, so such a history stays empty: its cost is
unknown, not 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..storage import Storage
from .damage import read_or_set_aside
from .files import SUFFIX


@dataclass(frozen=True)
class CreditHistory:
    """Credits reported for paid runs recorded in a journal.

    Attributes:
        runs: paid runs whose credits the service reported.
        credits: their credits, together.
    """

    runs: int = 0
    credits: float = 0.0

    @property
    def per_run(self) -> float | None:
        """Mean credits per paid run; ``None`` (unknown) with no such run."""
        return self.credits / self.runs if self.runs else None


def credit_history(
    storage: Storage, version: str, counts: Callable[[str], bool] = lambda job_id: True
) -> CreditHistory:
    """The credits of the runs recorded at ``storage``'s location under ``version``, in the
    jobs for which ``counts(job_id)`` is true. Reads every file there; damaged ones are set
    aside (as on opening) and add nothing."""
    paths = storage.list_files(storage.path("snapshots"), SUFFIX)
    for folder in storage.list_folders(storage.path("jobs")):
        paths += storage.list_files(folder, SUFFIX)
    runs, credits = 0, 0.0
    for path in paths:
        try:
            table = read_or_set_aside(storage, path)
        except FileNotFoundError:
            continue  # merged or folded meanwhile: a history is an estimate
        if table is None:
            continue
        table = table.select(["version", "job_id", "credits"]).filter(
            pc.and_(
                pc.equal(table.column("version"), version), pc.is_valid(table.column("credits"))
            )
        )
        jobs = table.column("job_id").to_pylist()
        job_counts = {job: counts(job) for job in set(jobs)}
        kept = table.filter(pa.array([job_counts[job] for job in jobs], pa.bool_()))
        runs += kept.num_rows
        credits += float(pc.sum(kept.column("credits")).as_py() or 0.0)
    return CreditHistory(runs, credits)
