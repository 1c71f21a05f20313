"""The row journal under crashes, concurrent writers and object storage.

Real processes and real loopback HTTP, nothing mocked: a child process running ``enrich``
is killed with SIGKILL and the job resumed; several processes write one journal location and
compact it at the same time; and a run is stopped half way and resumed against an S3 server
(moto) on loopback. The last tests pin known races down deterministically, by running one
journal's compaction at the exact moment another journal is between two file operations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import runpy
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    Budget,
    FanOutStopped,
    Outcome,
    RetryPolicy,
    RowJournal,
    RowResult,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.emulator.server import EmulatorProcess
from dagster_runwf.engine.journal import JOURNAL_SCHEMA, job_folder_name
from dagster_runwf.engine.storage import TEMP_PREFIX, Storage

from ..conftest import KEY, engine_options, wait_for

NO_TIME = dt.timedelta(0)
"""``keep_recent`` that lets compaction fold jobs written moments ago."""

ECHO = {
    "id": "wf_echo",
    "service": "aitutor",
    "variables": ["text"],
    "template": "echo:{{text}}",
    "latency": {"min_s": 0.02, "max_s": 0.05},
}
WORKFLOW = AITutorWorkflow("wf_echo", ["text"])
FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


def texts(n: int) -> list[str]:
    return [f"row-{i:04d}" for i in range(n)]


def input_hash(text: str) -> str:
    return WORKFLOW.prepare({"text": text}).input_hash


def emulator_sha(text: str) -> str:
    """The emulator's key of a row's request body (as in ``runs_by_sha256``)."""
    content = WORKFLOW.prepare({"text": text}).request.content
    assert content is not None
    return hashlib.sha256(content).hexdigest()


def answer(result: Any) -> str:
    """The rendered template, without the emulator's digest suffix."""
    return str(result).split(" [")[0]


def total_runs(stats: dict[str, Any]) -> int:
    return sum(stats["runs_by_sha256"].values())


def local_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(published files, leftover temporaries) below ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    temps = [p for p in files if p.name.startswith(TEMP_PREFIX)]
    return sorted(set(files) - set(temps)), temps


def finish(process: subprocess.Popen[bytes], timeout: float) -> tuple[str, str]:
    """Wait for a child (killing it on a timeout); its decoded stdout and stderr."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


# -- kill -9 mid-run, then resume -------------------------------------------------------------

ENRICH_CHILD = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    from dagster_runwf import AITutorWorkflow, EngineOptions, RetryPolicy, RowJournal, enrich

    url, journal_dir, destination, rows, concurrency = sys.argv[1:6]
    frame = pd.DataFrame({"text": [f"row-{i:04d}" for i in range(int(rows))]})
    with RowJournal(journal_dir, job_id="nightly") as journal:
        enrich(
            frame,
            AITutorWorkflow("wf_echo", ["text"]),
            EngineOptions(
                api_key=os.environ["RUNWF_TEST_KEY"],
                base_url=url,
                rate="unlimited",
                concurrency=int(concurrency),
                retry=RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05),
            ),
            journal=journal,
            destination=destination,
        )
    """
)


def test_kill_9_mid_run_then_resume_pays_again_only_for_unjournaled_rows(
    tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    emu = emulator_process
    rows, concurrency, kill_after = 400, 8, 150
    journal_dir = tmp_path / "journal"
    destination = tmp_path / "out" / "results.parquet"
    script = tmp_path / "enrich_child.py"
    script.write_text(ENRICH_CHILD, encoding="utf-8")
    args = [emu.aitutor_url, str(journal_dir), str(destination), str(rows), str(concurrency)]
    child = subprocess.Popen(
        [sys.executable, str(script), *args],
        env={**os.environ, "RUNWF_TEST_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def enough_runs() -> bool:
            if child.poll() is not None:
                raise AssertionError(f"the child ended early: {finish(child, 10)[1]}")
            return total_runs(emu.stats()) >= kill_after

        wait_for(enough_runs, 60.0, f"{kill_after} runs at the emulator")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        finish(child, 30)
    assert child.returncode == -signal.SIGKILL

    # Requests in flight at the kill still run to the end at the server, and are paid for.
    wait_for(lambda: emu.stats()["in_flight"] == 0, 30.0, "the emulator to go idle")
    before = emu.stats()
    ran_before = set(before["runs_by_sha256"])
    assert before["duplicate_runs"] == 0
    assert kill_after <= len(ran_before) < rows, "the child was not killed mid-run"

    # No results file was published; the killed writer can only have left a temporary.
    assert not destination.exists()
    assert all(p.name.startswith(TEMP_PREFIX) for p in destination.parent.glob("*"))

    # Every journal file reads whole; a write cut by the kill is only a skipped temporary.
    published = [p for p in local_files(journal_dir)[0] if p.suffix == ".parquet"]
    assert published, "nothing was journaled before the kill"
    job_files = [p for p in published if p.parent.parent.name == "jobs"]
    assert job_files == published  # one job: no snapshot yet
    batches = [pq.read_table(p) for p in published]
    for table in batches:
        assert table.schema.names == JOURNAL_SCHEMA.names
        assert set(table.column("status").to_pylist()) == {"succeeded"}
    journaled = {h for t in batches for h in t.column("input_hash").to_pylist()}
    sha_of = {input_hash(t): emulator_sha(t) for t in texts(rows)}
    journaled_sha = {sha_of[h] for h in journaled}
    assert journaled_sha <= ran_before  # only rows that really ran are journaled
    unjournaled = ran_before - journaled_sha

    # Resume the same job in this process: only rows not journaled are sent.
    with RowJournal(journal_dir, job_id="nightly") as journal:
        assert journal.finished_rows == len(journaled)
        assert journal.spent()[0] == len(journaled)
        done = enrich(
            pd.DataFrame({"text": texts(rows)}),
            WORKFLOW,
            engine_options(emu.aitutor_url, concurrency=concurrency, retry=FAST_RETRY),
            journal=journal,
            destination=str(destination),
        )
    stats = done.stats
    assert (stats.rows, stats.succeeded, stats.failed) == (rows, rows, 0)
    assert stats.reused == len(journaled)
    assert stats.sent == rows - len(journaled)

    out = pq.read_table(destination).to_pandas()
    assert list(out["text"]) == texts(rows)
    assert (out["wf_status"] == "succeeded").all()
    assert [answer(r) for r in out["wf_result"]] == [f"echo:{t}" for t in texts(rows)]
    assert list(out["wf_input_hash"]) == [input_hash(t) for t in texts(rows)]
    assert set(out.loc[out["wf_reused"], "wf_input_hash"]) == journaled

    # At the emulator: every row ran; the rows paid twice are exactly those that had run
    # but were not journaled when the child died, and each of them was paid twice at most.
    after = emu.stats()
    runs = after["runs_by_sha256"]
    assert set(runs) == set(sha_of.values())
    assert set(runs.values()) <= {1, 2}
    twice = {sha for sha, n in runs.items() if n == 2}
    assert twice == unjournaled
    assert after["duplicate_runs"] == len(twice)
    assert total_runs(after) == rows + len(twice)
    # Rows are journaled by group commit (one write per flush interval), so a kill loses
    # the rows in flight plus the batch being written and the one gathering for the next
    # write: more than the rows in flight alone, but about one flush interval's worth.
    largest_batch = max(t.num_rows for t in batches)
    assert len(twice) <= concurrency + 3 * largest_batch


# -- several processes writing and compacting one location -----------------------------------

JOURNAL_WRITER = textwrap.dedent(
    """
    import datetime as dt
    import hashlib
    import sys
    import time
    from pathlib import Path

    from dagster_runwf import Outcome, RowJournal, RowResult

    BASE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    NO_TIME = dt.timedelta(0)  # fold old jobs however recently they were written
    SHARED = 5


    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest()


    def planned(job, writer, rank, batches, per_batch):
        \"\"\"The batches a writer records: its own rows (some failed), and in the first
        batches one row every writer shares, answered at a time that ranks the writers.\"\"\"
        plan = []
        for b in range(batches):
            batch = []
            for k in range(per_batch):
                name = f"{job}/{writer}/{b}/{k}"
                at = BASE + dt.timedelta(minutes=b)
                if (b + k) % 7 == 0:
                    batch.append(
                        RowResult(k, digest(name), "failed", error="row error",
                                  error_type="RunFailedError", attempts=1, finished_at=at)
                    )
                else:
                    outcome = Outcome(result=name, citations=(f"https://x.test/{name}",),
                                      credits=1.0)
                    batch.append(
                        RowResult(k, digest(name), "succeeded", outcome=outcome, attempts=1,
                                  latency_s=0.01, finished_at=at)
                    )
            if b < SHARED:
                outcome = Outcome(result=f"shared/{b} by {job}/{writer}")
                at = BASE + dt.timedelta(hours=1, seconds=rank)
                batch.append(RowResult(per_batch, digest(f"shared/{b}"), "succeeded",
                                       outcome=outcome, attempts=1, finished_at=at))
            plan.append(batch)
        return plan


    def barrier(folder, name, count):
        Path(folder, f"{name}-{WRITER_ID}").touch()
        deadline = time.monotonic() + 120
        while len(list(Path(folder).glob(f"{name}-*"))) < count:
            if time.monotonic() > deadline:
                sys.exit(f"barrier {name} timed out")
            time.sleep(0.002)


    if __name__ == "__main__":
        location, job, writer, rank, batches, per_batch, keep, folder, count = sys.argv[1:]
        WRITER_ID = f"{job}-{writer}"
        plan = planned(job, writer, int(rank), int(batches), int(per_batch))
        barrier(folder, "ready", int(count))
        journal = RowJournal(
            location, job_id=job, keep_jobs=int(keep), keep_recent=NO_TIME, flush_interval_s=0
        )
        for batch in plan:
            journal.record(batch)
        barrier(folder, "recorded", int(count))
        journal.close()  # every writer merges and compacts at the same moment
        print("closed")
    """
)


def test_concurrent_writers_and_compactions_lose_no_row(tmp_path: Path) -> None:
    location = tmp_path / "journal"
    script = tmp_path / "journal_writer.py"
    script.write_text(JOURNAL_WRITER, encoding="utf-8")
    plan: Any = runpy.run_path(str(script), run_name="plan")
    planned: Callable[..., list[list[RowResult]]] = plan["planned"]
    batches, per_batch = 66, 4  # 66 files: each writer also merges once mid-run (at 64)

    # Three finished jobs from earlier nights: older than anything written below, so the
    # writers' compactions must fold them into a snapshot.
    recorded: dict[str, list[RowResult]] = {}
    for night in range(3):
        job = f"old-{night}"
        with RowJournal(location, job_id=job, keep_jobs=10) as journal:
            for batch in planned(job, "0", -10 - night, 4, 6):
                journal.record(batch)
                recorded.setdefault(job, []).extend(batch)
    assert len(list((location / "jobs").iterdir())) == 3

    # Three running jobs, one of them with two writers (e.g. a retried step and a straggler).
    # keep_jobs=3 keeps exactly the running jobs whole, so only the old ones are folded.
    running = ("run-a", "run-b", "run-c")
    writers = [("run-a", "0"), ("run-a", "1"), ("run-b", "0"), ("run-c", "0")]
    sync = tmp_path / "sync"
    sync.mkdir()
    settings = [str(batches), str(per_batch), str(len(running)), str(sync), str(len(writers))]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(location), job, writer, str(rank), *settings],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for rank, (job, writer) in enumerate(writers, start=1)
    ]
    outputs = [finish(p, 120) for p in processes]
    for (job, writer), process, (out, err) in zip(writers, processes, outputs, strict=True):
        assert process.returncode == 0, f"writer {job}/{writer} failed: {err}"
        assert out.strip() == "closed"
    for rank, (job, writer) in enumerate(writers, start=1):
        for batch in planned(job, writer, rank, batches, per_batch):
            recorded.setdefault(job, []).extend(batch)

    # Every file is whole and of the journal's schema; no temporary is left behind.
    published, temps = local_files(location)
    assert temps == []
    tables = {p: pq.read_table(p) for p in published}
    assert all(t.schema.names == JOURNAL_SCHEMA.names for t in tables.values())
    snapshots = [p for p in published if p.parent.name == "snapshots"]
    assert snapshots, "the old jobs were not folded"
    for path in snapshots:
        assert set(tables[path].column("status").to_pylist()) == {"succeeded"}

    _check_folded_jobs_resume(location, recorded)
    _check_running_jobs_kept_whole(location, recorded, running, writers)

    # A new incremental job finds every success ever recorded (in a running job's folder or
    # in the snapshot), the latest one where several jobs answered the same inputs, and
    # never a failure.
    every = [r for rows in recorded.values() for r in rows]
    successes = latest_by_hash([r for r in every if r.status == "succeeded"])
    only_failed = {r.input_hash for r in every if r.input_hash} - set(successes)
    assert len(successes) > 900 and len(only_failed) > 150
    audit = RowJournal(
        location, job_id="audit", incremental=True, keep_jobs=len(running), keep_recent=NO_TIME
    )
    for key, row in successes.items():
        found = audit.lookup(key)
        assert found is not None and found.status == "succeeded", "a success was lost"
        assert result_of(found) == result_of(row)
    assert all(audit.lookup(key) is None for key in only_failed)
    shared = [k for k, r in successes.items() if result_of(r).startswith("shared/")]
    assert sorted(result_of(successes[k]) for k in shared) == [
        f"shared/{b} by run-c/0" for b in range(5)
    ]

    # Compacting once more leaves one snapshot, and still loses nothing.
    audit.compact()
    assert len(list((location / "snapshots").iterdir())) == 1
    again = RowJournal(location, job_id="audit-2", incremental=True)
    assert all(again.lookup(key) is not None for key in successes)


def _check_folded_jobs_resume(location: Path, recorded: dict[str, list[RowResult]]) -> None:
    """The old jobs were folded, and each still resumes from the snapshot."""
    for night in range(3):
        assert not (location / "jobs" / job_folder_name(f"old-{night}")).exists()
        # A folded job still resumes from the snapshot: its own successes are found (an
        # input other jobs answered later keeps only the latest answer); failures are not.
        folded = RowJournal(location, job_id=f"old-{night}")
        answered_later = {
            r.input_hash for job, rows in recorded.items() if job != f"old-{night}" for r in rows
        }
        for row in recorded[f"old-{night}"]:
            found = folded.lookup(row.input_hash) if row.input_hash else None
            if row.status == "failed":
                assert found is None
            elif row.input_hash not in answered_later:
                assert found is not None and found.status == "succeeded"


def _check_running_jobs_kept_whole(
    location: Path,
    recorded: dict[str, list[RowResult]],
    running: Sequence[str],
    writers: Sequence[tuple[str, str]],
) -> None:
    """The running jobs were kept whole: each writer's files merged into one, and a fresh
    journal of the job finds every row it recorded, failures included."""
    for job in running:
        folder = location / "jobs" / job_folder_name(job)
        assert len(list(folder.iterdir())) == sum(1 for j, _ in writers if j == job)
        resumed = RowJournal(location, job_id=job)
        mine = recorded[job]
        assert resumed.spent()[0] == len(mine)
        assert resumed.finished_rows == len({r.input_hash for r in mine})
        expected = latest_by_hash(mine)
        for key, row in expected.items():
            found = resumed.lookup(key)
            assert found is not None, f"{job} lost a row"
            assert (found.status, found.error) == (row.status, row.error)
            assert result_of(found) == result_of(row)


THREAD_COUNTER = textwrap.dedent(
    """
    import datetime as dt
    import os
    import sys

    from dagster_runwf import Outcome, RowJournal, RowResult

    def threads():
        return len(os.listdir("/proc/self/task"))

    def rows(job, count):
        at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        return [RowResult(n, f"{job}-{n}".encode().hex().ljust(64, "0"), "succeeded",
                          outcome=Outcome(result=f"answer {n}"), finished_at=at)
                for n in range(count)]

    location = sys.argv[1]
    before = threads()
    for job in ("old-0", "old-1", "old-2"):
        with RowJournal(location, job_id=job, keep_jobs=10) as journal:
            journal.record(rows(job, 5))
    with RowJournal(location, job_id="run", keep_jobs=1, keep_recent=dt.timedelta(0),
                    flush_interval_s=0) as journal:
        for start in range(0, 200, 2):
            journal.record(rows("run", 200)[start:start + 2])
    reopened = RowJournal(location, job_id="next", incremental=True)
    assert reopened.reusable_rows > 0
    print(before, threads())
    """
)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_journal_starts_no_thread_that_could_abort_the_process_at_exit(
    tmp_path: Path,
) -> None:
    """Arrow's reader threads can abort a process exiting right after a read
    (apache/arrow#34314): the journal reads, merges and compacts on the calling thread."""
    script = tmp_path / "thread_counter.py"
    script.write_text(THREAD_COUNTER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "journal")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split()
    assert after == before, "a thread was started while opening, merging or compacting"
    assert list((tmp_path / "journal" / "snapshots").iterdir()), "nothing was compacted"


def latest_by_hash(rows: list[RowResult]) -> dict[str, RowResult]:
    """Per input, the row that finished last."""
    latest: dict[str, RowResult] = {}
    for row in rows:
        assert row.input_hash is not None
        seen = latest.get(row.input_hash)
        if seen is None or seen.finished_at <= row.finished_at:
            latest[row.input_hash] = row
    return latest


def result_of(row: RowResult) -> str:
    return "" if row.outcome is None else str(row.outcome.result)


# -- object storage ---------------------------------------------------------------------------


def object_keys(client: Any, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket="bucket", Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_stopped_run_resumes_from_a_journal_in_object_storage(
    start_emulator: Callable[..., Emulator], s3: dict[str, Any]
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    client, options = s3["client"], s3["options"]
    rows, first_budget, concurrency = 60, 25, 8
    frame = pd.DataFrame({"text": texts(rows)})
    settings: dict[str, Any] = {
        "destination": "s3://bucket/out/results.parquet",
        "storage_options": options,
    }
    engine = engine_options(emu.aitutor_url, concurrency=concurrency, retry=FAST_RETRY)

    def journal(job_id: str, incremental: bool = False, keep_jobs: int = 2) -> RowJournal:
        return RowJournal(
            "s3://bucket/journal",
            job_id=job_id,
            incremental=incremental,
            keep_jobs=keep_jobs,
            keep_recent=NO_TIME,
            storage_options=options,
            flush_interval_s=0.05,
        )

    # Stopped by the budget half way: finished rows are journaled, no results object yet.
    with journal("night-1") as first, pytest.raises(FanOutStopped) as stopped:
        enrich(
            frame, WORKFLOW, engine, journal=first, budget=Budget(max_runs=first_budget), **settings
        )
    assert stopped.value.stats is not None and stopped.value.stats.sent == first_budget
    assert total_runs(emu.stats()) == first_budget
    assert object_keys(client, "out/") == []
    assert client.list_multipart_uploads(Bucket="bucket").get("Uploads", []) == []
    keys = object_keys(client, "journal/")
    job_prefix = f"journal/jobs/{job_folder_name('night-1')}/"
    assert keys and all(k.startswith(job_prefix) and k.endswith(".parquet") for k in keys)
    assert len(keys) == 1, "closing did not merge the writer's objects into one"
    journaled = set()
    for key in keys:
        body = client.get_object(Bucket="bucket", Key=key)["Body"].read()
        journaled |= set(pq.read_table(io.BytesIO(body)).column("input_hash").to_pylist())
    assert len(journaled) == first_budget

    # The rerun with a larger budget sends only the remaining rows.
    with journal("night-1") as second:
        assert second.finished_rows == first_budget
        done = enrich(
            frame, WORKFLOW, engine, journal=second, budget=Budget(max_runs=rows), **settings
        )
    assert (done.stats.sent, done.stats.reused, done.stats.succeeded) == (
        rows - first_budget,
        first_budget,
        rows,
    )
    emulated = emu.stats()
    assert total_runs(emulated) == rows and emulated["duplicate_runs"] == 0
    assert object_keys(client, "out/") == ["out/results.parquet"]
    body = client.get_object(Bucket="bucket", Key="out/results.parquet")["Body"].read()
    out = pq.read_table(io.BytesIO(body)).to_pandas()
    assert list(out["text"]) == texts(rows)
    assert (out["wf_status"] == "succeeded").all()
    assert [answer(r) for r in out["wf_result"]] == [f"echo:{t}" for t in texts(rows)]
    assert set(out.loc[out["wf_reused"], "wf_input_hash"]) == journaled
    assert done.to_pandas().equals(out)

    # An incremental job on the next night reuses every answer: nothing is paid.
    settings["destination"] = "s3://bucket/out/night-2.parquet"
    with journal("night-2", incremental=True) as third:
        assert third.reusable_rows == rows
        again = enrich(frame, WORKFLOW, engine, journal=third, **settings)
    assert (again.stats.sent, again.stats.reused) == (0, rows)
    assert total_runs(emu.stats()) == rows
    assert list(again.to_pandas()["wf_result"]) == list(out["wf_result"])

    # A third night with five new rows pays for those alone; with keep_jobs=1 its close
    # folds the first night's objects into a snapshot object, and nothing is lost.
    grown = pd.DataFrame({"text": texts(rows + 5)})
    settings["destination"] = "s3://bucket/out/night-3.parquet"
    with journal("night-3", incremental=True, keep_jobs=1) as fourth:
        grew = enrich(grown, WORKFLOW, engine, journal=fourth, **settings)
    assert (grew.stats.sent, grew.stats.reused) == (5, rows)
    assert total_runs(emu.stats()) == rows + 5
    assert object_keys(client, job_prefix) == []
    snapshots = object_keys(client, "journal/snapshots/")
    assert len(snapshots) == 1
    body = client.get_object(Bucket="bucket", Key=snapshots[0])["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == rows
    audit = journal("audit", incremental=True)
    assert all(audit.lookup(input_hash(t)) is not None for t in texts(rows + 5))


# -- known races, pinned down step by step ----------------------------------------------------


def digest(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def success(tag: str) -> RowResult:
    return RowResult(0, digest(tag), "succeeded", outcome=Outcome(result=tag))


def test_a_compaction_elsewhere_never_fails_a_running_jobs_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = RowJournal(
        tmp_path, job_id="quiet", keep_jobs=1, keep_recent=NO_TIME
    )  # running, between writes
    quiet.record([success("q1")])
    other = RowJournal(tmp_path, job_id="other", keep_jobs=1, keep_recent=NO_TIME)
    other.record([success("o1")])
    mkdir = Path.mkdir
    folded: list[int] = []

    def mkdir_then_compact(self: Path, *args: Any, **kwargs: Any) -> None:
        mkdir(self, *args, **kwargs)
        if self.name == job_folder_name("quiet"):
            monkeypatch.setattr(Path, "mkdir", mkdir)
            folded.append(other.compact())  # another process, at that very moment

    monkeypatch.setattr(Path, "mkdir", mkdir_then_compact)
    quiet.record([success("q2")])
    if folded != [1]:
        pytest.fail(f"the interleaving did not happen as planned: {folded}")
    assert quiet.lookup(digest("q2")) is not None


def test_an_incremental_job_opened_during_a_compaction_sees_every_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for job in ("old", "mid"):
        with RowJournal(tmp_path, job_id=job, keep_jobs=10) as journal:
            journal.record([success(job)])
    compactor = RowJournal(tmp_path, job_id="new", keep_jobs=1, keep_recent=NO_TIME)
    compactor.record([success("new")])
    list_folders = Storage.list_folders
    folded: list[int] = []

    def compact_then_list(self: Storage, folder: str) -> list[str]:
        if not folded and folder.endswith("/jobs"):
            folded.append(-1)
            folded[0] = compactor.compact()  # another process, at that very moment
        return list_folders(self, folder)

    monkeypatch.setattr(Storage, "list_folders", compact_then_list)
    reader = RowJournal(tmp_path, job_id="next", incremental=True)
    if folded != [2]:
        pytest.fail(f"the interleaving did not happen as planned: {folded}")
    for job in ("old", "mid", "new"):
        assert reader.lookup(digest(job)) is not None, f"{job} is hidden"


def test_a_job_folder_removed_mid_walk_by_another_compaction_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RowJournal(tmp_path, job_id="kept", keep_jobs=10) as journal:
        journal.record([success("kept")])
    with RowJournal(tmp_path, job_id="folded", keep_jobs=10) as journal:
        journal.record([success("folded")])
    vanishing = tmp_path / "jobs" / job_folder_name("folded")
    scandir = os.scandir

    def remove_then_scan(path: Any = ".") -> Any:
        if Path(path) == vanishing and vanishing.exists():
            for file in vanishing.iterdir():  # another process's compaction, at that moment
                file.unlink()
            vanishing.rmdir()
        return scandir(path)

    monkeypatch.setattr(os, "scandir", remove_then_scan)
    storage = Storage(tmp_path)
    assert storage.remove_stale_temporaries(storage.root) == 0
    assert not vanishing.exists()
    assert [Path(f).parent.name for f in storage.list_files(storage.path("jobs"))] == [
        job_folder_name("kept")
    ]
