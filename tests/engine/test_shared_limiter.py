"""One key's rate shared by several processes through a SQLite or Redis window store."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from dagster_runwf import (
    AITutorWorkflow,
    ConfigError,
    EngineOptions,
    Rate,
    run_workflow_rows_sync,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.ratelimit import RateLimiter, SqliteWindowStore, open_window_store

from ..conftest import ECHO

SHARED_KEY = "sk_shared_between_processes"


def _reserve_slots(store_url: str, bucket: str, count: int) -> list[float]:
    limiter = RateLimiter(Rate(10, 1.0), store=open_window_store(store_url, bucket))
    starts: list[float] = []
    while len(starts) < count:
        start, reserved = limiter.reserve()
        if reserved:
            starts.append(start)
    return starts


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store shared by processes: a SQLite file, or a real Redis server."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'limits.sqlite'}"
    url: str = request.getfixturevalue("redis_url")
    return url


def _max_in_window(starts: list[float], window: float) -> int:
    return max(sum(1 for s in starts if t - window < s <= t) for t in starts)


def test_processes_reserving_from_one_store_never_exceed_the_rate(store_url: str) -> None:
    bucket = uuid.uuid4().hex
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        per_process = pool.starmap(_reserve_slots, [(store_url, bucket, 12)] * 3)
    starts = sorted(s for starts in per_process for s in starts)
    assert len(starts) == len(set(starts)) == 36
    assert _max_in_window(starts, 1.0) == 10  # full windows, never more


def _run_rows(base_url: str, prefix: str, store: str | None) -> tuple[int, int]:
    options = EngineOptions(api_key=SHARED_KEY, base_url=base_url, concurrency=8)
    if store != "default":  # the default: no rate_limit_store at all
        options = dataclasses.replace(options, rate_limit_store=store)
    results, stats = run_workflow_rows_sync(
        AITutorWorkflow("wf_echo", ["text"]), [{"text": f"{prefix}{i}"} for i in range(20)], options
    )
    return sum(r.status == "succeeded" for r in results), stats.rate_limited


@pytest.mark.parametrize("shared", ["sqlite", "redis", "default", "memory"])
def test_engine_runs_in_three_processes_keep_the_key_rate_only_with_a_shared_store(
    start_emulator: Callable[..., Emulator],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    shared: str | None,
) -> None:
    emu = start_emulator(workflows=[ECHO], aitutor_rate_limit=10)
    store: str | None = shared
    if shared == "sqlite":
        store = f"sqlite://{tmp_path / 'limits.sqlite'}"
    elif shared == "redis":
        store = request.getfixturevalue("redis_url")
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        outcomes = pool.starmap(_run_rows, [(emu.aitutor_url, p, store) for p in "abc"])
    assert [succeeded for succeeded, _ in outcomes] == [20, 20, 20]
    server = emu.stats()
    rejected = server["by_status"].get("429", 0)
    if shared != "memory":  # the default shares it through the user's cache folder
        assert rejected == 0
        assert max(server["max_requests_in_window"]["aitutor"].values()) <= 10
    else:
        # Each process alone keeps the rate, so together they triple it: the control that
        # shows the shared store is what holds the rate above.
        assert rejected > 0


def test_store_urls(tmp_path: Path) -> None:
    assert type(open_window_store(None, "b")).__name__ == "MemoryWindowStore"
    assert type(open_window_store("memory", "b")).__name__ == "MemoryWindowStore"
    auto = open_window_store("auto", "b")
    assert isinstance(auto, SqliteWindowStore)
    assert auto.path == Path(os.environ["XDG_CACHE_HOME"], "dagster-runwf", "rate-limits.sqlite")
    path = tmp_path / "nested" / "limits.sqlite"
    store = open_window_store(f"sqlite://{path}", "b")
    assert isinstance(store, SqliteWindowStore) and path.exists()
    with pytest.raises(ConfigError, match="not supported"):
        open_window_store("memcached://x", "b")
    with pytest.raises(ConfigError, match="cannot be reached") as refused:
        open_window_store("redis://:secret@127.0.0.1:1/0", "b")
    assert "secret" not in str(refused.value)
    with pytest.raises(ConfigError, match="names no file"):
        open_window_store("sqlite://", "b")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be opened"):
        open_window_store(f"sqlite://{blocker}/limits.sqlite", "b")


class CountingLimiter(RateLimiter):
    """A limiter that counts the decisions asked of it (each a transaction of its store:
    a dozen Redis commands through a Redis store)."""

    reserves = 0

    def reserve(self, setup_s: float = 0.0) -> tuple[float, bool]:
        self.reserves += 1
        return super().reserve(setup_s)


def test_rows_waiting_for_the_rate_ask_the_limiter_in_turn_not_each_time_a_slot_is_taken(
    redis_url: str, start_emulator: Callable[..., Emulator]
) -> None:
    # 30 rows in flight at once for a key of 10/s through Redis: all but the first window's
    # wait. Each asking again whenever a slot was taken, they asked 355 times (12 a row;
    # 21 decisions a request with 192 in flight in bench/distributed.py). In turn, the row at
    # the head asks when its slot comes within a window, and once more to reserve it: 52.
    emu = start_emulator(workflows=[ECHO], aitutor_rate_limit=10)
    store = open_window_store(redis_url, uuid.uuid4().hex)
    limiter = CountingLimiter(Rate(10, 1.0), explicit=True, store=store)
    options = EngineOptions(api_key=SHARED_KEY, base_url=emu.aitutor_url, limiter=limiter,
                            concurrency=30)  # fmt: skip
    rows = [{"text": f"row {i}"} for i in range(30)]
    results, _ = run_workflow_rows_sync(AITutorWorkflow("wf_echo", ["text"]), rows, options)
    assert [r.status for r in results] == ["succeeded"] * 30
    assert emu.stats()["by_status"].get("429", 0) == 0
    assert limiter.reserves <= 2 * 30, limiter.reserves
