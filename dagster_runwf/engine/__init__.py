"""Engine: rows in, workflow runs out (asyncio + httpx; no Dagster).

Concurrency, per-key rate limiting, retries with backoff, fatal stop, a circuit breaker,
deduplication of identical rows, the row journal interface and progress reporting.
"""

from .client import DEFAULT_TIMEOUT, HttpBackend, check_base_url
from .limiter import RateLimiter
from .results import RowJournal, RowResult, RowSource, RowStatus
from .retry import RetryPolicy
from .runner import WorkflowRun, key_fingerprint, run_workflow_rows, run_workflow_rows_sync
from .service_calls import fetch_balance, fetch_schema
from .stats import LatencyHistogram, Progress, RunStats

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpBackend",
    "LatencyHistogram",
    "Progress",
    "RateLimiter",
    "RetryPolicy",
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
