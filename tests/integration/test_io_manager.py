"""The Parquet IO manager, through Dagster's own APIs: round trips, partitions, metadata,
atomic writes and object storage (moto on loopback).

No ``from __future__ import annotations`` here: Dagster checks an asset's ``context``
annotation by comparing it with its context classes, and a string annotation fails that check.
"""

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf.integration.io_manager import ParquetIOManager

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")

received: dict[str, Any] = {}
"""What the downstream assets were handed, by asset name (cleared before each test)."""


@pytest.fixture(autouse=True)
def _clear_received() -> None:
    received.clear()


def sample_frame() -> pd.DataFrame:
    index = pd.Index(["r1", "r2", "r3"], name="key")
    frame: pd.DataFrame = pd.DataFrame(
        {
            "n": pd.Series([1, 2, 3], dtype="int64", index=index),
            "x": pd.Series([1.5, None, 3.0], dtype="float64", index=index),
            "s": pd.Series(["a", None, "c"], dtype="string", index=index),
            "flag": pd.Series([True, False, True], dtype="bool", index=index),
            "at": pd.Series(
                pd.to_datetime(["2024-01-01 08:00", "2024-03-31 12:30", "2024-12-31 23:59"]),
                index=index,
            ).dt.tz_localize("Europe/Berlin"),
            "tags": pd.Series([[1, 2], [], None], dtype="object", index=index),
        }
    )
    return frame


def io(base_dir: Path | str, **settings: Any) -> dict[str, Any]:
    return {"io_manager": ParquetIOManager(base_dir=str(base_dir), **settings)}


def materialize(
    assets: list[Any], resources: dict[str, Any], selection: Any = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources=resources,
        selection=selection,
        instance=kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def error_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message in the step failure's error chain."""
    texts: list[str] = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".tmp-")]


# -- 1. a pandas round trip ---------------------------------------------------------------------


@dg.asset(key_prefix=["raw"])
def frame() -> pd.DataFrame:
    return sample_frame()


@dg.asset(ins={"frame": dg.AssetIn(key=["raw", "frame"])})
def frame_copy(frame: pd.DataFrame) -> pd.DataFrame:
    received["frame_copy"] = frame
    return frame


def test_a_pandas_asset_round_trips_with_its_index_and_dtypes(tmp_path: Path) -> None:
    result = materialize([frame, frame_copy], io(tmp_path))
    assert result.success

    loaded = received["frame_copy"]
    pd.testing.assert_frame_equal(loaded, sample_frame())
    assert loaded.index.name == "key" and list(loaded.index) == ["r1", "r2", "r3"]
    assert str(loaded["at"].dtype) == "datetime64[us, Europe/Berlin]"
    # Like pandas.read_parquet, list cells come back as arrays; the values are the same.
    assert [None if v is None else list(v) for v in loaded["tags"]] == [[1, 2], [], None]

    # The layout is <base_dir>/<asset key path>.parquet, readable by anyone.
    written = tmp_path / "raw" / "frame.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(written), sample_frame())
    assert pq.ParquetFile(written).metadata.row_group(0).column(0).compression == "ZSTD"
    assert temporaries(tmp_path) == []


def test_compression_and_row_group_size_are_used(tmp_path: Path) -> None:
    @dg.asset
    def numbers() -> pd.DataFrame:
        frame: pd.DataFrame = pd.DataFrame({"n": range(10)})
        return frame

    assert materialize([numbers], io(tmp_path, compression="snappy", row_group_size=4)).success
    metadata = pq.ParquetFile(tmp_path / "numbers.parquet").metadata
    assert metadata.num_row_groups == 3
    assert metadata.row_group(0).column(0).compression == "SNAPPY"

    assert materialize([numbers], io(tmp_path, compression="none")).success
    metadata = pq.ParquetFile(tmp_path / "numbers.parquet").metadata
    assert metadata.row_group(0).column(0).compression == "UNCOMPRESSED"

    # Checked when the run starts, before any asset runs.
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        materialize([numbers], io(tmp_path, compression="bogus"))
    assert "compression 'bogus'" in str(raised.value.__cause__)


def test_a_frame_written_a_row_group_at_a_time_is_the_frame_converted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slices of 4 rows: "late" is all-null in the first slice and "tags" in the second;
    # each keeps the type inferred from the whole frame, and the index survives slicing.
    index = pd.Index([f"k{n}" for n in range(10)], name="key")
    whole = pd.DataFrame(
        {
            "late": [None] * 5 + [f"s{n}" for n in range(5)],
            "tags": [["a"]] * 3 + [None] * 5 + [["b", "c"]] * 2,
            "n": range(10),
        },
        index=index,
    )

    @dg.asset
    def sliced() -> pd.DataFrame:
        return whole

    write_table = pq.ParquetWriter.write_table
    converted: list[int] = []  # rows of each Arrow table handed to the writer

    def count_rows(writer: pq.ParquetWriter, table: pa.Table, **kwargs: Any) -> None:
        converted.append(table.num_rows)
        write_table(writer, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", count_rows)
    assert materialize([sliced], io(tmp_path, row_group_size=4)).success
    assert converted == [4, 4, 2], "never the whole frame in Arrow at once"
    monkeypatch.undo()
    written = pq.ParquetFile(tmp_path / "sliced.parquet")
    assert written.metadata.num_row_groups == 3
    pq.write_table(pa.Table.from_pandas(whole, preserve_index=None), tmp_path / "whole.parquet")
    expected = pq.read_table(tmp_path / "whole.parquet")
    assert written.read().equals(expected, check_metadata=True)


def test_the_default_folder_is_the_instances_storage_directory(tmp_path: Path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        resources = {"io_manager": ParquetIOManager()}
        assert materialize([frame], resources, instance=instance).success
        assert (Path(instance.storage_directory()) / "raw" / "frame.parquet").is_file()


def test_an_asset_returning_none_writes_nothing(tmp_path: Path) -> None:
    @dg.asset
    def side_effect():  # type: ignore[no-untyped-def]  # no annotation, as in the wild
        return None

    result = materialize([side_effect], io(tmp_path))
    assert result.success
    assert list(tmp_path.rglob("*.parquet")) == []
    (event,) = result.asset_materializations_for_node("side_effect")
    assert "path" not in event.metadata and "dagster/row_count" not in event.metadata


def test_an_output_that_is_not_a_table_is_refused_clearly(tmp_path: Path) -> None:
    @dg.asset
    def listing() -> list[int]:
        return [1, 2, 3]

    result = materialize([listing], io(tmp_path), raise_on_error=False)
    assert not result.success
    assert "asset listing returned a builtins.list" in error_text(result)


# -- 2. pyarrow tables ----------------------------------------------------------------------


@dg.asset
def arrow_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "name": pa.array(["a", "b", None], pa.string()),
            "scores": pa.array([[1.0], [2.0, 3.0], []], pa.list_(pa.float64())),
        }
    )


@dg.asset
def as_arrow(arrow_table: pa.Table) -> None:
    received["as_arrow"] = arrow_table


@dg.asset
def as_pandas(arrow_table: pd.DataFrame) -> None:
    received["as_pandas"] = arrow_table


def test_a_pyarrow_table_round_trips_and_loads_as_requested(tmp_path: Path) -> None:
    assert materialize([arrow_table, as_arrow, as_pandas], io(tmp_path)).success
    # Assets annotated '-> None' never reach the IO manager.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrow_table.parquet"]
    table = received["as_arrow"]
    assert isinstance(table, pa.Table)
    assert table.equals(arrow_table())
    assert table.schema.field("id").type == pa.int32()

    frame = received["as_pandas"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "name", "scores"]
    assert frame["id"].tolist() == [1, 2, 3]


# -- 3. partitions ----------------------------------------------------------------------------


@dg.asset(partitions_def=DAYS)
def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
    day = context.partition_key
    rows = {"2024-01-01": 2, "2024-01-02": 1, "2024-01-03": 3}[day]
    frame: pd.DataFrame = pd.DataFrame(
        {
            "day": [day] * rows,
            "n": range(rows),
            # All-null on the first day: the concatenation must unify it with strings.
            "note": [None] * rows if day == "2024-01-01" else [f"{day}#{i}" for i in range(rows)],
        }
    )
    return frame


@dg.asset(ins={"daily": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def all_days(daily: pd.DataFrame) -> None:
    received["all_days"] = daily


@dg.asset(ins={"daily": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def all_days_arrow(daily: pa.Table) -> None:
    received["all_days_arrow"] = daily


@dg.asset(ins={"daily": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def by_day(daily: dict[str, pd.DataFrame]) -> None:
    received["by_day"] = daily


@dg.asset(partitions_def=DAYS)
def same_day(daily: dict[str, pd.DataFrame]) -> None:
    received["same_day"] = daily


def materialize_days(base_dir: Path | str, **settings: Any) -> list[dg.ExecuteInProcessResult]:
    # Out of order, so that the order of the concatenation cannot come from write times.
    return [
        materialize([daily], io(base_dir, **settings), partition_key=day)
        for day in ("2024-01-03", "2024-01-01", "2024-01-02")
    ]


def test_all_partitions_arrive_as_one_frame_in_partition_order(tmp_path: Path) -> None:
    assert all(result.success for result in materialize_days(tmp_path))
    assert sorted(p.name for p in (tmp_path / "daily").iterdir()) == [
        "2024-01-01.parquet",
        "2024-01-02.parquet",
        "2024-01-03.parquet",
    ]

    downstream = [daily, all_days, all_days_arrow, by_day]
    result = materialize(downstream, io(tmp_path), selection=[all_days, all_days_arrow, by_day])
    assert result.success

    combined = received["all_days"]
    assert isinstance(combined, pd.DataFrame)
    assert combined["day"].tolist() == ["2024-01-01"] * 2 + ["2024-01-02"] + ["2024-01-03"] * 3
    assert combined["n"].tolist() == [0, 1, 0, 0, 1, 2]
    notes = combined["note"].tolist()
    assert notes[2:] == ["2024-01-02#0", "2024-01-03#0", "2024-01-03#1", "2024-01-03#2"]
    assert combined["note"].iloc[:2].isna().all()
    assert list(combined.index) == list(range(6))  # one fresh RangeIndex, not 0,1,0,0,1,2

    table = received["all_days_arrow"]
    assert isinstance(table, pa.Table) and table.num_rows == 6
    assert table.column("day").to_pylist()[0] == "2024-01-01"

    per_day = received["by_day"]
    assert list(per_day) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [len(df) for df in per_day.values()] == [2, 1, 3]
    assert per_day["2024-01-02"]["note"].tolist() == ["2024-01-02#0"]


def test_a_partitioned_downstream_gets_its_own_partition(tmp_path: Path) -> None:
    assert all(result.success for result in materialize_days(tmp_path))
    result = materialize(
        [daily, same_day], io(tmp_path), selection=[same_day], partition_key="2024-01-02"
    )
    assert result.success
    # A dict annotation gets a dict also for one partition (UPathIOManager gives the bare value).
    assert list(received["same_day"]) == ["2024-01-02"]
    assert received["same_day"]["2024-01-02"]["n"].tolist() == [0]


def test_missing_partitions_fail_unless_allowed(tmp_path: Path) -> None:
    assert materialize([daily], io(tmp_path), partition_key="2024-01-02").success

    failed = materialize(
        [daily, all_days], io(tmp_path), selection=[all_days], raise_on_error=False
    )
    assert not failed.success
    assert "2024-01-01.parquet" in error_text(failed)

    @dg.asset(
        ins={
            "daily": dg.AssetIn(
                partition_mapping=dg.AllPartitionMapping(),
                metadata={"allow_missing_partitions": True},
            )
        }
    )
    def present_days(daily: pd.DataFrame) -> None:
        received["present_days"] = daily

    assert materialize([daily, present_days], io(tmp_path), selection=[present_days]).success
    assert received["present_days"]["day"].tolist() == ["2024-01-02"]


def test_only_a_materialized_partition_gone_missing_is_warned_about(tmp_path: Path) -> None:
    """A summary of the days materialized so far (``allow_missing_partitions``) is told the
    days still to come in one info line, not a warning per day; a day whose materialization
    is recorded but whose file is gone is still a warning."""

    @dg.asset(
        ins={
            "daily": dg.AssetIn(
                partition_mapping=dg.AllPartitionMapping(),
                metadata={"allow_missing_partitions": True},
            )
        }
    )
    def days_so_far(daily: pd.DataFrame) -> None:
        received["days_so_far"] = daily

    instance = dg.DagsterInstance.ephemeral()
    for day in ("2024-01-02", "2024-01-03"):
        assert materialize([daily], io(tmp_path), partition_key=day, instance=instance).success
    (tmp_path / "daily" / "2024-01-03.parquet").unlink()

    result = materialize([daily, days_so_far], io(tmp_path), [days_so_far], instance=instance)
    assert result.success
    assert received["days_so_far"]["day"].tolist() == ["2024-01-02"]
    logs = [(int(e.level), e.user_message) for e in instance.all_logs(result.run_id)]
    warnings = [m for level, m in logs if level >= logging.WARNING]
    assert [m for m in warnings if "Couldn't load partition" in m] == [
        "Couldn't load partition 2024-01-03 and skipped it because the input metadata "
        "includes allow_missing_partitions=True"
    ]
    assert (
        logging.INFO,
        "1 of the 3 partitions of daily are not materialized yet and were left out "
        "(allow_missing_partitions): 2024-01-01",
    ) in logs


# -- 4. metadata ----------------------------------------------------------------------------


def test_each_materialization_carries_row_count_schema_path_and_size(tmp_path: Path) -> None:
    result = materialize([frame], io(tmp_path))
    (event,) = result.asset_materializations_for_node("raw__frame")
    metadata = event.metadata
    written = tmp_path / "raw" / "frame.parquet"

    assert metadata["dagster/row_count"] == dg.MetadataValue.int(3)
    assert metadata["path"] == dg.MetadataValue.path(str(written))
    assert metadata["file_size_bytes"] == dg.MetadataValue.int(written.stat().st_size)
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert [(c.name, c.type) for c in schema.columns] == [
        ("n", "int64"),
        ("x", "double"),
        ("s", "large_string"),
        ("flag", "bool"),
        ("at", "timestamp[us, tz=Europe/Berlin]"),
        ("tags", "list<item: int64>"),
        ("key", "large_string"),  # the index, stored as a column
    ]
    assert "dagster/partition_row_count" not in metadata

    # The same on the instance's event log, per partition for a partitioned asset.
    instance = dg.DagsterInstance.ephemeral()
    materialize([daily], io(tmp_path), partition_key="2024-01-03", instance=instance)
    stored = instance.get_latest_materialization_event(dg.AssetKey("daily"))
    assert stored is not None and stored.asset_materialization is not None
    assert stored.asset_materialization.partition == "2024-01-03"
    stored_metadata = stored.asset_materialization.metadata
    assert stored_metadata["dagster/row_count"].value == 3
    assert stored_metadata["dagster/partition_row_count"].value == 3
    assert stored_metadata["path"].value == str(tmp_path / "daily" / "2024-01-03.parquet")


# -- 5. atomic writes and clear errors --------------------------------------------------------


def fail_after_the_first_row_group(monkeypatch: pytest.MonkeyPatch, error: OSError) -> None:
    """Make every Parquet write fail half way: one row group written, then ``error``."""
    write_table = pq.ParquetWriter.write_table

    def write_one_then_fail(writer: pq.ParquetWriter, table: pa.Table, **kwargs: Any) -> None:
        write_table(writer, table.slice(0, 1), **kwargs)
        raise error

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_one_then_fail)


def test_a_failing_write_leaves_the_earlier_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert materialize([frame], io(tmp_path)).success
    written = tmp_path / "raw" / "frame.parquet"
    before = written.read_bytes()

    fail_after_the_first_row_group(monkeypatch, OSError("disk full"))
    result = materialize([frame], io(tmp_path), raise_on_error=False)
    assert not result.success
    message = error_text(result)
    assert "asset raw/frame" in message and "disk full" in message
    assert written.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_a_first_failing_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_after_the_first_row_group(monkeypatch, OSError("disk full"))
    assert not materialize([frame], io(tmp_path), raise_on_error=False).success
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            pd.DataFrame({"ok": [1, 2], "mixed": [1, "two"]}),
            "column 'mixed' (dtype object): Could not convert 'two'",
        ),
        (pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"]), "duplicate column name(s) ['a']"),
        # Arrow names columns str(label), and such a file could not be read back.
        (pd.DataFrame({0: [1], "0": [2]}), "duplicate column name(s) ['0']"),
        (pa.table([[1], [2]], names=["a", "a"]), "duplicate column name(s) ['a']"),
    ],
)
def test_an_unconvertible_frame_names_the_asset_and_column(
    tmp_path: Path, bad: pd.DataFrame | pa.Table, expected: str
) -> None:
    @dg.asset(key_prefix=["raw"], name="frame")
    def good() -> pd.DataFrame:
        return sample_frame()

    @dg.asset(key_prefix=["raw"], name="frame")
    def broken() -> Any:
        return bad

    assert materialize([good], io(tmp_path)).success
    written = tmp_path / "raw" / "frame.parquet"
    before = written.read_bytes()

    result = materialize([broken], io(tmp_path), raise_on_error=False)
    assert not result.success
    message = error_text(result)
    assert "asset raw/frame cannot be stored as Parquet" in message
    assert expected in message
    assert written.read_bytes() == before
    assert temporaries(tmp_path) == []


# -- 6. object storage ------------------------------------------------------------------------


def test_partitions_in_object_storage(s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"storage_options": s3["options"]}
    written = materialize_days("s3://bucket/assets", **settings)
    assert all(result.success for result in written)
    listed = s3["client"].list_objects_v2(Bucket="bucket", Prefix="assets/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        "assets/daily/2024-01-01.parquet",
        "assets/daily/2024-01-02.parquet",
        "assets/daily/2024-01-03.parquet",
    ]

    result = materialize(
        [daily, all_days, by_day],
        io("s3://bucket/assets", **settings),
        selection=[all_days, by_day],
    )
    assert result.success
    assert received["all_days"]["n"].tolist() == [0, 1, 0, 0, 1, 2]
    assert list(received["by_day"]) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    (event,) = written[0].asset_materializations_for_node("daily")
    assert event.metadata["path"].value == "s3://bucket/assets/daily/2024-01-03.parquet"
    assert event.metadata["dagster/row_count"].value == 3

    # A failed upload publishes nothing and leaves the earlier object as it was.
    before = s3["client"].get_object(Bucket="bucket", Key="assets/daily/2024-01-02.parquet")
    body = before["Body"].read()

    fail_after_the_first_row_group(monkeypatch, OSError("connection reset"))
    failed = materialize(
        [daily],
        io("s3://bucket/assets", **settings),
        partition_key="2024-01-02",
        raise_on_error=False,
    )
    assert not failed.success
    assert "asset daily (partition 2024-01-02)" in error_text(failed)
    after = s3["client"].get_object(Bucket="bucket", Key="assets/daily/2024-01-02.parquet")
    assert after["Body"].read() == body


def test_storage_options_stay_out_of_reprs() -> None:
    secret = "not-a-real-secret-0123456789"
    options = {"key": "test", "secret": secret, "client_kwargs": {"region_name": "us-east-1"}}
    resource = ParquetIOManager(base_dir="s3://bucket/assets", storage_options=options)
    assert secret not in repr(resource)
    manager = resource.create_io_manager(dg.build_init_resource_context())
    assert secret not in repr(manager) and "s3://bucket/assets" in repr(manager)
