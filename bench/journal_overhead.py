"""Journal overhead: rows/s with and without the row journal, resume cost, and peak memory.

The emulator runs in its own process with no rate limit and zero latency, so the numbers
measure the client. Three parts, each contender measured in the same run:

1. Throughput: the engine (``run_workflow_rows``) and ``enrich()`` writing Parquet, each with
   no journal and with a local :class:`RowJournal` (a fresh location and job per pass, its
   closing merge and compaction included). Best of ``--repeat`` passes, the order of the
   two contenders alternating between passes; the ratios (with / without) of rows/s and of
   this process's CPU time per row (all threads; steadier than wall time on a busy machine)
   are the result.
2. Resume: after a full journaled ``enrich()``, reruns with the same job id: rows/s (opening
   the journal included) and the requests sent (should be 0), results compared.
3. Peak memory: a fresh interpreter runs ``enrich()`` with the journal on and a Parquet
   destination; its peak RSS (its own: see :func:`memory_child`) minus its RSS after imports
   and building the input DataFrame, over the in-memory size of the resulting Arrow table
   (read back afterwards, in this process). A 1,000-row run first shows the growth that
   does not scale with rows; ``--memory-compare`` repeats the big run with no journal.
   1,000,000 rows take about 25 minutes on a 2-core machine, hence the smaller default:
   pass ``--rows-memory 1000000``.

The rows are company names (~40 characters) and a country; the emulated workflow answers
with a ~460-character profile and two citation URLs, like a small enrichment prompt.

    python bench/journal_overhead.py [--rows 20000] [--concurrency 64] [--repeat 3]
                                     [--rows-memory 200000] [--memory-compare] [--parts 1,2,3]
    python bench/journal_overhead.py --quick        # a smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from dagster_runwf import AITutorWorkflow, RowJournal, RunStats, enrich, run_workflow_rows
from dagster_runwf.emulator import Emulator, EmulatorConfig

KEY = "sk_bench"
WORKFLOW_ID = "wf_bench_profile"
PROFILE = (
    "{{company}} is a privately held company headquartered in {{country}}. It was founded "
    "in the late 1990s and today employs between 200 and 500 people across three offices. "
    "Its main products are industrial software and maintenance services for mid-sized "
    "manufacturers; most revenue comes from multi-year contracts in {{country}} and its "
    "neighbours. Recent news: a new regional office and a partnership with a logistics firm."
)
WORKFLOW_SPEC = {
    "id": WORKFLOW_ID,
    "service": "aitutor",
    "name": "Company profile (benchmark)",
    "variables": ["company", "country"],
    "template": PROFILE,
    "citations": [
        "https://en.wikipedia.org/wiki/{{company}}",
        "https://registry.example.com/{{country}}/{{company}}",
    ],
}
WORKFLOW = AITutorWorkflow(WORKFLOW_ID, ["company", "country"])

_FIRST = ["Northwind", "Blue Harbor", "Granite Peak", "Silver Birch", "Red Fern", "Oakridge"]
_SECOND = ["Industrial", "Logistics", "Software", "Precision", "Marine", "Agricultural"]
_THIRD = ["Systems", "Holdings", "Solutions", "Components", "Services", "Technologies"]
_LEGAL = ["GmbH", "Ltd", "S.A.", "B.V.", "Inc.", "AB"]
_COUNTRIES = ["Germany", "United Kingdom", "Spain", "Netherlands", "United States", "Sweden"]


def company(i: int) -> str:
    """A unique company name of about 40 characters."""
    return (
        f"{_FIRST[i % 6]} {_SECOND[i // 6 % 6]} {_THIRD[i // 36 % 6]} "
        f"{_LEGAL[i // 216 % 6]} {i:07d}"
    )


def company_rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    return [
        {"company": company(i), "country": _COUNTRIES[i % len(_COUNTRIES)]}
        for i in range(offset, offset + n)
    ]


def company_frame(n: int, offset: int = 0) -> pd.DataFrame:
    columns = {
        "company": [company(i) for i in range(offset, offset + n)],
        "country": [_COUNTRIES[i % len(_COUNTRIES)] for i in range(offset, offset + n)],
    }
    frame: pd.DataFrame = pd.DataFrame(columns)
    return frame


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig.from_dict(
        {
            "workflows": [WORKFLOW_SPEC],
            "rate_limit_enabled": False,
            "log_bodies": False,
            "log_limit": 0,
        }
    )


def settings(base_url: str, concurrency: int) -> dict[str, Any]:
    return {
        "api_key": KEY,
        "base_url": base_url,
        "rate": "unlimited",
        "concurrency": concurrency,
    }


# -- the contenders: each returns its stats; the caller times it ------------------------------


def engine_pass(rows: list[dict[str, str]], base: str, c: int, journal: Path | None) -> RunStats:
    async def drain(j: RowJournal | None) -> RunStats:
        run = run_workflow_rows(WORKFLOW, rows, journal=j, **settings(base, c))
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
        return enrich(frame, WORKFLOW, destination=out, **settings(base, c)).stats
    with RowJournal(journal, job_id=journal.name) as j:
        return enrich(frame, WORKFLOW, destination=out, journal=j, **settings(base, c)).stats


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
            stats = enrich(frame, WORKFLOW, destination=out, journal=journal, **settings(base, c))
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


# -- peak memory, in a fresh interpreter ------------------------------------------------------


def _status_kb(field: str) -> int | None:
    """A ``Vm*`` field of /proc/self/status in KiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def restart_peak() -> bool:
    """Make the peak RSS start from now (Linux 4.0+); ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def memory_child(args: argparse.Namespace) -> None:
    """Runs in the fresh interpreter: prints one JSON line with the RSS figures.

    The peak is the process's own high-water mark since the baseline (VmHWM after a reset)
    where Linux offers it: ``ru_maxrss`` of a child on Linux starts at its parent's peak
    RSS (kept across fork and exec), which would hide any child peak below the parent's.
    Elsewhere it falls back to ``ru_maxrss``, with that caveat.
    """
    frame = company_frame(args.rows_memory)
    gc.collect()
    baseline = _status_kb("VmRSS") or maxrss_kb()
    own_peak = restart_peak()
    started = time.perf_counter()
    journal = RowJournal(args.journal, job_id="memory") if args.journal else None
    try:
        stats = enrich(
            frame,
            WORKFLOW,
            destination=args.destination,
            journal=journal,
            **settings(args.base_url, args.concurrency),
        ).stats
    finally:
        if journal is not None:
            journal.close()
    elapsed = time.perf_counter() - started
    report = {
        "baseline_kb": baseline,
        "peak_kb": (_status_kb("VmHWM") if own_peak else None) or maxrss_kb(),
        "peak_source": "VmHWM since baseline" if own_peak else "ru_maxrss",
        "ru_maxrss_kb": maxrss_kb(),
        "elapsed_s": elapsed,
        "rows": stats.rows,
        "sent": stats.sent,
    }
    print(json.dumps(report))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def memory_run(args: argparse.Namespace, emu: Any, work: Path, n: int, journal: bool) -> float:
    """Run the child over ``n`` rows; print its figures; return its RSS growth in bytes."""
    tag = f"{n}-{'on' if journal else 'off'}"
    destination = work / f"memory-{tag}.parquet"
    location = work / f"memory-journal-{tag}"
    cmd = [
        sys.executable, __file__, "--memory-child",
        "--rows-memory", str(n), "--concurrency", str(args.concurrency),
        "--base-url", emu.aitutor_url, "--destination", str(destination),
    ]  # fmt: skip
    if journal:
        cmd += ["--journal", str(location)]
    emu.reset()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the memory run failed:\n{done.stderr}")
    child: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["rows"] == n and child["sent"] == n, child
    table_bytes = pq.read_table(destination).nbytes  # the separate step
    growth = float((child["peak_kb"] - child["baseline_kb"]) * 1024)
    print(
        f"  {n:>9} rows, journal {'on ' if journal else 'off'}: "
        f"{n / child['elapsed_s']:5.0f} rows/s in {child['elapsed_s']:.0f} s; "
        f"RSS {mib(child['baseline_kb'] * 1024)} after building the input, "
        f"peak {mib(child['peak_kb'] * 1024)} (+{mib(growth)}; {child['peak_source']})\n"
        f"  {'':>9}       Arrow table {mib(table_bytes)}, Parquet file "
        f"{mib(destination.stat().st_size)}, journal on disk "
        f"{mib(folder_bytes(location) if journal else 0)}; "
        f"peak growth / Arrow table = {growth / table_bytes:.2f}"
    )
    destination.unlink()
    return growth


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def memory(args: argparse.Namespace, emu: Any, work: Path) -> None:
    n = args.rows_memory
    print("\n3. Peak memory: enrich() -> Parquet, each run in a fresh interpreter")
    small = min(n, 1_000)
    memory_run(args, emu, work, small, journal=True)  # the growth that is not per row
    memory_run(args, emu, work, n, journal=True)
    if args.memory_compare:
        memory_run(args, emu, work, n, journal=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows-memory", type=int, default=200_000)
    parser.add_argument(
        "--memory-compare", action="store_true", help="also measure memory with no journal"
    )
    parser.add_argument(
        "--parts", default="1,2,3", help="which parts to run, e.g. 3 for peak memory only"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--destination", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    if args.quick:
        args.rows, args.repeat, args.rows_memory = 2_000, 1, 5_000
    with (
        Emulator.in_subprocess(emulator_config()) as emu,
        tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp,
    ):
        work = Path(tmp)
        print(f"emulator in its own process; {os.cpu_count()} CPUs")
        parts = set(args.parts.split(","))
        if "1" in parts:
            throughput(args, emu, work)
        if "2" in parts:
            resume(args, emu, work)
        if "3" in parts:
            memory(args, emu, work)


if __name__ == "__main__":
    main()
