"""Typed outputs end to end over loopback HTTP: a workflow's JSON answers (fenced, with text
around them, as models write them) become typed columns with a parse error column, the raw
answer stays in ``wf_result``, and changing the output schema re-reads the journal without
paying again. Runchat outputs lifted into columns take the types of the flow's schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import AITutorWorkflow, ConfigError, RowJournal, RunchatWorkflow, enrich
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.service_calls import fetch_schema
from dagster_runwf.engine.table import typed_fields
from dagster_runwf.services.runchat_schema import RunchatSchema, output_types

from ..conftest import KEY, engine_options

LEAD_SCHEMA = {"score": pa.float64(), "label": pa.string(), "tags": pa.list_(pa.string())}

ROWS = pd.DataFrame(
    {
        "company": ["Acme", "Globex", "Initech", None],
        # The workflow writes the score into its JSON as it comes: a number, a quoted word,
        # and a bare word that breaks the JSON.
        "score": ["0.8", '"high"', "oops", "1"],
        "tag": ["fintech", "retail", "software", "x"],
    }
)


def lead_scores(emu: Emulator, journal: RowJournal | None = None, **schema: object) -> pa.Table:
    workflow = AITutorWorkflow(
        "wf_lead_score", ["company", "score", "tag"], output_schema=schema or LEAD_SCHEMA
    )
    return enrich(ROWS, workflow, engine_options(emu.aitutor_url), journal=journal).to_arrow()


def paid(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def test_json_answers_become_typed_columns_with_a_parse_error_column(emulator: Emulator) -> None:
    table = lead_scores(emulator)
    schema = table.schema
    assert schema.field("wf_score").type == pa.float64()
    assert schema.field("wf_label").type == pa.string()
    assert schema.field("wf_tags").type == pa.list_(pa.string())
    assert schema.field("wf_parse_error").type == pa.string()
    # The typed columns follow the fixed result columns, in the schema's field order.
    names = schema.names
    assert names[names.index("wf_reused") + 1 :] == [
        "wf_score", "wf_label", "wf_tags", "wf_parse_error"
    ]  # fmt: skip
    assert [f.name for f in typed_fields("wf_", lead_workflow().output_schema)] == names[-4:]
    rows = table.to_pylist()
    assert [r["wf_status"] for r in rows] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert rows[0]["wf_score"] == 0.8
    assert rows[0]["wf_label"] == "Acme"
    assert rows[0]["wf_tags"] == ["fintech", "b2b"]
    assert rows[0]["wf_parse_error"] is None
    assert rows[0]["wf_result"].startswith("Here is my assessment:\n```json\n{")  # raw, whole
    assert rows[1]["wf_parse_error"] == "field 'score': expected a number, got 'high'"
    assert rows[2]["wf_parse_error"] == "no JSON object in the answer"
    for row in rows[1:]:  # a misfit and a failed row: nulls in every typed column
        assert (row["wf_score"], row["wf_label"], row["wf_tags"]) == (None, None, None)
    assert rows[3]["wf_parse_error"] is None  # the row's own error says why it has no answer
    assert "company" in rows[3]["wf_error"]


def lead_workflow() -> AITutorWorkflow:
    return AITutorWorkflow("wf_lead_score", ["company", "score", "tag"], output_schema=LEAD_SCHEMA)


def test_changing_the_output_schema_rereads_the_journal_without_paying(
    emulator: Emulator, tmp_path: Path
) -> None:
    with RowJournal(tmp_path, job_id="leads") as journal:
        lead_scores(emulator, journal)
    assert paid(emulator) == 3
    with RowJournal(tmp_path, job_id="leads") as journal:
        retyped = lead_scores(emulator, journal, score="string", label="string", rank="int64")
    assert paid(emulator) == 3  # nothing sent again
    rows = retyped.to_pylist()
    assert rows[0]["wf_reused"] is True
    assert (
        rows[0]["wf_parse_error"]
        == "field 'score': expected text, got 0.8; field 'rank' is missing"
    )
    assert rows[1]["wf_parse_error"] == "field 'rank' is missing"
    assert "wf_tags" not in retyped.schema.names


def test_a_field_named_like_a_result_column_is_refused_before_any_request(
    emulator: Emulator,
) -> None:
    with pytest.raises(ConfigError, match=r"output_schema names field\(s\) whose column\(s\) "
                       r"\['wf_status'\] are already result columns"):  # fmt: skip
        lead_scores(emulator, status="string")
    assert paid(emulator) == 0


def test_an_all_misfit_or_empty_table_keeps_the_declared_types(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Written to Parquet, a typed column whose every value is null keeps its type."""
    workflow = AITutorWorkflow(
        "wf_lead_score", ["company", "score", "tag"], output_schema=LEAD_SCHEMA
    )
    path = tmp_path / "out.parquet"
    enrich(ROWS.iloc[1:3], workflow, engine_options(emulator.aitutor_url), destination=path)
    stored = pq.read_schema(path)
    assert stored.field("wf_score").type == pa.float64()
    assert stored.field("wf_tags").type == pa.list_(pa.string())
    assert pq.read_table(path).column("wf_score").null_count == 2


LEAD_FLOW_OUTPUTS = {
    "score": "Score",
    "hot": "Hot",
    "tags": "Tags",
    "details": "Details",
    "summary": "Summary",
}


def test_runchat_outputs_lifted_with_the_flows_types(emulator: Emulator) -> None:
    schema: RunchatSchema = asyncio.run(fetch_schema("lead-scorer", KEY, emulator.runchat_url))
    types = output_types(schema, LEAD_FLOW_OUTPUTS)
    rows = pd.DataFrame({"company_n1": ["Acme", "Globex"], "score_n1": [0.5, 2]})
    table = enrich(
        rows,
        RunchatWorkflow("lead-scorer", ["company_n1", "score_n1"], result_output="Summary"),
        engine_options(emulator.runchat_url),
        output_columns=LEAD_FLOW_OUTPUTS,
        output_types=types,
    ).to_arrow()
    assert {name: str(table.schema.field(name).type) for name in LEAD_FLOW_OUTPUTS} == {
        "score": "double",
        "hot": "bool",
        "tags": "list<item: string>",
        "details": "string",  # an object: its JSON
        "summary": "string",
    }
    assert table.column("score").to_pylist() == [0.5, 2.0]
    assert table.column("hot").to_pylist() == [True, True]
    assert table.column("tags").to_pylist() == [["Acme", "b2b"], ["Globex", "b2b"]]
    assert [json.loads(d) for d in table.column("details").to_pylist()] == [
        {"company": "Acme"},
        {"company": "Globex"},
    ]
    # Without the types (the default), the same outputs are text, as before.
    untyped = enrich(
        rows,
        RunchatWorkflow("lead-scorer", ["company_n1", "score_n1"], result_output="Summary"),
        engine_options(emulator.runchat_url),
        output_columns={"score": "Score"},
    ).to_arrow()
    assert untyped.column("score").to_pylist() == ["0.5", "2"]
