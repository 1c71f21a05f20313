"""Declarative automation: an enriched asset with ``automation_condition`` (from the factory or
from YAML) is requested by Dagster's evaluation when it should be (each night for a daily
partition; once per arriving file for a dynamic partition), and what is requested
materializes against the emulator, paying only for its own rows."""

# No `from __future__ import annotations`: Dagster reads the test assets' annotations.

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    ParquetIOManager,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY
from .test_component import notes

NIGHTLY = dg.AutomationCondition.on_cron("0 2 * * *")


def at(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.timezone.utc)


@pytest.fixture
def echo(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(rate_limit_enabled=False, workflows=[ECHO])


def resources(emu: Emulator) -> dict[str, object]:
    return {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")}


def paid(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def latest_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The partition of the asset's latest materialization."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    return materialization.partition if materialization else None


def run_requested(
    result: dg.EvaluateAutomationConditionsResult,
    assets: Sequence[dg.AssetsDefinition],
    instance: dg.DagsterInstance,
    run_resources: dict[str, object],
) -> dict[str, list[str]]:
    """Materialize what the evaluation requested, one run per partition (as the automation
    sensor launches them); returns the requested partitions of each asset."""
    requested = {
        asset.key.to_user_string(): sorted(
            key for key in result.get_requested_partitions(asset.key) if key is not None
        )
        for asset in assets
    }
    for partition in sorted({p for keys in requested.values() for p in keys}):
        selection = [a for a in assets if partition in requested[a.key.to_user_string()]]
        done = dg.materialize(
            assets,
            selection=selection,
            partition_key=partition,
            instance=instance,
            resources=run_resources,
        )
        assert done.success
    return requested


def test_a_daily_enriched_asset_runs_each_night_by_its_automation_condition(
    echo: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = notes.with_attributes(automation_condition=NIGHTLY)
    asset = enriched_asset(
        source=source,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(columns={"text": "body"}, journal_dir=str(tmp_path / "j")),
        partitions_def=notes.partitions_def,
        automation_condition=NIGHTLY,
    )
    assert asset.automation_conditions_by_key[asset.key] == NIGHTLY
    assets = [source, asset]
    run_resources = resources(echo)
    defs = dg.Definitions(assets=assets, resources=run_resources)

    before = dg.evaluate_automation_conditions(defs, instance, evaluation_time=at(21, 1, 50))
    assert before.total_requested == 0, "not before 02:00"
    night = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=at(21, 2, 5), cursor=before.cursor
    )
    requested = run_requested(night, assets, instance, run_resources)
    assert requested == {"notes": ["2026-11-20"], "notes_wf_echo": ["2026-11-20"]}
    assert paid(echo) == 5, "the day's five notes"
    assert latest_partition(instance, asset.key) == "2026-11-20"

    later = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=at(21, 3, 0), cursor=night.cursor
    )
    assert later.total_requested == 0, "once a night"
    next_night = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=at(22, 2, 5), cursor=later.cursor
    )
    requested = run_requested(next_night, assets, instance, run_resources)
    assert requested == {"notes": ["2026-11-21"], "notes_wf_echo": ["2026-11-21"]}
    assert paid(echo) == 10


FILES = dg.DynamicPartitionsDefinition(name="arriving_files")


def arriving(inbox: Path) -> dg.AssetsDefinition:
    """The rows of one arrived CSV file per partition (the partition key is its name)."""

    @dg.asset(partitions_def=FILES)
    def arrived(context: dg.AssetExecutionContext) -> pd.DataFrame:
        frame: pd.DataFrame = pd.read_csv(inbox / context.partition_key)
        return frame

    return arrived


def inbox_sensor(inbox: Path, arrived: dg.AssetsDefinition) -> dg.SensorDefinition:
    """The file-arrival sensor of docs/dagster.md."""
    files = FILES

    @dg.sensor(target=[arrived])
    def inbox_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        new = [
            p.name
            for p in sorted(inbox.glob("*.csv"))
            if not context.instance.has_dynamic_partition(files.name or "", p.name)
        ]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=name) for name in new],
            dynamic_partitions_requests=[files.build_add_request(new)],
        )

    return inbox_files


ARRIVING_YAML = """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: aitutor
  workflow: wf_echo
  inputs: [text]
  columns: {text: body}
  source: arrived
  journal_dir: JOURNAL
  partitions: {dynamic: arriving_files}
  automation_condition: "{{ dg.AutomationCondition.eager() }}"
"""


@pytest.mark.parametrize("declared_in", ["python", "yaml"])
def test_one_enriched_partition_per_arriving_file(
    declared_in: str,
    echo: Emulator,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    load_yaml: Callable[[str], dg.Definitions],
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = arriving(inbox)
    run_resources = resources(echo)
    if declared_in == "python":
        asset = enriched_asset(
            source=source,
            workflow=AITutorWorkflow("wf_echo", ["text"]),
            settings=EnrichmentSettings(columns={"text": "body"}, journal_dir=str(tmp_path / "j")),
            partitions_def=FILES,
            automation_condition=dg.AutomationCondition.eager(),
        )
    else:
        loaded = load_yaml(ARRIVING_YAML.replace("JOURNAL", str(tmp_path / "j")))
        (asset,) = [a for a in loaded.assets or [] if isinstance(a, dg.AssetsDefinition)]
        assert asset.partitions_def == FILES
        run_resources.update(loaded.resources or {})  # its Parquet IO manager
    assets = [source, asset]
    defs = dg.Definitions(assets=assets, resources=run_resources)

    watcher = inbox_sensor(inbox, source)

    def arrive(*files: tuple[str, int]) -> None:
        """Files land; the inbox sensor (as docs/dagster.md writes it) adds a partition per
        new file and asks for the source's run of each, which run here."""
        for name, rows in files:
            bodies = [f"{name} row {i}" for i in range(rows)]
            pd.DataFrame({"body": bodies}).to_csv(inbox / name, index=False)
        tick = watcher(dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.SensorResult)
        for request in tick.dynamic_partitions_requests or []:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        requested = sorted(r.partition_key or "" for r in tick.run_requests or [])
        assert requested == sorted(name for name, _ in files), "each new file once"
        for name in requested:
            ingested = dg.materialize(
                assets,
                selection=[source],
                partition_key=name,
                instance=instance,
                resources=run_resources,
            )
            assert ingested.success

    # The automation sensor's first tick, before any file (it evaluates every 30 s or so).
    start = dg.evaluate_automation_conditions(defs, instance)
    assert start.total_requested == 0
    arrive(("a.csv", 3), ("b.csv", 2))
    first = dg.evaluate_automation_conditions(defs, instance, cursor=start.cursor)
    requested = run_requested(first, assets, instance, run_resources)
    assert requested == {"arrived": [], "arrived_wf_echo": ["a.csv", "b.csv"]}
    assert paid(echo) == 5

    idle = dg.evaluate_automation_conditions(defs, instance, cursor=first.cursor)
    assert idle.total_requested == 0, "each file once"

    arrive(("c.csv", 4))
    third = dg.evaluate_automation_conditions(defs, instance, cursor=idle.cursor)
    requested = run_requested(third, assets, instance, run_resources)
    assert requested == {"arrived": [], "arrived_wf_echo": ["c.csv"]}
    assert paid(echo) == 9, "only the new file's rows"
    assert latest_partition(instance, asset.key) == "c.csv"
    if declared_in == "yaml":  # stored by the component's ParquetIOManager
        stored = Path(instance.storage_directory()) / "arrived_wf_echo" / "c.csv.parquet"
        assert list(pd.read_parquet(stored)["body"]) == [f"c.csv row {i}" for i in range(4)]


REGIONS = dg.StaticPartitionsDefinition(["eu", "us"])
DAY_AND_REGION = dg.MultiPartitionsDefinition(
    {"date": dg.DailyPartitionsDefinition(start_date="2026-11-01"), "region": REGIONS}
)


@pytest.mark.parametrize(
    ("partitions_def", "keys", "files"),
    [
        (REGIONS, ["eu", "us"], ["eu.parquet", "us.parquet"]),
        (
            DAY_AND_REGION,
            [
                dg.MultiPartitionKey({"date": "2026-11-20", "region": "eu"}),
                dg.MultiPartitionKey({"date": "2026-11-20", "region": "us"}),
            ],
            ["2026-11-20/eu.parquet", "2026-11-20/us.parquet"],
        ),
    ],
    ids=["static", "multi"],
)
def test_static_and_multi_partitions_each_have_their_journal_and_file(
    partitions_def: dg.PartitionsDefinition[str],
    keys: list[str],
    files: list[str],
    echo: Emulator,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    @dg.asset(partitions_def=partitions_def)
    def regional(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"body": [f"{context.partition_key} note {i}" for i in range(3)]})

    asset = enriched_asset(
        source=regional,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "body"}, journal_dir=str(tmp_path / "j"), incremental=True
        ),
        partitions_def=partitions_def,
    )
    run_resources = {**resources(echo), "io_manager": ParquetIOManager(base_dir=str(tmp_path))}
    for key in [*keys, keys[0]]:
        done = dg.materialize(
            [regional, asset], partition_key=key, instance=instance, resources=run_resources
        )
        assert done.success
    assert paid(echo) == 6, "three rows a partition; the first again reuses its journal"
    for file in files:
        stored = pd.read_parquet(tmp_path / "regional_wf_echo" / file)
        assert list(stored["wf_status"]) == ["succeeded"] * 3
