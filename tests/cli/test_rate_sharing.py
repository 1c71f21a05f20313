"""Several ``runwf enrich`` processes on one key share its rate with no configuration.

Each test starts three real ``runwf enrich`` subprocesses, as a user would in three
terminals, on one key against the emulator's 10 requests/s limit, and counts at the server
what was answered 429.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from dagster_runwf.emulator import Emulator

from ..conftest import ECHO, KEY, wait_for
from ..outages import RedisServer, hold_lock
from .test_cli import Run, Started, environment, finish, start

ROWS = 40
"""Rows per job: three jobs of 40 rows take 12 s at the key's 10/s."""


def start_jobs(tmp_path: Path, env: dict[str, str], *extra: str, rows: int = ROWS) -> list[Started]:
    """Three ``runwf enrich`` processes at once, each on its own rows and files."""
    started = []
    for job in range(3):
        texts = [f"job{job}-row{i:03d}" for i in range(rows)]
        pd.DataFrame({"body": texts}).to_csv(tmp_path / f"in{job}.csv", index=False)
        args = ["enrich", f"in{job}.csv", f"out{job}.parquet", "--service", "aitutor",
                "--workflow", "wf_echo", "--map", "text=body", "-q", *extra]  # fmt: skip
        started.append(start(args, env, tmp_path))
    return started


def enrich_jobs(tmp_path: Path, env: dict[str, str], *extra: str) -> list[Run]:
    """Three ``runwf enrich`` processes at once, to the end."""
    return [finish(s, timeout=180) for s in start_jobs(tmp_path, env, *extra)]


def requests_seen(emu: Emulator) -> int:
    return sum(emu.stats()["by_status"].values())


def rejected_share(emu: Emulator) -> float:
    """The share of requests the emulator answered 429."""
    by_status = emu.stats()["by_status"]
    return by_status.get("429", 0) / sum(by_status.values())


@pytest.fixture
def limited(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The echo workflow behind AI Tutor's 10 requests/s limit, for one key."""
    return start_emulator(workflows=[ECHO], aitutor_rate_limit=10, keys={KEY: {"credits": 5000}})


def check_all_succeeded(runs: Sequence[Run], rows: int = ROWS) -> None:
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert f"succeeded {rows}" in run.stdout, run.stdout


def check_one_warning(runs: Sequence[Run], store: str, error: str) -> None:
    """Each job warned once, naming the store and the failure, and went back to it."""
    for run in runs:
        warnings = [line for line in run.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1, run.stderr
        assert warnings[0].startswith(f"runwf: warning: rate-limit store {store}"), warnings
        assert f"is unavailable ({error}" in warnings[0]
        assert "Traceback" not in run.stderr
        assert f"runwf: rate-limit store {store}" in run.stderr  # ... answers again


def test_three_cli_jobs_on_one_key_share_its_rate_with_no_configuration(
    limited: Emulator, tmp_path: Path
) -> None:
    env = environment(limited, XDG_CACHE_HOME=str(tmp_path / "cache"))
    runs = enrich_jobs(tmp_path, env)
    check_all_succeeded(runs)
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs on one key: {share:.1%}")
    assert share < 0.01


OUTAGE_ROWS = 80
"""Rows per job when the store fails mid-run: 24 s at the key's 10/s."""


def test_a_locked_default_store_slows_the_jobs_down_but_does_not_stop_them(
    limited: Emulator, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = environment(limited, XDG_CACHE_HOME=str(cache))
    started = start_jobs(tmp_path, env, rows=OUTAGE_ROWS)
    wait_for(lambda: requests_seen(limited) >= 30, 60, "the jobs to be under way")
    # Longer than the store's 5 s timeout: every job's next decision fails.
    locked = hold_lock(cache / "dagster-runwf" / "rate-limits.sqlite")
    wait_for(lambda: requests_seen(limited) >= 70, 60, "the jobs to go on without it")
    locked.release()
    runs = [finish(s, timeout=180) for s in started]
    check_all_succeeded(runs, OUTAGE_ROWS)
    check_one_warning(runs, "SQLite file", "OperationalError: database is locked")
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs, the default store locked mid-run: {share:.1%}")
    assert share < 0.05


@pytest.mark.parametrize("outage", ["killed", "paused"])
def test_a_redis_store_killed_or_paused_mid_run_is_used_again_once_back(
    limited: Emulator, tmp_path: Path, redis_server: RedisServer, outage: str
) -> None:
    env = environment(limited, XDG_CACHE_HOME=str(tmp_path / "cache"))
    started = start_jobs(tmp_path, env, "--rate-limit-store", redis_server.url, rows=OUTAGE_ROWS)
    wait_for(lambda: requests_seen(limited) >= 30, 60, "the jobs to be under way")
    if outage == "killed":
        redis_server.kill()
    else:
        redis_server.pause()
    wait_for(lambda: requests_seen(limited) >= 80, 60, "the jobs to go on without it")
    if outage == "killed":
        redis_server.start()
    else:
        redis_server.resume()
    runs = [finish(s, timeout=180) for s in started]
    check_all_succeeded(runs, OUTAGE_ROWS)
    error = "ConnectionError" if outage == "killed" else "TimeoutError"
    check_one_warning(runs, "Redis at", error)
    share = rejected_share(limited)
    print(f"429 share with 3 CLI jobs, Redis {outage} mid-run: {share:.1%}")
    assert share < 0.05


NGINX_CONF = """
worker_processes 1;
{user}
error_log {folder}/error.log warn;
pid {folder}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    # The status of each request only: nothing of the request (the key is a header).
    log_format status_only "$status";
    access_log {folder}/statuses.log status_only;
    # The key's rate, counted per Authorization header. A leaky bucket (rate=10r/s,
    # burst=10) rather than the services' sliding window (10 per second): the bucket drains
    # 10 requests a second and rejects a request that would put more than 10 in excess of
    # that. It admits everything a sliding window of 10 per second admits — any span of k
    # seconds holds at most 10 (k + 1) such requests, and the bucket drains 10 k of them
    # meanwhile — so a 429 from it is a real overshoot of the key's rate, found by a limiter
    # that shares no code with the emulator.
    limit_req_zone $http_authorization zone=key:1m rate=10r/s;
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            limit_req zone=key burst=10 nodelay;
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@pytest.fixture
def nginx(start_emulator: Callable[..., Emulator], tmp_path: Path) -> Iterator[str]:
    """nginx on loopback, limiting one key to 10 requests/s in front of an emulator that
    limits nothing; yields its AI Tutor URL. Skipped where nginx is not installed."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        pytest.skip("nginx is not installed")
    emulator = start_emulator(
        workflows=[ECHO], rate_limit_enabled=False, keys={KEY: {"credits": 5000}}
    )
    folder = tmp_path / "nginx"
    folder.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = folder / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(folder=folder, port=port, upstream=emulator.base_url, user=user)
    )
    server = subprocess.Popen(
        [binary, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert server.poll() is None, (folder / "error.log").read_text()
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, 15, "nginx to listen")
        yield emulator.aitutor_url.replace(emulator.base_url, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def nginx_statuses(tmp_path: Path) -> list[str]:
    return (tmp_path / "nginx" / "statuses.log").read_text().split()


def test_three_cli_jobs_keep_the_key_rate_by_an_independent_limiter(
    nginx: str, tmp_path: Path
) -> None:
    env = environment(None, AITUTOR_API_KEY=KEY, AITUTOR_BASE_URL=nginx,
                      XDG_CACHE_HOME=str(tmp_path / "cache"))  # fmt: skip
    runs = enrich_jobs(tmp_path, env)
    check_all_succeeded(runs)
    statuses = nginx_statuses(tmp_path)
    share = statuses.count("429") / len(statuses)
    print(f"429 share with 3 CLI jobs on one key, nginx limit_req: {share:.1%}")
    assert share < 0.01


def test_nginx_rejects_three_jobs_that_do_not_share_the_key_rate(
    nginx: str, tmp_path: Path
) -> None:
    """The control: with each job keeping the rate alone, nginx sees the overshoot."""
    env = environment(None, AITUTOR_API_KEY=KEY, AITUTOR_BASE_URL=nginx)
    check_all_succeeded(enrich_jobs(tmp_path, env, "--rate-limit-store", "memory"))
    statuses = nginx_statuses(tmp_path)
    share = statuses.count("429") / len(statuses)
    print(f"429 share, 3 CLI jobs each keeping the rate alone, nginx: {share:.1%}")
    assert statuses.count("429") > 0


def test_an_unsupported_store_is_a_usage_error_before_any_request(
    limited: Emulator, tmp_path: Path
) -> None:
    pd.DataFrame({"body": ["a"]}).to_csv(tmp_path / "in.csv", index=False)
    run = finish(start(["enrich", "in.csv", "out.parquet", "--service", "aitutor", "--workflow",
                        "wf_echo", "--map", "text=body", "--rate-limit-store", "memcached://x"],
                       environment(limited), tmp_path))  # fmt: skip
    assert run.returncode == 2
    assert "rate-limit store 'memcached://x' is not supported" in run.error_line()
    assert requests_seen(limited) == 0
