"""Memory-bounded internals: the results table converts results to Arrow in small batches
without any change to what comes back. (Peak RSS itself is measured by ``bench/memory.py``.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from dagster_runwf import Outcome, RowResult
from dagster_runwf.engine.table import ResultsTableWriter

LONG_ANSWER = "An answer long enough to matter for memory. " * 12


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def success(n: int, text: str | None = None) -> RowResult:
    return RowResult(
        n,
        digest(n),
        "succeeded",
        outcome=Outcome(
            result=text or f"{n}: {LONG_ANSWER}",
            citations=(f"https://a.example/{n}", "https://b.example"),
            metadata={"tokens": n},
            instance_id=f"inst-{n}",
            credits=1.0,
        ),
        attempts=1,
        latency_s=0.25,
        finished_at=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=n),
    )


def test_the_results_table_keeps_whole_row_groups_when_converting_in_batches(
    tmp_path: Path,
) -> None:
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(12_000)]})
    out = tmp_path / "out.parquet"
    writer = ResultsTableWriter(frame, destination=out, row_group_size=5_000)
    in_memory = ResultsTableWriter(frame, row_group_size=5_000)
    order = list(range(len(frame)))
    random.Random(7).shuffle(order)
    for i in order:  # results arrive in any order
        for w in (writer, in_memory):
            w.add(dataclasses.replace(success(i, f"answer {i}"), index=i))
    writer.finish()
    table = in_memory.finish()
    assert table is not None
    metadata = pq.read_metadata(out)
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [
        5_000,
        5_000,
        2_000,
    ]
    written = pq.read_table(out)
    assert written.equals(table)
    assert written.column("text").to_pylist() == frame["text"].tolist()
    assert written.column("wf_result").to_pylist() == [f"answer {i}" for i in range(12_000)]
