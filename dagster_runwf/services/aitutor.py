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
)
from .base import OnMissing, Workflow, unexpected_body
from .http import HttpRequest, HttpResponse
from .outcome import Outcome
from .rate import Rate
from .values import JsonValue

DISPLAY_NAME = "AI Tutor"

# Codes the server sends for a run that failed on this row's content, whatever the status.
_ROW_CODES = frozenset({"missing_input", "workflow_run_failed", "request_blocked"})
_BILLING_CODES = frozenset({"invalid_billing", "spend_limit_reached"})


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
    """

    service: ClassVar[str] = "aitutor"
    display_name: ClassVar[str] = DISPLAY_NAME
    default_base_url: ClassVar[str] = "https://aitutor-api.vercel.app/api/v1"
    default_rate: ClassVar[Rate] = Rate(10, 1.0)
    default_concurrency: ClassVar[int] = 32  # fills 10/s at ~3 s a run

    inputs_setting: ClassVar[str] = "variables"

    def __init__(
        self, workflow_id: str, variables: Sequence[str], *, on_missing: OnMissing = "fail"
    ) -> None:
        super().__init__(workflow_id, variables, on_missing=on_missing)

    def run_path(self) -> str:
        return f"run/{self.workflow_id}"

    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        return inputs

    def parse_success(self, payload: Any, response: HttpResponse) -> Outcome:
        if not isinstance(payload, dict):
            raise _unexpected(response, "a JSON object was expected")
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
        result = payload.get("result")
        if not isinstance(result, str):
            raise _unexpected(response, "it has no text 'result'")
        citations = payload.get("citations") or []
        if not isinstance(citations, list):
            raise _unexpected(response, "'citations' is not a list")
        return Outcome(result=result, citations=tuple(str(c) for c in citations))

    def classify(self, status: int, code: str | None, detail: str) -> type[ServiceError] | None:
        if code in _BILLING_CODES:
            return CreditsExhaustedError
        if code in _ROW_CODES:
            return RunFailedError
        return None


def _unexpected(response: HttpResponse, why: str) -> ServerError:
    return unexpected_body(DISPLAY_NAME, response, why)


def balance_request() -> HttpRequest:
    """``GET /balance``: the key's remaining credits (free; checks the key too)."""
    return HttpRequest("GET", "balance")


def parse_balance(response: HttpResponse) -> float:
    """The credits in a ``/balance`` response, or the classified error."""
    probe = AITutorWorkflow("balance", ())
    if not 200 <= response.status < 300:
        raise probe.error_for(response)
    payload = probe.decode_json(response)
    credits = payload.get("credits") if isinstance(payload, dict) else None
    if isinstance(credits, bool) or not isinstance(credits, (int, float)):
        raise _unexpected(response, f"no number 'credits' in {json.dumps(payload)[:100]}")
    return float(credits)
