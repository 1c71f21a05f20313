"""``enrichment_plan_check``: an enriched asset's plan as an asset check executed through
Dagster, alone: no paid run reaches the emulator and nothing is materialized, and its
counts are what the materialization that follows sends and reuses (counted at the
emulator): fresh, after a run the budget stopped (rows journaled, one failed), with
duplicates and a skipped row, chunked, and — from another partition's journal — the credits
a run is expected to cost."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    Budget,
    ConfigError,
    EnrichmentSettings,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
    enrichment_plan_check,
)
from dagster_runwf.emulator import Emulator

from ..conftest import COSTLY, ECHO, KEY

TEXTS: list[str | None] = ["p0", "bad-1", "p2", "p0", None, "p5", "p6", "p2", "p8", "p9"]
"""Ten rows: two duplicates (rows 3 and 7), a missing input (row 4, skipped), and a row the
echo workflow fails (row 1, among the first paid)."""


@dg.asset
def texts() -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS})


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def enriched(journal: Path, **settings: Any) -> dg.AssetsDefinition:
    return enriched_asset(
        source=texts,
        workflow=AITutorWorkflow("wf_echo", ["text"], on_missing="skip"),
        name="echoed",
        settings=EnrichmentSettings(journal_dir=str(journal), concurrency=1, **settings),
    )


def runs(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def plan(
    instance: dg.DagsterInstance,
    emu: Emulator,
    asset: dg.AssetsDefinition,
    resources: dict[str, Any],
    partition: str | None = None,
    source: dg.AssetsDefinition = texts,
) -> dict[str, Any]:
    """Execute the plan check alone (with the source, which it reads); its metadata. Checks
    that it paid for no run and materialized nothing."""
    check = enrichment_plan_check(asset)
    before = runs(emu)
    result = dg.materialize(
        [source, asset, check],
        instance=instance,
        resources=resources,
        partition_key=partition,
        selection=dg.AssetSelection.assets(source) | dg.AssetSelection.checks(check),
    )
    assert result.success
    assert runs(emu) == before, "the plan paid for a run"
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == asset.key]
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.check_name == "plan"
    return {k.removeprefix("runwf/plan/"): v.value for k, v in evaluation.metadata.items()}


def materialize(
    instance: dg.DagsterInstance,
    emu: Emulator,
    asset: dg.AssetsDefinition,
    resources: dict[str, Any],
    partition: str | None = None,
    source: dg.AssetsDefinition = texts,
) -> tuple[int, dict[str, Any]]:
    """Materialize the asset; the runs it paid for, and its metadata (``{}`` if it failed)."""
    before = runs(emu)
    result = dg.materialize(
        [source, asset],
        instance=instance,
        resources=resources,
        partition_key=partition,
        raise_on_error=False,
    )
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset.key]
    metadata = {k: v.value for k, v in events[0].materialization.metadata.items()} if events else {}
    return runs(emu) - before, metadata


def test_the_plan_check_pays_nothing_and_counts_what_the_materialization_sends(
    start_emulator: Callable[..., Emulator], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    resources = {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url)}
    stopped = enriched(tmp_path, incremental=True, budget=Budget(max_runs=3))
    full = enriched(tmp_path, incremental=True)

    fresh = plan(instance, emu, full, resources)
    assert (fresh["rows"], fresh["send"], fresh["reused"], fresh["deduplicated"]) == (10, 7, 0, 2)
    assert (fresh["skipped"], fresh["rejected"]) == (1, 0)
    assert "expected_credits" not in fresh, "AI Tutor reports no credits per run: unknown"

    paid, _ = materialize(instance, emu, stopped, resources)
    assert paid == 3, "the budget stopped the run; its rows are journaled"
    partial = plan(instance, emu, full, resources)
    assert (partial["send"], partial["reused"], partial["reused_failed"]) == (4, 3, 1)

    paid, metadata = materialize(instance, emu, full, resources)
    assert paid == partial["send"] == metadata["runwf/sent"]
    assert metadata["runwf/reused"] == partial["reused"]
    assert metadata["runwf/deduplicated"] == partial["deduplicated"]
    assert metadata["runwf/skipped"] == partial["skipped"]

    # Landed: the next materialization starts a new job, which (incremental) reuses every
    # success and sends the failed row again.
    after = plan(instance, emu, full, resources)
    assert (after["send"], after["reused"]) == (1, 6)
    assert materialize(instance, emu, full, resources)[0] == 1


def test_a_chunked_asset_is_planned_chunk_by_chunk(
    start_emulator: Callable[..., Emulator], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})
    resources = {"aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url)}
    chunked = enriched(tmp_path, chunk_size=4)

    planned = plan(instance, emu, chunked, resources)
    # Rows 3 (chunk 0) and 7 (chunk 1) repeat rows 0 and 2 of chunk 0: only row 3 shares
    # its chunk's answer; row 7 is paid in its own chunk.
    assert (planned["send"], planned["deduplicated"]) == (8, 1)
    paid, metadata = materialize(instance, emu, chunked, resources)
    assert paid == planned["send"] == metadata["runwf/sent"]


def test_the_expected_credits_come_from_another_partitions_journal(
    start_emulator: Callable[..., Emulator], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[COSTLY], rate_limit_enabled=False, keys={KEY: {}})
    resources = {
        "runchat": RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited")
    }
    days = dg.StaticPartitionsDefinition(["2026-12-01", "2026-12-02"])

    @dg.asset(partitions_def=days)
    def notes(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"text": [f"{context.partition_key} #{i}" for i in range(4)]})

    costly = enriched_asset(
        source=notes,
        workflow=RunchatWorkflow("costly", ["text_n1"]),
        partitions_def=days,
        settings=EnrichmentSettings(columns={"text_n1": "text"}, journal_dir=str(tmp_path)),
    )
    first = plan(instance, emu, costly, resources, "2026-12-01", source=notes)
    assert "expected_credits" not in first, "no journal has a paid run yet: unknown"
    assert materialize(instance, emu, costly, resources, "2026-12-01", source=notes)[0] == 4

    second = plan(instance, emu, costly, resources, "2026-12-02", source=notes)
    assert second["credits_per_run"] == COSTLY["credits_per_run"]
    assert second["expected_credits"] == 4 * second["credits_per_run"]
    spent = emu.stats()["credits_spent"]
    materialize(instance, emu, costly, resources, "2026-12-02", source=notes)
    assert emu.stats()["credits_spent"] - spent == second["expected_credits"]


def test_only_an_enriched_asset_has_a_plan_check() -> None:
    with pytest.raises(ConfigError, match="enrichment_plan_check takes an asset built by"):
        enrichment_plan_check(texts)
