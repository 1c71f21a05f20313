"""``runwf``'s messages name the command's flags (``--on-missing null``), never the Python
parameters the engine is configured with (``on_missing='null'``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY
from .test_cli import ENRICH_ECHO, environment, runwf


@pytest.fixture
def emu(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})


def enrich(emu: Emulator, folder: Path, texts: list[str | None], *flags: str, **env: str) -> Any:
    pd.DataFrame({"text": texts}).to_csv(folder / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text", *flags]
    return runwf(*args, env=environment(emu, **env), cwd=folder)


def test_a_missing_input_names_the_on_missing_flag(emu: Emulator, tmp_path: Path) -> None:
    run = enrich(emu, tmp_path, ["a", None, "b"])
    assert run.returncode == 0, run.stderr
    (error,) = pd.read_parquet(tmp_path / "out.parquet")["wf_error"].dropna()
    assert "set --on-missing null to send it as null, or --on-missing skip" in error
    assert "on_missing" not in error
    # runwf reads the CSV itself, keeping a text NA a value: no advice about read_csv.
    assert "is missing (an empty cell, or a null in Parquet)" in error
    assert "read_csv" not in error


def test_skipped_rows_are_counted_as_skipped_in_the_flags_words(
    emu: Emulator, tmp_path: Path
) -> None:
    run = enrich(emu, tmp_path, ["a", None, "b"], "--on-missing", "skip")
    assert run.returncode == 0, run.stderr
    assert "failed    1, 1 of them skipped (--on-missing skip)" in run.stdout
    table = pd.read_parquet(tmp_path / "out.parquet")
    (error,) = table["wf_error"].dropna()
    assert error == "row 1: skipped (--on-missing skip): input 'text' is missing"
    assert "on_missing" not in error
    assert list(table["wf_error_type"].dropna()) == ["RowSkippedError"]


def test_the_circuit_breaker_names_its_flag(emu: Emulator, tmp_path: Path) -> None:
    texts: list[str | None] = [f"bad {i}" for i in range(10)]
    flags = ("--max-consecutive-failures", "3", "--concurrency", "1", "--rate", "unlimited")
    run = enrich(emu, tmp_path, texts, *flags)
    assert run.returncode == 1
    line = run.error_line()
    assert "3 rows in a row failed" in line
    assert "raise --max-consecutive-failures (now 3)" in line
    assert "max_consecutive_failures" not in line
    assert sum(emu.stats()["runs_by_workflow"].values()) == 3


def test_the_flag_off_lets_every_failing_row_run(emu: Emulator, tmp_path: Path) -> None:
    texts: list[str | None] = [f"bad {i}" for i in range(30)]
    run = enrich(emu, tmp_path, texts, "--max-consecutive-failures", "0", "--rate", "unlimited")
    assert run.returncode == 0, run.stderr
    assert sum(emu.stats()["runs_by_workflow"].values()) == 30


def test_a_refused_key_names_its_environment_variable(emu: Emulator, tmp_path: Path) -> None:
    run = enrich(emu, tmp_path, ["a", "b"], AITUTOR_API_KEY="sk_not_this_one_42")
    assert run.returncode == 1
    line = run.error_line()
    assert "Check the API key ($AITUTOR_API_KEY): is it set to a current key" in line
    assert "api_key" not in line and "EnvVar" not in line
