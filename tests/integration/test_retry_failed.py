"""``EnrichmentSettings.retry_failed`` (the YAML component's: ``test_component.py``): a
re-execution of a job answers the rows it recorded as failed from the journal (an unusable
answer was most likely paid: it is not paid again), unless the setting asks for them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY

ROWS = [f"company {i}" for i in range(5)]


@dg.asset
def companies() -> pd.DataFrame:
    return pd.DataFrame({"name": ROWS})


def paid_per_row(emu: Emulator) -> list[int]:
    return sorted(emu.stats()["runs_by_sha256"].values())


def run_in_group(
    assets: list[Any], resource: AITutorResource, run_id: str, partition: str | None = None
) -> pd.DataFrame:
    """Materialize ``assets`` as run ``run_id`` (each call a fresh instance, so the same id
    stands for a re-execution of the same run group: the same journal job)."""
    defs = dg.Definitions(assets=assets, resources={"aitutor": resource})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(run_id=run_id, partition_key=partition)
    assert result.success
    table: pd.DataFrame = result.output_for_node(assets[-1].node_def.name)
    return table


def test_retry_failed_sends_a_jobs_failed_rows_again(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(
        rate_limit_enabled=False,
        workflows=[ECHO],
        faults={"fail_attempts": 100, "fail_with": "number_result"},
    )
    resource = AITutorResource(
        api_key=KEY, base_url=emu.aitutor_url, rate="unlimited", initial_backoff_s=0.01
    )

    def asset(**settings: Any) -> dg.AssetsDefinition:
        return enriched_asset(
            source=companies,
            workflow=AITutorWorkflow("wf_echo", ["text"]),
            settings=EnrichmentSettings(
                columns={"text": "name"}, journal_dir=str(tmp_path), **settings
            ),
        )

    run_id = str(uuid.uuid4())
    first = run_in_group([companies, asset()], resource, run_id)
    assert list(first["wf_error_type"]) == ["UnusableAnswerError"] * len(ROWS)
    assert paid_per_row(emu) == [2] * len(ROWS)

    again = run_in_group([companies, asset()], resource, run_id)
    assert list(again["wf_status"]) == ["failed"] * len(ROWS)
    assert paid_per_row(emu) == [2] * len(ROWS), "the re-execution paid nothing"

    emu.update_config({"faults": {"fail_attempts": 0}})
    retried = run_in_group([companies, asset(retry_failed=True)], resource, run_id)
    assert list(retried["wf_status"]) == ["succeeded"] * len(ROWS)
    assert paid_per_row(emu) == [3] * len(ROWS)
