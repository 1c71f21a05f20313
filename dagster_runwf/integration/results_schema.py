"""The declared schema of an enriched asset's (or op's) result columns, carried from its
definition to the IO manager that stores it.

An enriched step hands Dagster a DataFrame, and a DataFrame does not keep Arrow types: the
citations of a partition where every row failed (or of a flow that cites nothing) are
empty lists pandas cannot type, and an all-null column has no type at all, so a writer that
guesses types from the values stores ``list<null>`` and ``null`` — and a folder of such
partitions no longer reads as one table. So the asset (or the op's output) declares its
results' shape in its definition metadata (:data:`RESULTS_KEY`: the prefix and the lifted
outputs, what :func:`~dagster_runwf.engine.table.result_fields` takes), and the
:class:`~.io_manager.ParquetIOManager` stores those columns with the declared types, the
same as ``runwf enrich`` writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ..engine.table import result_fields
from .settings import EnrichmentSettings

RESULTS_KEY = "runwf/results_columns"
"""Definition metadata: the arguments of ``result_fields`` for the output's results."""


def results_metadata(settings: EnrichmentSettings) -> dict[str, Any]:
    """The definition metadata declaring an enriched output's result columns."""
    return {
        RESULTS_KEY: {
            "prefix": settings.prefix,
            "output_columns": dict(settings.output_columns or {}),
        }
    }


def declared_result_fields(metadata: Mapping[str, Any]) -> list[pa.Field]:
    """The declared fields of the result columns an output's definition metadata declares
    (none when it declares none: not an enriched output)."""
    declared = metadata.get(RESULTS_KEY)
    # Dagster may hand the value back wrapped in a MetadataValue.
    declared = getattr(declared, "value", declared)
    if not isinstance(declared, Mapping):
        return []
    return result_fields(**declared)
