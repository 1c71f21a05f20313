"""A Parquet IO manager for pandas and pyarrow assets, on a local disk or in object storage.

Each asset is one Parquet file, ``<base_dir>/<asset key path>.parquet``; each partition of a
partitioned asset is ``<base_dir>/<asset key path>/<partition key>.parquet`` (the layout of
Dagster's :class:`~dagster.UPathIOManager`). Files are written atomically through
:class:`~dagster_runwf.engine.storage.Storage`, so a reader (a downstream asset, another run,
a person with DuckDB) never sees half a file, and a failed write leaves the previous file
untouched. Turning outputs into Arrow row groups and tables back into what an input asks for
is :mod:`.arrow_conversion`.

Usage::

    defs = dg.Definitions(
        assets=[...],
        resources={"io_manager": ParquetIOManager(base_dir="s3://bucket/assets")},
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from upath import UPath

from ..engine.storage import Storage
from .arrow_conversion import (
    UnstorableOutput,
    as_requested,
    describe_output,
    table_parts,
    wants_dict,
    wants_table,
    with_declared_results,
)
from .metadata import column_schema

#: What ``compression`` accepts besides the codecs pyarrow was built with.
NO_COMPRESSION = ("none", "uncompressed")


class ParquetIOManager(dg.ConfigurableIOManagerFactory["ParquetUPathIOManager"]):
    """Stores pandas DataFrames and pyarrow Tables as Parquet files, one per asset or partition.

    Outputs may be a ``pandas.DataFrame`` or a ``pyarrow.Table``. A DataFrame's index is
    stored as ``pyarrow.Table.from_pandas(df, preserve_index=None)`` stores it (a default
    RangeIndex as metadata only, any other index as columns) and restored on reading; list
    cells come back as numpy arrays, as with ``pandas.read_parquet``. An output of ``None``
    (an asset that returns nothing without saying ``-> None``) is not written: a warning is
    logged and an earlier file at that path, if any, stays.

    Inputs are loaded as a ``pandas.DataFrame``, or as a ``pyarrow.Table`` when the input is
    annotated ``pa.Table``. Several partitions of a partitioned upstream (e.g. with
    ``AllPartitionMapping``) arrive as one DataFrame or Table, concatenated in partition
    order; annotate the input ``dict[str, pd.DataFrame]`` (or ``dict[str, pa.Table]``) to get
    one per partition key instead. Input metadata ``allow_missing_partitions=True`` skips
    partitions that were never materialized.

    A DataFrame is converted to Arrow and written one row group (``row_group_size`` rows)
    at a time, so writing never holds a second full copy of it.

    Each output's materialization carries ``dagster/row_count``,
    ``dagster/column_schema`` (Arrow types), ``path`` and ``file_size_bytes``, and
    partitioned outputs also ``dagster/partition_row_count``.

    Credentials: prefer the environment variables fsspec reads itself (``AWS_ACCESS_KEY_ID``
    …) over ``storage_options``; ``storage_options`` is left out of this resource's repr and
    never logged, but it is part of the resource's config.
    """

    base_dir: str | None = Field(
        default=None,
        description="A local folder or an fsspec URL such as 's3://bucket/prefix'; default: "
        "the Dagster instance's storage directory, as for Dagster's FilesystemIOManager.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,
        description="fsspec options for a URL base_dir, e.g. {'client_kwargs': "
        "{'endpoint_url': ...}}; may hold credentials, so it is kept out of the repr.",
    )
    compression: str = Field(
        default="zstd",
        description="Parquet compression codec: zstd, snappy, gzip, brotli, lz4 or none.",
    )
    row_group_size: int = Field(
        default=65_536, description="Largest number of rows in one Parquet row group."
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetUPathIOManager:
        """The IO manager for one run, rooted at ``base_dir``.

        Args:
            context: Dagster's resource init context; its instance gives the default folder.
        """
        base_dir = self.base_dir
        if base_dir is None:
            if context.instance is None:
                raise dg.DagsterInvariantViolationError(
                    "ParquetIOManager needs base_dir when no Dagster instance is available"
                )
            base_dir = context.instance.storage_directory()
        return ParquetUPathIOManager(
            base_dir,
            storage_options=self.storage_options,
            compression=self.compression,
            row_group_size=self.row_group_size,
        )


class ParquetUPathIOManager(dg.UPathIOManager):
    """The :class:`~dagster.UPathIOManager` behind :class:`ParquetIOManager`.

    Use :class:`ParquetIOManager` in ``Definitions``; this class is what it creates, and
    can be subclassed to change the layout (e.g. override ``get_asset_relative_path``).

    Args:
        base_dir: a local folder or an fsspec URL.
        storage_options: fsspec options for a URL.
        compression: Parquet compression codec, or ``"none"``.
        row_group_size: largest number of rows in one row group.
    """

    extension: str | None = ".parquet"

    def __init__(
        self,
        base_dir: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        compression: str = "zstd",
        row_group_size: int = 65_536,
    ) -> None:
        if row_group_size < 1:
            raise ValueError(f"row_group_size must be at least 1, not {row_group_size}")
        codec = compression.strip().lower()
        if codec not in NO_COMPRESSION and not _codec_available(codec):
            raise ValueError(
                f"unknown or unavailable Parquet compression {compression!r}; "
                "use zstd, snappy, gzip, brotli, lz4 or none"
            )
        options = dict(storage_options or {})
        # Reads and path checks go through the UPath's filesystem, writes through Storage
        # (for atomicity); both get the same options so they see the same store.
        self.storage = Storage(base_dir, options)
        super().__init__(base_path=UPath(base_dir, **options))
        self.compression: str | None = None if codec in NO_COMPRESSION else codec
        self.row_group_size = row_group_size

    def __repr__(self) -> str:
        # The storage options may hold credentials: show only where the files go.
        return f"{type(self).__name__}({self.storage.url!r})"

    # -- paths ------------------------------------------------------------------------------

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        """``base_path / partition``, with a partition key that cannot leave ``base_path``.

        Args:
            base_path: the asset's folder.
            partition: the partition key (``a/b`` for a multi-partition key).
        """
        # A leading "/" would make pathlib drop base_path, and a ".." segment would climb
        # out of it on a local disk; escaping keeps distinct keys distinct.
        if partition.startswith("/"):
            partition = "%2F" + partition[1:]
        escaped = "/".join("%2E%2E" if part == ".." else part for part in partition.split("/"))
        return base_path / escaped

    # -- writing ----------------------------------------------------------------------------

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        """Write ``obj`` (a DataFrame or a Table) to ``path`` atomically, with its metadata.

        Args:
            context: the output's context.
            obj: a ``pandas.DataFrame`` or a ``pyarrow.Table``; ``None`` is skipped.
            path: the file to write.
        """
        if obj is None:
            context.log.warning(
                f"{describe_output(context)} returned None, so nothing was written to {path}; "
                "annotate the asset '-> None' if it stores its data itself."
            )
            return
        schema, parts = table_parts(context, obj, self.row_group_size)
        rows = 0
        try:
            with self.storage.open_for_write(str(path)) as handle:
                with pq.ParquetWriter(
                    handle, schema, compression=self.compression or "none"
                ) as writer:
                    for part in parts:
                        writer.write_table(part, row_group_size=self.row_group_size)
                        rows += part.num_rows
                size = handle.tell()
        except UnstorableOutput:
            raise
        except Exception as exc:
            # Dagster's own message names only the step; say which asset and file, and keep
            # an I/O failure an OSError (anything else is about the data).
            message = (
                f"could not write {describe_output(context)} to {path}: {type(exc).__name__}: {exc}"
            )
            raise (OSError if isinstance(exc, OSError) else ValueError)(message) from exc
        metadata: dict[str, dg.MetadataValue] = {
            "dagster/row_count": dg.MetadataValue.int(rows),
            "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(schema)),
            "file_size_bytes": dg.MetadataValue.int(size),
        }
        if context.has_asset_partitions:
            metadata["dagster/partition_row_count"] = dg.MetadataValue.int(rows)
        context.add_output_metadata(metadata)

    # -- reading ----------------------------------------------------------------------------

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame | pa.Table:
        """Read one file as a DataFrame, or as a Table if the input is annotated so.

        Args:
            context: the input's context.
            path: the file to read.
        """
        table = with_declared_results(context, self._read_table(path))
        return as_requested(table, wants_table(context))

    def load_partitions(self, context: dg.InputContext) -> Any:
        """Read the requested partitions: one DataFrame/Table in partition order, or a dict.

        Args:
            context: the input's context; its annotation picks the result's shape.
        """
        as_dict, want_table = wants_dict(context), wants_table(context)
        paths = self._get_paths_for_partitions(context)
        allow_missing = bool(context.definition_metadata.get("allow_missing_partitions", False))
        tables: dict[str, pa.Table] = {}
        missing: list[str] = []
        for key in _in_partition_order(context, list(paths)):
            context.log.debug(self.get_loading_input_partition_log_message(paths[key], key))
            try:
                tables[key] = with_declared_results(context, self._read_table(paths[key]))
            except FileNotFoundError:
                if not allow_missing:
                    raise
                missing.append(key)
        if missing:
            self._report_missing(context, missing, len(paths))
        if as_dict:
            # Also for a single partition, where UPathIOManager would hand back the bare value.
            return {key: as_requested(table, want_table) for key, table in tables.items()}
        if not tables:
            return pa.table({}) if want_table else pd.DataFrame()
        # Concatenating in Arrow keeps one conversion to pandas, unifies a column that is
        # all-null in some partitions, and gives a fresh RangeIndex instead of repeated ones.
        combined = pa.concat_tables(list(tables.values()), promote_options="default")
        return as_requested(combined, want_table)

    def _report_missing(self, context: dg.InputContext, missing: list[str], asked: int) -> None:
        """Say which partitions ``allow_missing_partitions`` left out.

        A partition never materialized is what the setting is for (a summary of the days
        run so far, while later days are still to come): one line at info level for them
        all. A partition the instance has a materialization of but whose file is gone is
        unexpected (a file deleted, a ``base_dir`` changed): a warning each, as Dagster's
        ``UPathIOManager`` gives every missing partition.
        """
        materialized = _materialized_partitions(context)
        never = [key for key in missing if materialized is not None and key not in materialized]
        if never:
            shown = ", ".join(never[:5]) + (", ..." if len(never) > 5 else "")
            context.log.info(
                f"{len(never)} of the {asked} partitions of {_asset_name(context)} are not "
                f"materialized yet and were left out (allow_missing_partitions): {shown}"
            )
        for key in missing:
            if key not in never:
                context.log.warning(self.get_missing_partition_log_message(key))

    def _read_table(self, path: UPath) -> pa.Table:
        """The whole file; FileNotFoundError (which UPathIOManager relies on) when absent."""
        if self.storage.local:
            # pyarrow's own reader is faster than reading through a Python file object.
            return pq.read_table(path.path)
        with path.open("rb") as handle:
            return pq.read_table(handle)


def _materialized_partitions(context: dg.InputContext) -> set[str] | None:
    """The upstream asset's partitions the instance has materializations of (``None`` when
    the context has no instance or asset, e.g. a hand-built context in a unit test)."""
    try:
        return set(context.instance.get_materialized_partitions(context.asset_key))
    except dg.DagsterInvariantViolationError:
        return None


def _asset_name(context: dg.InputContext) -> str:
    return context.asset_key.to_user_string() if context.has_asset_key else context.name


def _in_partition_order(context: dg.InputContext, keys: list[str]) -> list[str]:
    """``keys`` in the order of the upstream's partitions (time order for time windows)."""
    partitions_def = context.asset_partitions_def
    try:
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            return sorted(keys, key=lambda k: partitions_def.time_window_for_partition_key(k).start)
        position = {
            key: index
            for index, key in enumerate(
                partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
            )
        }
    except Exception:
        # An order we cannot work out (e.g. a partition deleted since) falls back to keys'
        # own order rather than failing the load.
        return sorted(keys)
    return sorted(keys, key=lambda k: (position.get(k, len(position)), k))


def _codec_available(codec: str) -> bool:
    try:
        return bool(pa.Codec.is_available(codec))
    except (ValueError, pa.ArrowException):
        return False
