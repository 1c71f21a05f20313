"""``runwf enrich --land-partial`` and ``runwf export``: a stopped run's finished rows in
OUTPUT (the others ``pending``) while the exit status still says it stopped, and a job's
journaled rows written as a results table at any time — after a stop or a kill -9."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.table import result_fields

from ..conftest import ECHO, KEY, published_journal_files
from .test_cli import (
    ENRICH_ECHO,
    SLOW_ECHO,
    environment,
    finish,
    runwf,
    start_echo_enrich,
    wait_for_runs,
)

TEXTS = [f"row-{i:02d}" for i in range(12)]
ENRICH = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
ONE_AT_A_TIME = ["--concurrency", "1", "--rate", "unlimited", "--quiet"]


def write_input(folder: Path, texts: list[str], name: str = "in.csv") -> None:
    pd.DataFrame({"text": texts}).to_csv(folder / name, index=False)


def journal_rows(folder: Path) -> pd.DataFrame:
    """What the journal's files hold (the latest row per input), read directly."""
    files = published_journal_files(folder / "out.parquet.journal")
    table = pa.concat_tables([pq.read_table(p) for p in files]).to_pandas()
    return table.sort_values("finished_at").drop_duplicates("input_hash", keep="last")


def check_partial(out: pd.DataFrame, finished: int) -> None:
    assert list(out["text"]) == TEXTS, "every input row, in input order"
    assert list(out["wf_status"]) == ["succeeded"] * finished + ["pending"] * (
        len(TEXTS) - finished
    )
    pending = out[out["wf_status"] == "pending"]
    assert pending["wf_result"].isna().all() and pending["wf_input_hash"].isna().all()
    assert [len(cell) for cell in pending["wf_citations"]] == [0] * (len(TEXTS) - finished)


STOPS = {
    # how the run stops: (the emulator's credits, extra flags, rows finished, the message)
    "no_credits": (5, [], 5, "credits"),
    "budget": (None, ["--max-runs", "4"], 4, "budget"),
}


@pytest.mark.parametrize("stop", list(STOPS))
def test_land_partial_writes_the_finished_rows_and_still_exits_1(
    stop: str, start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    credits, flags, finished, message = STOPS[stop]
    emu = start_emulator(
        workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {"credits": credits}}
    )
    write_input(tmp_path, TEXTS)
    stopped = runwf(
        *ENRICH, *ONE_AT_A_TIME, *flags, "--land-partial", env=environment(emu), cwd=tmp_path
    )
    assert stopped.returncode == 1
    assert message in stopped.error_line().lower()
    assert (
        f"wrote {finished} finished rows and {len(TEXTS) - finished} pending rows" in stopped.stdout
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    check_partial(out, finished)
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert [schema.field(f.name) for f in result_fields()] == result_fields()

    # Without --land-partial, the same stop writes nothing (the finished rows stay in the
    # journal).
    os.remove(tmp_path / "out.parquet")
    again = runwf(*ENRICH, *ONE_AT_A_TIME, *flags, env=environment(emu), cwd=tmp_path)
    assert again.returncode == 1 and message in again.error_line().lower()
    assert not (tmp_path / "out.parquet").exists()


def test_a_fatal_401_mid_run_lands_the_rows_finished_before_it(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    job = ["--job-id", "one-job"]
    # The first 5 rows are answered by a first run of the job; then the key is refused
    # (401) at its first request, so the second run stops after the 5 rows the journal
    # answered.
    write_input(tmp_path, TEXTS[:5], "first.csv")
    first = ["enrich", "first.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    assert runwf(*first, *ONE_AT_A_TIME, *job, env=environment(emu), cwd=tmp_path).returncode == 0
    emu.update_config({"faults": {"fail_attempts": 1000, "error_status": 401}})
    write_input(tmp_path, TEXTS)
    stopped = runwf(
        *ENRICH, *ONE_AT_A_TIME, *job, "--land-partial", env=environment(emu), cwd=tmp_path
    )
    assert stopped.returncode == 1 and "401" in stopped.error_line()
    out = pd.read_parquet(tmp_path / "out.parquet")
    check_partial(out, 5)
    assert out["wf_reused"].sum() == 5


def test_export_writes_what_a_stopped_runs_journal_holds(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {"credits": 7}})
    write_input(tmp_path, [*TEXTS[:3], "bad one", *TEXTS[3:]])
    stopped = runwf(*ENRICH, *ONE_AT_A_TIME, env=environment(emu), cwd=tmp_path)
    assert stopped.returncode == 1 and not (tmp_path / "out.parquet").exists()

    exported = runwf(
        "export", "out.parquet.journal", "export.parquet", env=environment(None), cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    assert "7 rows of job" in exported.stdout
    table = pq.read_table(tmp_path / "export.parquet")
    assert table.schema == pa.schema(result_fields())
    got = table.to_pandas()
    journal = journal_rows(tmp_path)
    assert list(got["wf_input_hash"]) == list(journal["input_hash"]), "as journaled, in order"
    assert list(got["wf_status"]) == list(journal["status"])
    assert list(got["wf_result"]) == list(journal["result"])
    assert got["wf_status"].value_counts().to_dict() == {"succeeded": 6, "failed": 1}
    assert not got["wf_reused"].any()


def test_export_of_a_killed_run_gives_the_rows_its_journal_holds(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[SLOW_ECHO], rate_limit_enabled=False)
    running = start_echo_enrich(emu, tmp_path, [f"row-{i:04d}" for i in range(200)], 4)
    wait_for_runs(emu, running, 40, 30)
    os.kill(running.process.pid, signal.SIGKILL)
    finish(running, timeout=30)
    journal = journal_rows(tmp_path)
    assert 0 < len(journal) < 200

    exported = runwf(
        "export", "out.parquet.journal", "export.parquet", env=environment(None), cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    got = pd.read_parquet(tmp_path / "export.parquet")
    assert list(got["wf_input_hash"]) == list(journal["input_hash"])
    assert [list(c) for c in got["wf_citations"]] == [list(c) for c in journal["citations"]]


def test_export_lists_jobs_and_picks_one(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    write_input(tmp_path, TEXTS)
    for job, rows in (("older", 3), ("newer", 5)):
        write_input(tmp_path, TEXTS[:rows])
        done = runwf(*ENRICH, *ONE_AT_A_TIME, "--job-id", job, env=environment(emu), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    listed = runwf("export", "out.parquet.journal", "--list", env=environment(None), cwd=tmp_path)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["older", "newer"]
    picks: list[tuple[list[str], int]] = [([], 5), (["--job", "older"], 3)]
    for pick, rows in picks:
        done = runwf(
            "export", "out.parquet.journal", "x.parquet", *pick, env=environment(None), cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert pq.read_metadata(tmp_path / "x.parquet").num_rows == rows
    unknown = runwf(
        "export",
        "out.parquet.journal",
        "x.parquet",
        "--job",
        "nope",
        env=environment(None),
        cwd=tmp_path,
    )
    assert unknown.returncode == 2 and "'newer'" in unknown.error_line()
