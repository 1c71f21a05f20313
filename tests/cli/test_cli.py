"""The ``runwf`` command, run as a real subprocess against the emulator over loopback HTTP.

Every run checks what a user relies on: the exit status, one ``runwf: error:`` line (never a
traceback) when it fails, and that the API key appears in neither stdout nor stderr. The
resume tests interrupt ``runwf enrich`` mid-run (Ctrl-C, SIGTERM, kill -9), rerun the same
command, and count at the emulator what was paid for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_runwf import AITutorWorkflow
from dagster_runwf.cli import main
from dagster_runwf.emulator import Emulator, EmulatorConfig
from dagster_runwf.engine.storage import TEMP_PREFIX

from ..conftest import ECHO, KEY, journaled_rows, wait_for

CLI = [sys.executable, "-m", "dagster_runwf.cli"]
RUNCHAT_KEY = "rc_test_key_9876543210"
SERVICE_VARIABLES = ("AITUTOR_API_KEY", "RUNCHAT_API_KEY", "AITUTOR_BASE_URL", "RUNCHAT_BASE_URL")


@dataclass(frozen=True)
class Run:
    """A finished ``runwf`` process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check_secret_free(self, secrets: Sequence[str]) -> None:
        for secret in {KEY, RUNCHAT_KEY, *secrets} - {""}:
            assert secret not in self.stdout and secret not in self.stderr, f"key in {self}"

    def error_line(self) -> str:
        """The one line a failed run printed on stderr."""
        lines = self.stderr.splitlines()
        assert "Traceback" not in self.stderr, self.stderr
        assert len(lines) == 1, f"expected one line on stderr, got {lines}"
        assert lines[0].startswith("runwf: error: "), lines[0]
        return lines[0]


def environment(emu: Emulator | None, **extra: str) -> dict[str, str]:
    """This process's environment without any real service settings, plus the emulator's."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.pop("RUNWF_DEBUG", None)
    if emu is not None:
        env.update(
            AITUTOR_API_KEY=KEY,
            RUNCHAT_API_KEY=RUNCHAT_KEY,
            AITUTOR_BASE_URL=emu.aitutor_url,
            RUNCHAT_BASE_URL=emu.runchat_url,
        )
    env.update(extra)
    return env


@dataclass
class Started:
    """A ``runwf`` process still running."""

    process: subprocess.Popen[str]
    args: Sequence[str]
    env: dict[str, str]


def start(args: Sequence[str], env: dict[str, str], cwd: Path) -> Started:
    process = subprocess.Popen(
        [*CLI, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Started(process, args, env)


def finish(started: Started, timeout: float = 60) -> Run:
    """Wait for the process (killed on a timeout); checks that it printed no key."""
    process = started.process
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    run = Run(tuple(started.args), process.returncode, out, err)
    run.check_secret_free([started.env.get(v, "") for v in ("AITUTOR_API_KEY", "RUNCHAT_API_KEY")])
    return run


def start_echo_enrich(emu: Emulator, folder: Path, texts: list[str], concurrency: int) -> Started:
    """``runwf enrich`` of ``texts`` (written to ``folder/in.csv``) through the echo
    workflow, unlimited, at ``concurrency``; started, not waited for."""
    pd.DataFrame({"text": texts}).to_csv(folder / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    args += ["--concurrency", str(concurrency), "--rate", "unlimited"]
    return start(args, environment(emu), folder)


def wait_for_runs(emu: Emulator, running: Started, runs: int, timeout: float) -> None:
    """Wait until the emulator ran ``runs`` runs, failing if the command ends first."""

    def ran() -> int:
        if running.process.poll() is not None:
            raise AssertionError(f"runwf ended early: {finish(running)}")
        return sum(emu.stats()["runs_by_sha256"].values())

    wait_for(lambda: ran() >= runs, timeout, f"{runs} runs")


def runwf(*args: str, env: dict[str, str], cwd: Path) -> Run:
    return finish(start(args, env, cwd))


def runwf_all(cases: Sequence[Sequence[str]], env: dict[str, str], cwd: Path) -> list[Run]:
    """Several runs at once (each is mostly interpreter start-up)."""
    started = [start(args, env, cwd) for args in cases]
    return [finish(s) for s in started]


def echo_texts(n: int) -> list[str]:
    return [f"row-{i:04d}" for i in range(n)]


def answer(text: str) -> str:
    """The rendered template, without the emulator's digest suffix."""
    return text.split(" [")[0]


def emulator_sha(text: str) -> str:
    """The emulator's key of a row's request body (as in ``runs_by_sha256``)."""
    content = AITutorWorkflow("wf_echo", ["text"]).prepare({"text": text}).request.content
    assert content is not None
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def echo(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The built-ins and the echo workflow, no rate limit, two known keys."""
    return start_emulator(
        workflows=[ECHO],
        rate_limit_enabled=False,
        keys={KEY: {"credits": 5000}, RUNCHAT_KEY: {}},
    )


# -- help ---------------------------------------------------------------------------------------

HELP_SCRIPT = """
import contextlib, io, json, sys
from dagster_runwf.cli import main
out = {}
for args in (["--help"], ["enrich", "--help"], ["schema", "--help"], ["balance", "--help"],
             ["emulator", "--help"]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            status = main(args)
        except SystemExit as exc:
            status = exc.code
    out[" ".join(args)] = [status, buffer.getvalue()]
out["dagster loaded"] = any(m == "dagster" or m.startswith("dagster.") for m in sys.modules)
print(json.dumps(out))
"""


def test_help_is_useful_and_does_not_load_dagster(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment(None),
    )
    assert done.returncode == 0, done.stderr
    helps = json.loads(done.stdout)
    assert helps.pop("dagster loaded") is False
    assert all(status == 0 for status, _ in helps.values())
    top = helps["--help"][1]
    for command in ("enrich", "schema", "balance", "emulator"):
        assert f"  {command}" in top
    enrich_help = helps["enrich --help"][1]
    for needle in (
        "AITUTOR_API_KEY",
        "RUNCHAT_BASE_URL",
        "--map VARIABLE=COLUMN",
        "resume",
        "exit status",
        "examples:",
        "runwf enrich companies.csv",
    ):
        assert needle in enrich_help, needle
    assert "RUNCHAT_API_KEY" in helps["schema --help"][1]
    assert "AITUTOR_API_KEY" in helps["balance --help"][1]


# -- enrich -------------------------------------------------------------------------------------


def test_enrich_a_csv_through_ai_tutor(echo: Emulator, tmp_path: Path) -> None:
    texts = [*echo_texts(30), "a bad row"]
    pd.DataFrame({"id": range(len(texts)), "body": texts}).to_csv(tmp_path / "in.csv", index=False)
    run = runwf(
        "enrich",
        "in.csv",
        "out/enriched.parquet",
        "--service",
        "aitutor",
        "--workflow",
        "wf_echo",
        "--map",
        "text=body",
        "--rate",
        "unlimited",
        env=environment(echo),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # not a terminal, and too short for a progress line
    output = tmp_path / "out" / "enriched.parquet"
    assert f"output    {output}" in run.stdout
    assert "succeeded 30" in run.stdout and "failed    1" in run.stdout
    assert "requests  31" in run.stdout

    table = pq.read_table(output)
    citations_type = table.schema.field("wf_citations").type
    assert pa.types.is_list(citations_type) and pa.types.is_string(citations_type.value_type)
    out = table.to_pandas()
    assert list(out["body"]) == texts and list(out["id"]) == [str(i) for i in range(31)]
    assert [answer(r) for r in out["wf_result"][:30]] == [f"echo:{t}" for t in texts[:30]]
    assert [list(c) for c in out["wf_citations"][:30]] == [
        [f"https://example.com/{t}"] for t in texts[:30]
    ]
    assert list(out["wf_status"]) == ["succeeded"] * 30 + ["failed"]
    assert out["wf_error_type"].iloc[30] == "RunFailedError"
    assert list(out["wf_citations"].iloc[30]) == []
    assert echo.stats()["duplicate_runs"] == 0


def test_enrich_a_parquet_file_keeping_some_columns(echo: Emulator, tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(12), "text": echo_texts(12), "noise": [1.5] * 12})
    frame.loc[5, "text"] = "bad"
    frame.to_parquet(tmp_path / "in.parquet")
    run = runwf(
        "enrich",
        "in.parquet",
        "out.parquet",
        "--service",
        "aitutor",
        "--workflow",
        "wf_echo",
        "--map",
        "text=text",
        "--keep",
        "n",
        "--keep",
        "text",
        "--concurrency",
        "4",
        "--fail-on-row-errors",
        env=environment(echo),
        cwd=tmp_path,
    )
    # The results are written, and the status says a row failed.
    assert run.returncode == 3
    assert "1 of 12 rows failed" in run.error_line()
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns[:2]) == ["n", "text"] and "noise" not in out.columns
    assert list(out["n"]) == list(range(12))  # types survive Parquet in, Parquet out
    assert (out["wf_status"] == "succeeded").sum() == 11


def test_enrich_through_a_runchat_flow_read_from_its_schema(echo: Emulator, tmp_path: Path) -> None:
    questions = [f"What is dataset {i}?" for i in range(5)]
    pd.DataFrame({"question": questions}).to_csv(tmp_path / "q.csv", index=False)
    run = runwf(
        "enrich",
        "q.csv",
        "answers.parquet",
        "--service",
        "runchat",
        "--workflow",
        "demo",
        "--map",
        "Query=question",  # by label; the schema knows it as query_nodeA
        "--result-output",
        "Answer",
        "--citations-output",
        "Sources",
        "--output-column",
        "sources=Sources",
        "--rate",
        "unlimited",
        env=environment(echo),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "credits   5" in run.stdout
    out = pd.read_parquet(tmp_path / "answers.parquet")
    assert list(out["question"]) == questions
    for question, result, citations, sources in zip(
        questions, out["wf_result"], out["wf_citations"], out["sources"], strict=True
    ):
        assert answer(result) == "Answer for " + json.dumps(
            {"query_nodeA": question}, separators=(",", ":")
        )
        assert len(citations) == 2 and all(c.startswith("https://sources.") for c in citations)
        # An array output lifted into its own column: a list, typed from the flow's schema.
        assert list(sources) == list(citations)
    assert list(out["wf_credits"]) == [1.0] * 5
    endpoints = echo.stats()["by_endpoint"]
    assert endpoints.get("runchat.schema") == 1
    assert sum(n for name, n in endpoints.items() if name.startswith("runchat.run")) == 5


def test_an_incremental_job_reuses_answers_of_an_earlier_file(
    echo: Emulator, tmp_path: Path
) -> None:
    pd.DataFrame({"text": echo_texts(20)}).to_csv(tmp_path / "monday.csv", index=False)
    pd.DataFrame({"text": echo_texts(25)}).to_csv(tmp_path / "tuesday.csv", index=False)
    common = ["--service", "aitutor", "--workflow", "wf_echo", "--map", "text=text"]
    common += ["--journal", "journal", "--rate", "unlimited"]
    env = environment(echo)
    first = runwf("enrich", "monday.csv", "monday.parquet", *common, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = runwf(
        "enrich", "tuesday.csv", "tuesday.parquet", *common, "--incremental", env=env, cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert "reused    20 from the journal" in second.stdout
    assert "requests  5 " in second.stdout
    assert sum(echo.stats()["runs_by_sha256"].values()) == 25
    assert pd.read_parquet(tmp_path / "tuesday.parquet")["wf_status"].eq("succeeded").all()


def test_a_run_paced_by_the_key_says_so_on_stderr(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # The emulator holds the key to 8/s: 48 rows take 6 s, long enough for a progress line.
    emu = start_emulator(workflows=[ECHO], keys={KEY: {"aitutor_rate_limit": 8}})
    pd.DataFrame({"text": echo_texts(48)}).to_csv(tmp_path / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    run = runwf(
        *args, "--rate", "8/s", "--rate-limit-store", "memory", env=environment(emu), cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == "runwf enrich: 48 rows to send at 8/s (the key's rate): about 6 s", lines
    assert len(lines) >= 2 and "rate-bound at 8/s, ETA " in lines[1], lines
    # Each row paid once. (A 429 is possible on a loaded machine: a request delayed on its way
    # can reach the server in the next request's window; the run retries it unpaid.)
    assert "(48 rows paid now, " in run.stdout
    assert sorted(emu.stats()["runs_by_sha256"].values()) == [1] * 48


def test_a_run_not_paced_by_the_key_prints_no_plan(echo: Emulator, tmp_path: Path) -> None:
    pd.DataFrame({"text": echo_texts(5)}).to_csv(tmp_path / "in.csv", index=False)
    args = ["enrich", "in.csv", "out.parquet", *ENRICH_ECHO, "--map", "text=text"]
    run = runwf(*args, "--rate", "10/s", env=environment(echo), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # 5 rows fit in one window of the key's rate: nothing to wait for


# -- schema and balance -------------------------------------------------------------------------


def test_schema_and_balance(echo: Emulator, tmp_path: Path) -> None:
    env = environment(echo)
    listing, as_json, balance = runwf_all(
        [
            ["schema", "--workflow", "demo"],
            ["schema", "--workflow", "demo", "--json"],
            ["balance"],
        ],
        env,
        tmp_path,
    )
    for run in (listing, as_json, balance):
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
    lines = listing.stdout.splitlines()
    assert lines[0] == "Runchat flow demo: Demo flow"
    assert any(line.split()[:3] == ["query_nodeA", "Query", "string"] for line in lines)
    assert any(line.split()[:3] == ["sources_out2", "Sources", "array"] for line in lines)
    schema = json.loads(as_json.stdout)
    assert [p["id"] for p in schema["inputs"]] == [
        "prompt_xyz123",
        "maxTokens_abc456",
        "query_nodeA",
    ]
    assert [p["label"] for p in schema["outputs"]] == ["Answer", "Sources"]
    assert balance.stdout == "AI Tutor credits: 5000\n"


# -- errors: one line, a non-zero status, no key ------------------------------------------------

ENRICH_ECHO = ["--service", "aitutor", "--workflow", "wf_echo"]
ENRICH_NOPE = ["--service", "aitutor", "--workflow", "wf_nope"]
RUNCHAT_DEMO = ["--service", "runchat", "--workflow", "demo"]
RUNCHAT_NOPE = ["--service", "runchat", "--workflow", "nope"]
NO_LINKS = ["--citations-output", "Links"]

ERROR_CASES: dict[str, tuple[list[str], dict[str, str], int, str]] = {
    # name: (arguments, environment changes, exit status, text of the error line)
    "missing key": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_ECHO, "--map", "text=text"],
        {"AITUTOR_API_KEY": ""},
        2,
        "AITUTOR_API_KEY is not set",
    ),
    "wrong key": (
        ["balance"],
        {"AITUTOR_API_KEY": "sk_" + "not_a_known_key"},
        1,
        "AI Tutor answered 401",
    ),
    "bad --map": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_ECHO, "--map", "text"],
        {},
        2,
        "--map 'text' is not VARIABLE=COLUMN",
    ),
    "missing column": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_ECHO, "--map", "text=body"],
        {},
        2,
        "in.csv has no column 'body'; its columns are ['text']",
    ),
    "unknown workflow": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_NOPE, "--map", "text=text"],
        {},
        1,
        "AI Tutor answered 404",
    ),
    "unknown flow": (
        ["enrich", "in.csv", "o.parquet", *RUNCHAT_NOPE, "--map", "q=text"],
        {},
        1,
        "Runchat answered 404",
    ),
    "nonexistent input": (
        ["enrich", "missing.csv", "o.parquet", *ENRICH_ECHO, "--map", "text=text"],
        {},
        2,
        "cannot read 'missing.csv': no such file",
    ),
}
"""Run as real processes, all at once against one emulator."""

QUICK_ERROR_CASES: dict[str, tuple[list[str], dict[str, str], int, str]] = {
    "missing key for schema": (
        ["schema", "--workflow", "demo"],
        {"RUNCHAT_API_KEY": ""},
        2,
        "RUNCHAT_API_KEY is not set",
    ),
    "unknown flow in schema": (["schema", "--workflow", "nope"], {}, 1, "Runchat answered 404"),
    "unknown runchat input": (
        ["enrich", "in.csv", "o.parquet", *RUNCHAT_DEMO, "--map", "Question=text"],
        {},
        2,
        "has no input 'Question'; its inputs are prompt_xyz123 (Prompt)",
    ),
    "unknown runchat output": (
        ["enrich", "in.csv", "o.parquet", *RUNCHAT_DEMO, "--map", "Query=text", *NO_LINKS],
        {},
        2,
        "--citations-output 'Links': Runchat flow 'demo' (Demo flow) has no such output",
    ),
    "runchat option for ai tutor": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_ECHO, "--map", "text=text", "--webhook"],
        {},
        2,
        "--webhook: only for Runchat flows",
    ),
    "missing --keep column": (
        ["enrich", "in.csv", "o.parquet", *ENRICH_ECHO, "--map", "text=text", "--keep", "id"],
        {},
        2,
        "--keep id: in.csv has no column 'id'",
    ),
    "unknown format": (
        ["enrich", "in.xlsx", "o.parquet", *ENRICH_ECHO, "--map", "text=text"],
        {},
        2,
        "cannot tell the format of 'in.xlsx'",
    ),
    "unreadable parquet": (
        ["enrich", "broken.parquet", "o.parquet", *ENRICH_ECHO, "--map", "text=text"],
        {},
        2,
        "cannot read 'broken.parquet' as Parquet",
    ),
    "bad rate": (
        [
            "enrich",
            "in.csv",
            "o.parquet",
            *ENRICH_ECHO,
            "--map",
            "text=text",
            "--rate",
            "9/fortnight",
        ],
        {},
        2,
        "rate '9/fortnight' is not understood",
    ),
    "output is the input": (
        ["enrich", "in.csv", "./in.csv", *ENRICH_ECHO, "--map", "text=text"],
        {},
        2,
        "OUTPUT is the INPUT file",
    ),
    "missing option": (["enrich", "in.csv", "o.parquet"], {}, 2, "--service, --workflow"),
    "plain http to a remote host": (
        ["balance", "--base-url", "http://example.com/api/v1"],
        {},
        2,
        "uses plain http to a host that is not loopback",
    ),
    "unknown command": (["enrichh"], {}, 2, "unknown command 'enrichh'"),
}
"""Errors found before any paid request, checked by calling ``main`` in this process (a
process per case would only add interpreter start-ups)."""


def error_folder(folder: Path) -> Path:
    pd.DataFrame({"text": ["a", "b"]}).to_csv(folder / "in.csv", index=False)
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    return folder


def errors_emulator() -> Emulator:
    config = {
        "include_builtins": True,
        "workflows": [ECHO],
        "rate_limit_enabled": False,
        "keys": {KEY: {}, RUNCHAT_KEY: {}},
    }
    return Emulator(EmulatorConfig.from_dict(config))


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every case of :data:`ERROR_CASES`, run at once against one emulator."""
    folder = error_folder(tmp_path_factory.mktemp("errors"))
    with errors_emulator() as emu:
        base = environment(emu)
        started = {
            name: start(args, {**base, **extra}, folder)
            for name, (args, extra, _, _) in ERROR_CASES.items()
        }
        runs = {name: finish(process) for name, process in started.items()}
        assert emu.stats()["credits_spent"] == 0  # no error case paid for a run
    # Nor wrote an output or a journal row (a case that reached the service may have left
    # the journal's claims file, made when its row was claimed).
    assert not (folder / "o.parquet").exists()
    assert not list(folder.glob("o.parquet.journal/**/*.parquet"))
    yield runs


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_with_a_non_zero_status(case: str, error_runs: dict[str, Run]) -> None:
    run = error_runs[case]
    _, _, status, text = ERROR_CASES[case]
    line = run.error_line()
    assert text in line, line
    assert run.returncode == status, (run.returncode, line)


@pytest.fixture(scope="module")
def quick_emulator() -> Iterator[Emulator]:
    with errors_emulator() as emu:
        yield emu


@pytest.mark.parametrize("case", list(QUICK_ERROR_CASES))
def test_configuration_errors_are_one_line_before_any_request(
    case: str,
    quick_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, extra, status, text = QUICK_ERROR_CASES[case]
    monkeypatch.chdir(error_folder(tmp_path))
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**environment(quick_emulator), **extra}.items():
        if name in SERVICE_VARIABLES:
            monkeypatch.setenv(name, value)
    runs_before = quick_emulator.stats()["credits_spent"]
    try:
        returncode = main(args)
    except SystemExit as exc:  # argparse's own errors
        returncode = int(exc.code or 0)
    captured = capsys.readouterr()
    run = Run(tuple(args), returncode, captured.out, captured.err)
    run.check_secret_free([])
    line = run.error_line()
    assert text in line, line
    assert run.returncode == status, (run.returncode, line)
    assert quick_emulator.stats()["credits_spent"] == runs_before
    assert not list(tmp_path.glob("o.parquet*"))


# -- interrupted, then resumed ------------------------------------------------------------------

MIN_LATENCY_S = 0.04
SLOW_ECHO = {**ECHO, "latency": {"min_s": MIN_LATENCY_S, "max_s": 2 * MIN_LATENCY_S}}
ROWS, CONCURRENCY, INTERRUPT_AFTER = 240, 8, 80
FLUSH_INTERVAL_S = 0.2
"""The journal's group-commit interval for a local folder (RowJournal's default)."""
FLUSH_WORTH = math.ceil(FLUSH_INTERVAL_S * CONCURRENCY / MIN_LATENCY_S)
"""The most rows that can finish within one flush interval at this latency."""


@pytest.mark.parametrize(
    ("how", "status"),
    [
        (signal.SIGINT, 130),
        (signal.SIGTERM, 143),
        (signal.SIGKILL, -signal.SIGKILL),
    ],
    ids=["ctrl-c", "sigterm", "kill-9"],
)
def test_an_interrupted_enrich_resumes_without_paying_twice(
    start_emulator: Callable[..., Emulator],
    tmp_path: Path,
    how: signal.Signals,
    status: int,
) -> None:
    emu = start_emulator(workflows=[SLOW_ECHO], rate_limit_enabled=False)
    texts = echo_texts(ROWS)
    running = start_echo_enrich(emu, tmp_path, texts, CONCURRENCY)
    wait_for_runs(emu, running, INTERRUPT_AFTER, 30)
    os.kill(running.process.pid, how)
    stopped = finish(running, timeout=30)
    assert stopped.returncode == status, stopped
    if how != signal.SIGKILL:
        # The last line on stderr says what happened and how to go on (progress lines, if
        # any, come before it).
        last = stopped.stderr.splitlines()[-1]
        assert "Traceback" not in stopped.stderr
        assert last.startswith("runwf: error: ")
        assert "run the same command again to resume" in last
    assert not (tmp_path / "out.parquet").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert how == signal.SIGKILL or not leftovers

    # Requests in flight at the stop still run to the end at the server, and are paid for.
    wait_for(lambda: emu.stats()["in_flight"] == 0, 30, "the emulator to go idle")
    ran_before = set(emu.stats()["runs_by_sha256"])
    assert INTERRUPT_AFTER <= len(ran_before) < ROWS, "not stopped mid-run"
    # A write cut short by a kill left only a temporary file, which nobody reads.
    journaled = journaled_rows(tmp_path / "out.parquet.journal")
    assert journaled > 0

    resumed = runwf(*running.args, env=running.env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming job, {journaled} rows journaled earlier" in resumed.stdout
    assert f"reused    {journaled} from the journal" in resumed.stdout
    assert f"requests  {ROWS - journaled} " in resumed.stdout

    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["text"]) == texts
    assert (out["wf_status"] == "succeeded").all()
    assert [answer(r) for r in out["wf_result"]] == [f"echo:{t}" for t in texts]
    assert int(out["wf_reused"].sum()) == journaled

    # At the server: every row ran; a row ran twice only if it was paid for but not yet
    # journaled when the process stopped: the rows in flight, plus at most the rows that
    # finished within the last flush interval.
    runs_by_sha = emu.stats()["runs_by_sha256"]
    assert set(runs_by_sha) == {emulator_sha(t) for t in texts}
    assert set(runs_by_sha.values()) <= {1, 2}
    twice = sum(1 for n in runs_by_sha.values() if n == 2)
    assert twice == len(ran_before) - journaled
    assert twice <= CONCURRENCY + FLUSH_WORTH, (twice, journaled)
    if how != signal.SIGKILL:
        # A clean stop journals every answered row: only the requests in flight are lost.
        assert twice <= CONCURRENCY, twice
