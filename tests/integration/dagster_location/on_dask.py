"""The distributed tests' rows on Dagster's dask executor (apart from ``distributed.py`` so
that the celery workers never import dask)."""

import os

import dagster as dg
import pandas as pd
from dagster_dask import dask_executor

from dagster_runwf import enriched_op

from .distributed import (
    CHUNK_SIZE,
    ROWS,
    WORKFLOW,
    companies,
    company_rows,
    defs,
    profiles_in_chunks,
    settings,
)


# dagster-dask schedules a run's steps by level, before any runs, so it cannot run steps
# mapped over a DynamicOut (the chunked asset's): its chunks are fixed ops here instead.
def part_op(number: int) -> dg.OpDefinition:
    @dg.op(name=f"part_{number}")
    def part(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.iloc[number * CHUNK_SIZE : (number + 1) * CHUNK_SIZE]

    return part


@dg.op
def load_companies() -> pd.DataFrame:
    """The same sixty companies."""
    return company_rows()


@dg.op(ins={f"part_{i}": dg.In(pd.DataFrame) for i in range(ROWS // CHUNK_SIZE)})
def write_profiles(**parts: pd.DataFrame) -> None:
    """The chunks' results in their rows' order, written as one Parquet file."""
    table = pd.concat([parts[f"part_{i}"] for i in range(len(parts))])
    table.to_parquet(os.path.join(os.environ["RUNWF_TEST_OUTPUT_DIR"], "on_dask.parquet"))


@dg.job(executor_def=dask_executor)
def on_dask() -> None:
    rows = load_companies()
    results = {}
    for i in range(ROWS // CHUNK_SIZE):
        enrich = enriched_op(workflow=WORKFLOW, name=f"enrich_part_{i}", settings=settings())
        results[f"part_{i}"] = enrich(part_op(i)(rows))
    write_profiles(**results)


# The chunked asset on dask: refused by its split step (the chunk steps would never run).
profiles_on_dask = profiles_in_chunks("on_dask")
chunked_on_dask = dg.define_asset_job(
    "chunked_on_dask", selection=[companies, profiles_on_dask], executor_def=dask_executor
)

dask_defs = dg.Definitions(
    assets=[companies, profiles_on_dask],
    jobs=[on_dask, chunked_on_dask],
    resources=defs.resources,
)


def on_dask_job() -> dg.JobDefinition:
    """The job, with the location's resources, for `dagster.build_reconstructable_job`."""
    return dask_defs.resolve_job_def("on_dask")


def chunked_on_dask_job() -> dg.JobDefinition:
    """The chunked asset's job on dask, for `dagster.build_reconstructable_job`."""
    return dask_defs.resolve_job_def("chunked_on_dask")
