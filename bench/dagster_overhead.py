"""Through Dagster: materializing an enriched asset against the bare engine on the same rows.

The emulator runs in its own process (no rate limit, zero latency), so the figures measure
the client side. A source asset holding ``--rows`` companies is stored once with
:class:`ParquetIOManager` (not timed); then, alternating, best of ``--repeat``:

- ``dagster.materialize`` of the ``enriched_asset`` alone (it loads the source from
  Parquet; pre-flight calls, journal, metadata, checks and the Parquet output included);
- the bare engine doing the same work: ``enrich()`` of the same DataFrame with a fresh
  ``RowJournal``, writing the results to Parquet;
- for reference, the engine alone (``run_workflow_rows``, no journal, no table).

Every pass gets a fresh journal folder, so none resumes. Both run in this process, after
the imports (process start excluded). Target: asset / bare engine <= 1.2.

    python bench/dagster_overhead.py [--rows 10000] [--concurrency 64] [--repeat 2]
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from _common import (
    KEY,
    WORKFLOW,
    Finding,
    at_most,
    company_frame,
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
    timed,
)

from dagster_runwf import (
    AITutorResource,
    EnrichmentSettings,
    ParquetIOManager,
    RowJournal,
    enrich,
    enriched_asset,
    run_workflow_rows,
)

SCENARIO = "4 through Dagster"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def source_asset(frame: pd.DataFrame) -> dg.AssetsDefinition:
    @dg.asset(name="companies")
    def companies() -> pd.DataFrame:
        return frame

    return companies


def materialize_enriched(
    frame: pd.DataFrame, base: str, concurrency: int, store: Path, journal: Path
) -> dg.ExecuteInProcessResult:
    source = source_asset(frame)
    asset = enriched_asset(
        source=source,
        workflow=WORKFLOW,
        settings=EnrichmentSettings(journal_dir=str(journal), progress_interval_s=60),
    )
    resources: dict[str, Any] = {
        "aitutor": AITutorResource(
            api_key=KEY,
            base_url=base,
            rate="unlimited",
            concurrency=concurrency,
        ),
        "io_manager": ParquetIOManager(base_dir=str(store)),
    }
    return dg.materialize(
        [source, asset], resources=resources, selection=[asset.key], run_config=QUIET
    )


def bare(frame: pd.DataFrame, base: str, concurrency: int, out: Path, journal: Path) -> Any:
    with RowJournal(journal, job_id="bare") as j:
        return enrich(
            frame, WORKFLOW, engine_options(base, concurrency), destination=out, journal=j
        ).stats


async def engine_only(base: str, n: int, concurrency: int) -> None:
    run = run_workflow_rows(WORKFLOW, company_rows(n), engine_options(base, concurrency))
    async for result in run:
        assert result.status == "succeeded", result.error


def engine_alone(base: str, n: int, concurrency: int) -> None:
    asyncio.run(engine_only(base, n, concurrency))


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rows", type=int, default=10_000)
    args_parser.add_argument("--concurrency", type=int, default=64)
    args_parser.add_argument("--repeat", type=int, default=2)
    args = args_parser.parse_args(argv)
    n, c = args.rows, args.concurrency
    print_header("4. Through Dagster (bench/dagster_overhead.py)")
    print(f"{n} rows, concurrency {c}, best of {args.repeat}", flush=True)
    frame = company_frame(n)
    best = {"asset": float("inf"), "bare": float("inf"), "engine": float("inf")}
    with emulator(emulator_config()) as emu, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "assets"
        base = emu.aitutor_url
        dg.materialize(
            [source_asset(frame)],
            resources={"io_manager": ParquetIOManager(base_dir=str(store))},
            run_config=QUIET,
        )  # the stored source (and Dagster's first-run costs), not timed
        asyncio.run(engine_only(base, 500, c))  # warm-up
        for attempt in range(args.repeat):
            journal, out, bare_journal = (
                work / f"journal-{attempt}",
                work / f"out-{attempt}.parquet",
                work / f"bare-journal-{attempt}",
            )
            passes: list[tuple[str, Callable[[], Any]]] = [
                ("asset", partial(materialize_enriched, frame, base, c, store, journal)),
                ("bare", partial(bare, frame, base, c, out, bare_journal)),
                ("engine", partial(engine_alone, base, n, c)),
            ]
            for label, call in passes if attempt % 2 == 0 else passes[::-1]:
                emu.reset()
                value, took = timed(call)
                served = emu.stats()["runs_by_workflow"].get(WORKFLOW.workflow_id, 0)
                assert served == n, f"{label}: {served} runs for {n} rows"
                if label == "asset":
                    assert value.success
                best[label] = min(best[label], took.wall_s)
                print(
                    f"  {label:<7} {took.wall_s:6.2f} s  {n / took.wall_s:6.0f} rows/s  "
                    f"{took.cpu_s / n * 1e6:5.0f} us CPU/row",
                    flush=True,
                )
        written = pq.read_metadata(store / "companies_wf_bench_profile.parquet").num_rows
        assert written == n, written
    print(f"  (load {load()})")
    findings = [
        at_most(
            SCENARIO,
            "materialize(enriched asset) / bare enrich()",
            best["asset"] / best["bare"],
            1.2,
        ),
        info(
            SCENARIO, "materialize(enriched asset) / engine alone", best["asset"] / best["engine"]
        ),
        info(SCENARIO, "bare enrich() / engine alone", best["bare"] / best["engine"]),
        info(SCENARIO, "asset seconds", best["asset"]),
        info(SCENARIO, "bare enrich() seconds", best["bare"]),
    ]
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
