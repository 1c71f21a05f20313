"""The enriched asset, materialized with Dagster's own APIs against the emulator."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EngineOptions,
    EnrichmentSettings,
    ParquetIOManager,
    enriched_asset,
    nightly_schedule,
)
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY


@dg.asset
def companies() -> pd.DataFrame:
    return pd.DataFrame({"name": [f"company {i}" for i in range(40)] + ["bad one"], "n": range(41)})


def profiles(tmp_path: Path, **arguments: Any) -> dg.AssetsDefinition:
    """The enriched companies; ``arguments`` are EnrichmentSettings fields or the factory's."""
    settings = {
        k: arguments.pop(k) for k in list(arguments) if k in EnrichmentSettings.model_fields
    }
    return enriched_asset(
        source=companies,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path / "journal"), **settings
        ),
        **arguments,
    )


def resources(emu: Emulator) -> dict[str, Any]:
    return {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")}


def runs_at(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def test_materializing_the_enriched_asset(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    asset = profiles(tmp_path, failure_rate_threshold=0.01)
    result = dg.materialize([companies, asset], resources=resources(emu))
    assert result.success
    table = result.output_for_node(asset.node_def.name)
    assert len(table) == 41 and list(table.columns[:2]) == ["name", "n"]
    assert table["wf_status"].value_counts().to_dict() == {"succeeded": 40, "failed": 1}

    (event,) = result.asset_materializations_for_node(asset.node_def.name)
    metadata: dict[str, Any] = {k: v.value for k, v in event.metadata.items()}
    assert metadata["dagster/row_count"] == 41
    assert metadata["runwf/succeeded"] == 40 and metadata["runwf/failed"] == 1
    assert metadata["runwf/sent"] == 41 and metadata["runwf/reused"] == 0
    assert metadata["runwf/credits_before"] > 0, "the pre-flight balance check ran"
    assert "runwf/latency_p95_s" in metadata
    schema = metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns][:3] == ["name", "n", "wf_status"]
    lineage = metadata["dagster/column_lineage"].deps_by_column
    assert [d.column_name for d in lineage["wf_result"]] == ["name"]
    assert asset.specs_by_key[asset.key].kinds == {"aitutor", "pandas"}

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["every_row_answered"].passed
    assert not checks["failure_rate"].passed, "1 of 41 failed: above 1%"
    assert checks["failure_rate"].severity == dg.AssetCheckSeverity.WARN


def test_a_fatal_stop_fails_the_step_with_a_readable_message(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 10}})
    asset = profiles(tmp_path, preflight=False, concurrency=2)
    result = dg.materialize([companies, asset], resources=resources(emu), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "credits" in text.lower() and "finished rows are kept" in text
    assert KEY not in text
    assert runs_at(emu) == 10


def test_the_code_version_follows_the_workflow_config(tmp_path: Path) -> None:
    def version(**settings: Any) -> str | None:
        asset = profiles(tmp_path, **settings)
        return asset.code_versions_by_key[asset.key]

    assert version() == version()
    assert version() != version(journal_version="prompt-v2")
    assert version() != version(output_columns={"x": "X"})


@pytest.mark.parametrize("base_url", ["http://example.com/api/v1", "ftp://127.0.0.1/x"])
def test_a_key_is_only_sent_over_https_or_to_loopback(base_url: str, tmp_path: Path) -> None:
    result = dg.materialize(
        [companies, profiles(tmp_path)],
        resources={"aitutor": AITutorResource(api_key=KEY, base_url=base_url)},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "http" in text and "base_url" in text and KEY not in text


LOCATION = Path(__file__).parent / "dagster_location" / "definitions.py"


@pytest.fixture
def location_env(start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The test code location's environment: an emulator with 15 credits on the key."""
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 15}})
    monkeypatch.setenv("AITUTOR_API_KEY", KEY)
    monkeypatch.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
    monkeypatch.setenv("RUNWF_TEST_JOURNAL_DIR", str(tmp_path / "journal"))
    return emu


def test_a_re_execution_from_failure_pays_only_for_unfinished_rows(
    location_env: Emulator, tmp_path: Path
) -> None:
    from .dagster_location.definitions import enrich_companies_job

    job = dg.reconstructable(enrich_companies_job)
    with dg.instance_for_test() as instance:
        with dg.execute_job(job, instance=instance) as first:
            assert not first.success, "the credits ran out after 15 runs"
            run_id = first.run_id
        assert runs_at(location_env) == 15

        location_env.update_config({"keys": {KEY: {"credits": 1000}}})
        options = dg.ReexecutionOptions.from_failure(run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
            assert second.success
            (event,) = second.asset_materializations_for_node("profiles")
        assert runs_at(location_env) == 41, "the 15 paid rows were not paid again"
        assert event.metadata["runwf/reused"].value == 15
        assert event.metadata["runwf/sent"].value == 26


def test_the_code_location_validates(location_env: Emulator) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-f", str(LOCATION)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(LOCATION.parents[3])},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr


DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01")


@dg.asset(partitions_def=DAILY)
def arrivals(context) -> pd.DataFrame:  # type: ignore[no-untyped-def]  # Dagster reads it
    """The rows that arrived on the partition's day."""
    day = context.partition_key
    return pd.DataFrame({"name": [f"{day} company {i}" for i in range(5)]})


def test_a_daily_partition_enriches_that_days_rows_and_a_nightly_schedule_runs_it(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    daily = enriched_asset(
        source=arrivals,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path / "journal")
        ),
        partitions_def=DAILY,
    )
    result = dg.materialize([arrivals, daily], resources=resources(emu), partition_key="2026-11-20")
    table = result.output_for_node(daily.node_def.name)
    assert list(table["name"]) == [f"2026-11-20 company {i}" for i in range(5)]
    assert runs_at(emu) == 5
    journal_days = [p.name for p in (tmp_path / "journal" / daily.key.path[-1]).iterdir()]
    assert journal_days == ["2026_11_20"], "one journal per partition"

    schedule = nightly_schedule([arrivals, daily], hour_of_day=2)
    defs = dg.Definitions(assets=[arrivals, daily], schedules=[schedule], resources=resources(emu))
    resolved = defs.resolve_schedule_def("nightly_enrichment")
    tick = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        (request,) = resolved.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-11-20", "last night enriches the day that ended"
    assert resolved.cron_schedule == "0 2 * * *"


def test_the_results_table_lands_as_parquet(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    asset = profiles(tmp_path)
    io = {"io_manager": ParquetIOManager(base_dir=str(tmp_path / "assets"))}
    result = dg.materialize([companies, asset], resources={**resources(emu), **io})
    assert result.success
    path = tmp_path / "assets" / f"{asset.key.path[-1]}.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 41
    assert table.schema.field("wf_citations").type == pa.list_(pa.string())
    (event,) = result.asset_materializations_for_node(asset.node_def.name)
    assert event.metadata["path"].value == str(path)


def test_the_key_appears_nowhere_in_what_a_run_leaves(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 20}})
    resource = AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")
    assert KEY not in repr(resource)
    io = {"io_manager": ParquetIOManager(base_dir=str(tmp_path / "assets"))}
    with dg.instance_for_test() as instance:
        for _ in range(2):  # a fatal stop (credits), then a success after a top-up
            dg.materialize(
                [companies, profiles(tmp_path)],
                resources={"aitutor": resource, **io},
                instance=instance,
                raise_on_error=False,
            )
            emu.update_config({"keys": {KEY: {"credits": 1000}}})
        runs = instance.get_runs()
        assert [r.status for r in runs] == [
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,  # newest first: the credits ran out the first time
        ]
        logs = [str(entry) for run in runs for entry in instance.all_logs(run.run_id)]
    assert all(KEY not in entry for entry in logs)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_rows_skipped_on_purpose_do_not_count_as_failures(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])

    @dg.asset(name="companies")
    def gappy() -> pd.DataFrame:
        names = [None] * 10 + ["bad one"] + [f"company {i}" for i in range(9)]
        return pd.DataFrame({"name": names})

    asset = enriched_asset(
        source=gappy,
        workflow=AITutorWorkflow("wf_echo", ["text"], on_missing="skip"),
        settings=EnrichmentSettings(
            columns={"text": "name"},
            journal_dir=str(tmp_path / "journal"),
            failure_rate_threshold=0.15,
        ),
    )
    result = dg.materialize([gappy, asset], resources=resources(emu))
    table = result.output_for_node(asset.node_def.name)
    assert (table["wf_error_type"] == "RowSkippedError").sum() == 10
    assert "skipped (on_missing='skip')" in table["wf_error"].iloc[0]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    rate = checks["failure_rate"]
    assert rate.passed, "1 failed of the 10 rows sent: 10%, not 11 of 20"
    assert rate.metadata["skipped"].value == 10 and rate.metadata["failed"].value == 1
    assert runs_at(emu) == 10, "the 10 rows with a name were sent, none of the skipped"


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_a_column_parquet_cannot_hold_fails_the_step_once_with_its_name(
    start_emulator: Any, tmp_path: Path, chunk_size: int | None
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])

    @dg.asset(name="companies")
    def odd() -> pd.DataFrame:
        return pd.DataFrame({"name": ["a", "b"], "z": [complex(1, 2), complex(0, 1)]})

    asset = profiles(tmp_path, retry_policy=dg.RetryPolicy(max_retries=2), chunk_size=chunk_size)
    result = dg.materialize([odd, asset], resources=resources(emu), raise_on_error=False)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1, "not retried: no retry would fix it"
    text = str(failures[0].step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "'z'" in text
    assert runs_at(emu) == 0, "refused before any paid request"


def test_a_429_on_the_free_pre_flight_is_left_to_the_retry_policy(
    start_emulator: Any, tmp_path: Path
) -> None:
    from dagster_runwf import RunchatResource, RunchatWorkflow

    emu = start_emulator(rate_limit_enabled=False, faults={"rate_limit_burst": 1})

    @dg.asset(name="texts")
    def texts() -> pd.DataFrame:
        return pd.DataFrame({"text": ["hello", "world"]})

    asset = enriched_asset(
        source=texts,
        workflow=RunchatWorkflow("translate", ["text_n1"]),
        settings=EnrichmentSettings(
            columns={"text_n1": "text"}, journal_dir=str(tmp_path / "journal")
        ),
        retry_policy=dg.RetryPolicy(max_retries=1),
    )
    runchat = RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    result = dg.materialize([texts, asset], resources={"runchat": runchat})
    assert result.success
    assert emu.stats()["by_status"].get("429") == 1
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1


def test_a_resource_gives_the_engine_options_without_showing_the_key() -> None:
    resource = AITutorResource(
        api_key=KEY, rate="5/s", concurrency=3, max_attempts=2, unusable_retries=0
    )
    options = resource.engine_options()
    assert isinstance(options, EngineOptions)
    assert (options.api_key, options.rate, options.concurrency) == (KEY, "5/s", 3)
    assert options.retry.max_attempts == 2 and options.base_url is None
    assert options.retry.unusable_retries == 0
    assert KEY not in repr(options) and KEY not in str(options)
