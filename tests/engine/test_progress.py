"""Progress that says what the run waits for: the key's rate, at what rate, and an ETA
based on it, against the emulator enforcing a low per-key rate over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dagster_runwf import AITutorWorkflow, Progress, RowJournal, run_workflow_rows_sync
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.ratelimit import FallbackWindowStore, RateLimiter, SqliteWindowStore
from dagster_runwf.services.rate import Rate

from ..conftest import ECHO, KEY, engine_options

RATE = 8
"""Requests per second the emulator allows the test key (a run of 24 rows takes ~3 s)."""


def rate_limited_emulator(start: Callable[..., Emulator], *, latency: float = 0.0) -> Emulator:
    workflow = {**ECHO, "latency": latency}
    return start(workflows=[workflow], keys={KEY: {"aitutor_rate_limit": RATE}})


def run(
    emu: Emulator, texts: list[str], *, journal: RowJournal | None = None, **options: Any
) -> tuple[list[tuple[float, Progress]], float]:
    """The run's progress reports, each with the time it came; and the time the run ended."""
    reports: list[tuple[float, Progress]] = []
    settings: dict[str, Any] = {
        "rate": f"{RATE}/s",
        "rate_limit_store": "memory",
        "progress_interval_s": 0.2,
        **options,
    }
    run_workflow_rows_sync(
        AITutorWorkflow("wf_echo", ["text"]),
        [{"text": text} for text in texts],
        engine_options(emu.aitutor_url, **settings),
        journal=journal,
        on_progress=lambda p: reports.append((time.monotonic(), p)),
    )
    return reports, time.monotonic()


def texts(n: int) -> list[str]:
    return [f"row-{i}" for i in range(n)]


def test_a_run_paced_by_the_key_says_so_with_a_steady_eta(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = rate_limited_emulator(start_emulator)
    reports, ended = run(emu, texts(24))
    assert emu.stats()["by_status"]["200"] == 24

    (_, first), *during = reports
    assert first.starting and first.done == 0
    assert first.to_send == 24 and first.rate == f"{RATE}/s" and first.rate_bound
    assert first.eta_s == pytest.approx(24 / RATE)
    assert first.plan() == f"24 rows to send at {RATE}/s (the key's rate): about 3 s"

    unfinished = [(at, p) for at, p in during if p.to_send]
    assert len(unfinished) >= 5, [str(p) for _, p in during]
    # Every report while rows were still to send said the key's rate paced the run,
    # and based its ETA on it: the rows left to pay for at that rate.
    for _, report in unfinished[:-1]:
        assert report.rate_bound and report.rate_per_s == RATE, str(report)
        assert report.to_send == 24 - report.done
        assert report.eta_s == pytest.approx(report.to_send / RATE)
        assert f"rate-bound at {RATE}/s" in str(report)
    etas = [report.eta_s or 0.0 for _, report in unfinished[:-1]]
    assert etas == sorted(etas, reverse=True)  # never swings up
    # And it held: within a factor of 3 of the time the run really had left.
    for at, report in unfinished[:-1]:
        left = ended - at
        if left >= 1.0:
            assert left / 3 <= (report.eta_s or 0.0) <= left * 3, (str(report), left)


def test_rows_answered_without_a_request_are_not_counted_against_the_rate(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = rate_limited_emulator(start_emulator)
    with RowJournal(tmp_path, job_id="job") as journal:
        run(emu, texts(10), journal=journal)
    rows = texts(30) + texts(4)  # 10 journaled, 4 identical to others: 20 to send
    with RowJournal(tmp_path, job_id="job") as journal:
        reports, _ = run(emu, rows, journal=journal)
    first = reports[0][1]
    assert first.starting and first.total == 34 and first.to_send == 20
    assert first.eta_s == pytest.approx(20 / RATE)
    assert first.plan() == f"20 rows to send at {RATE}/s (the key's rate): about 2 s"
    assert reports[-1][1].to_send == 0


def test_a_run_waiting_for_slow_answers_is_not_rate_bound(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = rate_limited_emulator(start_emulator, latency=0.4)
    # Two rows in flight, 0.4 s an answer: at most 5 requests a second of the key's 8.
    reports, _ = run(emu, texts(12), concurrency=2)
    during = [p for _, p in reports[1:] if p.to_send]
    assert during, [str(p) for _, p in reports]
    assert not any(p.rate_bound for p in during), [str(p) for p in during]
    assert all("rate-bound" not in str(p) for p in during)
    assert all(p.rate == f"{RATE}/s" for p in during)  # the rate is known all the same


def test_a_run_sharing_the_key_with_another_counts_on_its_share_of_the_rate(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # Two fan-outs at once, each with its own limiter on one SQLite window store, as two
    # processes of a host would be: each gets about half of the key's 8/s.
    emu = rate_limited_emulator(start_emulator)

    def limiter() -> RateLimiter:
        store = SqliteWindowStore(tmp_path / "limits.sqlite", "the key")
        return RateLimiter(
            Rate(RATE, 1.0), explicit=True, store=FallbackWindowStore(store, window_s=1.0)
        )

    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(run, emu, [f"{name}-{i}" for i in range(16)], limiter=limiter())
            for name in ("a", "b")
        ]
        outcomes = [future.result() for future in runs]
    assert emu.stats()["by_status"]["200"] == 32
    for reports, ended in outcomes:
        during = [(at, p) for at, p in reports[1:] if p.to_send]
        assert all(p.rate_bound and p.rate == f"{RATE}/s" for _, p in during)
        # The share comes down from the whole rate towards half, and the ETA with it (how
        # far within a 2 s run depends on how closely the two started: 0.77 on a loaded
        # machine).
        assert min(p.rate_share for _, p in during) < 0.85, [str(p) for _, p in during]
        for at, report in during:
            assert report.rate_per_s == pytest.approx(RATE * report.rate_share)
            assert report.to_send is not None and report.rate_per_s is not None
            assert report.eta_s == pytest.approx(report.to_send / report.rate_per_s)
            if report.rate_share < 0.95:
                assert "% of it for this run" in str(report)
            left = ended - at
            if left >= 1.0:
                assert left / 3 <= (report.eta_s or 0.0) <= left * 3, (str(report), left)


class OneShotRows:
    """Rows with a length that can be read only once (a stream with a known count)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = iter(rows)
        self._count = len(rows)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> OneShotRows:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)


def test_rows_read_only_once_are_planned_as_the_rows_less_the_journaled_ones(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emulator = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    workflow = AITutorWorkflow("wf_echo", ["text"])
    options = engine_options(emulator.aitutor_url, rate="1000/s", rate_limit_store="memory")
    with RowJournal(tmp_path, job_id="job") as journal:
        run_workflow_rows_sync(workflow, [{"text": t} for t in texts(10)], options, journal=journal)
    reports: list[Progress] = []
    with RowJournal(tmp_path, job_id="job") as journal:
        rows = OneShotRows([{"text": t} for t in texts(30)])
        run_workflow_rows_sync(workflow, rows, options, journal=journal, on_progress=reports.append)
    assert reports[0].starting and reports[0].to_send == 20  # not read ahead: estimated
    assert reports[-1].done == 30 and reports[-1].to_send == 0
    assert emulator.stats()["by_status"]["200"] == 30
