"""What the Parquet IO manager converts, and how: an output (a DataFrame or a Table) into
Arrow tables of one row group each, against the schema of the whole output, refusing what
Parquet cannot hold before anything is written and naming the column at fault; and a table
read back into what the input is annotated as (a DataFrame, a Table, or a dict of them per
partition).
"""

from __future__ import annotations

import collections
import collections.abc
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

import dagster as dg
import pandas as pd
import pyarrow as pa

from ..engine.table import with_result_types
from .results_schema import declared_result_fields, lifted_text_fields


class UnstorableOutput(ValueError):
    """An output that cannot become Parquet (raised before anything is written)."""


def table_parts(
    context: dg.OutputContext, obj: object, row_group_size: int
) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The output's Arrow schema, and its rows as tables of at most ``row_group_size``.

    A DataFrame is converted one row group at a time, against the schema of the whole frame
    (so a column that is all-null in one slice keeps its type): writing never holds a second
    full copy of the data, only the frame and one slice. The result columns of an enriched
    output (declared in its metadata, see :mod:`.results_schema`) get their
    declared types, whatever their values suggest.
    """
    declared = declared_result_fields(_declaring_metadata(context))
    if isinstance(obj, pa.Table):
        # Arrow allows repeated names (also an index named like a column), but such a file
        # cannot be read back, so it is refused before anything is written.
        _refuse_duplicates(context, obj.schema.names)
        table = obj
        schema = with_result_types(table.schema, declared)
        if schema != table.schema:
            try:
                table = table.cast(schema)
            except _CONVERSION_ERRORS as exc:
                raise UnstorableOutput(
                    f"{describe_output(context)} cannot be stored as Parquet: its result "
                    f"columns do not have their declared types: {_first_arg(exc)}"
                ) from exc
        return table.schema, iter([table])
    if not isinstance(obj, pd.DataFrame):
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise TypeError(
            f"{describe_output(context)} returned a {kind}; "
            "the Parquet IO manager stores a pandas.DataFrame or a pyarrow.Table"
        )
    # pyarrow names columns str(label), so 0 and "0" collide too; checked first because
    # pyarrow's own message for true duplicates does not name the asset.
    _refuse_duplicates(context, [str(label) for label in obj.columns])
    try:
        schema = with_result_types(pa.Schema.from_pandas(obj, preserve_index=None), declared)
    except _CONVERSION_ERRORS as exc:
        raise _unstorable(context, obj, exc) from exc
    _refuse_duplicates(context, schema.names)

    def parts() -> Iterator[pa.Table]:
        for start in range(0, len(obj), row_group_size):
            part = obj.iloc[start : start + row_group_size]
            try:
                yield pa.Table.from_pandas(part, schema=schema, preserve_index=None)
            except _CONVERSION_ERRORS as exc:
                raise _unstorable(context, part, exc) from exc

    return schema, parts()


_CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)


def _declaring_metadata(context: dg.OutputContext) -> Mapping[str, Any]:
    """The output's definition metadata, with what the output declared at run time over it
    (an enriched step declares its lifted outputs' types then); none for a hand-built
    context without it."""
    try:
        return {**(context.definition_metadata or {}), **(context.output_metadata or {})}
    except dg.DagsterInvariantViolationError:
        return {}


def _unstorable(
    context: dg.OutputContext, df: pd.DataFrame, exc: BaseException
) -> UnstorableOutput:
    where, why = _failing_part(df), _first_arg(exc)
    return UnstorableOutput(
        f"{describe_output(context)} cannot be stored as Parquet: {where}: {why}"
    )


def _refuse_duplicates(context: dg.OutputContext, names: list[str]) -> None:
    duplicated = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if duplicated:
        raise ValueError(
            f"{describe_output(context)} cannot be stored as Parquet: duplicate column name(s) "
            f"{duplicated}"
        )


def _failing_part(df: pd.DataFrame) -> str:
    """Which column (or the index) pyarrow cannot convert, found by converting each alone."""
    for name in df.columns:
        try:
            pa.Table.from_pandas(df[[name]], preserve_index=False)
        except Exception:
            return f"column {name!r} (dtype {df[name].dtype})"
    try:
        pa.Table.from_pandas(df.iloc[:, :0], preserve_index=None)
    except Exception:
        return f"the index (dtype {df.index.dtype})"
    return "the frame"


def _first_arg(exc: BaseException) -> str:
    # pyarrow's second argument repeats the column in its own words; the first says why.
    return str(exc.args[0]) if exc.args else type(exc).__name__


def with_declared_results(context: dg.InputContext, table: pa.Table) -> pa.Table:
    """``table`` with the result columns its upstream output declares in their declared
    types: a file written before the types were enforced (``list<null>`` citations, text as
    ``large_string``) then reads, and concatenates with other partitions, like a new one.
    A table that cannot be cast is returned as it is (a load never fails on it)."""
    try:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream is not None else {}
    except dg.DagsterInvariantViolationError:
        return table
    declared = declared_result_fields(metadata or {})
    schema = with_result_types(
        table.schema, [*declared, *lifted_text_fields(metadata or {}, table.schema)]
    )
    if schema == table.schema:
        return table
    try:
        return table.cast(schema)
    except _CONVERSION_ERRORS:
        return table


def as_requested(table: pa.Table, want_table: bool) -> pd.DataFrame | pa.Table:
    if want_table:
        return table
    frame: pd.DataFrame = table.to_pandas()
    return frame


# -- what an input asks for -------------------------------------------------------------------


def _input_type(context: dg.InputContext) -> Any:
    """The input's annotation, without ``Optional``."""
    annotation = context.dagster_type.typing_type
    if typing.get_origin(annotation) in (Union, types.UnionType):
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(arguments) == 1:
            return arguments[0]
    return annotation


def wants_dict(context: dg.InputContext) -> bool:
    annotation = _input_type(context)
    return annotation in (dict, Mapping) or typing.get_origin(annotation) in (
        dict,
        collections.abc.Mapping,
    )


def wants_table(context: dg.InputContext) -> bool:
    annotation = _input_type(context)
    if wants_dict(context):
        arguments = typing.get_args(annotation)
        annotation = arguments[1] if len(arguments) == 2 else None
    return isinstance(annotation, type) and issubclass(annotation, pa.Table)


def describe_output(context: dg.OutputContext) -> str:
    """'asset a/b (partition 2024-01-01)' or 'output result of step x', for messages."""
    if context.has_asset_key:
        text = f"asset {context.asset_key.to_user_string()}"
        if context.has_asset_partitions:
            keys: Sequence[str] = context.asset_partition_keys
            text += f" (partition {', '.join(keys)})"
        return text
    return f"output {context.name} of step {context.step_key}"
