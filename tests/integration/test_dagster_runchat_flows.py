"""A Runchat flow over time, through Dagster: an edited flow (its schema changed on the
service) is paid again with a warning in the log and the materialization's metadata, and
each entity of a ``continue_by`` key column continues its own instance from night to night
(one step, or chunk steps). Materialized in process against the emulator on loopback."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import (
    EnrichmentSettings,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
    enrichment_plan_check,
)
from dagster_runwf.emulator import Emulator

from ..conftest import CHAT, KEY, PROFILE


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def flows(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(workflows=[PROFILE, CHAT], rate_limit_enabled=False)


class Tonight:
    """The source table, changed between materializations like a night's new rows."""

    def __init__(self) -> None:
        self.rows = pd.DataFrame()

    def asset(self) -> dg.AssetsDefinition:
        @dg.asset(name="customers")
        def customers() -> pd.DataFrame:
            return self.rows.copy()

        return customers


def materialize(
    emu: Emulator,
    instance: dg.DagsterInstance,
    source: Tonight,
    asset: dg.AssetsDefinition,
    **failure: Any,
) -> dg.ExecuteInProcessResult:
    resource = RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    return dg.materialize(
        [source.asset(), asset], resources={"runchat": resource}, instance=instance, **failure
    )


def planned_sends(
    emu: Emulator, instance: dg.DagsterInstance, source: Tonight, asset: dg.AssetsDefinition
) -> int:
    """The rows the asset's plan check (executed alone, free) says a materialization sends."""
    check = enrichment_plan_check(asset)
    resource = RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    customers = source.asset()
    result = dg.materialize(
        [customers, asset, check],
        resources={"runchat": resource},
        instance=instance,
        selection=dg.AssetSelection.assets(customers) | dg.AssetSelection.checks(check),
    )
    [evaluation] = result.get_asset_check_evaluations()
    sends = evaluation.metadata["runwf/plan/send"].value
    assert isinstance(sends, int)
    return sends


def metadata_of(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset.node_def.name.split(".")[0])
    return {k: v.value for k, v in event.metadata.items()}


def warnings_of(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == "WARNING" or (isinstance(entry.level, int) and entry.level >= 30)
        if entry.dagster_event is None
    ]


def paid(emu: Emulator, flow: str) -> int:
    return int(emu.stats()["runs_by_workflow"].get(flow, 0))


def test_an_edited_flow_is_paid_again_with_a_warning(
    flows: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = Tonight()
    source.rows = pd.DataFrame({"text_n1": [f"t{i}" for i in range(6)]})
    asset = enriched_asset(
        source="customers",
        workflow=RunchatWorkflow("profile", ["text_n1"]),
        settings=EnrichmentSettings(journal_dir=str(tmp_path / "journal"), incremental=True),
        name="profiles",
    )
    first = materialize(flows, instance, source, asset)
    fingerprint = metadata_of(first, asset)["runwf/flow_schema"]
    same = materialize(flows, instance, source, asset)
    assert paid(flows, "profile") == 6, "the unchanged flow's answers are reused"
    assert metadata_of(same, asset)["runwf/flow_schema"] == fingerprint
    assert "runwf/flow_schema_change" not in metadata_of(same, asset)
    assert not warnings_of(instance, same)
    assert planned_sends(flows, instance, source, asset) == 0

    flows.update_config(
        workflows={
            "profile": {
                "outputs": [
                    *PROFILE["outputs"],
                    {"id": "summary_n3", "label": "Summary", "template": "s"},
                ]
            }
        }
    )
    # The plan ties the rows to the flow as it is now, pays nothing and records nothing
    # (the materialization after it still warns).
    assert planned_sends(flows, instance, source, asset) == 6
    assert paid(flows, "profile") == 6
    edited = materialize(flows, instance, source, asset)
    assert paid(flows, "profile") == 12, "every row of the edited flow is paid again"
    metadata = metadata_of(edited, asset)
    assert metadata["runwf/flow_schema"] != fingerprint
    assert metadata["runwf/flow_schema_before"] == fingerprint
    assert metadata["runwf/flow_schema_change"] == "outputs added: summary_n3"
    assert metadata["runwf/reused"] == 0 and metadata["runwf/sent"] == 6
    (warning,) = warnings_of(instance, edited)
    assert warning.startswith("Runchat flow 'profile' changed on the service"), warning
    assert "outputs added: summary_n3" in warning and "not reused" in warning

    materialize(flows, instance, source, asset)
    assert paid(flows, "profile") == 12, "then the edited flow's answers are reused"


def by_message(emu: Emulator) -> dict[str, dict[str, Any]]:
    return {run["inputs"]["message_n1"]: run for run in emu.instances("chat")}


@pytest.mark.parametrize("chunk_size", [None, 2], ids=["one step", "chunk steps"])
def test_each_entity_continues_its_own_instance_across_nights(
    flows: Emulator, instance: dg.DagsterInstance, tmp_path: Path, chunk_size: int | None
) -> None:
    source = Tonight()
    asset = enriched_asset(
        source="customers",
        workflow=RunchatWorkflow("chat", ["message_n1"], continue_by="customer"),
        settings=EnrichmentSettings(
            journal_dir=str(tmp_path / "journal"), incremental=True, chunk_size=chunk_size
        ),
        name="conversations",
    )
    source.rows = pd.DataFrame({"customer": ["A", "B"], "message_n1": ["a1", "b1"]})
    assert materialize(flows, instance, source, asset).success
    runs = by_message(flows)
    a, b = runs["a1"]["instance_id"], runs["b1"]["instance_id"]
    assert a != b and not runs["a1"]["continued"] and not runs["b1"]["continued"]

    source.rows = pd.DataFrame({"customer": ["B", "A", "C"], "message_n1": ["b2", "a2", "c1"]})
    second = materialize(flows, instance, source, asset)
    runs = by_message(flows)
    assert runs["a2"]["continued"] and runs["a2"]["instance_id"] == a and runs["a2"]["turn"] == 2
    assert runs["b2"]["continued"] and runs["b2"]["instance_id"] == b and runs["b2"]["turn"] == 2
    assert not runs["c1"]["continued"]
    table = second.output_for_node(asset.node_def.name.split(".")[0])
    if chunk_size is not None:  # the graph asset's value is its collect step's output
        table = second.output_for_node(asset.node_def.name, "result")
    assert list(table["wf_instance_id"]) == [b, a, runs["c1"]["instance_id"]]
    assert paid(flows, "chat") == 5


def test_a_bad_continue_by_column_fails_before_any_request(
    flows: Emulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = Tonight()
    source.rows = pd.DataFrame({"customer": ["A"], "message_n1": ["m"]})
    asset = enriched_asset(
        source="customers",
        workflow=RunchatWorkflow("chat", ["message_n1"], continue_by="client"),
        settings=EnrichmentSettings(journal_dir=str(tmp_path / "journal")),
        name="conversations",
    )
    result = materialize(flows, instance, source, asset, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert text.startswith("continue_by='client': the table has no column 'client'"), text
    assert flows.stats()["total_requests"] == 0


def test_the_yaml_component_takes_continue_by_and_instance_id_column(
    load_yaml: Callable[[str], dg.Definitions],
) -> None:
    for setting in ("continue_by: customer", "instance_id_column: conversation"):
        defs = load_yaml(
            textwrap.dedent(
                f"""\
                type: dagster_runwf.EnrichedAssetComponent
                attributes:
                  service: runchat
                  workflow: chat
                  inputs: [message_n1]
                  source: customers
                  name: conversations
                  {setting}
                """
            )
        )
        (from_yaml,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        name, column = setting.split(": ")
        chosen: dict[str, Any] = {name: column}
        twin = enriched_asset(
            source="customers",
            workflow=RunchatWorkflow("chat", ["message_n1"], **chosen),
            name="conversations",
        )
        plain = enriched_asset(
            source="customers", workflow=RunchatWorkflow("chat", ["message_n1"]), name="c"
        )
        code_version = from_yaml.specs_by_key[from_yaml.key].code_version
        assert code_version == twin.specs_by_key[twin.key].code_version
        assert code_version != plain.specs_by_key[plain.key].code_version


def test_a_bad_yaml_continue_by_is_named_as_its_yaml_key(
    load_yaml: Callable[[str], dg.Definitions],
    flows: Emulator,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    defs = load_yaml(
        textwrap.dedent(
            f"""\
            type: dagster_runwf.EnrichedAssetComponent
            attributes:
              service: runchat
              workflow: chat
              inputs: [message_n1]
              source: customers
              name: conversations
              continue_by: client
              parquet_dir: {tmp_path / "parquet"}
              journal_dir: {tmp_path / "journal"}
            """
        )
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    source = Tonight()
    source.rows = pd.DataFrame({"customer": ["A"], "message_n1": ["m"]})
    resource = RunchatResource(api_key=KEY, base_url=flows.runchat_url, rate="unlimited")
    result = dg.materialize(
        [source.asset(), asset],
        resources={**(defs.resources or {}), "runchat": resource},
        instance=instance,
        raise_on_error=False,
    )
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert text.startswith("continue_by: client: the table has no column 'client'"), text
    assert flows.stats()["total_requests"] == 0
