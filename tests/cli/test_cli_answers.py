"""``runwf enrich`` on answers that hold the word ``undefined``: a variable the workflow uses
was not sent (a forgotten ``--map``), which AI Tutor answers as if it were the text
``undefined``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dagster_runwf.emulator import Emulator

from ..conftest import KEY
from .test_cli import environment, runwf_all

TIERED = {
    "id": "wf_tiered",
    "service": "aitutor",
    "variables": ["company", "tier"],
    "template": "Profile of {{company}} (tier {{tier}})",
}


def test_answers_holding_undefined_are_warned_about_naming_the_unsent_column(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[TIERED], rate_limit_enabled=False, keys={KEY: {}})
    frame = pd.DataFrame({"company": [f"c{i}" for i in range(5)], "tier": ["gold"] * 5})
    frame.to_csv(tmp_path / "companies.csv", index=False)
    forgot = ["--service", "aitutor", "--workflow", "wf_tiered", "--map", "company=company"]
    warned, failed, fine = runwf_all(
        [
            ["enrich", "companies.csv", "warned.parquet", *forgot],
            ["enrich", "companies.csv", "failed.parquet", *forgot, "--fail-on-undefined"],
            ["enrich", "companies.csv", "fine.parquet", *forgot, "--map", "tier=tier"],
        ],
        env=environment(emu),
        cwd=tmp_path,
    )
    assert emu.stats()["undefined_substitutions"] == 10, "two runs forgot tier, 5 rows each"

    # Exit 0, the answers written, and a warning naming the column that was not sent.
    assert warned.returncode == 0, warned.stderr
    (line,) = [ln for ln in warned.stderr.splitlines() if "undefined" in ln]
    assert line.startswith("runwf: warning: 5 of 5 succeeded answers hold the word 'undefined'")
    assert "(rows 0, 1, 2, ...)" in line
    assert "the input columns not sent are: tier" in line and "--map tier=tier" in line
    assert "--fail-on-undefined" in line
    assert (pd.read_parquet(tmp_path / "warned.parquet")["wf_status"] == "succeeded").all()

    # With --fail-on-undefined: the same, as the error, with exit status 3.
    assert failed.returncode == 3
    assert "tier" in failed.error_line() and (tmp_path / "failed.parquet").exists()

    # With every variable sent: no warning.
    assert fine.returncode == 0 and "undefined" not in fine.stderr
