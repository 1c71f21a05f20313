"""``runwf enrich --plan`` and ``--sample N``, as real subprocesses against the emulator.

A plan pays nothing (the emulator receives no run at all) and its counts are what the run
that follows then sends and reuses, counted at the emulator: on a fresh journal, after a
partial run (some rows journaled, one failed), with duplicates and missing inputs, and with
``--retry-failed``. ``--sample N`` pays for N rows spread over the table, the first, middle
and last among them, and the full run reuses them. The expected credits come from the
journal's history (unknown until a run that reported credits is in it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from dagster_runwf.emulator import Emulator

from ..conftest import COSTLY, ECHO, KEY
from .test_cli import RUNCHAT_KEY, emulator_sha, environment, runwf

TEXTS: list[str | None] = [
    "r00", "r01", "r02", "r01", "r04", None, "r06", "r07", "r02", "r09", "r10", "bad-11",
]  # fmt: skip
"""Twelve rows: two duplicates (rows 3 and 8), a missing input (row 5), and a row the echo
workflow fails (row 11, the last, so that a sample journals a failure)."""

ECHO_COMMAND = ["enrich", "in.csv", "out.parquet", "--service", "aitutor", "--workflow", "wf_echo"]
ECHO_COMMAND += ["--map", "text=text", "--rate", "unlimited", "--on-missing", "skip"]


def runs(emu: Emulator) -> int:
    """Paid runs the emulator served, every workflow together."""
    return sum(emu.stats()["runs_by_workflow"].values())


def plan(emu: Emulator, folder: Path, *extra: str, command: list[str] = ECHO_COMMAND) -> Any:
    """The plan as JSON, checking that making it sent no request at all but the free ones."""
    before = emu.stats()
    done = runwf(*command, *extra, "--plan", "--json", env=environment(emu), cwd=folder)
    assert done.returncode == 0, done.stderr
    after = emu.stats()
    assert runs(emu) == sum(before["runs_by_workflow"].values()), "a plan paid for a run"
    paid = {k: v for k, v in after["by_endpoint"].items() if not k.endswith((".schema",))}
    assert paid == {k: v for k, v in before["by_endpoint"].items() if k in paid}, paid
    return json.loads(done.stdout)


def enrich(emu: Emulator, folder: Path, *extra: str, command: list[str] = ECHO_COMMAND) -> int:
    """Run the command; the runs it paid for, counted at the emulator."""
    before = runs(emu)
    done = runwf(*command, *extra, env=environment(emu), cwd=folder)
    assert done.returncode == 0, done.stderr
    return runs(emu) - before


def test_a_plan_pays_nothing_and_counts_what_the_run_then_sends(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    pd.DataFrame({"text": TEXTS}).to_csv(tmp_path / "in.csv", index=False)

    fresh = plan(emu, tmp_path)
    assert fresh["rows"] == 12
    assert (fresh["send"], fresh["reused"], fresh["deduplicated"]) == (9, 0, 2)
    assert (fresh["skipped"], fresh["rejected"], fresh["retried"]) == (1, 0, 0)
    assert fresh["expected_credits"] is None, "AI Tutor reports no credits per run: unknown"
    assert runs(emu) == 0

    # A partial run: three rows spread over the table, the last (which fails) among them.
    assert enrich(emu, tmp_path, "--sample", "3") == 3
    partial = plan(emu, tmp_path)
    assert (partial["send"], partial["reused"], partial["reused_failed"]) == (6, 3, 1)
    assert (partial["deduplicated"], partial["skipped"]) == (2, 1)

    assert enrich(emu, tmp_path) == partial["send"]
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert int(out["wf_reused"].sum()) == partial["reused"] + partial["deduplicated"]
    assert set(emu.stats()["runs_by_sha256"].values()) == {1}, "no row paid twice"

    # The failed row, journaled: answered by its failure, unless --retry-failed.
    again = plan(emu, tmp_path)
    assert (again["send"], again["reused"], again["reused_failed"]) == (0, 9, 1)
    assert again["expected_credits"] == 0
    retry = plan(emu, tmp_path, "--retry-failed")
    assert (retry["send"], retry["retried"], retry["reused"]) == (1, 1, 8)
    assert enrich(emu, tmp_path, "--retry-failed") == retry["send"]
    assert emu.stats()["runs_by_sha256"][emulator_sha("bad-11")] == 2

    # Under --on-missing fail the missing input is a row error: rejected (unpaid).
    strict = plan(emu, tmp_path, "--on-missing", "fail")
    assert (strict["rejected"], strict["skipped"], strict["send"]) == (1, 0, 0)


def test_a_plan_in_text_names_each_count(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    pd.DataFrame({"text": TEXTS}).to_csv(tmp_path / "in.csv", index=False)
    done = runwf(*ECHO_COMMAND, "--plan", env=environment(emu), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nothing sent" in done.stdout.splitlines()[0]
    assert "9 rows to pay for" in done.stdout
    assert "2 rows identical to an earlier row" in done.stdout
    assert "1 with a missing input (--on-missing skip)" in done.stdout
    assert "credits       unknown" in done.stdout
    assert "time          no rate limit (--rate unlimited)" in done.stdout
    paced = runwf(*ECHO_COMMAND, "--plan", "--rate", "2/min", env=environment(emu), cwd=tmp_path)
    assert "time          about 4 min at 2/min (the key's rate)" in paced.stdout, paced.stdout
    assert emu.stats()["total_requests"] == 0
    assert not (tmp_path / "out.parquet").exists()
    assert not (tmp_path / "out.parquet.journal").exists(), "a plan writes nothing"

    wrong = runwf(*ECHO_COMMAND, "--json", env=environment(emu), cwd=tmp_path)
    assert wrong.returncode == 2
    assert "--json goes with --plan" in wrong.error_line()


def test_a_sample_pays_for_rows_spread_over_the_table(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    texts = [f"row-{i:02d}" for i in range(21)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)

    assert plan(emu, tmp_path, "--sample", "5")["send"] == 5
    assert enrich(emu, tmp_path, "--sample", "5") == 5
    paid = emu.stats()["runs_by_sha256"]
    spread = [0, 5, 10, 15, 20]  # the first, the middle and the last among them
    assert sorted(paid) == sorted(emulator_sha(texts[i]) for i in spread)
    sample = pq.read_table(tmp_path / "out.sample.parquet").to_pandas()
    assert list(sample.index) == spread, "the sample's index is the rows' input positions"
    assert list(sample["text"]) == [texts[i] for i in spread]
    assert not (tmp_path / "out.parquet").exists(), "OUTPUT only ever holds the whole table"

    assert enrich(emu, tmp_path) == 16, "the full run reuses the sample's rows"
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out.loc[out["wf_reused"], "text"]) == [texts[i] for i in spread]


def test_the_expected_credits_come_from_the_journals_history(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(
        workflows=[COSTLY], rate_limit_enabled=False, keys={KEY: {}, RUNCHAT_KEY: {}}
    )
    pd.DataFrame({"text": [f"t{i}" for i in range(10)]}).to_csv(tmp_path / "in.csv", index=False)
    command = ["enrich", "in.csv", "out.parquet", "--service", "runchat", "--workflow", "costly"]
    command += ["--map", "Text=text", "--rate", "unlimited"]

    assert plan(emu, tmp_path, command=command)["expected_credits"] is None
    assert enrich(emu, tmp_path, "--sample", "2", command=command) == 2
    costed = plan(emu, tmp_path, command=command)
    assert costed["credits_per_run"] == COSTLY["credits_per_run"]
    assert costed["history_runs"] == 2
    assert costed["expected_credits"] == 8 * costed["credits_per_run"]
    spent = emu.stats()["credits_spent"]
    assert enrich(emu, tmp_path, command=command) == costed["send"]
    assert emu.stats()["credits_spent"] - spent == costed["expected_credits"]
