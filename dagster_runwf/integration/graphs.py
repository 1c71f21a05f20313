"""The enriched-graph factory: for op-based jobs, a graph that runs a workflow once per row of
its input (another op's DataFrame output) chunk by chunk — the chunked enriched asset's steps
(:mod:`.chunks`: split, one enrich step per chunk, collect), without what only an asset has
(asset checks, column lineage) — and outputs the results table.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from ..errors import ConfigError
from ..services.base import Workflow
from .chunks import chunk_steps
from .settings import EnrichmentSettings
from .spec import checked_arguments, identifier, step_spec
from .step import StepContext

GraphDecorator = Callable[[Callable[..., Any]], dg.GraphDefinition]
"""What ``dagster.graph(...)`` returns."""


def enriched_graph(
    *,
    workflow: Workflow,
    settings: EnrichmentSettings,
    name: str | None = None,
    resource_key: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    pool: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    io_manager_key: str | None = None,
) -> dg.GraphDefinition:
    """A graph that runs ``workflow`` once per row of its input ``rows`` in steps of
    ``settings.chunk_size`` rows, and outputs the results table (output ``result``).

    What :func:`enriched_op` is in one step, in chunk steps: the graph splits ``rows`` (a
    pandas or polars DataFrame or LazyFrame, or a pyarrow Table) into chunks, enriches each
    chunk in a step of its own, and collects the results in the input's kind, with the
    run's counts (``runwf/succeeded``, ``runwf/failed``, ``runwf/sent``, ``runwf/reused``,
    ..., and ``runwf/chunks``) as the output's metadata: the steps of a chunked
    :func:`enriched_asset`, without its checks and column lineage. Under the multiprocess
    executor the chunk steps run in parallel, sharing the key's rate through the resource's
    ``rate_limit_store``; each has the ``retry_policy`` and ``pool`` and a ``budget``'s share
    in proportion to its rows. Each chunk is a journal job of its own, named by the job, the
    graph's node (its name, or its alias in the job), the partition (in a partitioned job),
    the version of its answers and the chunk, so a retry, a re-execution from failure or a
    new run after a failed one pays only for unfinished rows; chunks that succeeded are not
    run again. The jobs stay open until the output is stored.

    Example::

        enrich = enriched_graph(
            workflow=AITutorWorkflow("wf_company_profile", ["company"]),
            settings=EnrichmentSettings(columns={"company": "name"}, chunk_size=5_000),
            retry_policy=dg.RetryPolicy(max_retries=2),
        )

        @dg.job(
            resource_defs={"aitutor": AITutorResource(api_key=dg.EnvVar("AITUTOR_API_KEY"))},
            executor_def=dg.multiprocess_executor.configured({"max_concurrent": 4}),
        )
        def profile_companies():
            publish(enrich(load_companies()))

    Args:
        workflow: e.g. ``AITutorWorkflow("wf_company_profile", ["company", "country"])``.
        settings: the enrichment's settings (see :class:`EnrichmentSettings`), with
            ``chunk_size``; the checks' settings are unused (only an asset has checks).
        name: the graph's name, which also prefixes its ops' names (``<name>__split``,
            ``<name>__enrich_chunk``, ``<name>__collect``); default
            ``enrich_<workflow id>_in_chunks``.
        resource_key: the resource holding the key (default: the service's
            ``default_resource_key``, ``"aitutor"`` / ``"runchat"``).
        retry_policy: each chunk step's, as for :func:`dagster.op`; fatal stops are never
            retried.
        pool: each chunk step's, as for :func:`dagster.op`.
        tags: every op's, as for :func:`dagster.op`.
        description: the graph's; default: names the workflow.
        io_manager_key: the IO manager of the output ``result``.

    Returns:
        the graph definition, with the input ``rows`` and the output ``result``.

    Raises:
        ConfigError: a wrong argument, or no ``settings.chunk_size``.
    """
    settings = checked_arguments(workflow, settings)
    if settings.chunk_size is None:
        raise ConfigError(
            "an enriched graph enriches its input in chunk steps: give "
            "EnrichmentSettings.chunk_size (for one step, use enriched_op)"
        )
    graph_name = name or f"enrich_{identifier(workflow.workflow_id)}_in_chunks"
    spec = step_spec(workflow, settings, graph_name, resource_key)
    chunked = chunk_steps(
        spec,
        name=graph_name,
        chunk_size=settings.chunk_size,
        retry_policy=retry_policy,
        pool=pool,
        io_manager_key=io_manager_key,
        as_asset=False,
        journal_key=journal_key,
        tags=dict(tags or {}),
        what=f"the input 'rows' of graph {graph_name!r}",
    )
    build: GraphDecorator = dg.graph(
        name=graph_name,
        description=description or spec.description(),
        ins={
            "rows": dg.GraphIn(
                description="the rows: a pandas or polars DataFrame, or a pyarrow Table"
            )
        },
        out={"result": dg.GraphOut(description="the results table, in the kind of the rows")},
    )
    return build(chunked)


def journal_key(context: StepContext) -> Sequence[str]:
    """A chunk step's journal key: its job and the graph's node in it (its path of node
    names: the graph's name or alias, inside any enclosing graphs), the same for every
    step of the graph, in every run and re-execution of the job."""
    graph = context.op_handle.parent
    assert graph is not None, "a step of an enriched graph"
    return [identifier(context.job_name), identifier(str(graph))]
