"""The enriched-asset factory: an upstream DataFrame asset in, one workflow run per row, the
results table out — with the row journal, metadata, checks and a code version.

Job identity (see ``docs/journal.md``): an enriched asset's journal job is its asset key,
its partition and the *root* run id, so a step retry and a re-execution from failure resume
the same job (only unfinished rows are sent), while the next scheduled run is a new job —
which, with ``incremental=True``, still reuses every unchanged row's earlier answer.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.

import asyncio
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from ..engine.budget import Budget
from ..engine.enrich import column_mapping, enrich_async
from ..engine.journal import RowJournal
from ..engine.stats import Progress
from ..engine.table import DEFAULT_PREFIX, result_fields
from ..services.base import Workflow
from ..services.errors import ConfigError, FanOutStopped, JournalError, RunwfError
from .checks import check_specs, every_row_result, failure_rate_result
from .metadata import column_lineage, run_metadata, table_metadata
from .resources import WorkflowServiceResource

SourceAsset = str | Sequence[str] | dg.AssetKey | dg.AssetsDefinition | dg.AssetSpec

_DEFAULT_RESOURCE_KEYS = {"aitutor": "aitutor", "runchat": "runchat"}


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
        resource_key: the resource holding the key (default ``"aitutor"`` / ``"runchat"``).
        columns: workflow input -> column, for inputs named differently from their column.
        keep_columns: input columns to keep in the results; ``None`` keeps all.
        output_columns: new column -> Runchat output label or id, lifted into a column.
        prefix: prefix of the result columns.
        rate, concurrency: override the resource's settings for this asset.
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
        partitions_def, group_name, tags, owners, description, retry_policy, pool,
            io_manager_key: as for :func:`dagster.asset`. Give several assets that share
            a key the same ``pool`` to cap how many run at once across runs.

    Returns:
        the asset definition, with its two checks (``failure_rate``, ``every_row_answered``).
    """
    if not isinstance(workflow, Workflow):
        raise ConfigError(f"workflow must be a Workflow, got {type(workflow).__name__}")
    if not 0.0 <= failure_rate_threshold <= 1.0:
        raise ConfigError("failure_rate_threshold must be between 0 and 1")
    source_key = _asset_key(source)
    asset_name = name or f"{source_key.path[-1]}_{_identifier(workflow.workflow_id)}"
    prefix_path = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
    asset_key = dg.AssetKey([*prefix_path, asset_name])
    resource = resource_key or _DEFAULT_RESOURCE_KEYS.get(workflow.service, workflow.service)
    mapping_setting = dict(columns or {})
    result_names = [f.name for f in result_fields(prefix, output_columns)]
    version = _code_version(workflow, mapping_setting, keep_columns, output_columns, prefix,
                            journal_version)  # fmt: skip

    @dg.asset(
        key=asset_key,
        ins={"rows": dg.AssetIn(key=source_key)},
        required_resource_keys={resource},
        partitions_def=partitions_def,
        group_name=group_name,
        tags=dict(tags or {}),
        owners=list(owners) if owners else None,
        description=description
        or f"{workflow.display_name} workflow {workflow.workflow_id!r}, run once per row of "
        f"{source_key.to_user_string()}.",
        kinds={workflow.service, "pandas"},
        code_version=version,
        retry_policy=retry_policy,
        pool=pool,
        io_manager_key=io_manager_key,
        check_specs=check_specs(asset_key, failure_rate_threshold),
        metadata={"runwf/workflow": workflow.workflow_id, "runwf/service": workflow.service},
    )
    def _enriched(context: dg.AssetExecutionContext, rows: pd.DataFrame) -> Iterator[Any]:
        service: WorkflowServiceResource = getattr(context.resources, resource)
        try:
            mapping = column_mapping(rows, workflow, mapping_setting)
            checked = service.preflight(workflow) if preflight else {}
            settings = service.engine_settings()
        except RunwfError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        if rate is not None:
            settings["rate"] = rate
        if concurrency is not None:
            settings["concurrency"] = concurrency
        partition = context.partition_key if context.has_partition_key else None
        run_group = context.run.root_run_id or context.run.run_id
        job_id = "/".join([*asset_key.path, partition or "-", run_group])
        location = _journal_location(context, journal_dir, asset_key, partition)
        journal = RowJournal(
            location,
            job_id=job_id,
            incremental=incremental,
            max_age=max_age,
            version=journal_version,
            storage_options=journal_storage_options,
        )
        context.log.info(
            f"{len(rows)} rows through {workflow!r}; journal {location} (job {job_id}, "
            f"{journal.finished_rows} rows already done"
            + (f", {journal.reusable_rows} reusable" if incremental else "")
            + ")"
        )
        try:
            with journal:
                done = asyncio.run(
                    enrich_async(
                        rows,
                        workflow,
                        columns=mapping,
                        keep_columns=keep_columns,
                        output_columns=output_columns,
                        prefix=prefix,
                        journal=journal,
                        budget=budget,
                        on_progress=_progress_logger(context),
                        progress_interval_s=progress_interval_s,
                        **settings,
                    )
                )
        except FanOutStopped as exc:
            raise dg.Failure(
                description=str(exc),
                metadata=run_metadata(exc.stats) if exc.stats is not None else None,
                allow_retries=False,
            ) from None
        except JournalError as exc:
            raise dg.Failure(description=str(exc), allow_retries=True) from None
        table = done.to_arrow()
        kept = list(rows.columns) if keep_columns is None else list(keep_columns)
        lineage = column_lineage(source_key, kept, list(mapping.values()), result_names)
        extra = {**run_metadata(done.stats), **checked, "runwf/journal": location}
        yield dg.Output(table.to_pandas(), metadata=table_metadata(table, lineage, extra))
        yield failure_rate_result(table, prefix, failure_rate_threshold, failure_rate_severity)
        yield every_row_result(table, prefix, len(rows))

    return _enriched


def _asset_key(source: SourceAsset) -> dg.AssetKey:
    if isinstance(source, (dg.AssetsDefinition, dg.AssetSpec)):
        return source.key
    if isinstance(source, dg.AssetKey):
        return source
    if isinstance(source, str):
        return dg.AssetKey.from_user_string(source)
    return dg.AssetKey(list(source))


def _identifier(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in text).strip("_")
    return cleaned or "workflow"


def _code_version(
    workflow: Workflow,
    columns: Mapping[str, str],
    keep_columns: Sequence[str] | None,
    output_columns: Mapping[str, str] | None,
    prefix: str,
    journal_version: str,
) -> str:
    """Changes whenever the answers or the table's shape would (so the UI flags the asset)."""
    config = {
        "workflow": workflow.fingerprint(),
        "columns": dict(sorted(columns.items())),
        "keep_columns": list(keep_columns) if keep_columns is not None else None,
        "output_columns": dict(output_columns or {}),
        "prefix": prefix,
        "journal_version": journal_version,
    }
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _journal_location(
    context: dg.AssetExecutionContext,
    journal_dir: str | None,
    asset_key: dg.AssetKey,
    partition: str | None,
) -> str:
    base = journal_dir or os.path.join(context.instance.storage_directory(), "runwf_journal")
    parts = [*asset_key.path] + ([_identifier(partition)] if partition else [])
    return "/".join([base.rstrip("/"), *parts])


def _progress_logger(context: dg.AssetExecutionContext) -> Any:
    def log(progress: Progress) -> None:
        total = "?" if progress.total is None else str(progress.total)
        eta = "" if progress.eta_s is None else f", ETA {progress.eta_s:.0f} s"
        context.log.info(
            f"{progress.done}/{total} rows done ({progress.failed} failed), "
            f"{progress.in_flight} in flight, {progress.rows_per_s:.1f} rows/s{eta}"
        )

    return log
