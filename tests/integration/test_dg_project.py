"""The dg walk-through of docs/dagster.md, run with the dg commands themselves: a project made
by ``create-dagster project``, the component scaffolded by ``dg scaffold defs``, checked and
listed by ``dg check defs`` / ``dg list defs``, materialized by ``dg launch`` against the
emulator, and its value found as a Parquet file. Offline: nothing is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY

BIN = Path(sys.executable).parent
REPOSITORY = Path(__file__).resolve().parents[2]

COMPANIES = '''\
import dagster as dg
import pandas as pd


@dg.asset
def companies() -> pd.DataFrame:
    """Three companies; the echo workflow fails on the one named "bad"."""
    return pd.DataFrame({"id": [1, 2, 3], "name": ["Acme", "Globex", "bad corp"]})
'''


ANSWER_CHECKS_ON_BY_DEFAULT = (
    "empty_answers",
    "undefined_answers",
    "citation_rate",
    "changed_answers",
)
"""The answer checks an AI Tutor asset without an output schema gets by default."""


def needs(*tools: str) -> None:
    for tool in tools:
        if not (BIN / tool).exists():
            pytest.skip(f"{tool} is not installed (it is in the dev extra)")


def test_a_yaml_only_dg_project_enriches_into_parquet(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    needs("dg", "create-dagster")
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    project = tmp_path / "my-project"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(BIN.parent),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",  # no look-up of newer versions on PyPI
        # What `pip install -e .` (or `uv sync`) of the new project would do, offline; and
        # this checkout of dagster_runwf rather than any other installed.
        "PYTHONPATH": os.pathsep.join([str(project / "src"), str(REPOSITORY)]),
        "AITUTOR_API_KEY": KEY,
        "AITUTOR_BASE_URL": emu.aitutor_url,
    }

    def run(*command: str, cwd: Path = project) -> str:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run("create-dagster", "project", "my-project", "--no-uv-sync", cwd=tmp_path)
    defs = project / "src" / "my_project" / "defs"
    (defs / "companies.py").write_text(COMPANIES)
    run(
        "dg", "scaffold", "defs", "dagster_runwf.EnrichedAssetComponent", "company_profiles",
        "--service", "aitutor", "--source", "companies",
    )  # fmt: skip
    yaml_path = defs / "company_profiles" / "defs.yaml"
    scaffolded = yaml_path.read_text()
    assert "# parquet_dir:" in scaffolded, "the scaffold says where the Parquet goes"
    # The user fills in the workflow, as the scaffold's comments say.
    filled = (
        scaffolded.replace("workflow: wf_abc123", "workflow: wf_echo")
        .replace("inputs: [story]", "inputs: [text]")
        .replace("columns: {story: text}", "columns: {text: name}")
        .replace("# base_url:", "base_url:")
        .replace("# keep_columns: [id, text]", "keep_columns: [id, name]")
    )
    yaml_path.write_text(filled)

    run("dg", "check", "defs")
    listed = json.loads(run("dg", "list", "defs", "--json"))
    assert {a["asset_key"] for a in listed["assets"]} == {"companies", "companies_wf_echo"}
    checks = {c["key"] for c in listed["asset_checks"]}
    assert checks == {
        f"companies_wf_echo:{name}"
        for name in ("failure_rate", "every_row_answered", *ANSWER_CHECKS_ON_BY_DEFAULT)
    }

    run("dg", "launch", "--assets", "companies,companies_wf_echo")
    # No IO manager was configured: the component's ParquetIOManager wrote the asset into
    # the instance's storage folder, where Dagster's default would have put a pickle.
    table = pd.read_parquet(home / "storage" / "companies_wf_echo.parquet")
    assert list(table["name"]) == ["Acme", "Globex", "bad corp"]
    assert list(table["wf_status"]) == ["succeeded", "succeeded", "failed"]
    assert table["wf_result"].iloc[0].startswith("echo:Acme")
    assert sum(emu.stats()["runs_by_workflow"].values()) == 3
