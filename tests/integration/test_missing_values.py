"""A real value ``NA`` in a CSV: the obvious ``pd.read_csv`` makes it NaN, and the row's
error and the ``failure_rate`` check say so and how to read the file instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY

# Country codes: "NA" is Namibia, a value, not a gap.
CSV_TEXT = "company,country\nAcme,DE\nDune Mining,NA\nFjord Energy,NO\n"


def assets(csv: Path, tmp_path: Path, **read_csv: Any) -> list[Any]:
    @dg.asset(name="companies")
    def companies() -> pd.DataFrame:
        frame: pd.DataFrame = pd.read_csv(csv, **read_csv)
        return frame

    enriched = enriched_asset(
        source=companies,
        workflow=AITutorWorkflow("wf_echo", ["text"]),
        settings=EnrichmentSettings(
            columns={"text": "country"},
            journal_dir=str(tmp_path / "journal"),
            failure_rate_threshold=0.1,
            preflight=False,
        ),
    )
    return [companies, enriched]


@pytest.fixture
def emu(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})


def materialize(emu: Emulator, defs: list[Any]) -> dg.ExecuteInProcessResult:
    resource = AITutorResource(api_key=KEY, base_url=emu.aitutor_url, rate="unlimited")
    return dg.materialize(defs, resources={"aitutor": resource})


def test_na_read_by_the_default_read_csv_is_named_in_the_error_and_the_check(
    emu: Emulator, tmp_path: Path
) -> None:
    csv = tmp_path / "companies.csv"
    csv.write_text(CSV_TEXT)
    companies, enriched = assets(csv, tmp_path)
    result = materialize(emu, [companies, enriched])
    assert result.success
    table = result.output_for_node(enriched.node_def.name)
    assert list(table["wf_status"]) == ["succeeded", "failed", "succeeded"]
    error = table["wf_error"][1]
    assert "input 'text' is missing (NaN; pandas.read_csv reads the texts NA, N/A, null" in error
    assert 'read it with keep_default_na=False, na_values=[""]' in error
    assert "on_missing='null'" in error

    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "failure_rate"]
    assert not check.passed  # 1 of 3
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["missing_input"] == 1
    hint = metadata["missing_input_hint"]
    assert isinstance(hint, str) and hint.startswith("1 rows failed on an input that is NaN")
    assert "keep_default_na=False" in hint
    assert check.description is not None and "keep_default_na=False" in check.description


def test_read_as_the_docs_say_na_is_a_value_and_every_row_succeeds(
    emu: Emulator, tmp_path: Path
) -> None:
    csv = tmp_path / "companies.csv"
    csv.write_text(CSV_TEXT)
    companies, enriched = assets(csv, tmp_path, keep_default_na=False, na_values=[""])
    result = materialize(emu, [companies, enriched])
    table = result.output_for_node(enriched.node_def.name)
    assert list(table["wf_status"]) == ["succeeded"] * 3
    assert table["wf_result"][1].startswith("echo:NA")
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "failure_rate"]
    assert check.passed
    assert check.metadata["missing_input"].value == 0
    assert "missing_input_hint" not in check.metadata
