"""An enriched asset's settings, declared once: :func:`~dagster_runwf.enriched_asset` takes
them as ``settings=EnrichmentSettings(...)`` and :class:`~dagster_runwf.EnrichedAssetComponent`
inherits them, so each setting has one name, type, default, check and description in Python
and in a ``defs.yaml``.

The Dagster-native arguments of an asset (name, key prefix, partitions, group, tags,
owners, description, retry policy, pool, IO manager, resource key) are not here: they are
the factory's own arguments, as for :func:`dagster.asset`.
"""

# No `from __future__ import annotations`: pydantic and Dagster's YAML schema read the
# annotations at runtime.

import datetime as dt
from typing import Annotated, Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine.budget import Budget
from ..engine.table import DEFAULT_PREFIX
from ..services.rate import Rate
from .answer_checks import AnswerChecks


class EnrichmentSettings(BaseModel):
    """How an enriched asset runs its workflow over the source table: the column mapping,
    the results table's shape, rate and concurrency overrides, the budget, the row journal,
    the pre-flight, the ``failure_rate`` check and the answer checks, progress lines and chunking.

    Frozen, and unknown names are refused. In a ``defs.yaml`` each setting is an attribute
    of the component with the same name; ``max_age`` is given there in seconds or as an
    ISO-8601 duration (``P30D``), ``budget`` as ``{max_runs: ..., max_credits: ...}`` and
    ``failure_rate_severity`` as ``WARN`` or ``ERROR``.

    Example::

        EnrichmentSettings(
            columns={"company": "name"},
            incremental=True,
            max_age=dt.timedelta(days=30),
            budget=Budget(max_runs=1_000),
        )

    Raises:
        pydantic.ValidationError: a setting is of the wrong type or out of range (a
            ``ValueError``, naming every bad setting).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    # -- which columns ----------------------------------------------------------------------

    columns: dict[str, str] = Field(default_factory=dict)
    """Workflow input -> column, for inputs named differently from their column."""

    keep_columns: list[str] | None = None
    """Input columns kept in the results table, in this order; ``None`` keeps all."""

    output_columns: dict[str, str] | None = None
    """Runchat: new column -> output label or id, each lifted into a column of its own,
    typed as the flow's schema types the output (read by the pre-flight; text without it)."""

    prefix: str = DEFAULT_PREFIX
    """Prefix of the result columns (``wf_status``, ``wf_result``, ...)."""

    # -- how hard to push the service -------------------------------------------------------

    rate: str | None = None
    """Overrides the resource's rate for this asset, e.g. ``"5/s"``, ``"10/min"`` or
    ``"unlimited"``."""

    concurrency: Annotated[int, Field(ge=1)] | None = None
    """Overrides the resource's concurrency (runs in flight at once) for this asset."""

    budget: Annotated[Budget | None, dg.Resolver.default(model_field_type=Budget | None)] = None
    """A cap on paid runs and/or credits per job (earlier attempts of the job included);
    with ``chunk_size``, shared out between the chunks in proportion to their rows."""

    # -- the row journal --------------------------------------------------------------------

    journal_dir: str | None = None
    """Where journals live (a local path or an fsspec URL); default: a folder in the Dagster
    instance's storage. One journal per asset (and partition) below it."""

    journal_storage_options: dict[str, Any] | None = Field(default=None, repr=False)
    """fsspec options for a URL ``journal_dir`` (may hold credentials: kept out of the
    repr)."""

    incremental: bool = False
    """Reuse earlier runs' successful answers for unchanged rows."""

    max_age: Annotated[
        dt.timedelta | None, dg.Resolver.default(model_field_type=float | str | None)
    ] = None
    """With ``incremental``, reuse only answers younger than this (YAML: seconds, or an
    ISO-8601 duration such as ``P30D``)."""

    journal_version: str = ""
    """Change it to stop reusing earlier answers (e.g. after editing the prompt)."""

    retry_failed: bool = False
    """Send the rows this job recorded as failed again (a re-execution otherwise answers
    them from the journal): runs that failed, and answers that could not be used, which
    were most likely paid for and would be paid again."""

    land_partial: bool = False
    """When a fatal error (bad key, no credits, unknown workflow) or the budget stops the
    run, store the table anyway: the finished rows, and every other row with
    ``wf_status`` ``pending``, so downstream assets get what was paid for. The step still
    fails with the stop's message, after the blocking ``complete`` check failed; the
    journal job stays open, so the next run pays only for the pending rows (with
    ``chunk_size``: each chunk's job)."""

    # -- checks and the run log -------------------------------------------------------------

    preflight: bool = True
    """Check the key, credits and mapping with the service's free calls before paying."""

    failure_rate_threshold: float = Field(default=0.05, ge=0.0, le=1.0)
    """The ``failure_rate`` check passes when at most this share of the rows failed."""

    failure_rate_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN
    """Severity of a failed ``failure_rate`` check (``WARN`` or ``ERROR``)."""

    answer_checks: AnswerChecks = Field(default_factory=AnswerChecks)
    """The checks on the answers (empty, ``undefined``, citations, parsed, changed): which
    run, their thresholds, and whether a failure blocks downstream assets; see
    :class:`~dagster_runwf.AnswerChecks`."""

    progress_interval_s: float = Field(default=10.0, gt=0.0)
    """Seconds between progress lines in the run log."""

    # -- steps ------------------------------------------------------------------------------

    chunk_size: Annotated[int, Field(ge=1, strict=True)] | None = None
    """Enrich the table in steps of this many rows instead of one step: a graph-backed
    asset that splits the rows, enriches each chunk in its own step (with the asset's
    retry policy and pool; in parallel under the multiprocess executor, the key's rate
    shared through the resource's ``rate_limit_store``) and collects the same table one
    step would build."""

    @field_validator("rate")
    @classmethod
    def _rate_is_understood(cls, rate: str | None) -> str | None:
        if rate is not None and rate.strip().lower() != "unlimited":
            Rate.parse(rate)
        return rate

    @field_validator("max_age")
    @classmethod
    def _max_age_is_positive(cls, max_age: dt.timedelta | None) -> dt.timedelta | None:
        if max_age is not None and max_age <= dt.timedelta(0):
            raise ValueError(f"max_age must be positive, got {max_age}")
        return max_age
