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
    them, the latest record of a key winning (each record is stamped with its file's name,
    ``<time>-<random>``, and the greatest stamp wins).

So that a nightly run does not read every night's file, a run that reads more than
:data:`FOLD_AFTER` of them folds them (:func:`read_instances`): it writes one file holding
each key's latest record *with the stamp of the file it came from*, then deletes the files
it read. Because every record keeps its own stamp, the folder reads the same before, during
and after a fold, whatever happens at the same time: a file another run writes meanwhile is
not deleted (only files read are) and wins or loses against the folded records by its
stamp, as it would have against the files; two runs folding the same files write two
merged files of the same records (the next fold merges them); a reader whose listed file
vanished (folded meanwhile) lists again, finding the merged file, written before any
deletion. Every key is kept, however old its latest record: an entity that comes back
after a year continues its conversation. So the folder holds at most ``FOLD_AFTER + 1``
files (plus one per run at the same time), whatever the number of runs before: reading
time and memory grow with the number of keys, not with history.

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

import pyarrow as pa

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


def check_schema(
    storage: Storage, flow: str, schema: RunchatSchema, *, record: bool = True
) -> SchemaChange:
    """Compare ``schema`` with the one recorded for ``flow`` and, unless ``record`` is false
    (a plan), record it as the last."""
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
    if record and previous != fingerprint:
        last = {"flow": flow, "fingerprint": fingerprint, "parts": parts, "at": time.time()}
        storage.write_bytes(path, json.dumps(last, sort_keys=True).encode())
    return change


def _instances_folder(storage: Storage, flow: str, column: str) -> str:
    return storage.path(FOLDER, _name(flow), "instances", _name(column))


FOLD_AFTER = 8
"""A run that finds more ``continue_by`` record files than this for a key column folds them
into one."""

READ_ATTEMPTS = 5
"""Listings of a records folder a read tries, when files it listed vanish (folded by another
run) before it reads them."""

Latest = dict[str, tuple[str, str]]
"""Each key's latest record: entity key -> (stamp, instance id)."""


def read_instances(storage: Storage, flow: str, column: str) -> dict[str, str]:
    """``continue_by``'s records for ``flow`` and key ``column``: entity key -> the instance
    id of its latest recorded answer. With more than :data:`FOLD_AFTER` files, they are
    folded into one first (see the module's docstring)."""
    folder = _instances_folder(storage, flow, column)
    latest, read = _read_latest(storage, folder)
    if read is not None and len(read) > FOLD_AFTER:
        _fold(storage, folder, {"flow": flow, "column": column}, latest, read)
    return {key: instance for key, (_, instance) in latest.items()}


def _read_latest(storage: Storage, folder: str) -> tuple[Latest, list[str] | None]:
    """Each key's latest record in ``folder``, and the files read (damaged ones are left
    out, and left alone); ``None`` for the files when they kept vanishing."""
    latest: Latest = {}
    for _ in range(READ_ATTEMPTS):
        latest, read = {}, []
        try:
            for path in storage.list_files(folder, ".json"):
                groups = _stamped_records(storage, path)
                if groups is not None:
                    read.append(path)
                    for stamp, instances in groups:
                        _keep_latest(latest, stamp, instances)
        except FileNotFoundError:
            # Another run folded it: the file holding its records was written before the
            # deletion, so listing again finds them.
            continue
        return latest, read
    return latest, None


def _stamped_records(storage: Storage, path: str) -> list[tuple[str, dict[str, str]]] | None:
    """A record file's records as ``(stamp, instances)``: a run's file has its name's stamp,
    a folded file the stamp of each record; ``None`` for a damaged file. A file gone raises
    :class:`FileNotFoundError`."""
    try:
        record = json.loads(storage.read_bytes(path))
    except ValueError:  # a damaged record: as if none, the hashes still decide reuse
        return None
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("instances"), dict):
        stamp = path.rsplit("/", 1)[-1].removesuffix(".json")
        return [(stamp, _strings(record["instances"]))]
    folded = record.get("folded")
    if not isinstance(folded, list):
        return None
    return [
        (group["stamp"], _strings(group["instances"]))
        for group in folded
        if isinstance(group, dict)
        and isinstance(group.get("stamp"), str)
        and isinstance(group.get("instances"), dict)
    ]


def _strings(instances: dict[Any, Any]) -> dict[str, str]:
    return {k: v for k, v in instances.items() if isinstance(v, str)}


def _keep_latest(latest: Latest, stamp: str, instances: Mapping[str, str]) -> None:
    for key, instance in instances.items():
        seen = latest.get(key)
        if seen is None or seen[0] < stamp:
            latest[key] = (stamp, instance)


def _fold(
    storage: Storage, folder: str, about: Mapping[str, str], latest: Latest, read: list[str]
) -> None:
    """Write ``latest`` as one file (named after the newest file read, so the folder lists in
    time order), then delete the files read."""
    groups: dict[str, dict[str, str]] = {}
    for key, (stamp, instance) in latest.items():
        groups.setdefault(stamp, {})[key] = instance
    record = {
        **about,
        "folded": [{"stamp": stamp, "instances": groups[stamp]} for stamp in sorted(groups)],
    }
    newest = read[-1].rsplit("/", 1)[-1].split("-", 1)[0]
    path = "/".join([folder, f"{newest}-{uuid.uuid4().hex[:8]}.json"])
    try:
        storage.write_bytes(path, json.dumps(record, sort_keys=True).encode())
        storage.delete([p for p in read if p != path])
    except OSError:
        # Folding only saves the next runs some reading: the folder reads the same
        # unfolded (or half folded), and the next run tries again.
        return


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


def record_table_instances(
    storage: Storage,
    flow: str,
    column: str,
    keys: Iterable[Any],
    table: pa.Table,
    prefix: str,
) -> int:
    """:func:`record_instances` of a results ``table`` (its status and instance id columns,
    named with ``prefix``), whose rows have the key cells ``keys``, in order."""
    statuses = table.column(f"{prefix}status").to_pylist()
    instances = table.column(f"{prefix}instance_id").to_pylist()
    return record_instances(storage, flow, column, zip(keys, statuses, instances, strict=True))


def _read_json(storage: Storage, path: str) -> Any:
    try:
        return json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        return None
    except ValueError:  # a damaged record: as if none, the hashes still decide reuse
        return None
