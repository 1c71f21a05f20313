"""The enriched op in an op-based job (an upstream op's DataFrame, the op, a downstream op),
in one process and with a process per step, against the emulator: what it answers, its
output's metadata, and what a re-execution or a new run after a failed one pays again
(counted by the emulator, server-side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorWorkflow, ConfigError, EnrichmentSettings, enriched_op
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO
from .test_dagster_assets import resources
from .test_dagster_job_identity import more_credits, runs_at

EXECUTORS = ["in_process", "multiprocess"]


def profile_companies(executor: str) -> dg.ReconstructableJob:
    from .dagster_location import definitions

    if executor == "in_process":
        return dg.reconstructable(definitions.profile_companies_in_process_job)
    return dg.reconstructable(definitions.profile_companies_in_processes_job)


def output_metadata(result: Any, step: str = "enrich_profiles") -> dict[str, Any]:
    (event,) = [
        e for e in result.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == step
    ]
    return {name: value.value for name, value in event.step_output_data.metadata.items()}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_enriched_op_answers_its_rows_in_a_job(
    paying_location: Emulator, instance: dg.DagsterInstance, executor: str
) -> None:
    more_credits(paying_location)
    with dg.execute_job(profile_companies(executor), instance=instance) as result:
        assert result.success
        assert result.output_for_node("count_answers") == {"succeeded": 40, "failed": 1}
        metadata = output_metadata(result)
    assert metadata["runwf/rows"] == 41 and metadata["runwf/succeeded"] == 40
    assert metadata["runwf/failed"] == 1 and metadata["runwf/sent"] == 41
    assert metadata["dagster/row_count"] == 41
    assert "dagster/column_lineage" not in metadata, "an op's output has no asset lineage"
    assert runs_at(paying_location) == 41


@pytest.mark.parametrize("again", ["re_execute_from_failure", "new_run"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_after_a_failed_run_an_enriched_op_pays_only_for_unfinished_rows(
    paying_location: Emulator, instance: dg.DagsterInstance, executor: str, again: str
) -> None:
    job = profile_companies(executor)
    with dg.execute_job(job, instance=instance) as first:
        assert not first.success, "the key's 15 credits ran out"
        run_id = first.run_id
    assert runs_at(paying_location) == 15
    more_credits(paying_location)
    options = (
        dg.ReexecutionOptions.from_failure(run_id, instance)
        if again == "re_execute_from_failure"
        else None
    )
    with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
        assert second.success
        assert second.output_for_node("count_answers") == {"succeeded": 40, "failed": 1}
        metadata = output_metadata(second)
    assert runs_at(paying_location) == 41, "none of the 15 paid rows was paid again"
    assert metadata["runwf/reused"] == 15 and metadata["runwf/sent"] == 26


def test_an_enriched_op_returns_the_kind_it_was_given(start_emulator: Any, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    enrich = enriched_op(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(columns={"text": "name"}, journal_dir=str(tmp_path)),
    )

    @dg.op
    def rows() -> Any:
        return pa.table({"name": ["a", "b"]})

    @dg.job
    def enrich_rows() -> None:
        enrich(rows())

    result = enrich_rows.execute_in_process(resources=resources(emu))
    value = result.output_for_node("enrich_wf_echo")
    assert isinstance(value, pa.Table)
    assert value.column("wf_status").to_pylist() == ["succeeded", "succeeded"]


def test_an_enriched_op_refuses_chunk_size() -> None:
    with pytest.raises(ConfigError, match="chunk_size is for enriched_asset"):
        enriched_op(
            workflow=AITutorWorkflow("wf_echo", ["text"]),
            settings=EnrichmentSettings(chunk_size=10),
        )


def test_one_enriched_op_in_two_jobs_has_a_journal_per_job(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    enrich = enriched_op(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(columns={"text": "name"}, journal_dir=str(tmp_path)),
    )

    @dg.op
    def rows() -> pd.DataFrame:
        return pd.DataFrame({"name": ["a", "b", "c"]})

    @dg.job
    def first() -> None:
        enrich(rows())

    @dg.job
    def second() -> None:
        enrich(rows())

    assert first.execute_in_process(resources=resources(emu)).success
    assert second.execute_in_process(resources=resources(emu)).success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second"]
