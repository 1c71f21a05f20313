"""Rate-limit utilisation: how close the engine runs to a key's rate without a wasted 429.

The emulator (in its own process) enforces each key's sliding window exactly as the service
does and answers 429 beyond it; runs take 1-3 s (uniform). Three cases, each long enough
for at least ``--seconds`` of sending:

- AI Tutor semantics, 10 requests per 1 s window (concurrency 48);
- AI Tutor semantics, 50 requests per 1 s window (concurrency 192);
- Runchat semantics, a per-minute limit with its window shortened to ``--window`` seconds
  (10 per 5 s by default, so the test takes seconds, not minutes; concurrency 24).

Achieved rate: from the emulator's log of admitted requests, in order of arrival (answer
time minus run time) ``t_1 .. t_N``, ``limit / mean(t_k - t_(k-limit))``: how long, on
average, the key's window took to admit ``limit`` more requests. A sliding window never
admits two requests ``limit`` apart less than a window apart, so admitted requests cannot
beat ``limit / window`` by this measure; a limiter that starts each request the moment the
window allows reaches 1.0, whatever the spacing within a window. The startup (connections
opening, a 429 and its pause) counts. Targets: achieved / allowed >= 0.97, 429s < 1% of
requests, no failed row.

    python bench/rate_limit.py [--seconds 30] [--window 5]
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from _common import (
    WORKFLOW,
    Finding,
    at_least,
    at_most,
    company_rows,
    emulator,
    emulator_config,
    load,
    parser,
    print_header,
    report,
    save,
)

from dagster_runwf import EngineOptions, RunchatWorkflow, run_workflow_rows
from dagster_runwf.emulator import EmulatorProcess

SCENARIO = "1 rate limit"
RUNCHAT_FLOW = {
    "id": "bench_translate",
    "service": "runchat",
    "name": "Translator (benchmark)",
    "inputs": [
        {"id": "company_n1", "label": "Company", "required": True},
        {"id": "country_n1", "label": "Country"},
    ],
    "outputs": [
        {
            "id": "profile_n2",
            "label": "Profile",
            "template": "A profile of {{company_n1}} in {{country_n1}} [{{hash}}]",
        }
    ],
    "latency": {"min_s": 1.0, "max_s": 3.0},
}


def case_keys() -> dict[str, dict[str, int]]:
    """One key per case, each with its own limit (the engine shares a limiter per key)."""
    return {
        "sk_rate_10": {"aitutor_rate_limit": 10},
        "sk_rate_50": {"aitutor_rate_limit": 50},
        "sk_rate_min": {"runchat_rate_limit": 10},
    }


async def drive(
    emu: EmulatorProcess, service: str, key: str, rate: str, rows: int, concurrency: int
) -> Any:
    if service == "aitutor":
        workflow: Any = WORKFLOW
        base = emu.aitutor_url
        inputs: list[dict[str, str]] = company_rows(rows)
    else:
        workflow = RunchatWorkflow("bench_translate", ["company_n1", "country_n1"])
        base = emu.runchat_url
        inputs = [
            {"company_n1": r["company"], "country_n1": r["country"]} for r in company_rows(rows)
        ]
    options = EngineOptions(api_key=key, base_url=base, rate=rate, concurrency=concurrency)
    run = run_workflow_rows(workflow, inputs, options)
    async for _ in run:
        pass
    return run.stats


def one_case(
    emu: EmulatorProcess,
    label: str,
    service: str,
    key: str,
    limit: int,
    window_s: float,
    concurrency: int,
    seconds: float,
) -> list[Finding]:
    allowed = limit / window_s
    rows = limit * math.ceil(1 + allowed * seconds / limit)
    rate = f"{limit}/s" if window_s == 1 else f"{limit}/{window_s:g}s"
    emu.reset()
    stats = asyncio.run(drive(emu, service, key, rate, rows, concurrency))
    log = [e for e in emu.requests(service=service) if e["endpoint"] == f"{service}.run"]
    admitted = sorted(e["time"] - e["duration_ms"] / 1000 for e in log if e["status"] == 200)
    limited = sum(1 for e in log if e["status"] == 429)
    span = admitted[-1] - admitted[0]
    later, earlier = admitted[limit:], admitted[:-limit]
    achieved = limit / ((sum(later) - sum(earlier)) / len(later))
    share_429 = limited / max(len(log), 1)
    print(
        f"  {label}: {rows} rows, concurrency {concurrency}, rate {rate!r}: "
        f"{len(admitted)} admitted over {span:.1f} s -> {achieved:.2f}/s of {allowed:.2f}/s "
        f"allowed; {limited} 429s of {len(log)} requests; {stats.failed} failed rows; "
        f"elapsed {stats.elapsed_s:.1f} s (load {load()})",
        flush=True,
    )
    return [
        at_least(SCENARIO, f"{label}: achieved / allowed rate", achieved / allowed, 0.97),
        at_most(SCENARIO, f"{label}: 429s / requests", share_429, 0.01 - 1e-12, "(< 1%)"),
        at_most(SCENARIO, f"{label}: failed rows", float(stats.failed), 0),
    ]


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--seconds", type=float, default=30.0)
    args_parser.add_argument("--window", type=float, default=5.0, help="Runchat window, s")
    args = args_parser.parse_args(argv)
    print_header("1. Rate-limit utilisation (bench/rate_limit.py)")
    config = emulator_config(
        (1.0, 3.0),
        rate_limit=True,
        log=20_000,
        extra_workflows=[RUNCHAT_FLOW],
        keys=case_keys(),
        aitutor_window_s=1.0,
        runchat_window_s=args.window,
    )
    findings: list[Finding] = []
    with emulator(config) as emu:
        cases = [
            ("AI Tutor 10/s", "aitutor", "sk_rate_10", 10, 1.0, 48),
            ("AI Tutor 50/s", "aitutor", "sk_rate_50", 50, 1.0, 192),
            (f"Runchat 10/{args.window:g}s", "runchat", "sk_rate_min", 10, args.window, 24),
        ]
        for label, service, key, limit, window, concurrency in cases:
            findings += one_case(emu, label, service, key, limit, window, concurrency, args.seconds)
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
