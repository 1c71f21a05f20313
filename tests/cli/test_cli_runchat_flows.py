"""``runwf enrich`` and a Runchat flow over time: a flow edited on the service (its schema
changed) is never answered from the old flow's journal, and each entity of a key column
continues its own instance from night to night. Real subprocesses, the emulator on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import CHAT, PROFILE
from .test_cli import RUNCHAT_KEY, Run, environment, runwf


@pytest.fixture
def flows(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(
        workflows=[PROFILE, CHAT], rate_limit_enabled=False, keys={RUNCHAT_KEY: {}}
    )


def paid(emu: Emulator, flow: str) -> int:
    return int(emu.stats()["runs_by_workflow"].get(flow, 0))


def enrich(emu: Emulator, folder: Path, flow: str, rows: dict[str, Any], *flags: str) -> Run:
    """``runwf enrich`` of ``rows`` (a CSV written for the run) through ``flow``, with the
    journal shared by every run of the test."""
    pd.DataFrame(rows).to_csv(folder / "in.csv", index=False)
    return runwf(
        "enrich",
        "in.csv",
        "out.parquet",
        *("--service", "runchat", "--workflow", flow, "--journal", "journal"),
        *("--rate", "unlimited", *flags),
        env=environment(emu),
        cwd=folder,
    )


def test_a_flow_whose_schema_changed_is_paid_again_with_a_warning(
    flows: Emulator, tmp_path: Path
) -> None:
    rows = {"text_n1": [f"t{i}" for i in range(6)]}
    first = enrich(flows, tmp_path, "profile", rows)
    assert first.returncode == 0, first.stderr
    assert paid(flows, "profile") == 6
    same = enrich(flows, tmp_path, "profile", rows)
    assert same.returncode == 0, same.stderr
    assert paid(flows, "profile") == 6, "an unchanged flow pays nothing again"
    assert "warning" not in same.stderr

    # Edited on the service: an input added, an output's type changed.
    flows.update_config(
        workflows={
            "profile": {
                "inputs": [*PROFILE["inputs"], {"id": "tone_n1", "label": "Tone"}],
                "outputs": [{**PROFILE["outputs"][0], "type": "markdown"}],
            }
        }
    )
    # A plan sees the edit (every row to send) but records nothing: the run still warns.
    planned = enrich(flows, tmp_path, "profile", rows, "--plan", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["send"] == 6
    assert paid(flows, "profile") == 6
    changed = enrich(flows, tmp_path, "profile", rows)
    assert changed.returncode == 0, changed.stderr
    assert paid(flows, "profile") == 12, "every row of the edited flow is paid again"
    warning = changed.stderr.strip()
    assert warning.startswith("runwf enrich: warning: Runchat flow 'profile' changed"), warning
    assert "inputs added: tone_n1" in warning
    assert "outputs changed: out_n2 (type 'string' -> 'markdown')" in warning
    assert "not reused" in warning

    again = enrich(flows, tmp_path, "profile", rows)
    assert again.returncode == 0, again.stderr
    assert paid(flows, "profile") == 12, "the edited flow's answers are reused in turn"
    assert "warning" not in again.stderr


def instances_by_message(emu: Emulator) -> dict[str, dict[str, Any]]:
    """The emulator's record of each ``chat`` run, by the message it was sent."""
    return {run["inputs"]["message_n1"]: run for run in emu.instances("chat")}


def test_continue_by_keeps_each_entitys_conversation_across_nights(
    flows: Emulator, tmp_path: Path
) -> None:
    night = ["--continue-by", "customer", "--incremental"]
    first = enrich(
        flows, tmp_path, "chat", {"customer": ["A", "B"], "message_n1": ["a1", "b1"]}, *night
    )
    assert first.returncode == 0, first.stderr
    runs = instances_by_message(flows)
    assert not runs["a1"]["continued"] and not runs["b1"]["continued"]
    a, b = runs["a1"]["instance_id"], runs["b1"]["instance_id"]
    assert a != b

    second = enrich(
        flows,
        tmp_path,
        "chat",
        {"customer": ["B", "A", "C"], "message_n1": ["b2", "a2", "c1"]},
        *night,
    )
    assert second.returncode == 0, second.stderr
    runs = instances_by_message(flows)
    # Server side: each row continued its own entity's instance, a new key started one.
    assert runs["a2"]["continued"] and runs["a2"]["instance_id"] == a
    assert runs["b2"]["continued"] and runs["b2"]["instance_id"] == b
    assert runs["a2"]["turn"] == 2 and runs["b2"]["turn"] == 2
    assert not runs["c1"]["continued"]
    c = runs["c1"]["instance_id"]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["wf_instance_id"]) == [b, a, c]

    # Unchanged rows reuse their answers (incremental); a changed one continues again.
    third = enrich(
        flows,
        tmp_path,
        "chat",
        {"customer": ["A", "B", "C"], "message_n1": ["a2", "b3", "c1"]},
        *night,
    )
    assert third.returncode == 0, third.stderr
    assert paid(flows, "chat") == 6
    runs = instances_by_message(flows)
    assert runs["b3"]["instance_id"] == b and runs["b3"]["turn"] == 3
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["wf_instance_id"]) == [a, b, c]


def test_an_instance_id_column_continues_each_rows_instance(
    flows: Emulator, tmp_path: Path
) -> None:
    started = enrich(flows, tmp_path, "chat", {"message_n1": ["x", "y"]})
    assert started.returncode == 0, started.stderr
    x, y = (run["instance_id"] for run in flows.instances("chat"))
    rows = {"conversation": [x, y, ""], "message_n1": ["same", "same", "same"]}
    run = enrich(flows, tmp_path, "chat", rows, "--instance-id-column", "conversation")
    assert run.returncode == 0, run.stderr
    later = flows.instances("chat")[2:]
    # The same inputs in three conversations are three requests, not one.
    assert len(later) == 3
    assert sorted(r["instance_id"] for r in later if r["continued"]) == sorted([x, y])
    assert sum(not r["continued"] for r in later) == 1, "an empty cell starts an instance"
    again = enrich(flows, tmp_path, "chat", rows, "--instance-id-column", "conversation")
    assert again.returncode == 0, again.stderr
    assert paid(flows, "chat") == 5, "the same rows in the same instances are reused"


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (
            ["--continue-by", "client"],
            "runwf: error: --continue-by client: in.csv has no column 'client'",
        ),
        (
            ["--instance-id-column", "conv"],
            "runwf: error: --instance-id-column conv: in.csv has no column 'conv'",
        ),
    ],
)
def test_a_bad_instance_column_is_named_before_any_request(
    flows: Emulator, tmp_path: Path, flags: list[str], said: str
) -> None:
    run = enrich(flows, tmp_path, "chat", {"customer": ["A"], "message_n1": ["m"]}, *flags)
    assert run.returncode != 0
    assert run.error_line().startswith(said), run.stderr
    assert flows.stats()["total_requests"] == 0
