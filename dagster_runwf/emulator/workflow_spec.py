"""The workflows the emulator serves, as plain data: AI Tutor template workflows and
Runchat flows, with their parameters, latency and own faults."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.parse import parse

Service = Literal["aitutor", "runchat"]
SERVICES: tuple[Service, ...] = get_args(Service)

_VAR_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def template_variables(template: str) -> list[str]:
    """The distinct ``{{name}}`` variables of ``template``, in order of first appearance."""
    seen: list[str] = []
    for match in _VAR_RE.finditer(template):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


@dataclass
class LatencySpec:
    """Simulated run duration: uniform between ``min_s`` and ``max_s`` seconds (a number
    instead of the mapping: exactly that long)."""

    min_s: float = 0.0
    max_s: float = 0.0

    def __post_init__(self) -> None:
        if self.min_s < 0:
            raise ValueError(f"min_s must be >= 0, got {self.min_s!r}")
        self.max_s = max(self.max_s, self.min_s)

    @classmethod
    def from_shorthand(cls, seconds: Any) -> LatencySpec:
        """``latency: 0.2``: every run takes that long."""
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            return cls(float(seconds), float(seconds))
        raise ValueError(f"expected a number of seconds or a mapping, got {seconds!r}")


@dataclass
class ParamSpec:
    """A Runchat ``BasicParameter``; ``id`` is ``paramId_nodeId``.

    For outputs, ``template`` gives the produced data: a string renders to a one-item
    ``data`` list, a list of strings renders item by item. Templates may use the flow's
    input ids and the specials ``{{inputs}}`` (canonical JSON of the inputs or webhook
    data), ``{{webhook}}`` (the webhook data, JSON) and ``{{hash}}`` (a short digest).
    """

    id: str
    label: str = ""
    """Shown by the schema; by default the part of ``id`` before its first ``_``."""
    type: str = "string"
    description: str = ""
    template: str | list[str] = ""
    required: bool = False

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.id.split("_", 1)[0]

    def schema(self) -> dict[str, Any]:
        """The parameter as the schema endpoint shows it (empty ``data``)."""
        return {
            "id": self.id,
            "label": self.label,
            "type": self.type,
            "description": self.description,
            "data": [],
        }


@dataclass
class WorkflowSpec:
    """One hosted workflow: an AI Tutor template workflow or a Runchat flow."""

    id: str
    service: Service = "aitutor"
    name: str = ""
    """By default the id."""
    # AI Tutor
    variables: list[str] = field(default_factory=list)
    """By default the template's ``{{variables}}``."""
    template: str = ""
    citations: list[str] = field(default_factory=list)
    # Runchat
    inputs: list[ParamSpec] = field(default_factory=list)
    outputs: list[ParamSpec] = field(default_factory=list)
    accepts_webhook: bool = False
    # both
    latency: LatencySpec = field(default_factory=LatencySpec)
    credits_per_run: float = 1.0
    published: bool = True
    faults: FaultConfig | None = None
    fail_when: str | None = None
    """Runs whose request body contains this text fail as a row error (the run happened
    and is charged): AI Tutor answers 500 ``workflow_run_failed``, Runchat 200 with
    ``{"status": "error", ...}``. For row-error tests."""

    def __post_init__(self) -> None:
        if self.service == "aitutor" and not self.variables:
            self.variables = template_variables(self.template)
        if not self.name:
            self.name = self.id

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = None) -> WorkflowSpec:
        """Read plain data (see :mod:`~dagster_runwf.emulator.parse`)."""
        return parse(cls, data, where)

    def merged(self, patch: Mapping[str, Any], where: str | None = None) -> WorkflowSpec:
        """A copy with the fields of ``patch`` replaced (``faults`` merges field by field;
        a new AI Tutor ``template`` without ``variables`` takes its own)."""
        where = where or f"workflows[{self.id!r}]"
        if not isinstance(patch, Mapping):
            raise ValueError(f"{where}: expected a mapping of fields, got {patch!r}")
        base = self.to_dict()
        patch = dict(patch)
        if isinstance(patch.get("faults"), Mapping) and base.get("faults") is not None:
            patch["faults"] = {**base["faults"], **patch["faults"]}
        base.update(patch)
        if "template" in patch and "variables" not in patch and self.service == "aitutor":
            base["variables"] = []
        return WorkflowSpec.from_dict(base, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for ``--help``: id, service and what a run takes."""
        if self.service == "aitutor":
            params = ", ".join(self.variables) or "-"
            return f"{self.id:<20} aitutor  variables: {params}"
        params = ", ".join(p.id + ("*" if p.required else "") for p in self.inputs) or "-"
        hook = " (+ webhook body)" if self.accepts_webhook else ""
        return f"{self.id:<20} runchat  inputs: {params}{hook}"
