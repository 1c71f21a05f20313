"""Turning a table cell into a JSON value, with one documented rule per type.

Rows come from pandas, so cells hold numpy scalars, timestamps, decimals and missing-value
markers that ``json.dumps`` refuses or, worse, writes as invalid JSON (``NaN``). The rules:

==========================================  =================================================
cell                                        sent as
==========================================  =================================================
``None``, ``NaN``, ``pd.NA``, ``pd.NaT``    missing: ``null``, or a row error, by the
                                            workflow's ``on_missing`` setting
``str``, ``bool``, ``int``                  itself
``float``                                   itself; ``inf`` / ``-inf`` are a row error
numpy / pandas scalars                      the matching Python value (``.item()``)
``decimal.Decimal``                         a JSON number (via ``float``); non-finite: error
``datetime``, ``date``, ``pd.Timestamp``    ISO 8601 text (``2024-01-31T12:00:00+00:00``)
``time``, ``timedelta``                     ISO 8601 text / seconds as a number
``list``, ``tuple``, numpy arrays           a JSON array, each item converted by these rules
``dict`` with string keys                   a JSON object, each value converted
``bytes`` and anything else                 a row error naming the variable and the type
==========================================  =================================================
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Mapping
from typing import Any

JsonValue = Any
"""A value ``json.dumps`` writes as strict JSON."""


class UnsendableValue(ValueError):
    """A cell that has no JSON form; the message says why and where (a dotted path)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class _Missing:
    """Marker for a missing cell (None, NaN, NA, NaT)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def is_missing(value: object) -> bool:
    """``True`` for ``None``, float ``NaN``, ``pd.NA`` and ``pd.NaT`` (and numpy NaT/NaN)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    type_name = type(value).__name__
    if type_name in ("NAType", "NaTType"):
        return True
    if type_name in ("datetime64", "timedelta64", "float64", "float32", "float16"):
        try:
            return bool(value != value)  # NaN and NaT are the values unequal to themselves
        except (TypeError, ValueError):
            return False
    return False


def missing_kind(value: object) -> str:
    """Which missing value a cell holds, as pandas users know it: ``"None"``, ``"NaN"``,
    ``"pd.NA"`` or ``"NaT"`` (for a cell :func:`is_missing` calls missing)."""
    if value is None:
        return "None"
    type_name = type(value).__name__
    if type_name == "NAType":
        return "pd.NA"
    if type_name in ("NaTType", "datetime64", "timedelta64"):
        return "NaT"
    return "NaN"


def to_json_value(value: object, path: str = "value") -> JsonValue:
    """Convert one cell by the rules in this module's docstring.

    Missing cells (see :func:`is_missing`) come back as :data:`MISSING` at the top level and
    as ``None`` inside lists and objects; the caller decides what a missing input means.

    Raises:
        UnsendableValue: the value has no JSON form.
    """
    if is_missing(value):
        return MISSING
    return _convert(value, path)


def _convert(value: object, path: str) -> JsonValue:
    # Exact types first: this runs for every cell of every row.
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        if value != value:  # NaN inside a list or object: missing, like numpy's NaN below
            return None
        return _finite(value, path)  # type: ignore[arg-type]
    if is_missing(value):
        return None
    if isinstance(value, Mapping):
        converted: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnsendableValue(path, f"object key {key!r} is not a string")
            converted[key] = _convert(item, f"{path}.{key}")
        return converted
    if isinstance(value, (list, tuple)):
        return [_convert(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return _convert_scalar(value, path)


def _convert_scalar(value: object, path: str) -> JsonValue:
    """Subclasses of the JSON scalars, and the standard library's numbers and times."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(float(value), path)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise UnsendableValue(path, f"Decimal {value} is not a finite number")
        return _finite(float(value), path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise UnsendableValue(
            path,
            "bytes cannot be sent as JSON; decode them to text, or for an image send a "
            "'data:image/...;base64,...' URL",
        )
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return _convert_foreign(value, path)


def _convert_foreign(value: object, path: str) -> JsonValue:
    """numpy and pandas values, recognised without importing either."""
    if type(value).__name__ == "datetime64":
        # At nanosecond precision numpy's tolist() gives an int; microseconds give a datetime.
        value = value.astype("datetime64[us]")  # type: ignore[attr-defined]
    tolist = getattr(value, "tolist", None)
    if getattr(value, "ndim", None) is not None and callable(tolist):
        # numpy scalars (ndim 0) give a Python scalar, arrays a nested list.
        plain = tolist()
        if plain is value:
            raise UnsendableValue(path, f"{type(value).__name__} cannot be sent as JSON")
        return _convert(plain, path)
    to_pydatetime = getattr(value, "to_pydatetime", None)
    if callable(to_pydatetime):  # pandas Timestamp subclasses datetime; this catches others
        return _convert(to_pydatetime(), path)
    raise UnsendableValue(
        path,
        f"a value of type {type(value).__module__}.{type(value).__qualname__} "
        "cannot be sent as JSON",
    )


def _finite(value: float, path: str) -> float:
    if math.isinf(value):
        raise UnsendableValue(path, f"{value} is not a finite number and cannot be sent as JSON")
    return value
