"""An enriched asset's plan, as an asset check Dagster runs on its own: what materializing
the asset (a partition of it) would send, reuse, deduplicate, retry, skip and reject, and
the credits the journal's history expects — with no paid run and nothing materialized.

:func:`enrichment_plan_check` builds the check from the definition
:func:`~dagster_runwf.enriched_asset` returned. It loads the source asset's value (the
partition's), resolves the step's settings as the asset's step does (the free pre-flight
included), opens the journal job the next materialization would resume (each chunk's, for a
chunked asset, whose chunks are planned as they will run: duplicates are shared within a
chunk) and computes the engine's plan (:func:`~dagster_runwf.plan_enrichment`). Its result
always passes; the counts are its metadata, plotted over time in the UI.
"""

# No `from __future__ import annotations`: Dagster reads the check function's annotations.

import weakref
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd

from ..engine.enrichment_plan import EnrichmentPlan, plan_enrichment
from ..engine.fanout.plan import RowPlan
from ..engine.journal.history import CreditHistory, credit_history
from ..engine.storage import Storage
from ..errors import ConfigError
from ..wording import spelled
from .chunks import chunk_journal_name
from .spec import EnrichmentSpec
from .step import EnrichmentStep

PLAN_CHECK = "plan"

HISTORY_PARTITIONS = 7
"""Other partitions whose journals tell what a run costs when this partition's has no paid
run yet (the latest by name: for dates, the most recent)."""

# Keyed by the asset's node definition (an op, or a graph): Dagster's copies of the asset
# (a key prefix, a merged Definitions) share it.
_SPECS = weakref.WeakKeyDictionary[Any, EnrichmentSpec]()
"""The spec of each enriched asset's step (its op, or its chunk steps' graph), kept by the
factory so that a plan check can be built from the definition alone."""


def remember(definition: dg.AssetsDefinition, spec: EnrichmentSpec) -> dg.AssetsDefinition:
    """Keep ``definition``'s spec for :func:`enrichment_plan_check`; the definition."""
    _SPECS[definition.node_def] = spec
    return definition


def enrichment_plan_check(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    """A ``plan`` asset check of an enriched asset: what materializing it would do, free.

    Execute it alone (the asset's *Checks* tab, or a job selecting only it) before paying
    for a materialization: it sends no paid run (only the resource's free pre-flight calls)
    and materializes nothing. Its metadata: ``runwf/plan/send`` (rows to pay for),
    ``reused`` (answered by the journal), ``reused_failed``, ``deduplicated``, ``retried``
    (``retry_failed``), ``skipped``, ``rejected`` and ``expected_credits`` (from the
    journal's history; absent when unknown). It always passes. Selected with the asset, it
    runs after the materialization and plans the next one.

    Example::

        profiles = enriched_asset(source=companies, workflow=...)
        defs = dg.Definitions(assets=[companies, profiles],
                              asset_checks=[enrichment_plan_check(profiles)], ...)

    Args:
        asset: a definition :func:`~dagster_runwf.enriched_asset` returned (or the
            component built).

    Raises:
        ConfigError: ``asset`` is not an enriched asset.
    """
    spec = _SPECS.get(asset.node_def) if isinstance(asset, dg.AssetsDefinition) else None
    if spec is None:
        raise ConfigError(
            "enrichment_plan_check takes an asset built by enriched_asset (or the "
            f"EnrichedAssetComponent), got {asset!r}"
        )
    source = spec.source_key
    assert source is not None, "an asset's spec has a source"

    @dg.asset_check(
        asset=asset.key,
        name=PLAN_CHECK,
        additional_ins={"rows": dg.AssetIn(key=source)},
        required_resource_keys={spec.resource_key},
        partitions_def=asset.partitions_def,
        blocking=False,
        description="What materializing would send, reuse, deduplicate, retry, skip and "
        "reject, and the credits expected from the journal's history; free: no paid run, "
        "nothing materialized.",
    )
    def plan(context: dg.AssetCheckExecutionContext, rows: Any) -> dg.AssetCheckResult:
        step = EnrichmentStep(spec, context.op_execution_context)
        frame, _ = step.rows(rows)
        planned = step_plan(step, frame)
        lines = "\n".join(planned.lines())
        context.log.info(f"plan of {asset.key.to_user_string()} (nothing sent):\n{lines}")
        return dg.AssetCheckResult(passed=True, metadata=plan_metadata(planned), description=lines)

    return plan


def step_plan(step: EnrichmentStep, rows: pd.DataFrame) -> EnrichmentPlan:
    """What ``step``'s asset would do with ``rows``, from the journal job(s) it would
    resume, with no paid run."""
    spec, declared = step.spec, step.spec.settings
    # The workflow as the step would run it (tied to a Runchat flow's schema as it is now),
    # the journal's records of the flow left as they are.
    resolved = step.resolve(rows, record=False)
    workflow = resolved.workflow or spec.workflow
    size = declared.chunk_size or max(len(rows), 1)
    parts: list[RowPlan] = []
    with spelled(spec.spelling):
        for number, start in enumerate(range(0, max(len(rows), 1), size)):
            chunk = chunk_journal_name(number) if declared.chunk_size is not None else None
            journal = step.journal(chunk)  # read, not closed: closing would merge and compact
            chunk_rows = rows.iloc[start : start + size].reset_index(drop=True)
            parts.append(
                plan_enrichment(
                    chunk_rows, workflow, columns=resolved.mapping, journal=journal
                ).rows
            )
    return EnrichmentPlan(_total(parts), _history(step))


def plan_metadata(plan: EnrichmentPlan) -> Mapping[str, Any]:
    """The plan as check metadata (numbers Dagster plots); unknown credits left out."""
    return {
        f"runwf/plan/{name}": value for name, value in plan.as_dict().items() if value is not None
    }


def _total(parts: list[RowPlan]) -> RowPlan:
    names = RowPlan.__dataclass_fields__
    return RowPlan(**{name: sum(getattr(part, name) for part in parts) for name in names})


def _history(step: EnrichmentStep) -> CreditHistory:
    """The credits of the runs recorded for this asset's answers' version: in this
    partition's journal, else in the latest other partitions' (each has its own)."""
    declared = step.spec.settings
    version = step.spec.answers_version

    def counts(job: str) -> bool:
        # A job is "<asset key path>/<partition>/<answers' version>[/<chunk>]#<generation>".
        return version in (part.split("#")[0] for part in job.split("/"))

    location = step.journal_location()
    options = declared.journal_storage_options
    history = credit_history(Storage(location, options), declared.journal_version, counts)
    if history.runs or not step.context.has_partition_key:
        return history
    parent, own = location.rsplit("/", 1)
    storage = Storage(parent, options)
    names = [folder.rstrip("/").rsplit("/", 1)[-1] for folder in storage.list_folders(storage.root)]
    for name in sorted((n for n in names if n != own), reverse=True)[:HISTORY_PARTITIONS]:
        found = credit_history(
            Storage(f"{parent}/{name}", options), declared.journal_version, counts
        )
        history = CreditHistory(history.runs + found.runs, history.credits + found.credits)
    return history
