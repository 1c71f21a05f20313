"""``plan_enrichment``: a table's plan without a request, equal to what ``enrich`` then does
with the same journal, row by row: sent, reused, deduplicated, skipped, rejected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf import AITutorWorkflow, RowJournal, enrich, plan_enrichment
from dagster_runwf.emulator import Emulator, EmulatorConfig
from dagster_runwf.engine import RowPlan
from dagster_runwf.services.base import OnMissing

from ..conftest import ECHO, engine_options


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = {"include_builtins": True, "workflows": [ECHO], "rate_limit_enabled": False}
    with Emulator(EmulatorConfig.from_dict(config)) as emulator:
        yield emulator


def runs(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def planned_then_run(
    emu: Emulator, frame: pd.DataFrame, journal: RowJournal, on_missing: OnMissing
) -> RowPlan:
    """The plan (checked free), then the run, whose counts must be the plan's."""
    workflow = AITutorWorkflow("wf_echo", ["text"], on_missing=on_missing)
    before = emu.stats()["total_requests"]
    plan = plan_enrichment(frame, workflow, journal=journal).rows
    assert emu.stats()["total_requests"] == before, "a plan sends nothing"
    options = engine_options(emu.aitutor_url)
    done = enrich(frame, workflow, options, journal=journal, keep_columns=[])
    stats = done.stats
    assert runs(emu) - before == plan.send == stats.sent
    assert (stats.reused, stats.deduplicated) == (plan.reused, plan.deduplicated)
    assert (stats.skipped, stats.invalid - stats.skipped) == (plan.skipped, plan.rejected)
    assert plan.rows == len(frame)
    return plan


def test_the_plan_is_what_the_run_does(emu: Emulator, tmp_path: Path) -> None:
    texts: list[object] = ["p1", "p2", "p1", None, {1, 2}, "bad", "p3", "p2"]
    frame = pd.DataFrame({"text": texts})
    with RowJournal(tmp_path, job_id="job") as journal:
        first = planned_then_run(emu, frame.iloc[:3], journal, "skip")
        assert (first.send, first.deduplicated) == (2, 1)
    with RowJournal(tmp_path, job_id="job") as journal:
        # A set has no JSON form: rejected; the missing input: skipped.
        second = planned_then_run(emu, frame, journal, "skip")
        assert (second.send, second.reused, second.deduplicated) == (2, 2, 2)
        assert (second.skipped, second.rejected) == (1, 1)
    with RowJournal(tmp_path, job_id="job", retry_failed=True) as journal:
        # Under on_missing="fail" the missing input is a row error: rejected, not skipped.
        third = planned_then_run(emu, frame, journal, "fail")
        assert (third.send, third.retried, third.reused) == (1, 1, 3)
        assert (third.skipped, third.rejected) == (0, 2)


def test_without_a_journal_the_cost_is_unknown(emu: Emulator) -> None:
    frame = pd.DataFrame({"text": ["a", "b"]})
    plan = plan_enrichment(frame, AITutorWorkflow("wf_echo", ["text"]))
    assert (plan.rows.send, plan.expected_credits, plan.history) == (2, None, None)
    assert "unknown" in plan.lines()[-1]
