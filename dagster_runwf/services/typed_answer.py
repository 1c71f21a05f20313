"""Typed outputs: the JSON object in a workflow's answer, checked field by field against an
:class:`OutputSchema` and converted to each field's Arrow type.

Models wrap their JSON: in a ```` ```json ```` fence, or with a sentence before and after it.
:func:`extract_json` finds the object in plain JSON, in a fenced block, or as the first
balanced ``{...}`` that parses; :meth:`OutputSchema.parse` then gives each field its typed
value, or one error text naming every field at fault (``field 'score': expected a number,
got 'high'``). Pure: no I/O, so the engine, the command and the Dagster assets share it.

An answer that does not fit is not a failed run (the run succeeded, and was paid): its row
keeps ``status`` ``succeeded`` and its raw answer, with nulls in the typed columns and the
parse error in a column of its own (see ``engine/result_columns.py``).
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

import pyarrow as pa

from ..errors import ConfigError
from ..wording import setting

OutputSchemaLike = Union["OutputSchema", Mapping[str, Any], type]
"""What ``output_schema`` accepts: see :meth:`OutputSchema.of`."""

TYPE_NAMES = "string, int64, float64, bool or list<...> of one of them"
"""The types a field may have, for messages."""

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_MAX_STARTS = 200
"""Opening braces tried at most when looking for an object inside text (bounds the work on a
long answer full of braces)."""

_INT_RANGES = {
    8: (-(2**7), 2**7 - 1),
    16: (-(2**15), 2**15 - 1),
    32: (-(2**31), 2**31 - 1),
    64: (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, slots=True)
class TypedField:
    """One field of an :class:`OutputSchema`: its name in the answer's JSON, its Arrow type,
    and whether it may be missing or null (``nullable``; otherwise that is a parse error)."""

    name: str
    type: pa.DataType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class TypedAnswer:
    """An answer read against an :class:`OutputSchema`: each field's value (all ``None``
    when the answer did not fit), or the ``error`` saying why it did not."""

    values: Mapping[str, Any]
    error: str | None = None


class _Misfit(ValueError):
    """A value that does not fit its type (the message says what was wrong)."""


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """The fields expected in a workflow's JSON answer, each with its Arrow type.

    Build one with :meth:`of` from what users write (a mapping field -> Arrow type or type
    name, a pydantic model class), or :meth:`from_json_schema` from a JSON Schema object.
    """

    fields: tuple[TypedField, ...]

    def __post_init__(self) -> None:
        if not self.fields:
            raise ConfigError(f"{setting('output_schema')} has no fields; name at least one")
        names = [f.name for f in self.fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"{setting('output_schema')} names the field(s) {repeated} twice")
        for f in self.fields:
            if not isinstance(f.name, str) or not f.name:
                raise ConfigError(
                    f"{setting('output_schema')} field names must be non-empty text: {f.name!r}"
                )
            _check_supported(f.name, f.type)

    @classmethod
    def of(cls, spec: object) -> OutputSchema:
        """An output schema from a mapping field -> Arrow type (``pa.float64()``), type name
        (``"float64"``, ``"list<string>"``; ``"int64?"``: nullable) or ``pa.field`` (whose
        ``nullable`` is kept), or from a pydantic model class (``str``, ``int``, ``float``,
        ``bool``, ``list[X]``; ``Optional`` or a default makes a field nullable).

        Fields given by type or name without ``?`` are required: missing or null is a parse
        error. ``OutputSchema.of(schema.describe())`` is ``schema``.

        Raises:
            ConfigError: a field's type is not supported, or ``spec`` is none of these.
        """
        if isinstance(spec, OutputSchema):
            return spec
        if isinstance(spec, Mapping):
            return cls(tuple(_mapped_field(str(name), value) for name, value in spec.items()))
        if isinstance(spec, type) and hasattr(spec, "model_fields"):
            return cls(tuple(_pydantic_fields(spec)))
        raise ConfigError(
            f"{setting('output_schema')} must be a mapping of field -> Arrow type (e.g. {{'score': "
            f"pa.float64()}}) or a pydantic model class, got {type(spec).__name__}"
        )

    @classmethod
    def from_json_schema(cls, document: object) -> OutputSchema:
        """An output schema from a JSON Schema object: ``{"type": "object", "properties":
        {...}, "required": [...]}``, properties of type ``string``, ``number``,
        ``integer``, ``boolean`` or ``array`` (with ``items``). A property not in
        ``required``, or whose ``type`` lists ``"null"``, is nullable.

        Raises:
            ConfigError: the document is not such a schema; the message says where.
        """
        if not isinstance(document, Mapping):
            raise ConfigError("the JSON Schema must be an object")
        if document.get("type", "object") != "object":
            raise ConfigError(f"the JSON Schema's type must be 'object', not {document['type']!r}")
        properties = document.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise ConfigError("the JSON Schema has no 'properties' (the answer's fields)")
        required = document.get("required", [])
        if not isinstance(required, list):
            raise ConfigError("the JSON Schema's 'required' must be a list of field names")
        fields = []
        for name, prop in properties.items():
            arrow, nullable = _json_schema_type(f"property {name!r}", prop)
            fields.append(TypedField(name, arrow, nullable or name not in required))
        return cls(tuple(fields))

    def describe(self) -> dict[str, str]:
        """Field -> type name (``?`` after a nullable one), for code versions and metadata;
        :meth:`of` reads it back."""
        return {f.name: type_name(f.type) + ("?" if f.nullable else "") for f in self.fields}

    def parse(self, answer: str | None) -> TypedAnswer:
        """The typed values of ``answer``, or why it does not fit.

        ``None`` (a row without an answer) gives nulls and no error: the row's own error
        says why it has none.
        """
        empty = {f.name: None for f in self.fields}
        if answer is None:
            return TypedAnswer(empty)
        try:
            found = extract_json(answer)
        except _Misfit as exc:
            return TypedAnswer(empty, str(exc))
        values: dict[str, Any] = {}
        errors: list[str] = []
        for f in self.fields:
            if f.name not in found or found[f.name] is None:
                if not f.nullable:
                    errors.append(
                        f"field {f.name!r} is {'missing' if f.name not in found else 'null'}"
                    )
                values[f.name] = None
                continue
            try:
                values[f.name] = convert(found[f.name], f.type)
            except _Misfit as exc:
                errors.append(f"field {f.name!r}: {exc}")
        if errors:
            return TypedAnswer(empty, "; ".join(errors))
        return TypedAnswer(values)


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object in ``text``: the whole text, else a fenced block's, else the first
    balanced ``{...}`` that parses.

    Raises:
        ValueError: there is none (the message says so, for the parse error column).
    """
    stripped = text.strip()
    whole = _loads(stripped)
    if isinstance(whole, dict):
        return whole
    if whole is not None and not stripped.startswith("{"):
        raise _Misfit(f"the answer's JSON is {_kind(whole)}, not an object")
    for block in _FENCE.findall(text):
        fenced = _loads(block.strip())
        if isinstance(fenced, dict):
            return fenced
    for found in _objects_in(text):
        return found
    raise _Misfit("no JSON object in the answer")


def _loads(text: str) -> Any:
    """``text`` as JSON, or ``None`` when it is not JSON (JSON's own null reads as None too,
    which is no object either)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _objects_in(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``text``, in order: at each ``{``, the object there, or when it
    does not parse the text after its balanced ``}`` (so an object nested in a broken one is
    not taken for the answer). A bounded number of braces is tried."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    tries = 0
    while start >= 0 and tries < _MAX_STARTS:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            value, end = None, _balanced_end(text, start)
        if isinstance(value, dict):
            yield value
        start = text.find("{", max(end, start + 1))


def _balanced_end(text: str, start: int) -> int:
    """The position after the ``}`` closing the ``{`` at ``start`` (braces in JSON strings
    not counted), or ``start + 1`` when it is never closed."""
    depth = 0
    in_string = escaped = False
    for position in range(start, len(text)):
        char = text[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return position + 1
    return start + 1


def convert(value: Any, arrow: pa.DataType) -> Any:
    """``value`` (decoded JSON, not null) as a Python value of Arrow type ``arrow``.

    Numbers may come as text (``"0.8"``), as models often quote them, and booleans as
    ``"true"`` / ``"false"``; nothing else is coerced.

    Raises:
        ValueError: it does not fit (the message says what was expected and what came).
    """
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        if isinstance(value, str):
            return value
        raise _Misfit(f"expected text, got {_shown(value)}")
    if pa.types.is_boolean(arrow):
        return _boolean(value)
    if pa.types.is_integer(arrow):
        return _integer(value, arrow)
    if pa.types.is_floating(arrow):
        return _number(value)
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return _list(value, arrow.value_type)
    raise _Misfit(f"type {arrow} is not supported")  # refused when the schema was built


def _list(value: Any, item_type: pa.DataType) -> list[Any]:
    if not isinstance(value, list):
        raise _Misfit(f"expected a list, got {_shown(value)}")
    items: list[Any] = []
    for position, item in enumerate(value):
        try:
            items.append(None if item is None else convert(item, item_type))
        except _Misfit as exc:
            raise _Misfit(f"item {position}: {exc}") from None
    return items


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Misfit(f"expected true or false, got {_shown(value)}")


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Misfit(f"expected a number, got {_shown(value)}")


def _integer(value: Any, arrow: pa.DataType) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise _Misfit(f"expected an integer, got {_shown(value)}")
    low, high = _INT_RANGES[arrow.bit_width]
    if pa.types.is_unsigned_integer(arrow):
        low, high = 0, 2**arrow.bit_width - 1
    if not low <= number <= high:
        raise _Misfit(f"{number} does not fit in {arrow}")
    return number


def _shown(value: Any) -> str:
    """A value in a message: short, as JSON."""
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


# -- declaring fields -----------------------------------------------------------------------


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type a type name stands for: ``string``, ``int64``, ``float64``, ``bool``
    (and pyarrow's other aliases: ``double``, ``int32``...), or ``list<X>``.

    Raises:
        ConfigError: the name is not a supported type.
    """
    text = name.strip()
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(arrow_type(text[5:-1]))
    try:
        arrow = pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise ConfigError(f"unknown type {name!r}; use {TYPE_NAMES}") from None
    return arrow


def type_name(arrow: pa.DataType) -> str:
    """The name :func:`arrow_type` reads back as ``arrow`` (``float64``, ``list<string>``)."""
    if pa.types.is_list(arrow):
        return f"list<{type_name(arrow.value_type)}>"
    return {"double": "float64", "float": "float32"}.get(str(arrow), str(arrow))


def _mapped_field(name: str, value: object) -> TypedField:
    if isinstance(value, pa.Field):
        return TypedField(name, value.type, value.nullable)
    if isinstance(value, pa.DataType):
        return TypedField(name, value)
    if isinstance(value, str):
        # A trailing "?" marks a field that may be missing or null (what describe() writes).
        optional = value.strip().endswith("?")
        try:
            return TypedField(name, arrow_type(value.strip().removesuffix("?")), optional)
        except ConfigError as exc:
            raise ConfigError(f"{setting('output_schema')} field {name!r}: {exc}") from None
    raise ConfigError(
        f"{setting('output_schema')} field {name!r}: expected an Arrow type (pa.float64()) "
        f"or a type name ({TYPE_NAMES}), got {value!r}"
    )


def _check_supported(name: str, arrow: pa.DataType) -> None:
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        _check_supported(name, arrow.value_type)
        return
    if not (
        pa.types.is_string(arrow)
        or pa.types.is_large_string(arrow)
        or pa.types.is_boolean(arrow)
        or pa.types.is_integer(arrow)
        or pa.types.is_floating(arrow)
    ) or pa.types.is_float16(arrow):
        raise ConfigError(
            f"{setting('output_schema')} field {name!r}: type {arrow} is not supported; "
            f"use {TYPE_NAMES}"
        )


_PYTHON_TYPES: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
}


def _pydantic_fields(model: type) -> Iterator[TypedField]:
    fields: Mapping[str, Any] = model.model_fields  # type: ignore[attr-defined]
    for name, info in fields.items():
        arrow, nullable = _python_type(name, info.annotation)
        # A field with a default may be left out of the answer: it reads as null.
        yield TypedField(info.alias or name, arrow, nullable or not info.is_required())


def _python_type(name: str, annotation: Any) -> tuple[pa.DataType, bool]:
    """An annotation's Arrow type, and whether it admits ``None``."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(arguments) == 1:
            return _python_type(name, arguments[0])[0], True
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return pa.list_(_python_type(name, item)[0]), False
    if annotation in _PYTHON_TYPES:
        return _PYTHON_TYPES[annotation], False
    raise ConfigError(
        f"{setting('output_schema')} field {name!r}: the type {annotation!r} has no Arrow "
        "column type; use str, int, float, bool, list[...] or Optional[...] of them"
    )


_JSON_SCHEMA_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
}


def _json_schema_type(where: str, prop: object) -> tuple[pa.DataType, bool]:
    """A JSON Schema property's Arrow type, and whether its ``type`` lists ``"null"``."""
    if not isinstance(prop, Mapping):
        raise ConfigError(f"{where} must be an object with a 'type'")
    declared = prop.get("type")
    kinds = declared if isinstance(declared, list) else [declared]
    nullable = "null" in kinds
    kinds = [k for k in kinds if k != "null"]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where} has type {declared!r}; give one of string, number, integer, boolean "
            "or array (with 'null' for a nullable one)"
        )
    kind = kinds[0]
    if kind == "array":
        if "items" not in prop:
            raise ConfigError(f"{where} is an array without 'items' (the items' type)")
        item, _ = _json_schema_type(f"{where} items", prop["items"])
        return pa.list_(item), nullable
    if kind not in _JSON_SCHEMA_TYPES:
        raise ConfigError(
            f"{where} has type {kind!r}; give one of string, number, integer, boolean or array"
        )
    return _JSON_SCHEMA_TYPES[kind], nullable
