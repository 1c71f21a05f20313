"""In Dagster, messages name settings as a Dagster user sets them: parameters and resource
fields in Python definitions, keys in the YAML component; never ``runwf``'s flags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY
from .test_component import yaml_env  # noqa: F401 (a fixture)


@dg.asset
def gappy() -> pd.DataFrame:
    """Three notes, the second one missing."""
    frame: pd.DataFrame = pd.DataFrame({"body": ["a note", None, "another note"]})
    return frame


@dg.asset
def all_bad() -> pd.DataFrame:
    """Ten notes the echo workflow fails on."""
    frame: pd.DataFrame = pd.DataFrame({"body": [f"bad note {i}" for i in range(10)]})
    return frame


def notes_asset(tmp_path: Path, source: dg.AssetsDefinition, **settings: Any) -> Any:
    return enriched_asset(
        source=source,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "body"}, journal_dir=str(tmp_path / "journal"), **settings
        ),
    )


@pytest.fixture
def emu(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})


def failure_of(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    """The failed step's description and metadata."""
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = event.step_failure_data.user_failure_data
    assert data is not None
    return str(data.description), {k: v.value for k, v in data.metadata.items()}


def test_a_missing_input_names_the_python_parameter(emu: Emulator, tmp_path: Path) -> None:
    asset = notes_asset(tmp_path, gappy)
    resource = AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")
    result = dg.materialize([gappy, asset], resources={"aitutor": resource})
    assert result.success
    (error,) = result.output_for_node(asset.node_def.name)["wf_error"].dropna()
    assert "set on_missing='null' to send it as null, or on_missing='skip'" in error
    assert "--on-missing" not in error and "on_missing:" not in error


def test_a_missing_input_names_the_yaml_key(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
) -> None:
    defs = load_yaml(
        """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: aitutor
  workflow: wf_echo
  inputs: [text]
  columns: {text: body}
  source: gappy
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
  rate: unlimited
  journal_dir: "{{ env.TEST_JOURNAL_DIR }}"
"""
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize([gappy, asset], resources=dict(defs.resources or {}))
    assert result.success
    (error,) = result.output_for_node(asset.node_def.name)["wf_error"].dropna()
    assert 'set on_missing: "null" to send it as null, or on_missing: skip' in error
    assert "--on-missing" not in error and "on_missing=" not in error


def test_a_refused_key_names_the_resource_and_its_variable_and_nothing_ran(
    emu: Emulator, tmp_path: Path
) -> None:
    asset = notes_asset(tmp_path, gappy)
    resource = AITutorResource(api_key="sk_not_this_one_42", base_url=emu.aitutor_url)
    result = dg.materialize([gappy, asset], resources={"aitutor": resource}, raise_on_error=False)
    assert not result.success
    text, metadata = failure_of(result)
    assert 'Check the API key (the resource\'s api_key, e.g. dg.EnvVar("AITUTOR_API_KEY"))' in text
    assert "Stopped before the first row: nothing was sent or paid." in text
    assert "kept" not in text, "the pre-flight stopped it before any row finished"
    assert "$AITUTOR_API_KEY" not in text and "sk_not_this_one_42" not in text
    assert metadata["runwf/input_rows"] == 3
    assert metadata["runwf/sent"] == 0 and metadata["runwf/rows"] == 0
    assert sum(emu.stats()["runs_by_workflow"].values()) == 0


def test_the_circuit_breaker_names_the_resource_field(emu: Emulator, tmp_path: Path) -> None:
    asset = notes_asset(tmp_path, all_bad, preflight=False)
    resource = AITutorResource(
        api_key=KEY,
        base_url=emu.aitutor_url,
        rate="unlimited",
        concurrency=1,
        max_consecutive_failures=3,
    )
    result = dg.materialize([all_bad, asset], resources={"aitutor": resource}, raise_on_error=False)
    assert not result.success
    text, metadata = failure_of(result)
    assert "raise the resource's max_consecutive_failures (now 3)" in text
    assert "--max-consecutive-failures" not in text
    assert metadata["runwf/failed"] == 3 and metadata["runwf/sent"] == 3
    assert sum(emu.stats()["runs_by_workflow"].values()) == 3


def test_the_circuit_breaker_names_the_yaml_key(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
) -> None:
    defs = load_yaml(
        """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: aitutor
  workflow: wf_echo
  inputs: [text]
  columns: {text: body}
  source: all_bad
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
  max_consecutive_failures: 3
  rate: unlimited
  concurrency: 1
  preflight: false
  journal_dir: "{{ env.TEST_JOURNAL_DIR }}"
"""
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        [all_bad, asset], resources=dict(defs.resources or {}), raise_on_error=False
    )
    assert not result.success
    text, metadata = failure_of(result)
    assert "raise max_consecutive_failures in the YAML (with api_key)" in text
    assert "--max-consecutive-failures" not in text
    assert metadata["runwf/failed"] == 3
    assert sum(yaml_env.stats()["runs_by_workflow"].values()) == 3
