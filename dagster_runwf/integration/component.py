"""The enriched asset as a Dagster Component: declared in a ``defs.yaml`` instead of Python.

.. code-block:: yaml

    type: dagster_runwf.EnrichedAssetComponent
    attributes:
      service: aitutor
      workflow: wf_company_profile
      inputs: [company, country]
      columns: {company: name}
      source: companies
      api_key: "{{ env.AITUTOR_API_KEY }}"
      incremental: true
      partitions: {cadence: daily, start_date: "2026-11-01"}
      schedule: {hour_of_day: 2}

The component's enrichment settings are those of :class:`~dagster_runwf.EnrichmentSettings`
(it inherits them: one declaration, the same names in YAML and Python), and it builds its
asset with :func:`~dagster_runwf.enriched_asset` (nothing is reimplemented here), so a YAML
asset and a Python one with the same settings are the same asset: same key, deps, code
version, checks and metadata.

The asset's value is stored as Parquet by default: without ``io_manager_key`` the asset uses
the IO manager key ``runwf_parquet_io_manager`` (``runwf_parquet_io_manager__<folder>`` with
``parquet_dir``), and the component defines a :class:`~dagster_runwf.ParquetIOManager` under
it writing to ``parquet_dir`` (default: the Dagster instance's storage folder, where
Dagster's own IO manager would put a pickle). So a project declared in YAML alone gets
Parquet files, and a project that already has an IO manager for the asset names it with
``io_manager_key`` (then the component defines none, unless ``parquet_dir`` is given too:
then it defines a ``ParquetIOManager`` under that key).

``api_key: "{{ env.NAME }}"`` becomes ``dagster.EnvVar("NAME")`` rather than the key's value,
so the key is read when a run starts and the UI shows only the variable's name, as with a
resource written in Python.

The component is registered with ``dg`` through the ``dagster_dg_cli.registry_modules``
entry point, so ``dg list components`` shows it and ``dg scaffold defs
dagster_runwf.EnrichedAssetComponent <path>`` writes a commented ``defs.yaml`` to start from
(see :mod:`.scaffold`).
"""

# No `from __future__ import annotations`: Dagster derives the YAML schema from the
# annotations at runtime.

import copy
import functools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import BaseModel, Field, InstanceOf, SkipValidation, create_model

from ..engine.options import DEFAULT_MAX_CONSECUTIVE_FAILURES
from ..errors import ConfigError
from ..services.base import Workflow
from ..services.registry import (
    SERVICES,
    ServiceName,
    check_settings,
    offered_by,
    service_info,
)
from ..wording import spelled
from .assets import enriched_asset
from .io_manager import ParquetIOManager
from .plan import enrichment_plan_check
from .resources import WorkflowServiceResource, resource_class
from .scaffold import EnrichedAssetScaffolder
from .schedules import nightly_schedule
from .settings import EnrichmentSettings
from .spelling import YAML

_ENV_REFERENCE = re.compile(
    r"""^\s*\{\{\s*(?:env\.(?P<attr>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|env\(\s*['"](?P<call>[A-Za-z_][A-Za-z0-9_]*)['"]\s*\))\s*\}\}\s*$"""
)


def _resolve_secret(context: dg.ResolutionContext, raw: Any) -> str | None:
    """``{{ env.NAME }}`` -> ``EnvVar("NAME")``; anything else is rendered as usual.

    Rendering the template would put the key's value into the resource's config, which
    Dagster shows in the UI; an ``EnvVar`` is shown by name and read when a run starts.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        match = _ENV_REFERENCE.match(raw)
        if match:
            return dg.EnvVar(match.group("attr") or match.group("call"))
    value = context.resolve_value(raw, as_type=str)
    return None if value is None else str(value)


class PartitionsModel(dg.Resolvable, dg.Model):
    """The enriched asset's partitions (give the source asset the same ones): time
    partitions (``cadence`` from ``start_date``), or dynamic ones (``dynamic``: their name,
    e.g. one partition per arriving file, added by a sensor)."""

    cadence: Literal["hourly", "daily", "weekly", "monthly"] = Field(
        default="daily", description="One partition per hour, day, week or month."
    )
    start_date: str | None = Field(
        default=None, description="The first time partition, e.g. '2026-11-01'."
    )
    end_date: str | None = Field(
        default=None, description="The end (exclusive); default: open-ended."
    )
    timezone: str | None = Field(default=None, description="Default: UTC.")
    dynamic: str | None = Field(
        default=None,
        description="Instead of time partitions: the name of a DynamicPartitionsDefinition "
        "(the source asset's), whose partitions are added as data arrives.",
    )

    def build(self) -> dg.PartitionsDefinition[str]:
        """The partitions definition.

        Raises:
            ConfigError: neither or both of ``start_date`` and ``dynamic``.
        """
        if (self.start_date is None) == (self.dynamic is None):
            raise ConfigError(
                "partitions: give start_date (time partitions, with cadence) or dynamic (the "
                "name of dynamic partitions), not both"
                if self.dynamic
                else "partitions: give start_date (time partitions, with cadence) or dynamic "
                "(the name of dynamic partitions)"
            )
        if self.dynamic is not None:
            return dg.DynamicPartitionsDefinition(name=self.dynamic)
        classes: dict[str, type[dg.TimeWindowPartitionsDefinition]] = {
            "hourly": dg.HourlyPartitionsDefinition,
            "daily": dg.DailyPartitionsDefinition,
            "weekly": dg.WeeklyPartitionsDefinition,
            "monthly": dg.MonthlyPartitionsDefinition,
        }
        settings: dict[str, Any] = {"start_date": self.start_date, "end_date": self.end_date}
        if self.timezone:
            settings["timezone"] = self.timezone
        return classes[self.cadence](**settings)


class ScheduleModel(dg.Resolvable, dg.Model):
    """A nightly schedule for the enriched asset (see :func:`nightly_schedule`)."""

    name: str | None = Field(default=None, description="Default: nightly_<asset name>.")
    hour_of_day: int = Field(default=2, description="When to run.")
    minute_of_hour: int = 0
    execution_timezone: str | None = Field(
        default=None, description="Timezone of an unpartitioned asset's schedule."
    )
    running: bool = Field(default=False, description="Start the schedule turned on.")
    include_source: bool = Field(
        default=True, description="Materialize the source asset in the same run first."
    )


PARQUET_IO_MANAGER_KEY = "runwf_parquet_io_manager"
"""The IO manager key of a component's asset when neither ``io_manager_key`` nor
``parquet_dir`` is given; the component defines a :class:`~dagster_runwf.ParquetIOManager`
under it. With ``parquet_dir``, the key is this one followed by ``__`` and the folder
(see :meth:`EnrichedAssetComponent.parquet_io_manager_key`)."""

# Definitions.merge accepts one resource key from several components only when they hold
# the very same object, so components declaring the same key and settings share one.
_resources: dict[tuple[Any, ...], Any] = {}
_resources_lock = threading.Lock()


def _shared(identity: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """The resource made for ``identity`` by an earlier component, or a new one."""
    with _resources_lock:
        resource = _resources.get(identity)
        if resource is None:
            resource = _resources[identity] = make()
        return resource


@dg.scaffold_with(EnrichedAssetScaffolder)
class EnrichedAssetComponent(dg.Component, dg.Resolvable, EnrichmentSettings):
    """A table enriched by a hosted AI workflow, one run per row, declared in YAML.

    Its attributes are every setting of :class:`~dagster_runwf.EnrichmentSettings` (the
    same names and meanings, at the top level of ``attributes``), plus those below: which
    workflow on which service, the source asset, the asset's Dagster arguments
    (``partitions`` and ``max_retries`` stand for ``partitions_def`` and ``retry_policy``)
    and, optionally, the service's resource and a nightly schedule.

    Builds the asset with :func:`~dagster_runwf.enriched_asset`, a
    :class:`~dagster_runwf.ParquetIOManager` storing it (writing to ``parquet_dir``; give
    ``io_manager_key`` to use an IO manager defined elsewhere instead), the resource when
    ``api_key`` is set, and the schedule when ``schedule`` is. Without ``api_key`` the asset
    uses the resource of that key (``resource_key``, default ``aitutor`` / ``runchat``)
    defined elsewhere in the project.
    """

    service: ServiceName = Field(
        description=", ".join(f"{i.name} ({i.display_name})" for i in SERVICES.values()) + "."
    )
    workflow: str = Field(description="The workflow's id (AI Tutor wf_..., Runchat flow id).")
    source: str = Field(
        description="Key of the upstream asset whose value is a DataFrame, e.g. "
        "'companies' or 'raw/companies'."
    )
    inputs: list[str] | None = Field(
        default=None,
        description="AI Tutor: the template variables; Runchat: input ids (paramId_nodeId) "
        "or, with webhook, body fields. Default: the keys of 'columns'.",
    )
    name: str | None = Field(default=None, description="Default: <source>_<workflow id>.")
    key_prefix: str | list[str] | None = None
    result_output: str | None = Field(
        default=None,
        description=f"{offered_by('result_output')}the output (label or id) holding the text "
        "result.",
    )
    citations_output: str | None = Field(
        default=None,
        description=f"{offered_by('citations_output')}the output (label or id) listing sources.",
    )
    webhook: bool = Field(
        default=False, description=f"{offered_by('webhook')}send each row as the body."
    )
    instance_id_column: str | None = Field(
        default=None,
        description=f"{offered_by('instance_id_column')}a column naming the instance "
        "(runchat_instance_id) each row continues; an empty cell starts a new one.",
    )
    continue_by: str | None = Field(
        default=None,
        description=f"{offered_by('continue_by')}a key column (e.g. customer_id): each row "
        "continues the instance of its key's latest answer, recorded beside the journal, so "
        "each key keeps its own conversation from run to run.",
    )
    output_schema: dict[str, str] | None = Field(
        default=None,
        description="The fields of the JSON object in each answer, field -> type: string, "
        "int64, float64, bool or list<...> of one of them (e.g. {score: float64, tags: "
        "list<string>}). Each becomes a typed column (<prefix><field>), with "
        "<prefix>parse_error saying why an answer did not fit; the raw answer stays in "
        "<prefix>result. Changing it re-reads the journaled answers without paying again.",
    )
    on_missing: Literal["fail", "null", "skip"] = Field(
        default="fail",
        description="A missing cell fails the row, is sent as null, or skips the row.",
    )
    resource_key: str | None = Field(
        default=None, description="Resource holding the key; default: the service's name."
    )
    # SkipValidation: pydantic would turn the EnvVar (a str subclass) into a plain str.
    api_key: Annotated[
        str | None,
        SkipValidation,
        dg.Resolver(
            _resolve_secret,
            model_field_type=str,
            inject_before_resolve=False,
            description="Define the resource here with this key, e.g. "
            "'{{ env.AITUTOR_API_KEY }}' (kept as an EnvVar). Omit to use a resource "
            "defined elsewhere.",
        ),
        Field(repr=False),
    ] = None
    base_url: str | None = Field(
        default=None, description="With api_key: the service's API root (default: public)."
    )
    partitions: PartitionsModel | None = None
    schedule: ScheduleModel | None = None
    group_name: str | None = None
    tags: dict[str, str] | None = None
    owners: list[str] | None = None
    description: str | None = None
    pool: str | None = None
    io_manager_key: str | None = Field(
        default=None,
        description="The IO manager storing the asset's value. Default: a ParquetIOManager "
        f"this component defines, under '{PARQUET_IO_MANAGER_KEY}' (with parquet_dir: "
        f"'{PARQUET_IO_MANAGER_KEY}__<parquet_dir as an identifier>'). Give a key to use an "
        "IO manager defined elsewhere in the project.",
    )
    parquet_dir: str | None = Field(
        default=None,
        description="Where the asset's Parquet files go (<parquet_dir>/<asset key>.parquet, "
        "or <asset key>/<partition>.parquet): a local folder or an fsspec URL such as "
        "'s3://bucket/prefix'. Default: the Dagster instance's storage folder. With "
        "io_manager_key, defines a ParquetIOManager under that key.",
    )
    parquet_storage_options: dict[str, Any] | None = Field(
        default=None,
        repr=False,
        description="fsspec options for a URL parquet_dir (may hold credentials: kept out "
        "of the repr; prefer the environment variables fsspec reads).",
    )
    automation_condition: Annotated[
        # The bare class: pydantic checks isinstance, which a subscripted generic refuses.
        InstanceOf[dg.AutomationCondition] | None,  # type: ignore[type-arg]
        dg.Resolver.default(
            model_field_type=str | None,
            description="When Dagster's declarative automation materializes the asset, as a "
            "template: \"{{ dg.AutomationCondition.on_cron('0 2 * * *') }}\" (each night, "
            'once the source was updated since) or "{{ dg.AutomationCondition.eager() }}" '
            "(each new source partition as soon as it lands).",
        ),
    ] = None
    plan_check: bool = Field(
        default=False,
        description="Define the asset's 'plan' check too: executed alone (the asset's "
        "Checks tab), it says what materializing would send, reuse, deduplicate, retry, "
        "skip and reject, and the credits expected, without paying (see "
        "enrichment_plan_check).",
    )
    max_retries: int = Field(
        default=0,
        ge=0,
        description="Step retries on errors other than fatal stops (the asset's RetryPolicy).",
    )
    rate_limit_store: str = Field(
        default="auto",
        description="With api_key: where the key's rate-limit window is shared: 'auto', "
        "'memory', 'sqlite:///path' or 'redis://host:6379/0'.",
    )
    max_consecutive_failures: int | None = Field(
        default=DEFAULT_MAX_CONSECUTIVE_FAILURES,
        ge=1,
        description="With api_key: stop a run after this many rows in a row failed at the "
        "service, so a broken workflow does not keep paying; null: never.",
    )

    @classmethod
    def model(cls) -> type[BaseModel]:
        """The YAML model Dagster derives from the attributes, with their descriptions.

        Dagster leaves out the description of an attribute that has a default; they are put
        back, so that ``dg`` and YAML editors show what each setting does.
        """
        return _with_descriptions(cls, super().model())

    def build_workflow(self) -> Workflow:
        """The service's workflow object from ``workflow``, ``inputs``, ``columns`` and the
        service's own settings.

        Raises:
            ConfigError: no inputs, or a setting the service does not take.
        """
        inputs = list(self.inputs) if self.inputs is not None else list(self.columns)
        if not inputs:
            raise ConfigError(
                f"workflow {self.workflow!r}: list its inputs in 'inputs' (or map them in "
                "'columns')"
            )
        info = service_info(self.service)
        options: dict[str, Any] = {
            "webhook": self.webhook,
            "result_output": self.result_output,
            "citations_output": self.citations_output,
            "instance_id_column": self.instance_id_column,
            "continue_by": self.continue_by,
        }
        given = {**options, "output_columns": self.output_columns}
        check_settings(info, {name: name for name, value in given.items() if value})
        return info.build_workflow(
            self.workflow,
            inputs,
            on_missing=self.on_missing,
            output_schema=self.output_schema,
            **options,
        )

    def build_settings(self) -> EnrichmentSettings:
        """The component's :class:`~dagster_runwf.EnrichmentSettings` (without the rest)."""
        fields = EnrichmentSettings.model_fields
        return EnrichmentSettings(**{name: getattr(self, name) for name in fields})

    def build_asset(self) -> dg.AssetsDefinition:
        """The asset, exactly as :func:`~dagster_runwf.enriched_asset` builds it (its
        messages naming settings as YAML keys)."""
        with spelled(YAML):
            return self._enriched_asset()

    def _enriched_asset(self) -> dg.AssetsDefinition:
        return enriched_asset(
            source=self.source,
            workflow=self.build_workflow(),
            settings=self.build_settings(),
            name=self.name,
            key_prefix=self.key_prefix,
            resource_key=self.resource_key,
            partitions_def=self.partitions.build() if self.partitions else None,
            group_name=self.group_name,
            tags=self.tags,
            owners=self.owners,
            description=self.description,
            retry_policy=dg.RetryPolicy(max_retries=self.max_retries) if self.max_retries else None,
            pool=self.pool,
            io_manager_key=self.parquet_io_manager_key(),
            automation_condition=self.automation_condition,
        )

    def build_resource(self) -> WorkflowServiceResource | None:
        """The service's resource when ``api_key`` is set, else ``None``."""
        if self.api_key is None:
            return None
        cls = resource_class(self.service)
        key = self.api_key
        # An EnvVar refuses str(): it stands for a value read at run time.
        secret = ("env", key.env_var_name) if isinstance(key, dg.EnvVar) else ("value", key)
        identity = (
            cls,
            secret,
            self.base_url,
            self.rate_limit_store,
            self.max_consecutive_failures,
        )
        resource: WorkflowServiceResource = _shared(
            identity,
            lambda: cls(
                api_key=key,
                base_url=self.base_url or None,
                rate_limit_store=self.rate_limit_store,
                max_consecutive_failures=self.max_consecutive_failures,
            ),
        )
        return resource

    def parquet_io_manager_key(self) -> str:
        """The asset's IO manager key: ``io_manager_key``; else ``runwf_parquet_io_manager``,
        followed by ``__`` and ``parquet_dir`` made an identifier (``s3_bucket_prefix``)
        when that is given, so that components writing to different folders never define
        one key twice (which ``Definitions.merge`` refuses) and components sharing a folder
        share one."""
        if self.io_manager_key is not None:
            return self.io_manager_key
        if self.parquet_dir is None:
            return PARQUET_IO_MANAGER_KEY
        folder = re.sub(r"[^0-9A-Za-z]+", "_", self.parquet_dir).strip("_") or "root"
        return f"{PARQUET_IO_MANAGER_KEY}__{folder}"

    def build_io_manager(self) -> tuple[str, ParquetIOManager] | None:
        """The Parquet IO manager this component defines, with its key (see
        :meth:`parquet_io_manager_key`): always without ``io_manager_key``; with it, only
        when ``parquet_dir`` or ``parquet_storage_options`` is given too, else ``None`` (the
        project defines that IO manager)."""
        parquet_given = self.parquet_dir is not None or self.parquet_storage_options is not None
        if self.io_manager_key is not None and not parquet_given:
            return None
        key = self.parquet_io_manager_key()
        options = dict(self.parquet_storage_options or {})
        identity = (ParquetIOManager, key, self.parquet_dir, repr(sorted(options.items())))
        manager: ParquetIOManager = _shared(
            identity, lambda: ParquetIOManager(base_dir=self.parquet_dir, storage_options=options)
        )
        return key, manager

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The asset (with its checks; its ``plan`` check with ``plan_check``), its Parquet
        IO manager (see ``io_manager_key``), and the service's resource and schedule when
        configured."""
        asset = self.build_asset()
        schedules: list[Any] = []
        if self.schedule is not None:
            selection: Sequence[dg.AssetsDefinition | dg.AssetKey | str] = (
                [self.source, asset] if self.schedule.include_source else [asset]
            )
            schedules.append(
                nightly_schedule(
                    selection,
                    name=self.schedule.name or f"nightly_{asset.key.path[-1]}",
                    hour_of_day=self.schedule.hour_of_day,
                    minute_of_hour=self.schedule.minute_of_hour,
                    execution_timezone=self.schedule.execution_timezone,
                    running=self.schedule.running,
                )
            )
        resource = self.build_resource()
        resources: dict[str, Any] = {}
        if resource is not None:
            resources[self.resource_key or self.service] = resource
        io_manager = self.build_io_manager()
        if io_manager is not None:
            key, manager = io_manager
            resources[key] = manager
        checks = [enrichment_plan_check(asset)] if self.plan_check else []
        return dg.Definitions(
            assets=[asset], asset_checks=checks, schedules=schedules, resources=resources
        )


@functools.cache
def _with_descriptions(attributes: type[BaseModel], derived: type[BaseModel]) -> type[BaseModel]:
    """``derived`` with the descriptions of ``attributes``' fields where it has none."""
    described: dict[str, Any] = {}
    for name, field in attributes.model_fields.items():
        derived_field = derived.model_fields.get(name)
        if field.description and derived_field is not None and not derived_field.description:
            info = copy.copy(derived_field)
            info.description = field.description
            described[name] = (derived_field.annotation, info)
    return create_model(derived.__name__, __base__=derived, **described)
