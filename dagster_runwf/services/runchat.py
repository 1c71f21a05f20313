"""Runchat: ``POST /{runchat_id}`` with ``inputs`` keyed ``paramId_nodeId``, or a webhook body.

A run answers the flow's output parameters (each a ``data`` list) and a stringified JSON
``metadata`` whose keys are not documented: it is decoded and kept whole, and nothing fails
because a key is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import (
    AuthenticationError,
    CreditsExhaustedError,
    RunFailedError,
    ServerError,
    ServiceError,
    UnusableAnswerError,
)
from .base import OnMissing, Workflow, require_text
from .citations import WARNINGS_KEY, clean_citations
from .http import HttpRequest, HttpResponse
from .outcome import Outcome
from .rate import Rate
from .runchat_schema import Parameter, RunchatSchema
from .service_info import FreeCall, ServiceInfo
from .typed_answer import OutputSchemaLike
from .unusable import describe_value
from .values import JsonValue

__all__ = ["SERVICE", "Parameter", "RunchatSchema", "RunchatWorkflow", "decode_metadata"]

DISPLAY_NAME = "Runchat"

# Parameter types whose data reads naturally as text; the first such output is the result.
_TEXT_TYPES = frozenset({"string", "markdown", "message", "html", "code", "instruction"})
# Keys Runchat (or its agents) may use for a run's cost in the metadata: none is documented.
_CREDIT_KEYS = ("credits", "credits_used", "creditsUsed", "credit_cost", "cost")


class RunchatWorkflow(Workflow):
    """A flow on Runchat.

    Args:
        runchat_id: the flow's id.
        inputs: the input parameter ids (``paramId_nodeId``) every row provides; with
            ``webhook=True``, the field names of the JSON body instead.
        webhook: send each row as a raw JSON body (for flows that start at a Webhook node)
            rather than as ``{"inputs": {...}}``.
        instance_id: continue this existing instance (``runchat_instance_id``) for every row;
            by default each run creates a new instance.
        result_output: id or label of the output whose value is the row's text result;
            by default the first text-typed output.
        citations_output: id or label of an output listing the run's sources (URLs); by
            default a run has no citations.
        on_missing: a missing cell is a row error (``"fail"``), skips its row unsent
            (``"skip"``) or is sent as ``null`` (``"null"``); see
            :data:`~dagster_runwf.services.base.OnMissing`.
        output_schema: the fields of the JSON object in the result (the ``result_output``),
            each with its type: one typed results column each, and a parse error column
            (see :class:`~dagster_runwf.services.typed_answer.OutputSchema`).
    """

    def __init__(
        self,
        runchat_id: str,
        inputs: Sequence[str] = (),
        *,
        webhook: bool = False,
        instance_id: str | None = None,
        result_output: str | None = None,
        citations_output: str | None = None,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
    ) -> None:
        super().__init__(runchat_id, inputs, on_missing=on_missing, output_schema=output_schema)
        if instance_id is not None:
            require_text(instance_id, "instance_id")
        self.webhook = webhook
        self.instance_id = instance_id
        self.result_output = result_output
        self.citations_output = citations_output

    def fingerprint(self) -> dict[str, JsonValue]:
        return {
            **super().fingerprint(),
            "webhook": self.webhook,
            "instance_id": self.instance_id,
            "result_output": self.result_output,
            "citations_output": self.citations_output,
        }

    @property
    def answer_version(self) -> str:
        """The output picks, when any: they choose the result and citations of an answer."""
        if self.result_output is None and self.citations_output is None:
            return ""
        return json.dumps(
            {"result_output": self.result_output, "citations_output": self.citations_output},
            sort_keys=True,
        )

    def run_path(self) -> str:
        return self.workflow_id

    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        body: dict[str, JsonValue] = dict(inputs) if self.webhook else {"inputs": inputs}
        if self.instance_id is not None:
            body["runchat_instance_id"] = self.instance_id
        return body

    def parse_success(self, payload: Any, response: HttpResponse) -> Outcome:
        if not isinstance(payload, dict):
            raise _unusable(response, f"a JSON object was expected, not {describe_value(payload)}")
        if payload.get("status") == "error" or payload.get("success") is False:
            # A 200 that says the run failed (a job's answer has this shape): a row error,
            # not a success without an answer.
            error = payload.get("error")
            said = "status=error" if payload.get("status") == "error" else "success=false"
            raise RunFailedError(
                f"{DISPLAY_NAME} answered {response.status} with {said}"
                + (f": {error}" if error else ""),
                service=DISPLAY_NAME,
                status=response.status,
                detail=None if error is None else str(error),
            )
        if "data" not in payload:
            raise _unusable(response, "it has no 'data' (the flow's outputs)")
        data = payload["data"]
        if not isinstance(data, list):
            raise _unusable(response, f"its 'data' is {describe_value(data)}, not a list")
        outputs: dict[str, Any] = {}
        labels: dict[str, str] = {}
        types: dict[str, str] = {}
        for param in data:
            if not isinstance(param, dict) or not isinstance(param.get("id"), str):
                raise _unusable(response, "an output parameter has no 'id'")
            pid = param["id"]
            ptype = str(param.get("type", ""))
            outputs[pid] = _output_value(param.get("data", []), ptype)
            types[pid] = ptype
            label = param.get("label")
            if isinstance(label, str) and label not in labels:
                labels[label] = pid
        metadata = decode_metadata(payload.get("metadata"))
        instance = payload.get("runchat_instance_id")
        citations, warnings = self._citations(outputs, labels)
        if warnings:
            metadata = {**metadata, WARNINGS_KEY: warnings}
        return Outcome(
            result=self._result_text(outputs, labels, types),
            citations=citations,
            outputs=outputs,
            output_labels=labels,
            metadata=metadata,
            instance_id=instance if isinstance(instance, str) else None,
            credits=_credits(metadata),
        )

    def _result_text(
        self, outputs: Mapping[str, Any], labels: Mapping[str, str], types: Mapping[str, str]
    ) -> str | None:
        if self.result_output is not None:
            pid = _resolve(self.result_output, outputs, labels)
            return None if pid is None else _as_text(outputs[pid])
        for pid, ptype in types.items():
            if ptype in _TEXT_TYPES:
                return _as_text(outputs[pid])
        first = next(iter(outputs), None)
        return None if first is None else _as_text(outputs[first])

    def _citations(
        self, outputs: Mapping[str, Any], labels: Mapping[str, str]
    ) -> tuple[tuple[str, ...], list[str]]:
        """The chosen output's URLs, and warnings on items that were not URL strings."""
        if self.citations_output is None:
            return (), []
        pid = _resolve(self.citations_output, outputs, labels)
        if pid is None:
            return (), []
        value = outputs[pid]
        return clean_citations(value if isinstance(value, list) else [value])


def _classify(status: int, code: str | None, detail: str) -> type[ServiceError] | None:
    """Runchat answers 403 both for a key out of credits and for a refused key."""
    if status == 403:
        lowered = detail.lower()
        if "credit" in lowered or "you have used" in lowered:
            return CreditsExhaustedError
        return AuthenticationError
    return None


def _resolve(name: str, outputs: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    """An output id from an id or a label."""
    if name in outputs:
        return name
    return labels.get(name)


def _output_value(data: Any, ptype: str) -> Any:
    """A parameter's ``data`` list; a one-item list of a non-array type is that item."""
    if isinstance(data, list) and len(data) == 1 and ptype != "array":
        return data[0]
    return data


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return json.dumps(value, ensure_ascii=False)


def decode_metadata(raw: Any) -> dict[str, Any]:
    """Runchat's stringified-JSON ``metadata``, decoded; never raises.

    A string that is not a JSON object is kept under ``"raw"``; a missing value is ``{}``.
    """
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except ValueError:
            return {"raw": raw}
        return decoded if isinstance(decoded, dict) else {"raw": decoded}
    return {"raw": raw}


def _credits(metadata: Mapping[str, Any]) -> float | None:
    for key in _CREDIT_KEYS:
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _unexpected(response: HttpResponse, why: str) -> ServerError:
    return SERVICE.unexpected_body(response, why)


def _unusable(response: HttpResponse, why: str) -> UnusableAnswerError:
    return SERVICE.unusable_answer(response, why)


def schema_request(runchat_id: str) -> HttpRequest:
    """``GET /{runchat_id}/schema``: the flow's inputs and outputs (free; checks the key)."""
    return HttpRequest("GET", f"{require_text(runchat_id, 'runchat_id')}/schema")


def parse_schema(runchat_id: str, response: HttpResponse) -> RunchatSchema:
    """The schema in a response, or the classified error."""
    if not 200 <= response.status < 300:
        raise SERVICE.error_for(response, runchat_id)
    payload = SERVICE.decode_json(response)
    if not isinstance(payload, dict):
        raise _unexpected(response, "a JSON object was expected")

    def params(key: str) -> tuple[Parameter, ...]:
        items = payload.get(key) or []
        if not isinstance(items, list):
            raise _unexpected(response, f"{key!r} is not a list")
        return tuple(
            Parameter(
                id=str(p.get("id", "")),
                label=str(p.get("label", "")),
                type=str(p.get("type", "")),
                description=str(p.get("description", "")),
            )
            for p in items
            if isinstance(p, dict)
        )

    return RunchatSchema(
        name=str(payload.get("name", runchat_id)),
        inputs=params("inputs"),
        outputs=params("outputs"),
    )


SERVICE = ServiceInfo(
    name="runchat",
    display_name=DISPLAY_NAME,
    workflow=RunchatWorkflow,
    default_base_url="https://runchat.com/api/v1",
    default_rate=Rate(10, 60.0),
    default_concurrency=8,
    api_key_variable="RUNCHAT_API_KEY",
    base_url_variable="RUNCHAT_BASE_URL",
    default_resource_key="runchat",
    reports_credits=True,
    workflow_term="flow",
    inputs_help=(
        "the flow's inputs are read from its schema; map an input by id (paramId_nodeId) or "
        "by its label; an input whose id is also a column name is sent from that column "
        "without a mapping"
    ),
    workflow_options=("webhook", "instance_id", "result_output", "citations_output"),
    named_outputs=True,
    classify=_classify,
    schema=FreeCall("a flow's inputs and outputs", schema_request, parse_schema),
)
"""Runchat: what the package knows about it."""
