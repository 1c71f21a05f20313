"""Fixtures of the Dagster tests that count what each run pays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_runwf.emulator import Emulator

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
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance (the multiprocess executor needs one) in ``tmp_path/home``."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
