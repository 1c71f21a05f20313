"""``EnrichmentSettings.retry_failed`` (the YAML component's: ``test_component.py``): a
re-execution of a job answers the rows it recorded as failed from the journal (an unusable
answer was most likely paid: it is not paid again), unless the setting asks for them."""

from __future__ import annotations

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


class FailingIOManager(dg.ConfigurableIOManager):
    """Cannot store anything: the step's results never land, so its journal job stays open
    and the next run of the asset resumes it."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        raise OSError("the bucket is gone")

    def load_input(self, context: dg.InputContext) -> Any:
        raise NotImplementedError


def run_asset(
    assets: list[Any],
    resource: AITutorResource,
    partition: str | None = None,
    *,
    lands: bool = True,
) -> pd.DataFrame | None:
    """Materialize ``assets`` (the enriched one stores through the ``results`` IO manager);
    with ``lands=False`` its results are not stored, so the next run resumes its job.
    Returns the enriched table when it landed."""
    results = dg.mem_io_manager if lands else FailingIOManager()
    defs = dg.Definitions(assets=assets, resources={"aitutor": resource, "results": results})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key=partition, raise_on_error=False)
    assert result.success == lands
    if not lands:
        return None
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
            io_manager_key="results",
        )

    # Results that did not land leave the job open: the next run of the asset resumes it.
    run_asset([companies, asset()], resource, lands=False)
    assert paid_per_row(emu) == [2] * len(ROWS)
    run_asset([companies, asset()], resource, lands=False)
    assert paid_per_row(emu) == [2] * len(ROWS), "the next run paid nothing"

    emu.update_config({"faults": {"fail_attempts": 0}})
    retried = run_asset([companies, asset(retry_failed=True)], resource)
    assert retried is not None
    assert list(retried["wf_status"]) == ["succeeded"] * len(ROWS)
    assert paid_per_row(emu) == [3] * len(ROWS)
