"""The answers earlier journal jobs gave (what ``changed_answers`` compares with), read from
journal files on disk as the step writes them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dagster_runwf.engine.journal import RowJournal
from dagster_runwf.engine.journal.earlier import earlier_answers
from dagster_runwf.engine.results import RowResult
from dagster_runwf.services.outcome import Outcome

T0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


def row(input_hash: str, answer: str | None, minutes: int, failed: bool = False) -> RowResult:
    return RowResult(
        index=0,
        input_hash=input_hash,
        status="failed" if failed else "succeeded",
        outcome=None if failed else Outcome(result=answer or ""),
        error="boom" if failed else None,
        error_type="RunFailedError" if failed else None,
        attempts=1,
        finished_at=T0 + dt.timedelta(minutes=minutes),
    )


def record(location: Path, job: str, rows: list[RowResult], version: str = "") -> None:
    with RowJournal(location, job_id=job, version=version) as journal:
        journal.record(rows)


def test_the_latest_success_of_another_job_under_the_same_version(tmp_path: Path) -> None:
    record(tmp_path, "night#1", [row("a", "a1", 0), row("b", "b1", 0), row("c", "c1", 0)])
    record(tmp_path, "night#2", [row("a", "a2", 10), row("b", None, 10, failed=True)])
    record(tmp_path, "other-version#1", [row("c", "c9", 20)], version="v2")
    record(tmp_path, "night#3", [row("a", "a3", 30), row("d", "d3", 30)])
    found = earlier_answers(
        str(tmp_path), input_hashes=["a", "b", "c", "d", "e"], leave_out_jobs=["night#3"]
    )
    # a: night#2's, the latest before; b: its failure is no answer; c: not v2's; d: only
    # in the job left out; e: never answered.
    assert found == {"a": "a2", "b": "b1", "c": "c1"}
    assert earlier_answers(str(tmp_path / "none"), input_hashes=["a"], leave_out_jobs=[]) == {}
