"""The Parquet schemas of the journal and of the results table, pinned column by column.

Journals and results tables written by earlier versions must read the same, and a reader of a
results table (a notebook, a warehouse load) relies on its column names and types: a change
to either schema has to be a deliberate edit of this file, never a side effect.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_runwf import Outcome, RowJournal, RowResult
from dagster_runwf.engine.journal import JOURNAL_SCHEMA
from dagster_runwf.engine.table import ResultsTableWriter, result_fields

TEXT = pa.string()
WHEN = pa.timestamp("us", tz="UTC")

JOURNAL_COLUMNS = [
    # (name, type, nullable), in file order
    ("input_hash", TEXT, False),
    ("version", TEXT, False),
    ("job_id", TEXT, False),
    ("status", TEXT, False),
    ("result", TEXT, True),
    ("citations", pa.list_(TEXT), False),
    ("outputs", TEXT, True),
    ("output_labels", TEXT, True),
    ("metadata", TEXT, True),
    ("instance_id", TEXT, True),
    ("credits", pa.float64(), True),
    ("error", TEXT, True),
    ("error_type", TEXT, True),
    ("attempts", pa.int32(), False),
    ("latency_s", pa.float64(), True),
    ("finished_at", WHEN, False),
]

RESULTS_TABLE_COLUMNS = [
    ("wf_status", TEXT, False),
    ("wf_result", TEXT, True),
    ("wf_citations", pa.list_(TEXT), False),
    ("wf_outputs", TEXT, True),
    ("wf_error", TEXT, True),
    ("wf_error_type", TEXT, True),
    ("wf_attempts", pa.int32(), False),
    ("wf_latency_s", pa.float64(), True),
    ("wf_instance_id", TEXT, True),
    ("wf_metadata", TEXT, True),
    ("wf_credits", pa.float64(), True),
    ("wf_input_hash", TEXT, True),
    ("wf_finished_at", WHEN, True),
    ("wf_reused", pa.bool_(), False),
]

FINISHED = dt.datetime(2026, 11, 20, 8, 30, 1, 250_000, tzinfo=dt.timezone.utc)
HASH = "ab" * 32


def columns(schema: pa.Schema | list[pa.Field]) -> list[tuple[str, pa.DataType, bool]]:
    return [(f.name, f.type, f.nullable) for f in schema]


def a_success() -> RowResult:
    return RowResult(
        0,
        HASH,
        "succeeded",
        outcome=Outcome(
            result="Acme makes anvils.",
            citations=("https://acme.example", "https://anvils.example"),
            outputs={"out_1": "anvils", "out_2": {"n": 3}},
            output_labels={"Summary": "out_1", "Count": "out_2"},
            metadata={"tokens": 12, "model": "m"},
            instance_id="run-7",
            credits=0.5,
        ),
        attempts=2,
        latency_s=1.25,
        finished_at=FINISHED,
    )


def test_the_journal_schema_is_pinned() -> None:
    assert columns(JOURNAL_SCHEMA) == JOURNAL_COLUMNS


def test_the_results_table_schema_is_pinned() -> None:
    assert columns(result_fields()) == RESULTS_TABLE_COLUMNS
    lifted = result_fields("ai_", {"summary": "Summary"})
    assert columns(lifted) == [
        *[("ai_" + name[3:], kind, nullable) for name, kind, nullable in RESULTS_TABLE_COLUMNS],
        ("summary", TEXT, True),
    ]


def test_the_files_written_have_the_pinned_schemas(tmp_path: Path) -> None:
    with RowJournal(tmp_path / "journal", job_id="pin", flush_interval_s=0) as journal:
        journal.record([a_success()])
    (journal_file,) = (tmp_path / "journal" / "jobs").rglob("*.parquet")
    assert columns(pq.read_schema(journal_file)) == JOURNAL_COLUMNS

    writer = ResultsTableWriter(
        pd.DataFrame({"name": ["Acme"]}),
        output_columns={"summary": "Summary", "count": "Count"},
        destination=tmp_path / "out.parquet",
    )
    writer.add(a_success())
    writer.finish()
    assert columns(pq.read_schema(tmp_path / "out.parquet")) == [
        ("name", pa.large_string() if _large_text() else TEXT, True),
        *RESULTS_TABLE_COLUMNS,
        ("summary", TEXT, True),
        ("count", TEXT, True),
    ]


def test_both_files_hold_a_row_the_same_way(tmp_path: Path) -> None:
    """The journal keeps outputs by id with their labels (so the outcome comes back whole);
    the results table shows them by label, and lifts chosen ones into columns."""
    with RowJournal(tmp_path / "journal", job_id="pin", flush_interval_s=0) as journal:
        journal.record([a_success()])
    (journal_file,) = (tmp_path / "journal" / "jobs").rglob("*.parquet")
    assert pq.read_table(journal_file).to_pylist() == [
        {
            "input_hash": HASH,
            "version": "",
            "job_id": "pin",
            "status": "succeeded",
            "result": "Acme makes anvils.",
            "citations": ["https://acme.example", "https://anvils.example"],
            "outputs": '{"out_1":"anvils","out_2":{"n":3}}',
            "output_labels": '{"Summary":"out_1","Count":"out_2"}',
            "metadata": '{"tokens":12,"model":"m"}',
            "instance_id": "run-7",
            "credits": 0.5,
            "error": None,
            "error_type": None,
            "attempts": 2,
            "latency_s": 1.25,
            "finished_at": FINISHED,
        }
    ]
    found = RowJournal(tmp_path / "journal", job_id="pin").lookup(HASH)
    assert found is not None
    assert (found.outcome, found.attempts, found.finished_at) == (
        a_success().outcome,
        2,
        FINISHED,
    )

    writer = ResultsTableWriter(
        pd.DataFrame({"name": ["Acme"]}), output_columns={"summary": "Summary", "count": "Count"}
    )
    writer.add(a_success())
    table = writer.finish()
    assert table is not None
    assert table.drop_columns(["name"]).to_pylist() == [
        {
            "wf_status": "succeeded",
            "wf_result": "Acme makes anvils.",
            "wf_citations": ["https://acme.example", "https://anvils.example"],
            "wf_outputs": '{"Summary":"anvils","Count":{"n":3}}',
            "wf_error": None,
            "wf_error_type": None,
            "wf_attempts": 2,
            "wf_latency_s": 1.25,
            "wf_instance_id": "run-7",
            "wf_metadata": '{"tokens":12,"model":"m"}',
            "wf_credits": 0.5,
            "wf_input_hash": HASH,
            "wf_finished_at": FINISHED,
            "wf_reused": False,
            "summary": "anvils",
            "count": '{"n": 3}',
        }
    ]


def test_a_failed_row_in_both_files(tmp_path: Path) -> None:
    failed = RowResult(
        0,
        HASH,
        "failed",
        error="AI Tutor answered 500 workflow_run_failed",
        error_type="RunFailedError",
        attempts=1,
        latency_s=0.5,
        finished_at=FINISHED,
    )
    with RowJournal(tmp_path, job_id="pin", flush_interval_s=0) as journal:
        journal.record([failed])
    found = RowJournal(tmp_path, job_id="pin").lookup(HASH)
    assert found is not None
    assert (found.status, found.outcome, found.error, found.error_type) == (
        "failed",
        None,
        failed.error,
        "RunFailedError",
    )
    writer = ResultsTableWriter(pd.DataFrame({"name": ["Acme"]}))
    writer.add(failed)
    table = writer.finish()
    assert table is not None
    row = table.to_pylist()[0]
    assert (row["wf_result"], row["wf_citations"], row["wf_outputs"], row["wf_metadata"]) == (
        None,
        [],
        None,
        None,
    )


def _large_text() -> bool:
    """How this pandas version's text columns reach Arrow (pandas 3 uses large_string)."""
    text = pa.Schema.from_pandas(pd.DataFrame({"s": ["a"]})).field("s").type
    return bool(text == pa.large_string())
