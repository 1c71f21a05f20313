"""The package as a user installs it: the wheel built from this tree, installed into fresh
virtual environments, with and without the extras the quickstart names.

The installs take the versions pinned in uv.lock and come from uv's cache (filled by
``make install``), or from the package registry for anything it lacks: this module is the
one part of the suite that may use the network. Marked ``packaging``; CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest

from .conftest import ECHO

pytestmark = pytest.mark.packaging


def _find_uv() -> str | None:
    """uv: the dev group's (``make install``), else the one running us or on PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        return os.environ.get("UV") or shutil.which("uv")
    return find_uv_bin()


UV = _find_uv()
if UV is None:
    pytest.skip("needs uv (the dev group has it: make install)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]

# The environment as the session started, before conftest points XDG_CACHE_HOME at a
# temporary folder: uv's cache is the user's, so that installs reuse what is already there.
_USER_ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
}


def _uv(*args: str | Path, cwd: Path = ROOT) -> str:
    """Run uv; offline first (everything pinned is usually in the cache), else online."""
    assert UV is not None
    command = [UV, *map(str, args)]
    offline = subprocess.run(
        [*command, "--offline"], cwd=cwd, env=_USER_ENV, capture_output=True, text=True
    )
    if offline.returncode == 0:
        return offline.stdout
    online = subprocess.run(command, cwd=cwd, env=_USER_ENV, capture_output=True, text=True)
    assert online.returncode == 0, f"uv {' '.join(map(str, args))}:\n{online.stderr}"
    return online.stdout


def _run(venv: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of ``venv``'s programs from an empty folder (so that this checkout's
    dagster_runwf/ folder cannot be imported instead of the installed one)."""
    return subprocess.run(
        [str(venv / "bin" / program), *args],
        cwd=venv.parent / "elsewhere",
        env=_USER_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Built:
    """The wheel and the lockfile's pins, as requirements to constrain installs with."""

    def __init__(self, wheel: Path, constraints: Path) -> None:
        self.wheel = wheel
        self.constraints = constraints

    def install(
        self, venv: Path, extras: str = "", *more: str, unpinned: tuple[str, ...] = ()
    ) -> None:
        """A fresh virtual environment at ``venv`` with the wheel (and ``extras``, and the
        requirements ``more``) in it, at the lockfile's versions but for ``unpinned``."""
        _uv("venv", "--quiet", "--python", sys.executable, venv)
        (venv.parent / "elsewhere").mkdir(exist_ok=True)
        constraints = self.constraints
        if unpinned:
            constraints = venv.parent / "constraints.txt"
            pins = self.constraints.read_text().splitlines()
            kept = [pin for pin in pins if not pin.startswith(tuple(f"{n}==" for n in unpinned))]
            constraints.write_text("\n".join(kept) + "\n")
        requirement = f"{self.wheel}[{extras}]" if extras else str(self.wheel)
        _uv(
            "pip", "install", "--quiet", "--python", venv / "bin" / "python",
            "--constraints", constraints, requirement, *more,
        )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--wheel", "--quiet", "--out-dir", out)
    (wheel,) = out.glob("dagster_runwf-*.whl")
    constraints = out / "constraints.txt"
    _uv(
        "export", "--frozen", "--no-dev", "--all-extras", "--no-emit-project", "--no-hashes",
        "--quiet", "--output-file", constraints,
    )  # fmt: skip
    yield Built(wheel, constraints)


def _metadata(wheel: Path) -> tuple[list[str], str]:
    """The wheel's files and its entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
        return names, archive.read(entry_points).decode()


def test_the_wheel_has_the_runwf_command_the_extras_and_no_dev_tools(built: Built) -> None:
    names, entry_points = _metadata(built.wheel)
    assert "runwf = dagster_runwf.cli:run" in entry_points
    assert "dagster_runwf = dagster_runwf" in entry_points  # dg finds the component
    assert "dagster_runwf/py.typed" in names
    assert not any(name.startswith(("tests/", "example_project/", "bench/")) for name in names)
    with zipfile.ZipFile(built.wheel) as archive:
        (meta,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta).decode())
    extras = sorted(metadata.get_all("Provides-Extra") or [])
    assert extras == ["celery", "dask", "dg", "redis", "s3", "ui"]
    requires = [line.replace("'", '"') for line in metadata.get_all("Requires-Dist") or []]
    core = [line for line in requires if "extra ==" not in line]
    assert "dagster<1.14,>=1.13" in core
    assert not [line for line in core if line.startswith(("dagster-webserver", "pytest", "moto"))]
    assert 'dagster-webserver<1.14,>=1.13; extra == "ui"' in requires
    # The distributed executors of dagster's release, only in their extras.
    assert 'dagster-celery<0.30,>=0.29; extra == "celery"' in requires
    assert 'dagster-dask<0.30,>=0.29; extra == "dask"' in requires
    assert not [line for line in core if line.startswith(("dagster-celery", "dagster-dask"))]


def test_a_core_install_runs_without_the_ui(built: Built, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    built.install(venv)
    imported = _run(venv, "python", "-c", "import dagster_runwf; print(dagster_runwf.__file__)")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(venv))
    runwf = _run(venv, "runwf", "--help")
    assert runwf.returncode == 0, runwf.stderr
    assert "enrich" in runwf.stdout
    listed = _uv("pip", "list", "--python", venv / "bin" / "python")
    assert "dagster-webserver" not in listed
    assert "dagster " in listed
    assert not (venv / "bin" / "dagster-webserver").exists()


def test_the_ui_extra_gives_dagster_dev(built: Built, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    built.install(venv, "ui")
    dev = _run(venv, "dagster", "dev", "--help")
    assert dev.returncode == 0, dev.stderr
    assert "--module-name" in dev.stdout
    webserver = _run(venv, "dagster-webserver", "--help")
    assert webserver.returncode == 0, webserver.stderr
    imported = _run(venv, "python", "-c", "import dagster_runwf, dagster_webserver")
    assert imported.returncode == 0, imported.stderr


def test_the_s3_redis_and_dg_extras_install_what_their_features_import(
    built: Built, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    built.install(venv, "s3,redis,dg")
    imported = _run(venv, "python", "-c", "import s3fs, redis, dagster_runwf")
    assert imported.returncode == 0, imported.stderr
    dg = _run(venv, "dg", "--help")
    assert dg.returncode == 0, dg.stderr


# The enriched asset stored by dagster-duckdb-pandas, which requires pandas < 3: the dev
# environment has pandas 3 (what a new install gets), so this runs in an environment of its
# own, which also runs the package on pandas 2.
DUCKDB_PANDAS_ROUND_TRIP = """
import json, sys
import dagster as dg
import pandas as pd
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_runwf import AITutorResource, AITutorWorkflow, EnrichmentSettings, enriched_asset
from dagster_runwf.emulator import Emulator, EmulatorConfig

folder, echo = sys.argv[1], json.loads(sys.argv[2])
emulator = Emulator(EmulatorConfig.from_dict({"rate_limit_enabled": False, "workflows": [echo]}))
emulator.start()
names = ["a", "b", "bad_one"]

@dg.asset
def companies() -> pd.DataFrame:
    return pd.DataFrame({"name": names})

profiles = enriched_asset(
    source=companies,
    workflow=AITutorWorkflow("wf_echo", ["text"]),
    settings=EnrichmentSettings(columns={"text": "name"}, journal_dir=folder + "/journal"),
    name="profiles",
)
loaded = {}

@dg.asset
def downstream(profiles: pd.DataFrame) -> None:
    loaded["citations"] = [list(cell) for cell in profiles["wf_citations"]]

resources = {
    "aitutor": AITutorResource(api_key="sk_x", base_url=emulator.aitutor_url, rate="unlimited"),
    "io_manager": DuckDBPandasIOManager(database=folder + "/db.duckdb", schema="s"),
}
result = dg.materialize([companies, profiles, downstream], resources=resources)
emulator.stop()
print(json.dumps({"pandas": pd.__version__, "ok": result.success, **loaded}))
"""


def test_the_duckdb_pandas_io_manager_round_trips_the_citations_on_pandas_2(
    built: Built, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    built.install(venv, "", "dagster-duckdb-pandas>=0.29,<0.30", unpinned=("pandas", "numpy"))
    echo = json.dumps(ECHO)
    done = _run(venv, "python", "-c", DUCKDB_PANDAS_ROUND_TRIP, str(tmp_path), echo)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["pandas"].startswith("2.") and out["ok"]
    assert out["citations"] == [["https://example.com/a"], ["https://example.com/b"], []]
