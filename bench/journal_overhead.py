"""Journal overhead: rows/s with and without the row journal, and the cost of resuming.

The emulator runs in its own process with no rate limit and zero latency, so the numbers
measure the client. Two parts, each contender measured in the same run:

1. Throughput: the engine (``run_workflow_rows``) and ``enrich()`` writing Parquet, each with
   no journal and with a local :class:`RowJournal` (a fresh location and job per pass, its
   closing merge and compaction included). Best of ``--repeat`` passes, the order of the
   two contenders alternating between passes; the ratios (with / without) of rows/s and of
   this process's CPU time per row (all threads; steadier than wall time on a busy machine)
   are the result.
2. Resume: after a full journaled ``enrich()``, reruns with the same job id: rows/s (opening
   the journal included) and the requests sent (should be 0), results compared.

Peak memory, formerly a third part here, is measured by ``bench/memory.py``.

The rows are company names (~40 characters) and a country; the emulated workflow answers
with a ~460-character profile and two citation URLs, like a small enrichment prompt.

    python bench/journal_overhead.py [--rows 20000] [--concurrency 64] [--repeat 3]
                                     [--parts 1,2]
    python bench/journal_overhead.py --quick        # a smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from _common import WORKFLOW, company_frame, company_rows, emulator_config, print_header
from _common import engine_options as options

from dagster_runwf import RowJournal, RunStats, enrich, run_workflow_rows
from dagster_runwf.emulator import Emulator

# -- the contenders: each returns its stats; the caller times it ------------------------------


def engine_pass(rows: list[dict[str, str]], base: str, c: int, journal: Path | None) -> RunStats:
    async def drain(j: RowJournal | None) -> RunStats:
        run = run_workflow_rows(WORKFLOW, rows, options(base, c), journal=j)
        async for result in run:
            assert result.status == "succeeded", result.error
        return run.stats

    if journal is None:
        return asyncio.run(drain(None))
    with RowJournal(journal, job_id=journal.name) as j:
        return asyncio.run(drain(j))


def enrich_pass(
    frame: pd.DataFrame, base: str, c: int, out: Path, journal: Path | None
) -> RunStats:
    if journal is None:
        return enrich(frame, WORKFLOW, options(base, c), destination=out).stats
    with RowJournal(journal, job_id=journal.name) as j:
        return enrich(frame, WORKFLOW, options(base, c), destination=out, journal=j).stats


@dataclass
class Timing:
    """Best rows/s and least client CPU per row over the passes of one contender."""

    label: str
    best: float = 0.0
    cpu_us: float = float("inf")

    def add(self, rate: float, cpu_us: float) -> None:
        self.best = max(self.best, rate)
        self.cpu_us = min(self.cpu_us, cpu_us)


def timed(timing: Timing, n: int, emu: Any, make: Callable[[], RunStats]) -> RunStats:
    emu.reset()  # keeps the emulator's per-body statistics from growing run after run
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    stats = make()
    rate = n / (time.perf_counter() - started)
    cpu_us = (time.process_time() - cpu) / n * 1e6  # this process, all its threads
    served = emu.stats()["total_requests"]
    assert stats.rows == n and stats.succeeded == n, stats
    timing.add(rate, cpu_us)
    print(
        f"  {timing.label:<30} {rate:7.0f} rows/s  {cpu_us:6.0f} us CPU/row  "
        f"({stats.sent} sent, {served} served)"
    )
    return stats


def ratios(label: str, on: Timing, off: Timing) -> None:
    print(
        f"{label:<30} rows/s {on.best / off.best:.2f}   "
        f"CPU/row {on.cpu_us / off.cpu_us:.2f}   (with journal / without)"
    )


def throughput(args: argparse.Namespace, emu: Any, work: Path) -> None:
    n, c = args.rows, args.concurrency
    rows = company_rows(n)
    frame = company_frame(n)
    base = emu.aitutor_url
    print(f"\n1. Throughput: {n} rows, concurrency {c}, best of {args.repeat}")
    engine_pass(company_rows(500, offset=n), base, c, None)  # warm-up
    engine_off, engine_on = Timing("engine, no journal"), Timing("engine, journal")
    enrich_off, enrich_on = (
        Timing("enrich -> Parquet, no journal"),
        Timing("enrich -> Parquet, journal"),
    )
    for r in range(args.repeat):
        engine_pair: list[tuple[Timing, Callable[[], RunStats]]] = [
            (engine_off, partial(engine_pass, rows, base, c, None)),
            (engine_on, partial(engine_pass, rows, base, c, work / f"engine-journal-{r}")),
        ]
        enrich_pair: list[tuple[Timing, Callable[[], RunStats]]] = [
            (enrich_off, partial(enrich_pass, frame, base, c, work / f"off-{r}.parquet", None)),
            (
                enrich_on,
                partial(
                    enrich_pass, frame, base, c, work / f"on-{r}.parquet", work / f"journal-{r}"
                ),
            ),
        ]
        for pair in (engine_pair, enrich_pair):
            for timing, make in pair if r % 2 == 0 else reversed(pair):
                timed(timing, n, emu, make)
    ratios("engine", engine_on, engine_off)
    ratios("enrich -> Parquet", enrich_on, enrich_off)


def resume(args: argparse.Namespace, emu: Any, work: Path) -> None:
    n, c = args.rows, args.concurrency
    frame = company_frame(n)
    base = emu.aitutor_url
    location = work / "resume-journal"
    first_out = work / "resume-first.parquet"
    print(f"\n2. Resume: {n} rows through enrich() with a journal, then again with the same job id")
    full = Timing("full run")
    timed(full, n, emu, partial(enrich_pass, frame, base, c, first_out, location))
    rerun = Timing("rerun, same job id")
    for r in range(args.repeat):
        out = work / f"resume-{r}.parquet"
        emu.reset()
        gc.collect()
        cpu, started = time.process_time(), time.perf_counter()
        with RowJournal(location, job_id=location.name) as journal:
            opened = time.perf_counter() - started
            stats = enrich(frame, WORKFLOW, options(base, c), destination=out, journal=journal)
        elapsed = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / n * 1e6
        rerun.add(n / elapsed, cpu_us)
        served = emu.stats()["total_requests"]
        again = pq.read_table(out, columns=["wf_result", "wf_reused"])
        same = pq.read_table(first_out, columns=["wf_result"])["wf_result"].equals(
            again["wf_result"]
        )
        reused = again["wf_reused"].to_pylist().count(True)
        print(
            f"  {rerun.label:<30} {n / elapsed:7.0f} rows/s  {cpu_us:6.0f} us CPU/row  "
            f"({stats.stats.requests} requests sent, {served} served, {reused} rows reused, "
            f"journal opened in {opened:.2f} s, same results: {same})"
        )
    print(f"{'rerun / full run':<30} rows/s {rerun.best / full.best:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="1,2", help="which parts to run, e.g. 2 for resume only")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 2_000, 1
    with (
        Emulator.in_subprocess(emulator_config()) as emu,
        tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp,
    ):
        work = Path(tmp)
        print_header("Journal overhead (bench/journal_overhead.py)")
        parts = set(args.parts.split(","))
        if "1" in parts:
            throughput(args, emu, work)
        if "2" in parts:
            resume(args, emu, work)


if __name__ == "__main__":
    main()
