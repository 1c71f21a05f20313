"""A damaged journal: never another row's answer, never a blocked job; a full disk: a clear
error naming the path.

A journal file is damaged byte by byte — a flipped bit in its data pages, its footer, the
Arrow schema stored in the footer, the footer's length and magic; or the file cut short at
several lengths — and the job is resumed through ``enrich`` (and ``runwf enrich``) against
the emulator. Every row's answer is compared with its input, the damaged file must be named
in a warning and moved below ``damaged/``, and its rows paid for again.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import dagster_runwf.engine.storage as storage_module
from dagster_runwf import (
    AITutorWorkflow,
    ClaimStoreError,
    JournalError,
    Outcome,
    RowJournal,
    RowResult,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.journal import DamagedJournalFileWarning, job_folder_name
from dagster_runwf.engine.journal.files import parquet_bytes
from dagster_runwf.engine.journal.schema import encode
from dagster_runwf.engine.storage import Storage

from ..cli.test_cli import environment, runwf
from ..conftest import ECHO, engine_options

WORKFLOW = AITutorWorkflow("wf_echo", ["text"])
ROWS = 40
NO_TIME = dt.timedelta(0)


def texts(n: int = ROWS) -> list[str]:
    # Texts of different lengths, so that answers differ in size as well as in content.
    return [f"row-{i:03d}-{'x' * (i % 7)}" for i in range(n)]


@pytest.fixture
def echo(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(rate_limit_enabled=False, workflows=[ECHO])


def runs_at(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def run(
    emu: Emulator, journal: RowJournal, rows: list[str], claim_store: str = "auto"
) -> pd.DataFrame:
    frame = pd.DataFrame({"text": rows})
    options = engine_options(emu.aitutor_url, concurrency=4, claim_store=claim_store)
    return enrich(frame, WORKFLOW, options, journal=journal).to_pandas()


def wrong_answers(out: pd.DataFrame) -> list[str]:
    """Rows whose answer is not their own input's (the echo workflow answers ``echo:<text>``)."""
    return [
        text
        for text, result in zip(out["text"], out["wf_result"], strict=True)
        if str(result).split(" [")[0] != f"echo:{text}"
    ]


def journal_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "jobs").rglob("*.parquet"))


def one_job_file(root: Path) -> Path:
    [path] = journal_files(root)
    return path


# -- where to damage a file ---------------------------------------------------------------------


def footer_start(data: bytes) -> int:
    """Where a Parquet file's footer (its Thrift metadata) begins."""
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def flip_position(data: bytes, region: str, fraction: float) -> int:
    """A byte ``fraction`` of the way through a region of a Parquet file."""
    footer = footer_start(data)
    schema = data.index(b"ARROW:schema", footer) + len(b"ARROW:schema") + 8
    bounds = {
        "data pages": (4, footer),
        "footer": (footer, len(data) - 8),
        "arrow schema": (schema, len(data) - 8),
        "footer length": (len(data) - 8, len(data) - 4),
        "magic": (len(data) - 4, len(data)),
    }
    start, end = bounds[region]
    return start + int((end - start - 1) * fraction)


def damage(path: Path, kind: str, region: str, fraction: float) -> bytes:
    """Flip one bit of ``path`` (or cut it short), in place; the damaged bytes."""
    data = bytearray(path.read_bytes())
    if kind == "flip":
        data[flip_position(bytes(data), region, fraction)] ^= 0x01
    else:
        data = data[: int(len(data) * fraction)]
    path.write_bytes(bytes(data))
    return bytes(data)


FRACTIONS = (0.0, 0.13, 0.27, 0.41, 0.55, 0.69, 0.83, 1.0)
VARIANTS = [
    *[("flip", "data pages", f) for f in FRACTIONS],
    *[("flip", "footer", f) for f in FRACTIONS],
    *[("flip", "arrow schema", f) for f in (0.0, 0.5, 1.0)],
    *[("flip", "footer length", f) for f in (0.0, 1.0)],
    *[("flip", "magic", f) for f in (0.0, 1.0)],
    *[("truncate", "", f) for f in (0.0, 0.001, 0.25, 0.5, 0.9, 0.999)],
]


def variant_id(variant: tuple[str, str, float]) -> str:
    kind, region, fraction = variant
    return f"{kind}-{region.replace(' ', '_')}-{fraction}" if region else f"{kind}-{fraction}"


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant_id(v) for v in VARIANTS])
def test_a_damaged_journal_file_is_set_aside_and_its_rows_paid_again(
    echo: Emulator, tmp_path: Path, variant: tuple[str, str, float]
) -> None:
    root = tmp_path / "journal"
    with RowJournal(root, job_id="nightly") as journal:
        assert wrong_answers(run(echo, journal, texts())) == []
    path = one_job_file(root)  # closing merged the job's batches into one file
    damaged = damage(path, *variant)
    paid = runs_at(echo)

    with (
        pytest.warns(DamagedJournalFileWarning) as caught,
        RowJournal(root, job_id="nightly") as journal,
    ):
        assert journal.finished_rows == 0
        out = run(echo, journal, texts())

    assert wrong_answers(out) == []  # never another row's answer
    assert not out["wf_reused"].any()
    assert runs_at(echo) - paid == ROWS  # the damaged file's rows are paid for again
    messages = [str(w.message) for w in caught if w.category is DamagedJournalFileWarning]
    assert len(messages) == 1 and str(path) in messages[0]
    aside = root / "damaged" / path.relative_to(root)
    assert str(aside) in messages[0]
    assert not path.exists() and aside.read_bytes() == damaged  # moved, not deleted
    # The job is whole again: one more resume pays for nothing and warns of nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedJournalFileWarning)
        with RowJournal(root, job_id="nightly") as journal:
            assert journal.finished_rows == ROWS
            again = run(echo, journal, texts())
    assert wrong_answers(again) == [] and again["wf_reused"].all()
    assert runs_at(echo) - paid == ROWS


def key(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def success(n: int, text: str) -> RowResult:
    return RowResult(
        n,
        key(n),
        "succeeded",
        outcome=Outcome(result=text),
        finished_at=dt.datetime.now(dt.timezone.utc),
    )


def test_only_the_damaged_file_of_a_job_is_set_aside(tmp_path: Path) -> None:
    """A job killed before it could merge its batches: the others still answer."""
    journal = RowJournal(tmp_path, job_id="j")
    for batch in range(4):
        journal.record([success(n, f"answer {n}") for n in range(batch * 10, batch * 10 + 10)])
    # Not closed: a killed process leaves its batches unmerged.
    files = journal_files(tmp_path)
    assert len(files) == 4
    damage(files[1], "flip", "data pages", 0.5)
    with pytest.warns(DamagedJournalFileWarning, match=files[1].name):
        resumed = RowJournal(tmp_path, job_id="j")
    assert resumed.finished_rows == 30
    for n in range(40):
        found = resumed.lookup(key(n))
        if 10 <= n < 20:
            assert found is None
        else:
            assert found is not None and found.outcome is not None
            assert found.outcome.result == f"answer {n}"
    resumed.close()


def test_a_damaged_batch_is_not_merged_into_a_file_that_looks_whole(tmp_path: Path) -> None:
    journal = RowJournal(tmp_path, job_id="j")
    journal.record([success(n, f"answer {n}") for n in range(10)])
    journal.record([success(n, f"answer {n}") for n in range(10, 20)])
    _, second = journal_files(tmp_path)
    damage(second, "truncate", "", 0.5)
    with pytest.warns(DamagedJournalFileWarning, match=second.name):
        journal.close()  # merges the two
    [merged] = journal_files(tmp_path)
    assert pq.read_table(merged).column("input_hash").to_pylist() == [key(n) for n in range(10)]
    assert (tmp_path / "damaged" / second.relative_to(tmp_path)).exists()


def test_a_damaged_file_is_not_folded_into_a_snapshot(tmp_path: Path) -> None:
    for job in ("a", "b", "c"):
        with RowJournal(tmp_path, job_id=job, keep_recent=NO_TIME, keep_jobs=5) as journal:
            journal.record([success(n, f"{job} {n}") for n in range(5)])
    folder = tmp_path / "jobs" / job_folder_name("a")
    [path] = folder.glob("*.parquet")
    damage(path, "flip", "footer", 0.5)
    with (
        pytest.warns(DamagedJournalFileWarning, match=path.name),
        RowJournal(tmp_path, job_id="d", keep_recent=NO_TIME, keep_jobs=1),
    ):
        pass
    [snapshot] = (tmp_path / "snapshots").glob("*.parquet")
    # "c" is the most recent job, kept whole; "a" was damaged, "b" folded.
    assert set(pq.read_table(snapshot).column("job_id").to_pylist()) == {"b"}
    assert (tmp_path / "damaged" / path.relative_to(tmp_path)).exists()


@pytest.mark.parametrize("region", ["data pages", "footer"])
def test_a_damaged_snapshot_is_set_aside_when_a_folded_job_resumes(
    tmp_path: Path, region: str
) -> None:
    with RowJournal(tmp_path, job_id="a", keep_recent=NO_TIME, keep_jobs=1) as journal:
        journal.record([success(n, f"a {n}") for n in range(5)])
    with RowJournal(tmp_path, job_id="b", keep_recent=NO_TIME, keep_jobs=1) as journal:
        journal.record([success(n, f"b {n}") for n in range(5, 10)])
    [snapshot] = (tmp_path / "snapshots").glob("*.parquet")  # job "a", folded
    damage(snapshot, "truncate" if region == "footer" else "flip", region, 0.5)
    with pytest.warns(DamagedJournalFileWarning, match=snapshot.name):
        resumed = RowJournal(tmp_path, job_id="a", incremental=True)
    assert resumed.finished_rows == 0 and resumed.lookup(key(0)) is None
    resumed.close()
    assert (tmp_path / "damaged" / snapshot.relative_to(tmp_path)).exists()


def test_a_damaged_file_in_object_storage_is_set_aside(s3: dict[str, Any]) -> None:
    client, options = s3["client"], s3["options"]
    location = "s3://bucket/damaged-journal"

    def keys() -> list[str]:
        listed = client.list_objects_v2(Bucket="bucket", Prefix="damaged-journal/")
        return [o["Key"] for o in listed.get("Contents", [])]

    try:
        journal = RowJournal(location, job_id="j", storage_options=options)
        journal.record([success(n, f"answer {n}") for n in range(10)])
        [key_name] = keys()
        data = client.get_object(Bucket="bucket", Key=key_name)["Body"].read()
        client.put_object(Bucket="bucket", Key=key_name, Body=data[: len(data) // 2])
        with pytest.warns(DamagedJournalFileWarning, match=key_name.rsplit("/", 1)[-1]):
            resumed = RowJournal(location, job_id="j", storage_options=options)
        assert resumed.finished_rows == 0
        relative = key_name.removeprefix("damaged-journal/")
        assert keys() == [f"damaged-journal/damaged/{relative}"]
    finally:  # the S3 server's buckets outlive the test
        for name in keys():
            client.delete_object(Bucket="bucket", Key=name)


# -- journals written before files were named with their digest ---------------------------------


def legacy_file(root: Path, job_id: str, results: list[RowResult]) -> Path:
    """A journal file as earlier versions wrote it: no digest in its name."""
    path = (
        root / "jobs" / job_folder_name(job_id) / "20260101T000000000000Z-0123456789-000001.parquet"
    )
    path.parent.mkdir(parents=True)
    path.write_bytes(parquet_bytes(encode(results, job_id, "")))
    return path


def test_a_journal_written_before_digests_is_still_read(tmp_path: Path) -> None:
    legacy_file(tmp_path, "j", [success(n, f"answer {n}") for n in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedJournalFileWarning)
        with RowJournal(tmp_path, job_id="j") as journal:
            assert journal.finished_rows == 5
            found = journal.lookup(key(3))
            assert found is not None and found.outcome is not None
            assert found.outcome.result == "answer 3"


def test_an_unreadable_journal_file_written_before_digests_is_set_aside(tmp_path: Path) -> None:
    path = legacy_file(tmp_path, "j", [success(n, f"answer {n}") for n in range(5)])
    damage(path, "truncate", "", 0.5)
    with (
        pytest.warns(DamagedJournalFileWarning, match="Parquet cannot read it"),
        RowJournal(tmp_path, job_id="j") as journal,
    ):
        assert journal.finished_rows == 0
    assert (tmp_path / "damaged" / path.relative_to(tmp_path)).exists()


# -- runwf enrich ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [("flip", "data pages", 0.5), ("flip", "arrow schema", 0.5), ("truncate", "", 0.5)],
    ids=variant_id,
)
def test_runwf_enrich_resumes_a_damaged_journal(
    echo: Emulator, tmp_path: Path, variant: tuple[str, str, float]
) -> None:
    pd.DataFrame({"text": texts()}).to_csv(tmp_path / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", "--service", "aitutor", "--workflow", "wf_echo"]
    args += ["--map", "text=text", "--rate", "unlimited"]
    env = environment(echo)
    first = runwf(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    root = tmp_path / "out.parquet.journal"
    path = one_job_file(root)
    damage(path, *variant)

    resumed = runwf(*args, env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    [warning] = [line for line in resumed.stderr.splitlines() if line.startswith("runwf: warning")]
    assert "damaged journal file" in warning and path.name in warning
    assert "requests  40 " in resumed.stdout
    assert runs_at(echo) == 2 * ROWS
    assert wrong_answers(pd.read_parquet(tmp_path / "out.parquet")) == []
    assert (root / "damaged" / path.relative_to(root)).exists() and not path.exists()


# -- a full disk ----------------------------------------------------------------------------------


class FullDiskHandle:
    """A file handle on a full disk: every write fails with ENOSPC."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> FullDiskHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@pytest.fixture
def disk_room(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Files the (simulated) local disk still has room for; writes to later ones fail with
    ENOSPC."""
    room = [10**9]
    create = storage_module._create

    def create_on_a_filling_disk(temp: Path) -> IO[bytes] | FullDiskHandle:
        room[0] -= 1
        return create(temp) if room[0] >= 0 else FullDiskHandle(create(temp))

    monkeypatch.setattr(storage_module, "_create", create_on_a_filling_disk)
    return room


def test_every_storage_error_names_its_path(tmp_path: Path, disk_room: list[int]) -> None:
    storage = Storage(tmp_path)
    target = storage.path("a", "file.parquet")
    disk_room[0] = 0
    with pytest.raises(OSError) as full:
        storage.write_bytes(target, b"more than three bytes")
    assert full.value.errno == errno.ENOSPC and full.value.filename == target
    assert isinstance(full.value.__cause__, OSError)
    assert not list(tmp_path.rglob("*file.parquet*"))  # nothing half written is left
    missing = storage.path("missing.parquet")
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        storage.move(missing, storage.path("elsewhere.parquet"))
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "f.parquet").write_bytes(b"x")
    if os.geteuid() != 0:  # root reads and deletes anything
        (tmp_path / "locked").chmod(0o500)
        try:
            with pytest.raises(PermissionError, match=r"f\.parquet"):
                storage.delete([storage.path("locked", "f.parquet")])
        finally:
            (tmp_path / "locked").chmod(0o700)


def test_a_full_disk_raises_the_journal_error_not_the_close_error(
    echo: Emulator, tmp_path: Path, disk_room: list[int]
) -> None:
    disk_room[0] = 2  # two batches fit; the third, and the merge of the two on close, do not
    with (
        pytest.raises(JournalError, match=r"could not record") as raised,
        RowJournal(tmp_path, job_id="j", flush_interval_s=0.0) as journal,
    ):
        run(echo, journal, texts(200))
    error = raised.value
    cause = error.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    assert cause.filename is not None and str(tmp_path) in cause.filename
    assert cause.filename in str(error)  # the message names the file it could not write
    # close() failed too (its merge could not be written): noted, not raised instead.
    if sys.version_info >= (3, 11):  # exceptions carry notes since 3.11 (else: a warning)
        notes: list[str] = getattr(error, "__notes__", [])
        assert any("closing the journal failed too" in note for note in notes)


def test_close_on_a_full_disk_raises_a_journal_error_naming_the_path(
    tmp_path: Path, disk_room: list[int]
) -> None:
    journal = RowJournal(tmp_path, job_id="j")
    journal.record([success(n, "x") for n in range(5)])
    journal.record([success(n, "y") for n in range(5, 10)])
    disk_room[0] = 0
    with pytest.raises(JournalError, match="could not merge or compact") as raised:
        journal.close()
    cause = raised.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    assert cause.filename is not None and cause.filename in str(raised.value)
    assert len(journal_files(tmp_path)) == 2  # every recorded row is kept


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs), where root may mount one."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_raises_the_journal_error_naming_the_path(
    echo: Emulator, tiny_tmpfs: Path
) -> None:
    rows = [f"{n:05d} " + "y" * 2000 for n in range(400)]  # far more than 256 KiB of answers
    with (
        pytest.raises(JournalError) as raised,
        RowJournal(tiny_tmpfs, job_id="j", flush_interval_s=0.0) as journal,
    ):
        run(echo, journal, rows, claim_store="off")  # (the claims file fills it too: below)
    cause = raised.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    assert cause.filename is not None and cause.filename.startswith(str(tiny_tmpfs))
    assert cause.filename in str(raised.value)


def test_a_full_disk_under_the_row_claims_stops_the_run_naming_the_claims_file(
    echo: Emulator, tmp_path: Path, tiny_tmpfs: Path
) -> None:
    claims = tiny_tmpfs / "claims.sqlite"
    rows = [f"{n:05d}" for n in range(2000)]  # each claim a transaction: the WAL fills it
    with (
        pytest.raises(ClaimStoreError) as raised,
        RowJournal(tmp_path / "journal", job_id="j", flush_interval_s=0.0) as journal,
    ):
        run(echo, journal, rows, claim_store=f"sqlite://{claims}")
    assert str(claims) in str(raised.value) and "full" in str(raised.value)
    assert isinstance(raised.value.__cause__, sqlite3.Error)
    # Stopped at once, and what was paid for is journaled (but the rows in flight).
    paid = runs_at(echo)
    with RowJournal(tmp_path / "journal", job_id="j") as reopened:
        journaled = reopened.finished_rows
    assert 0 < paid < len(rows)
    assert paid - 4 <= journaled <= paid, (paid, journaled)
