"""The enriched-asset factory: an upstream DataFrame asset in, one workflow run per row, the
results table out — with the row journal, metadata, checks and a code version — in one step,
or chunk by chunk in parallel steps (see :mod:`.chunks`). What a step does is in
:mod:`.plan`.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from ..engine.budget import Budget
from ..engine.table import DEFAULT_PREFIX
from ..errors import ConfigError
from ..services.base import Workflow
from .chunks import AssetDecorator, chunked_asset
from .plan import EnrichmentPlan, identifier

SourceAsset = str | Sequence[str] | dg.AssetKey | dg.AssetsDefinition | dg.AssetSpec


def enriched_asset(
    *,
    source: SourceAsset,
    workflow: Workflow,
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    resource_key: str | None = None,
    columns: Mapping[str, str] | None = None,
    keep_columns: Sequence[str] | None = None,
    output_columns: Mapping[str, str] | None = None,
    prefix: str = DEFAULT_PREFIX,
    rate: str | None = None,
    concurrency: int | None = None,
    budget: Budget | None = None,
    journal_dir: str | None = None,
    journal_storage_options: Mapping[str, Any] | None = None,
    incremental: bool = False,
    max_age: dt.timedelta | None = None,
    journal_version: str = "",
    preflight: bool = True,
    failure_rate_threshold: float = 0.05,
    failure_rate_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN,
    progress_interval_s: float = 10.0,
    partitions_def: dg.PartitionsDefinition[str] | None = None,
    group_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    owners: Sequence[str] | None = None,
    description: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    pool: str | None = None,
    io_manager_key: str | None = None,
    chunk_size: int | None = None,
) -> dg.AssetsDefinition:
    """An asset that runs ``workflow`` once per row of the ``source`` asset's DataFrame.

    The asset's value is the results table (a DataFrame: the kept input columns, then the
    ``wf_`` result columns, see ``docs/journal.md``), stored by the asset's IO manager (use
    :class:`ParquetIOManager` for Parquet). Every finished row is journaled first, so a
    retry or re-execution pays only for unfinished rows. A fatal error (bad key, no
    credits, unknown workflow) or the budget stops the run and fails the step with a
    :class:`dagster.Failure` saying what to do; the finished rows stay in the journal.

    Args:
        source: the upstream asset (key, or definition) whose value is a DataFrame.
        workflow: e.g. ``AITutorWorkflow("wf_company_profile", ["company", "country"])``.
        name: the asset's name; default ``<source name>_<workflow id>``.
        key_prefix: prefix of the asset key.
        resource_key: the resource holding the key (default: the service's
            ``default_resource_key``, ``"aitutor"`` / ``"runchat"``).
        columns: workflow input -> column, for inputs named differently from their column.
        keep_columns: input columns to keep in the results; ``None`` keeps all.
        output_columns: new column -> Runchat output label or id, lifted into a column.
        prefix: prefix of the result columns.
        rate: overrides the resource's rate for this asset, e.g. ``"5/s"``.
        concurrency: overrides the resource's concurrency for this asset.
        budget: a cap on paid runs / credits per job (earlier attempts included).
        journal_dir: where journals live (local path or fsspec URL); default: a folder in
            the Dagster instance's storage. One journal per asset (and partition) below it.
        journal_storage_options: fsspec options for a URL ``journal_dir``.
        incremental: reuse earlier runs' successful answers for unchanged rows.
        max_age: in incremental mode, reuse only answers younger than this.
        journal_version: change it to stop reusing answers (e.g. you edited the prompt).
        preflight: check the key, credits and mapping with the service's free calls first.
        failure_rate_threshold: the ``failure_rate`` check passes at or below this share.
        failure_rate_severity: severity of a failed ``failure_rate`` check.
        progress_interval_s: seconds between progress lines in the run log.
        partitions_def: as for :func:`dagster.asset`, e.g. daily partitions.
        group_name: as for :func:`dagster.asset`.
        tags: as for :func:`dagster.asset`.
        owners: as for :func:`dagster.asset`.
        description: as for :func:`dagster.asset`; default: names the workflow and source.
        retry_policy: as for :func:`dagster.asset`; fatal stops are never retried.
        pool: as for :func:`dagster.asset`. Give several assets that share a key the same
            ``pool`` to cap how many run at once across runs.
        io_manager_key: as for :func:`dagster.asset`.
        chunk_size: enrich the table in steps of this many rows instead of one step: a
            graph-backed asset that splits the rows (``DynamicOut``), enriches each chunk
            in its own step (with ``retry_policy`` and ``pool``; in parallel under the
            multiprocess executor, the key's rate shared through the resource's
            ``rate_limit_store``) and collects the same table one step would build. A
            ``budget`` is shared out between the chunks in proportion to their rows.

    Returns:
        the asset definition, with its two checks (``failure_rate``, ``every_row_answered``).
    """
    if not isinstance(workflow, Workflow):
        raise ConfigError(f"workflow must be a Workflow, got {type(workflow).__name__}")
    if not 0.0 <= failure_rate_threshold <= 1.0:
        raise ConfigError("failure_rate_threshold must be between 0 and 1")
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    source_key = _asset_key(source)
    asset_name = name or f"{source_key.path[-1]}_{identifier(workflow.workflow_id)}"
    prefix_path = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
    plan = EnrichmentPlan(
        asset_key=dg.AssetKey([*prefix_path, asset_name]),
        source_key=source_key,
        workflow=workflow,
        resource_key=resource_key or workflow.info.default_resource_key,
        columns=dict(columns or {}),
        keep_columns=keep_columns,
        output_columns=output_columns,
        prefix=prefix,
        rate=rate,
        concurrency=concurrency,
        budget=budget,
        journal_dir=journal_dir,
        journal_storage_options=journal_storage_options,
        incremental=incremental,
        max_age=max_age,
        journal_version=journal_version,
        preflight=preflight,
        failure_rate_threshold=failure_rate_threshold,
        failure_rate_severity=failure_rate_severity,
        progress_interval_s=progress_interval_s,
    )
    asset_settings: dict[str, Any] = {
        "key": plan.asset_key,
        "ins": {"rows": dg.AssetIn(key=source_key)},
        "partitions_def": partitions_def,
        "group_name": group_name,
        "tags": dict(tags or {}),
        "owners": list(owners) if owners else None,
        "description": description or plan.description(),
        "kinds": {workflow.service, "pandas"},
        "code_version": plan.code_version,
        "check_specs": plan.check_specs(),
        "metadata": plan.metadata(),
    }
    if chunk_size is not None:
        return chunked_asset(
            plan,
            chunk_size=chunk_size,
            retry_policy=retry_policy,
            pool=pool,
            io_manager_key=io_manager_key,
            asset_settings=asset_settings,
        )

    def enriched(context: dg.AssetExecutionContext, rows: pd.DataFrame) -> Iterator[Any]:
        settings = plan.resolve(context, rows)
        journal = plan.journal(context)
        done = plan.enrich(
            context, rows, settings, journal, keep_columns=plan.keep_columns, budget=plan.budget
        )
        extra = {**settings.checked, "runwf/journal": journal.storage.url}
        yield from plan.materialization(rows, done.to_arrow(), done.stats, settings.mapping, extra)

    build: AssetDecorator = dg.asset(
        required_resource_keys={plan.resource_key},
        retry_policy=retry_policy,
        pool=pool,
        io_manager_key=io_manager_key,
        **asset_settings,
    )
    return build(enriched)


def _asset_key(source: SourceAsset) -> dg.AssetKey:
    if isinstance(source, (dg.AssetsDefinition, dg.AssetSpec)):
        return source.key
    if isinstance(source, dg.AssetKey):
        return source
    if isinstance(source, str):
        return dg.AssetKey.from_user_string(source)
    return dg.AssetKey(list(source))
