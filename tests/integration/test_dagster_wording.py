"""In Dagster, messages name settings as a Dagster user sets them: parameters and resource
fields in Python definitions, keys in the YAML component; never ``runwf``'s flags."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    Budget,
    EnrichmentSettings,
    enriched_asset,
)
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


@dg.asset
def one_note() -> pd.DataFrame:
    """A single note."""
    frame: pd.DataFrame = pd.DataFrame({"body": ["a note"]})
    return frame


def only_error(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> str:
    """The wf_error of the one row of the enriched asset."""
    assert result.success
    (error,) = result.output_for_node(asset.node_def.name)["wf_error"].dropna()
    return str(error)


def echo_resource(emu: Emulator, **fields: Any) -> AITutorResource:
    return AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited", **fields)


def test_a_read_timeout_names_the_resource_field(emu: Emulator, tmp_path: Path) -> None:
    emu.update_config({"faults": {"slow_s": 1.5}})
    asset = notes_asset(tmp_path, one_note)
    resource = echo_resource(emu, read_timeout_s=0.3, max_attempts=1)
    result = dg.materialize([one_note, asset], resources={"aitutor": resource})
    error = only_error(result, asset)
    assert "no answer in time (ReadTimeout after 0.3 s)" in error
    assert "raise the resource's read_timeout_s if this workflow's runs take longer" in error
    assert "--attempt-timeout" not in error and "httpx" not in error
    assert "in the YAML" not in error


def test_an_answer_beyond_the_cap_names_the_resource_field(emu: Emulator, tmp_path: Path) -> None:
    emu.update_config({"faults": {"huge_body_bytes": 200_000}})
    asset = notes_asset(tmp_path, one_note)
    resource = echo_resource(emu, max_response_bytes=100_000)
    result = dg.materialize([one_note, asset], resources={"aitutor": resource})
    error = only_error(result, asset)
    assert "with more than 100,000 bytes" in error
    assert "Raise the resource's max_response_bytes if" in error
    assert "--max-response-bytes" not in error and "in the YAML" not in error


def test_a_row_meeting_429_after_429_names_the_resource_field(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.update_config({"faults": {"rate_limit_burst": 1_000, "retry_after": "0"}})
    asset = notes_asset(tmp_path, one_note)
    resource = echo_resource(emu, max_rate_limited=2)
    result = dg.materialize([one_note, asset], resources={"aitutor": resource})
    error = only_error(result, asset)
    assert "gave up after 3 rate-limited answers" in error
    assert "or raise the resource's max_rate_limited)" in error
    assert "RetryPolicy" not in error and "--rate" not in error


def test_a_credit_budget_for_ai_tutor_names_the_budget_parameter(
    emu: Emulator, tmp_path: Path
) -> None:
    asset = notes_asset(tmp_path, one_note, budget=Budget(max_credits=5))
    result = dg.materialize(
        [one_note, asset], resources={"aitutor": echo_resource(emu)}, raise_on_error=False
    )
    assert not result.success
    text, _ = failure_of(result)
    assert "cap its paid runs with budget=Budget(max_runs=...) instead" in text
    assert "--max-runs" not in text and "budget: {" not in text
    assert sum(emu.stats()["runs_by_workflow"].values()) == 0


YAML_ONE_NOTE = """\
type: dagster_runwf.EnrichedAssetComponent
attributes:
  service: aitutor
  workflow: wf_echo
  inputs: [text]
  columns: {text: body}
  source: one_note
  rate: unlimited
  journal_dir: "{{ env.TEST_JOURNAL_DIR }}"
"""


def test_an_answer_beyond_the_cap_names_the_resource_field_for_yaml(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
) -> None:
    # The YAML defines no resource (no api_key): the project's, defined in Python, has the cap.
    yaml_env.update_config({"faults": {"huge_body_bytes": 200_000}})
    defs = load_yaml(YAML_ONE_NOTE)
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resource = echo_resource(yaml_env, max_response_bytes=100_000)
    result = dg.materialize(
        [one_note, asset], resources={**(defs.resources or {}), "aitutor": resource}
    )
    error = only_error(result, asset)
    assert (
        "Raise the resource's max_response_bytes (of a resource defined in Python, with no "
        "api_key in the YAML) if this workflow really returns that much"
    ) in error
    assert "--max-response-bytes" not in error


def test_a_credit_budget_for_ai_tutor_names_the_budget_key(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
) -> None:
    defs = load_yaml(
        YAML_ONE_NOTE
        + """\
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
  budget: {max_credits: 5}
"""
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        [one_note, asset], resources=dict(defs.resources or {}), raise_on_error=False
    )
    assert not result.success
    text, _ = failure_of(result)
    assert "cap its paid runs with budget: {max_runs: N} instead" in text
    assert "Budget(" not in text and "--max-runs" not in text
    assert sum(yaml_env.stats()["runs_by_workflow"].values()) == 0


def store_warning(caplog: pytest.LogCaptureFixture) -> str:
    """The one warning that the key's rate is kept by this process only."""
    (warning,) = [r.getMessage() for r in caplog.records if "this process only" in r.getMessage()]
    return warning


def block_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the user's cache folder, where an ephemeral instance's 'auto' store lives, a file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))


def test_an_unusable_cache_folder_names_the_resource_field(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    block_cache_folder(tmp_path, monkeypatch)
    asset = notes_asset(tmp_path, one_note)
    resource = AITutorResource(api_key=KEY, base_url=emu.aitutor_url)
    with caplog.at_level(logging.WARNING, logger="dagster_runwf"):
        result = dg.materialize([one_note, asset], resources={"aitutor": resource})
    assert result.success
    warning = store_warning(caplog)
    assert "(set the resource's rate_limit_store to share it)" in warning
    assert "--rate-limit-store" not in warning and "in the YAML" not in warning


def test_an_unusable_cache_folder_names_the_yaml_key(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    block_cache_folder(tmp_path, monkeypatch)
    defs = load_yaml(
        YAML_ONE_NOTE.replace("  rate: unlimited\n", "")
        + """\
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
"""
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    with caplog.at_level(logging.WARNING, logger="dagster_runwf"):
        result = dg.materialize([one_note, asset], resources=dict(defs.resources or {}))
    assert result.success
    warning = store_warning(caplog)
    assert "(set rate_limit_store in the YAML (with api_key), or the resource's" in warning
    assert "--rate-limit-store" not in warning


def test_an_empty_key_names_the_resource_field_and_its_variable(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AITUTOR_API_KEY", "")  # `export AITUTOR_API_KEY=`: set, but empty
    asset = notes_asset(tmp_path, gappy)
    resource = AITutorResource(api_key=dg.EnvVar("AITUTOR_API_KEY"), base_url=emu.aitutor_url)
    result = dg.materialize([gappy, asset], resources={"aitutor": resource}, raise_on_error=False)
    assert not result.success
    text, _ = failure_of(result)
    assert (
        "AITutorResource.api_key is empty (a variable set to nothing?): give the service's "
        'key to the resource\'s api_key, e.g. dg.EnvVar("AITUTOR_API_KEY")'
    ) in text
    assert "in the YAML" not in text and "$AITUTOR_API_KEY" not in text
    assert sum(emu.stats()["runs_by_workflow"].values()) == 0


def test_an_empty_key_names_the_yaml_key(
    load_yaml: Callable[[str], dg.Definitions],
    yaml_env: Emulator,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AITUTOR_API_KEY", "")
    defs = load_yaml(
        YAML_ONE_NOTE
        + """\
  api_key: "{{ env.AITUTOR_API_KEY }}"
  base_url: "{{ env.AITUTOR_BASE_URL }}"
"""
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        [one_note, asset], resources=dict(defs.resources or {}), raise_on_error=False
    )
    assert not result.success
    text, _ = failure_of(result)
    assert 'key to api_key: "{{ env.AITUTOR_API_KEY }}" in the YAML, or the resource' in text
    assert "EnvVar" not in text
    assert sum(yaml_env.stats()["runs_by_workflow"].values()) == 0
