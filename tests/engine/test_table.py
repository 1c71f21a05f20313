"""The results table: columns, types, row pairing and atomic Parquet writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    ConfigError,
    FanOutStopped,
    RetryPolicy,
    RunchatWorkflow,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine import RESULT_FIELDS

from ..conftest import ECHO as SHARED_ECHO
from ..conftest import KEY, engine_options, split_options

ECHO = {**SHARED_ECHO, "latency": {"min_s": 0.0, "max_s": 0.03}}  # finish out of order
PLAIN = {**ECHO, "id": "wf_plain", "citations": [], "fail_when": None}
RESULT_COLUMNS = [f"wf_{name}" for name, _, _ in RESULT_FIELDS]


@pytest.fixture
def emu(start_emulator: Any) -> Emulator:
    return start_emulator(rate_limit_enabled=False, workflows=[ECHO, PLAIN])


def run(emu: Emulator, frame: pd.DataFrame, workflow: str = "wf_echo", **settings: Any) -> Any:
    settings.setdefault("columns", {"text": "text"})
    settings.setdefault("retry", RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.02))
    options, rest = split_options(emu.aitutor_url, settings)
    return enrich(frame, AITutorWorkflow(workflow, ["text"]), options, **rest)


def echo_of(result: str | None) -> str | None:
    return None if result is None else result.split(" [")[0]


def test_rows_pair_with_their_results_whatever_the_index_and_duplicates(emu: Emulator) -> None:
    texts = [f"t{i % 37}" for i in range(300)]  # duplicates, answered out of order
    frame = pd.DataFrame(
        {"text": texts, "n": range(300)}, index=pd.Index([f"id-{299 - i}" for i in range(300)])
    )
    out = run(emu, frame, concurrency=16, row_group_size=50).to_pandas()
    assert list(out.index) == list(frame.index)
    assert list(out["n"]) == list(range(300))
    assert [echo_of(r) for r in out["wf_result"]] == [f"echo:{t}" for t in texts]
    assert [list(c) for c in out["wf_citations"]] == [[f"https://example.com/{t}"] for t in texts]
    assert out["wf_reused"].sum() == 300 - 37


def test_the_columns_come_in_the_documented_order_and_types(emu: Emulator, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a", "bad", "c"], "extra": [1.5, 2.5, 3.5]})
    done = run(emu, frame, destination=tmp_path / "out.parquet")
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert schema.names == ["text", "extra", *RESULT_COLUMNS]
    for name, kind, _ in RESULT_FIELDS:
        assert schema.field(f"wf_{name}").type == kind
    out = done.to_pandas()
    assert list(out["wf_status"]) == ["succeeded", "failed", "succeeded"]
    assert out["wf_error"][1].startswith("AI Tutor answered 500 workflow_run_failed")
    assert list(out["wf_citations"][1]) == [], "an empty list, not null"
    assert out["wf_attempts"].tolist() == [1, 1, 1]
    assert out["wf_finished_at"].dt.tz is not None


def test_empty_and_all_null_columns_keep_their_types(emu: Emulator, tmp_path: Path) -> None:
    """An all-failed run, a run with no citations and an empty table give one schema."""
    runs = {
        "failed": (pd.DataFrame({"text": ["bad 1", "bad 2"], "note": [None, None]}), "wf_echo"),
        "plain": (pd.DataFrame({"text": ["x"], "note": ["n"]}), "wf_plain"),
        "empty": (
            pd.DataFrame({"text": pd.Series([], dtype=str), "note": pd.Series([], dtype=object)}),
            "wf_echo",
        ),
    }
    schemas, pandas_types, arrow_types = [], [], []
    for name, (frame, workflow) in runs.items():
        path = tmp_path / f"{name}.parquet"
        run(emu, frame, workflow, destination=path)
        schema = pq.read_schema(path)
        schemas.append([(f.name, f.type) for f in schema])
        via_pandas = pd.read_parquet(path)
        via_arrow = pq.read_table(path).to_pandas()
        assert via_pandas.dtypes.equals(via_arrow.dtypes)
        pandas_types.append(via_pandas.dtypes[RESULT_COLUMNS].tolist())
        arrow_types.append(schema.field("note").type)
    assert schemas[0][2:] == schemas[1][2:] == schemas[2][2:]
    assert pandas_types[0] == pandas_types[1] == pandas_types[2]
    text_type = pa.Schema.from_pandas(pd.DataFrame({"s": ["a"]})).field("s").type
    assert arrow_types == [text_type] * 3, "an all-null column is typed as text is"
    assert pq.read_metadata(tmp_path / "empty.parquet").num_rows == 0


def test_keep_columns_and_a_prefix(emu: Emulator) -> None:
    frame = pd.DataFrame({"text": ["a"], "secret_notes": ["x"], "id": [7]})
    out = run(emu, frame, keep_columns=["id"], prefix="ai_").to_pandas()
    assert list(out.columns) == ["id", *[f"ai_{n}" for n, _, _ in RESULT_FIELDS]]


def test_runchat_outputs_by_label_and_lifted_into_columns(start_emulator: Any) -> None:
    emu = start_emulator(rate_limit_enabled=False)
    frame = pd.DataFrame({"prompt": ["hello"], "query": ["why?"]})
    out = enrich(
        frame,
        RunchatWorkflow("demo", ["prompt_xyz123", "query_nodeA"]),
        engine_options(emu.runchat_url),
        columns={"prompt_xyz123": "prompt", "query_nodeA": "query"},
        output_columns={"answer": "Answer", "sources": "Sources"},
    ).to_pandas()
    outputs = json.loads(out["wf_outputs"][0])
    assert set(outputs) == {"Answer", "Sources"}
    assert out["answer"][0] == outputs["Answer"] or out["answer"][0].startswith("Answer for")
    assert json.loads(out["sources"][0]) == outputs["Sources"]
    assert out["wf_credits"][0] == 1.0
    assert json.loads(out["wf_metadata"][0])["emulated"] is True


@pytest.mark.parametrize(
    ("frame", "settings", "message"),
    [
        (pd.DataFrame({"txt": ["a"]}), {}, "no column for 'text' -> column 'text'"),
        (pd.DataFrame({"text": ["a"]}), {"columns": {"story": "text"}}, "'story'"),
        (pd.DataFrame([["a", "b"]], columns=["text", "text"]), {}, "duplicate column"),
        (pd.DataFrame({"text": ["a"], "wf_status": ["x"]}), {}, "prefix"),
        (pd.DataFrame({"text": ["a"]}), {"keep_columns": ["nope"]}, "keep_columns"),
        (pd.DataFrame({"text": ["a"], 3: ["b"]}), {}, "column names must be strings"),
    ],
)
def test_mapping_mistakes_are_named_before_any_request(
    emu: Emulator, frame: pd.DataFrame, settings: dict[str, Any], message: str
) -> None:
    settings.setdefault("columns", None)
    with pytest.raises(ConfigError, match=message):
        run(emu, frame, **settings)
    assert emu.stats()["total_requests"] == 0


def test_no_file_appears_when_the_run_stops(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 5}})
    frame = pd.DataFrame({"text": [f"r{i}" for i in range(20)]})
    with pytest.raises(FanOutStopped):
        run(emu, frame, destination=tmp_path / "out.parquet", concurrency=2)
    assert list(tmp_path.iterdir()) == [], "no results file, no temporary left"


def test_big_tables_stream_in_row_groups(emu: Emulator, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": [f"r{i}" for i in range(1000)]})
    run(emu, frame, workflow="wf_plain", destination=tmp_path / "o.parquet", row_group_size=128)
    meta = pq.read_metadata(tmp_path / "o.parquet")
    assert meta.num_rows == 1000 and meta.num_row_groups == 8
