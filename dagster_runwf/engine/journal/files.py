"""The journal's files: where they live, how they are named, written and read.

Layout of a journal location (a local folder or an object-storage prefix)::

    <location>/jobs/<job>/<time>-<writer>-<seq>-<digest>.parquet   rows finished by one job
    <location>/snapshots/<time>-<writer>-<seq>-<digest>.parquet    successes folded from old jobs
    <location>/damaged/…                                           files found damaged, set aside

A name starts with the UTC time of writing, so names sort by age; the writer's random id and
its sequence number make it unique, so several processes can write at one location without
coordinating. Every file is Parquet (zstd, :data:`ROW_GROUP` rows a row group), immutable,
and written atomically (see :mod:`..storage`).

The name ends with a digest of the file's bytes (:func:`digest`: BLAKE2b, 64 bits), and every
read of a whole file checks it (:func:`read_file`, :func:`verified_bytes`): a flipped byte
anywhere — a data page, a page header, the footer, the schema in it — or a truncated file
raises :class:`DamagedFile`, never another row's answer. Files written before digests were
named (``<time>-<writer>-<seq>.parquet``) are accepted unverified; one that Parquet cannot
read is damaged too.
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

from ..storage import Storage, naming
from .schema import conform

SUFFIX = ".parquet"
STAMP = "%Y%m%dT%H%M%S%fZ"
"""The time format names start with (UTC; sorts as the times do)."""
ROW_GROUP = 1024
"""Rows per Parquet row group of the files and in-memory segments the journal writes: a
lookup of a row recorded by this writer decodes one row group."""
DIGEST_CHARS = 16
"""Hex characters of a file's digest in its name (64 bits: a random corruption passes
unnoticed once in 2**64)."""
_NAME = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]+-\d+(?:-(?P<digest>[0-9a-f]{16}))?\.parquet$")
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


def digest(data: bytes | memoryview) -> str:
    """The digest a journal file's name ends with."""
    return hashlib.blake2b(data, digest_size=DIGEST_CHARS // 2).hexdigest()


def named_digest(path: str) -> str | None:
    """The digest in a file's name; ``None`` for a file written before names had one."""
    match = _NAME.match(file_name(path))
    return match.group("digest") if match else None


class DamagedFile(Exception):
    """A journal file whose bytes are not those its writer wrote (see :mod:`.damage`).

    Attributes:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


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

    def next_path(self, data: bytes | memoryview, folder: str | None = None) -> str:
        """The path of a new file holding ``data`` in ``folder`` (default: the job's),
        unique to this writer, ending with the data's digest."""
        self._sequence += 1
        name = f"{stamp(dt.datetime.now(dt.timezone.utc))}-{self._writer}-{self._sequence:06d}"
        return f"{folder or self.job_folder}/{name}-{digest(data)}{SUFFIX}"

    def write(self, table: pa.Table, folder: str | None = None) -> str:
        """Write ``table`` as a new file (atomically); its path."""
        return self.write_bytes(parquet_bytes(table), folder)

    def write_bytes(self, data: bytes | memoryview, folder: str | None = None) -> str:
        """Write the bytes of a journal file as a new file (atomically); its path."""
        path = self.next_path(data, folder)
        self.storage.write_bytes(path, data)
        return path


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a journal file."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP)
    return buffer.getvalue()


def verified_bytes(storage: Storage, path: str) -> bytes:
    """A journal file's bytes, checked against the digest in its name (read twice before
    calling a file damaged, in case a store handed back a torn read).

    Raises:
        FileNotFoundError: the file is gone (merged or folded by another writer).
        DamagedFile: the bytes do not match the digest.
    """
    expected = named_digest(path)
    data = storage.read_bytes(path)
    if expected is None or digest(data) == expected:
        return data
    data = storage.read_bytes(path)
    if digest(data) == expected:
        return data
    raise DamagedFile(
        path, f"its {len(data)} bytes do not match the digest in its name ({expected})"
    )


def read_file(storage: Storage, path: str) -> pa.Table:
    """A journal file's rows, in the journal's columns (files of older versions too).

    Raises:
        FileNotFoundError: the file is gone (merged or folded by another writer).
        DamagedFile: the file's bytes are not its writer's (see :func:`verified_bytes`), or
            a file without a digest cannot be read.
        OSError: the file cannot be read (the error names it).
    """
    data = verified_bytes(storage, path)
    if named_digest(path) is not None:
        return parse(data)  # the writer's own bytes: an error here is not damage
    try:
        return parse(data)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise DamagedFile(path, f"Parquet cannot read it: {type(exc).__name__}: {exc}") from exc


def parse(data: bytes) -> pa.Table:
    """The rows of a journal file's bytes, in the journal's columns."""
    # Every read is single-threaded (use_threads=False here and for row groups): Arrow's
    # reader threads can outlive a short process and abort it at exit (apache/arrow#34314),
    # and the journal's files are small enough for one thread. ParquetFile, not
    # pq.read_table: the latter goes through Arrow's dataset reader, which starts a thread
    # even with use_threads=False.
    return conform(pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False))


def with_snapshot_jobs(table: pa.Table, jobs: list[str]) -> pa.Table:
    """A snapshot's rows, noting the job ids they belong to (see :func:`snapshot_jobs`)."""
    return table.replace_schema_metadata({_JOBS_KEY: json.dumps(jobs)})


def snapshot_jobs(storage: Storage, path: str) -> list[str]:
    """The job ids a snapshot holds rows of, from its footer alone.

    The footer is not checked against the digest (that would read the whole snapshot at
    every opening): a damaged footer that still parses lists wrong jobs, which costs at
    worst paying again for rows (the snapshot read in full is checked).

    Raises:
        FileNotFoundError: the snapshot is gone (folded by another writer).
        DamagedFile: the footer cannot be read.
    """
    with naming(path), storage.fs.open(path, "rb") as handle:
        try:
            metadata = pq.read_schema(handle).metadata or {}
            jobs: list[str] = json.loads(metadata.get(_JOBS_KEY, b"[]"))
        except (pa.ArrowException, ValueError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # the store failed, not the file (Arrow's parse errors have no errno)
            raise DamagedFile(path, f"its footer cannot be read: {exc}") from exc
    if not isinstance(jobs, list):
        raise DamagedFile(path, "its footer does not list jobs")
    return jobs
