"""Services: one pure module per hosted workflow service (no I/O at all).

Each builds requests from a row's inputs and classifies responses into an
:class:`~dagster_runwf.services.outcome.Outcome` or an error from
:mod:`dagster_runwf.services.errors`.
"""

from .aitutor import AITutorWorkflow
from .base import OnMissing, PreparedRun, Workflow
from .errors import (
    AuthenticationError,
    BudgetReachedError,
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
    TransientError,
    TransportError,
    WorkflowNotFoundError,
)
from .http import HttpRequest, HttpResponse, RateLimitInfo
from .outcome import Outcome
from .rate import Rate
from .runchat import Parameter, RunchatSchema, RunchatWorkflow

__all__ = [
    "AITutorWorkflow",
    "AuthenticationError",
    "ConfigError",
    "CreditsExhaustedError",
    "BudgetReachedError",
    "FanOutStopped",
    "FatalError",
    "JournalError",
    "HttpRequest",
    "HttpResponse",
    "OnMissing",
    "Outcome",
    "Parameter",
    "PreparedRun",
    "Rate",
    "RateLimitInfo",
    "RateLimitedError",
    "RowError",
    "RowInputError",
    "RowSkippedError",
    "ResponseTooLargeError",
    "RunFailedError",
    "RunchatSchema",
    "RunchatWorkflow",
    "RunwfError",
    "ServerError",
    "ServiceError",
    "TransientError",
    "TransportError",
    "Workflow",
    "WorkflowNotFoundError",
]
