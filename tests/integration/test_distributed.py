"""Out of one process: the enriched rows on Dagster's celery executor (three worker
processes started here, a Redis broker) and on its dask executor (a ``LocalCluster`` of
worker processes), the key's rate and the row claims shared through a Redis store. The
emulator, in its own process, counts what was paid and when it arrived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorResource, ParquetIOManager
from dagster_runwf.emulator import Emulator, EmulatorConfig
from dagster_runwf.emulator.server import EmulatorProcess

from ..conftest import KEY, wait_for
from ..outages import RedisServer

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[2]
LOCATION = "tests.integration.dagster_location"
WORKERS = 3
# Timing and identity columns differ between any two runs; everything else must not.
VARYING = ["wf_latency_s", "wf_finished_at", "wf_instance_id", "wf_metadata"]

SLOW = {
    "id": "wf_slow",
    "service": "aitutor",
    "variables": ["text"],
    "template": "slow:{{text}}",
    "citations": ["https://example.com/{{text}}"],
    "fail_when": "bad",
    "latency": 0.2,
}
"""Slow enough (0.2 s a run) for chunks to overlap and a worker to be killed mid-chunk."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="module")
def store(redis_url: str, folder: Path) -> Iterator[RedisServer]:
    """The rate and claim store: a Redis server of this module's own, to restart."""
    server = RedisServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def emulator_and_environment(
    store: RedisServer, redis_url: str, folder: Path
) -> Iterator[EmulatorProcess]:
    """An emulator enforcing the key's rate in its own process, and the location's
    environment (the workers' too): the emulator, the store, a journal and a Parquet folder,
    and the session's Redis as the celery broker."""
    from .dagster_location.distributed import RATE_PER_S

    config = {"workflows": [SLOW], "aitutor_rate_limit": RATE_PER_S, "keys": {KEY: {}}}
    with Emulator.in_subprocess(config) as emu, pytest.MonkeyPatch.context() as env:
        env.setenv("AITUTOR_API_KEY", KEY)
        env.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
        env.setenv("RUNWF_TEST_STORE_URL", store.url)
        env.setenv("RUNWF_TEST_JOURNAL_DIR", str(folder / "journal"))
        env.setenv("RUNWF_TEST_OUTPUT_DIR", str(folder / "parquet"))
        env.setenv("RUNWF_TEST_BROKER_URL", redis_url.rsplit("/", 1)[0] + "/1")
        path = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p)
        env.setenv("PYTHONPATH", path)  # the workers import the location's module
        (folder / "parquet").mkdir()
        yield emu


@pytest.fixture
def location(emulator_and_environment: EmulatorProcess) -> EmulatorProcess:
    """The emulator, its counts reset for this test."""
    emulator_and_environment.reset()
    return emulator_and_environment


@pytest.fixture(scope="module")
def baseline(folder: Path) -> Iterator[pd.DataFrame]:
    """The single-step asset's Parquet file, made in this process on an emulator of its own."""
    from dagster_runwf import enriched_asset

    from .dagster_location.distributed import WORKFLOW, companies, settings

    emu = Emulator(EmulatorConfig.from_dict({"rate_limit_enabled": False, "workflows": [SLOW]}))
    emu.start()
    profiles = enriched_asset(
        source=companies,
        workflow=WORKFLOW,
        name="profiles",
        # More rows at once than the chunks: the table does not depend on it.
        settings=settings().model_copy(
            update={"journal_dir": str(folder / "baseline-journal"), "concurrency": 16}
        ),
        io_manager_key="parquet",
    )
    try:
        result = dg.materialize(
            [companies, profiles],
            resources={
                "aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited"),
                "parquet": ParquetIOManager(base_dir=str(folder / "baseline")),
            },
        )
    finally:
        emu.stop()
    assert result.success
    yield pd.read_parquet(folder / "baseline" / "profiles.parquet")


def start_celery_worker(name: str) -> subprocess.Popen[bytes]:
    """A celery worker running one step at a time, in a child process of its own."""
    command = [
        sys.executable, "-m", "celery", "-A", f"{LOCATION}.celery_app",
        "worker", "-Q", "dagster", "--pool", "prefork", "--concurrency", "1",
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    ]  # fmt: skip
    # Their log (every step's Dagster events too) would drown the test's output.
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def celery_workers(emulator_and_environment: EmulatorProcess) -> Iterator[str]:
    """Three celery worker processes on the session's Redis as broker; yields its URL."""
    from celery import Celery

    broker = os.environ["RUNWF_TEST_BROKER_URL"]
    control = Celery(broker=broker, backend=broker)
    control.control.purge()  # what a failed test before may have left in the queue
    workers = [start_celery_worker(f"runwf{i}") for i in range(WORKERS)]
    try:
        wait_for(
            lambda: len(control.control.ping(timeout=0.5)) == WORKERS, 60, "the celery workers"
        )
        yield broker
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGQUIT)  # a cold shutdown: no step is running
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        control.close()


def chunk_step_starts(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, int]]:
    """(step key, process id) of each start of a chunk step of run ``run_id``."""
    starts = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START):
        event = entry.dagster_event
        if event is not None and "enrich_chunk" in (event.step_key or ""):
            starts.append((event.step_key or "", event.pid or 0))
    return starts


def running_chunk_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """The chunk steps of run ``run_id`` started and not ended, by the process running each."""
    ended = {
        entry.dagster_event.step_key
        for entry in instance.all_logs(
            run_id,
            of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE},
        )
        if entry.dagster_event is not None
    }
    return {step: pid for step, pid in chunk_step_starts(instance, run_id) if step not in ended}


def run_on_celery(instance: dg.DagsterInstance, broker: str, case: str) -> dg.ExecutionResult:
    """A run of test ``case``'s chunked asset (and its source) on the celery workers."""
    from .dagster_location.distributed import celery_config

    job = dg.build_reconstructable_job(
        f"{LOCATION}.distributed",
        "on_celery_job",
        reconstructable_args=(case,),
    )
    run_config = {"execution": {"config": celery_config(broker)}}
    with dg.execute_job(job, instance=instance, run_config=run_config) as result:
        return result


def the_only_run(instance: dg.DagsterInstance) -> str:
    wait_for(lambda: len(instance.get_run_ids()) == 1, 60, "the run to start")
    return instance.get_run_ids()[0]


def assert_same_table(path: Path, expected: pd.DataFrame, *, resumed: bool = False) -> None:
    """The Parquet file at ``path`` holds the single-step asset's table; ``resumed``: but
    for ``wf_reused``, true for rows a chunk's second attempt found journaled."""
    table = pd.read_parquet(path)
    varying = [*VARYING, "wf_reused"] if resumed else VARYING
    pd.testing.assert_frame_equal(
        table.drop(columns=varying).reset_index(drop=True),
        expected.drop(columns=varying).reset_index(drop=True),
    )
    if resumed:
        assert table["wf_reused"].any(), "the chunk run again answered its rows from the journal"


def assert_rate_held(server: dict[str, Any]) -> None:
    """The key's rate held in every window the emulator counted: no 429 and never more
    arrivals in one window than the limit."""
    from .dagster_location.distributed import RATE_PER_S

    assert server["by_status"].get("429", 0) == 0
    assert max(server["max_requests_in_window"]["aitutor"].values()) <= RATE_PER_S


def test_chunks_on_three_celery_workers_share_the_key_rate_and_pay_each_row_once(
    location: EmulatorProcess,
    celery_workers: str,
    instance: dg.DagsterInstance,
    baseline: pd.DataFrame,
    folder: Path,
) -> None:
    from .dagster_location.distributed import ROWS

    result = run_on_celery(instance, celery_workers, "shared")
    assert result.success
    starts = chunk_step_starts(instance, result.run_id)
    assert len(starts) == 6, "60 rows in chunks of 10, each started once"
    assert len({pid for _, pid in starts}) == WORKERS, "every worker ran chunks"
    workers = {
        entry.dagster_event.event_specific_data.metadata["Celery worker"].value  # type: ignore[union-attr]
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if entry.dagster_event is not None
        and "Celery worker" in getattr(entry.dagster_event.event_specific_data, "metadata", {})
    }
    assert len(workers) == WORKERS, workers

    server = location.stats()
    assert sum(server["runs_by_workflow"].values()) == ROWS
    assert server["duplicate_runs"] == 0, "no row paid twice"
    assert_rate_held(server)
    assert_same_table(folder / "parquet" / "profiles_shared.parquet", baseline)


def test_a_celery_worker_killed_mid_chunk_has_its_chunk_redelivered_paying_only_its_rows_in_flight(
    location: EmulatorProcess,
    celery_workers: str,
    instance: dg.DagsterInstance,
    baseline: pd.DataFrame,
    folder: Path,
) -> None:
    from .dagster_location.distributed import CONCURRENCY, ROWS

    killed: list[tuple[str, int]] = []

    def kill_one_worker_mid_chunk() -> None:
        run_id = the_only_run(instance)
        wait_for(lambda: bool(chunk_step_starts(instance, run_id)), 60, "a chunk to start")
        paid_before = sum(location.stats()["runs_by_workflow"].values())
        # Mid-chunk: some of its rows answered, others in flight (a chunk takes 1.5 s).
        wait_for(
            lambda: sum(location.stats()["runs_by_workflow"].values()) >= paid_before + 3,
            60,
            "rows of the first chunks to be paid",
        )
        step, pid = next(iter(running_chunk_steps(instance, run_id).items()))
        os.kill(pid, signal.SIGKILL)
        killed.append((step, pid))

    killer = threading.Thread(target=kill_one_worker_mid_chunk)
    killer.start()
    try:
        result = run_on_celery(instance, celery_workers, "killed")
    finally:
        killer.join()
    assert result.success
    ((step, pid),) = killed
    again = [p for s, p in chunk_step_starts(instance, result.run_id) if s == step]
    assert len(again) == 2 and again[0] == pid and again[1] != pid, "redelivered elsewhere"

    server = location.stats()
    paid_twice = server["duplicate_runs"]
    assert sum(server["runs_by_workflow"].values()) == ROWS + paid_twice
    assert paid_twice <= CONCURRENCY, "only the killed chunk's rows in flight"
    assert_rate_held(server)
    assert_same_table(folder / "parquet" / "profiles_killed.parquet", baseline, resumed=True)


def test_a_redis_store_restarted_mid_run_fails_chunks_that_run_again_paying_no_row_twice(
    location: EmulatorProcess,
    celery_workers: str,
    instance: dg.DagsterInstance,
    store: RedisServer,
    baseline: pd.DataFrame,
    folder: Path,
) -> None:
    from .dagster_location.distributed import ROWS

    def restart_redis_mid_run() -> None:
        run_id = the_only_run(instance)
        wait_for(
            lambda: sum(location.stats()["runs_by_workflow"].values()) >= 15,
            60,
            "rows to be paid",
        )
        store.kill()
        wait_for(
            lambda: bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)),
            60,
            "a chunk to fail on the store",
        )
        store.start()  # empty: no saved data, as after a failover

    restarter = threading.Thread(target=restart_redis_mid_run)
    restarter.start()
    try:
        result = run_on_celery(instance, celery_workers, "restarted")
    finally:
        restarter.join()
    assert result.success
    failures = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        if entry.dagster_event is not None
    ]
    assert failures, "a chunk step failed on the store and ran again"
    assert any("row claims in redis" in str(failure) for failure in failures)

    server = location.stats()
    assert server["duplicate_runs"] == 0, "no row paid twice"
    assert sum(server["runs_by_workflow"].values()) == ROWS
    assert_same_table(folder / "parquet" / "profiles_restarted.parquet", baseline, resumed=True)


def test_chunks_on_a_dask_cluster_of_worker_processes_share_the_key_rate_and_pay_each_row_once(
    location: EmulatorProcess,
    instance: dg.DagsterInstance,
    baseline: pd.DataFrame,
    folder: Path,
) -> None:
    from distributed import LocalCluster

    from .dagster_location.distributed import ROWS

    with LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        run_config = {
            "execution": {
                "config": {"cluster": {"existing": {"address": cluster.scheduler_address}}}
            }
        }
        with dg.execute_job(
            dg.build_reconstructable_job(f"{LOCATION}.on_dask", "on_dask_job"),
            instance=instance,
            run_config=run_config,
        ) as result:
            assert result.success
            run_id = result.run_id
    pids = {
        entry.dagster_event.pid
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.dagster_event is not None and "enrich_part" in (entry.dagster_event.step_key or "")
    }
    assert len(pids) >= 2, "the chunks ran in several worker processes"

    server = location.stats()
    assert sum(server["runs_by_workflow"].values()) == ROWS
    assert server["duplicate_runs"] == 0, "no row paid twice"
    assert_rate_held(server)
    assert_same_table(folder / "parquet" / "on_dask.parquet", baseline)


def test_the_resource_s_claim_ttl_reaches_the_engine_and_must_be_positive() -> None:
    """What lets a chunk redelivered after its worker was killed take its rows over within
    seconds instead of the default 30 s."""
    import pydantic

    assert AITutorResource(api_key=KEY, claim_ttl_s=3.0).engine_options().claim_ttl_s == 3.0
    with pytest.raises(pydantic.ValidationError, match="claim_ttl_s"):
        AITutorResource(api_key=KEY, claim_ttl_s=0)


def test_a_chunked_asset_on_the_dask_executor_fails_before_paying_instead_of_doing_nothing(
    location: EmulatorProcess, instance: dg.DagsterInstance
) -> None:
    """dagster-dask plans every step up front, so steps mapped over a DynamicOut never run:
    without the check, the run succeeded having enriched and materialized nothing."""
    local = {"cluster": {"local": {"n_workers": 1, "processes": False, "dashboard_address": None}}}
    with dg.execute_job(
        dg.build_reconstructable_job(f"{LOCATION}.on_dask", "chunked_on_dask_job"),
        instance=instance,
        run_config={"execution": {"config": local}},
        raise_on_error=False,
    ) as result:
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "profiles_on_dask.split"
    message = str(failure.event_specific_data)
    assert "dask executor never runs" in message and "chunk_size" in message
    assert location.stats()["total_requests"] == 0, "refused before any request"
