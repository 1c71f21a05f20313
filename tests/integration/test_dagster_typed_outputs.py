"""Typed outputs through Dagster: an enriched asset whose workflow has an ``output_schema``
stores its typed columns in Parquet with their Arrow types; the schema is part of the code
version, not of the answers' version (a new schema re-reads the journal, unpaid); the YAML
component takes ``output_schema:`` as field -> type name; and a Runchat asset's lifted
outputs take the flow's types, read by the pre-flight."""

# No `from __future__ import annotations`: Dagster reads the test assets' annotations.

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    ParquetIOManager,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
)
from dagster_runwf.emulator import Emulator

from ..conftest import KEY

LEAD_INPUTS = ["company", "score", "tag"]


@dg.asset
def leads() -> pd.DataFrame:
    """Three leads; the second one's score makes the workflow's JSON answer a word."""
    frame: pd.DataFrame = pd.DataFrame(
        {"company": ["Acme", "Globex", "Initech"], "score": ["8", '"high"', "3"],
         "tag": ["fintech", "retail", "software"]}
    )  # fmt: skip
    return frame


def scored(journal_dir: Path, schema: dict[str, Any]) -> dg.AssetsDefinition:
    return enriched_asset(
        source=leads,
        workflow=AITutorWorkflow("wf_lead_score", LEAD_INPUTS, output_schema=schema),
        settings=EnrichmentSettings(journal_dir=str(journal_dir), incremental=True),
        name="scored_leads",
    )


def paid(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def test_typed_columns_are_stored_with_their_arrow_types(
    emulator: Emulator, tmp_path: Path
) -> None:
    resources = {
        "aitutor": AITutorResource(api_key=KEY, base_url=emulator.aitutor_url, rate="unlimited"),
        "io_manager": ParquetIOManager(base_dir=str(tmp_path / "warehouse")),
    }
    schema = {"score": pa.int64(), "label": pa.string(), "tags": pa.list_(pa.string())}
    asset = scored(tmp_path / "journal", schema)
    result = dg.materialize([leads, asset], resources=resources)
    assert result.success
    # An integer column with a null (the misfit row) stays int64 through the DataFrame.
    assert str(result.output_for_node("scored_leads")["wf_score"].dtype) == "Int64"
    stored = pq.read_table(tmp_path / "warehouse" / "scored_leads.parquet")
    assert stored.schema.field("wf_score").type == pa.int64()
    assert stored.schema.field("wf_tags").type == pa.list_(pa.string())
    rows = stored.to_pylist()
    assert [r["wf_score"] for r in rows] == [8, None, 3]
    assert rows[0]["wf_tags"] == ["fintech", "b2b"]
    assert [r["wf_parse_error"] for r in rows] == [
        None,
        "field 'score': expected an integer, got 'high'",
        None,
    ]
    assert paid(emulator) == 3
    # The parse_rate answer check (on with an output schema) fails: 2 of 3 answers fit.
    (parse_rate,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "parse_rate"
    ]
    assert not parse_rate.passed

    # Another schema: a new code version, the same journal job: nothing is paid again.
    retyped = scored(tmp_path / "journal", {"score": "string", "label": "string"})
    versions = {a.specs_by_key[a.key].code_version for a in (asset, retyped)}
    assert len(versions) == 2, "the table's shape changed: the UI shows the asset unsynced"
    again = dg.materialize([leads, retyped], resources=resources)
    assert again.success
    assert paid(emulator) == 3
    table = pq.read_table(tmp_path / "warehouse" / "scored_leads.parquet")
    assert "wf_tags" not in table.schema.names
    assert table.column("wf_parse_error").to_pylist()[0] == ("field 'score': expected text, got 8")


def test_the_yaml_component_takes_an_output_schema(
    load_yaml: Callable[[str], dg.Definitions],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AITUTOR_BASE_URL", emulator.aitutor_url)
    defs = load_yaml(
        textwrap.dedent(
            f"""\
            type: dagster_runwf.EnrichedAssetComponent
            attributes:
              service: aitutor
              workflow: wf_lead_score
              inputs: [company, score, tag]
              source: leads
              output_schema:
                score: float64
                label: string
                tags: list<string>
              api_key: {KEY}
              base_url: "{{{{ env.AITUTOR_BASE_URL }}}}"
              rate: unlimited
              journal_dir: {tmp_path / "journal"}
              parquet_dir: {tmp_path / "warehouse"}
            """
        )
    )
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize([leads, asset], resources=defs.resources)
    assert result.success
    stored = pq.read_table(tmp_path / "warehouse" / "leads_wf_lead_score.parquet")
    assert stored.schema.field("wf_score").type == pa.float64()
    assert stored.column("wf_score").to_pylist() == [8.0, None, 3.0]
    assert stored.column("wf_tags").type == pa.list_(pa.string())


@dg.asset
def prospects() -> pd.DataFrame:
    frame: pd.DataFrame = pd.DataFrame({"company_n1": ["Acme", "Globex"], "score_n1": [0.5, 2]})
    return frame


@pytest.mark.parametrize("chunk_size", [None, 1], ids=["one-step", "chunked"])
def test_a_runchat_assets_lifted_outputs_take_the_flows_types(
    emulator: Emulator, tmp_path: Path, chunk_size: int | None
) -> None:
    """Typed from the flow's schema, read by the pre-flight (the split step's, when chunked),
    with the answer's JSON typed too: the summary is no JSON, so every row has its parse
    error."""
    asset = enriched_asset(
        source=prospects,
        workflow=RunchatWorkflow(
            "lead-scorer",
            ["company_n1", "score_n1"],
            result_output="Summary",
            output_schema={"score": "float64?"},
        ),
        settings=EnrichmentSettings(
            journal_dir=str(tmp_path / "journal"),
            output_columns={"lead_score": "Score", "hot": "Hot", "tags": "Tags"},
            chunk_size=chunk_size,
        ),
        name="scored_prospects",
        io_manager_key="warehouse",  # the chunk steps' outputs stay with Dagster's own
    )
    resources = {
        "runchat": RunchatResource(api_key=KEY, base_url=emulator.runchat_url, rate="unlimited"),
        "warehouse": ParquetIOManager(base_dir=str(tmp_path / "warehouse")),
    }
    result = dg.materialize([prospects, asset], resources=resources)
    assert result.success
    stored = pq.read_table(tmp_path / "warehouse" / "scored_prospects.parquet")
    assert stored.schema.field("lead_score").type == pa.float64()
    assert stored.schema.field("hot").type == pa.bool_()
    assert stored.schema.field("tags").type == pa.list_(pa.string())
    assert stored.select(["lead_score", "hot", "tags"]).to_pylist() == [
        {"lead_score": 0.5, "hot": True, "tags": ["Acme", "b2b"]},
        {"lead_score": 2.0, "hot": True, "tags": ["Globex", "b2b"]},
    ]
    assert stored.schema.field("wf_score").type == pa.float64()
    assert stored.column("wf_parse_error").to_pylist() == ["no JSON object in the answer"] * 2
