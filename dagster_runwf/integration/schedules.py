"""A nightly enrichment in one line: a job over the enriched assets and its schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what build_schedule_from_partitioned_job returns; not exported by dagster
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )

Selectable = dg.AssetsDefinition | dg.AssetKey | str


def nightly_schedule(
    assets: Sequence[Selectable],
    *,
    name: str = "nightly_enrichment",
    hour_of_day: int = 2,
    minute_of_hour: int = 0,
    execution_timezone: str | None = None,
    running: bool = False,
) -> dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """A schedule that materializes ``assets`` (and their checks) every night.

    For daily-partitioned assets each tick materializes the partition of the day that just
    ended ("enrich the rows that arrived yesterday"); otherwise each tick materializes the
    whole assets. Combine with ``EnrichmentSettings(incremental=True)`` so a nightly run of
    an unpartitioned table pays only for new or changed rows.

    Args:
        assets: the assets to materialize (definitions, keys or key strings).
        name: the schedule's name; its job is named ``<name>_job``.
        hour_of_day: the hour to run at, in ``execution_timezone`` (default UTC; for
            partitioned assets, the partitions' own timezone).
        minute_of_hour: the minute to run at.
        execution_timezone: the timezone of unpartitioned runs, e.g. ``"Europe/Berlin"``.
        running: start the schedule as running (default: stopped until turned on in the UI).

    Example::

        defs = dg.Definitions(assets=[...], schedules=[nightly_schedule([profiles])])
    """
    partitioned = [
        a for a in assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
    ]
    # Partitioning is inferred from the selected assets.
    job = dg.define_asset_job(
        f"{name}_job", selection=dg.AssetSelection.assets(*[_key(a) for a in assets])
    )
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    if partitioned:
        return dg.build_schedule_from_partitioned_job(
            job,
            name=name,
            hour_of_day=hour_of_day,
            minute_of_hour=minute_of_hour,
            default_status=status,
        )
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=f"{minute_of_hour} {hour_of_day} * * *",
        execution_timezone=execution_timezone,
        default_status=status,
    )


def _key(asset: Selectable) -> dg.AssetKey:
    if isinstance(asset, dg.AssetsDefinition):
        return asset.key
    return asset if isinstance(asset, dg.AssetKey) else dg.AssetKey.from_user_string(asset)
