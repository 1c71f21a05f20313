"""Latency hiding: with no rate limit, does the fan-out keep every slot busy?

Every run takes exactly ``--latency`` seconds in the emulator (its own process), there is
no rate limit, and the engine runs ``--concurrency`` rows at once; the ideal wall time is
``rows x latency / concurrency``. The result is the engine's wall time (from the first row
pulled to the last result, as ``RunStats.elapsed_s``; the event loop's and the HTTP client's
start included) over that ideal. Target <= 1.05.

    python bench/latency_hiding.py [--waves 20] [--latency 1.0] [--concurrency 64]
"""

from __future__ import annotations

import asyncio

from _common import (
    WORKFLOW,
    Finding,
    at_most,
    company_rows,
    emulator,
    emulator_config,
    engine_options,
    info,
    load,
    parser,
    print_header,
    report,
    save,
)

from dagster_runwf import RunStats, run_workflow_rows

SCENARIO = "2 latency hiding"


async def drive(base: str, rows: int, concurrency: int) -> RunStats:
    run = run_workflow_rows(WORKFLOW, company_rows(rows), engine_options(base, concurrency))
    async for result in run:
        assert result.status == "succeeded", result.error
    return run.stats


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--waves", type=int, default=20, help="rows = waves x concurrency")
    args_parser.add_argument("--latency", type=float, default=1.0)
    args_parser.add_argument("--concurrency", type=int, default=64)
    args = args_parser.parse_args(argv)
    print_header("2. Latency hiding (bench/latency_hiding.py)")
    rows = args.waves * args.concurrency
    ideal = rows * args.latency / args.concurrency
    with emulator(emulator_config(args.latency)) as emu:
        stats = asyncio.run(drive(emu.aitutor_url, rows, args.concurrency))
        served = emu.stats()["max_in_flight"]
    ratio = stats.elapsed_s / ideal
    print(
        f"  {rows} rows, {args.latency:g} s each, concurrency {args.concurrency}: "
        f"{stats.elapsed_s:.2f} s against the ideal {ideal:.2f} s; at most {served} runs "
        f"in flight at the emulator (load {load()})",
        flush=True,
    )
    findings = [
        at_most(SCENARIO, "wall / (rows x latency / concurrency)", ratio, 1.05),
        info(SCENARIO, "rows/s", rows / stats.elapsed_s),
    ]
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
