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

from ..engine.table import DEFAULT_PREFIX, result_fields
from ..services.base import Workflow
from ..services.typed_answer import arrow_type, type_name
from .settings import EnrichmentSettings

RESULTS_KEY = "runwf/results_columns"
"""Definition metadata (and the output's metadata at run time): the arguments of
``result_fields`` for the output's results."""


def results_metadata(settings: EnrichmentSettings, workflow: Workflow) -> dict[str, Any]:
    """The definition metadata declaring an enriched output's result columns: the fixed ones
    and an output schema's typed ones. Not the lifted outputs: a Runchat flow types them
    (``number`` -> float64...) and its schema is read at run time, so
    :func:`lifted_types_metadata` declares them with each output."""
    schema = workflow.output_schema
    return {
        RESULTS_KEY: {
            "prefix": settings.prefix,
            "output_schema": None if schema is None else schema.describe(),
            # Named, not typed (see above): what a reader may treat as text.
            "output_columns": dict(settings.output_columns or {}),
        }
    }


def lifted_types_metadata(
    settings: EnrichmentSettings, workflow: Workflow, table: pa.Table
) -> dict[str, Any]:
    """The output's metadata declaring its result columns as :func:`results_metadata` does,
    and its lifted outputs with the types the results ``table`` gives them (as the step
    resolved them: text, or the flow's types), so an output where a lifted column is all
    null stores it with its type too."""
    declared = results_metadata(settings, workflow)
    names = set(table.schema.names)
    lifted = {c: w for c, w in (settings.output_columns or {}).items() if c in names}
    declared[RESULTS_KEY] = {
        **declared[RESULTS_KEY],
        "output_columns": lifted,
        "output_types": {c: type_name(table.schema.field(c).type) for c in lifted},
    }
    return declared


def declared_result_fields(metadata: Mapping[str, Any]) -> list[pa.Field]:
    """The declared fields of the result columns an output's metadata declares (none when
    it declares none: not an enriched output)."""
    declared = _declaration(metadata)
    if declared is None:
        return []
    types = declared.get("output_types") or {}
    # Lifted outputs are declared only where their types are known (at run time).
    lifted = {c: w for c, w in (declared.get("output_columns") or {}).items() if c in types}
    return result_fields(
        declared.get("prefix", DEFAULT_PREFIX),
        lifted,
        output_schema=declared.get("output_schema"),
        output_types={column: arrow_type(name) for column, name in types.items()},
    )


def lifted_text_fields(metadata: Mapping[str, Any], schema: pa.Schema) -> list[pa.Field]:
    """The lifted outputs an output's definition metadata names that ``schema`` (a stored
    file's) holds as ``large_string``, declared as ``string``: what pandas 3 wrote before
    the types were declared, read like the files written since."""
    declared = _declaration(metadata)
    if declared is None:
        return []
    named = set(declared.get("output_columns") or {})
    return [
        pa.field(f.name, pa.string(), f.nullable)
        for f in schema
        if f.name in named and f.type == pa.large_string()
    ]


def _declaration(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The output's declaration of its result columns (:data:`RESULTS_KEY`); ``None`` when
    it has none (not an enriched output)."""
    declared = metadata.get(RESULTS_KEY)
    # Dagster may hand the value back wrapped in a MetadataValue.
    declared = getattr(declared, "value", declared)
    return declared if isinstance(declared, Mapping) else None
