"""Every benchmark scenario (issue 5's seven, and 8: the key's rate over several processes
through Redis), one after the other, then a summary against targets.

Each scenario starts its own emulator in a separate process and prints its figures as it
goes; the summary lists every figure with its target. The sizes are each script's defaults
except the memory scenario's (100k and 200k rows here; 100k and 300k run alone), so the
whole run stays within about a quarter of an hour on a 2-core machine.

    python bench/run_all.py [--only 1,5] [--json results.jsonl]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import dagster_overhead
import distributed
import engine_overhead
import latency_hiding
import memory
import naive
import rate_limit
import resume
from _common import Finding, load, parser, print_header, save

SCENARIOS: dict[str, tuple[Callable[[list[str] | None], list[Finding]], list[str]]] = {
    "1": (rate_limit.main, []),
    "2": (latency_hiding.main, []),
    "3": (engine_overhead.main, []),
    "4": (dagster_overhead.main, []),
    "5": (memory.main, ["--rows", "100000,200000", "--asset-rows", "100000"]),
    "6": (resume.main, []),
    "7": (naive.main, []),
    "8": (distributed.main, []),
}


def main(argv: list[str] | None = None) -> int:
    args_parser = parser(__doc__)
    args_parser.add_argument("--only", default=",".join(SCENARIOS), help="e.g. 1,5")
    args = args_parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        args_parser.error(f"no scenario {unknown}; choose from {', '.join(SCENARIOS)}")
    print_header("All benchmark scenarios (bench/run_all.py)")
    started = time.monotonic()
    findings: list[Finding] = []
    for key in chosen:
        run, scenario_args = SCENARIOS[key]
        print(flush=True)
        findings += run(scenario_args)
    minutes = (time.monotonic() - started) / 60
    print(f"\n== Summary ({minutes:.1f} min; load average now {load()})")
    for finding in findings:
        print(f"[{finding.scenario}] {finding.line().strip()}")
    missed = [f for f in findings if f.met is False]
    judged = [f for f in findings if f.met is not None]
    print(f"{len(judged) - len(missed)} of {len(judged)} targets met")
    save(findings, args.json)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
