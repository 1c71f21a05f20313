"""A code location for the distributed tests: a chunked enriched asset on Dagster's celery
executor, the key's rate and the row claims shared through a Redis store (the same rows on
its dask executor: ``on_dask.py``).

Everything a worker needs comes from the environment, as on real hosts: the emulator
(``AITUTOR_API_KEY``, ``AITUTOR_BASE_URL``), the Redis store (``RUNWF_TEST_STORE_URL``), the
journal and the Parquet files (``RUNWF_TEST_JOURNAL_DIR``, ``RUNWF_TEST_OUTPUT_DIR``) and,
for the celery workers, the broker (``RUNWF_TEST_BROKER_URL``, see ``celery_app.py``). The
executors' settings come in the run's config (see :func:`celery_config`).
"""

import os
from typing import Any

import dagster as dg
import pandas as pd
from dagster_celery import celery_executor

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    ParquetIOManager,
    enriched_asset,
)

ROWS = 60
CHUNK_SIZE = 10
CONCURRENCY = 3
RATE_PER_S = 20
CLAIM_TTL_S = 3.0


def celery_config(broker_url: str) -> dict[str, Any]:
    """The celery executor's settings: the broker (also the results' backend) and late
    acknowledgement, so that a chunk whose worker was killed mid-chunk goes back to the
    queue for another worker."""
    return {
        "broker": broker_url,
        "backend": broker_url,
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
        },
    }


def company_rows() -> pd.DataFrame:
    """Sixty companies, one of which the emulator's workflow fails on."""
    names = [f"company {i}" for i in range(ROWS - 1)] + ["bad one"]
    return pd.DataFrame({"name": names, "n": range(ROWS)})


@dg.asset
def companies() -> pd.DataFrame:
    """The rows, as an asset."""
    return company_rows()


def settings() -> EnrichmentSettings:
    return EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=CONCURRENCY,
    )


WORKFLOW = AITutorWorkflow("wf_slow", ["text"])

CELERY_CASES = ("shared", "killed", "restarted")
"""One chunked asset for each celery test, each with journal jobs of its own."""


def profiles_in_chunks(case: str) -> dg.AssetsDefinition:
    """The chunked asset of test ``case``: six chunk steps."""
    return enriched_asset(
        source=companies,
        workflow=WORKFLOW,
        name=f"profiles_{case}",
        settings=settings().model_copy(update={"chunk_size": CHUNK_SIZE}),
        io_manager_key="parquet",
        # A chunk whose Redis store went away mid-run fails (ClaimStoreError) and runs again.
        retry_policy=dg.RetryPolicy(max_retries=5, delay=1.0),
    )


chunked = {case: profiles_in_chunks(case) for case in CELERY_CASES}
on_celery = {
    case: dg.define_asset_job(
        f"on_celery_{case}", selection=[companies, chunked[case]], executor_def=celery_executor
    )
    for case in CELERY_CASES
}


defs = dg.Definitions(
    assets=[companies, *chunked.values()],
    jobs=list(on_celery.values()),
    resources={
        "aitutor": AITutorResource(
            api_key=dg.EnvVar("AITUTOR_API_KEY"),
            base_url=dg.EnvVar("AITUTOR_BASE_URL"),
            rate=f"{RATE_PER_S}/s",
            rate_limit_store=dg.EnvVar("RUNWF_TEST_STORE_URL"),
            claim_store=dg.EnvVar("RUNWF_TEST_STORE_URL"),
            claim_ttl_s=CLAIM_TTL_S,
        ),
        "parquet": ParquetIOManager(base_dir=dg.EnvVar("RUNWF_TEST_OUTPUT_DIR")),
    },
)


def on_celery_job(case: str) -> dg.JobDefinition:
    """Test ``case``'s chunked asset's job on celery, for `dagster.build_reconstructable_job`."""
    return defs.resolve_job_def(f"on_celery_{case}")
