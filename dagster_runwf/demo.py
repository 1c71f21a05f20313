"""``python -m dagster_runwf.demo``: the engine over a small table, on the embedded emulator.

No account is needed: an emulator of both services starts in-process on loopback, and the
demo enriches 200 companies through an AI Tutor workflow (answers with web citations) and 20
questions through a Runchat flow, at the services' real rate limits scaled up so it takes
seconds. It writes the results tables as Parquet next to a row journal (``demo_output/``),
reruns the same job to show that nothing is paid twice, and prints a summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .emulator import Emulator, EmulatorConfig
from .engine import RowJournal, RunStats, enrich
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="folder for Parquet and journal")
    out = Path(parser.parse_args(argv).out)
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
    job = dt.datetime.now(dt.timezone.utc).strftime("demo-%Y%m%dT%H%M%S")
    with Emulator(config) as emulator:
        print(f"emulator: AI Tutor at {emulator.aitutor_url}, Runchat at {emulator.runchat_url}")
        companies = pd.DataFrame(
            [
                {"name": f"{name} #{i // len(_COMPANIES)}", "country": country}
                for i, (name, country) in enumerate(_COMPANIES * 20)
            ]
        )
        profiles = AITutorWorkflow("wf_company_profile", ["company", "country"])
        started = time.monotonic()
        settings: dict[str, Any] = {
            "api_key": key,
            "base_url": emulator.aitutor_url,
            "columns": {"company": "name"},
            "destination": out / "companies.parquet",
            "rate": "50/s",
            "concurrency": 32,
        }
        with RowJournal(out / "journal" / "companies", job_id=job) as journal:
            done = enrich(companies, profiles, journal=journal, **settings)
        print(_summary("AI Tutor wf_company_profile", done.stats))
        print(f"  wrote {done.path}")
        first = done.to_pandas().iloc[0]
        print(f"  row 0 -> {first['wf_result'][:90]!r}")
        print(f"           citations {list(first['wf_citations'])}")
        with RowJournal(out / "journal" / "companies", job_id=job) as journal:
            again = enrich(companies, profiles, journal=journal, **settings)
        print(
            f"  rerun of the same job: {again.stats.requests} requests, "
            f"{again.stats.reused} rows from the journal"
        )
        questions = pd.DataFrame({"question": [f"What is dataset {i} about?" for i in range(20)]})
        with RowJournal(out / "journal" / "questions", job_id=job) as journal:
            answered = enrich(
                questions,
                RunchatWorkflow("demo", ["query_nodeA"], result_output="Answer"),
                api_key=key,
                base_url=emulator.runchat_url,
                columns={"query_nodeA": "question"},
                destination=out / "questions.parquet",
                journal=journal,
                rate="10/s",
                concurrency=8,
            )
        print(_summary("Runchat demo", answered.stats))
        print(f"  wrote {answered.path}")
        print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
