"""What the package knows about one hosted service, in one place: :class:`ServiceInfo`.

Each service module (``aitutor``, ``runchat``) defines one ``SERVICE = ServiceInfo(...)`` next
to its workflow class, and :mod:`~dagster_runwf.services.registry` lists them. Everything
that differs between services (names, default URL and rate, environment variables, the
resource key, the free calls, the error rules, the workflow's own options) is read from
there: by the engine, the ``runwf`` command and the Dagster layer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import ConfigError, ServerError, ServiceError, UnusableAnswerError
from .http import HttpRequest, HttpResponse
from .rate import Rate
from .responses import Classifier, decode_json, error_for, no_special_errors, unexpected_body
from .runchat_schema import RunchatSchema
from .typed_answer import OutputSchemaLike
from .unusable import decode_answer, unusable_answer

if TYPE_CHECKING:
    from .base import OnMissing, Workflow

T = TypeVar("T")


@dataclass(frozen=True)
class FreeCall(Generic[T]):
    """A call that costs no run (so a job can check the key, credits or mapping first).

    Attributes:
        summary: what it answers, for people.
        request: builds the request from the call's arguments (none, or a workflow id).
        parse: ``parse(*arguments, response)``: the answer, or the classified error.
    """

    summary: str
    request: Callable[..., HttpRequest]
    parse: Callable[..., T]


@dataclass(frozen=True, eq=False)
class ServiceInfo:
    """One hosted workflow service: its facts, its workflow class and its free calls.

    Creating it gives ``workflow`` its class attributes (``service``, ``display_name``,
    ``default_base_url``, ``default_rate``, ``default_concurrency``, ``reports_credits``
    and ``info``), so each fact is written once.

    Attributes:
        name: short name, e.g. ``"aitutor"``: the YAML ``service:`` and ``--service`` value,
            part of every input hash, and the asset's Dagster kind.
        display_name: name for people, e.g. ``"AI Tutor"``; used in messages.
        workflow: the :class:`~dagster_runwf.services.base.Workflow` subclass.
        default_base_url: the public API root.
        default_rate: the key's documented rate limit.
        default_concurrency: rows in flight at once unless set.
        api_key_variable: the environment variable the ``runwf`` command reads the key from
            (and the scaffolded ``defs.yaml`` names).
        base_url_variable: the environment variable naming another API root (an emulator).
        default_resource_key: the Dagster resource key an asset uses unless told.
        reports_credits: whether a run's answer says what it cost (so a credit budget can
            be kept).
        workflow_term: what the service calls a workflow, e.g. ``"flow"``; used in messages.
        inputs_help: how a workflow's inputs are named and mapped to columns, for help texts.
        workflow_options: keyword settings of ``workflow`` beyond the id, the inputs and
            ``on_missing`` (e.g. Runchat's ``result_output``).
        named_outputs: whether an answer has named outputs, which ``output_columns`` can
            lift into columns of their own.
        classify: the service's own error rules, consulted before the shared ones.
        balance: the free call answering the key's remaining credits, if there is one.
        schema: the free call answering a workflow's inputs and outputs (by id and label),
            if there is one; with it, inputs can be named by label and outputs checked.
    """

    name: str
    display_name: str
    workflow: type[Workflow]
    default_base_url: str
    default_rate: Rate
    default_concurrency: int
    api_key_variable: str
    base_url_variable: str
    default_resource_key: str
    reports_credits: bool = False
    workflow_term: str = "workflow"
    inputs_help: str = ""
    workflow_options: tuple[str, ...] = ()
    named_outputs: bool = False
    classify: Classifier = no_special_errors
    balance: FreeCall[float] | None = None
    schema: FreeCall[RunchatSchema] | None = None

    def __post_init__(self) -> None:
        self.workflow.describe_service(self)

    def __repr__(self) -> str:
        return f"ServiceInfo({self.name!r})"

    def error_for(self, response: HttpResponse, workflow_id: str | None = None) -> ServiceError:
        """Classify an error response: fatal, transient or row-level (no workflow needed)."""
        return error_for(
            self.display_name, response, self.classify, workflow_id, self.api_key_variable
        )

    def decode_json(self, response: HttpResponse) -> Any:
        """The body as JSON, or a transient :class:`~dagster_runwf.errors.ServerError`."""
        return decode_json(self.display_name, response)

    def unexpected_body(self, response: HttpResponse, why: str) -> ServerError:
        """The transient error for a 2xx whose body is not the documented one."""
        return unexpected_body(self.display_name, response, why)

    def decode_answer(self, response: HttpResponse) -> Any:
        """A run's 2xx body as JSON, or an :class:`~dagster_runwf.errors.UnusableAnswerError`
        (the run was most likely paid for)."""
        return decode_answer(self.display_name, response)

    def unusable_answer(self, response: HttpResponse, why: str) -> UnusableAnswerError:
        """The error for a run's 2xx answer that is not the documented one (most likely
        paid for)."""
        return unusable_answer(self.display_name, response, why)

    def describe(self, workflow_id: str) -> str:
        """A workflow as messages name it, e.g. ``Runchat flow 'demo'``."""
        return f"{self.display_name} {self.workflow_term} {workflow_id!r}"

    def build_workflow(
        self,
        workflow_id: str,
        inputs: Sequence[str],
        *,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
        **options: Any,
    ) -> Workflow:
        """The workflow from settings common to every service plus its own options.

        Options that are unset (``None`` or ``False``) are left out, so one set of settings
        (a YAML file, the command's flags) builds any service's workflow.

        Raises:
            ConfigError: an option set is not one of :attr:`workflow_options`.
        """
        given = {k: v for k, v in options.items() if v is not None and v is not False}
        unknown = [name for name in given if name not in self.workflow_options]
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: not a setting of {self.display_name} "
                f"{self.workflow_term}s (theirs: {', '.join(self.workflow_options) or 'none'})"
            )
        return self.workflow(
            workflow_id, inputs, on_missing=on_missing, output_schema=output_schema, **given
        )
