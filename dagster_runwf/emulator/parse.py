"""Plain data (from YAML, JSON or a dict) into the emulator's configuration dataclasses.

One reader for every configuration class instead of a hand-written ``from_dict`` each: it
walks a dataclass's fields by their type hints, converts each value and, when one does not
fit, raises a :class:`ValueError` naming the field by its path (``EmulatorConfig.
workflows[1].latency.min_s: expected a number, got 'slow'``).

What it accepts, by type hint:

- a dataclass: a mapping of its fields (unknown names and missing required fields are
  errors), an instance as it is, or what the class's ``from_shorthand`` classmethod takes
  (a number for a latency, say);
- ``int``, ``float``, ``bool``, ``str``: a value of that type; an integer where a float is
  wanted, a whole float where an integer is, and a number where a string is (YAML reads
  ``retry_after: 2`` as a number);
- ``Literal[...]``: one of its values; ``X | None``: ``None`` or an ``X``; ``X | Y``: the
  first that fits;
- ``list[X]``, ``dict[str, X]``: a list or a mapping of those. ``null`` for a list, a
  mapping or a (non-optional) dataclass means empty, as YAML writes an empty section.

Checks between fields (a range, a duplicate id) stay in each class's ``__post_init__``; a
``ValueError`` it raises is prefixed with the path too.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

T = TypeVar("T")


def parse(cls: type[T], data: Any, where: str | None = None) -> T:
    """``data`` as an instance of the dataclass ``cls``.

    Args:
        cls: the dataclass.
        data: a mapping of its fields (or anything ``cls.from_shorthand`` takes).
        where: the path errors name (default: the class's name).

    Raises:
        ValueError: a field is unknown, missing or of the wrong type, or the class's own
            checks failed; the message starts with the field's path.
    """
    return cast(T, convert(cls, data, where or cls.__name__))


def replace(obj: T, patch: Mapping[str, Any], where: str | None = None) -> T:
    """A copy of the dataclass instance ``obj`` with the fields in ``patch`` converted and
    replaced (the others kept as they are)."""
    cls = type(obj)
    where = where or cls.__name__
    if not isinstance(patch, Mapping):
        raise ValueError(f"{where}: expected a mapping of fields, got {_shown(patch)}")
    hints = field_types(cls)
    _check_names(cls, patch, where)
    changes = {
        name: convert(hints[name], value, f"{where}.{name}") for name, value in patch.items()
    }
    return cast(T, _construct(where, dataclasses.replace, obj, **changes))


_field_types: dict[type[Any], dict[str, Any]] = {}


def field_types(cls: type[Any]) -> dict[str, Any]:
    """The type hint of each field of the dataclass ``cls``, by name."""
    found = _field_types.get(cls)
    if found is None:
        hints = get_type_hints(cls)
        found = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
        _field_types[cls] = found
    return found


def convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` converted to the type hint ``tp``; a ``ValueError`` naming ``where`` if it
    does not fit."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, value, where)
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return _union(tp, value, where)
    if origin is Literal:
        if value in get_args(tp):
            return value
        allowed = ", ".join(repr(a) for a in get_args(tp))
        raise ValueError(f"{where}: must be one of {allowed}; got {_shown(value)}")
    if origin is list:
        return _list(get_args(tp)[0], value, where)
    if origin is dict:
        return _dict(get_args(tp), value, where)
    scalar = _SCALARS.get(tp)
    if scalar is None:
        raise TypeError(f"{where}: no reader for type {tp!r}")
    return scalar(value, where)


def _dataclass(cls: type[Any], value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        shorthand = getattr(cls, "from_shorthand", None)
        if shorthand is None:
            raise ValueError(f"{where}: expected a mapping of fields, got {_shown(value)}")
        return _construct(where, shorthand, value)
    _check_names(cls, value, where)
    hints = field_types(cls)
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in value
    ]
    if required:
        raise ValueError(f"{where}: missing required field(s) {required}")
    kwargs = {name: convert(hints[name], item, f"{where}.{name}") for name, item in value.items()}
    return _construct(where, cls, **kwargs)


def _check_names(cls: type[Any], data: Mapping[str, Any], where: str) -> None:
    known = field_types(cls)
    unknown = sorted(str(name) for name in data if name not in known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; the fields are {', '.join(known)}")


def _construct(where: str, build: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``build``, prefixing the ``ValueError`` of a class's own checks with ``where``."""
    try:
        return build(*args, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _union(tp: Any, value: Any, where: str) -> Any:
    members = [a for a in get_args(tp) if a is not type(None)]
    if value is None and len(members) < len(get_args(tp)):
        return None
    if len(members) == 1:  # X | None: X's own message is the clearer one
        return convert(members[0], value, where)
    for member in members:
        try:
            return convert(member, value, where)
        except ValueError:
            continue
    wanted = " or ".join(_describe(m) for m in members)
    raise ValueError(f"{where}: expected {wanted}, got {_shown(value)}")


def _list(item: Any, value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a list, got {_shown(value)}")
    return [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]


def _dict(args: tuple[Any, ...], value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {_shown(value)}")
    key_type, value_type = args
    return {
        convert(key_type, k, where): convert(value_type, v, f"{where}[{k!r}]")
        for k, v in value.items()
    }


def _int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{where}: expected an integer, got {_shown(value)}")


def _float(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{where}: expected a number, got {_shown(value)}")


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{where}: expected true or false, got {_shown(value)}")


def _str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}: expected a string, got {_shown(value)}")


_SCALARS: dict[Any, Any] = {int: _int, float: _float, bool: _bool, str: _str}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {getattr(tp, '__name__', tp)} fields"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, repr(tp))


def _shown(value: Any) -> str:
    """``repr(value)``, shortened: an error message quotes the value, not a whole file."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
