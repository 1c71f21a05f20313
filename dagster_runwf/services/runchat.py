"""Runchat: ``POST /{runchat_id}`` with ``inputs`` keyed ``paramId_nodeId``, or a webhook body.

A run answers the flow's output parameters (each a ``data`` list) and a stringified JSON
``metadata`` whose keys are not documented: it is decoded and kept whole, and nothing fails
because a key is missing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import (
    AuthenticationError,
    ConfigError,
    CreditsExhaustedError,
    RowInputError,
    RunFailedError,
    ServerError,
    ServiceError,
    UnusableAnswerError,
)
from ..wording import setting
from .base import OnMissing, Workflow, canonical_json, require_text
from .citations import WARNINGS_KEY, clean_citations
from .http import HttpRequest, HttpResponse
from .outcome import Outcome
from .rate import Rate
from .runchat_schema import Parameter, RunchatSchema, schema_fingerprint
from .service_info import FreeCall, ServiceInfo
from .typed_answer import OutputSchemaLike
from .unusable import describe_value
from .values import MISSING, JsonValue, UnsendableValue, to_json_value

__all__ = [
    "SERVICE",
    "Parameter",
    "RunchatSchema",
    "RunchatWorkflow",
    "decode_metadata",
    "entity_key",
]

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
        instance_id_column: continue the instance named in this column, row by row (an
            empty cell: a new instance). The instance is part of the row's request, so of
            its input hash: the same inputs in another conversation are another request.
        continue_by: a key column (a customer id, a ticket id): each row continues the
            instance of the latest answer recorded for its key (see :meth:`continuing`;
            the Dagster step and ``runwf enrich`` keep these records beside the journal),
            or starts one for a key seen first, so each entity keeps its own conversation
            across runs. The row's input hash covers its key (not the instance id, which
            is fixed by the key): see the docs' page on the journal.
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
        instance_id_column: str | None = None,
        continue_by: str | None = None,
        result_output: str | None = None,
        citations_output: str | None = None,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
    ) -> None:
        super().__init__(runchat_id, inputs, on_missing=on_missing, output_schema=output_schema)
        picks = {
            "instance_id": instance_id,
            "instance_id_column": instance_id_column,
            "continue_by": continue_by,
        }
        chosen = [name for name, value in picks.items() if value is not None]
        for name in chosen:
            require_text(picks[name], name)
        if len(chosen) > 1:
            raise ConfigError(
                f"{' and '.join(setting(name) for name in chosen)}: choose one way to pick "
                "the instance a run continues"
            )
        self.webhook = webhook
        self.instance_id = instance_id
        self.instance_id_column = instance_id_column
        self.continue_by = continue_by
        self.result_output = result_output
        self.citations_output = citations_output
        self.schema_fingerprint: str | None = None
        """The fingerprint of the flow's schema the answers come from (:meth:`with_schema`)."""
        self._continuations: Mapping[str, str] = {}

    def fingerprint(self) -> dict[str, JsonValue]:
        found: dict[str, JsonValue] = {
            **super().fingerprint(),
            "webhook": self.webhook,
            "instance_id": self.instance_id,
            "result_output": self.result_output,
            "citations_output": self.citations_output,
        }
        # Only when set, so the code versions of assets defined before stay as they were.
        for name in ("instance_id_column", "continue_by"):
            if getattr(self, name) is not None:
                found[name] = getattr(self, name)
        return found

    @property
    def answer_version(self) -> str:
        """The output picks and the flow's schema fingerprint, when known: the picks choose
        the result and citations of an answer, and answers of a flow whose inputs or outputs
        changed on the service are never reused (see :meth:`with_schema`)."""
        parts: dict[str, str | None] = {}
        if self.result_output is not None or self.citations_output is not None:
            parts = {"result_output": self.result_output, "citations_output": self.citations_output}
        if self.schema_fingerprint is not None:
            parts["flow_schema"] = self.schema_fingerprint
        return json.dumps(parts, sort_keys=True) if parts else ""

    def with_schema(self, schema: RunchatSchema) -> RunchatWorkflow:
        """This workflow, its answers tied to the flow's ``schema`` (as the schema call
        answers it now): the schema's fingerprint
        (:func:`~dagster_runwf.services.runchat_schema.schema_fingerprint`) becomes part of
        every row's input hash, so once the flow's inputs or outputs change on the service
        no answer of the old flow is reused. The Dagster step and ``runwf enrich`` call it
        with the schema their free pre-flight fetched."""
        pinned = copy.copy(self)
        pinned.schema_fingerprint = schema_fingerprint(schema)
        return pinned

    def continuing(self, instances: Mapping[str, str]) -> RunchatWorkflow:
        """This workflow with ``continue_by``'s records: entity key (:func:`entity_key` of
        the key column's cell) -> the instance id of its latest answer. A row whose key is
        not there starts a new instance."""
        continued = copy.copy(self)
        continued._continuations = dict(instances)
        return continued

    def row_columns(self) -> dict[str, tuple[str, str]]:
        if self.instance_id_column is not None:
            return {INSTANCE_FIELD: ("instance_id_column", self.instance_id_column)}
        if self.continue_by is not None:
            return {ENTITY_FIELD: ("continue_by", self.continue_by)}
        return {}

    def run_path(self) -> str:
        return self.workflow_id

    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        return self._body(inputs, self.instance_id)

    def _body(self, inputs: dict[str, JsonValue], instance: str | None) -> dict[str, JsonValue]:
        body: dict[str, JsonValue] = dict(inputs) if self.webhook else {"inputs": inputs}
        if instance is not None:
            body["runchat_instance_id"] = instance
        return body

    def request_parts(
        self, row: Mapping[str, Any], inputs: dict[str, JsonValue]
    ) -> tuple[JsonValue, JsonValue, str]:
        """With ``instance_id_column`` the row's instance is in its body (and hash); with
        ``continue_by`` the body continues the key's instance, and the hash covers the body
        without it plus the key: the key's conversation, whichever instance id it has."""
        if self.instance_id_column is not None:
            body = self._body(
                inputs, _row_instance(row.get(INSTANCE_FIELD), self.instance_id_column)
            )
            return body, body, ""
        if self.continue_by is not None:
            key = _row_entity(row.get(ENTITY_FIELD), self.continue_by)
            body = self._body(inputs, self._continuations.get(key))
            return body, self._body(inputs, None), key
        body = self.build_body(inputs)
        return body, body, ""

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


INSTANCE_FIELD = "@instance_id_column"
"""The row field holding ``instance_id_column``'s cell (``@``: never a flow's input id)."""
ENTITY_FIELD = "@continue_by"
"""The row field holding ``continue_by``'s cell."""


def entity_key(value: Any) -> str | None:
    """A ``continue_by`` cell as the text its records are keyed by (its canonical JSON: the
    number 7 and the text "7" are two keys); ``None`` for a missing cell or one with no
    JSON form."""
    try:
        converted = to_json_value(value, "continue_by")
    except UnsendableValue:
        return None
    if converted is MISSING:
        return None
    return canonical_json(converted).decode()


def _row_entity(value: Any, column: str) -> str:
    key = entity_key(value)
    if key is None:
        raise RowInputError(
            f"{setting('continue_by', column)}: the row has no key ({describe_value(value)}); "
            "each row needs one to continue its own instance",
            service=DISPLAY_NAME,
        )
    return key


def _row_instance(value: Any, column: str) -> str | None:
    """The instance id in a row's ``instance_id_column`` cell; ``None`` (a new instance) for
    an empty or missing one."""
    if isinstance(value, str):
        return value.strip() or None
    try:
        if to_json_value(value, column) is MISSING:
            return None
    except UnsendableValue:
        pass
    raise RowInputError(
        f"{setting('instance_id_column', column)}: an instance id is text, the row has "
        f"{describe_value(value)}",
        service=DISPLAY_NAME,
    )


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
    workflow_options=(
        "webhook",
        "instance_id",
        "instance_id_column",
        "continue_by",
        "result_output",
        "citations_output",
    ),
    named_outputs=True,
    classify=_classify,
    schema=FreeCall("a flow's inputs and outputs", schema_request, parse_schema),
)
"""Runchat: what the package knows about it."""
