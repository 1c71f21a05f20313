"""The enriched graph in an op-based job (an upstream op's DataFrame, the graph's chunk steps,
a downstream op), against the emulator: what it answers next to the enriched op, its chunk
steps in parallel processes sharing the key's rate, what a re-execution pays again (counted
by the emulator, server-side), the budget's shares, and its journal per graph node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorWorkflow, Budget, ConfigError, EnrichmentSettings, enriched_graph
from dagster_runwf.emulator.server import EmulatorProcess

from ..conftest import ECHO, KEY
from .conftest import most_chunk_steps_at_once
from .test_dagster_assets import resources
from .test_dagster_chunks import VARYING
from .test_dagster_job_identity import more_credits, runs_at
from .test_dagster_ops import output_metadata, profile_companies

GRAPH = "enrich_profiles_in_chunks"


def profile_companies_in_chunks() -> dg.ReconstructableJob:
    from .dagster_location import definitions

    return dg.reconstructable(definitions.profile_companies_in_chunks_job)


def chunk_steps(result: Any, event_type: str) -> list[str]:
    """The run's chunk steps that had an event of ``event_type``, sorted."""
    return sorted(
        e.step_key or ""
        for e in result.all_events
        if e.event_type_value == event_type and "enrich_chunk[" in (e.step_key or "")
    )


def test_an_enriched_graph_answers_every_row_in_chunk_steps_as_the_enriched_op_does(
    paying_location: Any, instance: dg.DagsterInstance
) -> None:
    more_credits(paying_location)
    with dg.execute_job(profile_companies_in_chunks(), instance=instance) as result:
        assert result.success
        assert result.output_for_node("count_answers") == {"succeeded": 40, "failed": 1}
        table = result.output_for_node(GRAPH)
        steps = chunk_steps(result, "STEP_SUCCESS")
        metadata = output_metadata(result, f"{GRAPH}.collect")
    with dg.execute_job(profile_companies("in_process"), instance=instance) as by_op:
        assert by_op.success
        expected = by_op.output_for_node("enrich_profiles")

    assert steps == [f"{GRAPH}.enrich_chunk[chunk_0000{n}]" for n in range(3)], "41 rows by 14"
    assert isinstance(table, pd.DataFrame) and len(table) == 41
    pd.testing.assert_frame_equal(table.drop(columns=VARYING), expected.drop(columns=VARYING))
    assert metadata["runwf/chunks"] == 3 and metadata["dagster/row_count"] == 41
    assert metadata["runwf/rows"] == 41 and metadata["runwf/succeeded"] == 40
    assert metadata["runwf/failed"] == 1 and metadata["runwf/sent"] == 41
    assert "dagster/column_lineage" not in metadata, "a graph's output has no asset lineage"
    assert runs_at(paying_location) == 82, "each job paid for its 41 rows (journals apart)"


def test_an_enriched_graph_re_executed_after_a_credit_stop_pays_only_for_unfinished_rows(
    limited_location: EmulatorProcess, instance: dg.DagsterInstance
) -> None:
    emu = limited_location
    job = profile_companies_in_chunks()
    with dg.execute_job(job, instance=instance) as first:
        assert not first.success, "the key's 15 credits ran out"
        failed = chunk_steps(first, "STEP_FAILURE")
        overlaps = [most_chunk_steps_at_once(instance, first.run_id)]
    assert sum(emu.stats()["runs_by_workflow"].values()) == 15
    assert failed, "a chunk step failed"

    emu.update_config({"keys": {KEY: {"credits": 1000}}})
    options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
    with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
        assert second.success
        assert second.output_for_node("count_answers") == {"succeeded": 40, "failed": 1}
        rerun = chunk_steps(second, "STEP_SUCCESS")
        metadata = output_metadata(second, f"{GRAPH}.collect")
        overlaps.append(most_chunk_steps_at_once(instance, second.run_id))

    server = emu.stats()
    assert sum(server["runs_by_workflow"].values()) == 41, "the 15 paid rows were not paid again"
    assert rerun == failed, "chunk steps that succeeded were not run again"
    assert metadata["runwf/rows"] == 41 and metadata["runwf/reused"] > 0
    assert metadata["runwf/sent"] + metadata["runwf/reused"] == 41
    assert max(overlaps) >= 2, "chunk steps ran at the same time"
    # The key's rate (5/s) held across the chunk steps' processes.
    assert server["by_status"].get("429", 0) == 0
    assert max(server["max_requests_in_window"]["aitutor"].values()) <= 5


def test_an_enriched_graph_shares_its_budget_out_between_its_chunks(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    enrich = enriched_graph(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"},
            journal_dir=str(tmp_path),
            chunk_size=14,
            budget=Budget(max_runs=30),
        ),
    )

    @dg.op
    def rows() -> pd.DataFrame:
        return pd.DataFrame({"name": [f"company {i}" for i in range(41)]})

    @dg.job
    def enrich_rows() -> None:
        enrich(rows())

    result = enrich_rows.execute_in_process(resources=resources(emu), raise_on_error=False)
    assert not result.success
    assert len(chunk_steps(result, "STEP_FAILURE")) == 3, "each chunk stopped at its share"
    # 30 runs in shares of 14/41, 14/41 and 13/41, rounded down: 10 + 10 + 9.
    assert runs_at(emu) == 29


@pytest.mark.parametrize("kind", ["pyarrow", "polars"])
def test_an_enriched_graph_returns_the_kind_it_was_given(
    start_emulator: Any, tmp_path: Path, kind: str
) -> None:
    module = pytest.importorskip(kind)
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    enrich = enriched_graph(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path), chunk_size=2
        ),
    )
    names = ["a", "b", "c", "d", "e"]
    frame_type = module.Table if kind == "pyarrow" else module.DataFrame

    @dg.op
    def rows() -> Any:
        return (
            module.table({"name": names})
            if kind == "pyarrow"
            else module.DataFrame({"name": names})
        )

    @dg.job
    def enrich_rows() -> None:
        enrich(rows())

    result = enrich_rows.execute_in_process(resources=resources(emu))
    value = result.output_for_node("enrich_wf_echo_in_chunks")
    assert isinstance(value, frame_type)
    table = value.to_pandas()
    assert list(table["name"]) == names and list(table["wf_status"]) == ["succeeded"] * 5
    assert len(chunk_steps(result, "STEP_SUCCESS")) == 3


def test_one_enriched_graph_twice_in_a_job_journals_each_node_apart(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    enrich = enriched_graph(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path), chunk_size=2
        ),
    )

    @dg.op
    def rows() -> pd.DataFrame:
        return pd.DataFrame({"name": ["a", "b", "c"]})

    @dg.job
    def twice() -> None:
        enrich(rows())
        enrich.alias("again")(rows())

    assert twice.execute_in_process(resources=resources(emu)).success
    journals = sorted(p.name for p in (tmp_path / "twice").iterdir())
    assert journals == ["again", "enrich_wf_echo_in_chunks"]
    assert runs_at(emu) == 6, "each node paid for its own rows"


def test_an_enriched_graph_needs_a_chunk_size() -> None:
    with pytest.raises(ConfigError, match=r"give EnrichmentSettings\.chunk_size"):
        enriched_graph(
            workflow=AITutorWorkflow("wf_echo", ["text"]),
            settings=EnrichmentSettings(columns={"text": "name"}),
        )
