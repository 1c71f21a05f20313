"""Services: one pure module per hosted workflow service (no I/O at all).

Each builds requests from a row's inputs and classifies responses into an
:class:`~dagster_runwf.services.outcome.Outcome` or an error from
:mod:`dagster_runwf.errors`.
"""

from .aitutor import AITutorWorkflow
from .base import OnMissing, PreparedRun, Workflow
from .http import HttpRequest, HttpResponse, RateLimitInfo
from .outcome import Outcome
from .rate import Rate
from .runchat import Parameter, RunchatSchema, RunchatWorkflow

__all__ = [
    "AITutorWorkflow",
    "HttpRequest",
    "HttpResponse",
    "OnMissing",
    "Outcome",
    "Parameter",
    "PreparedRun",
    "Rate",
    "RateLimitInfo",
    "RunchatSchema",
    "RunchatWorkflow",
    "Workflow",
]
