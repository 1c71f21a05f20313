"""``python -m dagster_runwf.demo``: the engine over a small table, on the embedded emulator.

No account is needed: an emulator of both services starts in-process on loopback, and the
demo enriches 200 companies through an AI Tutor workflow (answers with web citations) and 20
questions through a Runchat flow, at the services' real rate limits scaled up so it takes
seconds, then prints a summary. It uses the same engine the Dagster assets use.
"""

from __future__ import annotations

import time

from .emulator import Emulator, EmulatorConfig
from .engine import RunStats, run_workflow_rows_sync
from .services import AITutorWorkflow, RunchatWorkflow

_COMPANIES = [
    ("Acme Robotics", "Germany"),
    ("Blue Harbor Foods", "Canada"),
    ("Cobalt Analytics", "India"),
    ("Delta Greenhouses", "Netherlands"),
    ("Evergreen Textiles", "Portugal"),
    ("Fjord Energy", "Norway"),
    ("Granite Logistics", "USA"),
    ("Helios Solar", "Spain"),
    ("Iris Diagnostics", "France"),
    ("Juniper Software", "Ireland"),
]


def _summary(name: str, stats: RunStats) -> str:
    p50 = stats.latency.percentile(50)
    latency = f", p50 latency {p50 * 1000:.0f} ms" if p50 is not None else ""
    return (
        f"{name}: {stats.rows} rows, {stats.succeeded} succeeded, {stats.failed} failed, "
        f"{stats.requests} requests ({stats.rate_limited} answered 429) in "
        f"{stats.elapsed_s:.1f} s{latency}"
    )


def main() -> None:
    config = EmulatorConfig.from_dict(
        {
            "include_builtins": True,
            "aitutor_rate_limit": 50,
            "runchat_rate_limit": 10,
            "runchat_window_s": 1.0,
            "faults": {"error_rate": 0.02},
        }
    )
    key = "sk_demo_key"  # the emulator accepts any key
    with Emulator(config) as emulator:
        print(f"emulator: AI Tutor at {emulator.aitutor_url}, Runchat at {emulator.runchat_url}")
        rows = [
            {"company": f"{name} #{i // len(_COMPANIES)}", "country": country}
            for i, (name, country) in enumerate(_COMPANIES * 20)
        ]
        started = time.monotonic()
        results, stats = run_workflow_rows_sync(
            AITutorWorkflow("wf_company_profile", ["company", "country"]),
            rows,
            api_key=key,
            base_url=emulator.aitutor_url,
            rate="50/s",
            concurrency=32,
        )
        print(_summary("AI Tutor wf_company_profile", stats))
        first = results[0].outcome
        if first is not None:
            print(f"  row 0 -> {first.result[:90] if first.result else ''!r}")
            print(f"           citations {list(first.citations)}")
        questions = [{"query_nodeA": f"What is dataset {i} about?"} for i in range(20)]
        _, stats = run_workflow_rows_sync(
            RunchatWorkflow("demo", ["query_nodeA"], result_output="Answer"),
            questions,
            api_key=key,
            base_url=emulator.runchat_url,
            rate="10/s",
            concurrency=8,
        )
        print(_summary("Runchat demo", stats))
        print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
