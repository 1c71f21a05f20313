"""What every hosted-workflow service provides, and the rules they share.

A :class:`Workflow` is one workflow on one service. It turns a row's inputs into an
:class:`~dagster_runwf.services.http.HttpRequest` (checking them first, so a bad row never
costs a run) and an :class:`~dagster_runwf.services.http.HttpResponse` into an
:class:`~dagster_runwf.services.outcome.Outcome` or a classified
:class:`~dagster_runwf.errors.ServiceError`. Adding a service means adding one
module with one subclass.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..errors import (
    AuthenticationError,
    ConfigError,
    CreditsExhaustedError,
    FatalError,
    RateLimitedError,
    RowInputError,
    RowSkippedError,
    RunFailedError,
    ServerError,
    ServiceError,
    WorkflowNotFoundError,
)
from .http import HttpRequest, HttpResponse, RateLimitInfo, parse_rate_limit_headers
from .outcome import Outcome
from .rate import Rate
from .values import MISSING, JsonValue, UnsendableValue, to_json_value

OnMissing = Literal["fail", "null", "skip"]
"""What a missing cell (None, NaN, NA, NaT) of an input means for its row.

- ``"fail"`` (the default): a data error. The row is not sent and is recorded as failed
  (``RowInputError``), its error naming the input and how to change the policy.
- ``"skip"``: expected gaps. The row is not sent either and is recorded as failed with a
  :class:`RowSkippedError` (``wf_error_type`` ``"RowSkippedError"``, error
  ``skipped (on_missing='skip'): …``), so the results table keeps one row per input row;
  the Dagster ``failure_rate`` check does not count skipped rows.
- ``"null"``: the workflow copes with an empty input. The cell is sent as JSON ``null``.

No policy ever sends a row with a variable left out: AI Tutor would run the workflow with
the text ``undefined`` in its place.
"""

ON_MISSING: tuple[OnMissing, ...] = ("fail", "null", "skip")


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A row ready to send: the request and the hash that identifies its inputs.

    ``input_hash`` covers the service, the workflow id and the exact request body, so two rows
    with the same hash would get the same answer: they are sent once, and the journal keys
    finished rows by it.
    """

    request: HttpRequest
    input_hash: str


def canonical_json(value: JsonValue) -> bytes:
    """Strict, compact JSON with sorted keys: the same value always gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class Workflow(ABC):
    """One workflow on one hosted service.

    Subclasses set the class attributes and implement :meth:`build_body`,
    :meth:`run_path` and :meth:`parse_success`.

    Args:
        workflow_id: the service's id of the workflow.
        input_names: the inputs every row must provide; only these are sent.
        on_missing: what a missing cell (None, NaN, NA, NaT) means: ``"fail"`` (a row error,
            the default), ``"skip"`` (the row is skipped, recorded as failed unsent) or
            ``"null"`` (sent as JSON ``null``); see :data:`OnMissing`.
    """

    service: ClassVar[str]
    """Short name, e.g. ``"aitutor"``; used in hashes, metadata and Dagster kinds."""
    display_name: ClassVar[str]
    """Name for people, e.g. ``"AI Tutor"``; used in messages."""
    default_base_url: ClassVar[str]
    default_rate: ClassVar[Rate]
    """The key's documented rate limit."""
    default_concurrency: ClassVar[int] = 16
    """Runs in flight at once unless the options say otherwise."""

    reports_credits: ClassVar[bool] = False
    """Whether a run's answer says what it cost (so a credit budget can be kept)."""
    inputs_setting: ClassVar[str] = "inputs"
    """What the service calls its inputs, for messages and reprs (e.g. ``"variables"``)."""

    def __init__(
        self, workflow_id: str, input_names: Sequence[str], *, on_missing: OnMissing = "fail"
    ) -> None:
        self._workflow_id = require_text(workflow_id, "workflow id")
        if isinstance(input_names, str):
            raise ConfigError(
                f"{self.inputs_setting} must be a list of names, not the string {input_names!r}"
            )
        names = tuple(require_text(n, f"each of {self.inputs_setting}") for n in input_names)
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.inputs_setting} name one input twice: {list(names)}")
        if on_missing not in ON_MISSING:
            raise ConfigError(
                f"on_missing must be one of {', '.join(map(repr, ON_MISSING))}, got {on_missing!r}"
            )
        self._input_names = names
        self.on_missing: OnMissing = on_missing

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._workflow_id!r}, "
            f"{self.inputs_setting}={list(self._input_names)!r})"
        )

    @property
    def workflow_id(self) -> str:
        """The service's id of this workflow."""
        return self._workflow_id

    @property
    def input_names(self) -> Sequence[str]:
        """The inputs every row must provide (AI Tutor variables, Runchat input ids)."""
        return self._input_names

    @abstractmethod
    def build_body(self, inputs: dict[str, JsonValue]) -> JsonValue:
        """The request body for converted, complete inputs."""

    @abstractmethod
    def run_path(self) -> str:
        """The run endpoint's path below the base URL."""

    @abstractmethod
    def parse_success(self, payload: Any, response: HttpResponse) -> Outcome:
        """Turn a 2xx JSON payload into an outcome, raising on a body that is not one."""

    def fingerprint(self) -> dict[str, JsonValue]:
        """Everything about this workflow that changes the answers (for code versions)."""
        return {
            "service": self.service,
            "workflow_id": self.workflow_id,
            "inputs": list(self.input_names),
            "on_missing": self.on_missing,
        }

    # -- requests ---------------------------------------------------------------------------

    def convert_inputs(self, inputs: Mapping[str, Any]) -> dict[str, JsonValue]:
        """Check and convert a row's inputs; only the declared inputs are kept.

        Raises:
            RowInputError: an input is absent, missing with ``on_missing="fail"``, or has no
                JSON form. The message names the input.
        """
        converted: dict[str, JsonValue] = {}
        for name in self.input_names:
            if name not in inputs:
                raise RowInputError(
                    f"input {name!r} is not in the row (the row has: "
                    f"{', '.join(map(repr, inputs)) or 'nothing'})",
                    service=self.display_name,
                    variable=name,
                )
            try:
                value = to_json_value(inputs[name], name)
            except UnsendableValue as exc:
                raise RowInputError(
                    f"input {exc.path}: {exc.reason}", service=self.display_name, variable=name
                ) from None
            if value is MISSING:
                if self.on_missing == "fail":
                    raise RowInputError(
                        f"input {name!r} is missing (None/NaN/NA); set on_missing='null' to "
                        "send it as null, or on_missing='skip' to skip such rows",
                        service=self.display_name,
                        variable=name,
                    )
                if self.on_missing == "skip":
                    raise RowSkippedError(
                        f"skipped (on_missing='skip'): input {name!r} is missing",
                        service=self.display_name,
                        variable=name,
                    )
                value = None
            converted[name] = value
        return converted

    def prepare(self, inputs: Mapping[str, Any]) -> PreparedRun:
        """Check a row's inputs and build its request, without any I/O.

        Raises:
            RowInputError: the row cannot be sent (see :meth:`convert_inputs`).
        """
        converted = self.convert_inputs(inputs)
        body = self.build_body(converted)
        try:
            content = canonical_json(body)
        except ValueError as exc:  # text that is not valid Unicode (a lone surrogate)
            raise self._unencodable(converted, exc) from None
        digest = hashlib.sha256()
        digest.update(f"{self.service}\0{self.workflow_id}\0".encode())
        digest.update(content)
        return PreparedRun(
            request=HttpRequest("POST", self.run_path(), content), input_hash=digest.hexdigest()
        )

    def _unencodable(self, inputs: Mapping[str, JsonValue], error: ValueError) -> RowInputError:
        """The row error for inputs that convert but do not encode, naming the input."""
        for name, value in inputs.items():
            try:
                canonical_json(value)
            except ValueError as exc:
                reason = (
                    f"text that is not valid Unicode ({exc.object[exc.start : exc.end]!r}: "
                    f"{exc.reason}); clean the text upstream"
                    if isinstance(exc, UnicodeEncodeError)
                    else str(exc)
                )
                return RowInputError(
                    f"input {name!r} cannot be sent as JSON: {reason}",
                    service=self.display_name,
                    variable=name,
                )
        return RowInputError(f"the row cannot be sent as JSON: {error}", service=self.display_name)

    # -- responses --------------------------------------------------------------------------

    def parse(self, response: HttpResponse) -> Outcome:
        """Turn a run's response into an outcome, or raise the classified error."""
        if not 200 <= response.status < 300:
            raise self.error_for(response)
        payload = self.decode_json(response)
        return self.parse_success(payload, response)

    def rate_limit_info(self, response: HttpResponse) -> RateLimitInfo | None:
        """The rate-limit headers of a response, if the service sent them."""
        return parse_rate_limit_headers(response.headers)

    def decode_json(self, response: HttpResponse) -> Any:
        """The body as JSON, or a transient :class:`ServerError` naming what came instead."""
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise ServerError(
                f"{self.display_name} answered {response.status} with a body that is not JSON "
                f"({_describe_body(response)})",
                service=self.display_name,
                status=response.status,
            ) from None

    def error_for(self, response: HttpResponse) -> ServiceError:
        """Classify an error response: fatal, transient or row-level."""
        detail, code = _error_fields(response)
        status = response.status
        where = f"{self.display_name} answered {status}" + (f" {code}" if code else "")
        text = f"{where}: {detail.rstrip('. ')}" if detail else where
        kwargs: dict[str, Any] = {
            "service": self.display_name,
            "status": status,
            "code": code,
            "detail": detail,
        }
        special = self.classify(status, code, detail or "")
        if special is not None:
            return special(f"{text}{_ADVICE.get(special, '')}", **kwargs)
        if status == 401:
            return AuthenticationError(f"{text}{_ADVICE[AuthenticationError]}", **kwargs)
        if status == 402:
            return CreditsExhaustedError(f"{text}{_ADVICE[CreditsExhaustedError]}", **kwargs)
        if status == 404:
            return WorkflowNotFoundError(
                f"{text}. Check the workflow id {self.workflow_id!r} and that it is published "
                "and belongs to this key's organisation.",
                **kwargs,
            )
        if status == 429:
            return RateLimitedError(text, **kwargs)
        if status >= 500 or status in (408, 425):
            return ServerError(text, **kwargs)
        if 300 <= status < 400:
            # Not followed, so that the key is never sent on to another host; every row
            # would get the same answer.
            location = response.headers.get("location") or "nowhere"
            return FatalError(
                f"{where}, a redirect to {location}, which is not followed: set base_url to "
                "the service's real API root",
                **kwargs,
            )
        return RunFailedError(text, **kwargs)

    def classify(self, status: int, code: str | None, detail: str) -> type[ServiceError] | None:
        """A service's own rules, consulted before the shared ones; ``None`` to defer."""
        return None


_ADVICE: dict[type[ServiceError], str] = {
    AuthenticationError: (
        ". Check the API key: is its environment variable set to a current key for this "
        "service? Finished rows are kept."
    ),
    CreditsExhaustedError: (
        ". Add credits (or raise the spend limit) in the service's billing settings, then "
        "re-run: finished rows are kept and will not be paid again."
    ),
}


def _error_fields(response: HttpResponse) -> tuple[str | None, str | None]:
    """The service's error text and code from a ``{"error": ..., "code": ...}`` body."""
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return _describe_body(response), None
    if not isinstance(payload, dict):
        return _describe_body(response), None
    error = payload.get("error")
    code = payload.get("code")
    detail = error if isinstance(error, str) else (None if error is None else str(error))
    return detail, code if isinstance(code, str) else None


_TAG = re.compile(r"<[^>]+>")


def _describe_body(response: HttpResponse) -> str:
    """A short, safe description of a body that is not the documented JSON."""
    if not response.content:
        return "an empty body"
    head = response.content[:2000].decode("utf-8", "replace")
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or head.lstrip().lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else _TAG.sub(" ", head)
        return "an HTML page: " + " ".join(text.split())[:120]
    return f"{len(response.content)} bytes starting {head[:80]!r}"


def unexpected_body(service: str, response: HttpResponse, why: str) -> ServerError:
    """A 2xx whose body is not the documented one: transient, the next try may be fine."""
    return ServerError(
        f"{service} answered {response.status} with an unexpected body: {why}",
        service=service,
        status=response.status,
    )


def require_text(value: object, setting: str) -> str:
    """A non-empty string setting, or a :class:`ConfigError` naming it."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{setting} must be a non-empty string, got {value!r}")
    return value
