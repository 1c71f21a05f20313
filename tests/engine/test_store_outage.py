"""A shared rate-limit store that fails mid-run: a SQLite file locked by another process,
a Redis server killed or paused. The limiter goes on in the process at its share of the
rate, with one warning, and goes back to the store once it answers."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from dagster_runwf import Rate
from dagster_runwf.engine.ratelimit import (
    FallbackWindowStore,
    RateLimiter,
    RedisWindowStore,
    SqliteWindowStore,
    shared_limiter,
)
from dagster_runwf.engine.ratelimit.fallback_store import UNMEASURED_SHARE

from ..conftest import wait_for
from ..outages import RedisServer, hold_lock


def reserve_many(limiter: RateLimiter, count: int) -> list[float]:
    """``count`` reserved start times (no sleeping: a fast clock is not needed to reserve)."""
    starts: list[float] = []
    while len(starts) < count:
        start, reserved = limiter.reserve()
        if reserved:
            starts.append(start)
    return starts


def max_in_window(starts: list[float], window: float) -> int:
    return max(sum(1 for s in starts if t - window < s <= t) for t in starts)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_sqlite_file_locked_by_another_process_is_replaced_by_a_share_of_the_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "limits.sqlite"
    store = FallbackWindowStore(
        SqliteWindowStore(path, "bucket", timeout_s=0.3), window_s=1.0, retry_every_s=0.1
    )
    limiter = RateLimiter(Rate(10, 1.0), store=store)
    reserve_many(limiter, 3)
    locked = hold_lock(path)
    try:
        with caplog.at_level(logging.INFO, logger="dagster_runwf"):
            during = reserve_many(limiter, 6)  # no OperationalError
            assert not store.available
            # Alone on the key before the outage: its share was the whole window.
            assert store.share == 1.0
    finally:
        locked.release()
    (warning,) = warnings_of(caplog)
    assert f"SQLite file {str(path)!r} is unavailable (OperationalError" in warning
    assert "100% of the key's rate" in warning
    assert max_in_window(during, 1.0) <= 10
    wait_for(lambda: store.available, 10, "the store to answer again")
    after = reserve_many(limiter, 1)
    assert "answers again" in caplog.text or store.share == 1.0
    # What was reserved during the outage is in the file, for the other processes.
    with store.store.transaction() as window:
        assert window.count_between(during[0] - 0.001, after[-1]) == 7
    assert len(warnings_of(caplog)) == 1


def test_the_share_during_an_outage_is_this_process_s_part_of_the_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "limits.sqlite"
    store = FallbackWindowStore(
        SqliteWindowStore(path, "bucket", timeout_s=0.3), window_s=1.0, retry_every_s=0.1
    )
    other = RateLimiter(Rate(10, 1.0), store=SqliteWindowStore(path, "bucket"))
    limiter = RateLimiter(Rate(10, 1.0), store=store)
    reserve_many(other, 6)  # another process holds 6 of the window's 10 places
    ours = reserve_many(limiter, 3)
    time.sleep(0.15)  # the share is measured ten times a second: 3 of the 9 places
    ours += reserve_many(limiter, 1)
    locked = hold_lock(path)
    try:
        with caplog.at_level(logging.WARNING, logger="dagster_runwf"):
            during = reserve_many(limiter, 4)
    finally:
        locked.release()
    assert store.share == pytest.approx(3 / 9)
    assert "33% of the key's rate" in warnings_of(caplog)[0]
    # floor(10 * 1/3) = 3 places a window for this process, its earlier ones included.
    assert max_in_window(during, 1.0) <= 3
    assert during[0] >= ours[-3] + 1.0  # the window before it holds its last 2, and it


def test_a_process_that_never_measured_its_share_takes_half(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    store = FallbackWindowStore(SqliteWindowStore(path, "b", timeout_s=0.2), window_s=1.0)
    limiter = RateLimiter(Rate(10, 1.0), store=store)
    locked = hold_lock(path)
    try:
        starts = reserve_many(limiter, 6)
    finally:
        locked.release()
    assert store.share == UNMEASURED_SHARE
    assert max_in_window(starts, 1.0) == 5


@pytest.mark.parametrize("outage", ["killed", "paused"])
def test_a_redis_server_killed_or_paused_mid_run_is_replaced_then_used_again(
    redis_server: RedisServer, outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = uuid.uuid4().hex
    store = FallbackWindowStore(
        RedisWindowStore(redis_server.url, bucket), window_s=1.0, retry_every_s=0.1
    )
    limiter = RateLimiter(Rate(10, 1.0), store=store)
    reserve_many(limiter, 3)
    with caplog.at_level(logging.INFO, logger="dagster_runwf"):
        if outage == "killed":
            redis_server.kill()
        else:
            redis_server.pause()
        during = reserve_many(limiter, 5)  # no ConnectionError, no TimeoutError
        assert not store.available
        if outage == "killed":
            redis_server.start()
        else:
            redis_server.resume()
        wait_for(lambda: store.available, 15, "Redis to answer again")
        reserve_many(limiter, 1)
    (warning,) = warnings_of(caplog)
    error = "ConnectionError" if outage == "killed" else "TimeoutError"
    assert f"127.0.0.1:{redis_server.port}/0' is unavailable ({error}" in warning
    assert "answers again" in caplog.text
    with store.store.transaction() as window:
        assert window.count_between(during[0] - 0.001, time.time() + 10) >= 6


def test_the_default_store_is_a_file_in_the_user_s_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key_id = uuid.uuid4().hex[:12]
    limiter = shared_limiter(key_id, "aitutor http://127.0.0.1:1", Rate(10, 1.0), explicit=False,
                             store="auto")  # fmt: skip
    assert isinstance(limiter.store, FallbackWindowStore)
    reserve_many(limiter, 1)
    path = tmp_path / "cache" / "dagster-runwf" / "rate-limits.sqlite"
    with sqlite3.connect(path) as db:
        (bucket,) = db.execute("SELECT bucket FROM runwf_buckets").fetchone()
    assert bucket == f"aitutor http://127.0.0.1:1 {key_id}"  # the key's fingerprint only


def test_an_unusable_cache_folder_leaves_the_default_store_in_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="dagster_runwf"):
        limiter = shared_limiter(uuid.uuid4().hex[:12], "s", Rate(10, 1.0), explicit=False,
                                 store="auto")  # fmt: skip
    assert not limiter.store.shared
    (warning,) = warnings_of(caplog)
    assert "cannot be opened" in warning and "this process only" in warning
