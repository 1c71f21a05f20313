"""Dagster's progress log line of an enriched asset's step."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from dagster_runwf import Progress
from dagster_runwf.integration.step import _progress_logger

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
