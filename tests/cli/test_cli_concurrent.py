"""Two identical ``runwf enrich`` commands running at once, as real subprocesses against the
emulator over loopback HTTP: rows are claimed before they are sent, so neither pays for a
row the other is paying for, and a budget holds across both. The emulator counts, server
side, how often each row ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, wait_for
from .test_cli import (
    ENRICH_ECHO,
    Run,
    answer,
    echo_texts,
    emulator_sha,
    environment,
    finish,
    start,
)

ROWS, CONCURRENCY = 200, 8
SLOW_ECHO = {**ECHO, "latency": {"min_s": 0.03, "max_s": 0.06}}


def enrich_args(*extra: str) -> list[str]:
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    return [*args, "--concurrency", str(CONCURRENCY), "--rate", "unlimited", *extra]


def runs_by_row(emu: Emulator) -> dict[str, int]:
    runs: dict[str, int] = emu.stats()["runs_by_sha256"]
    return runs


def check_full_table(run: Run, folder: Path, texts: list[str]) -> None:
    assert run.returncode == 0, run
    out = pd.read_parquet(folder / "out.parquet")
    assert list(out["text"]) == texts
    assert (out["wf_status"] == "succeeded").all()
    assert [answer(r) for r in out["wf_result"]] == [f"echo:{t}" for t in texts]


@pytest.fixture
def slow_echo(start_emulator: Callable[..., Emulator], tmp_path: Path) -> Emulator:
    pd.DataFrame({"text": echo_texts(ROWS)}).to_csv(tmp_path / "in.csv", index=False)
    return start_emulator(workflows=[SLOW_ECHO], rate_limit_enabled=False)


def test_two_identical_commands_at_once_pay_for_no_row_twice(
    slow_echo: Emulator, tmp_path: Path
) -> None:
    env = environment(slow_echo)
    started = [start(enrich_args(), env, tmp_path) for _ in range(2)]
    runs = [finish(s, timeout=120) for s in started]
    texts = echo_texts(ROWS)
    for run in runs:
        check_full_table(run, tmp_path, texts)
    paid = runs_by_row(slow_echo)
    assert set(paid) == {emulator_sha(t) for t in texts}
    assert [n for n in paid.values() if n > 1] == []


def test_a_second_command_started_later_pays_for_no_row_twice(
    slow_echo: Emulator, tmp_path: Path
) -> None:
    env = environment(slow_echo)
    first = start(enrich_args(), env, tmp_path)
    wait_for(lambda: sum(runs_by_row(slow_echo).values()) >= ROWS // 4, 60, "a quarter of rows")
    second = start(enrich_args(), env, tmp_path)
    texts = echo_texts(ROWS)
    for run in (finish(first, timeout=120), finish(second, timeout=120)):
        check_full_table(run, tmp_path, texts)
    paid = runs_by_row(slow_echo)
    assert len(paid) == ROWS
    assert [n for n in paid.values() if n > 1] == []


def test_two_commands_share_one_run_budget(slow_echo: Emulator, tmp_path: Path) -> None:
    env = environment(slow_echo)
    started = [start(enrich_args("--max-runs", "50"), env, tmp_path) for _ in range(2)]
    runs = [finish(s, timeout=120) for s in started]
    for run in runs:
        assert run.returncode != 0, run
        assert "budget" in run.stderr, run.stderr
    paid = runs_by_row(slow_echo)
    assert sum(paid.values()) <= 50, sum(paid.values())
    assert [n for n in paid.values() if n > 1] == []


def test_two_commands_coordinated_through_redis_pay_for_no_row_twice(
    slow_echo: Emulator, tmp_path: Path, redis_url: str
) -> None:
    env = environment(slow_echo)
    # The claims live on the Redis server instead of in the journal's SQLite file.
    started = [start(enrich_args("--claims", redis_url), env, tmp_path) for _ in range(2)]
    runs = [finish(s, timeout=120) for s in started]
    texts = echo_texts(ROWS)
    for run in runs:
        check_full_table(run, tmp_path, texts)
    paid = runs_by_row(slow_echo)
    assert len(paid) == ROWS
    assert [n for n in paid.values() if n > 1] == []
