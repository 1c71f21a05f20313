"""``land_partial``: a run stopped by a fatal error or the budget stores its finished rows
(the others ``pending``) for downstream assets, while the step still fails with the stop, the
blocking ``complete`` check fails, and the journal job stays open for the pending rows."""

# No `from __future__ import annotations`: Dagster reads the asset functions' annotations.

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    Budget,
    EnrichmentSettings,
    ParquetIOManager,
    enriched_op,
)

from ..conftest import ECHO, KEY
from .test_component import AITUTOR_YAML
from .test_dagster_assets import companies, profiles, resources, runs_at

ROWS = 41
STOPS = {
    # how the run stops: (the emulator's keys, the asset's settings, runs paid, the message)
    "no_credits": ({KEY: {"credits": 10}}, {}, 10, "credits"),
    "budget": ({KEY: {}}, {"budget": Budget(max_runs=6)}, 6, "budget"),
}


def stored(tmp_path: Path) -> pd.DataFrame:
    return pq.read_table(tmp_path / "assets" / "companies_wf_echo.parquet").to_pandas()


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data
    assert data is not None and data.user_failure_data is not None
    return str(data.user_failure_data.description)


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stopped_run_lands_its_finished_rows_and_still_fails(
    stop: str, start_emulator: Any, tmp_path: Path
) -> None:
    keys, settings, paid, message = STOPS[stop]
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys=keys)
    asset = profiles(tmp_path, preflight=False, concurrency=1, land_partial=True, **settings)
    seen: list[pd.DataFrame] = []

    @dg.asset(ins={"profiles": dg.AssetIn(key=asset.key)})
    def downstream(profiles: pd.DataFrame) -> None:
        seen.append(profiles)

    io = {"io_manager": ParquetIOManager(base_dir=str(tmp_path / "assets"))}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [companies, asset, downstream],
            resources={**resources(emu), **io},
            raise_on_error=False,
            instance=instance,
        )
        assert not result.success
        assert message in failure_text(result).lower(), "the step fails with the stop"
        assert runs_at(emu) == paid
        assert seen == [], "downstream assets of the run do not run"

        table = stored(tmp_path)
        assert len(table) == ROWS
        assert table["wf_status"].value_counts().to_dict() == {
            "succeeded": paid,
            "pending": ROWS - paid,
        }
        pending = table[table["wf_status"] == "pending"]
        assert pending["wf_result"].isna().all() and pending["wf_finished_at"].isna().all()
        assert [len(cell) for cell in pending["wf_citations"]] == [0] * (ROWS - paid)
        names = [f"company {i}" for i in range(ROWS - 1)] + ["bad one"]
        assert list(table["name"]) == names, "in input order"

        (event,) = result.asset_materializations_for_node(asset.node_def.name)
        assert event.metadata["runwf/pending"].value == ROWS - paid
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not checks["complete"].passed
        assert checks["complete"].severity == dg.AssetCheckSeverity.ERROR
        assert checks["complete"].metadata["pending"].value == ROWS - paid
        assert checks["every_row_answered"].metadata["pending"].value == ROWS - paid
        assert checks["every_row_answered"].metadata["unknown_status"].value == 0

        # A later run of a downstream asset reads the partial table.
        later = dg.materialize(
            [companies, asset, downstream],
            resources={**resources(emu), **io},
            instance=instance,
            selection=[downstream.key],
        )
        assert later.success
        assert list(seen[0]["wf_status"]) == list(table["wf_status"])

        # The journal job stayed open: once the stop is lifted, the next run pays only for
        # the pending rows, and lands the whole table.
        emu.update_config({"keys": {KEY: {"credits": 1000}}})
        again = profiles(tmp_path, preflight=False, concurrency=1, land_partial=True)
        rerun = dg.materialize(
            [companies, again], resources={**resources(emu), **io}, instance=instance
        )
        assert rerun.success
        assert runs_at(emu) == ROWS
        assert set(stored(tmp_path)["wf_status"]) == {"succeeded", "failed"}
        checks = {c.check_name: c for c in rerun.get_asset_check_evaluations()}
        assert checks["complete"].passed


def test_without_land_partial_a_stopped_run_lands_nothing(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 10}})
    asset = profiles(tmp_path, preflight=False, concurrency=1)
    io = {"io_manager": ParquetIOManager(base_dir=str(tmp_path / "assets"))}
    result = dg.materialize(
        [companies, asset], resources={**resources(emu), **io}, raise_on_error=False
    )
    assert not result.success and "credits" in failure_text(result).lower()
    assert not (tmp_path / "assets" / "companies_wf_echo.parquet").exists()
    assert result.asset_materializations_for_node(asset.node_def.name) == []
    assert "complete" not in {spec.name for spec in asset.check_specs}


def test_a_chunked_asset_lands_every_chunks_finished_rows_then_fails(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {}})
    # 41 rows in chunks of 10, each chunk's budget a share of 20 runs: 4 runs a chunk (the
    # last, of one row, rounds down to 0).
    settings: dict[str, Any] = {
        "preflight": False,
        "concurrency": 1,
        "chunk_size": 10,
        "land_partial": True,
    }
    settings["io_manager_key"] = "parquet"  # the chunk steps' own outputs: the default one
    asset = profiles(tmp_path, budget=Budget(max_runs=20), **settings)
    io = {"parquet": ParquetIOManager(base_dir=str(tmp_path / "assets"))}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [companies, asset],
            resources={**resources(emu), **io},
            raise_on_error=False,
            instance=instance,
        )
        assert not result.success
        assert "5 of 5 chunks stopped" in failure_text(result)
        table = stored(tmp_path)
        assert table["wf_status"].value_counts().to_dict() == {"succeeded": 16, "pending": 25}
        assert list(table["wf_status"][:10]) == ["succeeded"] * 4 + ["pending"] * 6
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not checks["complete"].passed
        assert runs_at(emu) == 16

        again = profiles(tmp_path, **settings)
        rerun = dg.materialize(
            [companies, again], resources={**resources(emu), **io}, instance=instance
        )
        assert rerun.success
        assert runs_at(emu) == ROWS, "the finished rows of every chunk were not paid again"
        assert "pending" not in set(stored(tmp_path)["wf_status"])


def test_an_enriched_op_stores_its_partial_output_then_fails(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO], keys={KEY: {"credits": 4}})
    enrich = enriched_op(
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"},
            journal_dir=str(tmp_path / "journal"),
            preflight=False,
            concurrency=1,
            land_partial=True,
        ),
    )

    @dg.op
    def names() -> pd.DataFrame:
        return pd.DataFrame({"name": [f"company {i}" for i in range(9)]})

    @dg.job
    def profile() -> None:
        enrich(names())

    io = {"io_manager": ParquetIOManager(base_dir=str(tmp_path / "out"))}
    result = profile.execute_in_process(resources={**resources(emu), **io}, raise_on_error=False)
    assert not result.success and "credits" in failure_text(result).lower()
    (stored_file,) = (tmp_path / "out").rglob("enrich_wf_echo/result.parquet")
    statuses = pq.read_table(stored_file).column("wf_status").to_pylist()
    assert statuses == ["succeeded"] * 4 + ["pending"] * 5


def test_the_yaml_key_land_partial_adds_the_blocking_complete_check(
    load_yaml: Callable[[str], dg.Definitions], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (
        ("TEST_WORKFLOW_ID", "wf_echo"),
        ("AITUTOR_API_KEY", KEY),
        ("AITUTOR_BASE_URL", "http://127.0.0.1:9/aitutor/api/v1"),
        ("TEST_JOURNAL_DIR", str(tmp_path / "journal")),
    ):
        monkeypatch.setenv(name, value)
    defs = load_yaml(AITUTOR_YAML + "  land_partial: true\n")
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    checks = {spec.name: spec for spec in asset.check_specs}
    assert {"failure_rate", "every_row_answered", "complete"} <= set(checks)
    assert checks["complete"].blocking
