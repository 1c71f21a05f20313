"""dagster-runwf: run hosted AI workflows (Runchat, AI Tutor API) row by row over tables.

The public API is re-exported here; everything else is private. The Dagster layer's names
(resources, the asset, op and graph factories and their settings, the IO manager) are
imported on first use, so the engine, the CLI and the emulator start without loading Dagster.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .engine import (
    Budget,
    DamagedJournalFileWarning,
    EngineOptions,
    Enrichment,
    EnrichmentPlan,
    Progress,
    RateLimiter,
    ResultsTableWriter,
    RetryPolicy,
    RowJournal,
    RowResult,
    RunStats,
    WorkflowRun,
    enrich,
    enrich_async,
    fetch_balance,
    fetch_schema,
    plan_enrichment,
    run_workflow_rows,
    run_workflow_rows_sync,
)
from .errors import (
    AuthenticationError,
    BudgetReachedError,
    ClaimStoreError,
    ConfigError,
    CreditsExhaustedError,
    FanOutStopped,
    FatalError,
    JournalError,
    RateLimitedError,
    ResponseTooLargeError,
    RowError,
    RowInputError,
    RowSkippedError,
    RunFailedError,
    RunwfError,
    ServerError,
    ServiceError,
    ServiceUnreachableError,
    TransientError,
    TransportError,
    UnreachableError,
    UnusableAnswerError,
    WorkflowNotFoundError,
)
from .services import (
    AITutorWorkflow,
    Outcome,
    OutputSchema,
    Rate,
    RunchatSchema,
    RunchatWorkflow,
    Workflow,
)

if TYPE_CHECKING:
    from .integration.answer_checks import AnswerCheck, AnswerChecks
    from .integration.assets import enriched_asset
    from .integration.component import EnrichedAssetComponent
    from .integration.graphs import enriched_graph
    from .integration.io_manager import ParquetIOManager
    from .integration.ops import enriched_op
    from .integration.plan import enrichment_plan_check
    from .integration.resources import AITutorResource, RunchatResource
    from .integration.schedules import nightly_schedule
    from .integration.settings import EnrichmentSettings

_DAGSTER_NAMES = {
    "AITutorResource": "resources",
    "RunchatResource": "resources",
    "ParquetIOManager": "io_manager",
    "enriched_asset": "assets",
    "enriched_op": "ops",
    "enriched_graph": "graphs",
    "enrichment_plan_check": "plan",
    "EnrichedAssetComponent": "component",
    "EnrichmentSettings": "settings",
    "AnswerChecks": "answer_checks",
    "AnswerCheck": "answer_checks",
    "nightly_schedule": "schedules",
}


def __getattr__(name: str) -> Any:
    module = _DAGSTER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'dagster_runwf' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".integration.{module}", __name__), name)


def __dir__() -> list[str]:
    # The lazy names too: `dg list components` finds the component by listing this module.
    return sorted([*globals(), *_DAGSTER_NAMES])


__all__ = [
    "AITutorResource",
    "AITutorWorkflow",
    "AuthenticationError",
    "Budget",
    "EngineOptions",
    "Enrichment",
    "EnrichmentPlan",
    "plan_enrichment",
    "ResultsTableWriter",
    "enrich",
    "enrich_async",
    "enriched_asset",
    "enriched_op",
    "enriched_graph",
    "enrichment_plan_check",
    "EnrichedAssetComponent",
    "EnrichmentSettings",
    "AnswerChecks",
    "AnswerCheck",
    "nightly_schedule",
    "BudgetReachedError",
    "ConfigError",
    "CreditsExhaustedError",
    "FanOutStopped",
    "FatalError",
    "ClaimStoreError",
    "JournalError",
    "Outcome",
    "OutputSchema",
    "ParquetIOManager",
    "Progress",
    "Rate",
    "RateLimitedError",
    "RateLimiter",
    "RetryPolicy",
    "RowError",
    "RowInputError",
    "RowSkippedError",
    "ResponseTooLargeError",
    "DamagedJournalFileWarning",
    "RowJournal",
    "RowResult",
    "RunchatResource",
    "RunFailedError",
    "RunStats",
    "RunchatSchema",
    "RunchatWorkflow",
    "RunwfError",
    "ServerError",
    "ServiceError",
    "ServiceUnreachableError",
    "TransientError",
    "TransportError",
    "UnreachableError",
    "UnusableAnswerError",
    "WorkflowNotFoundError",
    "WorkflowRun",
    "Workflow",
    "__version__",
    "fetch_balance",
    "fetch_schema",
    "run_workflow_rows",
    "run_workflow_rows_sync",
]
