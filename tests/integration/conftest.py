"""Fixtures of the Dagster tests that count what each run pays."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_runwf.emulator import Emulator
from dagster_runwf.emulator.server import EmulatorProcess

from ..conftest import ECHO, KEY

SLOW = {
    "id": "wf_slow",
    "service": "aitutor",
    "variables": ["text"],
    "template": "slow:{{text}}",
    "latency": 0.05,
}
"""A workflow slow enough (50 ms a run) for a 200-row run to be killed halfway."""


@pytest.fixture
def paying_location(
    start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """The test code location's environment: an emulator with 15 credits on the key."""
    emu = start_emulator(
        rate_limit_enabled=False, workflows=[ECHO, SLOW], keys={KEY: {"credits": 15}}
    )
    monkeypatch.setenv("AITUTOR_API_KEY", KEY)
    monkeypatch.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
    monkeypatch.setenv("RUNWF_TEST_JOURNAL_DIR", str(tmp_path / "journal"))
    return emu


@pytest.fixture
def limited_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """The test code location against an emulator enforcing 5 requests/s with 15 credits,
    in its own process so that it stamps arrivals on time while the steps' processes and
    the run's orchestration here compete for the CPU."""
    config = {
        "include_builtins": True,
        "workflows": [ECHO],
        "aitutor_rate_limit": 5,
        "keys": {KEY: {"credits": 15}},
    }
    with Emulator.in_subprocess(config) as emu:
        monkeypatch.setenv("AITUTOR_API_KEY", KEY)
        monkeypatch.setenv("AITUTOR_BASE_URL", emu.aitutor_url)
        monkeypatch.setenv("RUNWF_TEST_JOURNAL_DIR", str(tmp_path / "journal"))
        yield emu


def most_chunk_steps_at_once(instance: dg.DagsterInstance, run_id: str) -> int:
    """The most chunk steps of run ``run_id`` that were running at one moment (from the
    order of their start and end events)."""
    edges = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or "enrich_chunk" not in (event.step_key or ""):
            continue
        if event.event_type_value == "STEP_START":
            edges.append((entry.timestamp, 1))
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            edges.append((entry.timestamp, -1))
    running = most = 0
    for _, change in sorted(edges):
        running += change
        most = max(most, running)
    return most


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance (the multiprocess executor needs one) in ``tmp_path/home``."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


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
