"""Several ``runwf enrich`` processes on one key share its rate with no configuration.

Each test starts three real ``runwf enrich`` subprocesses, as a user would in three
terminals, on one key against the emulator's 10 requests/s limit, and counts at the server
what was answered 429.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY, wait_for
from ..outages import RedisServer, hold_lock
from .test_cli import Run, Started, environment, finish, start

ROWS = 40
"""Rows per job: three jobs of 40 rows take 12 s at the key's 10/s."""


def start_jobs(tmp_path: Path, env: dict[str, str], *extra: str, rows: int = ROWS) -> list[Started]:
    """Three ``runwf enrich`` processes at once, each on its own rows and files."""
    started = []
    for job in range(3):
        texts = [f"job{job}-row{i:03d}" for i in range(rows)]
        pd.DataFrame({"body": texts}).to_csv(tmp_path / f"in{job}.csv", index=False)
        args = ["enrich", f"in{job}.csv", f"out{job}.parquet", "--service", "aitutor",
                "--workflow", "wf_echo", "--map", "text=body", "-q", *extra]  # fmt: skip
        started.append(start(args, env, tmp_path))
    return started


def enrich_jobs(tmp_path: Path, env: dict[str, str], *extra: str) -> list[Run]:
    """Three ``runwf enrich`` processes at once, to the end."""
    return [finish(s, timeout=180) for s in start_jobs(tmp_path, env, *extra)]


def requests_seen(emu: Emulator) -> int:
    return sum(emu.stats()["by_status"].values())


def rejected_share(emu: Emulator) -> float:
    """The share of requests the emulator answered 429."""
    by_status = emu.stats()["by_status"]
    return by_status.get("429", 0) / sum(by_status.values())


@pytest.fixture
def limited(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The echo workflow behind AI Tutor's 10 requests/s limit, for one key."""
    return start_emulator(workflows=[ECHO], aitutor_rate_limit=10, keys={KEY: {"credits": 5000}})


def check_all_succeeded(runs: Sequence[Run], rows: int = ROWS) -> None:
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert f"succeeded {rows}" in run.stdout, run.stdout


def check_one_warning(runs: Sequence[Run], store: str, error: str) -> None:
    """Each job warned once, naming the store and the failure, and went back to it."""
    for run in runs:
        warnings = [line for line in run.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1, run.stderr
        assert warnings[0].startswith(f"runwf: warning: rate-limit store {store}"), warnings
        assert f"is unavailable ({error}" in warnings[0]
        assert "Traceback" not in run.stderr
        assert f"runwf: rate-limit store {store}" in run.stderr  # ... answers again


def test_three_cli_jobs_on_one_key_share_its_rate_with_no_configuration(
    limited: Emulator, tmp_path: Path
) -> None:
    env = environment(limited, XDG_CACHE_HOME=str(tmp_path / "cache"))
    runs = enrich_jobs(tmp_path, env)
    check_all_succeeded(runs)
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs on one key: {share:.1%}")
    assert share < 0.01


OUTAGE_ROWS = 80
"""Rows per job when the store fails mid-run: 24 s at the key's 10/s."""


def test_a_locked_default_store_slows_the_jobs_down_but_does_not_stop_them(
    limited: Emulator, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = environment(limited, XDG_CACHE_HOME=str(cache))
    started = start_jobs(tmp_path, env, rows=OUTAGE_ROWS)
    wait_for(lambda: requests_seen(limited) >= 30, 60, "the jobs to be under way")
    # Longer than the store's 5 s timeout: every job's next decision fails.
    locked = hold_lock(cache / "dagster-runwf" / "rate-limits.sqlite")
    wait_for(lambda: requests_seen(limited) >= 70, 60, "the jobs to go on without it")
    locked.release()
    runs = [finish(s, timeout=180) for s in started]
    check_all_succeeded(runs, OUTAGE_ROWS)
    check_one_warning(runs, "SQLite file", "OperationalError: database is locked")
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs, the default store locked mid-run: {share:.1%}")
    assert share < 0.05


@pytest.mark.parametrize("outage", ["killed", "paused"])
def test_a_redis_store_killed_or_paused_mid_run_is_used_again_once_back(
    limited: Emulator, tmp_path: Path, redis_server: RedisServer, outage: str
) -> None:
    env = environment(limited, XDG_CACHE_HOME=str(tmp_path / "cache"))
    started = start_jobs(tmp_path, env, "--rate-limit-store", redis_server.url, rows=OUTAGE_ROWS)
    wait_for(lambda: requests_seen(limited) >= 30, 60, "the jobs to be under way")
    if outage == "killed":
        redis_server.kill()
    else:
        redis_server.pause()
    wait_for(lambda: requests_seen(limited) >= 80, 60, "the jobs to go on without it")
    if outage == "killed":
        redis_server.start()
    else:
        redis_server.resume()
    runs = [finish(s, timeout=180) for s in started]
    check_all_succeeded(runs, OUTAGE_ROWS)
    error = "ConnectionError" if outage == "killed" else "TimeoutError"
    check_one_warning(runs, "Redis at", error)
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs, Redis {outage} mid-run: {share:.1%}")
    assert share < 0.05
