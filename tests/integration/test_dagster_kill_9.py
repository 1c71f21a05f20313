"""`kill -9` in Dagster: of the whole run, then a fresh run; of the run's process only, its
step process left running (the multiprocess executor). Counts are the emulator's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import journaled_rows
from .test_dagster_job_identity import more_credits, runs_at

LOCATION = Path(__file__).parent / "dagster_location" / "definitions.py"


def launch(job: str, home: Path) -> subprocess.Popen[bytes]:
    """``dagster job execute`` of ``job`` in a session of its own, on the instance at ``home``."""
    dagster = Path(sys.executable).parent / "dagster"
    return subprocess.Popen(
        [str(dagster), "job", "execute", "-f", str(LOCATION), "-j", job],
        env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(LOCATION.parents[3])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for_runs(emu: Emulator, runs: int, process: subprocess.Popen[bytes]) -> None:
    while runs_at(emu) < runs:
        assert process.poll() is None, "the run ended before it was killed"
        time.sleep(0.02)


def settle(emu: Emulator) -> None:
    """Wait for the requests a killed process left at the emulator to be answered (and
    counted)."""
    while emu.stats()["in_flight"]:
        time.sleep(0.02)


def many_companies_job() -> dg.ReconstructableJob:
    from .dagster_location.definitions import enrich_many_companies_job

    return dg.reconstructable(enrich_many_companies_job)


def test_a_run_after_kill_9_of_the_whole_run_pays_only_for_unjournaled_rows(
    paying_location: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    more_credits(paying_location)
    killed = launch("enrich_many_companies", tmp_path / "home")
    wait_for_runs(paying_location, 60, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the run's process and its step processes
    killed.wait()
    settle(paying_location)
    paid_before, journaled = runs_at(paying_location), journaled_rows(tmp_path / "journal")
    assert 0 < journaled < 200

    with dg.execute_job(many_companies_job(), instance=instance) as fresh:
        assert fresh.success
    paid_again = runs_at(paying_location) - paid_before - (200 - journaled)
    print(f"{paid_again} of {journaled} journaled rows paid again")
    assert paid_again == 0


def step_processes(run_pid: int) -> list[int]:
    """The processes the run's process started (its step processes)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == run_pid:
                children.append(int(entry.name))
    return children


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_step_whose_run_process_was_killed_stops_paying(
    paying_location: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    more_credits(paying_location)
    killed = launch("enrich_many_companies", tmp_path / "home")
    wait_for_runs(paying_location, 40, killed)
    steps = step_processes(killed.pid)
    assert steps, "the enrich step runs in a process of its own"
    os.kill(killed.pid, signal.SIGKILL)  # the run's process only: its steps keep running
    killed.wait()
    killed_at = time.monotonic()
    stopped_after: list[float] = []

    def watch() -> None:
        while any(alive(pid) for pid in steps):
            time.sleep(0.02)
        stopped_after.append(time.monotonic() - killed_at)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with dg.execute_job(many_companies_job(), instance=instance) as fresh:  # at once
        assert fresh.success
    watcher.join(timeout=120)
    assert stopped_after, "the orphaned step never stopped"
    stats = paying_location.stats()
    print(
        f"the orphaned step stopped {stopped_after[0]:.1f} s after the kill; "
        f"{stats['duplicate_runs']} of 200 rows paid twice"
    )
    assert runs_at(paying_location) - stats["duplicate_runs"] == 200
    assert stats["duplicate_runs"] <= 4, "at most the orphan's rows in flight when it stopped"


def test_two_runs_of_one_asset_at_once_pay_for_each_row_once(
    paying_location: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """A schedule tick over a manual launch: two runs of the same asset, partition and
    configuration at once share one journal job, and its row claims let only one of them
    pay for each row; the other waits for that answer."""
    more_credits(paying_location)
    home = tmp_path / "home"
    runs = [launch("enrich_many_companies", home) for _ in range(2)]
    for run in runs:
        assert run.wait(timeout=240) == 0, "both runs finish"
    settle(paying_location)
    paid = paying_location.stats()["runs_by_sha256"]
    twice = sum(1 for count in paid.values() if count > 1)
    print(f"{twice} of {len(paid)} rows paid twice by two runs at once")
    assert len(paid) == 200 and twice == 0
    assert runs_at(paying_location) == 200
