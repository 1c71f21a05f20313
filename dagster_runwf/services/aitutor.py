"""The AI Tutor API (MyApps): ``POST /run/{workflow_id}`` with the template variables as body.

The server replaces a missing ``{{variable}}`` with the literal text ``undefined`` instead of
refusing the request, so every declared variable is checked here before a row is sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import (
    CreditsExhaustedError,
    RunFailedError,
    ServerError,
    ServiceError,
    UnusableAnswerError,
)
from .base import OnMissing, Workflow
from .citations import WARNINGS_KEY, clean_citations
from .http import HttpRequest, HttpResponse
from .outcome import Outcome
from .rate import Rate
from .service_info import FreeCall, ServiceInfo
from .typed_answer import OutputSchemaLike
from .unusable import describe_value
from .values import JsonValue

DISPLAY_NAME = "AI Tutor"

# Codes the server sends for a run that failed on this row's content, whatever the status.
_ROW_CODES = frozenset({"missing_input", "workflow_run_failed", "request_blocked"})
_BILLING_CODES = frozenset({"invalid_billing", "spend_limit_reached"})
_ABSENT = object()


class AITutorWorkflow(Workflow):
    """A workflow on the AI Tutor API.

    Args:
        workflow_id: the workflow's id, e.g. ``"wf_abc123"``.
        variables: the workflow's template variables (``{{name}}``); every row must provide
            each one. Only these are sent.
        on_missing: a missing cell is a row error (``"fail"``, the default: the server would
            otherwise run the workflow with the text ``null``), skips its row unsent
            (``"skip"``) or is sent as ``null`` (``"null"``); see
            :data:`~dagster_runwf.services.base.OnMissing`.
        output_schema: the fields of the JSON object in the answer, each with its type
            (``{"score": pa.float64(), "tags": pa.list_(pa.string())}`` or a pydantic model
            class): one typed results column each, and a parse error column (see
            :class:`~dagster_runwf.services.typed_answer.OutputSchema`).
    """

    inputs_setting: ClassVar[str] = "variables"

    def __init__(
        self,
        workflow_id: str,
        variables: Sequence[str],
        *,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
    ) -> None:
        super().__init__(workflow_id, variables, on_missing=on_missing, output_schema=output_schema)

    def run_path(self) -> str:
        return f"run/{self.workflow_id}"

    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        return inputs

    def parse_success(self, payload: Any, response: HttpResponse) -> Outcome:
        if not isinstance(payload, dict):
            raise _unusable(response, f"a JSON object was expected, not {describe_value(payload)}")
        if payload.get("success") is False:
            error = payload.get("error")
            code = payload.get("code")
            raise RunFailedError(
                f"{DISPLAY_NAME} answered {response.status} with success=false"
                + (f" {code}" if isinstance(code, str) else "")
                + (f": {error}" if error else ""),
                service=DISPLAY_NAME,
                status=response.status,
                code=code if isinstance(code, str) else None,
                detail=str(error) if error is not None else None,
            )
        result = payload.get("result", _ABSENT)
        if not isinstance(result, str):
            raise _unusable(
                response,
                "it has no 'result'"
                if result is _ABSENT
                else f"its 'result' is {describe_value(result)}, not text",
            )
        citations = payload.get("citations")
        if citations is None:
            citations = []
        if not isinstance(citations, list):
            raise _unusable(response, f"its 'citations' is {describe_value(citations)}, not a list")
        urls, warnings = clean_citations(citations)
        return Outcome(
            result=result,
            citations=urls,
            metadata={WARNINGS_KEY: warnings} if warnings else {},
        )


def _classify(status: int, code: str | None, detail: str) -> type[ServiceError] | None:
    """AI Tutor's own error codes: billing ones stop the job, content ones fail the row."""
    if code in _BILLING_CODES:
        return CreditsExhaustedError
    if code in _ROW_CODES:
        return RunFailedError
    return None


def _unexpected(response: HttpResponse, why: str) -> ServerError:
    return SERVICE.unexpected_body(response, why)


def _unusable(response: HttpResponse, why: str) -> UnusableAnswerError:
    return SERVICE.unusable_answer(response, why)


def balance_request() -> HttpRequest:
    """``GET /balance``: the key's remaining credits (free; checks the key too)."""
    return HttpRequest("GET", "balance")


def parse_balance(response: HttpResponse) -> float:
    """The credits in a ``/balance`` response, or the classified error."""
    if not 200 <= response.status < 300:
        raise SERVICE.error_for(response)
    payload = SERVICE.decode_json(response)
    credits = payload.get("credits") if isinstance(payload, dict) else None
    if isinstance(credits, bool) or not isinstance(credits, (int, float)):
        raise _unexpected(response, f"no number 'credits' in {json.dumps(payload)[:100]}")
    return float(credits)


SERVICE = ServiceInfo(
    name="aitutor",
    display_name=DISPLAY_NAME,
    workflow=AITutorWorkflow,
    default_base_url="https://aitutor-api.vercel.app/api/v1",
    default_rate=Rate(10, 1.0),
    default_concurrency=32,
    api_key_variable="AITUTOR_API_KEY",
    base_url_variable="AITUTOR_BASE_URL",
    default_resource_key="aitutor",
    inputs_help=(
        "map every {{variable}} of the workflow's template; only mapped variables are sent "
        "(the service would silently put 'undefined' in for a missing one)"
    ),
    classify=_classify,
    balance=FreeCall("the key's remaining credits", balance_request, parse_balance),
)
"""The AI Tutor API: what the package knows about it."""
