"""The kinds of table an enriched asset or op takes, and gives back in the same kind: a
pandas DataFrame, a polars DataFrame (or LazyFrame, collected: a polars DataFrame comes out)
or a pyarrow Table.

The engine works on pandas; polars is imported only when a polars value arrives, so the
package never needs it otherwise.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import ConfigError


class FrameKind(str, Enum):
    """What kind of table came in, so the results go out in the same kind."""

    PANDAS = "pandas"
    POLARS = "polars"
    ARROW = "pyarrow"


def _is_polars(value: object, name: str) -> bool:
    cls = type(value)
    return cls.__module__.split(".")[0] == "polars" and cls.__name__ == name


def as_pandas(value: object, what: str) -> tuple[pd.DataFrame, FrameKind]:
    """``value`` as the pandas DataFrame the engine reads, and the kind it came as.

    Raises:
        ConfigError: ``value`` is none of the kinds (``what`` names where it came from).
    """
    if isinstance(value, pd.DataFrame):
        return value, FrameKind.PANDAS
    if isinstance(value, pa.Table):
        return value.to_pandas(), FrameKind.ARROW
    if _is_polars(value, "LazyFrame"):
        value = value.collect()  # type: ignore[attr-defined]
    if _is_polars(value, "DataFrame"):
        frame: pd.DataFrame = value.to_arrow().to_pandas()  # type: ignore[attr-defined]
        return frame, FrameKind.POLARS
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    raise ConfigError(
        f"{what} is a {kind}; the rows must be a pandas.DataFrame, a polars.DataFrame or "
        "LazyFrame, or a pyarrow.Table"
    )


def in_kind(table: pa.Table, kind: FrameKind) -> Any:
    """The results ``table`` as ``kind``. ``table`` is consumed when it becomes pandas (its
    Arrow memory is released column by column): it must not be used after."""
    if kind is FrameKind.ARROW:
        return table
    if kind is FrameKind.POLARS:
        import polars as pl

        return pl.from_arrow(table.replace_schema_metadata(None))
    return table.to_pandas(self_destruct=True, split_blocks=True)
