"""Services: one pure module per hosted workflow service (no I/O at all).

Each builds requests from a row's inputs and classifies responses into an
:class:`~dagster_runwf.services.outcome.Outcome` or an error from
:mod:`dagster_runwf.errors`, and describes itself in a
:class:`~dagster_runwf.services.service_info.ServiceInfo` listed in
:mod:`~dagster_runwf.services.registry`.
"""

from .aitutor import AITutorWorkflow
from .base import OnMissing, PreparedRun, Workflow
from .http import HttpRequest, HttpResponse, RateLimitInfo
from .outcome import Outcome
from .rate import Rate
from .registry import SERVICES, service_info
from .runchat import RunchatWorkflow
from .runchat_schema import Parameter, RunchatSchema
from .service_info import FreeCall, ServiceInfo
from .typed_answer import OutputSchema, TypedAnswer, TypedField

__all__ = [
    "SERVICES",
    "AITutorWorkflow",
    "FreeCall",
    "HttpRequest",
    "HttpResponse",
    "OnMissing",
    "Outcome",
    "OutputSchema",
    "Parameter",
    "PreparedRun",
    "Rate",
    "RateLimitInfo",
    "RunchatSchema",
    "RunchatWorkflow",
    "ServiceInfo",
    "TypedAnswer",
    "TypedField",
    "Workflow",
    "service_info",
]
