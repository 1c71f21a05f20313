"""The row journal: what is reused, by whom, and how it stays bounded.

The first tests drive :class:`RowJournal` directly; the rest run real fan-outs against the
emulator and count, at the emulator, what was paid for.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import dagster_runwf.engine.journal as journal_package
from dagster_runwf import (
    AITutorWorkflow,
    Budget,
    BudgetReachedError,
    ConfigError,
    CreditsExhaustedError,
    FanOutStopped,
    JournalError,
    Outcome,
    RetryPolicy,
    RowJournal,
    RowResult,
    RunchatWorkflow,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.journal import job_folder_name
from dagster_runwf.engine.storage import TEMP_PREFIX

from ..conftest import COSTLY, ECHO, KEY, engine_options, split_options

FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.02, max_attempts=2)
NO_TIME = dt.timedelta(0)
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.timezone.utc)


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def success(n: int, text: str = "answer", finished_at: dt.datetime | None = None) -> RowResult:
    return RowResult(
        n,
        digest(n),
        "succeeded",
        outcome=Outcome(
            result=text,
            citations=("https://a.example", "https://b.example"),
            outputs={"out_1": [1, 2], "out_2": "x"},
            output_labels={"Numbers": "out_1"},
            metadata={"tokens": 12},
            instance_id="inst-1",
            credits=2.0,
        ),
        attempts=2,
        latency_s=0.5,
        finished_at=finished_at or dt.datetime.now(dt.timezone.utc),
    )


def failure(n: int) -> RowResult:
    return RowResult(n, digest(n), "failed", error="it failed", error_type="RunFailedError")


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- the journal on its own ---------------------------------------------------------------


def test_a_recorded_row_comes_back_whole_to_the_same_job(tmp_path: Path) -> None:
    with RowJournal(tmp_path, job_id="night-1") as journal:
        journal.record([success(1, finished_at=NOW), failure(2)])
    again = RowJournal(tmp_path, job_id="night-1")
    found = again.lookup(digest(1))
    assert found is not None and found.source == "journal"
    assert found.outcome == success(1).outcome
    assert (found.status, found.attempts, found.latency_s, found.finished_at) == (
        "succeeded",
        2,
        0.5,
        NOW,
    )
    failed = again.lookup(digest(2))
    assert failed is not None and failed.status == "failed"
    assert failed.error == "it failed"
    assert again.lookup(digest(3)) is None
    assert again.spent() == (2, 2.0)


def test_hashes_sharing_their_first_64_bits_are_told_apart(tmp_path: Path) -> None:
    twins = [f"{n:064x}" for n in (1, 2)]  # both start with 16 zeros
    with RowJournal(tmp_path, job_id="a") as journal:
        journal.record([dataclasses.replace(success(n, f"answer {n}"), input_hash=h)
                        for n, h in enumerate(twins)])  # fmt: skip
    for journal in (RowJournal(tmp_path, job_id="a"),
                    RowJournal(tmp_path, job_id="b", incremental=True)):  # fmt: skip
        found = [journal.lookup(h) for h in twins]
        assert [f.outcome.result if f and f.outcome else None for f in found] == [
            "answer 0",
            "answer 1",
        ]
    again = RowJournal(tmp_path, job_id="a")
    assert again.finished_rows == again.spent()[0] == 2, "twins are two rows"


def test_a_new_job_starts_fresh_unless_incremental(tmp_path: Path) -> None:
    with RowJournal(tmp_path, job_id="night-1") as journal:
        journal.record([success(1), failure(2)])
    assert RowJournal(tmp_path, job_id="night-2").lookup(digest(1)) is None
    incremental = RowJournal(tmp_path, job_id="night-2", incremental=True)
    assert incremental.lookup(digest(1)) is not None
    assert incremental.lookup(digest(2)) is None, "failed rows are retried, not reused"
    assert incremental.spent() == (0, 0.0), "earlier jobs' runs are not this job's spending"


def test_incremental_reuse_respects_max_age_and_version(tmp_path: Path) -> None:
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)
    with RowJournal(tmp_path, job_id="a", version="prompt-v1") as journal:
        journal.record([success(1, finished_at=old), success(2)])
    recent = RowJournal(tmp_path, job_id="b", incremental=True, version="prompt-v1",
                        max_age=dt.timedelta(days=7))  # fmt: skip
    assert recent.lookup(digest(1)) is None
    assert recent.lookup(digest(2)) is not None
    other_version = RowJournal(tmp_path, job_id="b", incremental=True, version="prompt-v2")
    assert other_version.lookup(digest(2)) is None


def test_the_latest_success_wins(tmp_path: Path) -> None:
    with RowJournal(tmp_path, job_id="a") as journal:
        journal.record([success(1, "old answer")])
    time.sleep(0.01)
    with RowJournal(tmp_path, job_id="b") as journal:
        journal.record([success(1, "new answer")])
    found = RowJournal(tmp_path, job_id="c", incremental=True).lookup(digest(1))
    assert found is not None and found.outcome is not None
    assert found.outcome.result == "new answer"


def test_compaction_keeps_the_journal_bounded_across_nights(tmp_path: Path) -> None:
    for night in range(6):
        time.sleep(0.002)  # file names order by time
        with RowJournal(
            tmp_path, job_id=f"night-{night}", keep_jobs=2, keep_recent=NO_TIME
        ) as journal:
            for batch in range(3):
                journal.record([success(n, f"night {night}") for n in range(batch * 10, 50)])
            journal.record([failure(100 + night)])
    job_folders = [p for p in (tmp_path / "jobs").iterdir() if any(p.iterdir())]
    assert len(job_folders) == 2
    assert all(len(list(p.iterdir())) == 1 for p in job_folders), "one file per writer"
    snapshots = list((tmp_path / "snapshots").iterdir())
    assert len(snapshots) == 1
    snapshot = pq.read_table(snapshots[0])
    assert snapshot.num_rows == 50, "one success per input; failures dropped"
    assert set(snapshot.column("status").to_pylist()) == {"succeeded"}
    latest = RowJournal(tmp_path, job_id="night-6", incremental=True).lookup(digest(7))
    assert latest is not None and latest.outcome is not None
    assert latest.outcome.result == "night 5"
    # The most recent job is still whole: its failure is still "done" for that job.
    assert RowJournal(tmp_path, job_id="night-5").lookup(digest(105)) is not None


def test_recent_jobs_are_never_folded_and_folded_jobs_still_resume(tmp_path: Path) -> None:
    """A backfill: many jobs at once; one of them is re-executed after it was folded."""
    for partition in range(5):
        with RowJournal(tmp_path, job_id=f"day-{partition}", keep_jobs=1) as journal:
            journal.record([success(partition), failure(100 + partition)])
    assert len(list((tmp_path / "jobs").iterdir())) == 5, "all written today: all kept"

    with RowJournal(tmp_path, job_id="day-9", keep_jobs=1, keep_recent=NO_TIME):
        pass  # a compaction a day later folds the other jobs
    kept = [p.name for p in (tmp_path / "jobs").iterdir() if any(p.iterdir())]
    assert kept == [job_folder_name("day-4")], "only the most recent (keep_jobs=1) is whole"
    resumed = RowJournal(tmp_path, job_id="day-2")
    assert resumed.lookup(digest(2)) is not None, "its success lives on in the snapshot"
    assert resumed.lookup(digest(102)) is None, "its failure is tried again"
    assert resumed.spent() == (1, 2.0)
    assert RowJournal(tmp_path, job_id="day-7").finished_rows == 0


def test_a_long_run_merges_its_small_files(tmp_path: Path) -> None:
    journal = RowJournal(tmp_path, job_id="long", flush_interval_s=0)
    for n in range(200):
        journal.record([success(n)])
    assert len(files(tmp_path)) < 70
    journal.close()
    assert len(files(tmp_path)) == 1
    assert RowJournal(tmp_path, job_id="long").finished_rows == 200


def test_leftover_temporary_files_are_ignored_then_removed(tmp_path: Path) -> None:
    with RowJournal(tmp_path, job_id="a") as journal:
        journal.record([success(1)])
    folder = next((tmp_path / "jobs").iterdir())
    torn = folder / f"{TEMP_PREFIX}deadbeef-20261120T000000Z-x-000001.parquet"
    torn.write_bytes(b"PAR1 half a file")
    os.utime(torn, (time.time() - 7200, time.time() - 7200))
    journal = RowJournal(tmp_path, job_id="a")
    assert journal.lookup(digest(1)) is not None
    journal.compact()
    assert not torn.exists()


def test_clear_deletes_everything(tmp_path: Path) -> None:
    with RowJournal(tmp_path / "j", job_id="a") as journal:
        journal.record([success(1)])
    journal = RowJournal(tmp_path / "j", job_id="a")
    journal.clear()
    assert not (tmp_path / "j").exists()
    assert journal.lookup(digest(1)) is None
    assert RowJournal(tmp_path / "j", job_id="a").finished_rows == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"job_id": ""}, "job_id"),
        ({"job_id": "a", "max_age": dt.timedelta(0)}, "max_age"),
        ({"job_id": "a", "keep_jobs": 0}, "keep_jobs"),
    ],
)
def test_bad_journal_settings_are_named(tmp_path: Path, settings: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RowJournal(tmp_path, **settings)


# -- through the engine, counted at the emulator ------------------------------------------


def table(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": texts})


def run(emu: Emulator, frame: pd.DataFrame, journal: RowJournal, **settings: Any) -> Any:
    settings.setdefault("retry", FAST_RETRY)
    options, rest = split_options(emu.aitutor_url, settings)
    return enrich(frame, AITutorWorkflow("wf_echo", ["text"]), options, journal=journal, **rest)


def runs_at(emu: Emulator) -> int:
    """Runs the emulator carried out (and charged): refused requests do not count."""
    return sum(emu.stats()["runs_by_workflow"].values())


@pytest.fixture
def echo(start_emulator: Any) -> Emulator:
    return start_emulator(rate_limit_enabled=False, workflows=[ECHO])


def test_a_rerun_after_a_fatal_stop_sends_only_unfinished_rows(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 30}})
    frame = table([f"row {i}" for i in range(80)])
    with pytest.raises(FanOutStopped) as stopped:
        run(emu, frame, RowJournal(tmp_path, job_id="run-1"), concurrency=4)
    assert isinstance(stopped.value.cause, CreditsExhaustedError)
    assert runs_at(emu) == 30
    assert RowJournal(tmp_path, job_id="run-1").finished_rows == 30, "every paid row kept"

    emu.update_config({"keys": {KEY: {"credits": 1000}}})  # the user tops up, then retries
    done = run(emu, frame, RowJournal(tmp_path, job_id="run-1"), concurrency=4)
    assert runs_at(emu) == 80, "the 30 finished rows were not paid again"
    assert (done.stats.reused, done.stats.sent) == (30, 50)
    out = done.to_pandas()
    assert out["wf_status"].eq("succeeded").all()
    assert out["wf_reused"].sum() == 30
    assert [r.split(" [")[0] for r in out["wf_result"]] == [f"echo:row {i}" for i in range(80)]


def test_row_errors_are_done_but_exhausted_retries_are_tried_again(
    start_emulator: Any, tmp_path: Path
) -> None:
    flaky = {**ECHO, "id": "wf_flaky", "faults": {"fail_attempts": 2}}
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO, flaky])
    frame = table(["good", "bad input"])
    first = run(emu, frame, RowJournal(tmp_path, job_id="j"))
    assert list(first.to_pandas()["wf_error_type"].fillna("")) == ["", "RunFailedError"]
    second = run(emu, frame, RowJournal(tmp_path, job_id="j"))
    assert second.stats.sent == 0, "a row error is a finished row for this job"

    journal = RowJournal(tmp_path / "flaky", job_id="j")
    flaky_wf = AITutorWorkflow("wf_flaky", ["text"])
    options = engine_options(emu.aitutor_url)
    fast = dataclasses.replace(options, retry=FAST_RETRY)
    once = enrich(frame[:1], flaky_wf, fast, journal=journal)
    assert once.to_pandas()["wf_error_type"][0] == "ServerError"
    journal.close()
    again = enrich(frame[:1], flaky_wf, options, journal=RowJournal(tmp_path / "flaky", job_id="j"))
    assert again.stats.sent == 1 and again.stats.succeeded == 1


def test_incremental_nights_pay_only_for_new_and_changed_rows(
    echo: Emulator, tmp_path: Path
) -> None:
    night_1 = table([f"company {i}" for i in range(100)])
    run(echo, night_1, RowJournal(tmp_path, job_id="2026-11-20", incremental=True))
    assert runs_at(echo) == 100

    night_2 = table(
        [f"company {i}" for i in range(100) if i % 20]  # 5 rows removed
        + [f"company {i} (renamed)" for i in range(5)]  # 5 changed
        + [f"company {i}" for i in range(100, 110)]  # 10 new
    )
    result = run(echo, night_2, RowJournal(tmp_path, job_id="2026-11-21", incremental=True))
    assert runs_at(echo) == 115
    assert (result.stats.sent, result.stats.reused) == (15, 95)

    fresh = run(echo, night_2, RowJournal(tmp_path, job_id="2026-11-22"))
    assert fresh.stats.sent == 110, "without incremental a new job pays for every row"


def test_a_run_budget_is_never_exceeded_and_counts_earlier_attempts(
    echo: Emulator, tmp_path: Path
) -> None:
    frame = table([f"row {i}" for i in range(60)])
    with pytest.raises(FanOutStopped) as stopped:
        run(echo, frame, RowJournal(tmp_path, job_id="j"), budget=Budget(max_runs=25),
            concurrency=8)  # fmt: skip
    cause = stopped.value.cause
    assert isinstance(cause, BudgetReachedError)
    assert runs_at(echo) == 25
    assert (cause.runs_spent, cause.rows_left) == (25, 35)
    assert "max_runs=25" in str(stopped.value) and "35 rows are not done yet" in str(stopped.value)

    with pytest.raises(FanOutStopped):  # same budget, same job: nothing more to spend
        run(echo, frame, RowJournal(tmp_path, job_id="j"), budget=Budget(max_runs=25))
    assert runs_at(echo) == 25

    done = run(echo, frame, RowJournal(tmp_path, job_id="j"), budget=Budget(max_runs=60))
    assert runs_at(echo) == 60 and done.stats.rows == 60


def test_a_credit_budget_is_never_exceeded(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[COSTLY])
    frame = pd.DataFrame({"text_n1": [f"row {i}" for i in range(40)]})
    with pytest.raises(FanOutStopped) as stopped:
        enrich(
            frame,
            RunchatWorkflow("costly", ["text_n1"]),
            engine_options(emu.runchat_url, concurrency=8),
            budget=Budget(max_credits=20),
            journal=RowJournal(tmp_path, job_id="j"),
        )
    cause = stopped.value.cause
    assert isinstance(cause, BudgetReachedError)
    runs = runs_at(emu)
    assert runs * 3 <= 20 and runs == 6
    assert cause.credits_spent == 18.0


def test_a_credit_budget_needs_a_service_that_reports_costs(echo: Emulator) -> None:
    with pytest.raises(ConfigError, match=r"cap its paid runs with Budget\(max_runs=\.\.\.\)"):
        enrich(table(["a"]), AITutorWorkflow("wf_echo", ["text"]),
               engine_options(echo.aitutor_url), budget=Budget(max_credits=5))  # fmt: skip
    assert runs_at(echo) == 0


def test_identical_rows_are_paid_once_even_beyond_the_dedup_cache(
    echo: Emulator, tmp_path: Path
) -> None:
    frame = table([f"row {i % 10}" for i in range(50)])
    result = run(echo, frame, RowJournal(tmp_path, job_id="j"), dedup_cache_size=0,
                 concurrency=1)  # fmt: skip
    assert runs_at(echo) == 10
    assert result.stats.sent == 10
    assert result.stats.reused + result.stats.deduplicated == 40


class FullDisk(RowJournal):
    """A journal whose disk fills up after the first write."""

    def record(self, results: Any) -> None:
        if self.finished_rows:
            raise OSError(28, "No space left on device")
        super().record(results)


def test_a_journal_that_cannot_write_stops_the_run_clearly(echo: Emulator, tmp_path: Path) -> None:
    frame = table([f"row {i}" for i in range(500)])
    with pytest.raises(JournalError, match=r"could not record .* No space left on device"):
        run(echo, frame, FullDisk(tmp_path, job_id="j", flush_interval_s=0.05), concurrency=4)
    assert runs_at(echo) < 500, "no further rows were sent"


def test_the_journal_package_imports_its_parts_in_one_order() -> None:
    """Each part of the journal imports only parts listed before it (no cycles), in the
    order its package docstring gives."""
    order = ["schema", "files", "damage", "location", "index", "recorded", "store", "loading",
             "merging", "compaction", "generations", "history", "earlier", "export",
             "row_journal"]  # fmt: skip
    package = Path(journal_package.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py")) == sorted([*order, "__init__"])
    for position, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
        assert imported <= set(order[:position]), f"{name} imports {imported}"
