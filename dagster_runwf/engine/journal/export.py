"""A job's rows as a results table, read from the journal alone, at any time: while a run
is going, after one stopped, or after ``kill -9`` (what ``runwf export`` writes).

The journal holds no input columns, only each row's input hash, so the table is the result
columns (the results table's, with their declared types) of every row the job journaled,
in the order they finished; of two rows for one input (a failed row sent again with
``retry_failed``), the later wins, as when the journal answers a row. Rows the job did not
journal — not sent yet, in flight at a crash, or whose transient errors ran out of retries
— are not in it. Jobs folded into a snapshot (:mod:`.compaction`) are not listed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import ConfigError
from ..result_columns import lifted_output, result_from_row
from ..storage import Storage
from ..table import DEFAULT_PREFIX, RESULTS_TABLE_COLUMNS, result_fields
from .files import SUFFIX, file_name
from .loading import read_new_job_files
from .schema import NAMES

_BATCH = 4_096
"""Rows decoded into results at a time (the rest stay Arrow)."""


@dataclass(frozen=True)
class JournalJob:
    """A job of a journal location.

    Attributes:
        job_id: the job's id (for Dagster assets: asset, partition, answers' version and
            generation, e.g. ``profiles/2026-11-20/3f1c…#2``).
        folder: where its files are.
        last_written: the name of its newest file (they start with the UTC time written).
        files: how many files hold its rows.
    """

    job_id: str
    folder: str
    last_written: str
    files: int


def journal_jobs(
    location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> list[JournalJob]:
    """The jobs whose rows the journal at ``location`` holds, the last written last."""
    storage = Storage(location, storage_options)
    jobs = []
    for folder in storage.list_folders(storage.path("jobs")):
        paths = storage.list_files(folder, SUFFIX)
        if not paths:
            continue
        job_id = _job_id(storage, paths) or file_name(folder)
        jobs.append(JournalJob(job_id, folder, max(map(file_name, paths)), len(paths)))
    return sorted(jobs, key=lambda job: job.last_written)


def _job_id(storage: Storage, paths: list[str]) -> str | None:
    """The job id a job's files hold (read from the first one that can be read)."""
    for path in paths:
        try:
            with storage.fs.open(path, "rb") as handle:
                ids = pq.ParquetFile(handle).read_row_group(0, ["job_id"]).column("job_id")
        except (OSError, pa.ArrowException, IndexError):
            continue  # merged away meanwhile, or damaged: another file names the job
        if len(ids):
            return str(ids[0].as_py())
    return None


def job_rows(storage: Storage, job: JournalJob) -> pa.Table:
    """A job's journal rows, one per input (the last finished), in the order they
    finished."""
    tables = list(read_new_job_files(storage, job.folder, set()))
    if not tables:
        return pa.schema([]).empty_table()
    rows = pa.concat_tables(tables)
    order = pd.DataFrame(
        {
            "input_hash": rows.column("input_hash").to_numpy(zero_copy_only=False),
            "finished": rows.column("finished_at").cast(pa.int64()).to_numpy(),
        }
    )
    latest = order.sort_values("finished", kind="stable").drop_duplicates("input_hash", keep="last")
    return rows.take(pa.array(latest.index.to_numpy()))


def export_job(
    location: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    job_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    output_columns: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[JournalJob, int]:
    """Write a job's journaled rows as the result columns of a results table (Parquet,
    written atomically) to ``destination``; the job and the number of rows written.

    Args:
        location: the journal's folder or URL.
        destination: the Parquet file to write (a local path or an fsspec URL).
        job_id: the job; default: the one written to last.
        prefix: the result columns' prefix.
        output_columns: new column -> output label (or id) to lift into a column.
        storage_options: fsspec options for URLs (the journal's and the destination's).

    Raises:
        ConfigError: the location holds no job, or not ``job_id``.
    """
    jobs = journal_jobs(location, storage_options)
    if not jobs:
        raise ConfigError(f"the journal at {os.fspath(location)!r} holds no job")
    job = jobs[-1]
    if job_id is not None:
        named = [j for j in jobs if j.job_id == job_id]
        if not named:
            listed = ", ".join(repr(j.job_id) for j in jobs[-5:])
            raise ConfigError(
                f"the journal at {os.fspath(location)!r} has no job {job_id!r}; its last "
                f"written jobs are {listed}"
            )
        job = named[0]
    rows = job_rows(Storage(location, storage_options), job)
    lifted = output_columns or {}
    columns = [*RESULTS_TABLE_COLUMNS, *(lifted_output(c, w) for c, w in lifted.items())]
    schema = pa.schema(result_fields(prefix, lifted))
    out = Storage(destination, storage_options)
    with (
        out.open_for_write(out.root) as handle,
        pq.ParquetWriter(handle, schema, compression="zstd") as writer,
    ):
        for start in range(0, rows.num_rows, _BATCH):
            batch = rows.slice(start, _BATCH).to_pylist()
            # Each row was paid for by the job that journaled it: not reused.
            results = [
                result_from_row({name: row[name] for name in NAMES}, source="run") for row in batch
            ]
            arrays = [column.array(results) for column in columns]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        if rows.num_rows == 0:
            writer.write_table(schema.empty_table())
    return job, rows.num_rows
