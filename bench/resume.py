"""Resume and incremental: what a rerun pays for, counted by the emulator.

1. Kill at 50%: a child process runs ``enrich()`` with a ``RowJournal`` over ``--rows``
   rows (runs of ``--latency`` s, the key limited to ``--rate`` requests/s, concurrency
   ``--concurrency``: AI Tutor-like). When the emulator (its own process) has answered half
   the rows, the child is killed with SIGKILL. Once the runs in flight at the emulator have
   finished, *rows left* = rows not yet paid for; the same job is then rerun to the end.
   Result: requests of the rerun / rows left. The rerun also pays again for the rows that
   were paid but not yet journaled when the kill came (in flight, or answered within the
   last flush interval), so the target is ``<= 1 + concurrency / rows left``. Also shown:
   requests / rows the journal did not hold (1.0: nothing journaled is sent again).
2. Kill -9 at concurrency 16: the same, with short runs (``--kill-latency``, no rate
   limit) so that answers arrive faster than the journal's writes, killed at 40%; once with
   a local journal and once with a slow-write store (a local journal whose every write
   takes ``--slow-write`` s more and whose group-commit interval is object storage's 2 s).
   Result: rows paid twice (the emulator's count); the target for the local journal is
   the rows in flight, 16.
3. Nightly incremental: night 1 enriches ``--nightly-rows`` rows with an incremental journal;
   night 2 (a new job) the same rows plus 10% new ones. Result: requests of night 2 / new
   rows (target 1.0).

    python bench/resume.py [--rows 600] [--latency 1] [--rate 20] [--concurrency 32]
                           [--nightly-rows 10000] [--kill-rows 2000] [--kill-latency 0.05]
                           [--slow-write 0.5] [--parts 1,2,3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    WORKFLOW,
    Finding,
    at_most,
    company_frame,
    emulator,
    emulator_config,
    engine_options,
    info,
    load,
    parser,
    print_header,
    report,
    save,
    timed,
)

from dagster_runwf import RowJournal, enrich

SCENARIO = "6 resume and incremental"


def run_job(args: argparse.Namespace) -> None:
    """In the child (and for the rerun): the whole table through the journal's job."""
    frame = company_frame(args.rows)
    rate = f"{args.rate}/s" if args.rate else "unlimited"
    options = engine_options(args.base_url, args.concurrency, rate=rate)
    flush = args.flush_interval
    with RowJournal(args.journal, job_id="resume", flush_interval_s=flush) as journal:
        if args.write_delay:
            slow_down_writes(journal, args.write_delay)
        enrich(frame, WORKFLOW, options, destination=args.out, journal=journal)


def slow_down_writes(journal: RowJournal, seconds: float) -> None:
    """Make every write of ``journal`` take ``seconds`` longer, like an object store's."""
    record = journal.record

    def slow_record(results: Any) -> None:
        time.sleep(seconds)
        record(results)

    journal.record = slow_record  # type: ignore[method-assign]


def kill_at_half(args: argparse.Namespace, emu: Any, work: Path) -> list[Finding]:
    n, c = args.rows, args.concurrency
    journal, out = work / "journal", work / "out.parquet"
    cmd = [
        sys.executable, __file__, "--child", "--rows", str(n), "--concurrency", str(c),
        "--rate", str(args.rate), "--base-url", emu.aitutor_url, "--journal", str(journal),
        "--out", str(out),
    ]  # fmt: skip
    emu.reset()
    child = subprocess.Popen(cmd, env=dict(os.environ))
    while emu.stats()["runs_by_workflow"].get(WORKFLOW.workflow_id, 0) < n // 2:
        if child.poll() is not None:
            sys.exit("the child finished before it could be killed")
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    while emu.stats()["in_flight"]:
        time.sleep(0.05)  # runs the emulator had started still finish (and are charged)
    before = emu.stats()
    paid = len(before["runs_by_sha256"])
    rows_left = n - paid
    journaled = RowJournal(journal, job_id="resume").finished_rows
    args.journal, args.out = str(journal), str(out)
    args.base_url = emu.aitutor_url
    _, took = timed(lambda: run_job(args))
    after = emu.stats()
    rerun_requests = after["by_endpoint"].get("aitutor.run", 0) - before["by_endpoint"].get(
        "aitutor.run", 0
    )
    twice = after["duplicate_runs"]
    print(
        f"  kill at 50%: {n} rows, concurrency {c}, {args.latency:g} s runs, {args.rate}/s: "
        f"{paid} rows paid before the kill, {journaled} journaled; the rerun sent "
        f"{rerun_requests} requests in {took.wall_s:.1f} s; {twice} rows paid twice in all "
        f"(load {load()})",
        flush=True,
    )
    return [
        at_most(
            SCENARIO,
            "rerun requests / rows left (not paid)",
            rerun_requests / rows_left,
            1 + c / rows_left,
            f"(1 + {c}/{rows_left})",
        ),
        info(SCENARIO, "rerun requests / rows not journaled", rerun_requests / (n - journaled)),
        info(SCENARIO, "rows paid twice", float(twice)),
    ]


def kill_at_concurrency_16(
    args: argparse.Namespace, emu: Any, work: Path, store: str, slow_write: float
) -> list[Finding]:
    """Kill -9 at 40% of ``--kill-rows`` at concurrency 16, rerun; rows paid twice."""
    n, c = args.kill_rows, 16
    journal, out = work / f"journal-16-{store}", work / f"out-16-{store}.parquet"
    cmd = [
        sys.executable, __file__, "--child", "--rows", str(n), "--concurrency", str(c),
        "--rate", "0", "--base-url", emu.aitutor_url, "--journal", str(journal),
        "--out", str(out),
    ]  # fmt: skip
    if slow_write:
        cmd += ["--write-delay", str(slow_write), "--flush-interval", "2"]
    emu.reset()
    child = subprocess.Popen(cmd, env=dict(os.environ))
    while emu.stats()["runs_by_workflow"].get(WORKFLOW.workflow_id, 0) < n * 2 // 5:
        if child.poll() is not None:
            sys.exit("the child finished before it could be killed")
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    while emu.stats()["in_flight"]:
        time.sleep(0.05)
    rerun = argparse.Namespace(**{**vars(args), "rows": n, "concurrency": c, "rate": 0})
    rerun.base_url, rerun.journal, rerun.out = emu.aitutor_url, str(journal), str(out)
    rerun.write_delay = rerun.flush_interval = None
    run_job(rerun)
    twice = emu.stats()["duplicate_runs"]
    print(
        f"  kill -9 at concurrency {c}, {store} journal: {n} rows of {args.kill_latency:g} s, "
        f"killed at 40%; {twice} rows paid twice (load {load()})",
        flush=True,
    )
    name = f"rows paid twice after kill -9 at concurrency {c}, {store}"
    if slow_write:
        return [info(SCENARIO, name, float(twice), f"(writes +{slow_write:g} s, 2 s interval)")]
    return [at_most(SCENARIO, name, float(twice), float(c), "(the rows in flight)")]


def nightly(args: argparse.Namespace, emu: Any, work: Path) -> list[Finding]:
    n = args.nightly_rows
    new = n // 10
    options = engine_options(emu.aitutor_url, args.concurrency)
    nights = [company_frame(n), company_frame(n + new)]  # night 2: the same rows + 10% new
    counts = []
    for night, frame in enumerate(nights, start=1):
        emu.reset()
        with RowJournal(work / "nightly", job_id=f"night-{night}", incremental=True) as journal:
            out = work / f"night-{night}.parquet"
            _, took = timed(partial(enrich, frame, WORKFLOW, options, destination=out,
                                    journal=journal))  # fmt: skip
        requests = emu.stats()["by_endpoint"].get("aitutor.run", 0)
        counts.append(requests)
        print(
            f"  night {night}: {len(frame)} rows, {requests} requests, {took.wall_s:.1f} s",
            flush=True,
        )
    return [at_most(SCENARIO, "night 2 requests / new rows", counts[1] / new, 1.0)]


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rows", type=int, default=600)
    args_parser.add_argument("--latency", type=float, default=1.0)
    args_parser.add_argument("--rate", type=int, default=20)
    args_parser.add_argument("--concurrency", type=int, default=32)
    args_parser.add_argument("--nightly-rows", type=int, default=10_000)
    args_parser.add_argument("--kill-rows", type=int, default=2000)
    args_parser.add_argument("--kill-latency", type=float, default=0.05)
    args_parser.add_argument("--slow-write", type=float, default=0.5)
    args_parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 2")
    args_parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args_parser.add_argument("--write-delay", type=float, help=argparse.SUPPRESS)
    args_parser.add_argument("--flush-interval", type=float, help=argparse.SUPPRESS)
    args_parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args_parser.add_argument("--journal", help=argparse.SUPPRESS)
    args_parser.add_argument("--out", help=argparse.SUPPRESS)
    args = args_parser.parse_args(argv)
    if args.child:
        run_job(args)
        return []
    print_header("6. Resume and incremental (bench/resume.py)")
    config = emulator_config(args.latency, rate_limit=True, aitutor_rate_limit=args.rate)
    parts = set(args.parts.split(","))
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "1" in parts:
            with emulator(config) as emu:
                findings += kill_at_half(args, emu, Path(tmp))
        if "2" in parts:
            latency = (args.kill_latency, 2 * args.kill_latency)
            with emulator(emulator_config(latency)) as emu:
                findings += kill_at_concurrency_16(args, emu, Path(tmp), "local", 0.0)
                findings += kill_at_concurrency_16(
                    args, emu, Path(tmp), "slow-write store", args.slow_write
                )
        if "3" in parts:
            with emulator(emulator_config()) as emu:
                findings += nightly(args, emu, Path(tmp))
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
