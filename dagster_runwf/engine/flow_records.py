"""What a journal's folder remembers of a Runchat flow between runs: the schema its last run
saw (to say what changed on the service), and the instance each entity's latest answer came
from (``continue_by``).

Both live beside the journal's jobs, in the folder of an asset's journal (not of one
partition: a nightly partition continues the conversations of the nights before) or of
``runwf enrich``'s journal, as small JSON files written atomically:

``runchat_flows/<flow>/schema.json``
    the schema's fingerprint and the parts that count
    (:func:`~dagster_runwf.services.runchat_schema.schema_parts`), rewritten by each run.
``runchat_flows/<flow>/instances/<column>/<time>-<random>.json``
    ``continue_by``'s records of one run: entity key -> instance id. A run adds a file and
    never rewrites one, so runs of several partitions at once lose nothing; reading merges
    them in time order, the latest record of a key winning.

The records only pick which instance a row continues and what a warning says; which answers
are reused is decided by the rows' input hashes alone (see the docs' page on the journal).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..services.runchat import entity_key
from ..services.runchat_schema import (
    RunchatSchema,
    describe_change,
    schema_fingerprint,
    schema_parts,
)
from .storage import Storage

FOLDER = "runchat_flows"


def _name(text: str) -> str:
    """``text`` as one readable, unique path component."""
    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40]
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class SchemaChange:
    """The flow's schema now, against the one the journal's last run saw."""

    flow: str
    fingerprint: str
    previous: str | None
    """The fingerprint recorded before; ``None`` when none was (a first run)."""
    changes: str
    """What changed, for people (``inputs added: x; outputs changed: y (...)``)."""

    @property
    def changed(self) -> bool:
        return self.previous is not None and self.previous != self.fingerprint

    def warning(self, flow_name: str) -> str:
        """The warning for a changed schema (call only when :attr:`changed`)."""
        what = self.changes or "its parameters changed"
        return (
            f"{flow_name} changed on the service since the journal's last run (schema "
            f"{self.previous} -> {self.fingerprint}: {what}); answers of the old flow are not "
            "reused, every row is sent again"
        )


def check_schema(storage: Storage, flow: str, schema: RunchatSchema) -> SchemaChange:
    """Compare ``schema`` with the one recorded for ``flow`` and record it as the last."""
    path = storage.path(FOLDER, _name(flow), "schema.json")
    parts = schema_parts(schema)
    fingerprint = schema_fingerprint(schema)
    before = _read_json(storage, path)
    previous = before.get("fingerprint") if isinstance(before, dict) else None
    old_parts = before.get("parts") if isinstance(before, dict) else None
    change = SchemaChange(
        flow,
        fingerprint,
        previous if isinstance(previous, str) else None,
        describe_change(old_parts if isinstance(old_parts, dict) else None, parts),
    )
    if previous != fingerprint:
        record = {"flow": flow, "fingerprint": fingerprint, "parts": parts, "at": time.time()}
        storage.write_bytes(path, json.dumps(record, sort_keys=True).encode())
    return change


def _instances_folder(storage: Storage, flow: str, column: str) -> str:
    return storage.path(FOLDER, _name(flow), "instances", _name(column))


def read_instances(storage: Storage, flow: str, column: str) -> dict[str, str]:
    """``continue_by``'s records for ``flow`` and key ``column``: entity key -> the instance
    id of its latest recorded answer."""
    merged: dict[str, str] = {}
    for path in storage.list_files(_instances_folder(storage, flow, column), ".json"):
        record = _read_json(storage, path)
        instances = record.get("instances") if isinstance(record, dict) else None
        if isinstance(instances, dict):
            merged.update({k: v for k, v in instances.items() if isinstance(v, str)})
    return merged


def record_instances(
    storage: Storage, flow: str, column: str, answers: Iterable[tuple[Any, Any, Any]]
) -> int:
    """Record the instance of each entity's answer: ``answers`` are ``(key cell, status,
    instance id)`` in table order (a later row of one key wins). Failed rows and rows
    without an instance are left out. Returns how many keys were recorded."""
    instances: dict[str, str] = {}
    for cell, status, instance in answers:
        key = entity_key(cell)
        if status == "succeeded" and isinstance(instance, str) and instance and key is not None:
            instances[key] = instance
    if not instances:
        return 0
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    path = "/".join([_instances_folder(storage, flow, column), name])
    record: Mapping[str, Any] = {"flow": flow, "column": column, "instances": instances}
    storage.write_bytes(path, json.dumps(record, sort_keys=True).encode())
    return len(instances)


def _read_json(storage: Storage, path: str) -> Any:
    try:
        return json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        return None
    except ValueError:  # a damaged record: as if none, the hashes still decide reuse
        return None
