"""``runwf enrich --output-schema FILE``: a JSON Schema file types the answers' JSON fields
into columns (with ``wf_parse_error``), a bad file is one error line naming the flag and the
file before any paid request, and Runchat outputs lifted with ``--output-column`` take the
flow's types."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf.cli import main
from dagster_runwf.emulator import Emulator

from .test_cli import SERVICE_VARIABLES, Run, environment

LEAD_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "label": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "rank": {"type": ["integer", "null"]},
    },
    "required": ["score", "label", "tags"],
}


@pytest.fixture
def in_folder(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """``runwf`` in-process in ``tmp_path``, against ``emulator``; returns the run."""
    monkeypatch.chdir(tmp_path)
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(emulator).items():
        if name in SERVICE_VARIABLES:
            monkeypatch.setenv(name, value)

    def run(*args: str, capsys: pytest.CaptureFixture[str]) -> Run:
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Run(tuple(args), status, out, err)

    return run


def leads(folder: Path) -> list[str]:
    pd.DataFrame(
        {"company": ["Acme", "Globex"], "score": ["0.8", '"high"'], "tag": ["fintech", "retail"]}
    ).to_csv(folder / "leads.csv", index=False)
    return ["enrich", "leads.csv", "out.parquet", "--service", "aitutor"]


AITUTOR_LEADS = ["--workflow", "wf_lead_score", "--map", "company=company", "--map",
                 "score=score", "--map", "tag=tag", "--rate", "unlimited"]  # fmt: skip


def test_an_output_schema_file_types_the_answers(
    in_folder: Callable[..., Run],
    tmp_path: Path,
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "lead.schema.json").write_text(json.dumps(LEAD_SCHEMA))
    args = [*leads(tmp_path), *AITUTOR_LEADS, "--output-schema", "lead.schema.json", "-q"]
    run = in_folder(*args, capsys=capsys)
    assert run.returncode == 0, run
    table = pq.read_table(tmp_path / "out.parquet")
    assert {n: table.schema.field(n).type for n in ("wf_score", "wf_tags", "wf_rank")} == {
        "wf_score": pa.float64(),
        "wf_tags": pa.list_(pa.string()),
        "wf_rank": pa.int64(),
    }
    rows = table.to_pylist()
    assert (rows[0]["wf_score"], rows[0]["wf_label"], rows[0]["wf_rank"]) == (0.8, "Acme", None)
    assert rows[0]["wf_parse_error"] is None
    assert rows[1]["wf_parse_error"] == "field 'score': expected a number, got 'high'"
    assert rows[1]["wf_status"] == "succeeded"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--output-schema missing.json: cannot read the file"),
        ("{not json", "--output-schema bad.json: not a JSON file"),
        (
            json.dumps({"type": "object"}),
            "--output-schema bad.json: the JSON Schema has no 'properties'",
        ),
        (
            json.dumps({"properties": {"when": {"type": "date"}}}),
            "--output-schema bad.json: property 'when' has type 'date'",
        ),
        (
            json.dumps({"properties": {"status": {"type": "string"}}}),
            "--output-schema names field(s) whose column(s) ['wf_status'] are already result "
            "columns",
        ),
    ],
    ids=["missing", "not-json", "no-properties", "bad-type", "clash"],
)
def test_a_bad_output_schema_file_is_one_error_line_before_any_request(
    content: str | None,
    message: str,
    in_folder: Callable[..., Run],
    tmp_path: Path,
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (tmp_path / name).write_text(content)
    run = in_folder(*leads(tmp_path), *AITUTOR_LEADS, "--output-schema", name, capsys=capsys)
    assert run.returncode != 0
    assert message in run.error_line()
    assert sum(emulator.stats()["runs_by_workflow"].values()) == 0
    assert not (tmp_path / "out.parquet").exists()


def test_runchat_outputs_lifted_by_the_command_take_the_flows_types(
    in_folder: Callable[..., Run],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pd.DataFrame({"company": ["Acme"], "score": [0.5]}).to_parquet(tmp_path / "in.parquet")
    args: list[Any] = [
        "enrich", "in.parquet", "out.parquet", "--service", "runchat",
        "--workflow", "lead-scorer", "--map", "Company=company", "--map", "Score=score",
        "--result-output", "Summary", "--output-column", "lead_score=Score",
        "--output-column", "hot=Hot", "--output-column", "tags=Tags", "-q",
        "--rate", "unlimited",
    ]  # fmt: skip
    run = in_folder(*args, capsys=capsys)
    assert run.returncode == 0, run
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.select(["lead_score", "hot", "tags"]).to_pylist() == [
        {"lead_score": 0.5, "hot": True, "tags": ["Acme", "b2b"]}
    ]
    assert table.schema.field("lead_score").type == pa.float64()
    assert table.schema.field("hot").type == pa.bool_()
