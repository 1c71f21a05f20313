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

from ..conftest import ECHO, KEY
from .test_cli import Run, environment, finish, start

ROWS = 40
"""Rows per job: three jobs of 40 rows take 12 s at the key's 10/s."""


def enrich_jobs(tmp_path: Path, env: dict[str, str], *extra: str, jobs: int = 3) -> list[Run]:
    """``jobs`` ``runwf enrich`` processes at once, each on its own rows and files."""
    started = []
    for job in range(jobs):
        texts = [f"job{job}-row{i:03d}" for i in range(ROWS)]
        pd.DataFrame({"body": texts}).to_csv(tmp_path / f"in{job}.csv", index=False)
        args = ["enrich", f"in{job}.csv", f"out{job}.parquet", "--service", "aitutor",
                "--workflow", "wf_echo", "--map", "text=body", "-q", *extra]  # fmt: skip
        started.append(start(args, env, tmp_path))
    return [finish(s, timeout=180) for s in started]


def rejected_share(emu: Emulator) -> float:
    """The share of requests the emulator answered 429."""
    by_status = emu.stats()["by_status"]
    return by_status.get("429", 0) / sum(by_status.values())


@pytest.fixture
def limited(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The echo workflow behind AI Tutor's 10 requests/s limit, for one key."""
    return start_emulator(workflows=[ECHO], aitutor_rate_limit=10, keys={KEY: {"credits": 5000}})


def check_all_succeeded(runs: Sequence[Run]) -> None:
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert f"succeeded {ROWS}" in run.stdout, run.stdout


def test_three_cli_jobs_on_one_key_share_its_rate_with_no_configuration(
    limited: Emulator, tmp_path: Path
) -> None:
    env = environment(limited, XDG_CACHE_HOME=str(tmp_path / "cache"))
    runs = enrich_jobs(tmp_path, env)
    check_all_succeeded(runs)
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs on one key: {share:.1%}")
    assert share < 0.01
