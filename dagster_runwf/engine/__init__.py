"""Engine: rows in, workflow runs out (asyncio + httpx; no Dagster).

Concurrency, per-key rate limiting, retries with backoff, fatal stop, a circuit breaker,
deduplication of identical rows, the durable row journal, budgets and progress reporting.
"""

from .budget import Budget
from .client import DEFAULT_TIMEOUT, HttpBackend, check_base_url
from .enrich import Enrichment, column_mapping, enrich, enrich_async
from .enrichment_plan import EnrichmentPlan, plan_enrichment
from .fanout import WorkflowRun, run_workflow_rows, run_workflow_rows_sync
from .fanout.plan import RowPlan
from .journal import DamagedJournalFileWarning, RowJournal
from .journal.history import CreditHistory
from .options import EngineOptions, key_fingerprint
from .ratelimit import RateLimiter
from .results import Journal, RowResult, RowSource, RowStatus
from .retry import RetryPolicy
from .service_calls import fetch_balance, fetch_schema
from .stats import LatencyHistogram, Progress, RunStats
from .storage import Storage
from .table import RESULT_FIELDS, ResultsTableWriter, result_fields, typed_fields

__all__ = [
    "DEFAULT_TIMEOUT",
    "Budget",
    "EngineOptions",
    "Enrichment",
    "EnrichmentPlan",
    "CreditHistory",
    "RowPlan",
    "plan_enrichment",
    "RESULT_FIELDS",
    "ResultsTableWriter",
    "Storage",
    "column_mapping",
    "enrich",
    "enrich_async",
    "result_fields",
    "typed_fields",
    "HttpBackend",
    "Journal",
    "LatencyHistogram",
    "Progress",
    "RateLimiter",
    "RetryPolicy",
    "DamagedJournalFileWarning",
    "RowJournal",
    "RowResult",
    "RowSource",
    "RowStatus",
    "RunStats",
    "WorkflowRun",
    "check_base_url",
    "fetch_balance",
    "fetch_schema",
    "key_fingerprint",
    "run_workflow_rows",
    "run_workflow_rows_sync",
]
