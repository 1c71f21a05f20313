"""What each Dagster action pays again: one test per row of the table in docs/dagster.md.

An enriched asset's journal job is its asset key, partition and the version of its answers,
open until its materialization is stored: every later run of the same thing resumes it,
whatever launched the run; once it landed, the next run starts fresh (or reuses, in
incremental mode). Counts are the emulator's, server-side, over loopback HTTP. The
`kill -9` rows are in test_dagster_kill_9.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.spec import EnrichmentSpec

from ..conftest import ECHO, KEY


def runs_at(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def more_credits(emu: Emulator) -> None:
    emu.update_config({"keys": {KEY: {"credits": 100_000}}})


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
    paying_location: Emulator, instance: dg.DagsterInstance, steps: str
) -> None:
    job = companies_job()
    run_id = a_failed_run(paying_location, instance, job)
    options = (
        dg.ReexecutionOptions.from_failure(run_id, instance)
        if steps == "from_failure"
        else dg.ReexecutionOptions(parent_run_id=run_id)  # what a run retry of ALL_STEPS does
    )
    with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
        assert second.success
        metadata = materialization(second, "profiles")
    assert runs_at(paying_location) == 41, "none of the 15 paid rows was paid again"
    assert metadata["runwf/reused"] == 15 and metadata["runwf/sent"] == 26


# -- materialize again --------------------------------------------------------------------------


def test_materializing_again_after_a_failed_run_pays_only_for_unfinished_rows(
    paying_location: Emulator, instance: dg.DagsterInstance
) -> None:
    job = companies_job()
    a_failed_run(paying_location, instance, job)
    with dg.execute_job(job, instance=instance) as second:  # a new run, not a re-execution
        assert second.success
        metadata = materialization(second, "profiles")
    assert runs_at(paying_location) == 41, "0 of the 15 journaled rows were paid again"
    assert metadata["runwf/reused"] == 15 and metadata["runwf/sent"] == 26


def test_materializing_again_after_a_successful_run_starts_afresh(
    paying_location: Emulator, instance: dg.DagsterInstance
) -> None:
    more_credits(paying_location)
    job = companies_job()
    for night in (1, 2):
        with dg.execute_job(job, instance=instance) as run:
            assert run.success
            assert materialization(run, "profiles")["runwf/sent"] == 41
        assert runs_at(paying_location) == 41 * night, "a landed job is closed: the next run pays"


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
    paying_location: Emulator, instance: dg.DagsterInstance
) -> None:
    from .dagster_location.definitions import enrich_companies_in_chunks_job

    job = dg.reconstructable(enrich_companies_in_chunks_job)
    a_failed_run(paying_location, instance, job)
    with dg.execute_job(job, instance=instance) as second:
        assert second.success
        metadata = materialization(second, "profiles_in_chunks")
    assert runs_at(paying_location) == 41, "0 of the 15 journaled rows were paid again"
    assert metadata["runwf/reused"] == 15
    with dg.execute_job(job, instance=instance) as third:
        assert third.success
    assert runs_at(paying_location) == 82, "every chunk's job landed: the next run starts afresh"


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


def test_the_job_follows_what_changes_answers_not_the_tables_shape() -> None:
    def job_version(**settings: Any) -> str:
        spec = EnrichmentSpec(
            dg.AssetKey("profiles"), companies.key, AITutorWorkflow("wf_echo", ["text"]),
            "aitutor", EnrichmentSettings(columns={"text": "name"}, **settings),
        )  # fmt: skip
        return spec.answers_version

    assert job_version() == job_version(prefix="ai_", keep_columns=["name"])
    assert job_version() != job_version(journal_version="prompt-v2")
