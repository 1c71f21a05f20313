"""Dagster's progress log lines of an enriched asset's step: what the run waits for, and
the plan of a run paced by the key's rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import dagster as dg
import pandas as pd

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    Progress,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.step import _progress_logger

from ..conftest import ECHO, KEY

WAITING = "waiting for the key's rate limit: Retry-After 300 s, until 12:34:56"


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_the_progress_log_line_says_what_the_run_waits_for() -> None:
    log = Log()
    report = _progress_logger(cast(Any, SimpleNamespace(log=log)))
    shared: dict[str, Any] = dict(done=3, succeeded=3, failed=0, in_flight=2, total=10)
    report(Progress(**shared, elapsed_s=6.0, rows_per_s=0.5, eta_s=14.0, waiting=WAITING))
    report(Progress(**shared, elapsed_s=9.0, rows_per_s=0.3, eta_s=20.0))
    assert log.lines[0].endswith("rows/s, ETA 14 s; " + WAITING), log.lines
    assert "waiting" not in log.lines[1]


def test_a_step_paced_by_the_key_logs_its_plan_and_rate(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # The emulator holds the key to 8/s: 24 rows take 3 s.
    emu = start_emulator(workflows=[ECHO], keys={KEY: {"aitutor_rate_limit": 8}})

    @dg.asset
    def texts() -> pd.DataFrame:
        return pd.DataFrame({"text": [f"row-{i}" for i in range(24)]})

    asset = enriched_asset(
        source=texts,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            journal_dir=str(tmp_path / "journal"),
            rate="8/s",
            progress_interval_s=0.5,
        ),
    )
    resource = AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate_limit_store="memory")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([texts, asset], resources={"aitutor": resource}, instance=instance)
    assert result.success
    messages = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.step_key == asset.node_def.name
    ]
    assert "24 rows to send at 8/s (the key's rate): about 3 s" in messages, messages
    paced = [m for m in messages if "rows done" in m and "rate-bound at 8/s, ETA " in m]
    assert paced, messages
