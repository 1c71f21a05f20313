"""Versus the naive approach: a sequential ``requests.post`` loop over ``df.iterrows()``.

What users write today, against the engine, on the same emulated service (its own process):
runs of ``--latency`` s, the key limited to ``--rate`` requests/s (AI Tutor's 10/s).

The naive loop is time-boxed: it enriches the first ``--naive-rows`` rows and its rows/s
is extrapolated to the table (it is sequential, so its time grows linearly with rows; at 1
s a run it never comes near the rate limit). The engine enriches all ``--rows`` rows
(``enrich()`` with a journal, writing Parquet). Result: the speedup, engine rows/s / naive
rows/s.

    python bench/naive.py [--rows 300] [--naive-rows 10] [--latency 1] [--rate 10]
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from _common import (
    HEADERS,
    WORKFLOW,
    Finding,
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

SCENARIO = "7 versus naive"


def naive(url: str, df: pd.DataFrame) -> list[Any]:
    """The loop users write: one blocking request per row, in order."""
    answers = []
    for _, row in df.iterrows():
        response = requests.post(
            url, json={"company": row["company"], "country": row["country"]}, headers=HEADERS
        )
        response.raise_for_status()
        answers.append(response.json()["result"])
    return answers


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rows", type=int, default=300)
    args_parser.add_argument("--naive-rows", type=int, default=10)
    args_parser.add_argument("--latency", type=float, default=1.0)
    args_parser.add_argument("--rate", type=int, default=10)
    args_parser.add_argument("--concurrency", type=int, default=32)
    args = args_parser.parse_args(argv)
    print_header("7. Versus the naive loop (bench/naive.py)")
    frame = company_frame(args.rows)
    config = emulator_config(args.latency, rate_limit=True, aitutor_rate_limit=args.rate)
    with emulator(config) as emu, tempfile.TemporaryDirectory() as tmp:
        url = f"{emu.aitutor_url}/{WORKFLOW.run_path()}"
        answers, naive_took = timed(partial(naive, url, frame.head(args.naive_rows)))
        assert len(answers) == args.naive_rows
        emu.reset()
        options = engine_options(emu.aitutor_url, args.concurrency, rate=f"{args.rate}/s")
        with RowJournal(Path(tmp) / "journal", job_id="naive") as journal:
            done, engine_took = timed(
                partial(
                    enrich,
                    frame,
                    WORKFLOW,
                    options,
                    destination=Path(tmp) / "o.parquet",
                    journal=journal,
                )
            )
        assert done.stats.succeeded == args.rows, done.stats
    naive_rate = args.naive_rows / naive_took.wall_s
    engine_rate = args.rows / engine_took.wall_s
    print(
        f"  naive loop: {args.naive_rows} rows in {naive_took.wall_s:.1f} s "
        f"({naive_rate:.2f} rows/s; {args.rows} rows would take about "
        f"{args.rows / naive_rate:.0f} s, extrapolated)\n"
        f"  engine:     {args.rows} rows in {engine_took.wall_s:.1f} s ({engine_rate:.2f} rows/s, "
        f"{done.stats.rate_limited} 429s) (load {load()})",
        flush=True,
    )
    findings = [
        info(SCENARIO, "speedup: engine rows/s / naive rows/s", engine_rate / naive_rate),
        info(SCENARIO, "engine rows/s / allowed rate", engine_rate / args.rate),
    ]
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
