"""Which output of a Runchat answer is the result (and which the citations) is part of a
recorded row's identity: rows recorded with other picks are never reused, in the engine, the
CLI and Dagster alike; a workflow without picks keeps the journal keys it always had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    EnrichmentSettings,
    RowJournal,
    RunchatResource,
    RunchatWorkflow,
    enrich,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator

from ..conftest import KEY, engine_options

QUESTIONS = ["What is a journal?", "Why pay once?", "Who reads the answers?"]


def flow(picks: dict[str, str]) -> RunchatWorkflow:
    """The emulator's demo flow with the given output picks."""
    return RunchatWorkflow(
        "demo",
        ["query_nodeA"],
        result_output=picks.get("result_output"),
        citations_output=picks.get("citations_output"),
    )


def ask(emu: Emulator, journal: RowJournal, **picks: str) -> pd.DataFrame:
    """The demo flow over the questions, with the given output picks."""
    with journal:
        done = enrich(
            pd.DataFrame({"query_nodeA": QUESTIONS}),
            flow(picks),
            engine_options(emu.runchat_url),
            journal=journal,
        )
    return done.to_pandas()


def runs_at(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def test_other_picks_do_not_reuse_recorded_answers(emulator: Emulator, tmp_path: Path) -> None:
    first = ask(emulator, RowJournal(tmp_path, job_id="one", incremental=True),
                result_output="Answer")  # fmt: skip
    assert all(r.startswith("Answer for ") for r in first["wf_result"])
    assert runs_at(emulator) == 3

    second = ask(emulator, RowJournal(tmp_path, job_id="two", incremental=True),
                 result_output="Sources")  # fmt: skip
    assert runs_at(emulator) == 6, "rows recorded with another result pick are paid again"
    assert not second["wf_reused"].any()
    assert all(r.startswith("https://sources.example.com/") for r in second["wf_result"])

    same_job = ask(emulator, RowJournal(tmp_path, job_id="one"), result_output="Sources",
                   citations_output="Sources")  # fmt: skip
    assert runs_at(emulator) == 9, "a citations pick counts too, even within one job"
    assert all(len(c) == 2 for c in same_job["wf_citations"])

    again = ask(emulator, RowJournal(tmp_path, job_id="three", incremental=True),
                result_output="Sources")  # fmt: skip
    assert runs_at(emulator) == 9, "the same picks still reuse their answers"
    assert again["wf_reused"].all()
    assert list(again["wf_result"]) == list(second["wf_result"])


def test_a_workflow_without_picks_keeps_its_journal_keys() -> None:
    """These hashes were recorded before picks became part of a row's key: a journal
    written by an earlier release must still answer these rows."""
    flow = RunchatWorkflow("demo", ["query_nodeA"])
    assert flow.answer_version == ""
    assert flow.prepare({"query_nodeA": "What is a journal?"}).input_hash == (
        "622ea5623dd45d22c8d13168ddaec6ca03edb4b2f78c165e2d26df85d8be2a54"
    )
    webhook = RunchatWorkflow("demo", ["event"], webhook=True, instance_id="i-1")
    assert webhook.prepare({"event": "x"}).input_hash == (
        "33a9d5972f1173c87974e0ec9431d9ea2bfe1fae6a0a7c70186f7ea1c24682cd"
    )
    echo = AITutorWorkflow("wf_echo", ["text"])
    assert echo.answer_version == ""
    assert echo.prepare({"text": "row 1"}).input_hash == (
        "34f697f2c93703c59a9cc3efd0271a2016642ac5b276f682b33b05cd622a08e0"
    )


@pytest.mark.parametrize(
    "picks",
    [
        {"result_output": "Answer"},
        {"citations_output": "Sources"},
        {"result_output": "Answer", "citations_output": "Sources"},
    ],
)
def test_picks_change_the_key_but_not_the_request(picks: dict[str, str]) -> None:
    row = {"query_nodeA": "What is a journal?"}
    plain = RunchatWorkflow("demo", ["query_nodeA"]).prepare(row)
    picked_flow = flow(picks)
    picked = picked_flow.prepare(row)
    assert picked_flow.answer_version != ""
    assert picked.request == plain.request
    assert picked.input_hash != plain.input_hash
    others = {
        flow(other).prepare(row).input_hash
        for other in ({"result_output": "Answer"}, {"citations_output": "Sources"},
                      {"result_output": "Sources"}, {"citations_output": "Answer"})
        if other != picks
    }  # fmt: skip
    assert picked.input_hash not in others


# -- through Dagster ----------------------------------------------------------------------


@dg.asset
def questions() -> pd.DataFrame:
    return pd.DataFrame({"question": QUESTIONS})


def answers(tmp_path: Path, result_output: str) -> dg.AssetsDefinition:
    return enriched_asset(
        source=questions,
        workflow=RunchatWorkflow("demo", ["query_nodeA"], result_output=result_output),
        settings=EnrichmentSettings(
            columns={"query_nodeA": "question"},
            journal_dir=str(tmp_path / "journal"),
            incremental=True,
        ),
    )


def materialize(emu: Emulator, asset: dg.AssetsDefinition) -> Any:
    resource = RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    result = dg.materialize([questions, asset], resources={"runchat": resource})
    assert result.success
    return result.output_for_node(asset.node_def.name)


def test_an_incremental_asset_does_not_reuse_answers_picked_otherwise(
    emulator: Emulator, tmp_path: Path
) -> None:
    first = materialize(emulator, answers(tmp_path, "Answer"))
    assert all(r.startswith("Answer for ") for r in first["wf_result"])
    second = materialize(emulator, answers(tmp_path, "Sources"))
    assert runs_at(emulator) == 6, "the second pick pays for its own answers"
    assert not second["wf_reused"].any()
    assert all(r.startswith("https://sources.example.com/") for r in second["wf_result"])
    third = materialize(emulator, answers(tmp_path, "Sources"))
    assert runs_at(emulator) == 6 and third["wf_reused"].all()
