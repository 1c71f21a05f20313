"""example_project/: it validates as a code location, and every asset materializes on the
emulator with the contents the shipped table implies."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest

from dagster_runwf import AITutorResource, RunchatResource
from dagster_runwf.emulator import Emulator

# example_project is a folder of the repository, importable as tests/ is (from its root).
from example_project import demo, resources, settings
from example_project.definitions import build_definitions

from ..conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_project"
CSV = EXAMPLE / "data" / "companies.csv"
DAY = "2026-11-17"  # two of that day's companies are in stealth: their summaries fail
SERVICE_VARIABLES = ("AITUTOR_API_KEY", "RUNCHAT_API_KEY", "AITUTOR_BASE_URL", "RUNCHAT_BASE_URL")


@pytest.fixture
def example_env(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """No keys set, output in tmp_path, and the example's emulator (without its injected
    transient errors, which only slow a test down) already running."""
    for name in (*SERVICE_VARIABLES, "AITUTOR_WORKFLOW_ID", "RUNCHAT_FLOW_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXAMPLE_OUTPUT_DIR", str(tmp_path / "out"))
    emu = start_emulator(**{**resources.emulator_config(), "faults": {}})
    monkeypatch.setenv(resources.EMULATOR_URL_VARIABLE, emu.base_url)
    return emu


def test_the_shipped_table_is_what_its_script_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_companies", CSV.with_name("make_companies.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = pd.read_csv(CSV)
    assert table.to_dict("records") == pd.DataFrame(module.companies()).to_dict("records")
    assert len(table) == 300 and table["company_id"].is_unique and table["domain"].is_unique
    assert sorted(table["arrived_on"].unique()) == settings.DAILY.get_partition_keys()


def test_the_example_validates_as_a_code_location(tmp_path: Path) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "example_project.definitions"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # Dagster's temporary instance goes here, not into the repository
        env={**env, "PYTHONPATH": str(REPO), "EXAMPLE_OUTPUT_DIR": str(tmp_path / "out")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_keys_in_the_environment_select_the_real_services(
    monkeypatch: pytest.MonkeyPatch, example_env: Emulator
) -> None:
    monkeypatch.setenv("AITUTOR_API_KEY", "sk_not_a_real_key")
    monkeypatch.setenv("AITUTOR_BASE_URL", "https://aitutor.example.com/api/v1")
    chosen = resources.service_resources()
    aitutor, runchat = chosen["aitutor"], chosen["runchat"]
    assert isinstance(aitutor, AITutorResource) and isinstance(runchat, RunchatResource)
    assert isinstance(aitutor.api_key, dg.EnvVar), "the key is read at run time, by name"
    assert aitutor.api_key.env_var_name == "AITUTOR_API_KEY"
    assert isinstance(aitutor.base_url, dg.EnvVar)
    assert aitutor.base_url.env_var_name == "AITUTOR_BASE_URL"
    assert runchat.base_url == f"{example_env.base_url}/runchat/api/v1", "Runchat: no key"


def test_every_example_asset_materializes_on_the_emulator(example_env: Emulator) -> None:
    defs = build_definitions()
    job = defs.resolve_job_def("nightly_enrichment_job")
    arrived = pd.read_csv(CSV).query("arrived_on == @DAY")
    stealth = int((arrived["industry"] == "Stealth").sum())
    assert len(arrived) == 60 and stealth == 2

    with dg.instance_for_test() as instance:
        result = job.execute_in_process(partition_key=DAY, instance=instance)
        assert result.success
        # Nothing to warn about in a successful run (the summary reads the one day
        # materialized so far, and says so at info level for the four to come).
        warnings = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if int(e.level) >= logging.WARNING
        ]
        assert warnings == []
        events = result.get_asset_materialization_events()
        materialized = {key.to_user_string() for e in events if (key := e.asset_key)}
        assert materialized == {
            "companies",
            "company_profiles",
            "company_industries",
            "industry_summary",
        }
        profiles = result.output_for_node("company_profiles")
        industries = result.output_for_node("company_industries")
        summary = result.output_for_node("industry_summary")
        meta = _metadata(result, "company_profiles")

        # AI Tutor: one summary with citations per company; the stealth ones fail.
        assert list(profiles["company_id"]) == list(arrived["company_id"])
        ok = profiles[profiles["wf_status"] == "succeeded"]
        assert len(ok) == 60 - stealth
        assert set(profiles.loc[profiles["wf_status"] == "failed", "industry"]) == {"Stealth"}
        assert all(
            f"https://{d}/about" in c for d, c in zip(ok["domain"], ok["wf_citations"], strict=True)
        )
        assert all(name in text for name, text in zip(ok["name"], ok["wf_result"], strict=True))
        # The facts after each summary, typed by the asset's output_schema.
        facts = arrived.reset_index(drop=True).loc[ok.index]
        assert list(ok["wf_headcount"]) == list(facts["employees"])
        assert list(ok["wf_hq"]) == list(facts["city"])
        assert profiles["wf_parse_error"].isna().all()
        assert meta["runwf/rows"] == 60 and meta["runwf/failed"] == stealth
        assert meta["runwf/sent"] == 60 and meta["dagster/row_count"] == 60

        # Runchat: every company classified, the flow's output lifted into `sector`.
        assert len(industries) == 60 and set(industries["wf_status"]) == {"succeeded"}
        assert list(industries["sector"]) == list(arrived["industry"])
        assert _metadata(result, "company_industries")["runwf/succeeded"] == 60

        # The summary agrees with the enriched tables it was built from.
        assert summary["companies"].sum() == 60 and summary["failed"].sum() == stealth
        assert summary["classified"].sum() == 60
        assert summary["headcount"].sum() == ok["wf_headcount"].sum()
        assert summary["citations"].sum() == sum(len(c) for c in profiles["wf_citations"])
        by_group = profiles.groupby(["industry", "country"]).size()
        assert {(r.industry, r.country): r.companies for r in summary.itertuples()} == dict(
            by_group
        )
        stealth_rows = summary[summary["industry"] == "Stealth"]
        assert set(stealth_rows["failure_rate"]) == {1.0}

        checks = {
            (c.asset_key.to_user_string(), c.check_name): c.passed
            for c in result.get_asset_check_evaluations()
        }
        answers = ["empty_answers", "undefined_answers", "changed_answers"]
        assert checks == {
            ("company_profiles", "failure_rate"): True,  # 2 of 60 is within 5%
            ("company_profiles", "every_row_answered"): True,
            ("company_profiles", "plan"): True,
            ("company_profiles", "citation_rate"): True,  # every summary cites a source
            ("company_profiles", "parse_rate"): True,  # its output_schema: headcount, hq
            **{("company_profiles", name): True for name in answers},
            ("company_industries", "failure_rate"): True,
            ("company_industries", "every_row_answered"): True,
            **{("company_industries", name): True for name in answers},
        }
        warehouse = settings.warehouse_dir()
        assert (warehouse / "company_profiles" / f"{DAY}.parquet").is_file()
        assert (warehouse / "company_industries" / f"{DAY}.parquet").is_file()
        assert (warehouse / "industry_summary.parquet").is_file()
        runs = example_env.stats()["runs_by_workflow"]
        assert runs == {settings.aitutor_workflow_id(): 60, settings.runchat_flow_id(): 60}

        # The next night's run of the same day pays only for the rows that failed, as the
        # plan check (run after the materialization) said it would.
        (plan,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "plan"]
        assert plan.metadata["runwf/plan/send"].value == stealth
        again = job.execute_in_process(partition_key=DAY, instance=instance)
        assert _metadata(again, "company_profiles")["runwf/sent"] == stealth
        assert _metadata(again, "company_industries")["runwf/sent"] == 0
        assert _metadata(again, "company_industries")["runwf/reused"] == 60


def test_the_nightly_schedule_enriches_the_day_that_ended(example_env: Emulator) -> None:
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("nightly_enrichment")
    tick = pd.Timestamp("2026-11-19T02:00:00Z").to_pydatetime()
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-11-18"


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


_LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def test_the_ui_command_the_demo_prints_opens_the_ui_on_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the demo prints, pasted in a shell at the repository root (on a free port, and
    with no keys set), serves the UI with the example's code location loaded."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "demo out"  # a space: the command must quote its paths
    command = demo.ui_command(out, demo.dagster_home(out))
    assert "DAGSTER_HOME=" in command and "dagster dev -m example_project.definitions" in command
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as output:
        ui = subprocess.Popen(
            ["bash", "-c", f"{command} -p {port}"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with all its children
        )
    try:
        url = f"http://127.0.0.1:{port}"
        entries: list[dict[str, Any]] = []

        def location_loaded() -> bool:
            assert ui.poll() is None, log.read_text(errors="replace")
            try:
                answer = httpx.post(f"{url}/graphql", json={"query": _LOCATION_STATUS}, timeout=5)
            except httpx.TransportError:
                return False
            entries[:] = answer.json()["data"]["workspaceOrError"]["locationEntries"]
            return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

        wait_for(location_loaded, timeout=180, what=f"dagster dev on port {port}")
        assert [e["locationOrLoadError"]["__typename"] for e in entries] == [
            "RepositoryLocation"
        ], json.dumps(entries)
        assert httpx.get(f"{url}/server_info", timeout=5).status_code == 200
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
    assert (out / "dagster_home" / "history").is_dir(), "the UI used the demo's instance"
