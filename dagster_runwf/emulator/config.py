"""Configuration of the local service emulator.

The emulator stands in for two hosted services whose limits, prices and failure modes are
partly undocumented. Everything a test, the demo or a benchmark may want to vary (keys and
their credits, rate limits and windows, latency, injected faults, the workflows themselves)
is therefore plain data here rather than behaviour hard-wired in the server, and it can be
written down in a YAML or JSON file, built from a dict, or patched while the server runs.

The classes are deliberately simple mutable dataclasses: the server owns one instance and
patches it in place (see :meth:`EmulatorConfig.apply_patch`), always on its own event loop.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

Service = Literal["aitutor", "runchat"]
SERVICES: tuple[Service, ...] = ("aitutor", "runchat")

_VAR_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def template_variables(template: str) -> list[str]:
    """The distinct ``{{name}}`` variables of ``template``, in order of first appearance."""
    seen: list[str] = []
    for match in _VAR_RE.finditer(template):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def _fields(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(
    cls: type[Any], data: Mapping[str, Any], extra: frozenset[str] = frozenset()
) -> None:
    unknown = set(data) - _fields(cls) - extra
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")


FAIL_WITH = ("error", "html", "drop", "reset", "malformed", "success_false")
"""The ways ``fail_attempts`` can fail a request (see :attr:`FaultConfig.fail_with`)."""


@dataclass
class FaultConfig:
    """Faults to inject, globally or for one workflow (a workflow's own set wins whole).

    Rates are probabilities per request, drawn from the emulator's seeded generator so a
    run is reproducible. ``fail_attempts`` and ``rate_limit_burst`` are counters and fully
    deterministic, which is what retry tests want.
    """

    error_rate: float = 0.0
    """Fraction of runs that answer ``error_status`` (nothing charged)."""
    error_status: int = 500
    """Status of the error answers (``error_rate``, and ``fail_attempts`` with
    ``fail_with="error"``), e.g. 502, 503 or 504; the body is the service's JSON error."""
    fail_attempts: int = 0
    """The first N requests for each distinct (workflow, body) fail the way ``fail_with``
    says."""
    fail_with: str = "error"
    """How the first ``fail_attempts`` requests fail: ``"error"`` (an ``error_status``
    answer), ``"html"`` (a proxy's 502 HTML page), ``"drop"`` (the connection is closed with
    no response), ``"reset"`` (the run happens and is charged, then the connection is
    closed halfway through the answer), ``"malformed"`` (200 with truncated JSON; charged)
    or ``"success_false"`` (200 whose body says the run failed; nothing charged)."""
    rate_limit_burst: int = 0
    """The next N requests answer 429 whatever the rate (re-armed by reset or a patch)."""
    retry_after: str | None = None
    """``Retry-After`` value sent with every 429 (the real AI Tutor sends none)."""
    drop_rate: float = 0.0
    """Fraction of requests whose connection is closed without any response."""
    malformed_rate: float = 0.0
    """Fraction of runs answering 200 with truncated JSON (the run happened and is charged)."""
    html_error_rate: float = 0.0
    """Fraction of requests answering 502 with an HTML page, as from a proxy."""
    slow_s: float = 0.0
    """Extra delay added to every run, in seconds."""
    huge_body_bytes: int = 0
    """Pad successful JSON bodies with trailing whitespace up to this many bytes."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        _check_keys(cls, data)
        out = cls(**dict(data))
        out.validate()
        return out

    def validate(self) -> None:
        for name in ("error_rate", "drop_rate", "malformed_rate", "html_error_rate"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be within [0, 1], got {value!r}")
        for name in ("fail_attempts", "rate_limit_burst", "huge_body_bytes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"FaultConfig.{name} must be >= 0")
        if not 400 <= int(self.error_status) <= 599:
            raise ValueError(
                f"FaultConfig.error_status must be a 4xx or 5xx status, got {self.error_status!r}"
            )
        if self.fail_with not in FAIL_WITH:
            raise ValueError(
                f"FaultConfig.fail_with must be one of {FAIL_WITH}, got {self.fail_with!r}"
            )
        if self.slow_s < 0:
            raise ValueError("FaultConfig.slow_s must be >= 0")
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)

    def merged(self, patch: Mapping[str, Any]) -> FaultConfig:
        """A copy with the fields of ``patch`` replaced."""
        _check_keys(FaultConfig, patch)
        out = dataclasses.replace(self, **dict(patch))
        out.validate()
        return out


@dataclass
class LatencySpec:
    """Simulated run duration: uniform between ``min_s`` and ``max_s`` seconds."""

    min_s: float = 0.0
    max_s: float = 0.0

    @classmethod
    def from_any(cls, data: Any) -> LatencySpec:
        if isinstance(data, LatencySpec):
            return data
        if isinstance(data, (int, float)):
            return cls(float(data), float(data))
        if isinstance(data, Mapping):
            _check_keys(cls, data)
            out = cls(**dict(data))
            if out.max_s < out.min_s:
                out.max_s = out.min_s
            if out.min_s < 0:
                raise ValueError("LatencySpec.min_s must be >= 0")
            return out
        raise ValueError(f"latency must be a number or a mapping, got {data!r}")


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
    type: str = "string"
    description: str = ""
    template: str | list[str] = ""
    required: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamSpec:
        _check_keys(cls, data)
        if "id" not in data:
            raise ValueError("ParamSpec needs an 'id'")
        out = cls(**dict(data))
        if not out.label:
            out.label = out.id.split("_", 1)[0]
        return out

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
    # AI Tutor
    variables: list[str] = field(default_factory=list)
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
    and is charged): AI Tutor answers 500 ``workflow_run_failed``. For row-error tests."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        _check_keys(cls, data)
        if "id" not in data:
            raise ValueError("WorkflowSpec needs an 'id'")
        raw = dict(data)
        service = raw.get("service", "aitutor")
        if service not in SERVICES:
            raise ValueError(f"WorkflowSpec {raw['id']}: service must be one of {SERVICES}")
        raw["inputs"] = [_param(p) for p in raw.get("inputs", [])]
        raw["outputs"] = [_param(p) for p in raw.get("outputs", [])]
        raw["latency"] = LatencySpec.from_any(raw.get("latency", 0.0))
        faults = raw.get("faults")
        if faults is not None and not isinstance(faults, FaultConfig):
            raw["faults"] = FaultConfig.from_dict(faults)
        raw["variables"] = [str(v) for v in raw.get("variables", [])]
        raw["citations"] = [str(c) for c in raw.get("citations", [])]
        out = cls(**raw)
        if out.service == "aitutor" and not out.variables:
            out.variables = template_variables(out.template)
        if not out.name:
            out.name = out.id
        return out

    def merged(self, patch: Mapping[str, Any]) -> WorkflowSpec:
        """A copy with the fields of ``patch`` replaced (``faults`` merges field by field)."""
        base = self.to_dict()
        patch = dict(patch)
        if isinstance(patch.get("faults"), Mapping) and base.get("faults") is not None:
            patch["faults"] = {**base["faults"], **patch["faults"]}
        base.update(patch)
        if "template" in patch and "variables" not in patch and self.service == "aitutor":
            base["variables"] = []
        return WorkflowSpec.from_dict(base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for ``--help``: id, service and what a run takes."""
        if self.service == "aitutor":
            params = ", ".join(self.variables) or "-"
            return f"{self.id:<20} aitutor  variables: {params}"
        params = ", ".join(p.id + ("*" if p.required else "") for p in self.inputs) or "-"
        hook = " (+ webhook body)" if self.accepts_webhook else ""
        return f"{self.id:<20} runchat  inputs: {params}{hook}"


def _param(data: Any) -> ParamSpec:
    if isinstance(data, ParamSpec):
        return data
    if isinstance(data, Mapping):
        return ParamSpec.from_dict(data)
    raise ValueError(f"a parameter must be a mapping, got {data!r}")


@dataclass
class KeyConfig:
    """One accepted bearer key. ``None`` values mean unlimited / the global default."""

    credits: float | None = None
    aitutor_rate_limit: int | None = None
    runchat_rate_limit: int | None = None

    @classmethod
    def from_any(cls, data: Any) -> KeyConfig:
        if isinstance(data, KeyConfig):
            return data
        if data is None:
            return cls()
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return cls(credits=float(data))
        if isinstance(data, Mapping):
            _check_keys(cls, data)
            return cls(**dict(data))
        raise ValueError(f"a key's config must be a mapping or a number, got {data!r}")


def _default_workflows() -> list[WorkflowSpec]:
    from dagster_runwf.emulator.builtins import builtin_workflows

    return builtin_workflows()


@dataclass
class EmulatorConfig:
    """Everything the emulator serves and how it misbehaves."""

    workflows: list[WorkflowSpec] = field(default_factory=_default_workflows)
    keys: dict[str, KeyConfig] | None = None
    """Accepted keys; ``None`` accepts any non-empty bearer key with unlimited credits."""
    aitutor_rate_limit: int = 10
    aitutor_window_s: float = 1.0
    runchat_rate_limit: int = 10
    runchat_window_s: float = 60.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int = 0
    rate_limit_enabled: bool = True
    log_limit: int = 1_000_000
    """Most request-log entries kept in memory (oldest dropped first)."""
    log_bodies: bool = True
    """Keep each request's JSON body in the log (turn off for very long benchmarks)."""

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        """Build from plain data; ``include_builtins: true`` keeps the built-in workflows
        in front of the ones given (same id: the given one wins)."""
        _check_keys(cls, data, extra=frozenset({"include_builtins"}))
        raw = dict(data)
        include_builtins = bool(raw.pop("include_builtins", False))
        if "workflows" in raw:
            given = [
                w if isinstance(w, WorkflowSpec) else WorkflowSpec.from_dict(w)
                for w in raw["workflows"] or []
            ]
            if include_builtins:
                ids = {w.id for w in given}
                given = [w for w in _default_workflows() if w.id not in ids] + given
            raw["workflows"] = given
        if raw.get("keys") is not None:
            raw["keys"] = {str(k): KeyConfig.from_any(v) for k, v in raw["keys"].items()}
        if "faults" in raw:
            f = raw["faults"]
            raw["faults"] = f if isinstance(f, FaultConfig) else FaultConfig.from_dict(f or {})
        out = cls(**raw)
        out.validate()
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> EmulatorConfig:
        """Load a ``.json`` file, or YAML for any other suffix."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: the configuration must be a mapping")
        return cls.from_dict(cast(Mapping[str, Any], data))

    @classmethod
    def load(cls, source: EmulatorConfig | Mapping[str, Any] | str | Path | None) -> EmulatorConfig:
        """Accept a config, a dict, a file path, or ``None`` (all defaults)."""
        if source is None:
            return cls()
        if isinstance(source, EmulatorConfig):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        return cls.from_file(source)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back (used to hand a config to a
        subprocess)."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        ids = [w.id for w in self.workflows]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate workflow id(s): {sorted(dupes)}")
        for name in ("aitutor_rate_limit", "runchat_rate_limit"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("aitutor_window_s", "runchat_window_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.log_limit < 0:
            raise ValueError("log_limit must be >= 0")
        self.faults.validate()

    def copy(self) -> EmulatorConfig:
        return copy.deepcopy(self)

    # -- lookups ------------------------------------------------------------------------

    def workflow(self, workflow_id: str, service: Service) -> WorkflowSpec | None:
        """The published workflow of ``service`` with that id, else ``None``."""
        for w in self.workflows:
            if w.id == workflow_id and w.service == service:
                return w if w.published else None
        return None

    def rate_limit(self, service: Service, key: str | None) -> int:
        kc = self.keys.get(key) if (self.keys is not None and key is not None) else None
        if service == "aitutor":
            if kc is not None and kc.aitutor_rate_limit is not None:
                return kc.aitutor_rate_limit
            return self.aitutor_rate_limit
        if kc is not None and kc.runchat_rate_limit is not None:
            return kc.runchat_rate_limit
        return self.runchat_rate_limit

    def window_s(self, service: Service) -> float:
        return self.aitutor_window_s if service == "aitutor" else self.runchat_window_s

    # -- runtime changes ----------------------------------------------------------------

    def apply_patch(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change the configuration in place and say what changed.

        Accepted keys (all optional):

        - scalar settings: ``aitutor_rate_limit``, ``aitutor_window_s``,
          ``runchat_rate_limit``, ``runchat_window_s``, ``rate_limit_enabled``, ``seed``,
          ``log_limit``, ``log_bodies``;
        - ``faults``: a partial :class:`FaultConfig`, merged into the global one;
        - ``keys``: ``null`` to accept any key, else ``{key: null}`` to revoke a key and
          ``{key: {...} | number}`` to add it or change it (a number sets its credits);
        - ``credits``: ``{key: number | null}``, shorthand for setting credits;
        - ``workflows``: ``{id: null}`` deletes, ``{id: {...}}`` merges into an existing
          workflow or adds a new one (then ``service`` etc. are needed); a list replaces
          all workflows.

        The returned dict tells the server which counters to re-arm: ``"keys"`` (keys whose
        credits were set, or ``"*"``) and ``"bursts"`` (fault scopes whose
        ``rate_limit_burst`` was set).
        """
        allowed = _fields(EmulatorConfig) | {"credits"}
        unknown = set(patch) - allowed
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}")
        new = self.copy()
        changed: dict[str, Any] = {"keys": [], "bursts": []}
        for name in (
            "aitutor_rate_limit",
            "aitutor_window_s",
            "runchat_rate_limit",
            "runchat_window_s",
            "rate_limit_enabled",
            "seed",
            "log_limit",
            "log_bodies",
        ):
            if name in patch:
                kind = type(getattr(new, name))
                setattr(new, name, kind(patch[name]))
        if "faults" in patch:
            new.faults = new.faults.merged(patch["faults"] or {})
            if "rate_limit_burst" in (patch["faults"] or {}):
                changed["bursts"].append("*")
        if "keys" in patch:
            keys = patch["keys"]
            if keys is None:
                new.keys = None
                changed["keys"].append("*")
            else:
                if new.keys is None:
                    new.keys = {}
                for k, v in keys.items():
                    if v is None:
                        new.keys.pop(k, None)
                    elif isinstance(v, Mapping) and k in new.keys:
                        _check_keys(KeyConfig, v)
                        new.keys[k] = dataclasses.replace(new.keys[k], **dict(v))
                        if "credits" not in v:
                            continue  # spent credits stay spent
                    else:
                        new.keys[k] = KeyConfig.from_any(v)
                    changed["keys"].append(k)
        if "credits" in patch:
            if new.keys is None:
                new.keys = {}
            for k, v in patch["credits"].items():
                kc = new.keys.get(k, KeyConfig())
                new.keys[k] = dataclasses.replace(kc, credits=None if v is None else float(v))
                changed["keys"].append(k)
        if "workflows" in patch:
            wfs = patch["workflows"]
            if isinstance(wfs, list):
                new.workflows = [WorkflowSpec.from_dict(w) for w in wfs]
                changed["bursts"].append("*")
            else:
                by_id = {w.id: w for w in new.workflows}
                for wid, spec in wfs.items():
                    if spec is None:
                        by_id.pop(wid, None)
                    elif wid in by_id:
                        by_id[wid] = by_id[wid].merged(spec)
                    else:
                        by_id[wid] = WorkflowSpec.from_dict({"id": wid, **spec})
                    if spec is not None and "rate_limit_burst" in (spec.get("faults") or {}):
                        changed["bursts"].append(wid)
                new.workflows = list(by_id.values())
        new.validate()
        # Commit only once everything validated.
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(new, f.name))
        return changed
