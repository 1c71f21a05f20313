"""Time limits that hold, over real loopback HTTP: a deadline for each attempt as a whole
(an answer dripping a byte at a time is cut off), a long ``Retry-After`` said in the progress
(what the run waits for and until when), and a service that cannot be reached (a closed
port, a host name that does not resolve) stopping the run early without counting anything
as paid."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    EngineOptions,
    FanOutStopped,
    Progress,
    RateLimiter,
    RetryPolicy,
    RunStats,
    ServiceUnreachableError,
    WorkflowRun,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.errors import ConfigError
from dagster_runwf.services.rate import Rate

from ..conftest import ECHO, engine_options

WORKFLOW = AITutorWorkflow("wf_echo", ["text"])
FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.02)


def run(options: EngineOptions, rows: Any, **call: Any) -> tuple[list[Any], RunStats, Any]:
    """The fan-out to its end: its results, stats, and the error that stopped it, if any."""
    fanout = WorkflowRun(WORKFLOW, rows, options, **call)
    results: list[Any] = []

    async def drain() -> Any:
        try:
            async for result in fanout:
                results.append(result)
        except FanOutStopped as exc:
            return exc
        return None

    stopped = asyncio.run(drain())
    return sorted(results, key=lambda r: r.index), fanout.stats, stopped


# -- a deadline for each attempt --------------------------------------------------------------


def test_an_answer_dripping_slowly_is_cut_off_at_the_attempts_deadline(
    start_emulator: Callable[..., Emulator],
) -> None:
    # One byte every 0.2 s: each read gets a byte well within the read timeout, so only the
    # attempt's deadline (0.5 s) can end it; the whole answer would take ~40 s.
    emu = start_emulator(workflows=[ECHO], faults={"drip_interval_s": 0.2})
    options = engine_options(emu.aitutor_url, attempt_timeout_s=0.5, retry=FAST_RETRY)
    started = time.monotonic()
    results, stats, stopped = run(options, [{"text": "slow"}])
    took = time.monotonic() - started
    assert stopped is None
    [row] = results
    assert row.status == "failed" and row.retryable  # transient: a rerun tries it again
    assert row.error_type == "TransportError"
    assert "no complete answer within the attempt's deadline of 0.5 s" in (row.error or "")
    assert "Raise attempt_timeout_s (and the read timeout of timeout=httpx.Timeout)" in (
        row.error or ""
    )
    assert row.attempts == 2 and stats.transient_errors == 2
    assert took < 10, took  # two attempts of 0.5 s, not two answers of ~40 s
    assert emu.stats()["faults_injected"]["drip"] == 2


def test_the_attempt_deadline_defaults_to_the_read_timeout_and_is_checked() -> None:
    # The connect timeout plus the read timeout: 15 + 330 s by default.
    assert EngineOptions(api_key="k").attempt_deadline_s == 345.0
    longer = httpx.Timeout(15.0, read=600.0)
    assert EngineOptions(api_key="k", timeout=longer).attempt_deadline_s == 615.0
    assert EngineOptions(api_key="k", attempt_timeout_s=5).attempt_deadline_s == 5
    with pytest.raises(ConfigError, match="attempt_timeout_s"):
        EngineOptions(api_key="k", attempt_timeout_s=0)


# -- a long Retry-After, said in the progress --------------------------------------------------

UNTIL = re.compile(r", until (\d\d:\d\d:\d\d)$")


@pytest.mark.parametrize(
    ("retry_after", "cap", "said"),
    [
        ("2", 300.0, "waiting for the key's rate limit: Retry-After 2 s"),
        (
            "999999",
            1.5,
            "waiting for the key's rate limit: Retry-After 999999 s, capped at 1.5 s "
            "(RetryPolicy.max_retry_after_s)",
        ),
    ],
    ids=["asked", "capped"],
)
def test_progress_says_what_the_run_waits_for_and_until_when(
    start_emulator: Callable[..., Emulator], retry_after: str, cap: float, said: str
) -> None:
    emu = start_emulator(
        workflows=[ECHO],
        aitutor_rate_limit=1000,
        faults={"rate_limit_burst": 1, "retry_after": retry_after},
    )
    options = engine_options(
        emu.aitutor_url,
        limiter=RateLimiter(Rate(1000, 1.0), explicit=True),
        retry=RetryPolicy(max_retry_after_s=cap),
        progress_interval_s=0.1,
    )
    reports: list[Progress] = []
    before = dt.datetime.now()
    results, _, stopped = run(options, [{"text": "a"}], on_progress=reports.append)
    after = dt.datetime.now()
    assert stopped is None and results[0].status == "succeeded"
    waits = [p for p in reports if p.waiting]
    assert waits, [str(p) for p in reports]
    waiting = waits[0].waiting or ""
    assert waiting.startswith(said + ", until "), waiting
    match = UNTIL.search(waiting)
    assert match is not None
    wait_s = min(float(retry_after), cap)
    low = (before + dt.timedelta(seconds=wait_s - 1)).strftime("%H:%M:%S")
    high = (after + dt.timedelta(seconds=wait_s + 1)).strftime("%H:%M:%S")
    assert low <= match.group(1) <= high
    assert str(waits[0]).endswith("; " + waiting)
    # Once the wait is over, the progress no longer mentions it.
    assert not reports[-1].waiting


# -- a service that cannot be reached ----------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("base_url", "host", "reason"),
    [
        ("closed-port", "127.0.0.1", "Connect"),
        # .invalid never resolves (RFC 2606): the lookup fails, no packet leaves the host.
        ("https://nonexistent.invalid", "nonexistent.invalid", "not known"),
    ],
    ids=["closed-port", "unknown-host"],
)
def test_an_unreachable_service_stops_the_run_and_nothing_counts_as_paid(
    base_url: str, host: str, reason: str, backend: str
) -> None:
    if base_url == "closed-port":
        base_url = f"http://127.0.0.1:{closed_port()}"
    options = engine_options(base_url, retry=FAST_RETRY, concurrency=2, backend=backend)
    rows = [{"text": f"row-{i}"} for i in range(200)]
    results, stats, stopped = run(options, rows)
    assert isinstance(stopped, FanOutStopped)
    cause = stopped.cause
    assert isinstance(cause, ServiceUnreachableError)
    assert (cause.host, cause.base_url) == (host, base_url)
    assert reason in cause.reason
    assert f"could not be reached at {host} ({base_url}, from base_url)" in str(stopped)
    assert "nothing was paid" in str(stopped)
    # Stopped after the first rows, not after every row; none of them was paid or sent.
    assert stats.rows < 10
    assert stats.sent == 0 and stats.requests == 0
    assert all(r.status == "failed" and r.attempts == 0 for r in results)


def test_rows_that_could_not_connect_once_the_service_answered_are_not_paid(
    start_emulator: Callable[..., Emulator],
) -> None:
    # The service answers the first row, then goes away: the next rows fail to connect,
    # are not paid, and stay retryable (no fatal stop: the service was there).
    emu = start_emulator(workflows=[ECHO])

    async def rows() -> AsyncIterator[dict[str, str]]:
        yield {"text": "first"}
        emu.stop()
        for i in range(3):
            yield {"text": f"later-{i}"}

    options = engine_options(emu.aitutor_url, retry=FAST_RETRY, concurrency=1)
    results, stats, stopped = run(options, rows())
    assert stopped is None
    assert [r.status for r in results] == ["succeeded", "failed", "failed", "failed"]
    later = results[1:]
    assert all(r.retryable for r in later)
    assert all("could not connect to 127.0.0.1" in (r.error or "") for r in later)
    # The first attempt after the stop may meet the kept-alive connection closing (sent, so
    # counted); every attempt after that is refused before a byte is sent.
    unreached = [r for r in later if r.attempts == 0]
    assert len(unreached) >= 2
    assert stats.unreached == len(unreached)
    assert stats.sent == len(results) - len(unreached)
    assert stats.requests == sum(r.attempts for r in results)
    assert stats.as_dict()["unreached"] == len(unreached)
