"""The enriched asset over pandas, polars and pyarrow sources, and through the IO managers
people use with them (DuckDB, dagster-polars): the results come out in the source's kind and
the citations column (a list of strings) survives the round trip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from dagster_runwf import AITutorWorkflow, EnrichmentSettings, ParquetIOManager, enriched_asset

from ..conftest import ECHO
from .test_dagster_assets import resources

pl = pytest.importorskip("polars")

NAMES = [f"company_{i}" for i in range(6)] + ["bad_one"]
EXPECTED_CITATIONS: list[list[str]] = [[f"https://example.com/{name}"] for name in NAMES[:-1]] + [
    []
]
"""What ECHO cites for each row (the row that fails has an empty list)."""

FRAMES: dict[str, Callable[[], Any]] = {
    "pandas": lambda: pd.DataFrame({"name": NAMES, "n": range(len(NAMES))}),
    "polars": lambda: pl.DataFrame({"name": NAMES, "n": list(range(len(NAMES)))}),
    "polars_lazy": lambda: pl.LazyFrame({"name": NAMES, "n": list(range(len(NAMES)))}),
    "pyarrow": lambda: pa.table({"name": NAMES, "n": list(range(len(NAMES)))}),
}
COMES_OUT_AS = {
    "pandas": pd.DataFrame,
    "polars": pl.DataFrame,
    "polars_lazy": pl.DataFrame,
    "pyarrow": pa.Table,
}


def source_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(name="companies")
    def companies() -> Any:
        return FRAMES[kind]()

    return companies


def enriched(source: dg.AssetsDefinition, tmp_path: Path, **settings: Any) -> dg.AssetsDefinition:
    return enriched_asset(
        source=source,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "name"}, journal_dir=str(tmp_path / "journal"), **settings
        ),
        name="profiles",
    )


def as_lists(citations: list[Any]) -> list[list[str] | None]:
    """Citations cells as Python lists (pandas holds them as NumPy arrays)."""
    return [None if cell is None or cell is pd.NA else list(cell) for cell in citations]


def citations_of(value: Any) -> list[list[str] | None]:
    if isinstance(value, pd.DataFrame):
        return as_lists(value["wf_citations"].tolist())
    if isinstance(value, pa.Table):
        return as_lists(value.column("wf_citations").to_pylist())
    return as_lists(value["wf_citations"].to_list())


@pytest.mark.parametrize("chunk_size", [None, 3], ids=["one_step", "chunked"])
@pytest.mark.parametrize("kind", list(FRAMES))
def test_the_results_come_out_in_the_sources_kind(
    kind: str, chunk_size: int | None, start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    source = source_asset(kind)
    asset = enriched(source, tmp_path, chunk_size=chunk_size)
    result = dg.materialize([source, asset], resources=resources(emu))
    assert result.success
    value = result.asset_value(asset.key)
    assert isinstance(value, COMES_OUT_AS[kind])
    columns = value.column_names if isinstance(value, pa.Table) else list(value.columns)
    assert columns[:3] == ["name", "n", "wf_status"]
    assert citations_of(value) == EXPECTED_CITATIONS
    (event,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == asset.key
    ]
    assert event.metadata["runwf/succeeded"].value == 6
    assert event.metadata["runwf/failed"].value == 1


def test_a_source_that_is_no_table_fails_the_step_naming_the_kinds(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])

    @dg.asset(name="companies")
    def companies() -> Any:
        return {"name": NAMES}

    asset = enriched(companies, tmp_path)
    result = dg.materialize([companies, asset], resources=resources(emu), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "builtins.dict" in text and "polars.DataFrame" in text and "pyarrow.Table" in text
    assert sum(emu.stats()["runs_by_workflow"].values()) == 0


def io_managers(
    tmp_path: Path,
) -> dict[str, Callable[[], dg.IOManagerDefinition | dg.ConfigurableIOManagerFactory[Any]]]:
    def duckdb_pandas() -> dg.IOManagerDefinition | dg.ConfigurableIOManagerFactory[Any]:
        # Not in the dev environment (it requires pandas < 3): tests/test_packaging.py runs
        # it in an environment of its own; here where it is installed.
        module = pytest.importorskip("dagster_duckdb_pandas")
        return module.DuckDBPandasIOManager(database=str(tmp_path / "db.duckdb"), schema="s")

    def duckdb_polars() -> dg.IOManagerDefinition | dg.ConfigurableIOManagerFactory[Any]:
        module = pytest.importorskip("dagster_duckdb_polars")
        return module.DuckDBPolarsIOManager(database=str(tmp_path / "db.duckdb"), schema="s")

    def polars_parquet() -> dg.IOManagerDefinition | dg.ConfigurableIOManagerFactory[Any]:
        module = pytest.importorskip("dagster_polars")
        return module.PolarsParquetIOManager(base_dir=str(tmp_path / "polars"))

    def runwf_parquet() -> dg.IOManagerDefinition | dg.ConfigurableIOManagerFactory[Any]:
        return ParquetIOManager(base_dir=str(tmp_path / "parquet"))

    return {
        "duckdb_pandas": duckdb_pandas,
        "duckdb_polars": duckdb_polars,
        "polars_parquet": polars_parquet,
        "runwf_parquet_arrow": runwf_parquet,
    }


ROUND_TRIPS = {
    # IO manager: (the source's kind, what the downstream asset asks for)
    "duckdb_pandas": ("pandas", pd.DataFrame),
    "duckdb_polars": ("polars", pl.DataFrame),
    "polars_parquet": ("polars", pl.DataFrame),
    "runwf_parquet_arrow": ("pyarrow", pa.Table),
}


@pytest.mark.parametrize("io_manager", list(ROUND_TRIPS))
def test_the_citations_survive_the_io_managers_round_trip(
    io_manager: str, start_emulator: Any, tmp_path: Path
) -> None:
    emu = start_emulator(rate_limit_enabled=False, workflows=[ECHO])
    kind, annotation = ROUND_TRIPS[io_manager]
    source = source_asset(kind)
    asset = enriched(source, tmp_path)
    loaded: dict[str, Any] = {}

    @dg.asset(ins={"profiles": dg.AssetIn(dagster_type=annotation)})
    def downstream(profiles: Any) -> None:
        loaded["value"] = profiles

    io = io_managers(tmp_path)[io_manager]()
    result = dg.materialize(
        [source, asset, downstream], resources={**resources(emu), "io_manager": io}
    )
    assert result.success
    value = loaded["value"]
    assert isinstance(value, annotation)
    assert citations_of(value) == EXPECTED_CITATIONS
    assert all(isinstance(url, str) for urls in citations_of(value) for url in urls or [])
