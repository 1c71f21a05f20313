"""The chunked enriched asset: a graph of split, per-chunk enrich steps and collect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pydantic
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    Budget,
    EnrichmentSettings,
    enriched_asset,
)
from dagster_runwf.emulator.server import EmulatorProcess
from dagster_runwf.integration.chunks import chunk_budget

from ..conftest import ECHO, KEY
from .conftest import most_chunk_steps_at_once

# Timing and identity columns differ between any two runs; everything else must not.
VARYING = ["wf_latency_s", "wf_finished_at", "wf_instance_id", "wf_metadata"]


@dg.asset
def companies() -> pd.DataFrame:
    """41 rows with a non-default index, one row the workflow fails on and one null."""
    names: list[str | None] = [*(f"company {i}" for i in range(38)), "bad one", None, "last"]
    frame = pd.DataFrame({"name": names, "n": range(41)})
    return frame.set_index(pd.Index([f"id-{i}" for i in range(41)], name="company_id"))


def profiles(tmp_path: Path, **arguments: Any) -> dg.AssetsDefinition:
    """The enriched companies; ``arguments`` are EnrichmentSettings fields or the factory's."""
    settings = {
        k: arguments.pop(k) for k in list(arguments) if k in EnrichmentSettings.model_fields
    }
    return enriched_asset(
        source=companies,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path / "journal"), **settings
        ),
        **arguments,
    )


def test_the_chunked_asset_builds_the_same_table_metadata_and_checks_as_one_step(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    one_step = profiles(tmp_path, name="one_step")
    chunked = profiles(tmp_path, name="chunked", chunk_size=7, retry_policy=dg.RetryPolicy())
    result = dg.materialize(
        [companies, one_step, chunked],
        resources={"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url)},
    )
    assert result.success
    expected = result.output_for_node("one_step")
    table = result.output_for_node("chunked")
    assert len(table) == 41 and table.index.equals(expected.index)
    pd.testing.assert_frame_equal(table.drop(columns=VARYING), expected.drop(columns=VARYING))
    assert table["wf_status"].value_counts().to_dict() == {"succeeded": 39, "failed": 2}
    assert list(table.loc["id-40", "wf_citations"]) == ["https://example.com/last"]

    steps = {e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert sum("enrich_chunk[chunk_" in s for s in steps) == 6, "41 rows in chunks of 7"

    def metadata(node: str) -> dict[str, Any]:
        (event,) = result.asset_materializations_for_node(node)
        return {k: v.value for k, v in event.metadata.items()}

    one, many = metadata("one_step"), metadata("chunked")
    assert set(many) == set(one) | {"runwf/chunks"} and many["runwf/chunks"] == 6
    for key in ["dagster/row_count", "runwf/rows", "runwf/succeeded", "runwf/failed"]:
        assert many[key] == one[key], key
    assert many["runwf/sent"] == one["runwf/sent"] == 40, "the null row is never sent"
    assert many["runwf/credits_before"] > 0, "the pre-flight ran in the split step"
    assert many["dagster/column_schema"] == one["dagster/column_schema"]
    assert many["dagster/column_lineage"] == one["dagster/column_lineage"]

    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    names = {name for _, name in checks}
    assert len(checks) == 2 * len(names) and "undefined_answers" in names
    for name in names:
        assert checks[("chunked", name)].passed == checks[("one_step", name)].passed, name
    assert chunked.code_versions_by_key[chunked.key] == one_step.code_versions_by_key[one_step.key]


def test_an_empty_table_is_one_empty_chunk(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])

    @dg.asset(name="companies")
    def no_companies() -> pd.DataFrame:
        return pd.DataFrame({"name": pd.Series([], dtype=object)})

    chunked = profiles(tmp_path, chunk_size=10, preflight=False)
    result = dg.materialize(
        [no_companies, chunked],
        resources={"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url)},
    )
    table = result.output_for_node(chunked.node_def.name)
    assert len(table) == 0 and "wf_status" in table.columns


@pytest.mark.parametrize("chunk_size", [0, -3, True, 2.5])
def test_a_bad_chunk_size_is_refused_when_the_settings_are_made(chunk_size: Any) -> None:
    with pytest.raises(pydantic.ValidationError, match="chunk_size"):
        EnrichmentSettings(chunk_size=chunk_size)


def test_chunk_budgets_never_add_up_to_more_than_the_budget() -> None:
    budget = Budget(max_runs=100, max_credits=50.0)
    for sizes in ([7] * 5 + [6], [1] * 41, [40, 1], [41]):
        shares = [chunk_budget(budget, size, sum(sizes)) for size in sizes]
        assert sum(s.max_runs or 0 for s in shares if s) <= 100
        assert sum(s.max_credits or 0 for s in shares if s) <= 50.0 + 1e-9
    assert chunk_budget(None, 5, 10) is None
    assert chunk_budget(Budget(max_runs=10), 5, 10) == Budget(max_runs=5)


def test_chunk_steps_in_parallel_processes_share_the_key_rate_and_resume(
    limited_location: EmulatorProcess,
) -> None:
    from .dagster_location.definitions import defs, enrich_companies_in_chunks_job

    emu = limited_location
    job = dg.reconstructable(enrich_companies_in_chunks_job)
    with dg.instance_for_test() as instance:
        with dg.execute_job(job, instance=instance) as first:
            assert not first.success, "the credits ran out after 15 runs"
            run_id = first.run_id
        assert sum(emu.stats()["runs_by_workflow"].values()) == 15

        emu.update_config({"keys": {KEY: {"credits": 1000}}})
        options = dg.ReexecutionOptions.from_failure(run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as second:
            assert second.success
            (event,) = second.asset_materializations_for_node("profiles_in_chunks")
            overlap = most_chunk_steps_at_once(instance, second.run_id)
        table = defs.load_asset_value("profiles_in_chunks", instance=instance)
        assert isinstance(table, pd.DataFrame)
        # Rows and results pass between the steps' processes, the key never does.
        stored = [p for p in Path(instance.root_directory).rglob("*") if p.is_file()]
        assert len(stored) > 10 and not [p for p in stored if KEY.encode() in p.read_bytes()]

    server = emu.stats()
    assert sum(server["runs_by_workflow"].values()) == 41, "the 15 paid rows were not paid again"
    # Chunks that finished in the first run are not run again; the others resumed.
    metadata: dict[str, Any] = {k: v.value for k, v in event.metadata.items()}
    assert metadata["runwf/rows"] == 41 and metadata["runwf/reused"] > 0
    assert len(table) == 41 and (table["wf_status"] == "succeeded").sum() == 40
    assert overlap >= 2, "chunk steps ran at the same time"
    # The key's rate held across the processes: unshared, four steps would send up to 20 a
    # second. Each fresh step process's first request opens its connection after its slot,
    # and is counted in every window it may arrive in.
    assert server["by_status"].get("429", 0) == 0
    assert max(server["max_requests_in_window"]["aitutor"].values()) <= 5
