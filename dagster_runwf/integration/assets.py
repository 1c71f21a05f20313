"""The enriched-asset factory: an upstream DataFrame asset in, one workflow run per row, the
results table out — with the row journal, metadata, checks and a code version — in one step,
or chunk by chunk in parallel steps (see :mod:`.chunks`). The enrichment's settings are
:class:`~.settings.EnrichmentSettings`; what the asset is, :class:`~.spec.EnrichmentSpec`;
what a step does, :class:`~.step.EnrichmentStep`.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from ..services.base import Workflow
from ..wording import in_force
from .chunks import chunk_steps
from .plan import remember
from .settings import EnrichmentSettings
from .spec import EnrichmentSpec, checked_arguments, identifier
from .spelling import DAGSTER, YAML
from .step import EnrichmentStep

SourceAsset = str | Sequence[str] | dg.AssetKey | dg.AssetsDefinition | dg.AssetSpec

AssetDecorator = Callable[[Callable[..., Any]], dg.AssetsDefinition]
"""What ``dagster.asset(...)`` and ``dagster.graph_asset(...)`` return."""


def enriched_asset(
    *,
    source: SourceAsset,
    workflow: Workflow,
    settings: EnrichmentSettings | None = None,
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    resource_key: str | None = None,
    partitions_def: dg.PartitionsDefinition[str] | None = None,
    group_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    owners: Sequence[str] | None = None,
    description: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    pool: str | None = None,
    io_manager_key: str | None = None,
    automation_condition: dg.AutomationCondition[Any] | None = None,
) -> dg.AssetsDefinition:
    """An asset that runs ``workflow`` once per row of the ``source`` asset's DataFrame.

    The asset's value is the results table (the kept input columns, then the ``wf_`` result
    columns, see ``docs/journal.md``) in the kind of the source's value: a pandas DataFrame
    for a pandas DataFrame, a polars DataFrame for a polars DataFrame or LazyFrame, a
    pyarrow Table for a pyarrow Table. It is stored by the asset's IO manager (use
    :class:`ParquetIOManager` for Parquet; dagster-polars' or dagster-duckdb's IO managers
    work too). Every finished row is journaled first, so a
    retry or re-execution pays only for unfinished rows. A fatal error (bad key, no
    credits, unknown workflow) or the budget stops the run and fails the step with a
    :class:`dagster.Failure` saying what to do; the finished rows stay in the journal.
    With ``settings.land_partial``, the table is stored first (the unfinished rows with
    ``wf_status`` ``pending``) and the blocking check ``complete`` fails (see
    ``docs/dagster.md``, "Partial results").

    How the rows are enriched (column mapping, rate, budget, journal, checks, chunking) is
    ``settings``; the other arguments are those of :func:`dagster.asset`.

    Example::

        enriched_asset(
            source=companies,
            workflow=AITutorWorkflow("wf_company_profile", ["company", "country"]),
            settings=EnrichmentSettings(columns={"company": "name"}, incremental=True),
            partitions_def=daily,
        )

    Args:
        source: the upstream asset (key, or definition) whose value is a pandas or polars
            DataFrame (or LazyFrame) or a pyarrow Table.
        workflow: e.g. ``AITutorWorkflow("wf_company_profile", ["company", "country"])``.
        settings: the enrichment's settings (see :class:`EnrichmentSettings`); default:
            every setting's default.
        name: the asset's name; default ``<source name>_<workflow id>``.
        key_prefix: prefix of the asset key.
        resource_key: the resource holding the key (default: the service's
            ``default_resource_key``, ``"aitutor"`` / ``"runchat"``).
        partitions_def: as for :func:`dagster.asset`, e.g. daily partitions.
        group_name: as for :func:`dagster.asset`.
        tags: as for :func:`dagster.asset`.
        owners: as for :func:`dagster.asset`.
        description: as for :func:`dagster.asset`; default: names the workflow and source.
        retry_policy: as for :func:`dagster.asset` (with ``chunk_size``, each chunk step's);
            fatal stops are never retried.
        pool: as for :func:`dagster.asset` (with ``chunk_size``, each chunk step's). Give
            several assets that share a key the same ``pool`` to cap how many run at once
            across runs.
        io_manager_key: as for :func:`dagster.asset`.
        automation_condition: as for :func:`dagster.asset`: when Dagster's declarative
            automation materializes the asset, e.g.
            ``dg.AutomationCondition.on_cron("0 2 * * *")`` (each night, once the source
            has been updated since) or ``dg.AutomationCondition.eager()`` (each partition
            of the source as soon as it is materialized: one run per arriving file with
            dynamic partitions). Its checks run in the same step. The automation
            condition sensor must be running (``dagster-daemon``, or ``dg dev``).

    Returns:
        the asset definition, with its checks (``failure_rate``, ``every_row_answered``, the
        answer checks of ``settings.answer_checks``, and ``complete`` with
        ``settings.land_partial``); with ``settings.chunk_size``, a graph-backed asset (see
        :mod:`.chunks`). Its free plan is a check of its own:
        :func:`~dagster_runwf.enrichment_plan_check`.
    """
    settings = checked_arguments(workflow, settings)
    source_key = _asset_key(source)
    asset_name = name or f"{source_key.path[-1]}_{identifier(workflow.workflow_id)}"
    prefix_path = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
    spec = EnrichmentSpec(
        asset_key=dg.AssetKey([*prefix_path, asset_name]),
        source_key=source_key,
        workflow=workflow,
        resource_key=resource_key or workflow.info.default_resource_key,
        settings=settings,
        # The YAML component builds its asset with YAML's words in force.
        spelling=YAML if in_force() is YAML else DAGSTER,
    )
    asset_arguments: dict[str, Any] = {
        "key": spec.asset_key,
        "ins": {"rows": dg.AssetIn(key=source_key)},
        "partitions_def": partitions_def,
        "group_name": group_name,
        "tags": dict(tags or {}),
        "owners": list(owners) if owners else None,
        "description": description or spec.description(),
        "kinds": {workflow.service, "pandas"},
        "code_version": spec.code_version,
        "check_specs": spec.check_specs(),
        "metadata": spec.metadata(),
        "automation_condition": automation_condition,
    }
    if settings.chunk_size is not None:
        # The chunk steps (see .chunks), as an asset: named by its key, journaled under it,
        # its collect step yielding the materialization with lineage and checks.
        chunked = chunk_steps(
            spec,
            name=identifier("__".join(spec.asset_key.path)),
            chunk_size=settings.chunk_size,
            retry_policy=retry_policy,
            pool=pool,
            io_manager_key=io_manager_key,
            as_asset=True,
        )
        build_graph: AssetDecorator = dg.graph_asset(**asset_arguments)
        return remember(build_graph(chunked), spec)

    # `Any`: the IO manager loads the source as it stores it (pandas, polars or pyarrow).
    def enriched(context: dg.AssetExecutionContext, rows: Any) -> Iterator[Any]:
        step = EnrichmentStep(spec, context)
        rows, kind = step.rows(rows)
        resolved = step.resolve(rows)
        journal = step.journal()
        done = step.enrich(
            rows, resolved, journal, keep_columns=settings.keep_columns, budget=settings.budget
        )
        step.record_instances(rows, done.to_arrow(), resolved.workflow)
        extra = {**resolved.checked, "runwf/journal": journal.storage.url}
        yield from step.materialization(
            rows,
            done.to_arrow(),
            done.stats,
            resolved.mapping,
            extra,
            kind,
            journal_jobs=[journal.job_id],
        )
        # A stopped run's partial table (land_partial) is stored: now fail the step, and
        # leave the journal job open for the pending rows.
        step.raise_if_stopped()
        # Dagster stores an output before resuming the step, so the results have landed.
        journal.mark_landed()

    build: AssetDecorator = dg.asset(
        required_resource_keys={spec.resource_key},
        retry_policy=retry_policy,
        pool=pool,
        io_manager_key=io_manager_key,
        **asset_arguments,
    )
    return remember(build(enriched), spec)


def _asset_key(source: SourceAsset) -> dg.AssetKey:
    if isinstance(source, (dg.AssetsDefinition, dg.AssetSpec)):
        return source.key
    if isinstance(source, dg.AssetKey):
        return source
    if isinstance(source, str):
        return dg.AssetKey.from_user_string(source)
    return dg.AssetKey(list(source))
