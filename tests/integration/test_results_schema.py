"""The results table's declared schema, end to end: whatever the rows held (all failed, no
citations at all), every partition of an enriched asset is stored with the declared types of
its ``wf_`` columns, the same as ``runwf enrich`` writes, so that a folder of partitions
reads as one table with pandas, pyarrow, polars and DuckDB."""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.

import glob
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    EnrichmentSettings,
    ParquetIOManager,
    RunchatResource,
    RunchatWorkflow,
    enriched_asset,
)
from dagster_runwf.cli import main as runwf
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.table import result_fields

from ..conftest import ECHO, KEY

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

PLAIN = {
    "id": "plain",
    "service": "runchat",
    "inputs": [{"id": "text_n1", "label": "Text", "type": "string"}],
    "outputs": [
        {"id": "out_n2", "label": "Out", "type": "string", "template": "{{text_n1}}"},
        {"id": "size_n3", "label": "Size", "type": "number", "template": "3"},
    ],
    "fail_when": "bad",
}
"""A Runchat flow: answers without citations (and a number output, lifted: float64), and a
row error on any text with "bad"."""

SCORE_SCHEMA = {"score": "int64"}
"""The typed asset's output schema: the echo's answers are no JSON, so its typed column is
all null on both days (and its parse error column all null on the all-failed one)."""

DAYS = dg.StaticPartitionsDefinition(["answered", "all_failed"])
ROWS = {
    "answered": ["acme", "bad apple", "globex"],
    "all_failed": ["bad one", "bad two"],
}
"""A day with answers (and one row error), and a day on which every row failed."""


@dg.asset(partitions_def=DAYS)
def arrivals(context: dg.AssetExecutionContext) -> pd.DataFrame:
    names = ROWS[context.partition_key]
    return pd.DataFrame({"name": names, "n": range(len(names))})


def assets(journal: Path) -> list[dg.AssetsDefinition]:
    cited = enriched_asset(
        source=arrivals,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(columns={"text": "name"}, journal_dir=str(journal)),
        name="cited",
        partitions_def=DAYS,
        io_manager_key="parquet",
    )
    uncited = enriched_asset(
        source=arrivals,
        workflow=RunchatWorkflow("plain", ["text_n1"]),
        settings=EnrichmentSettings(
            columns={"text_n1": "name"},
            journal_dir=str(journal),
            output_columns={"out": "Out", "size": "Size"},
        ),
        name="uncited",
        partitions_def=DAYS,
        io_manager_key="parquet",
    )
    chunked = enriched_asset(
        source=arrivals,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(journal), chunk_size=2
        ),
        name="chunked",
        partitions_def=DAYS,
        io_manager_key="parquet",
    )
    typed = enriched_asset(
        source=arrivals,
        workflow=AITutorWorkflow("wf_echo", ["text"], output_schema=SCORE_SCHEMA),
        settings=EnrichmentSettings(columns={"text": "name"}, journal_dir=str(journal)),
        name="typed",
        partitions_def=DAYS,
        io_manager_key="parquet",
    )
    return [arrivals, cited, uncited, chunked, typed]


def resources(emu: Emulator, base_dir: Path) -> dict[str, Any]:
    return {
        "aitutor": AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited"),
        "runchat": RunchatResource(api_key=KEY, base_url=emu.runchat_url, rate="unlimited"),
        # The enriched assets' (the chunk steps' own outputs stay with the default one).
        "parquet": ParquetIOManager(base_dir=str(base_dir)),
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both assets materialized for both days, stored by the Parquet IO manager."""
    from dagster_runwf.emulator import EmulatorConfig

    tmp = tmp_path_factory.mktemp("schema")
    emu = Emulator(
        EmulatorConfig.from_dict(
            {"include_builtins": True, "rate_limit_enabled": False, "workflows": [ECHO, PLAIN]}
        )
    )
    emu.start()
    try:
        definitions = assets(tmp / "journal")
        with dg.instance_for_test() as instance:
            for day in DAYS.get_partition_keys():
                result = dg.materialize(
                    definitions,
                    resources=resources(emu, tmp / "assets"),
                    partition_key=day,
                    instance=instance,
                )
                assert result.success
        yield tmp / "assets", emu
    finally:
        emu.stop()


FOLDERS = ["cited", "uncited", "chunked", "typed"]


def declared(asset: str) -> dict[str, pa.DataType]:
    if asset == "uncited":
        lifted = {"out": "Out", "size": "Size"}
        fields = result_fields("wf_", lifted, output_types={"size": pa.float64()})
    else:
        fields = result_fields("wf_", output_schema=SCORE_SCHEMA if asset == "typed" else None)
    return {f.name: f.type for f in fields}


@pytest.mark.parametrize("asset", FOLDERS)
def test_every_partition_is_stored_with_the_declared_result_types(asset: str, stored: Any) -> None:
    folder, _ = stored
    for day in DAYS.get_partition_keys():
        schema = pq.read_schema(folder / asset / f"{day}.parquet")
        found = {name: schema.field(name).type for name in declared(asset)}
        assert found == declared(asset), f"{asset}/{day}"
    statuses = pq.read_table(folder / asset / "all_failed.parquet").column("wf_status")
    assert set(statuses.to_pylist()) == {"failed"}, "the all-failed day is what it says"


def expected_citations(asset: str) -> list[list[str]]:
    rows = ROWS["answered"] + ROWS["all_failed"]
    if asset == "uncited":
        return [[] for _ in rows]
    return [[] if "bad" in name else [f"https://example.com/{name}"] for name in rows]


def by_name(names: list[str], citations: list[Any]) -> list[list[str]]:
    """Citations in the order of ROWS (readers may give partitions in any order)."""
    cells = dict(zip(names, citations, strict=True))
    return [list(cells[name]) for name in ROWS["answered"] + ROWS["all_failed"]]


@pytest.mark.parametrize("asset", FOLDERS)
def test_an_asset_folder_reads_as_one_table_with_pandas(asset: str, stored: Any) -> None:
    folder, _ = stored
    frame = pd.read_parquet(folder / asset)
    assert by_name(list(frame["name"]), list(frame["wf_citations"])) == expected_citations(asset)


@pytest.mark.parametrize("asset", FOLDERS)
def test_an_asset_folder_reads_as_one_table_with_pyarrow(asset: str, stored: Any) -> None:
    folder, _ = stored
    for table in (pq.read_table(folder / asset), ds.dataset(folder / asset).to_table()):
        assert table.schema.field("wf_citations").type == pa.list_(pa.string())
        assert table.schema.field("wf_result").type == pa.string()
        names, citations = table.column("name").to_pylist(), table.column("wf_citations")
        assert by_name(names, citations.to_pylist()) == expected_citations(asset)


@pytest.mark.parametrize("asset", FOLDERS)
def test_an_asset_folder_reads_as_one_table_with_polars(asset: str, stored: Any) -> None:
    folder, _ = stored
    frame = pl.read_parquet(str(folder / asset / "*.parquet"))
    assert frame.schema["wf_citations"] == pl.List(pl.String)
    assert frame.schema["wf_error"] == pl.String
    names, citations = frame["name"].to_list(), frame["wf_citations"].to_list()
    assert by_name(names, citations) == expected_citations(asset)
    lazy = pl.scan_parquet(str(folder / asset / "*.parquet")).collect()
    assert lazy.schema == frame.schema


@pytest.mark.parametrize("asset", FOLDERS)
def test_an_asset_folder_reads_as_one_table_with_duckdb(asset: str, stored: Any) -> None:
    folder, _ = stored
    pattern = str(folder / asset / "*.parquet")
    connection = duckdb.connect()
    rows = connection.execute(
        f"SELECT name, wf_citations FROM read_parquet('{pattern}')"
    ).fetchall()
    kinds = connection.execute(
        f"DESCRIBE SELECT wf_citations, wf_result FROM read_parquet('{pattern}')"
    ).fetchall()
    assert [kind[1] for kind in kinds] == ["VARCHAR[]", "VARCHAR"]
    names = [row[0] for row in rows]
    assert by_name(names, [row[1] for row in rows]) == expected_citations(asset)


def test_the_command_writes_the_same_result_types_as_the_io_manager(
    stored: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, emu = stored
    source = tmp_path / "all_failed.csv"
    pd.DataFrame({"name": ROWS["all_failed"], "n": [0, 1]}).to_csv(source, index=False)
    output = tmp_path / "out.parquet"
    monkeypatch.setenv("RUNCHAT_API_KEY", KEY)
    monkeypatch.setenv("RUNCHAT_BASE_URL", emu.runchat_url)
    flags = ["--service", "runchat", "--workflow", "plain", "--map", "text_n1=name"]
    lifted = ["--output-column", "out=Out", "--output-column", "size=Size"]
    status = runwf(["enrich", str(source), str(output), *flags, *lifted])
    assert status == 0
    by_command = pq.read_schema(output)
    by_io_manager = pq.read_schema(folder / "uncited" / "all_failed.parquet")
    wanted = list(declared("uncited"))
    assert [by_command.field(n) for n in wanted] == [by_io_manager.field(n) for n in wanted]
    assert glob.glob(str(tmp_path / "*.parquet")) == [str(output)]


KINDS = {
    "polars": lambda names: pl.DataFrame({"name": names}),
    "pyarrow": lambda names: pa.table({"name": names}),
}


def kind_io_manager(kind: str, base_dir: Path) -> Any:
    if kind == "polars":
        return pytest.importorskip("dagster_polars").PolarsParquetIOManager(base_dir=str(base_dir))
    return ParquetIOManager(base_dir=str(base_dir))


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_all_failed_polars_or_pyarrow_table_keeps_the_declared_types(
    kind: str, stored: Any, tmp_path: Path
) -> None:
    _, emu = stored

    @dg.asset(name="rows")
    def rows() -> Any:
        return KINDS[kind](ROWS["all_failed"])

    asset = enriched_asset(
        source=rows,
        workflow=RunchatWorkflow("plain", ["text_n1"]),
        settings=EnrichmentSettings(
            columns={"text_n1": "name"}, journal_dir=str(tmp_path / "journal")
        ),
        name="enriched",
    )
    io = {"io_manager": kind_io_manager(kind, tmp_path / "assets")}
    result = dg.materialize([rows, asset], resources={**resources(emu, tmp_path), **io})
    assert result.success
    (path,) = (tmp_path / "assets").glob("enriched.parquet")
    frame = pl.read_parquet(path)
    assert set(frame["wf_status"].to_list()) == {"failed"}
    assert frame.schema["wf_citations"] == pl.List(pl.String)
    assert frame.schema["wf_result"] == pl.String and frame.schema["wf_outputs"] == pl.String


def test_partitions_written_before_the_declared_types_load_with_the_new_ones(
    stored: Any, tmp_path: Path
) -> None:
    folder, emu = stored
    # The "answered" day as the IO manager stored it before: types from the values.
    shutil.copytree(folder, tmp_path / "assets")
    old = tmp_path / "assets" / "uncited" / "answered.parquet"
    frame = pq.read_table(old).to_pandas()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=None), old)
    assert pq.read_schema(old).field("wf_citations").type == pa.list_(pa.null())
    loaded: list[pd.DataFrame] = []
    definitions = assets(tmp_path / "journal")
    uncited = next(a for a in definitions if a.key == dg.AssetKey("uncited"))

    @dg.asset(ins={"rows": dg.AssetIn(key=uncited.key, partition_mapping=dg.AllPartitionMapping())})
    def summary(rows: pd.DataFrame) -> None:
        loaded.append(rows)

    result = dg.materialize(
        [*definitions, summary],
        resources=resources(emu, tmp_path / "assets"),
        selection=[summary.key],
    )
    assert result.success
    (rows,) = loaded
    assert sorted(rows["name"]) == sorted(ROWS["answered"] + ROWS["all_failed"])
    assert all(len(cell) == 0 for cell in rows["wf_citations"])
