"""``runwf enrich --retry-failed``: rows journaled as failed (here: answers that could not be
used, most likely paid) are not paid again by a rerun unless asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY
from .test_cli import RUNCHAT_KEY, echo_texts, environment, runwf

ROWS = 4


def paid_per_row(emu: Emulator) -> list[int]:
    return sorted(emu.stats()["runs_by_sha256"].values())


def test_a_rerun_pays_failed_rows_again_only_with_retry_failed(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(
        workflows=[ECHO],
        rate_limit_enabled=False,
        keys={KEY: {}, RUNCHAT_KEY: {}},
        faults={"fail_attempts": 100, "fail_with": "null_result"},
    )
    pd.DataFrame({"body": echo_texts(ROWS)}).to_csv(tmp_path / "in.csv", index=False)
    command = ["enrich", "in.csv", "out.parquet", "--service", "aitutor", "--workflow", "wf_echo"]
    command += ["--map", "text=body", "--rate", "unlimited"]

    first = runwf(*command, env=environment(emu), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out["wf_error_type"]) == ["UnusableAnswerError"] * ROWS
    assert all("--retry-failed" in e for e in out["wf_error"])
    assert paid_per_row(emu) == [2] * ROWS, "one retry of an unusable answer, no more"

    again = runwf(*command, env=environment(emu), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert paid_per_row(emu) == [2] * ROWS, "a rerun answers failed rows from the journal"

    emu.update_config({"faults": {"fail_attempts": 0}})
    retried = runwf(*command, "--retry-failed", env=environment(emu), cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out["wf_status"]) == ["succeeded"] * ROWS
    assert paid_per_row(emu) == [3] * ROWS
