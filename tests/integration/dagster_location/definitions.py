"""A code location for tests: loaded by `dagster definitions validate` and by re-execution.

It reads where the emulator and the journal are from the environment, as a real project
reads its secrets, so that the same module works in the test process and in the step
subprocesses Dagster starts.
"""

import os

import dagster as dg
import pandas as pd

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    enriched_asset,
    enriched_graph,
    enriched_op,
)


def company_rows() -> pd.DataFrame:
    """Forty companies, one of which the emulator's workflow fails on."""
    names = [f"company {i}" for i in range(40)] + ["bad one"]
    return pd.DataFrame({"name": names, "n": range(len(names))})


@dg.asset
def companies() -> pd.DataFrame:
    """Forty companies, one of which the emulator's workflow fails on."""
    return company_rows()


profiles = enriched_asset(
    source=companies,
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    name="profiles",
    settings=EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=2,
        failure_rate_threshold=0.05,
    ),
)

profiles_in_chunks = enriched_asset(
    source=companies,
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    name="profiles_in_chunks",
    settings=EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=4,
        chunk_size=10,
    ),
    resource_key="aitutor_at_5_per_s",
    retry_policy=dg.RetryPolicy(max_retries=1),
    pool="runwf_test_key",
)


@dg.asset
def many_companies() -> pd.DataFrame:
    """Two hundred companies, for runs slow enough to be killed halfway."""
    return pd.DataFrame({"name": [f"company {i}" for i in range(200)]})


slow_profiles = enriched_asset(
    source=many_companies,
    workflow=AITutorWorkflow("wf_slow", ["text"]),
    name="slow_profiles",
    settings=EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=4,
    ),
)

enrich_companies = dg.define_asset_job("enrich_companies", selection=[companies, profiles])

enrich_companies_in_chunks = dg.define_asset_job(
    "enrich_companies_in_chunks",
    selection=[companies, profiles_in_chunks],
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": 4}),
)

# Each step in a process of its own, started by the run's process.
enrich_many_companies = dg.define_asset_job(
    "enrich_many_companies",
    selection=[many_companies, slow_profiles],
    executor_def=dg.multiprocess_executor,
)


# An op-based job: an upstream op's DataFrame, the enriched op, a downstream op.
@dg.op
def load_companies() -> pd.DataFrame:
    """The same forty-one companies as the `companies` asset."""
    return company_rows()


enrich_profiles = enriched_op(
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    name="enrich_profiles",
    settings=EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=2,
    ),
)


@dg.op
def count_answers(result: pd.DataFrame) -> dict[str, int]:
    """How many rows the workflow answered, and how many failed."""
    return {str(status): int(n) for status, n in result["wf_status"].value_counts().items()}


# The same rows through the enriched graph: chunks of 14 (3 chunk steps), in parallel
# processes sharing the key's rate of 5 a second.
enrich_profiles_in_chunks = enriched_graph(
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    name="enrich_profiles_in_chunks",
    settings=EnrichmentSettings(
        columns={"text": "name"},
        journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
        preflight=False,
        concurrency=4,
        chunk_size=14,
    ),
    resource_key="aitutor_at_5_per_s",
    retry_policy=dg.RetryPolicy(max_retries=1),
)


@dg.job(executor_def=dg.in_process_executor)
def profile_companies_in_process() -> None:
    count_answers(enrich_profiles(load_companies()))


@dg.job(executor_def=dg.multiprocess_executor)
def profile_companies_in_processes() -> None:
    count_answers(enrich_profiles(load_companies()))


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": 4}))
def profile_companies_in_chunks() -> None:
    count_answers(enrich_profiles_in_chunks(load_companies()))


defs = dg.Definitions(
    assets=[companies, profiles, profiles_in_chunks, many_companies, slow_profiles],
    jobs=[
        enrich_companies,
        enrich_companies_in_chunks,
        enrich_many_companies,
        profile_companies_in_process,
        profile_companies_in_processes,
        profile_companies_in_chunks,
    ],
    resources={
        "aitutor": AITutorResource(
            api_key=dg.EnvVar("AITUTOR_API_KEY"),
            base_url=dg.EnvVar("AITUTOR_BASE_URL"),
            rate="unlimited",
        ),
        # The chunk steps share this rate through the default rate-limit store ("auto": a
        # SQLite file in the instance's storage).
        "aitutor_at_5_per_s": AITutorResource(
            api_key=dg.EnvVar("AITUTOR_API_KEY"),
            base_url=dg.EnvVar("AITUTOR_BASE_URL"),
            rate="5/s",
        ),
    },
)


def enrich_companies_job() -> dg.JobDefinition:
    """The job, for `dagster.reconstructable`."""
    return defs.resolve_job_def("enrich_companies")


def enrich_companies_in_chunks_job() -> dg.JobDefinition:
    """The chunked job, for `dagster.reconstructable`."""
    return defs.resolve_job_def("enrich_companies_in_chunks")


def enrich_many_companies_job() -> dg.JobDefinition:
    """The slow multiprocess job, for `dagster.reconstructable`."""
    return defs.resolve_job_def("enrich_many_companies")


def profile_companies_in_process_job() -> dg.JobDefinition:
    """The op-based job, in one process, for `dagster.reconstructable`."""
    return defs.resolve_job_def("profile_companies_in_process")


def profile_companies_in_processes_job() -> dg.JobDefinition:
    """The op-based job, a process per step, for `dagster.reconstructable`."""
    return defs.resolve_job_def("profile_companies_in_processes")


def profile_companies_in_chunks_job() -> dg.JobDefinition:
    """The op-based job with the enriched graph, for `dagster.reconstructable`."""
    return defs.resolve_job_def("profile_companies_in_chunks")
