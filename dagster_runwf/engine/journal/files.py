"""The journal's files: where they live, how they are named, written and read.

Layout of a journal location (a local folder or an object-storage prefix)::

    <location>/jobs/<job>/<time>-<writer>-<seq>.parquet   rows finished by one job
    <location>/snapshots/<time>-<writer>-<seq>.parquet    successes folded from old jobs

A name starts with the UTC time of writing, so names sort by age; the writer's random id and
its sequence number make it unique, so several processes can write at one location without
coordinating. Every file is Parquet (zstd, :data:`ROW_GROUP` rows a row group), immutable,
and written atomically (see :mod:`..storage`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import Storage
from .schema import conform

SUFFIX = ".parquet"
STAMP = "%Y%m%dT%H%M%S%fZ"
"""The time format names start with (UTC; sorts as the times do)."""
ROW_GROUP = 1024
"""Rows per Parquet row group of the files and in-memory segments the journal writes: a
lookup of a row recorded by this writer decodes one row group."""
_JOBS_KEY = b"runwf_jobs"
"""Snapshot metadata: the job ids whose rows it holds (read without reading the rows)."""


def job_folder_name(job_id: str) -> str:
    """A folder name for a job id: readable, safe in any store, unique per id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id).strip("._")[:60]
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return f"{readable}-{digest}" if readable else digest


def file_name(path: str) -> str:
    """The last part of a path (what sorts files by age)."""
    return path.rsplit("/", 1)[-1]


def stamp(moment: dt.datetime) -> str:
    """A time as file names start with it (compare with :func:`file_name`)."""
    return moment.astimezone(dt.timezone.utc).strftime(STAMP)


class WriterFiles:
    """The files one writer (one open journal) writes at a location.

    Args:
        storage: the journal's location.
        job_folder: the folder of the writer's job, where its files go by default.
    """

    def __init__(self, storage: Storage, job_folder: str) -> None:
        self.storage = storage
        self.job_folder = job_folder
        self._writer = uuid.uuid4().hex[:10]
        self._sequence = 0

    def wrote(self, path: str) -> bool:
        """Whether this writer wrote the file at ``path`` (its name holds the writer's id)."""
        return f"-{self._writer}-" in file_name(path)

    def next_path(self, folder: str | None = None) -> str:
        """A new file's path in ``folder`` (default: the job's), unique to this writer."""
        self._sequence += 1
        name = f"{stamp(dt.datetime.now(dt.timezone.utc))}-{self._writer}-{self._sequence:06d}"
        return f"{folder or self.job_folder}/{name}{SUFFIX}"

    def write(self, table: pa.Table, folder: str | None = None) -> str:
        """Write ``table`` as a new file (atomically); its path."""
        path = self.next_path(folder)
        self.storage.write_bytes(path, parquet_bytes(table))
        return path


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a journal file."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP)
    return buffer.getvalue()


def read_file(storage: Storage, path: str) -> pa.Table:
    """A journal file's rows, in the journal's columns (files of older versions too).

    Raises:
        FileNotFoundError: the file is gone (merged or folded by another writer).
    """
    # Every read is single-threaded (use_threads=False here and for row groups): Arrow's
    # reader threads can outlive a short process and abort it at exit (apache/arrow#34314),
    # and the journal's files are small enough for one thread. ParquetFile, not
    # pq.read_table: the latter goes through Arrow's dataset reader, which starts a thread
    # even with use_threads=False.
    data = storage.read_bytes(path)
    return conform(pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False))


def with_snapshot_jobs(table: pa.Table, jobs: list[str]) -> pa.Table:
    """A snapshot's rows, noting the job ids they belong to (see :func:`snapshot_jobs`)."""
    return table.replace_schema_metadata({_JOBS_KEY: json.dumps(jobs)})


def snapshot_jobs(storage: Storage, path: str) -> list[str]:
    """The job ids a snapshot holds rows of, from its footer alone."""
    with storage.fs.open(path, "rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    jobs: list[str] = json.loads(metadata.get(_JOBS_KEY, b"[]"))
    return jobs
