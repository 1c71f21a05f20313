"""Dagster resources for the two services: the key, where the service is, and how hard to
push it (rate, concurrency, timeouts, retries).

The API key is a secret: set it from an ``EnvVar``; it is excluded from the resource's
repr and never put in logs, metadata or error messages. Keys are sent only over https or to
a loopback address (the emulator); any other ``base_url`` is a configuration error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from ..engine.client import DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, check_base_url
from ..engine.options import DEFAULT_MAX_CONSECUTIVE_FAILURES, EngineOptions
from ..engine.ratelimit import REDIS_SCHEMES, SQLITE_SCHEME
from ..engine.retry import RetryPolicy
from ..engine.service_calls import fetch_balance, fetch_schema
from ..errors import ConfigError, RunwfError
from ..services import aitutor, runchat
from ..services.aitutor import AITutorWorkflow
from ..services.base import OnMissing, Workflow
from ..services.rate import Rate
from ..services.registry import service_info
from ..services.runchat import RunchatWorkflow
from ..services.runchat_schema import RunchatSchema, check_inputs, check_output
from ..services.typed_answer import OutputSchemaLike
from ..wording import setting


class WorkflowServiceResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Settings shared by both services (use :class:`AITutorResource` or
    :class:`RunchatResource`)."""

    api_key: str = Field(
        repr=False,
        description="The service's secret API key; set it from an environment variable "
        "with dagster.EnvVar.",
    )
    base_url: str | None = Field(
        default=None,
        description="The service's API root; default: the public service. Only https, or "
        "http to a loopback address (the emulator).",
    )
    rate: str | None = Field(
        default=None,
        description="The key's rate limit, e.g. '10/s' or '10/min'; default: the service's "
        "documented limit, adjusted from rate-limit headers. 'unlimited' turns it off.",
    )
    concurrency: int | None = Field(
        default=None, description="Runs in flight at once; default: the service's default."
    )
    rate_limit_store: str = Field(
        default="auto",
        description="Where the key's rate-limit window is kept, so the runs and steps using "
        "the key at once share its rate: 'auto' (a SQLite file in the Dagster instance's "
        "storage, shared by every process of this host; for an ephemeral instance, or "
        "outside a step, the one in the user's cache folder that runwf uses), 'memory' "
        "(this process only), 'sqlite:///path/to/limits.sqlite' (every process of this "
        "host), or 'redis://host:6379/0' (every host reaching that Redis; set it from an "
        "EnvVar if the URL holds a password). While the store is unavailable, runs go on "
        "at a conservative share of the rate, with one warning.",
    )
    claim_store: str = Field(
        default="auto",
        description="Where the runs writing one journal job claim rows before paying for "
        "them, so two runs of one asset partition at once never pay for a row twice: "
        "'auto' (a SQLite file in a local journal's folder; none for a journal in object "
        "storage, with a warning), 'redis://host:6379/0' (needed for a journal in object "
        "storage, or steps on several hosts), 'sqlite:///path/claims.sqlite' or 'off'.",
    )
    claim_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a writer's row claims outlive its last heartbeat: a step "
        "killed mid-chunk (a lost pod or worker) holds its rows in flight this long, then "
        "the chunk's next attempt takes them over.",
    )
    connect_timeout_s: float = Field(default=DEFAULT_TIMEOUT.connect or 15.0)
    read_timeout_s: float = Field(
        default=DEFAULT_TIMEOUT.read or 330.0,
        description="Longest wait for a run's answer; runs may take up to 300 s. An attempt "
        "as a whole, the answer read to its end, has connect_timeout_s plus this.",
    )
    max_response_bytes: int = Field(
        default=MAX_RESPONSE_BYTES,
        gt=0,
        description="The largest answer read (64 MiB by default); a larger one fails its row "
        "(ResponseTooLargeError) instead of filling memory.",
    )
    max_attempts: int = Field(
        default=5, description="Attempts per row on transient errors (429s not counted)."
    )
    initial_backoff_s: float = Field(default=1.0)
    max_backoff_s: float = Field(default=60.0)
    max_consecutive_failures: int | None = Field(
        default=DEFAULT_MAX_CONSECUTIVE_FAILURES,
        description="Stop a run after this many rows in a row failed at the service, so a "
        "broken workflow does not keep paying; None: never.",
    )
    max_rate_limited: int = Field(
        default=RetryPolicy().max_rate_limited,
        ge=0,
        description="429 answers one row may meet before it is recorded as failed (they do "
        "not count as attempts).",
    )
    unusable_retries: int = Field(
        default=1,
        description="Times a row is sent again after a 2xx answer that cannot be used (the "
        "service most likely ran and billed it), before it is recorded as failed.",
    )

    def engine_options(self) -> EngineOptions:
        """The engine's options (for ``enrich`` / ``WorkflowRun``); they hold the key."""
        self.check()
        return EngineOptions(
            api_key=self.api_key,
            base_url=self.base_url or None,
            rate=self.rate or None,
            concurrency=self.concurrency,
            rate_limit_store=self.rate_limit_store,
            claim_store=self.claim_store,
            claim_ttl_s=self.claim_ttl_s,
            max_consecutive_failures=self.max_consecutive_failures,
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                initial_backoff_s=self.initial_backoff_s,
                max_backoff_s=self.max_backoff_s,
                unusable_retries=self.unusable_retries,
                max_rate_limited=self.max_rate_limited,
            ),
            max_response_bytes=self.max_response_bytes,
            timeout=httpx.Timeout(
                self.read_timeout_s,
                connect=self.connect_timeout_s,
                read=self.read_timeout_s,
                write=DEFAULT_TIMEOUT.write,
                pool=None,
            ),
        )

    def check(self) -> None:
        """Raise a :class:`ConfigError` naming the first bad setting."""
        if not self.api_key or not self.api_key.strip():
            # An EnvVar of a variable set to nothing (`export AITUTOR_API_KEY=`), usually.
            raise ConfigError(
                f"{type(self).__name__}.api_key is empty (a variable set to nothing?): give "
                f"the service's key to {setting('api_key', self._key_variable())}"
            )
        if self.base_url:
            check_base_url(self.base_url)
        if self.rate and self.rate.strip().lower() != "unlimited":
            Rate.parse(self.rate)
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"{type(self).__name__}.concurrency must be >= 1")
        store = self.rate_limit_store
        if store not in ("auto", "memory") and not store.startswith(
            (SQLITE_SCHEME, *REDIS_SCHEMES)
        ):
            raise ConfigError(
                f"{type(self).__name__}.rate_limit_store is not a store URL; use 'auto', "
                "'memory', 'sqlite:///path/to/limits.sqlite' or 'redis://host:6379/0'"
            )

    def _key_variable(self) -> str:
        """The environment variable the service's key is usually read from."""
        for name, cls in RESOURCE_CLASSES.items():
            if isinstance(self, cls):
                return service_info(name).api_key_variable
        return "<THE VARIABLE HOLDING THE KEY>"

    def preflight(self, workflow: Workflow) -> dict[str, Any]:
        """Free checks before the first paid run; metadata describing what was checked.

        Raises:
            RunwfError: the key is rejected, there are no credits, or the mapping does not
                fit the workflow.
        """
        return {}

    def preflight_workflow(self, workflow: Workflow) -> Preflight:
        """:meth:`preflight`, and the workflow as the step runs it: tied to what the free
        calls found (a Runchat flow's schema, see :meth:`RunchatResource.preflight_workflow`).
        """
        return Preflight(workflow, self.preflight(workflow))


@dataclass(frozen=True)
class Preflight:
    """What a step's pre-flight found: the workflow to run, metadata describing the checks,
    and the flow's schema when the service has one."""

    workflow: Workflow
    checked: dict[str, Any]
    schema: RunchatSchema | None = None


class AITutorResource(WorkflowServiceResource):
    """The AI Tutor API (MyApps): template workflows run by id.

    Example::

        AITutorResource(api_key=dg.EnvVar("AITUTOR_API_KEY"))
    """

    def workflow(
        self,
        workflow_id: str,
        variables: Sequence[str],
        *,
        on_missing: OnMissing = "fail",
        output_schema: OutputSchemaLike | None = None,
    ) -> AITutorWorkflow:
        """The workflow ``workflow_id`` with its template ``variables``."""
        return AITutorWorkflow(
            workflow_id, variables, on_missing=on_missing, output_schema=output_schema
        )

    def balance(self) -> float:
        """The key's remaining credits (``GET /balance``; free)."""
        self.check()
        return asyncio.run(fetch_balance(self.api_key, self.base_url))

    def preflight(self, workflow: Workflow) -> dict[str, Any]:
        """Check the key and that credits are left (``GET /balance``)."""
        credits = self.balance()
        if credits <= 0:
            raise RunwfError(
                "the AI Tutor key has no credits left (GET /balance answered 0); add credits "
                "or raise the spend limit, then re-run"
            )
        return {"runwf/credits_before": credits}


class RunchatResource(WorkflowServiceResource):
    """Runchat: flows run by id with ``paramId_nodeId`` inputs.

    Example::

        RunchatResource(api_key=dg.EnvVar("RUNCHAT_API_KEY"))
    """

    def workflow(
        self,
        runchat_id: str,
        inputs: Sequence[str],
        *,
        result_output: str | None = None,
        citations_output: str | None = None,
        on_missing: OnMissing = "fail",
        instance_id_column: str | None = None,
        continue_by: str | None = None,
        output_schema: OutputSchemaLike | None = None,
    ) -> RunchatWorkflow:
        """The flow ``runchat_id`` with the input ids every row provides (see
        :class:`RunchatWorkflow` for the settings)."""
        return RunchatWorkflow(
            runchat_id,
            inputs,
            result_output=result_output,
            citations_output=citations_output,
            on_missing=on_missing,
            instance_id_column=instance_id_column,
            continue_by=continue_by,
            output_schema=output_schema,
        )

    def flow_schema(self, runchat_id: str) -> RunchatSchema:
        """The flow's inputs and outputs (``GET /{id}/schema``; free)."""
        self.check()
        return asyncio.run(fetch_schema(runchat_id, self.api_key, self.base_url))

    def preflight(self, workflow: Workflow) -> dict[str, Any]:
        """Check the key, that every input is one of the flow's (by id) and that the
        outputs named for the result and citations are the flow's, with the same rules as
        ``runwf enrich``."""
        return self.preflight_workflow(workflow).checked

    def preflight_workflow(self, workflow: Workflow) -> Preflight:
        """:meth:`preflight` (one schema call), and the workflow tied to the flow's schema
        as it is now (:meth:`RunchatWorkflow.with_schema`): answers of the flow as it was
        before an edit on the service are not reused. The metadata holds the schema's
        fingerprint, ``runwf/flow_schema``."""
        if not isinstance(workflow, RunchatWorkflow):
            return Preflight(workflow, {})
        schema = self.flow_schema(workflow.workflow_id)
        checked = self._check_flow(workflow, schema)
        pinned = workflow.with_schema(schema)
        checked["runwf/flow_schema"] = pinned.schema_fingerprint
        return Preflight(pinned, checked, schema)

    def _check_flow(self, workflow: RunchatWorkflow, schema: RunchatSchema) -> dict[str, Any]:
        flow = runchat.SERVICE.describe(workflow.workflow_id)
        for option, name in (
            ("result_output", workflow.result_output),
            ("citations_output", workflow.citations_output),
        ):
            if name is not None:
                check_output(flow, schema, name, setting=option)
        if workflow.webhook:  # the inputs are fields of the body, not the flow's inputs
            return {"runwf/flow_name": schema.name}
        check_inputs(flow, schema, workflow.input_names)
        unmapped = sorted({p.id for p in schema.inputs} - set(workflow.input_names))
        return {"runwf/flow_name": schema.name, "runwf/unmapped_inputs": unmapped}


RESOURCE_CLASSES: Mapping[str, type[WorkflowServiceResource]] = MappingProxyType(
    {
        aitutor.SERVICE.name: AITutorResource,
        runchat.SERVICE.name: RunchatResource,
    }
)
"""Each service's Dagster resource, by the service's short name (the services layer cannot
name Dagster classes, so this is the one place the two meet)."""


def resource_class(service: str) -> type[WorkflowServiceResource]:
    """The Dagster resource of the service called ``service``.

    Raises:
        ConfigError: the service is unknown, or has no resource yet.
    """
    cls = RESOURCE_CLASSES.get(service)
    if cls is None:
        raise ConfigError(
            f"no Dagster resource for the service {service!r}; the services with one are "
            f"{', '.join(RESOURCE_CLASSES)}"
        )
    return cls
