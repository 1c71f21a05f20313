"""Configuration of the local service emulator.

The emulator stands in for two hosted services whose limits, prices and failure modes are
partly undocumented. Everything a test, the demo or a benchmark may want to vary (keys and
their credits, rate limits and windows, latency, injected faults, the workflows themselves)
is therefore plain data here rather than behaviour hard-wired in the server, and it can be
written down in a YAML or JSON file, built from a dict, or patched while the server runs.
The workflows are described in :mod:`~dagster_runwf.emulator.workflow_spec`, the faults in
:mod:`~dagster_runwf.emulator.fault_config`; plain data becomes these classes through
:mod:`~dagster_runwf.emulator.parse`.

The classes are deliberately simple mutable dataclasses: the server owns one instance and
patches it in place (see :meth:`EmulatorConfig.apply_patch`), always on its own event loop.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from dagster_runwf.emulator.builtins import builtin_workflows
from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.parse import convert, field_types, parse, replace
from dagster_runwf.emulator.workflow_spec import Service, WorkflowSpec

ALL = "*"
"""In :meth:`EmulatorConfig.apply_patch`'s answer: every key, or every fault scope."""

_SETTINGS = (
    "aitutor_rate_limit",
    "aitutor_window_s",
    "runchat_rate_limit",
    "runchat_window_s",
    "rate_limit_enabled",
    "seed",
    "log_limit",
    "log_bodies",
)
"""The settings a patch replaces as they are."""


@dataclass
class KeyConfig:
    """One accepted bearer key. ``None`` values mean unlimited / the global default; a
    number instead of the mapping sets its credits."""

    credits: float | None = None
    aitutor_rate_limit: int | None = None
    runchat_rate_limit: int | None = None

    @classmethod
    def from_shorthand(cls, credits: Any) -> KeyConfig:
        """``sk_x: 5``: a key with 5 credits."""
        if isinstance(credits, (int, float)) and not isinstance(credits, bool):
            return cls(credits=float(credits))
        raise ValueError(f"expected a mapping or a number of credits, got {credits!r}")


@dataclass
class EmulatorConfig:
    """Everything the emulator serves and how it misbehaves."""

    workflows: list[WorkflowSpec] = field(default_factory=builtin_workflows)
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

    def __post_init__(self) -> None:
        self.validate()

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        """Build from plain data (see :mod:`~dagster_runwf.emulator.parse`);
        ``include_builtins: true`` keeps the built-in workflows in front of the ones given
        (same id: the given one wins)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"EmulatorConfig: expected a mapping of fields, got {data!r}")
        raw = dict(data)
        include_builtins = convert(
            bool, raw.pop("include_builtins", False), "EmulatorConfig.include_builtins"
        )
        config = parse(cls, raw)
        if include_builtins and "workflows" in raw:
            given = {w.id for w in config.workflows}
            builtins = [w for w in builtin_workflows() if w.id not in given]
            config.workflows = builtins + config.workflows
        return config

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
        """Raise ``ValueError`` naming the first setting out of its range (also after a
        change made in place, as the command line's options make)."""
        ids = [w.id for w in self.workflows]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate workflow id(s): {sorted(dupes)}")
        for name in ("aitutor_rate_limit", "runchat_rate_limit", "log_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("aitutor_window_s", "runchat_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        try:
            self.faults.validate()
        except ValueError as exc:
            raise ValueError(f"faults: {exc}") from None

    def copy(self) -> EmulatorConfig:
        """A deep copy (patches to it leave this one alone)."""
        return copy.deepcopy(self)

    # -- lookups ------------------------------------------------------------------------

    def workflow(self, workflow_id: str, service: Service) -> WorkflowSpec | None:
        """The published workflow of ``service`` with that id, else ``None``."""
        for w in self.workflows:
            if w.id == workflow_id and w.service == service:
                return w if w.published else None
        return None

    def rate_limit(self, service: Service, key: str | None) -> int:
        """Requests per window ``key`` may make to ``service`` (its own limit, or the
        service's)."""
        kc = self.keys.get(key) if (self.keys is not None and key is not None) else None
        if service == "aitutor":
            if kc is not None and kc.aitutor_rate_limit is not None:
                return kc.aitutor_rate_limit
            return self.aitutor_rate_limit
        if kc is not None and kc.runchat_rate_limit is not None:
            return kc.runchat_rate_limit
        return self.runchat_rate_limit

    def window_s(self, service: Service) -> float:
        """The length of ``service``'s rate window, in seconds."""
        return self.aitutor_window_s if service == "aitutor" else self.runchat_window_s

    # -- runtime changes ----------------------------------------------------------------

    def apply_patch(self, patch: Mapping[str, Any]) -> dict[str, list[str]]:
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

        Nothing changes unless the whole patch is valid. The returned dict tells the server
        which counters to re-arm: ``"keys"`` (keys whose credits were set, or ``"*"``) and
        ``"bursts"`` (fault scopes whose ``rate_limit_burst`` was set, or ``"*"``).

        Raises:
            ValueError: an unknown setting or a bad value, named by its path.
        """
        if not isinstance(patch, Mapping):
            raise ValueError(f"the patch must be a mapping, got {patch!r}")
        unknown = set(patch) - set(field_types(EmulatorConfig)) - {"credits"}
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}")
        new = self.copy()
        changed: dict[str, list[str]] = {"keys": [], "bursts": []}
        _patch_settings(new, patch)
        if "faults" in patch:
            changed["bursts"] += _patch_faults(new, patch["faults"])
        if "keys" in patch:
            changed["keys"] += _patch_keys(new, patch["keys"])
        if "credits" in patch:
            changed["keys"] += _patch_credits(new, patch["credits"])
        if "workflows" in patch:
            changed["bursts"] += _patch_workflows(new, patch["workflows"])
        new.validate()
        # Commit only once everything validated.
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(new, f.name))
        return changed


def _patch_settings(config: EmulatorConfig, patch: Mapping[str, Any]) -> None:
    types = field_types(EmulatorConfig)
    for name in _SETTINGS:
        if name in patch:
            setattr(config, name, convert(types[name], patch[name], name))


def _patch_faults(config: EmulatorConfig, faults: Any) -> list[str]:
    """Merge ``faults`` into the global set; the fault scopes to re-arm."""
    faults = faults or {}
    config.faults = config.faults.merged(faults, "faults")
    return [ALL] if "rate_limit_burst" in faults else []


def _patch_keys(config: EmulatorConfig, keys: Any) -> list[str]:
    """Revoke, add or change keys; the keys whose credits to re-arm."""
    if keys is None:
        config.keys = None
        return [ALL]
    accepted = config.keys = {} if config.keys is None else config.keys
    rearm = []
    for key, change in _mapping(keys, "keys").items():
        where = f"keys[{key!r}]"
        if change is None:
            accepted.pop(key, None)
        elif isinstance(change, Mapping) and key in accepted:
            accepted[key] = replace(accepted[key], change, where)
            if "credits" not in change:
                continue  # spent credits stay spent
        else:
            accepted[key] = parse(KeyConfig, change, where)
        rearm.append(key)
    return rearm


def _patch_credits(config: EmulatorConfig, credits: Any) -> list[str]:
    """Set keys' credits (adding the keys); the keys whose credits to re-arm."""
    accepted = config.keys = {} if config.keys is None else config.keys
    for key, amount in _mapping(credits, "credits").items():
        given = convert(float | None, amount, f"credits[{key!r}]")
        accepted[key] = dataclasses.replace(accepted.get(key, KeyConfig()), credits=given)
    return list(credits)


def _patch_workflows(config: EmulatorConfig, workflows: Any) -> list[str]:
    """Replace all workflows (a list), or delete, change or add some by id; the fault
    scopes to re-arm."""
    if isinstance(workflows, list):
        config.workflows = convert(list[WorkflowSpec], workflows, "workflows")
        return [ALL]
    by_id = {w.id: w for w in config.workflows}
    rearm = []
    for wid, change in _mapping(workflows, "workflows").items():
        where = f"workflows[{wid!r}]"
        if change is None:
            by_id.pop(wid, None)
            continue
        change = _mapping(change, where)
        if wid in by_id:
            by_id[wid] = by_id[wid].merged(change, where)
        else:
            by_id[wid] = WorkflowSpec.from_dict({"id": wid, **change}, where)
        if "rate_limit_burst" in (change.get("faults") or {}):
            rearm.append(wid)
    config.workflows = list(by_id.values())
    return rearm


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value
