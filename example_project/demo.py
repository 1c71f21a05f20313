"""The example project, materialized through Dagster on the embedded emulator.

``make demo`` runs it; by hand, from the repository root: ``python -m example_project.demo``.

No account is needed and nothing is paid: any ``AITUTOR_API_KEY`` / ``RUNCHAT_API_KEY`` in
the environment is ignored, and an emulator of both services starts in this process on
loopback. The demo runs this example project (300 companies that arrived over five days),
runs its nightly job once per day through Dagster, so that each day's companies get an AI
Tutor summary with citations and a Runchat industry classification and the per-industry
summary is rebuilt, then prints where the Parquet files landed and what it cost. The assets
are incremental: run the demo again and every successful answer comes from the row journal;
only the rows that failed are paid for again.

The runs are kept in a local Dagster instance next to the Parquet files, so ``dagster dev``
can show them afterwards (the command is printed at the end).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dagster_runwf.emulator import Emulator, EmulatorConfig

from . import resources, settings
from .definitions import build_definitions

_DEFAULT_OUT = Path(__file__).resolve().parent / "output"
_ENRICHED = ("company_profiles", "company_industries")
_QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def dagster_home(out: Path) -> Path:
    """The demo's Dagster instance below ``out``, created (with an empty ``dagster.yaml``:
    the default local instance, without Dagster asking for one)."""
    home = out.resolve() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    return home


def ui_command(out: Path, home: Path) -> str:
    """The shell command that opens the Dagster UI on the demo's runs, to paste in the
    directory the demo ran from (the repository root, for ``make demo``).

    ``DAGSTER_HOME`` is absolute (Dagster refuses a relative one); ``dagster`` is the one
    next to the Python running the demo (``.venv/bin/dagster`` after ``make demo``), shown
    relative to the working directory when it is below it; every part is shell-quoted.
    """
    variables = {"DAGSTER_HOME": str(home.resolve())}
    if out.resolve() != _DEFAULT_OUT:
        variables = {"EXAMPLE_OUTPUT_DIR": str(out.resolve()), **variables}
    dagster = _shown(Path(sys.executable).parent / "dagster")
    if os.sep not in dagster:
        dagster = os.path.join(os.curdir, dagster)
    words = [f"{name}={shlex.quote(value)}" for name, value in variables.items()]
    words += [shlex.quote(dagster), "dev", "-m", "example_project.definitions"]
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process's exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out",
        default=str(_DEFAULT_OUT),
        help="folder for Parquet files, journals and the Dagster instance "
        "(default: example_project/output)",
    )
    out = Path(parser.parse_args(argv).out).resolve()
    # The demo never talks to a real service, whatever the shell holds.
    for name in ("AITUTOR_API_KEY", "RUNCHAT_API_KEY", "AITUTOR_BASE_URL", "RUNCHAT_BASE_URL"):
        os.environ.pop(name, None)
    os.environ["EXAMPLE_OUTPUT_DIR"] = str(out)
    home = dagster_home(out)
    os.environ["DAGSTER_HOME"] = str(home)

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)

    started = time.monotonic()
    with Emulator(EmulatorConfig.from_dict(resources.emulator_config())) as emulator:
        os.environ[resources.EMULATOR_URL_VARIABLE] = emulator.base_url
        print(f"emulator: AI Tutor and Runchat on {emulator.base_url} (no account)")
        defs = build_definitions()
        job = defs.resolve_job_def("nightly_enrichment_job")
        days = settings.DAILY.get_partition_keys()
        print(
            f"materializing example_project through Dagster: job {job.name}, "
            f"{len(days)} daily partitions ({days[0]} .. {days[-1]})"
        )
        totals: dict[str, Counter[str]] = defaultdict(Counter)
        checks: Counter[tuple[str, bool]] = Counter()
        with dg.DagsterInstance.get() as instance:
            for day in days:
                if not _run_day(job, instance, day, totals, checks):
                    return 1
            paid = sum(emulator.stats()["runs_by_workflow"].values())

    print()
    labels = {
        "company_profiles": f"AI Tutor {settings.aitutor_workflow_id()}",
        "company_industries": f"Runchat {settings.runchat_flow_id()}",
    }
    for node in _ENRICHED:
        t = totals[node]
        print(
            f"{node} ({labels[node]}): {t['rows']} rows, {t['succeeded']} succeeded, "
            f"{t['failed']} failed; {t['sent']} paid runs ({t['credits_spent']} credits), "
            f"{t['reused']} reused from the journal; {t['elapsed_ms'] / 1000:.1f} s"
        )
    summary = defs.resolve_assets_def("industry_summary")
    print(
        f"industry_summary: {_summary_line(settings.warehouse_dir() / 'industry_summary.parquet')}"
    )
    passed = sum(n for (_, ok), n in checks.items() if ok)
    print(f"asset checks: {passed} of {sum(checks.values())} passed")
    print(f"paid runs received by the emulator: {paid}")
    print()
    warehouse = settings.warehouse_dir()
    print(f"Parquet: {_shown(warehouse)}/")
    for node in (*_ENRICHED, "companies"):
        files = sorted((warehouse / node).glob("*.parquet"))
        print(f"  {node}/  {len(files)} files, one per day ({files[0].name} .. {files[-1].name})")
    print(f"  {summary.key.to_user_string()}.parquet")
    print(f"journal: {_shown(out / 'journal')}/")
    print(f"done in {time.monotonic() - started:.1f} s")
    failed = sum(totals[node]["failed"] for node in _ENRICHED)
    print(
        "the assets are incremental: a rerun reuses every successful answer from the journal "
        f"and pays only for the {failed} rows that failed"
    )
    print("browse these runs in the Dagster UI (then open http://127.0.0.1:3000):")
    print(f"  {ui_command(out, home)}")
    return 0


def _run_day(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    day: str,
    totals: dict[str, Counter[str]],
    checks: Counter[tuple[str, bool]],
) -> bool:
    """Run the job on one day's partition and print one line about it, adding its counts to
    ``totals`` and its check results to ``checks``; ``False`` (after saying why) if it failed."""
    day_started = time.monotonic()
    result = job.execute_in_process(
        partition_key=day,
        instance=instance,
        run_config=_QUIET_RUN_CONFIG,
        raise_on_error=False,
    )
    if not result.success:
        print(f"  {day}: run {result.run_id} failed:")
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data is not None:
                print(f"    {event.step_key}: {event.step_failure_data.error}")
        return False
    line = []
    for node in _ENRICHED:
        (materialization,) = result.asset_materializations_for_node(node)
        meta = {k: v.value for k, v in materialization.metadata.items()}
        for name in ("rows", "succeeded", "failed", "sent", "reused", "credits_spent"):
            totals[node][name] += int(_number(meta.get(f"runwf/{name}")))
        totals[node]["elapsed_ms"] += int(1000 * _number(meta.get("runwf/elapsed_s")))
        line.append(
            f"{node} {meta['runwf/succeeded']}/{meta['runwf/rows']} ok, {meta['runwf/sent']} paid"
        )
    for evaluation in result.get_asset_check_evaluations():
        checks[(evaluation.check_name, evaluation.passed)] += 1
    print(f"  {day}: {'; '.join(line)} ({time.monotonic() - day_started:.1f} s)")
    return True


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _summary_line(path: Path) -> str:
    frame = pd.read_parquet(path)
    companies, failed = int(frame["companies"].sum()), int(frame["failed"].sum())
    rate = failed / companies if companies else 0.0
    return (
        f"{len(frame)} rows (industry x country) over {companies} companies, "
        f"{failed} failed ({rate:.1%}), {int(frame['classified'].sum())} classified"
    )


if __name__ == "__main__":
    sys.exit(main())
