"""Shared fixtures: an emulator of both services on real loopback HTTP."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from dagster_runwf import EngineOptions
from dagster_runwf.emulator import Emulator, EmulatorConfig
from dagster_runwf.emulator.server import EmulatorProcess
from dagster_runwf.engine.storage import TEMP_PREFIX

if TYPE_CHECKING:
    from .outages import RedisServer

KEY = "sk_test_key_0123456789"

ECHO = {
    "id": "wf_echo",
    "service": "aitutor",
    "variables": ["text"],
    "template": "echo:{{text}}",
    "citations": ["https://example.com/{{text}}"],
    "fail_when": "bad",
}
"""An AI Tutor workflow that echoes its ``text``, cites a URL made of it, and fails (a row
error) on any text containing "bad"."""

COSTLY = {
    "id": "costly",
    "service": "runchat",
    "inputs": [{"id": "text_n1", "label": "Text", "type": "string"}],
    "outputs": [{"id": "out_n2", "label": "Out", "type": "string", "template": "{{text_n1}}"}],
    "credits_per_run": 3,
    "latency": {"min_s": 0.01, "max_s": 0.03},
}
"""A Runchat flow whose every run costs 3 credits (for budgets): its input ``text_n1``."""

PROFILE: dict[str, Any] = {
    "id": "profile",
    "service": "runchat",
    "inputs": [{"id": "text_n1", "label": "Text", "type": "string"}],
    "outputs": [{"id": "out_n2", "label": "Out", "type": "string", "template": "p:{{text_n1}}"}],
}
"""A Runchat flow of one input and one output (the tests of a flow edited on the service)."""

CHAT: dict[str, Any] = {
    "id": "chat",
    "service": "runchat",
    "inputs": [{"id": "message_n1", "label": "Message", "type": "string"}],
    "outputs": [
        {"id": "reply_n2", "label": "Reply", "type": "string", "template": "re:{{message_n1}}"}
    ],
}
"""A Runchat flow answering each message (the tests of conversations continued per row)."""

OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(EngineOptions))


def engine_options(base_url: str | None, **changes: Any) -> EngineOptions:
    """Engine options for the emulator at ``base_url``: the test key and no rate limit,
    unless ``changes`` say otherwise."""
    return EngineOptions(**{"api_key": KEY, "base_url": base_url, "rate": "unlimited", **changes})


def split_options(
    base_url: str | None, settings: dict[str, Any]
) -> tuple[EngineOptions, dict[str, Any]]:
    """``settings`` split into the engine's options (see :func:`engine_options`) and the
    rest: the call's own arguments (journal, budget, columns, ...)."""
    options = {name: value for name, value in settings.items() if name in OPTION_NAMES}
    rest = {name: value for name, value in settings.items() if name not in OPTION_NAMES}
    return engine_options(base_url, **options), rest


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user's cache folder, where the default rate-limit store lives, in a temporary
    folder: the tests (and the ``runwf`` processes they start) never write the real one."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator with the given config fields; stopped after the test."""
    started: list[Emulator] = []

    def start(**config: Any) -> Emulator:
        emulator = Emulator(EmulatorConfig.from_dict({"include_builtins": True, **config}))
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator_process() -> Iterator[EmulatorProcess]:
    """The emulator in its own process, so its counts outlive a killed client."""
    emu = Emulator.in_subprocess(
        {"workflows": [ECHO], "rate_limit_enabled": False, "keys": {KEY: {}}}
    )
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator with the built-in workflows and no rate limit."""
    return start_emulator(rate_limit_enabled=False)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A moto S3 server on loopback with an empty bucket; yields the client and fsspec options."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    # Only the fake credentials below, and nothing that could send a request elsewhere.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="bucket")
        yield {
            "client": client,
            "options": {
                "key": "test",
                "secret": "test",
                "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
            },
        }
    finally:
        server.stop()
        quiet.setLevel(level)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server on loopback for the session (CI installs one); the tests that
    need it are skipped where there is none, unless ``RUNWF_REQUIRE_REDIS`` is set."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("RUNWF_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed, and RUNWF_REQUIRE_REDIS is set")
        pytest.skip("redis-server is not installed")
    redis = pytest.importorskip("redis")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def redis_server(redis_url: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own (``redis_url`` skips the test where there is none)."""
    from .outages import RedisServer  # it uses wait_for, below

    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def published_journal_files(folder: Path) -> list[Path]:
    """The journal files below ``folder`` readers see: not a temporary a write cut short
    (by a kill) left behind, which is never renamed into place and never read."""
    files = folder.rglob("*.parquet")
    return sorted(p for p in files if not p.name.startswith(TEMP_PREFIX))


def journaled_rows(folder: Path) -> int:
    """Distinct rows in the journal files below ``folder``: a process killed while merging
    leaves the merged file beside its originals, and readers count each row once."""
    hashes: set[str] = set()
    for path in published_journal_files(folder):
        hashes.update(pq.read_table(path, columns=["input_hash"]).column(0).to_pylist())
    return len(hashes)
