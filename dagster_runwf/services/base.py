"""What every hosted-workflow service provides, and the rules they share.

A :class:`Workflow` is one workflow on one service. It turns a row's inputs into an
:class:`~dagster_runwf.services.http.HttpRequest` (checking them first, so a bad row never
costs a run) and an :class:`~dagster_runwf.services.http.HttpResponse` into an
:class:`~dagster_runwf.services.outcome.Outcome` or a classified
:class:`~dagster_runwf.errors.ServiceError`. A service is one module with one subclass and
the :class:`~dagster_runwf.services.service_info.ServiceInfo` describing it (see the docs
page "Adding a service").
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..errors import ConfigError, RowInputError, RowSkippedError, ServiceError
from ..wording import note, setting
from .http import HttpRequest, HttpResponse, RateLimitInfo, parse_rate_limit_headers
from .outcome import Outcome
from .rate import Rate
from .typed_answer import OutputSchema, OutputSchemaLike
from .values import MISSING, JsonValue, UnsendableValue, missing_kind, to_json_value

if TYPE_CHECKING:
    from .service_info import ServiceInfo

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

    ``input_hash`` covers the service, the workflow id, the exact request body and the
    workflow's :attr:`~Workflow.answer_version`, so two rows with the same hash would get the
    same answer: they are sent once, and the journal keys finished rows by it.
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

    A subclass implements :meth:`build_body`, :meth:`run_path` and :meth:`parse_success`;
    the :class:`~dagster_runwf.services.service_info.ServiceInfo` naming it gives it the
    service's facts below (``service``, ``display_name``, ...), so they are written once.

    Args:
        workflow_id: the service's id of the workflow.
        input_names: the inputs every row must provide; only these are sent.
        on_missing: what a missing cell (None, NaN, NA, NaT) means: ``"fail"`` (a row error,
            the default), ``"skip"`` (the row is skipped, recorded as failed unsent) or
            ``"null"`` (sent as JSON ``null``); see :data:`OnMissing`.
        output_schema: the fields of the JSON object the answer holds, each with its type
            (a mapping field -> Arrow type or type name, or a pydantic model class; see
            :meth:`~dagster_runwf.services.typed_answer.OutputSchema.of`): the results
            table gets a typed column per field and a parse error column. Not part of the
            answers' version: changing it re-reads the journaled answers, never pays again.
    """

    info: ClassVar[ServiceInfo]
    """The service this workflow runs on."""
    service: ClassVar[str]
    """Short name, e.g. ``"aitutor"``; used in hashes, metadata and Dagster kinds."""
    display_name: ClassVar[str]
    """Name for people, e.g. ``"AI Tutor"``; used in messages."""
    default_base_url: ClassVar[str]
    default_rate: ClassVar[Rate]
    """The key's documented rate limit."""
    default_concurrency: ClassVar[int]
    """Rows in flight at once unless set."""
    reports_credits: ClassVar[bool]
    """Whether a run's answer says what it cost (so a credit budget can be kept)."""

    inputs_setting: ClassVar[str] = "inputs"
    """What the service calls its inputs, for messages and reprs (e.g. ``"variables"``)."""

    @classmethod
    def describe_service(cls, info: ServiceInfo) -> None:
        """Take the service's facts from ``info`` (called by the ``ServiceInfo`` naming
        this class).

        Raises:
            TypeError: another ``ServiceInfo`` already names this class.
        """
        if "info" in cls.__dict__ and cls.info is not info:
            raise TypeError(f"{cls.__name__} is already the workflow of {cls.info!r}")
        cls.info = info
        cls.service = info.name
        cls.display_name = info.display_name
        cls.default_base_url = info.default_base_url
        cls.default_rate = info.default_rate
        cls.default_concurrency = info.default_concurrency
        cls.reports_credits = info.reports_credits

    def __init__(
        self,
        workflow_id: str,
        input_names: Sequence[str],
        *,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
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
        self.output_schema: OutputSchema | None = (
            None if output_schema is None else OutputSchema.of(output_schema)
        )

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
        """Turn a 2xx JSON payload into an outcome, raising
        :class:`~dagster_runwf.errors.UnusableAnswerError` (``self.info.unusable_answer``)
        on a body that is not one."""

    @property
    def answer_version(self) -> str:
        """What changes a recorded answer beyond the request body; ``""`` when nothing does.

        A workflow that reads its answer from the response by settings of its own (Runchat's
        ``result_output`` and ``citations_output``) names them here: it is part of every
        row's input hash, so rows recorded with other settings are never reused (in the
        journal, incremental or not). Empty, the hash is the one it always was, so journals
        written before stay valid.
        """
        return ""

    def fingerprint(self) -> dict[str, JsonValue]:
        """Everything about this workflow that changes the answers (for code versions).

        Not the :attr:`output_schema`: it changes how answers are read into the table,
        not the answers (the requests are the same), so it is left out of the answers'
        version and the journal's job; the Dagster asset's code version adds it."""
        return {
            "service": self.service,
            "workflow_id": self.workflow_id,
            "inputs": list(self.input_names),
            "on_missing": self.on_missing,
        }

    # -- requests ---------------------------------------------------------------------------

    def request_parts(
        self, row: Mapping[str, Any], inputs: dict[str, JsonValue]
    ) -> tuple[JsonValue, JsonValue, str]:
        """A row's request body, the body its input hash covers, and a key of the row's own
        that the hash covers too (``""``: none).

        By default the body is sent and hashed as it is. A workflow whose answer depends on
        something of the row that is not its inputs, or whose body holds something that
        does not change the answer, says so here (Runchat's per-row instances).

        Args:
            row: the row as the engine hands it (the inputs, and the fields of
                :meth:`row_columns`).
            inputs: the converted inputs (:meth:`convert_inputs`).
        """
        body = self.build_body(inputs)
        return body, body, ""

    def row_columns(self) -> dict[str, tuple[str, str]]:
        """Fields each row carries besides its inputs: field -> (the setting that names
        its column, the column). The engine checks the columns exist before any request
        and hands each row these fields under their names. None by default."""
        return {}

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
                        f"input {name!r} is missing ({_missing(inputs[name])}); set "
                        f"{setting('on_missing', 'null')} to send it as null, or "
                        f"{setting('on_missing', 'skip')} to skip such rows",
                        service=self.display_name,
                        variable=name,
                    )
                if self.on_missing == "skip":
                    raise RowSkippedError(
                        f"skipped ({setting('on_missing', 'skip')}): input {name!r} is missing",
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
        body, keyed, row_key = self.request_parts(inputs, converted)
        try:
            content = canonical_json(body)
            keyed_content = content if keyed is body else canonical_json(keyed)
        except ValueError as exc:  # text that is not valid Unicode (a lone surrogate)
            raise self._unencodable(converted, exc) from None
        digest = hashlib.sha256()
        digest.update(f"{self.service}\0{self.workflow_id}\0".encode())
        digest.update(keyed_content)
        if self.answer_version:
            # After a NUL byte, which canonical JSON never holds: no body can look like this.
            digest.update(b"\0" + self.answer_version.encode())
        if row_key:
            # Two NUL bytes: an answer version (JSON text) never starts with one.
            digest.update(b"\0\0" + row_key.encode())
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
        """Turn a run's response into an outcome, or raise the classified error.

        A 2xx whose body cannot be used raises
        :class:`~dagster_runwf.errors.UnusableAnswerError` (the run was most likely paid).
        """
        if not 200 <= response.status < 300:
            raise self.error_for(response)
        payload = self.info.decode_answer(response)
        return self.parse_success(payload, response)

    def rate_limit_info(self, response: HttpResponse) -> RateLimitInfo | None:
        """The rate-limit headers of a response, if the service sent them."""
        return parse_rate_limit_headers(response.headers)

    def decode_json(self, response: HttpResponse) -> Any:
        """The body as JSON, or a transient :class:`~dagster_runwf.errors.ServerError` naming
        what came instead."""
        return self.info.decode_json(response)

    def error_for(self, response: HttpResponse) -> ServiceError:
        """Classify an error response: fatal, transient or row-level (the service's rules:
        :meth:`~dagster_runwf.services.service_info.ServiceInfo.error_for`)."""
        return self.info.error_for(response, self.workflow_id)


def require_text(value: object, setting: str) -> str:
    """A non-empty string setting, or a :class:`ConfigError` naming it."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{setting} must be a non-empty string, got {value!r}")
    return value


READ_CSV_NA = (
    "pandas.read_csv reads the texts NA, N/A, null, NaN and others as missing: if the file "
    'holds such a text as a value, read it with keep_default_na=False, na_values=[""]'
)
"""Why a cell a user sees as text may arrive missing, and the remedy (the ``missing_nan``
note; ``runwf`` words it its own way, as it reads files so)."""


def _missing(value: object) -> str:
    """The missing value a cell holds, for a message: ``NaN`` and ``pd.NA`` (what
    ``read_csv`` makes of the text ``NA``) with the hint :data:`READ_CSV_NA`."""
    kind = missing_kind(value)
    if kind in ("NaN", "pd.NA"):
        return note("missing_nan", f"{kind}; {READ_CSV_NA}")
    return kind
