"""The checks on the answers (empty, ``undefined``, citations, parsed, changed), the
``failure_rate`` check's failures by type, and the cost metadata, through Dagster against the
emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    AnswerCheck,
    AnswerChecks,
    EnrichmentSettings,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
    enriched_op,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.integration.answer_checks import AnswerFacts, answer_check_results

from ..conftest import COSTLY, ECHO, KEY

TIERED = {
    "id": "wf_tiered",
    "service": "aitutor",
    "variables": ["text", "tier"],
    "template": "{{text}} (tier {{tier}})",
}
"""An AI Tutor workflow with two variables: sent only ``text``, it answers with
``(tier undefined)``, as the real service does."""

PLAIN = {"id": "wf_plain", "service": "aitutor", "variables": ["text"], "template": "{{text}}"}
"""Answers its text (the emulator adds a digest of the request), with no citation."""

ECHO_FLOW = {
    "id": "echo_flow",
    "service": "runchat",
    "inputs": [{"id": "text_n1", "label": "Text", "type": "string"}],
    "outputs": [{"id": "out_n2", "label": "Out", "type": "string", "template": "{{text_n1}}"}],
}
"""A Runchat flow answering its text as it is: an empty text gives an empty answer."""


def source(texts: list[Any], **columns: list[Any]) -> dg.AssetsDefinition:
    @dg.asset(name="notes")
    def notes() -> pd.DataFrame:
        return pd.DataFrame({"name": texts, **columns})

    return notes


def enriched(
    tmp_path: Path, workflow: Any, notes: dg.AssetsDefinition, **settings: Any
) -> dg.AssetsDefinition:
    return enriched_asset(
        source=notes,
        workflow=workflow,
        settings=EnrichmentSettings(
            columns={"text_n1" if isinstance(workflow, RunchatWorkflow) else "text": "name"},
            journal_dir=str(tmp_path / "journal"),
            **settings,
        ),
    )


def aitutor(emu: Emulator) -> dict[str, Any]:
    return {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")}


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def metadata_of(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset.node_def.name)
    return {k: v.value for k, v in event.metadata.items()}


def check_metadata(check: Any) -> dict[str, Any]:
    return {k: v.value for k, v in check.metadata.items()}


def test_a_variable_not_sent_fails_the_undefined_check_naming_its_column(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[TIERED])
    notes = source([f"note {i}" for i in range(6)], tier=["gold"] * 6, id=list(range(6)))
    # The workflow uses {{tier}}, but only `text` is declared: every answer is "succeeded".
    asset = enriched(tmp_path, AITutorWorkflow("wf_tiered", ["text"]), notes)
    result = dg.materialize([notes, asset], resources=aitutor(emu))
    assert result.success
    assert emu.stats()["undefined_substitutions"] == 6
    checks = checks_of(result)
    assert checks["failure_rate"].passed and checks["every_row_answered"].passed
    undefined = checks["undefined_answers"]
    assert not undefined.passed and undefined.severity == dg.AssetCheckSeverity.WARN
    metadata = check_metadata(undefined)
    assert metadata["undefined"] == 6 and metadata["rows"] == 6 and metadata["share"] == 1.0
    assert "tier, id" in metadata["likely_unsent_input"]
    assert "tier" in str(undefined.description)
    assert metadata["examples"][0]["answer"].startswith("note 0 (tier undefined)")

    # Declared, the variable is sent and the check passes.
    emu.reset()
    fixed = enriched(tmp_path, AITutorWorkflow("wf_tiered", ["text", "tier"]), notes)
    result = dg.materialize([notes, fixed], resources=aitutor(emu))
    assert checks_of(result)["undefined_answers"].passed
    assert emu.stats()["undefined_substitutions"] == 0


def test_a_blocking_answer_check_keeps_downstream_assets_from_running(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[TIERED])
    notes = source(["a", "b"], tier=["gold", "gold"])
    asset = enriched(
        tmp_path,
        AITutorWorkflow("wf_tiered", ["text"]),
        notes,
        answer_checks=AnswerChecks(undefined_answers=AnswerCheck(blocking=True)),
    )

    @dg.asset(deps=[asset])
    def report() -> None:
        return None

    result = dg.materialize([notes, asset, report], resources=aitutor(emu), raise_on_error=False)
    undefined = checks_of(result)["undefined_answers"]
    assert not undefined.passed and undefined.severity == dg.AssetCheckSeverity.ERROR
    assert not result.asset_materializations_for_node("report"), "blocked by the check"


def test_empty_answers_fail_the_empty_answers_check(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO_FLOW])
    notes = source(["one", "  ", "three", ""])
    asset = enriched(tmp_path, RunchatWorkflow("echo_flow", ["text_n1"]), notes)
    resources = {
        "runchat": RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    }
    empty = checks_of(dg.materialize([notes, asset], resources=resources))["empty_answers"]
    assert not empty.passed
    metadata = check_metadata(empty)
    assert metadata["empty"] == 2 and metadata["rows"] == 4 and metadata["share"] == 0.5
    assert [e["row"] for e in metadata["examples"]] == [1, 3]


def test_answers_without_citations_fail_a_citation_rate_threshold(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[PLAIN, ECHO])
    notes = source(["one", "two", "three"])
    strict = AnswerChecks(citation_rate=AnswerCheck(threshold=0.5))
    asset = enriched(tmp_path, AITutorWorkflow("wf_plain", ["text"]), notes, answer_checks=strict)
    checks = checks_of(dg.materialize([notes, asset], resources=aitutor(emu)))
    cited = checks["citation_rate"]
    assert not cited.passed and check_metadata(cited)["cited"] == 0
    assert checks["empty_answers"].passed

    # The echo workflow cites a URL for every answer.
    echo = enriched(tmp_path, AITutorWorkflow("wf_echo", ["text"]), notes, answer_checks=strict)
    cited = checks_of(dg.materialize([notes, echo], resources=aitutor(emu)))["citation_rate"]
    assert cited.passed and check_metadata(cited)["share"] == 1.0


def test_which_answer_checks_an_asset_carries(tmp_path: Path) -> None:
    notes = source(["a"])

    def carried(workflow: Any, **settings: Any) -> set[str]:
        asset = enriched(tmp_path, workflow, notes, **settings)
        return {key.name for key in asset.check_keys}

    base = {"failure_rate", "every_row_answered", "empty_answers", "undefined_answers"}
    aitutor_checks = carried(AITutorWorkflow("wf_echo", ["text"]))
    assert aitutor_checks == base | {"citation_rate", "changed_answers"}
    # A Runchat flow cites only through citations_output; no workflow here parses answers.
    assert carried(RunchatWorkflow("costly", ["text_n1"])) == base | {"changed_answers"}
    cites = RunchatWorkflow("costly", ["text_n1"], citations_output="Out")
    assert "citation_rate" in carried(cites)
    off = AnswerChecks(changed_answers=AnswerCheck(enabled=False))
    assert "changed_answers" not in carried(AITutorWorkflow("wf_echo", ["text"]), answer_checks=off)


def test_the_parse_rate_check_counts_the_parse_error_column() -> None:
    table = pa.table(
        {
            "wf_status": ["succeeded", "succeeded", "succeeded", "failed"],
            "wf_result": ['{"score": 1}', "not json", '{"score": 2}', None],
            "wf_citations": [[], [], [], []],
            "wf_input_hash": ["a", "b", "c", "d"],
            "wf_parse_error": [None, "no JSON object in the answer", None, None],
        }
    )
    parse_only = AnswerChecks(
        empty_answers=AnswerCheck(enabled=False),
        undefined_answers=AnswerCheck(enabled=False),
        citation_rate=AnswerCheck(enabled=False),
        changed_answers=AnswerCheck(enabled=False),
        parse_rate=AnswerCheck(enabled=True, threshold=0.9),
    )
    workflow = AITutorWorkflow("wf_echo", ["text"])
    (check,) = answer_check_results(table, "wf_", parse_only, workflow, AnswerFacts())
    assert check.check_name == "parse_rate" and not check.passed
    metadata = check_metadata(check)
    assert metadata["parsed"] == 2 and metadata["rows"] == 3
    assert metadata["examples"] == [{"row": 1, "wf_parse_error": "no JSON object in the answer"}]
    # Without the column (a workflow without output_schema), nothing was parsed: it passes.
    (check,) = answer_check_results(
        table.drop_columns(["wf_parse_error"]), "wf_", parse_only, workflow, AnswerFacts()
    )
    assert check.passed and "no parse error column" in str(check.description)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_answers_that_changed_since_the_previous_job_are_counted_with_examples(
    start_emulator: Any, tmp_path: Path, chunk_size: int | None
) -> None:
    before = start_emulator(rate_limit_enabled=False, workflows=[PLAIN])
    edited = {**PLAIN, "template": "edited: {{text}}"}  # the prompt edited on the service
    after = start_emulator(rate_limit_enabled=False, workflows=[edited])
    notes = source(["a", "b", "c", "d", "e"])
    asset = enriched(
        tmp_path,
        AITutorWorkflow("wf_plain", ["text"]),
        notes,
        chunk_size=chunk_size,
        answer_checks=AnswerChecks(changed_answers=AnswerCheck(threshold=0.5)),
    )
    first = check_metadata(
        checks_of(dg.materialize([notes, asset], resources=aitutor(before)))["changed_answers"]
    )
    assert first["rows"] == 0 and first["changed"] == 0, "no earlier job to compare with"

    check = checks_of(dg.materialize([notes, asset], resources=aitutor(after)))["changed_answers"]
    assert not check.passed
    metadata = check_metadata(check)
    assert metadata["rows"] == 5 and metadata["changed"] == 5
    example = metadata["examples"][0]
    assert example["row"] == 0
    assert example["before"].startswith("a [") and example["after"].startswith("edited: a [")

    again = checks_of(dg.materialize([notes, asset], resources=aitutor(after)))["changed_answers"]
    assert again.passed and check_metadata(again)["changed"] == 0
    assert check_metadata(again)["rows"] == 5


def test_the_failure_rate_check_breaks_failures_down_by_type(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    notes = source(["a", None, None, None, "bad 1", "bad 2", "c"])
    asset = enriched(tmp_path, AITutorWorkflow("wf_echo", ["text"]), notes)
    check = checks_of(dg.materialize([notes, asset], resources=aitutor(emu)))["failure_rate"]
    assert not check.passed
    by_type = check_metadata(check)["failures_by_type"]
    assert list(by_type) == ["RowInputError", "RunFailedError"]
    assert by_type["RowInputError"]["rows"] == 3 and by_type["RunFailedError"]["rows"] == 2
    assert by_type["RowInputError"]["commonest_error"].startswith("input 'text' is missing")
    assert check_metadata(check)["commonest_failure"].startswith(
        "3 rows RowInputError: input 'text' is missing"
    )
    assert "3 rows RowInputError: input 'text' is missing" in str(check.description)


def test_credits_spent_is_the_balance_before_less_the_balance_after(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 100}})
    notes = source([f"n{i}" for i in range(7)] + ["bad"])
    asset = enriched(tmp_path, AITutorWorkflow("wf_echo", ["text"]), notes)
    metadata = metadata_of(dg.materialize([notes, asset], resources=aitutor(emu)), asset)
    charged = emu.stats()["credits_spent"]
    assert charged == 8, "the emulator charges every run, the failed one too"
    assert metadata["runwf/credits_spent"] == charged
    assert metadata["runwf/credits_before"] - metadata["runwf/credits_after"] == charged
    assert isinstance(metadata["runwf/credits_spent"], float)


def test_an_enriched_ops_output_carries_its_credits_spent(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 50}})
    enrich = enriched_op(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(journal_dir=str(tmp_path / "journal")),
    )

    @dg.op
    def texts() -> pd.DataFrame:
        return pd.DataFrame({"text": ["a", "b", "c"]})

    @dg.job(resource_defs=aitutor(emu))
    def enrich_texts() -> None:
        enrich(texts())

    result = enrich_texts.execute_in_process()
    (event,) = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == enrich.name
    ]
    assert event.step_output_data is not None
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert metadata["runwf/credits_spent"] == emu.stats()["credits_spent"] == 3


def test_runchat_credits_spent_is_what_its_answers_reported(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[COSTLY])
    notes = source(["a", "b", "c", "d"])
    asset = enriched(tmp_path, RunchatWorkflow("costly", ["text_n1"]), notes, incremental=True)
    resources = {
        "runchat": RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    }
    metadata = metadata_of(dg.materialize([notes, asset], resources=resources), asset)
    assert metadata["runwf/credits_spent"] == emu.stats()["credits_spent"] == 12.0
    # Every answer reused: no request, nothing spent (not an absent figure).
    again = metadata_of(dg.materialize([notes, asset], resources=resources), asset)
    assert again["runwf/sent"] == 0 and again["runwf/credits_spent"] == 0.0


def test_rows_per_s_counts_paid_rows_only(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    notes = source([f"n{i}" for i in range(6)])
    asset = enriched(tmp_path, AITutorWorkflow("wf_echo", ["text"]), notes, incremental=True)
    paid = metadata_of(dg.materialize([notes, asset], resources=aitutor(emu)), asset)
    assert paid["runwf/sent"] == 6
    # Both figures are rounded to 3 places.
    assert paid["runwf/rows_per_s"] == pytest.approx(6 / paid["runwf/elapsed_s"], rel=0.02)

    reused = metadata_of(dg.materialize([notes, asset], resources=aitutor(emu)), asset)
    assert reused["runwf/sent"] == 0 and reused["runwf/reused"] == 6
    assert "runwf/rows_per_s" not in reused, "no row was paid: no pace to report"
    assert reused["runwf/credits_spent"] == 0.0
