"""EnrichedAssetComponent: a defs.yaml loads into the very asset the Python factory builds,
materializes against the emulator, and dg finds and scaffolds the component."""

# No `from __future__ import annotations`: Dagster reads the test asset's annotations.

import datetime as dt
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pydantic
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    AnswerCheck,
    AnswerChecks,
    Budget,
    EnrichedAssetComponent,
    EnrichmentSettings,
    ParquetIOManager,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.component import PARQUET_IO_MANAGER_KEY

from ..conftest import ECHO, KEY
from .test_retry_failed import paid_per_row, run_asset

DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01")


@dg.asset(partitions_def=DAILY)
def notes(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Five notes a day, one of which the echo workflow fails on."""
    day = context.partition_key
    texts = [f"{day} note {i}" for i in range(4)] + [f"{day} bad note"]
    frame: pd.DataFrame = pd.DataFrame({"id": range(5), "body": texts})
    return frame


AITUTOR_YAML = """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: aitutor
  workflow: "{{ env.TEST_WORKFLOW_ID }}"
  inputs: [text]
  columns: {text: body}
  source: notes
  keep_columns: [id, body]
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
  rate: unlimited
  concurrency: 4
  journal_dir: "{{ env.TEST_JOURNAL_DIR }}"
  incremental: true
  failure_rate_threshold: 0.25
  partitions: {cadence: daily, start_date: "2026-11-01"}
  group_name: enrichment
  tags: {team: data}
  schedule: {hour_of_day: 3}
"""


def python_twin_arguments(journal_dir: str) -> dict[str, Any]:
    """What AITUTOR_YAML declares, as the factory's arguments."""
    return {
        "source": notes,
        "workflow": AITutorWorkflow("wf_echo", ["text"]),
        "settings": EnrichmentSettings(
            columns={"text": "body"},
            keep_columns=["id", "body"],
            rate="unlimited",
            concurrency=4,
            journal_dir=journal_dir,
            incremental=True,
            failure_rate_threshold=0.25,
        ),
        "partitions_def": DAILY,
        "group_name": "enrichment",
        "tags": {"team": "data"},
        "io_manager_key": PARQUET_IO_MANAGER_KEY,
    }


def python_twin(journal_dir: str) -> dg.AssetsDefinition:
    """What AITUTOR_YAML declares, written with the factory."""
    return enriched_asset(**python_twin_arguments(journal_dir))


@pytest.fixture
def yaml_env(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    monkeypatch.setenv("TEST_WORKFLOW_ID", "wf_echo")
    monkeypatch.setenv("AITUTOR_API_KEY", KEY)
    monkeypatch.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
    monkeypatch.setenv("TEST_JOURNAL_DIR", str(tmp_path / "journal"))
    return emu


COMPONENT_METADATA = {"dagster/code_references", "dagster/component_origin"}


def ops_of(asset: dg.AssetsDefinition) -> dict[str, Any]:
    """Each op of the asset (one, or a chunked asset's three) with its retry policy, pool
    and resources."""
    node = asset.node_def
    ops = node.node_defs if isinstance(node, dg.GraphDefinition) else [node]
    return {
        op.name: (op.retry_policy, op.pool, op.required_resource_keys)  # type: ignore[attr-defined]
        for op in ops
    }


def spec_of(asset: dg.AssetsDefinition) -> dict[str, Any]:
    """What the UI and the asset graph see of an enriched asset, and how its steps run."""
    spec = asset.specs_by_key[asset.key]
    return {
        "ops": ops_of(asset),
        "io_manager_key": asset.get_io_manager_key_for_asset_key(asset.key),
        "owners": spec.owners,
        "key": spec.key,
        "deps": [d.asset_key for d in spec.deps],
        "code_version": spec.code_version,
        "kinds": spec.kinds,
        "group": spec.group_name,
        "tags": {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")},
        "description": spec.description,
        # Dagster adds where a YAML asset was declared; the rest must be the same.
        "metadata": {k: v for k, v in spec.metadata.items() if k not in COMPONENT_METADATA},
        "partitions": spec.partitions_def,
        "checks": sorted(k.name for k in asset.check_keys),
        "resources": asset.required_resource_keys,
        "automation_condition": spec.automation_condition,
    }


def test_the_yaml_asset_is_the_python_factorys_asset(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator, tmp_path: Path
) -> None:
    defs = load_yaml(AITUTOR_YAML)
    (from_yaml,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert spec_of(from_yaml) == spec_of(python_twin(str(tmp_path / "journal")))
    assert from_yaml.key == dg.AssetKey("notes_wf_echo")
    origin = from_yaml.specs_by_key[from_yaml.key].metadata["dagster/component_origin"]
    assert KEY not in repr(origin), "the key never reaches metadata"
    typed_in = EnrichedAssetComponent(service="aitutor", workflow="wf", source="s", api_key=KEY)
    assert KEY not in repr(typed_in) and KEY not in str(typed_in)
    answer_checks = ["empty_answers", "undefined_answers", "citation_rate", "changed_answers"]
    assert spec_of(from_yaml)["checks"] == sorted(
        ["every_row_answered", "failure_rate", *answer_checks]
    )


def test_the_yaml_asset_materializes_on_the_emulator(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    defs = load_yaml(AITUTOR_YAML)
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resource = (defs.resources or {})["aitutor"]
    assert isinstance(resource, AITutorResource)
    assert isinstance(resource.api_key, dg.EnvVar), "{{ env.X }} stays an EnvVar"
    assert KEY not in repr(defs.resources)

    result = dg.materialize([notes, asset], resources=defs.resources, partition_key="2026-11-20")
    assert result.success
    table = result.output_for_node(asset.node_def.name)
    assert list(table.columns[:2]) == ["id", "body"] and len(table) == 5
    assert table["wf_status"].value_counts().to_dict() == {"succeeded": 4, "failed": 1}
    ok = table[table["wf_status"] == "succeeded"]
    answers = ok["wf_result"].str.rsplit(" [", n=1).str[0]
    assert list(answers) == [f"echo:{body}" for body in ok["body"]]
    assert all(len(c) == 1 for c in ok["wf_citations"])
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["failure_rate"] and checks["every_row_answered"]  # 20% <= 25%
    assert set(checks) == {"failure_rate", "every_row_answered", "empty_answers"} | {
        "undefined_answers",
        "citation_rate",
        "changed_answers",
    }
    assert all(checks.values()), checks
    assert sum(yaml_env.stats()["runs_by_workflow"].values()) == 5


def test_plan_check_defines_the_free_plan_of_the_yaml_asset(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    assert not load_yaml(AITUTOR_YAML).asset_checks, "no plan check unless asked for"
    defs = load_yaml(AITUTOR_YAML + "  plan_check: true\n")
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    (check,) = list(defs.asset_checks or [])
    assert isinstance(check, dg.AssetsDefinition)  # a check-only definition
    result = dg.materialize(
        [notes, asset, check],
        resources=defs.resources,
        partition_key="2026-11-20",
        selection=dg.AssetSelection.assets(notes) | dg.AssetSelection.checks(check),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "plan" and evaluation.passed
    assert evaluation.metadata["runwf/plan/send"].value == 5
    assert yaml_env.stats()["runs_by_workflow"] == {}, "the plan paid for nothing"


def test_the_yaml_asset_is_stored_as_parquet_in_parquet_dir(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    defs = load_yaml(AITUTOR_YAML + f"  parquet_dir: {warehouse}\n")
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    key = asset.get_io_manager_key_for_asset_key(asset.key)
    assert key.startswith(f"{PARQUET_IO_MANAGER_KEY}__") and key.endswith("_warehouse")
    manager = (defs.resources or {})[key]
    assert isinstance(manager, ParquetIOManager) and manager.base_dir == str(warehouse)

    result = dg.materialize([notes, asset], resources=defs.resources, partition_key="2026-11-20")
    assert result.success
    stored = pd.read_parquet(warehouse / "notes_wf_echo" / "2026-11-20.parquet")
    assert list(stored["body"]) == list(result.output_for_node(asset.node_def.name)["body"])
    assert stored["wf_status"].value_counts().to_dict() == {"succeeded": 4, "failed": 1}


def test_components_writing_to_different_folders_load_together(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator, tmp_path: Path
) -> None:
    def component(name: str, folder: str | None) -> str:
        text = AITUTOR_YAML.replace("  schedule: {hour_of_day: 3}\n", f"  name: {name}\n")
        return text + (f"  parquet_dir: {tmp_path / folder}\n" if folder else "")

    documents = [component("a", "one"), component("b", "two"), component("c", "one")]
    defs = load_yaml("---\n".join([*documents, component("d", None), component("e", None)]))
    keys = {
        asset.key.to_user_string(): asset.get_io_manager_key_for_asset_key(asset.key)
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
    }
    assert keys["a"] == keys["c"] != keys["b"], "one IO manager a folder"
    assert keys["d"] == keys["e"] == PARQUET_IO_MANAGER_KEY
    managers = {key: (defs.resources or {})[key] for key in keys.values()}
    assert {m.base_dir for m in managers.values()} == {
        str(tmp_path / "one"),
        str(tmp_path / "two"),
        None,
    }


def test_an_io_manager_key_stores_the_yaml_asset_with_the_projects_io_manager(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator, tmp_path: Path
) -> None:
    defs = load_yaml(AITUTOR_YAML + "  io_manager_key: warehouse\n")
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert asset.get_io_manager_key_for_asset_key(asset.key) == "warehouse"
    assert set(defs.resources or {}) == {"aitutor"}, "the project defines 'warehouse'"

    # With parquet_dir too, the component defines a ParquetIOManager under that key.
    with_dir = AITUTOR_YAML + f"  io_manager_key: warehouse\n  parquet_dir: {tmp_path}\n"
    manager = (load_yaml(with_dir).resources or {})["warehouse"]
    assert isinstance(manager, ParquetIOManager) and manager.base_dir == str(tmp_path)


def test_a_yaml_automation_condition_materializes_each_night(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,
    tmp_path: Path,
) -> None:
    nightly = dg.AutomationCondition.on_cron("0 2 * * *")
    text = AITUTOR_YAML.replace("  schedule: {hour_of_day: 3}\n", "") + (
        "  automation_condition: \"{{ dg.AutomationCondition.on_cron('0 2 * * *') }}\"\n"
    )
    loaded = load_yaml(text)
    (asset,) = [a for a in loaded.assets or [] if isinstance(a, dg.AssetsDefinition)]
    twin = enriched_asset(
        **{**python_twin_arguments(str(tmp_path / "journal")), "automation_condition": nightly}
    )
    assert spec_of(asset) == spec_of(twin)

    source = notes.with_attributes(automation_condition=nightly)
    defs = dg.Definitions(assets=[source, asset], resources=loaded.resources)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        tick = dt.datetime(2026, 11, 21, 1, 55, tzinfo=dt.timezone.utc)
        before = dg.evaluate_automation_conditions(defs, instance, evaluation_time=tick)
        assert before.total_requested == 0
        night = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=tick + dt.timedelta(minutes=10), cursor=before.cursor
        )
        assert night.get_requested_partitions(asset.key) == {"2026-11-20"}
        assert night.get_requested_partitions(source.key) == {"2026-11-20"}
        result = dg.materialize(
            [source, asset], partition_key="2026-11-20", instance=instance, resources=defs.resources
        )
        assert result.success
    assert sum(yaml_env.stats()["runs_by_workflow"].values()) == 5


def test_the_yaml_schedule_runs_the_source_and_the_asset_nightly(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    defs = dg.Definitions.merge(dg.Definitions(assets=[notes]), load_yaml(AITUTOR_YAML))
    schedule = defs.resolve_schedule_def("nightly_notes_wf_echo")
    job = defs.resolve_job_def("nightly_notes_wf_echo_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "notes",
        "notes_wf_echo",
    }
    tick = pd.Timestamp("2026-11-21T03:00:00Z").to_pydatetime()
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-11-20"


def test_a_runchat_yaml_asset_is_the_python_factorys_asset(
    load_yaml: Callable[[str], dg.Definitions], tmp_path: Path
) -> None:
    defs = load_yaml(
        textwrap.dedent(
            """\
            type: dagster_runwf.EnrichedAssetComponent
            attributes:
              service: runchat
              workflow: translate
              columns: {text_n1: body, language_n1: lang}
              source: raw/notes
              name: translated
              key_prefix: [enriched]
              result_output: Translation
              output_columns: {translation: Translation}
              journal_version: v2
              failure_rate_severity: ERROR
            """
        )
    )
    (from_yaml,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    twin = enriched_asset(
        source=["raw", "notes"],
        workflow=RunchatWorkflow(
            "translate", ["text_n1", "language_n1"], result_output="Translation"
        ),
        settings=EnrichmentSettings(
            columns={"text_n1": "body", "language_n1": "lang"},
            output_columns={"translation": "Translation"},
            journal_version="v2",
            failure_rate_severity=dg.AssetCheckSeverity.ERROR,
        ),
        name="translated",
        key_prefix=["enriched"],
        io_manager_key=PARQUET_IO_MANAGER_KEY,
    )
    assert spec_of(from_yaml) == spec_of(twin)
    assert from_yaml.key == dg.AssetKey(["enriched", "translated"])
    assert set(defs.resources or {}) == {PARQUET_IO_MANAGER_KEY}, (
        "no api_key: the project defines the runchat resource"
    )


@pytest.mark.parametrize(
    ("service", "key", "resource_class"),
    [
        ("aitutor", "notes_wf_abc123", AITutorResource),
        ("runchat", "notes_my_flow_id", RunchatResource),
    ],
)
def test_the_scaffolded_defs_yaml_loads(
    service: str, key: str, resource_class: type[AITutorResource | RunchatResource]
) -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            EnrichedAssetComponent, scaffold_params={"service": service, "source": "notes"}
        )
        text = (path / "defs.yaml").read_text()
        assert f'api_key: "{{{{ env.{service.upper()}_API_KEY }}}}"' in text
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, EnrichedAssetComponent)
            (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
            assert asset.key == dg.AssetKey(key)
            assert asset.asset_deps[asset.key] == {dg.AssetKey("notes")}
            resource = (defs.resources or {})[service]
            assert isinstance(resource, resource_class)
            assert isinstance(resource.api_key, dg.EnvVar)


def test_dg_lists_the_component(tmp_path: Path) -> None:
    (entry_point,) = [
        e
        for e in importlib.metadata.entry_points(group="dagster_dg_cli.registry_modules")
        if e.value == "dagster_runwf"
    ]
    assert "EnrichedAssetComponent" in dir(entry_point.load())
    dg_cli = Path(sys.executable).parent / "dg"
    if not dg_cli.exists():
        pytest.skip("dagster-dg-cli is not installed (it is in the dev extra)")
    done = subprocess.run(
        [str(dg_cli), "list", "components", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # outside any dg project: the components of this environment
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    keys = {item["key"] for item in json.loads(done.stdout)["items"]}
    assert "dagster_runwf.EnrichedAssetComponent" in keys


def test_dg_scaffolds_a_defs_yaml_in_a_project(tmp_path: Path) -> None:
    dg_cli = Path(sys.executable).parent / "dg"
    if not dg_cli.exists():
        pytest.skip("dagster-dg-cli is not installed (it is in the dev extra)")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "proj"\n'
    )
    (tmp_path / "src" / "proj" / "defs").mkdir(parents=True)
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(
        [
            str(dg_cli),
            "scaffold",
            "defs",
            "dagster_runwf.EnrichedAssetComponent",
            "profiles",
            "--json-params",
            '{"service": "aitutor", "source": "companies"}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            **os.environ,
            "DAGSTER_HOME": str(tmp_path),
            "VIRTUAL_ENV": str(Path(bin_dir).parent),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "src" / "proj" / "defs" / "profiles" / "defs.yaml").read_text()
    assert text.startswith("type: dagster_runwf.EnrichedAssetComponent\n")
    assert "source: companies" in text


def test_a_chunked_yaml_asset_is_the_python_factorys_chunked_asset(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator, tmp_path: Path
) -> None:
    chunked_yaml = AITUTOR_YAML.replace("  tags: {team: data}\n", "").replace(
        "  schedule: {hour_of_day: 3}\n",
        "  chunk_size: 2\n  max_retries: 2\n  pool: aitutor-key\n  on_missing: skip\n",
    )
    defs = load_yaml(chunked_yaml)
    (from_yaml,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    twin = enriched_asset(
        source=notes,
        workflow=AITutorWorkflow("wf_echo", ["text"], on_missing="skip"),
        settings=EnrichmentSettings(
            columns={"text": "body"},
            keep_columns=["id", "body"],
            rate="unlimited",
            concurrency=4,
            journal_dir=str(tmp_path / "journal"),
            incremental=True,
            failure_rate_threshold=0.25,
            chunk_size=2,
        ),
        partitions_def=DAILY,
        group_name="enrichment",
        retry_policy=dg.RetryPolicy(max_retries=2),
        pool="aitutor-key",
        io_manager_key=PARQUET_IO_MANAGER_KEY,
    )
    assert spec_of(from_yaml) == spec_of(twin)
    ops = {node.name: node for node in from_yaml.node_def.node_defs}  # type: ignore[attr-defined]
    chunk_op = ops["notes_wf_echo__enrich_chunk"]
    assert chunk_op.retry_policy == dg.RetryPolicy(max_retries=2)
    assert chunk_op.pool == "aitutor-key"


# -- one declaration: every argument of the factory has a YAML key ------------------------------

EVERY_ARGUMENT_YAML = """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: runchat
  workflow: translate
  inputs: [text_n1, language_n1]
  result_output: Translation
  source: raw/notes
  # every EnrichmentSettings field, none at its default
  columns: {text_n1: body, language_n1: lang}
  keep_columns: [id, body]
  output_columns: {translation: Translation}
  prefix: rc_
  rate: 5/s
  concurrency: 3
  budget: {max_runs: 100, max_credits: 12.5}
  journal_dir: memory://journals
  journal_storage_options: {skip_instance_cache: true}
  incremental: true
  max_age: P30D
  journal_version: v2
  retry_failed: true
  preflight: false
  failure_rate_threshold: 0.2
  failure_rate_severity: ERROR
  answer_checks:
    undefined_answers: {blocking: true}
    citation_rate: {enabled: true, threshold: 0.5}
    changed_answers: {enabled: false}
  progress_interval_s: 30
  chunk_size: 50
  land_partial: true
  # the factory's Dagster arguments
  name: translated
  key_prefix: [enriched]
  resource_key: runchat_eu
  partitions: {cadence: daily, start_date: "2026-11-01"}
  group_name: enrichment
  tags: {team: data}
  owners: ["team:data"]
  description: The notes in English.
  max_retries: 2
  pool: runchat-key
  io_manager_key: parquet
  automation_condition: "{{ dg.AutomationCondition.on_cron('0 2 * * *') }}"
"""

EVERY_ARGUMENT_PYTHON: dict[str, Any] = {
    "source": "raw/notes",
    "workflow": RunchatWorkflow(
        "translate", ["text_n1", "language_n1"], result_output="Translation"
    ),
    "settings": EnrichmentSettings(
        columns={"text_n1": "body", "language_n1": "lang"},
        keep_columns=["id", "body"],
        output_columns={"translation": "Translation"},
        prefix="rc_",
        rate="5/s",
        concurrency=3,
        budget=Budget(max_runs=100, max_credits=12.5),
        journal_dir="memory://journals",
        journal_storage_options={"skip_instance_cache": True},
        incremental=True,
        max_age=dt.timedelta(days=30),
        journal_version="v2",
        retry_failed=True,
        preflight=False,
        failure_rate_threshold=0.2,
        failure_rate_severity=dg.AssetCheckSeverity.ERROR,
        answer_checks=AnswerChecks(
            undefined_answers=AnswerCheck(blocking=True),
            citation_rate=AnswerCheck(enabled=True, threshold=0.5),
            changed_answers=AnswerCheck(enabled=False),
        ),
        progress_interval_s=30.0,
        chunk_size=50,
        land_partial=True,
    ),
    "name": "translated",
    "key_prefix": ["enriched"],
    "resource_key": "runchat_eu",
    "partitions_def": dg.DailyPartitionsDefinition(start_date="2026-11-01"),
    "group_name": "enrichment",
    "tags": {"team": "data"},
    "owners": ["team:data"],
    "description": "The notes in English.",
    "retry_policy": dg.RetryPolicy(max_retries=2),
    "pool": "runchat-key",
    "io_manager_key": "parquet",
    "automation_condition": dg.AutomationCondition.on_cron("0 2 * * *"),
}
"""What EVERY_ARGUMENT_YAML declares, as the factory's arguments."""


def comparable(argument: Any) -> Any:
    """Workflows compare by what they run (they have no equality of their own)."""
    if isinstance(argument, RunchatWorkflow | AITutorWorkflow):
        return type(argument), argument.fingerprint()
    return argument


def test_every_argument_of_the_factory_is_reachable_from_yaml(
    load_yaml: Callable[[str], dg.Definitions], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Python side sets every parameter of the factory and every setting, none at its
    # default: a new parameter or setting fails here until it is added above, in both.
    assert set(inspect.signature(enriched_asset).parameters) == set(EVERY_ARGUMENT_PYTHON)
    settings = EVERY_ARGUMENT_PYTHON["settings"]
    for name, field in EnrichmentSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        assert getattr(settings, name) != default, f"set {name} to a non-default value"
        assert name in EnrichedAssetComponent.model_fields, f"{name} has no YAML key"

    # The YAML side reaches the factory with the very same arguments...
    calls: list[dict[str, Any]] = []

    def factory(**arguments: Any) -> dg.AssetsDefinition:
        calls.append(arguments)
        return enriched_asset(**arguments)

    monkeypatch.setattr("dagster_runwf.integration.component.enriched_asset", factory)
    defs = load_yaml(EVERY_ARGUMENT_YAML)
    (from_yaml_call,) = calls
    assert set(from_yaml_call) == set(EVERY_ARGUMENT_PYTHON)
    for name, value in EVERY_ARGUMENT_PYTHON.items():
        assert comparable(from_yaml_call[name]) == comparable(value), name
    assert type(from_yaml_call["settings"]) is EnrichmentSettings

    # ... so it builds the same asset.
    (from_yaml,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert spec_of(from_yaml) == spec_of(enriched_asset(**EVERY_ARGUMENT_PYTHON))
    assert from_yaml.key == dg.AssetKey(["enriched", "translated"])


def test_the_yaml_schema_describes_every_setting() -> None:
    schema = EnrichedAssetComponent.get_model_cls().model_json_schema()  # type: ignore[union-attr]
    for name, field in EnrichmentSettings.model_fields.items():
        assert schema["properties"][name]["description"] == field.description, name
    assert "template variables" in schema["properties"]["inputs"]["description"]


def test_settings_refuse_unknown_names_and_bad_values_when_made() -> None:
    bad: dict[str, Any] = {
        "colums": {"a": "b"},  # a typo
        "rate": "fast",
        "concurrency": 0,
        "max_age": dt.timedelta(0),
        "failure_rate_threshold": 1.5,
        "failure_rate_severity": "LOUD",
        "progress_interval_s": 0,
        "budget": {"max_runs": -1},
    }
    for name, value in bad.items():
        with pytest.raises(pydantic.ValidationError, match=name.split("_")[0]):
            EnrichmentSettings(**{name: value})
    # An answer check's bad threshold or unknown key is named with its path.
    for checks in ({"citation_rate": {"threshold": 1.5}}, {"undefined": {"blocking": True}}):
        with pytest.raises(pydantic.ValidationError, match="answer_checks") as raised:
            EnrichmentSettings(answer_checks=checks)  # type: ignore[arg-type]
        assert next(iter(checks)) in str(raised.value)
    settings = EnrichmentSettings(journal_storage_options={"key": "secret-ish"})
    assert "secret-ish" not in repr(settings), "storage options may hold credentials"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.incremental = True


@pytest.mark.parametrize(
    ("given", "max_age"),
    [
        ("3600", dt.timedelta(hours=1)),
        ("1.5", dt.timedelta(seconds=1.5)),
        ("P30D", dt.timedelta(days=30)),
        ("PT12H", dt.timedelta(hours=12)),
    ],
)
def test_yaml_gives_max_age_in_seconds_or_as_an_iso_duration(
    given: str, max_age: dt.timedelta
) -> None:
    component = EnrichedAssetComponent.resolve_from_yaml(
        f"service: aitutor\nworkflow: wf\nsource: s\ninputs: [x]\nmax_age: {given}\n"
    )
    assert component.build_settings().max_age == max_age


def test_a_bad_yaml_setting_fails_the_load_naming_it(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    for text, name in [
        (AITUTOR_YAML.replace("0.25", "1.25"), "failure_rate_threshold"),
        (AITUTOR_YAML + "  max_age_hours: 12\n", "max_age_hours"),  # renamed max_age
        (AITUTOR_YAML.replace('start_date: "2026-11-01"', "timezone: UTC"), "start_date"),
        (AITUTOR_YAML.replace("cadence: daily", "dynamic: files"), "not both"),
    ]:
        with pytest.raises(Exception) as failed:
            load_yaml(text)
        chain = [failed.value, *iter_causes(failed.value)]
        assert any(name in str(error) for error in chain), name


def iter_causes(error: BaseException) -> Iterator[BaseException]:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
        yield error


def test_the_yaml_component_takes_retry_failed(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    yaml_env.update_config({"faults": {"fail_attempts": 100, "fail_with": "html_200"}})
    stored_in_results = AITUTOR_YAML + "  io_manager_key: results\n"

    def run(text: str, *, lands: bool = True) -> pd.DataFrame | None:
        defs = load_yaml(text)
        (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        resource = (defs.resources or {})["aitutor"]
        assert isinstance(resource, AITutorResource)
        return run_asset([notes, asset], resource, "2026-11-20", lands=lands)

    # Results that did not land leave the job open: the next run resumes it. The echo
    # workflow fails on the "bad note" (a row error, before any answer is sent).
    run(stored_in_results, lands=False)
    paid = paid_per_row(yaml_env)
    assert paid == [1] + [2] * 4
    run(stored_in_results, lands=False)
    assert paid_per_row(yaml_env) == paid, "the next run paid nothing"

    yaml_env.update_config({"faults": {"fail_attempts": 0}})
    retried = run(stored_in_results + "  retry_failed: true\n")
    assert retried is not None
    # Every failed row is sent again: the "bad note" fails again, paid once more too.
    assert list(retried["wf_status"]) == ["succeeded"] * 4 + ["failed"]
    assert paid_per_row(yaml_env) == [2] + [3] * 4
