"""A code location for tests: loaded by `dagster definitions validate` and by re-execution.

It reads where the emulator and the journal are from the environment, as a real project
reads its secrets, so that the same module works in the test process and in the step
subprocesses Dagster starts.
"""

import os

import dagster as dg
import pandas as pd

from dagster_runwf import AITutorResource, AITutorWorkflow, enriched_asset


@dg.asset
def companies() -> pd.DataFrame:
    """Forty companies, one of which the emulator's workflow fails on."""
    names = [f"company {i}" for i in range(40)] + ["bad one"]
    return pd.DataFrame({"name": names, "n": range(len(names))})


profiles = enriched_asset(
    source=companies,
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    name="profiles",
    columns={"text": "name"},
    journal_dir=os.environ.get("RUNWF_TEST_JOURNAL_DIR"),
    preflight=False,
    concurrency=2,
    failure_rate_threshold=0.05,
)

enrich_companies = dg.define_asset_job("enrich_companies", selection=[companies, profiles])

defs = dg.Definitions(
    assets=[companies, profiles],
    jobs=[enrich_companies],
    resources={
        "aitutor": AITutorResource(
            api_key=dg.EnvVar("AITUTOR_API_KEY"),
            base_url=dg.EnvVar("AITUTOR_BASE_URL"),
            rate="unlimited",
        )
    },
)


def enrich_companies_job() -> dg.JobDefinition:
    """The job, for `dagster.reconstructable`."""
    return defs.resolve_job_def("enrich_companies")
