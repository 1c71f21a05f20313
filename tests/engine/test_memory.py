"""Memory-bounded internals: the journal keeps what it wrote compressed and merges in
tiers, and the results table converts results to Arrow in small batches — without any
change to what comes back. (Peak RSS itself is measured by ``bench/memory.py``.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import Outcome, RowJournal, RowResult
from dagster_runwf.engine.journal import merging
from dagster_runwf.engine.journal.index import RowIndex
from dagster_runwf.engine.journal.location import RowLocation
from dagster_runwf.engine.journal.recorded import SEGMENT_ROWS
from dagster_runwf.engine.journal.schema import encode
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


def record_in_batches(journal: RowJournal, rows: range, batch: int) -> None:
    for start in range(rows.start, rows.stop, batch):
        journal.record([success(n) for n in range(start, min(start + batch, rows.stop))])


def test_rows_this_writer_recorded_come_back_whole_from_any_segment(tmp_path: Path) -> None:
    journal = RowJournal(tmp_path, job_id="long", flush_interval_s=0)
    total = 3 * SEGMENT_ROWS + 700  # sealed segments, then a decoded tail
    record_in_batches(journal, range(total), 300)
    for n in [0, 1, 1023, 1024, 4095, 4096, 5000, total // 2, total - 701, total - 1]:
        found = journal.lookup(digest(n))
        assert found is not None and found.source == "journal"
        assert (found.outcome, found.finished_at) == (success(n).outcome, success(n).finished_at)
    assert journal.lookup(digest(total)) is None
    assert journal.finished_rows == total
    journal.close()
    again = RowJournal(tmp_path, job_id="long")
    assert again.finished_rows == total
    found = again.lookup(digest(17))
    assert found is not None and found.outcome == success(17).outcome


def test_recorded_rows_are_not_kept_decoded(tmp_path: Path) -> None:
    journal = RowJournal(tmp_path, job_id="lean", flush_interval_s=0)
    before = pa.total_allocated_bytes()
    rows = range(10_000)
    record_in_batches(journal, rows, 250)
    held = pa.total_allocated_bytes() - before
    decoded = encode([success(n) for n in rows], "lean", "").nbytes
    # Only the rows since the last sealed segment (at most a few thousand) stay as Arrow.
    assert held < decoded * 0.3, (held, decoded)
    journal.close()


def test_hashes_sharing_64_bits_are_told_apart_beyond_the_index_fold(tmp_path: Path) -> None:
    twins = [f"{n:064x}" for n in (1, 2)]  # the same first 64 bits
    journal = RowJournal(tmp_path, job_id="a", flush_interval_s=0)
    record_in_batches(journal, range(2 * RowIndex.FOLD_AT), 1000)
    journal.record([dataclasses.replace(success(n, f"twin {n}"), input_hash=h)
                    for n, h in enumerate(twins)])  # fmt: skip
    record_in_batches(journal, range(100_000, 100_000 + SEGMENT_ROWS), 1000)
    assert [r.outcome.result if r and r.outcome else None
            for r in map(journal.lookup, twins)] == ["twin 0", "twin 1"]  # fmt: skip
    assert journal.finished_rows == 2 * RowIndex.FOLD_AT + 2 + SEGMENT_ROWS
    journal.close()
    for reopened in (RowJournal(tmp_path, job_id="a"),
                     RowJournal(tmp_path, job_id="b", incremental=True)):  # fmt: skip
        assert [r.outcome.result if r and r.outcome else None
                for r in map(reopened.lookup, twins)] == ["twin 0", "twin 1"]  # fmt: skip
        for n in random.Random(5).sample(range(2 * RowIndex.FOLD_AT), 50):
            found = reopened.lookup(digest(n))
            assert found is not None and found.outcome == success(n).outcome


def test_merges_go_in_tiers_and_lose_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merging, "MERGE_EVERY", 4)
    journal = RowJournal(tmp_path, job_id="tiers", flush_interval_s=0)
    record_in_batches(journal, range(200), 10)  # 20 files: 5 merged ones, 4 of those again
    files = sorted((tmp_path / "jobs").rglob("*.parquet"))
    assert len(files) == 2, "one file of 16 writes and one of 4"
    assert sum(pq.read_metadata(f).num_rows for f in files) == 200
    journal.close()
    files = sorted((tmp_path / "jobs").rglob("*.parquet"))
    assert len(files) == 1
    hashes = pq.read_table(files[0]).column("input_hash").to_pylist()
    assert sorted(hashes) == sorted(digest(n) for n in range(200))


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


def test_row_locations_of_both_kinds_unpack_to_what_was_packed() -> None:
    read = RowLocation.of_read_rows(3, 5)
    assert [RowLocation.read_table_row(at) for at in read] == [(3, row) for row in range(5)]
    recorded = RowLocation.of_recorded_rows(7, 4)
    assert all(RowLocation.is_recorded(at) for at in recorded)
    assert not any(RowLocation.is_recorded(at) for at in read)
    assert [RowLocation.recorded_number(at) for at in recorded] == [7, 8, 9, 10]
    assert RowLocation.read_table_row(next(iter(RowLocation.of_read_rows(0, 1)))) == (0, 0)
    last = RowLocation.of_read_rows(2**20, 2**32)[-1]
    assert RowLocation.read_table_row(last) == (2**20, 2**32 - 1)
    with pytest.raises(ValueError):
        RowLocation.of_read_rows(0, 2**32 + 1)
