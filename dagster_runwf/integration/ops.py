"""The enriched-op factory: for op-based jobs, an op that runs a workflow once per row of
its input (another op's DataFrame output) and outputs the results table — the same step as
the enriched asset's (:class:`~.step.EnrichmentStep`: pre-flight, row journal, shared rate,
retries, metadata), without what only an asset has (asset checks, column lineage).
"""

# No `from __future__ import annotations`: Dagster reads the op function's annotations.

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from ..errors import ConfigError
from ..services.base import Workflow
from .results_schema import results_metadata
from .settings import EnrichmentSettings
from .spec import checked_arguments, identifier, step_spec
from .step import EnrichmentStep


def enriched_op(
    *,
    workflow: Workflow,
    settings: EnrichmentSettings | None = None,
    name: str | None = None,
    resource_key: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    pool: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    io_manager_key: str | None = None,
) -> dg.OpDefinition:
    """An op that runs ``workflow`` once per row of its input ``rows`` and outputs the
    results table (output ``result``).

    ``rows`` is a pandas or polars DataFrame (or LazyFrame) or a pyarrow Table, and the
    result comes out in the same kind (as for :func:`enriched_asset`): the kept input
    columns, then the ``wf_`` result columns. The op does what the enriched asset's step
    does: the pre-flight, the row journal (every finished row journaled first, so a retry,
    a re-execution from failure or a new run of the job after a failed one pays only for
    unfinished rows), the key's rate shared through the resource's ``rate_limit_store``,
    retries, the budget, and the run's counts as the output's metadata (``runwf/succeeded``,
    ``runwf/failed``, ``runwf/sent``, ``runwf/reused``, ...). A fatal error or the budget
    fails the step with a :class:`dagster.Failure` saying what to do (with
    ``settings.land_partial``, after storing the output: the finished rows, the others
    ``pending``).

    Its journal job is named by the job, the op's step key, the partition (in a partitioned
    job) and the version of its answers: use one op definition in several jobs and each job
    journals its own rows. The job stays open until the output is stored; the next run after
    that starts afresh (with ``settings.incremental``, reusing every unchanged row's answer).

    Example::

        enrich = enriched_op(
            workflow=AITutorWorkflow("wf_company_profile", ["company"]),
            settings=EnrichmentSettings(columns={"company": "name"}),
        )

        @dg.job(resource_defs={"aitutor": AITutorResource(api_key=dg.EnvVar("AITUTOR_API_KEY"))})
        def profile_companies():
            publish(enrich(load_companies()))

    Args:
        workflow: e.g. ``AITutorWorkflow("wf_company_profile", ["company", "country"])``.
        settings: the enrichment's settings (see :class:`EnrichmentSettings`), except
            ``chunk_size`` (an op is one step: for chunk steps, use :func:`enriched_graph`)
            and the checks' settings, which only an asset uses; default: every setting's
            default.
        name: the op's name; default ``enrich_<workflow id>``.
        resource_key: the resource holding the key (default: the service's
            ``default_resource_key``, ``"aitutor"`` / ``"runchat"``).
        retry_policy: as for :func:`dagster.op`; fatal stops are never retried.
        pool: as for :func:`dagster.op`.
        tags: as for :func:`dagster.op`.
        description: as for :func:`dagster.op`; default: names the workflow.
        io_manager_key: the IO manager of the output ``result``.

    Returns:
        the op definition, with the input ``rows`` and the output ``result``.

    Raises:
        ConfigError: a wrong argument, or ``settings.chunk_size`` given.
    """
    settings = checked_arguments(workflow, settings)
    if settings.chunk_size is not None:
        raise ConfigError(
            "chunk_size is for enriched_asset and enriched_graph; an enriched op enriches its "
            "input in one step (leave EnrichmentSettings.chunk_size unset, or use "
            "enriched_graph for chunk steps)"
        )
    op_name = name or f"enrich_{identifier(workflow.workflow_id)}"
    spec = step_spec(workflow, settings, op_name, resource_key)

    @dg.op(
        name=op_name,
        description=description or spec.description(),
        required_resource_keys={spec.resource_key},
        retry_policy=retry_policy,
        pool=pool,
        tags=dict(tags or {}),
        code_version=spec.code_version,
        out={
            "result": dg.Out(
                io_manager_key=io_manager_key or "io_manager",
                metadata=results_metadata(settings, workflow),
            )
        },
    )
    def enriched(context: dg.OpExecutionContext, rows: Any) -> Iterator[dg.Output[Any]]:
        step = EnrichmentStep(spec, context, journal_key=journal_key(context))
        rows, kind = step.rows(rows, f"the input 'rows' of op {op_name!r}")
        resolved = step.resolve(rows)
        journal = step.journal()
        done = step.enrich(
            rows, resolved, journal, keep_columns=settings.keep_columns, budget=settings.budget
        )
        step.record_instances(rows, done.to_arrow(), resolved.workflow)
        extra = {**resolved.checked, "runwf/journal": journal.storage.url}
        yield step.output(done.to_arrow(), done.stats, extra, kind)
        step.raise_if_stopped()  # land_partial: the partial table is stored, now fail
        # Dagster stores an output before resuming the step, so the results have landed.
        journal.mark_landed()

    return enriched


def journal_key(context: dg.OpExecutionContext) -> list[str]:
    """An op's journal key: its job and its step key (which names the graph it is in, and a
    dynamic output's mapping key), the same in every run and re-execution of the job."""
    step_key = context.get_step_execution_context().step.key
    return [identifier(context.job_name), identifier(step_key)]
