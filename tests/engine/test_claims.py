"""Row claims: two writers of one job never pay for one row at once.

The stores (SQLite, and a real Redis server), the journal's refresh that finds rows other
writers recorded, and the engine end to end: two ``enrich()`` calls in two processes on one
journal job, and a writer killed with ``kill -9`` whose rows the other takes over once its
claims expire. The emulator runs in its own process and counts, server side, how often each
row ran.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    Budget,
    BudgetReachedError,
    ConfigError,
    FanOutStopped,
    RowJournal,
    RowResult,
    RunchatWorkflow,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.emulator.server import EmulatorProcess
from dagster_runwf.engine.claims import (
    ClaimStore,
    RedisClaimStore,
    RowClaims,
    SqliteClaimStore,
)
from dagster_runwf.engine.claims.opening import LOCAL_FILE
from dagster_runwf.engine.journal import loading
from dagster_runwf.engine.journal.damage import read_or_set_aside
from dagster_runwf.services.outcome import Outcome

from ..conftest import COSTLY, KEY, engine_options, published_journal_files, wait_for
from .test_journal_durability import WORKFLOW, emulator_sha, input_hash, texts

ECHO = {
    "id": "wf_echo",
    "service": "aitutor",
    "variables": ["text"],
    "template": "echo:{{text}}",
    "latency": {"min_s": 0.02, "max_s": 0.05},
}


# -- the stores --------------------------------------------------------------------------------


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_sqlite_claim_is_held_renewed_released_and_taken_over(tmp_path: Path) -> None:
    clock = Clock()
    first = SqliteClaimStore(tmp_path / "claims.sqlite", clock=clock)
    second = SqliteClaimStore(tmp_path / "claims.sqlite", clock=clock)  # another process
    won = first.claim("job", "row", "a", ttl_s=10)
    assert won.won and not won.seen_before
    lost = second.claim("job", "row", "b", ttl_s=10)
    assert not lost.won and lost.holder == "a"
    assert second.holder("job", "row") == "a"
    assert second.claim("other job", "row", "b", ttl_s=10).won  # jobs do not share rows

    clock.now += 8
    first.renew("job", "a", ttl_s=10)  # the heartbeat
    clock.now += 8
    assert not second.claim("job", "row", "b", ttl_s=10).won

    first.release("job", "a", ["row"])
    assert second.holder("job", "row") is None
    again = second.claim("job", "row", "b", ttl_s=10)
    assert again.won and again.seen_before  # answered: look in the journal first

    clock.now += 11  # b died: its claim lapsed
    assert first.holder("job", "row") is None
    taken = first.claim("job", "row", "a", ttl_s=10)
    assert taken.won and taken.seen_before
    second.release("job", "b", ["row"])  # b no longer holds it: nothing changes
    assert first.holder("job", "row") == "a"


def check_run_count(store: ClaimStore, scope: str) -> None:
    def runs(amount: float, at_least: float, limit: float | None) -> tuple[bool, float]:
        return store.add_spent(scope, "runs", amount, at_least=at_least, limit=limit)

    assert runs(1, 3, 5) == (True, 4)  # 3 in the journal
    assert runs(1, 3, 5) == (True, 5)
    assert runs(1, 3, 5) == (False, 5)
    assert runs(-1, 3, 5) == (True, 4)  # one was not sent
    assert runs(1, 0, None) == (True, 5)

    def credits(amount: float, limit: float | None) -> tuple[bool, float]:
        return store.add_spent(scope, "credits", amount, at_least=0.5, limit=limit)

    assert credits(2.25, 5) == (True, 2.75)  # counted apart from the runs, as fractions
    assert credits(2.5, 5) == (False, 2.75)
    assert credits(2.25, 5) == (True, 5.0)
    assert credits(0, 5) == (False, 5.0), "at the cap: not even a run of unknown cost"
    assert credits(-1.5, None) == (True, 3.5)  # set aside, but cost less


def test_a_sqlite_store_counts_a_job_s_runs_for_every_writer(tmp_path: Path) -> None:
    check_run_count(SqliteClaimStore(tmp_path / "claims.sqlite"), "job")


def test_a_redis_claim_is_held_released_and_taken_over(redis_url: str) -> None:
    first, second = RedisClaimStore(redis_url), RedisClaimStore(redis_url)
    won = first.claim("rjob", "row", "a", ttl_s=60)
    assert won.won and not won.seen_before
    lost = second.claim("rjob", "row", "b", ttl_s=60)
    assert not lost.won and lost.holder == "a"
    assert second.holder("rjob", "row") == "a"
    first.renew("rjob", "a", ttl_s=60)
    first.release("rjob", "a", ["row"])
    assert second.holder("rjob", "row") is None
    again = second.claim("rjob", "row", "b", ttl_s=0.05)
    assert again.won and again.seen_before

    # b stops renewing: once its claim lapses on the server's clock, a takes the row over.
    def taken() -> bool:
        claim = first.claim("rjob", "row", "a", ttl_s=60)
        return claim.won and claim.seen_before

    wait_for(taken, 10, "b's claim to lapse")
    assert first.holder("rjob", "row") == "a"
    check_run_count(first, "rjob-runs")


# -- the journal sees what other writers recorded ---------------------------------------------


def finished(text: str) -> RowResult:
    prepared = WORKFLOW.prepare({"text": text})
    return RowResult(0, prepared.input_hash, "succeeded", Outcome(result=f"echo:{text}"))


def test_a_journal_refresh_reads_rows_other_writers_recorded_since(tmp_path: Path) -> None:
    reader = RowJournal(tmp_path, job_id="j")
    writer = RowJournal(tmp_path, job_id="j")
    other_version = RowJournal(tmp_path, job_id="j", version="v2")
    row, stale = finished("a"), finished("b")
    writer.record([row])
    other_version.record([stale])
    assert reader.lookup(str(row.input_hash)) is None  # read when it opened
    assert reader.refresh() == 1
    found = reader.lookup(str(row.input_hash))
    assert found is not None and found.outcome == row.outcome
    assert reader.lookup(str(stale.input_hash)) is None  # another version: never reused
    assert reader.refresh() == 0  # nothing new
    reader.record([finished("c")])
    assert reader.refresh() == 0  # its own files are not read again
    for journal in (reader, writer, other_version):
        journal.close()  # merges each writer's files: a refresh reads the merged file
    assert reader.claim_scope == writer.claim_scope != other_version.claim_scope


def test_a_journal_opens_while_other_writers_merge_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four writers of the job, two files each. Each time the opening journal reads the first
    # file, another writer closes (merging its two files into one, then deleting them), so
    # a file listed is gone when read. Opening used to start over on such a file, up to 3
    # times, then fail with FileNotFoundError (a writer of the claims tests did, on CI).
    writers = [RowJournal(tmp_path, job_id="j") for _ in range(4)]
    rows = [finished(f"{n}-{i}") for n in range(4) for i in range(2)]
    for n, writer in enumerate(writers):
        for i in range(2):
            writer.record([rows[2 * n + i]])
    first = min(published_journal_files(tmp_path))
    closing = list(reversed(writers))  # the last files listed go first

    def read_while_writers_merge(storage: Any, path: str) -> Any:
        if path == str(first) and closing:
            closing.pop(0).close()
        return read_or_set_aside(storage, path)

    monkeypatch.setattr(loading, "read_or_set_aside", read_while_writers_merge)
    with RowJournal(tmp_path, job_id="j") as opened:
        assert all(opened.lookup(str(row.input_hash)) is not None for row in rows)
    assert len(closing) == 3, "one writer merged while the journal opened"
    for writer in writers:
        writer.close()


def test_every_writer_counts_its_runs_for_the_job_s_budget(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    with RowJournal(tmp_path, job_id="j") as journal:  # no budget of its own
        enrich(pd.DataFrame({"text": texts(20)}), WORKFLOW, engine_options(emu.aitutor_url),
               journal=journal)  # fmt: skip
        scope = journal.claim_scope
    store = SqliteClaimStore(tmp_path / LOCAL_FILE)
    assert store.add_spent(scope, "runs", 0, at_least=0, limit=None) == (True, 20)
    # So a writer with a budget, running beside it, would have had 20 runs spent.
    assert store.add_spent(scope, "runs", 1, at_least=0, limit=20) == (False, 20)


@pytest.mark.parametrize("store", ["auto", "redis"])
def test_two_writers_with_a_credit_budget_spend_it_together(
    start_emulator: Callable[..., Emulator], tmp_path: Path, store: str, request: Any
) -> None:
    # Two writers of one job at once, each with max_credits=40 (runs of 3 credits): 40
    # credits in all, give or take one run each (one run of unknown cost each; up to 80
    # before the credits were counted across writers).
    claim_store = request.getfixturevalue("redis_url") if store == "redis" else "auto"
    emu = start_emulator(workflows=[COSTLY], rate_limit_enabled=False)
    frame = pd.DataFrame({"text_n1": [f"row {i}" for i in range(100)]})
    options = engine_options(emu.runchat_url, concurrency=6, claim_store=claim_store)

    def writer(budget: Budget | None) -> BaseException | None:
        try:
            with RowJournal(tmp_path, job_id="j") as journal:
                enrich(frame, RunchatWorkflow("costly", ["text_n1"]), options,
                       budget=budget, journal=journal)  # fmt: skip
        except FanOutStopped as stopped:
            return stopped.cause
        return None

    with ThreadPoolExecutor(2) as pool:
        stops = list(pool.map(writer, [Budget(max_credits=40)] * 2))
    assert all(isinstance(s, BudgetReachedError) for s in stops), stops
    paid = sum(emu.stats()["runs_by_sha256"].values())
    assert 40 - 3 <= 3 * paid <= 40 + 2 * 3, paid
    assert max(s.credits_spent for s in stops if isinstance(s, BudgetReachedError)) >= 37


class SlowToClaim:
    """A claim store whose claim of one row waits, once, for ``before`` to run first."""

    def __init__(self, store: ClaimStore, key: str, before: Callable[[], None]) -> None:
        self.store, self.key = store, key
        self.before: Callable[[], None] | None = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def claim(self, scope: str, key: str, holder: str, ttl_s: float) -> Any:
        if key == self.key and self.before is not None:
            before, self.before = self.before, None
            before()
        return self.store.claim(scope, key, holder, ttl_s)


async def test_a_claim_won_from_a_writer_that_answered_reads_the_journal_again(
    tmp_path: Path,
) -> None:
    # Writer A holds rows a and b; writer B waits for both. B asks for a's claim again; a
    # journal read for b begins; only then does A journal a and release it; B wins a's
    # claim. The read for b began after B asked for a, but before a was journaled: B must
    # read the journal again, not pay for a (it did: one row paid twice in ~half the runs
    # of two enrich processes).
    store = SqliteClaimStore(tmp_path / "claims.sqlite")
    reader, writer = RowJournal(tmp_path, job_id="j"), RowJournal(tmp_path, job_id="j")
    a, b = finished("a"), finished("b")
    key_a, key_b = str(a.input_hash), str(b.input_hash)
    for key in (key_a, key_b):
        assert store.claim(reader.claim_scope, key, "A", 60).won
    read_began = threading.Event()
    refresh = reader.refresh

    def signalling_refresh() -> int:
        read = refresh()
        read_began.set()  # (set once read: a row journaled from now on is not in this read)
        return read

    def a_answers_after_a_read_began() -> None:
        assert read_began.wait(10)
        writer.record([a])
        store.release(writer.claim_scope, "A", [key_a])

    reader.refresh = signalling_refresh  # type: ignore[method-assign]
    claims = RowClaims(
        lambda: SlowToClaim(store, key_a, a_answers_after_a_read_began),
        reader.claim_scope,
        reader,
        ttl_s=60,
        stopped=lambda: False,
    )
    waiting_b = asyncio.create_task(claims.claim(key_b))
    answered = await asyncio.wait_for(claims.claim(key_a), 20)
    assert answered is not None and answered.outcome == a.outcome
    assert not claims.holds(key_a)
    waiting_b.cancel()
    await claims.close()
    for journal in (reader, writer):
        journal.close()


# -- settings --------------------------------------------------------------------------------


def test_a_claim_store_that_is_not_understood_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="claim store 'postgres://x' is not supported"):
        engine_options(None, claim_store="postgres://x")
    with pytest.raises(ConfigError, match="claim_ttl_s"):
        engine_options(None, claim_ttl_s=0)


def test_a_journal_in_object_storage_without_a_claim_store_warns_once(
    start_emulator: Callable[..., Emulator], caplog: pytest.LogCaptureFixture
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    frame = pd.DataFrame({"text": texts(3)})
    with caplog.at_level(logging.WARNING, logger="dagster_runwf.engine.claims"):
        for _ in range(2):
            with RowJournal("memory://claims-warning/journal", job_id="j") as journal:
                enrich(frame, WORKFLOW, engine_options(emu.aitutor_url), journal=journal)
    warnings = [r for r in caplog.records if "not coordinated" in r.getMessage()]
    assert len(warnings) == 1


# -- two writers of one job, in two processes --------------------------------------------------

ENRICH_CHILD = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    from dagster_runwf import AITutorWorkflow, EngineOptions, RowJournal, enrich

    url, journal_dir, destination, rows, concurrency, claim_store, ttl = sys.argv[1:8]
    frame = pd.DataFrame({"text": [f"row-{i:04d}" for i in range(int(rows))]})
    with RowJournal(journal_dir, job_id="nightly") as journal:
        print("opened", flush=True)
        done = enrich(
            frame,
            AITutorWorkflow("wf_echo", ["text"]),
            EngineOptions(
                api_key=os.environ["RUNWF_TEST_KEY"],
                base_url=url,
                rate="unlimited",
                concurrency=int(concurrency),
                claim_store=claim_store,
                claim_ttl_s=float(ttl),
            ),
            journal=journal,
            destination=destination,
        )
    print(done.stats.sent, done.stats.reused)
    """
)


@pytest.fixture
def slow_emulator_process() -> Iterator[EmulatorProcess]:
    """The same with runs of 0.1-0.2 s, so that a writer is still busy when another starts."""
    slow = {**ECHO, "latency": {"min_s": 0.1, "max_s": 0.2}}
    emu = Emulator.in_subprocess(
        {"workflows": [slow], "rate_limit_enabled": False, "keys": {KEY: {}}}
    )
    try:
        yield emu
    finally:
        emu.close()


class Writer:
    """One ``enrich()`` of the job "nightly" in a child process."""

    def __init__(
        self, tmp_path: Path, emu: EmulatorProcess, name: str, *settings: str, rows: int
    ) -> None:
        script = tmp_path / "enrich_child.py"
        script.write_text(ENRICH_CHILD, encoding="utf-8")
        destination = tmp_path / f"{name}.parquet"
        args = [emu.aitutor_url, str(tmp_path / "journal"), str(destination), str(rows)]
        self.destination = destination
        self.process = subprocess.Popen(
            [sys.executable, str(script), *args, *settings],
            env={**os.environ, "RUNWF_TEST_KEY": KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_until_opened(self) -> None:
        """Until the writer has opened the journal."""
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"opened\n":
            status, _, err = self.finish()
            raise AssertionError(f"the writer exited ({status}) before opening: {err}")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, out.decode(), err.decode()

    def check_full_table(self, rows: int) -> None:
        status, _, err = self.finish()
        assert status == 0, err
        out = pd.read_parquet(self.destination)
        assert list(out["text"]) == texts(rows)
        assert (out["wf_status"] == "succeeded").all()


def runs_by_row(emu: EmulatorProcess) -> dict[str, int]:
    runs: dict[str, Any] = emu.stats()["runs_by_sha256"]
    return {sha: int(n) for sha, n in runs.items()}


@pytest.mark.parametrize("store", ["auto", "redis"])
def test_two_enrich_calls_in_two_processes_pay_for_each_row_once(
    tmp_path: Path, emulator_process: EmulatorProcess, store: str, request: pytest.FixtureRequest
) -> None:
    rows = 300
    claim_store = request.getfixturevalue("redis_url") if store == "redis" else store
    settings = ("8", claim_store, "30")
    writers = [Writer(tmp_path, emulator_process, f"w{i}", *settings, rows=rows) for i in (0, 1)]
    for writer in writers:
        writer.check_full_table(rows)
    runs = runs_by_row(emulator_process)
    assert len(runs) == rows
    assert [n for n in runs.values() if n > 1] == []


def test_a_writer_killed_mid_run_has_its_rows_taken_over_by_the_other(
    tmp_path: Path, slow_emulator_process: EmulatorProcess
) -> None:
    # The claims' time to live leaves the test time to read what the killed writer
    # journaled before the survivor may take its rows over (at least 2/3 of it after the
    # kill), even on a loaded machine.
    emu, rows, concurrency, ttl_s = slow_emulator_process, 300, 8, 3.0
    settings = (str(concurrency), "auto", str(ttl_s))
    doomed = Writer(tmp_path, emu, "doomed", *settings, rows=rows)
    wait_for(lambda: sum(runs_by_row(emu).values()) >= 40, 60, "the first writer to pay")
    survivor = Writer(tmp_path, emu, "survivor", *settings, rows=rows)
    survivor.wait_until_opened()
    # The survivor waits for the rows the first writer holds (and finds them answered in
    # the journal), while the first pays for 40 more.
    paid = sum(runs_by_row(emu).values())
    wait_for(lambda: sum(runs_by_row(emu).values()) >= paid + 40, 60, "40 more runs")
    assert doomed.process.poll() is None, "the first writer finished too early"
    os.kill(doomed.process.pid, signal.SIGKILL)
    # What the killed writer journaled (the survivor takes none of its rows over before
    # their claims lapse, two seconds or more from now, so these are read first); not a
    # file it was writing when killed (a temporary, never renamed: no reader sees it).
    batches = [pq.read_table(p) for p in published_journal_files(tmp_path / "journal")]
    assert doomed.finish()[0] == -signal.SIGKILL
    journaled = {h for t in batches for h in t.column("input_hash").to_pylist()}

    # The survivor waits for the rows the killed writer held until their claims lapse
    # (one ttl without a heartbeat), then pays for them itself, and finishes.
    survivor.check_full_table(rows)
    runs = runs_by_row(emu)
    assert len(runs) == rows
    # Paid twice: only rows the killed writer was paying for, or had paid for and not yet
    # journaled, when it died (as for a kill -9 and a rerun): never a journaled row, never
    # a row both writers were paying for while both were alive.
    sha_of = {input_hash(t): emulator_sha(t) for t in texts(rows)}
    twice = {sha for sha, n in runs.items() if n > 1}
    assert set(runs.values()) <= {1, 2}
    assert not twice & {sha_of[h] for h in journaled}
    largest_batch = max(t.num_rows for t in batches)
    assert len(twice) <= concurrency + 3 * largest_batch, (len(twice), largest_batch)
