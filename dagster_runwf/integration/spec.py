"""What an enriched asset is, fixed when it is defined: its key, its source, the workflow,
the resource holding the key, and its :class:`~.settings.EnrichmentSettings` — and what
Dagster is told about it from those (code version, checks, description, metadata).

What a step does with it at run time is :class:`~.step.EnrichmentStep`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ..errors import ConfigError
from ..services.base import Workflow
from ..wording import Spelling
from .answer_checks import answer_check_specs
from .checks import check_specs
from .results_schema import results_metadata
from .settings import EnrichmentSettings
from .spelling import DAGSTER


@dataclass(frozen=True)
class EnrichmentSpec:
    """An enriched asset as :func:`~dagster_runwf.enriched_asset` defined it, or an enriched
    op as :func:`~dagster_runwf.enriched_op` did: then ``asset_key`` is the op's name, and
    there is no ``source_key`` (its rows come from another op's output)."""

    asset_key: dg.AssetKey
    source_key: dg.AssetKey | None
    workflow: Workflow
    resource_key: str
    settings: EnrichmentSettings
    spelling: Spelling = DAGSTER
    """How its messages name settings: Python's words, or YAML's for the component."""

    @property
    def code_version(self) -> str:
        """Changes whenever the answers or the table's shape would (so the UI flags it)."""
        settings = self.settings
        config = {
            "workflow": self.workflow.fingerprint(),
            "columns": dict(sorted(settings.columns.items())),
            "keep_columns": settings.keep_columns,
            "output_columns": dict(settings.output_columns or {}),
            "prefix": settings.prefix,
            "journal_version": settings.journal_version,
        }
        if self.workflow.output_schema is not None:
            # The table's typed columns, not the answers: only here, not in answers_version
            # (and only when set, so the code version of an asset without one is unchanged).
            config["output_schema"] = self.workflow.output_schema.describe()
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def answers_version(self) -> str:
        """Changes whenever the answers would: the workflow, the column mapping and
        ``journal_version`` — not the table's shape (kept and lifted columns, prefix, the
        workflow's ``output_schema``), which a resumed job builds from the same answers.
        Names the asset's journal job."""
        settings = self.settings
        config = {
            "workflow": self.workflow.fingerprint(),
            "columns": dict(sorted(settings.columns.items())),
            "journal_version": settings.journal_version,
        }
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check_specs(self) -> Sequence[dg.AssetCheckSpec]:
        """The asset's checks: ``failure_rate``, ``every_row_answered``, the answer checks
        its settings enable (see :class:`~.answer_checks.AnswerChecks`), and the blocking
        ``complete`` with ``land_partial``."""
        settings = self.settings
        return [
            *check_specs(
                self.asset_key, settings.failure_rate_threshold, complete=settings.land_partial
            ),
            *answer_check_specs(self.asset_key, settings.answer_checks, self.workflow),
        ]

    def description(self) -> str:
        """The asset's description when none is given: the workflow and the source."""
        source = "its input" if self.source_key is None else self.source_key.to_user_string()
        return (
            f"{self.workflow.display_name} workflow {self.workflow.workflow_id!r}, run once per "
            f"row of {source}."
        )

    def metadata(self) -> dict[str, Any]:
        """The asset's definition metadata: which workflow on which service, and the
        declared result columns (so the IO manager stores them with their declared types)."""
        return {
            "runwf/workflow": self.workflow.workflow_id,
            "runwf/service": self.workflow.service,
            **results_metadata(self.settings, self.workflow),
        }


def checked_arguments(workflow: object, settings: object) -> EnrichmentSettings:
    """The factories' ``workflow`` and ``settings`` checked; the settings (default: every
    setting's default).

    Raises:
        ConfigError: either is of the wrong type.
    """
    if not isinstance(workflow, Workflow):
        raise ConfigError(f"workflow must be a Workflow, got {type(workflow).__name__}")
    if settings is None:
        return EnrichmentSettings()
    if not isinstance(settings, EnrichmentSettings):
        raise ConfigError(f"settings must be EnrichmentSettings, got {type(settings).__name__}")
    return settings


def step_spec(
    workflow: Workflow, settings: EnrichmentSettings, name: str, resource_key: str | None
) -> EnrichmentSpec:
    """The spec of an enriched op or graph: no asset of its own (it is named ``name``) and
    no source asset (its rows come from another op's output)."""
    return EnrichmentSpec(
        asset_key=dg.AssetKey([name]),
        source_key=None,
        workflow=workflow,
        resource_key=resource_key or workflow.info.default_resource_key,
        settings=settings,
    )


def identifier(text: str) -> str:
    """``text`` as a name Dagster accepts (letters, digits, underscores)."""
    cleaned = "".join(c if c.isalnum() else "_" for c in text).strip("_")
    return cleaned or "workflow"
