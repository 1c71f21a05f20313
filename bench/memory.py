"""Peak memory: the engine writing Parquet, and the whole Dagster asset, against the table.

Each measurement runs in a fresh interpreter (the emulator in yet another process, no rate
limit, zero latency). Its peak RSS growth is the process's own high-water mark (VmHWM,
reset after the baseline where Linux allows) minus its RSS after the imports and after
building its input; the result is that growth over the in-memory (Arrow) size of the
results table, read back afterwards in this process. Target: <= 3.

- ``engine``: ``enrich()`` of a DataFrame of companies with a fresh ``RowJournal`` and a
  Parquet destination (results streamed in row groups) — at each of ``--rows``, to show
  the trend, after a 1,000-row run showing the growth that does not scale with rows;
- ``asset``: ``dagster.materialize`` of an ``enriched_asset`` with ``ParquetIOManager`` (the
  source stored beforehand, in the same child, before the baseline) at ``--asset-rows``.

``--profile`` adds, per run, the peaks of Python's own allocations (tracemalloc) and of
Arrow's memory pool, and the top Python allocation sites at the highest RSS seen (slower:
tracemalloc roughly halves the speed). ``--compare`` also runs the engine without a journal.

    python bench/memory.py [--rows 100000,300000] [--asset-rows 100000] [--profile]
    python bench/memory.py --rows 1000000 --asset-rows 0      # the issue's 1M rows
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from _common import (
    KEY,
    WORKFLOW,
    Finding,
    at_most,
    company_frame,
    emulator,
    emulator_config,
    engine_options,
    info,
    load,
    mib,
    parser,
    peak_kb,
    print_header,
    report,
    restart_peak,
    save,
    status_kb,
)

SCENARIO = "5 memory"
ASSET_FILE = "companies_wf_bench_profile.parquet"


# -- in the child -------------------------------------------------------------------------------


class Profiler:
    """Samples RSS, Python's traced memory and Arrow's pool; keeps a tracemalloc snapshot
    taken near the highest RSS."""

    def __init__(self) -> None:
        tracemalloc.start(1)
        self.snapshot: tracemalloc.Snapshot | None = None
        self.snapshot_rss = 0
        self._stop = threading.Event()
        self._last_snapshot = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            rss = status_kb("VmRSS") or 0
            if rss > self.snapshot_rss * 1.05 and time.monotonic() - self._last_snapshot > 5:
                self.snapshot = tracemalloc.take_snapshot()
                self.snapshot_rss = rss
                self._last_snapshot = time.monotonic()

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        _, python_peak = tracemalloc.get_traced_memory()
        pool = pa.default_memory_pool()
        top: list[str] = []
        if self.snapshot is not None:
            for stat in self.snapshot.statistics("lineno")[:10]:
                frame = stat.traceback[0]
                where = f"{_short(frame.filename)}:{frame.lineno}"
                top.append(f"{stat.size / 2**20:7.1f} MiB {stat.count:>9} blocks  {where}")
        return {
            "python_peak_kb": python_peak // 1024,
            "arrow_peak_kb": pool.max_memory() // 1024,
            "arrow_pool": pool.backend_name,
            "snapshot_rss_kb": self.snapshot_rss,
            "top": top,
        }


def _short(filename: str) -> str:
    """A file name relative to its package (no machine paths in the output)."""
    parts = Path(filename).parts
    for anchor in ("dagster_runwf", "site-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + (anchor == "site-packages") :])
    return Path(filename).name


def child_engine(args: argparse.Namespace, frame: Any) -> Callable[[], int]:
    from dagster_runwf import RowJournal, enrich

    def run() -> int:
        options = engine_options(args.base_url, args.concurrency)
        if args.no_journal:
            return enrich(frame, WORKFLOW, options, destination=args.out).stats.sent
        with RowJournal(Path(args.work) / "journal", job_id="memory") as journal:
            stats = enrich(frame, WORKFLOW, options, destination=args.out, journal=journal)
        return stats.stats.sent

    return run


def child_asset(args: argparse.Namespace, frame: Any) -> Callable[[], int]:
    import dagster as dg

    from dagster_runwf import (
        AITutorResource,
        EnrichmentSettings,
        ParquetIOManager,
        enriched_asset,
    )

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    @dg.asset(name="companies")
    def companies() -> Any:
        return frame

    work = Path(args.work)
    enriched = enriched_asset(
        source=companies,
        workflow=WORKFLOW,
        settings=EnrichmentSettings(journal_dir=str(work / "journal")),
    )
    resources: dict[str, Any] = {
        "aitutor": AITutorResource(
            api_key=KEY, base_url=args.base_url, rate="unlimited", concurrency=args.concurrency
        ),
        "io_manager": ParquetIOManager(base_dir=str(work / "assets")),
    }
    dg.materialize([companies], resources=resources, run_config=quiet)  # before the baseline

    def run() -> int:
        result = dg.materialize(
            [companies, enriched], resources=resources, selection=[enriched.key], run_config=quiet
        )
        assert result.success
        return len(frame)

    return run


def child(args: argparse.Namespace) -> None:
    """Runs in the fresh interpreter: prints one JSON line with the figures."""
    frame = company_frame(args.rows_child)
    run = (child_asset if args.child == "asset" else child_engine)(args, frame)
    gc.collect()
    baseline = status_kb("VmRSS") or 0
    own_peak = restart_peak()
    profiler = Profiler() if args.profile else None
    started = time.perf_counter()
    sent = run()
    elapsed = time.perf_counter() - started
    report_ = {
        "baseline_kb": baseline,
        "peak_kb": peak_kb(own_peak),
        "peak_source": "VmHWM since baseline" if own_peak else "ru_maxrss",
        "elapsed_s": elapsed,
        "sent": sent,
        **(profiler.finish() if profiler else {}),
    }
    print(json.dumps(report_))


# -- in the parent ------------------------------------------------------------------------------


def measure(
    args: argparse.Namespace, base_url: str, work: Path, mode: str, n: int, journal: bool = True
) -> dict[str, Any]:
    """Run one child; print and return its figures with the table's Arrow size."""
    scratch = Path(tempfile.mkdtemp(dir=work))
    out = (
        scratch
        / ("assets" if mode == "asset" else "")
        / (ASSET_FILE if mode == "asset" else "out.parquet")
    )
    cmd = [
        sys.executable, __file__, "--child", mode, "--rows-child", str(n),
        "--concurrency", str(args.concurrency), "--base-url", base_url,
        "--work", str(scratch), "--out", str(out),
    ]  # fmt: skip
    if args.profile:
        cmd.append("--profile")
    if not journal:
        cmd.append("--no-journal")
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        sys.exit(f"the {mode} run failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["sent"] == n, figures
    table_bytes = pq.read_table(out).nbytes
    growth = (figures["peak_kb"] - figures["baseline_kb"]) * 1024
    figures.update(rows=n, table_bytes=table_bytes, growth=growth, ratio=growth / table_bytes)
    label = f"{mode}{'' if journal else ' (no journal)'}"
    print(
        f"  {label:<20} {n:>9} rows: {n / figures['elapsed_s']:5.0f} rows/s in "
        f"{figures['elapsed_s']:.0f} s; RSS {mib(figures['baseline_kb'] * 1024)} at the "
        f"baseline, peak +{mib(growth)}; Arrow table {mib(table_bytes)}, Parquet "
        f"{mib(out.stat().st_size)}; growth / table = {growth / table_bytes:.2f} "
        f"(load {load()})",
        flush=True,
    )
    if args.profile:
        gap = growth / 1024 - figures["python_peak_kb"] - figures["arrow_peak_kb"]
        print(
            f"  {'':<20} peaks: Python objects {mib(figures['python_peak_kb'] * 1024)}, "
            f"Arrow pool ({figures['arrow_pool']}) {mib(figures['arrow_peak_kb'] * 1024)}; "
            f"the rest of the growth (allocator slack, tracemalloc's own traces) "
            f"{mib(gap * 1024)}\n  {'':<20} top Python allocation sites near the highest RSS:"
        )
        for line in figures["top"]:
            print(f"  {'':<22}{line}")
    return figures


def judge(metric: str, ratio: float, args: argparse.Namespace) -> Finding:
    """Against the target; with ``--profile`` for information only (tracemalloc's own
    memory is in the RSS then)."""
    if args.profile:
        return info(SCENARIO, metric, ratio, "(profiled: not judged)")
    return at_most(SCENARIO, metric, ratio, 3.0)


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rows", default="100000,300000", help="comma-separated sizes")
    args_parser.add_argument("--asset-rows", default="100000", help="comma-separated; 0: none")
    args_parser.add_argument("--concurrency", type=int, default=64)
    args_parser.add_argument("--profile", action="store_true")
    args_parser.add_argument("--compare", action="store_true", help="also without a journal")
    args_parser.add_argument("--child", choices=["engine", "asset"], help=argparse.SUPPRESS)
    args_parser.add_argument("--rows-child", type=int, help=argparse.SUPPRESS)
    args_parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args_parser.add_argument("--work", help=argparse.SUPPRESS)
    args_parser.add_argument("--out", help=argparse.SUPPRESS)
    args_parser.add_argument("--no-journal", action="store_true", help=argparse.SUPPRESS)
    args = args_parser.parse_args(argv)
    if args.child:
        child(args)
        return []
    sizes = [int(s) for s in args.rows.split(",") if int(s) > 0]
    asset_sizes = [int(s) for s in args.asset_rows.split(",") if int(s) > 0]
    print_header("5. Peak memory (bench/memory.py)")
    findings: list[Finding] = []
    with emulator(emulator_config()) as emu, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = emu.aitutor_url
        fixed = measure(args, base, work, "engine", 1_000)
        findings.append(
            info(SCENARIO, "engine: growth at 1,000 rows, MiB", fixed["growth"] / 2**20)
        )
        for n in sizes:
            emu.reset()
            got = measure(args, base, work, "engine", n)
            findings.append(
                judge(f"engine + Parquet, {n:,} rows: peak growth / table", got["ratio"], args)
            )
            if args.compare:
                emu.reset()
                got = measure(args, base, work, "engine", n, journal=False)
                findings.append(
                    info(
                        SCENARIO,
                        f"engine + Parquet, no journal, {n:,} rows: growth / table",
                        got["ratio"],
                    )
                )
        for n in asset_sizes:
            emu.reset()
            got = measure(args, base, work, "asset", n)
            findings.append(judge(f"asset, {n:,} rows: peak growth / table", got["ratio"], args))
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
