"""A Runchat flow's inputs and outputs (its schema), and the rules for naming them.

Inputs are sent by id (``paramId_nodeId``); people know them by label. These rules, shared by
the ``runwf`` command and the Dagster resource's pre-flight, turn labels into ids and name
an unknown input or output together with what the flow does have. They hold for any service
whose schema call answers this shape (see ``ServiceInfo.schema``): ``workflow`` is the
workflow as messages name it (``ServiceInfo.describe``, e.g. ``Runchat flow 'demo'``), and
``setting`` how the caller names the setting at fault (a flag, a YAML key), so each caller's
message speaks its own words.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Parameter:
    """A Runchat input or output parameter (``BasicParameter``)."""

    id: str
    label: str
    type: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class RunchatSchema:
    """A flow's name and its input and output parameters (``GET /{runchat_id}/schema``)."""

    name: str
    inputs: tuple[Parameter, ...]
    outputs: tuple[Parameter, ...]


def describe_parameters(params: Sequence[Parameter]) -> str:
    """``id (Label), ...`` for messages; ``none`` when there are none."""
    return ", ".join(f"{p.id} ({p.label})" if p.label else p.id for p in params) or "none"


def find_parameters(name: str, params: Sequence[Parameter]) -> list[Parameter]:
    """Parameters whose id is ``name``, else whose label is (ignoring case)."""
    exact = [p for p in params if p.id == name]
    if exact:
        return exact
    return [p for p in params if p.label.casefold() == name.casefold()]


def resolve_inputs(
    workflow: str,
    schema: RunchatSchema,
    mapping: Mapping[str, str],
    table_columns: Sequence[str],
    *,
    setting: str = "columns",
    hint: str = "",
) -> dict[str, str]:
    """The flow's input ids to send, each with its column.

    ``mapping`` keys (input -> column) may be ids or unique labels; inputs whose id is a
    column name are sent from that column without a mapping.

    Args:
        workflow: the flow as messages name it, e.g. ``Runchat flow 'demo'``.
        schema: the flow's schema.
        mapping: input id or label -> column.
        table_columns: the table's columns.
        setting: how the caller names the mapping (``--map``, ``columns``), for messages.
        hint: appended to the message of an unknown input (where to see the flow's inputs).

    Raises:
        ConfigError: a key is neither an input id nor a unique label, two keys name one
            input, or nothing at all would be sent.
    """
    flow = f"{workflow} ({schema.name})"
    resolved: dict[str, str] = {}
    for name, column in mapping.items():
        found = find_parameters(name, schema.inputs)
        if not found:
            raise ConfigError(
                f"{setting} {name}={column}: {flow} has no input {name!r}; its inputs are "
                f"{describe_parameters(schema.inputs)}{hint}"
            )
        if len(found) > 1:
            raise ConfigError(
                f"{setting} {name}={column}: several inputs of {flow} are labelled {name!r} "
                f"({', '.join(p.id for p in found)}); map one by its id"
            )
        input_id = found[0].id
        if input_id in resolved:
            raise ConfigError(f"{setting} maps the input {input_id!r} of {flow} twice")
        resolved[input_id] = column
    for param in schema.inputs:
        if param.id not in resolved and param.id in table_columns:
            resolved[param.id] = param.id
    if not resolved:
        raise ConfigError(
            f"nothing to send to {flow}: map at least one of its inputs to a column with "
            f"{setting} INPUT=COLUMN; its inputs are {describe_parameters(schema.inputs)}"
        )
    return resolved


def check_inputs(
    workflow: str, schema: RunchatSchema, input_ids: Sequence[str], *, setting: str = "inputs"
) -> None:
    """Check that every input the rows send is one of the flow's (sent by id).

    Raises:
        ConfigError: an input is not one of the flow's ids; the message lists its inputs
            and says which id a name that is a label stands for.
    """
    known = {p.id for p in schema.inputs}
    unknown = [name for name in input_ids if name not in known]
    if not unknown:
        return
    labels = [
        f"{name!r} is the label of {found[0].id}"
        for name in unknown
        if len(found := find_parameters(name, schema.inputs)) == 1
    ]
    raise ConfigError(
        f"{setting} {unknown}: {workflow} ({schema.name}) has no such input; its inputs are "
        f"{describe_parameters(schema.inputs)} (send them by id, paramId_nodeId"
        + (f"; {', '.join(labels)}" if labels else "")
        + ")"
    )


def check_output(workflow: str, schema: RunchatSchema, name: str, *, setting: str) -> None:
    """Check that ``name`` is the id or label of one of the flow's outputs (a mistyped one
    would silently leave its column empty).

    Raises:
        ConfigError: it is not; the message lists the flow's outputs.
    """
    if schema.outputs and not any(name in (p.id, p.label) for p in schema.outputs):
        raise ConfigError(
            f"{setting} {name!r}: {workflow} ({schema.name}) has no such output; its outputs "
            f"are {describe_parameters(schema.outputs)}"
        )


# -- a flow's fingerprint, and what changed ---------------------------------------------------


def schema_parts(schema: RunchatSchema) -> dict[str, list[dict[str, str]]]:
    """The parts of a schema that can change a run's answers: each input's and output's id,
    label and type, sorted by id. Not the flow's name nor the descriptions, which are words
    for people (renaming a flow changes no answer).

    Plain JSON data: what a journal records of the flow, for :func:`describe_change`.
    """

    def params(items: Sequence[Parameter]) -> list[dict[str, str]]:
        return [
            {"id": p.id, "label": p.label, "type": p.type}
            for p in sorted(items, key=lambda p: (p.id, p.label, p.type))
        ]

    return {"inputs": params(schema.inputs), "outputs": params(schema.outputs)}


def schema_fingerprint(schema: RunchatSchema) -> str:
    """A stable hash of :func:`schema_parts`: equal for two schemas that differ only in
    name, descriptions or the order of their parameters."""
    text = json.dumps(schema_parts(schema), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """What changed between two :func:`schema_parts`, for people: ``inputs added: x;
    inputs removed: y; outputs changed: z (type string -> number)``; ``""`` when nothing
    did (or ``old`` is ``None``: nothing recorded to compare with)."""
    if old is None:
        return ""
    said = []
    for part in ("inputs", "outputs"):
        before = _by_id(old.get(part))
        after = _by_id(new.get(part))
        added = [pid for pid in after if pid not in before]
        removed = [pid for pid in before if pid not in after]
        changed = [
            f"{pid} ({_difference(before[pid], after[pid])})"
            for pid in after
            if pid in before and before[pid] != after[pid]
        ]
        for what, ids in (("added", added), ("removed", removed), ("changed", changed)):
            if ids:
                said.append(f"{part} {what}: {', '.join(ids)}")
    return "; ".join(said)


def _by_id(params: Any) -> dict[str, dict[str, str]]:
    if not isinstance(params, list):
        return {}
    return {str(p.get("id")): p for p in params if isinstance(p, dict)}


def _difference(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    return ", ".join(
        f"{field} {before.get(field)!r} -> {after.get(field)!r}"
        for field in ("label", "type")
        if before.get(field) != after.get(field)
    )


_ARROW_TYPES = {
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "array": pa.list_(pa.string()),
}
"""A flow's output types that have a column type of their own; every other type (string,
markdown, object, ...) is a text column (an object as its JSON)."""


def arrow_type_of(parameter_type: str) -> pa.DataType:
    """The column type of an output of this Runchat type: ``number`` -> float64,
    ``boolean`` -> bool, ``array`` -> ``list<string>`` (items that are not text as JSON),
    anything else -> string (``object`` as JSON text)."""
    return _ARROW_TYPES.get(parameter_type, pa.string())


def output_types(
    schema: RunchatSchema, output_columns: Mapping[str, str]
) -> dict[str, pa.DataType]:
    """Each lifted column's type (column -> output id or label, as ``output_columns``),
    from the flow's schema; a column whose output the schema does not name is left out
    (it stays text)."""
    types: dict[str, pa.DataType] = {}
    for column, wanted in output_columns.items():
        found = [p for p in schema.outputs if wanted in (p.id, p.label)]
        if found:
            types[column] = arrow_type_of(found[0].type)
    return types
