"""EnrichedAssetComponent: a defs.yaml loads into the very asset the Python factory builds,
materializes against the emulator, and dg finds and scaffolds the component."""

# No `from __future__ import annotations`: Dagster reads the test asset's annotations.

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichedAssetComponent,
    EnrichmentSettings,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator

from .conftest import ECHO, KEY

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


def python_twin(journal_dir: str) -> dg.AssetsDefinition:
    """What AITUTOR_YAML declares, written with the factory."""
    return enriched_asset(
        source=notes,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "body"},
            keep_columns=["id", "body"],
            rate="unlimited",
            concurrency=4,
            journal_dir=journal_dir,
            incremental=True,
            failure_rate_threshold=0.25,
        ),
        partitions_def=DAILY,
        group_name="enrichment",
        tags={"team": "data"},
    )


@pytest.fixture
def load_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Write a dg project with one defs.yaml to tmp_path and load it with Dagster."""
    package = f"runwf_component_test_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(text: str) -> dg.Definitions:
        (tmp_path / "dg.toml").write_text(
            f'directory_type = "project"\n\n[project]\nroot_module = "{package}"\n'
        )
        folder = tmp_path / package / "defs" / "enriched"
        folder.mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "defs" / "__init__.py").write_text("")
        (folder / "defs.yaml").write_text(text)
        return dg.load_from_defs_folder(path_within_project=tmp_path)

    yield load
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


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


def spec_of(asset: dg.AssetsDefinition) -> dict[str, Any]:
    """What the UI and the asset graph see of an enriched asset."""
    spec = asset.specs_by_key[asset.key]
    return {
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
    assert spec_of(from_yaml)["checks"] == ["every_row_answered", "failure_rate"]


def test_the_yaml_asset_materializes_on_the_emulator(
    load_yaml: Callable[[str], dg.Definitions], yaml_env: Emulator
) -> None:
    defs = load_yaml(AITUTOR_YAML)
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resource = (defs.resources or {})["aitutor"]
    assert isinstance(resource, AITutorResource)
    assert isinstance(resource.api_key, dg.EnvVar), "{{ env.X }} stays an EnvVar"
    assert KEY not in repr(defs.resources)

    result = dg.materialize(
        [notes, asset], resources={"aitutor": resource}, partition_key="2026-11-20"
    )
    assert result.success
    table = result.output_for_node(asset.node_def.name)
    assert list(table.columns[:2]) == ["id", "body"] and len(table) == 5
    assert table["wf_status"].value_counts().to_dict() == {"succeeded": 4, "failed": 1}
    ok = table[table["wf_status"] == "succeeded"]
    answers = ok["wf_result"].str.rsplit(" [", n=1).str[0]
    assert list(answers) == [f"echo:{body}" for body in ok["body"]]
    assert all(len(c) == 1 for c in ok["wf_citations"])
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"failure_rate": True, "every_row_answered": True}  # 20% <= 25%
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
    )
    assert spec_of(from_yaml) == spec_of(twin)
    assert from_yaml.key == dg.AssetKey(["enriched", "translated"])
    assert not defs.resources, "no api_key: the project defines the runchat resource"


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
    )
    assert spec_of(from_yaml) == spec_of(twin)
    ops = {node.name: node for node in from_yaml.node_def.node_defs}  # type: ignore[attr-defined]
    chunk_op = ops["notes_wf_echo__enrich_chunk"]
    assert chunk_op.retry_policy == dg.RetryPolicy(max_retries=2)
    assert chunk_op.pool == "aitutor-key"
