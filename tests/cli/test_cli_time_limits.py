"""``runwf enrich`` when the service cannot be reached, and when the process is killed at
concurrency 16: real processes against the emulator over loopback HTTP, paid runs counted by
the emulator itself."""

from __future__ import annotations

import io
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf import Progress
from dagster_runwf.cli.progress import ProgressDisplay
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY, journaled_rows, wait_for
from .test_cli import (
    ENRICH_ECHO,
    echo_texts,
    emulator_sha,
    environment,
    finish,
    runwf,
    start_echo_enrich,
    wait_for_runs,
)

# -- a service that cannot be reached ----------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("where", "host", "setting"),
    [
        ("flag", "127.0.0.1", "set by --base-url"),
        ("variable", "127.0.0.1", "set by $AITUTOR_BASE_URL"),
        # .invalid never resolves (RFC 2606): the lookup fails, no packet leaves the host.
        ("unknown-host", "nonexistent.invalid", "set by --base-url"),
    ],
)
def test_an_unreachable_service_fails_naming_the_host_and_the_setting(
    tmp_path: Path, where: str, host: str, setting: str
) -> None:
    pd.DataFrame({"text": echo_texts(40)}).to_csv(tmp_path / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    url = f"http://127.0.0.1:{closed_port()}"
    env = environment(None, AITUTOR_API_KEY=KEY)
    if where == "variable":
        env["AITUTOR_BASE_URL"] = url
    else:
        url = url if where == "flag" else "https://nonexistent.invalid"
        args += ["--base-url", url]
    run = runwf(*args, env=env, cwd=tmp_path)
    assert run.returncode == 1, run
    # The retries take a few seconds: progress lines may come before the error's line.
    assert "Traceback" not in run.stderr
    line = run.stderr.splitlines()[-1]
    assert f"runwf: error: could not reach {host} ({url}, {setting})" in line, line
    assert "nothing was paid" in line
    assert "rows paid now" not in run.stdout and "check the workflow" not in line.lower()
    assert not (tmp_path / "out.parquet").exists()


# -- kill -9 at concurrency 16 ------------------------------------------------------------------

CONCURRENCY, ROWS, KILL_AFTER = 16, 800, 300
QUICK_ECHO = {**ECHO, "latency": {"min_s": 0.02, "max_s": 0.06}}


def test_kill_9_at_concurrency_16_pays_again_only_for_the_rows_in_flight(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # Answers arrive faster than a journal write every few rows: only a journal that writes
    # as soon as it is idle, and holds each worker until its row is written, keeps the rows
    # paid but not journaled to the rows in flight.
    emu = start_emulator(workflows=[QUICK_ECHO], rate_limit_enabled=False)
    texts = echo_texts(ROWS)
    running = start_echo_enrich(emu, tmp_path, texts, CONCURRENCY)
    wait_for_runs(emu, running, KILL_AFTER, 60)
    os.kill(running.process.pid, signal.SIGKILL)
    assert finish(running, timeout=30).returncode == -signal.SIGKILL

    # Requests in flight at the kill still run to the end at the server, and are paid for.
    wait_for(lambda: emu.stats()["in_flight"] == 0, 30, "the emulator to go idle")
    ran_before = len(emu.stats()["runs_by_sha256"])
    assert KILL_AFTER <= ran_before < ROWS, "not killed mid-run"
    journal = tmp_path / "out.parquet.journal"
    # A write cut short by the kill left only a temporary file, which nobody reads.
    journaled = journaled_rows(journal)

    resumed = runwf(*running.args, env=running.env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    runs_by_sha = emu.stats()["runs_by_sha256"]
    assert set(runs_by_sha) == {emulator_sha(t) for t in texts}
    twice = sum(1 for n in runs_by_sha.values() if n == 2)
    assert set(runs_by_sha.values()) <= {1, 2}
    assert twice == ran_before - journaled
    assert twice <= CONCURRENCY, (twice, journaled)


# -- what the run waits for, in the progress ----------------------------------------------------

WAITING = "waiting for the key's rate limit: Retry-After 300 s, until 12:34:56"


@pytest.mark.parametrize("live", [False, True], ids=["lines", "bar"])
def test_the_progress_display_says_what_the_run_waits_for(live: bool) -> None:
    stream = io.StringIO()
    progress = Progress(
        done=3,
        succeeded=3,
        failed=0,
        in_flight=2,
        total=10,
        elapsed_s=6.0,
        rows_per_s=0.5,
        eta_s=14.0,
        waiting=WAITING,
    )
    with ProgressDisplay("enrich", 10, stream=stream, live=live, line_interval_s=5.0) as display:
        display(progress)
        if live:
            assert display._bar is not None and display._task is not None
            task = display._bar.tasks[0]
            assert task.fields["detail"].endswith(" · " + WAITING)
    if not live:
        assert stream.getvalue().strip().endswith("; " + WAITING)
