"""The emulator sends Runchat outputs as their type says (a number as a JSON number, a
boolean as true/false, an object as an object), as Runchat does, and serves the built-in
workflows of typed outputs: AI Tutor's ``wf_lead_score`` answers JSON in a fenced block
with a sentence around it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from dagster_runwf.emulator import Emulator, EmulatorConfig

KEY = "sk_emulator_typed"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig.from_dict({"rate_limit_enabled": False})) as emulator:
        yield emulator


def test_runchat_outputs_come_as_their_types(emu: Emulator) -> None:
    body = {"inputs": {"company_n1": "Acme", "score_n1": 0.5}}
    answer = httpx.post(
        f"{emu.runchat_url}/lead-scorer", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.status_code == 200
    data = {p["label"]: (p["type"], p["data"]) for p in answer.json()["data"]}
    assert data["Score"] == ("number", [0.5])
    assert data["Hot"] == ("boolean", [True])
    assert data["Tags"] == ("array", ["Acme", "b2b"])
    assert data["Details"] == ("object", [{"company": "Acme"}])
    assert data["Summary"][0] == "string" and data["Summary"][1][0].startswith("Acme scores 0.5")
    # A number output whose template renders no number stays text, as sent.
    body = {"inputs": {"company_n1": "Acme", "score_n1": "lots"}}
    answer = httpx.post(
        f"{emu.runchat_url}/lead-scorer", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert {p["label"]: p["data"] for p in answer.json()["data"]}["Score"] == ["lots"]


def test_the_json_answering_workflow_wraps_its_json_as_models_do(emu: Emulator) -> None:
    answer = httpx.post(
        f"{emu.aitutor_url}/run/wf_lead_score",
        json={"company": "Acme", "score": 0.8, "tag": "fintech"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    result = answer.json()["result"]
    before, fenced = result.split("```json\n")
    inside, after = fenced.split("\n```")
    assert before == "Here is my assessment:\n"
    assert json.loads(inside) == {"label": "Acme", "score": 0.8, "tags": ["fintech", "b2b"]}
    assert after.startswith("\nLet me know if you need more. [")
