"""``runwf``'s messages name the command's flags (``--on-missing null``), never the Python
parameters the engine is configured with (``on_missing='null'``)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY
from .test_cli import ENRICH_ECHO, environment, runwf


@pytest.fixture
def emu(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {}})


def enrich(emu: Emulator, folder: Path, texts: list[str | None], *flags: str, **env: str) -> Any:
    pd.DataFrame({"text": texts}).to_csv(folder / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text", *flags]
    return runwf(*args, env=environment(emu, **env), cwd=folder)


def test_a_missing_input_names_the_on_missing_flag(emu: Emulator, tmp_path: Path) -> None:
    run = enrich(emu, tmp_path, ["a", None, "b"])
    assert run.returncode == 0, run.stderr
    (error,) = pd.read_parquet(tmp_path / "out.parquet")["wf_error"].dropna()
    assert "set --on-missing null to send it as null, or --on-missing skip" in error
    assert "on_missing" not in error
    # runwf reads the CSV itself, keeping a text NA a value: no advice about read_csv.
    assert "is missing (an empty cell, or a null in Parquet)" in error
    assert "read_csv" not in error


def test_skipped_rows_are_counted_as_skipped_in_the_flags_words(
    emu: Emulator, tmp_path: Path
) -> None:
    run = enrich(emu, tmp_path, ["a", None, "b"], "--on-missing", "skip")
    assert run.returncode == 0, run.stderr
    assert "failed    1, 1 of them skipped (--on-missing skip)" in run.stdout
    table = pd.read_parquet(tmp_path / "out.parquet")
    (error,) = table["wf_error"].dropna()
    assert error == "row 1: skipped (--on-missing skip): input 'text' is missing"
    assert "on_missing" not in error
    assert list(table["wf_error_type"].dropna()) == ["RowSkippedError"]


def test_the_circuit_breaker_names_its_flag(emu: Emulator, tmp_path: Path) -> None:
    texts: list[str | None] = [f"bad {i}" for i in range(10)]
    flags = ("--max-consecutive-failures", "3", "--concurrency", "1", "--rate", "unlimited")
    run = enrich(emu, tmp_path, texts, *flags)
    assert run.returncode == 1
    line = run.error_line()
    assert "3 rows in a row failed" in line
    assert "raise --max-consecutive-failures (now 3)" in line
    assert "max_consecutive_failures" not in line
    assert sum(emu.stats()["runs_by_workflow"].values()) == 3


def test_the_flag_off_lets_every_failing_row_run(emu: Emulator, tmp_path: Path) -> None:
    texts: list[str | None] = [f"bad {i}" for i in range(30)]
    run = enrich(emu, tmp_path, texts, "--max-consecutive-failures", "0", "--rate", "unlimited")
    assert run.returncode == 0, run.stderr
    assert sum(emu.stats()["runs_by_workflow"].values()) == 30


def test_a_refused_key_names_its_environment_variable(emu: Emulator, tmp_path: Path) -> None:
    run = enrich(emu, tmp_path, ["a", "b"], AITUTOR_API_KEY="sk_not_this_one_42")
    assert run.returncode == 1
    line = run.error_line()
    assert "Check the API key ($AITUTOR_API_KEY): is it set to a current key" in line
    assert "api_key" not in line and "EnvVar" not in line


def only_error(folder: Path) -> str:
    """The wf_error of the one row of the output."""
    (error,) = pd.read_parquet(folder / "out.parquet")["wf_error"].dropna()
    return str(error)


def test_an_attempt_past_its_deadline_names_the_attempt_timeout_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.update_config({"faults": {"slow_s": 1.5}})
    flags = ("--attempt-timeout", "0.5", "--max-attempts", "1", "--rate", "unlimited")
    run = enrich(emu, tmp_path, ["slow"], *flags)
    assert run.returncode == 0, run.stderr
    error = only_error(tmp_path)
    assert "no complete answer within the attempt's deadline of 0.5 s" in error
    assert "Raise --attempt-timeout if this workflow's runs take longer" in error
    assert "gave up after 1 attempt" in error
    assert "attempt_timeout_s" not in error and "read_timeout" not in error
    assert "httpx" not in error


def test_an_answer_beyond_the_cap_names_the_max_response_bytes_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.update_config({"faults": {"huge_body_bytes": 200_000}})
    flags = ("--max-response-bytes", "100000", "--rate", "unlimited")
    run = enrich(emu, tmp_path, ["big"], *flags)
    assert run.returncode == 0, run.stderr
    error = only_error(tmp_path)
    assert "with more than 100,000 bytes" in error
    assert "Raise --max-response-bytes if this workflow really returns that much" in error
    assert "max_response_bytes" not in error


def test_a_row_meeting_429_after_429_is_told_to_lower_the_rate_flag_only(
    emu: Emulator, tmp_path: Path
) -> None:
    # Retry-After 0: the 101 rate-limited answers come back to back.
    emu.update_config({"faults": {"rate_limit_burst": 1_000, "retry_after": "0"}})
    run = enrich(emu, tmp_path, ["limited"], "--rate", "unlimited")
    assert run.returncode == 0, run.stderr
    error = only_error(tmp_path)
    assert error.endswith("(gave up after 101 rate-limited answers; lower the rate (--rate))")
    assert "max_rate_limited" not in error and "RetryPolicy" not in error


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--attempt-timeout", "0"), ("--max-attempts", "0"), ("--max-response-bytes", "-1")],
)
def test_the_new_flags_refuse_values_out_of_range(
    emu: Emulator, tmp_path: Path, flag: str, value: str
) -> None:
    run = enrich(emu, tmp_path, ["a"], flag, value)
    assert run.returncode == 2
    assert f"argument {flag}: expected" in run.stderr
    assert sum(emu.stats()["runs_by_workflow"].values()) == 0


def test_an_unusable_cache_folder_names_the_rate_limit_store_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    run = enrich(emu, tmp_path, ["a", "b"], XDG_CACHE_HOME=str(blocker))
    assert run.returncode == 0, run.stderr
    (warning,) = [line for line in run.stderr.splitlines() if "this process only" in line]
    assert "(set --rate-limit-store to share it)" in warning
    assert "rate_limit_store" not in warning


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a redirect to another host."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(301)
        self.send_header("location", "http://127.0.0.2:9/api/v1/run")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_redirect_names_the_base_url_flag(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pd.DataFrame({"text": ["a"]}).to_csv(tmp_path / "in.csv", index=False)
        url = f"http://127.0.0.1:{server.server_port}/api/v1"
        args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
        env = environment(None, AITUTOR_API_KEY=KEY, AITUTOR_BASE_URL=url)
        run = runwf(*args, env=env, cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 1
    line = run.error_line()
    assert "answered 301, a redirect to http://127.0.0.2:9/api/v1/run" in line
    assert "set --base-url to the service's real API root" in line
    assert "base_url" not in line
