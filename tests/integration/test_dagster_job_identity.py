"""What each Dagster action pays again: one test per row of the table in docs/dagster.md.

An enriched asset's journal job is its asset key, partition and code version, open until its
materialization is stored: every later run of the same thing resumes it, whatever launched
the run; once it landed, the next run starts fresh (or reuses, in incremental mode). Counts
are the emulator's, server-side, over loopback HTTP.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.spec import EnrichmentSpec

from ..conftest import ECHO, KEY

LOCATION = Path(__file__).parent / "dagster_location" / "definitions.py"
SLOW = {
    "id": "wf_slow",
    "service": "aitutor",
    "variables": ["text"],
    "template": "slow:{{text}}",
    "latency": 0.05,
}
"""A workflow slow enough (50 ms a run) for a 200-row run to be killed halfway."""


def runs_at(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


@pytest.fixture
def location_env(start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The test code location's environment: an emulator with 15 credits on the key."""
    emu = start_emulator(
        rate_limit_enabled=False, workflows=[ECHO, SLOW], keys={KEY: {"credits": 15}}
    )
    monkeypatch.setenv("AITUTOR_API_KEY", KEY)
    monkeypatch.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
    monkeypatch.setenv("RUNWF_TEST_JOURNAL_DIR", str(tmp_path / "journal"))
    return emu


def more_credits(emu: Emulator) -> None:
    emu.update_config({"keys": {KEY: {"credits": 100_000}}})


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance (the multiprocess executor needs one) in ``tmp_path/home``."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def companies_job() -> dg.ReconstructableJob:
    from .dagster_location.definitions import enrich_companies_job

    return dg.reconstructable(enrich_companies_job)


def a_failed_run(emu: Emulator, instance: dg.DagsterInstance, job: Any) -> str:
    """Run ``job`` until the key's 15 credits run out; its run id."""
    with dg.execute_job(job, instance=instance) as first:
        assert not first.success, "the credits ran out after 15 runs"
        run_id = first.run_id
    assert runs_at(emu) == 15
    more_credits(emu)
    return run_id


def materialization(result: Any, node: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(node)
    return {name: value.value for name, value in event.metadata.items()}


# -- re-execute from failure; run retries (a re-execution of every step) ---------------------


@pytest.mark.parametrize("steps", ["from_failure", "all_steps"])
def test_a_re_execution_pays_only_for_unfinished_rows(
    location_env: Emulator, instance: dg.DagsterInstance, steps: str
) -> None:
    job = companies_job()
    run_id = a_failed_run(location_env, instance, job)
    options = (
        dg.ReexecutionOptions.from_failure(run_id, instance)
        if steps == "from_failure"
        else dg.ReexecutionOptions(parent_run_id=run_id)  # what a run retry of ALL_STEPS does
    )
    with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
        assert second.success
        metadata = materialization(second, "profiles")
    assert runs_at(location_env) == 41, "none of the 15 paid rows was paid again"
    assert metadata["runwf/reused"] == 15 and metadata["runwf/sent"] == 26


# -- materialize again --------------------------------------------------------------------------


def test_materializing_again_after_a_failed_run_pays_only_for_unfinished_rows(
    location_env: Emulator, instance: dg.DagsterInstance
) -> None:
    job = companies_job()
    a_failed_run(location_env, instance, job)
    with dg.execute_job(job, instance=instance) as second:  # a new run, not a re-execution
        assert second.success
        metadata = materialization(second, "profiles")
    assert runs_at(location_env) == 41, "0 of the 15 journaled rows were paid again"
    assert metadata["runwf/reused"] == 15 and metadata["runwf/sent"] == 26


def test_materializing_again_after_a_successful_run_starts_afresh(
    location_env: Emulator, instance: dg.DagsterInstance
) -> None:
    more_credits(location_env)
    job = companies_job()
    for night in (1, 2):
        with dg.execute_job(job, instance=instance) as run:
            assert run.success
            assert materialization(run, "profiles")["runwf/sent"] == 41
        assert runs_at(location_env) == 41 * night, "a landed job is closed: the next run pays"


@dg.asset
def companies() -> pd.DataFrame:
    return pd.DataFrame({"name": [f"company {i}" for i in range(40)] + ["bad one"]})


def echo_profiles(
    tmp_path: Path, io_manager_key: str | None = None, **settings: Any
) -> dg.AssetsDefinition:
    return enriched_asset(
        source=companies,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path / "journal"), **settings
        ),
        io_manager_key=io_manager_key,
    )


def resources(emu: Emulator) -> dict[str, Any]:
    return {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")}


def test_materialize_resumes_a_failed_run_and_reuses_in_incremental_mode(
    start_emulator: Any, tmp_path: Path
) -> None:
    # dagster.materialize: an ephemeral instance, a new run id every time.
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 15}})
    asset = echo_profiles(tmp_path, incremental=True, preflight=False, concurrency=2)
    failed = dg.materialize([companies, asset], resources=resources(emu), raise_on_error=False)
    assert not failed.success and runs_at(emu) == 15
    more_credits(emu)
    result = dg.materialize([companies, asset], resources=resources(emu))
    assert result.success and runs_at(emu) == 41, "the failed run's job resumed"
    result = dg.materialize([companies, asset], resources=resources(emu))
    assert runs_at(emu) == 42, "a new job: every success reused, the failed row tried again"
    assert materialization(result, asset.node_def.name)["runwf/reused"] == 40


class FailingIOManager(dg.ConfigurableIOManager):
    """Cannot store anything: the step's results never land."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        raise OSError("the bucket is gone")

    def load_input(self, context: dg.InputContext) -> Any:
        raise NotImplementedError


def test_a_run_whose_results_did_not_land_is_resumed(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    asset = echo_profiles(tmp_path, io_manager_key="results", preflight=False)
    broken = {**resources(emu), "results": FailingIOManager()}
    failed = dg.materialize([companies, asset], resources=broken, raise_on_error=False)
    assert not failed.success and runs_at(emu) == 41, "every row was paid, nothing stored"
    stored = {**resources(emu), "results": dg.mem_io_manager}
    result = dg.materialize([companies, asset], resources=stored)
    assert result.success
    assert runs_at(emu) == 41, "the open job answered every row"
    result = dg.materialize([companies, asset], resources=stored)
    assert runs_at(emu) == 82, "the landed job is closed: the next run starts afresh"


def test_a_chunked_asset_materialized_again_after_a_failed_run_resumes_every_chunk(
    location_env: Emulator, instance: dg.DagsterInstance
) -> None:
    from .dagster_location.definitions import enrich_companies_in_chunks_job

    job = dg.reconstructable(enrich_companies_in_chunks_job)
    a_failed_run(location_env, instance, job)
    with dg.execute_job(job, instance=instance) as second:
        assert second.success
        metadata = materialization(second, "profiles_in_chunks")
    assert runs_at(location_env) == 41, "0 of the 15 journaled rows were paid again"
    assert metadata["runwf/reused"] == 15
    with dg.execute_job(job, instance=instance) as third:
        assert third.success
    assert runs_at(location_env) == 82, "every chunk's job landed: the next run starts afresh"


# -- partitions: a backfill's re-launch of failed partitions, a schedule tick -----------------

DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01")


@dg.asset(partitions_def=DAILY)
def arrivals(context) -> pd.DataFrame:  # type: ignore[no-untyped-def]  # Dagster reads it
    return pd.DataFrame({"name": [f"{context.partition_key} company {i}" for i in range(20)]})


def daily_profiles(tmp_path: Path) -> dg.AssetsDefinition:
    return enriched_asset(
        source=arrivals,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"},
            journal_dir=str(tmp_path / "journal"),
            preflight=False,
            concurrency=2,
        ),
        partitions_def=DAILY,
    )


def test_a_backfill_re_launch_of_failed_partitions_pays_only_for_unfinished_rows(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 30}})
    daily = daily_profiles(tmp_path)
    assets = [arrivals, daily]
    tags = {"dagster/backfill": "test_backfill"}
    first = dg.materialize(assets, resources=resources(emu), partition_key="2026-11-20", tags=tags)
    assert first.success and runs_at(emu) == 20
    failed = dg.materialize(
        assets, resources=resources(emu), partition_key="2026-11-21", tags=tags,
        raise_on_error=False,
    )  # fmt: skip
    assert not failed.success and runs_at(emu) == 30, "10 rows of the second day were paid"
    more_credits(emu)
    # Re-launching the failed partition: a new run of it, with the backfill's tags.
    again = dg.materialize(assets, resources=resources(emu), partition_key="2026-11-21", tags=tags)
    assert again.success
    assert runs_at(emu) == 40, "0 of the 10 journaled rows were paid again"
    assert materialization(again, daily.node_def.name)["runwf/reused"] == 10


def test_a_schedule_tick_resumes_a_failed_tick_and_starts_afresh_after_a_landed_one(
    start_emulator: Any, tmp_path: Path
) -> None:
    from dagster_runwf import nightly_schedule

    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 10}})
    daily = daily_profiles(tmp_path)
    schedule = nightly_schedule([arrivals, daily], hour_of_day=2)
    defs = dg.Definitions(assets=[arrivals, daily], schedules=[schedule], resources=resources(emu))
    resolved = defs.resolve_schedule_def("nightly_enrichment")
    job = defs.resolve_implicit_global_asset_job_def()

    def tick(day: int) -> dg.ExecuteInProcessResult:
        moment = dt.datetime(2026, 11, day, 2, 0, tzinfo=dt.timezone.utc)
        with dg.build_schedule_context(scheduled_execution_time=moment) as context:
            (request,) = resolved.evaluate_tick(context).run_requests or []
        return job.execute_in_process(
            partition_key=request.partition_key, tags=request.tags, raise_on_error=False
        )

    assert not tick(21).success and runs_at(emu) == 10, "the credits ran out"
    more_credits(emu)
    assert tick(21).success, "the tick run again for the same day"
    assert runs_at(emu) == 20, "0 of the 10 journaled rows were paid again"
    assert tick(22).success
    assert runs_at(emu) == 40, "the next night's partition is a job of its own"


# -- kill -9 ------------------------------------------------------------------------------------


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


def journaled_rows(folder: Path) -> int:
    """Distinct rows in the journal files below ``folder``."""
    hashes: set[str] = set()
    for path in folder.rglob("*.parquet"):
        if not path.name.startswith(".tmp-"):
            hashes.update(pq.read_table(path, columns=["input_hash"]).column(0).to_pylist())
    return len(hashes)


def many_companies_job() -> dg.ReconstructableJob:
    from .dagster_location.definitions import enrich_many_companies_job

    return dg.reconstructable(enrich_many_companies_job)


def test_a_run_after_kill_9_of_the_whole_run_pays_only_for_unjournaled_rows(
    location_env: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    more_credits(location_env)
    killed = launch("enrich_many_companies", tmp_path / "home")
    wait_for_runs(location_env, 60, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the run's process and its step processes
    killed.wait()
    settle(location_env)
    paid_before, journaled = runs_at(location_env), journaled_rows(tmp_path / "journal")
    assert 0 < journaled < 200

    with dg.execute_job(many_companies_job(), instance=instance) as fresh:
        assert fresh.success
    paid_again = runs_at(location_env) - paid_before - (200 - journaled)
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
    location_env: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    more_credits(location_env)
    killed = launch("enrich_many_companies", tmp_path / "home")
    wait_for_runs(location_env, 40, killed)
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
    stats = location_env.stats()
    print(
        f"the orphaned step stopped {stopped_after[0]:.1f} s after the kill; "
        f"{stats['duplicate_runs']} of 200 rows paid twice"
    )
    assert runs_at(location_env) - stats["duplicate_runs"] == 200
    assert stats["duplicate_runs"] <= 4, "at most the orphan's rows in flight when it stopped"


def test_the_job_follows_what_changes_answers_not_the_tables_shape() -> None:
    def job_version(**settings: Any) -> str:
        spec = EnrichmentSpec(
            dg.AssetKey("profiles"), companies.key, AITutorWorkflow("wf_echo", ["text"]),
            "aitutor", EnrichmentSettings(columns={"text": "name"}, **settings),
        )  # fmt: skip
        return spec.answers_version

    assert job_version() == job_version(prefix="ai_", keep_columns=["name"])
    assert job_version() != job_version(journal_version="prompt-v2")
