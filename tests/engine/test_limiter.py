"""The rate limiter and the retry policy, on a fake clock."""

from __future__ import annotations

import itertools
import random
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dagster_runwf import ConfigError, Rate, RetryPolicy
from dagster_runwf.engine.ratelimit import (
    PruneSchedule,
    RateLimiter,
    RedisWindowStore,
    SqliteWindowStore,
    WindowStore,
    shared_limiter,
)
from dagster_runwf.services.http import RateLimitInfo


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


LimiterFactory = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def new_limiter(request: pytest.FixtureRequest, tmp_path: Path) -> LimiterFactory:
    """Makes limiters on a fake clock, each with its own window, in memory, SQLite or Redis:
    the decisions must be the same whichever store holds the window."""
    buckets = itertools.count()
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    run = uuid.uuid4().hex

    def make(rate: Rate, *, clock: FakeClock | None = None, **settings: Any) -> RateLimiter:
        clock = clock or FakeClock()
        bucket = f"{run}-key-{next(buckets)}"
        store: WindowStore
        if request.param == "memory":
            return RateLimiter(rate, clock=clock, **settings)
        if request.param == "sqlite":
            store = SqliteWindowStore(tmp_path / "limits.sqlite", bucket, clock)
        else:
            store = RedisWindowStore(redis_url, bucket, clock=clock)
        return RateLimiter(rate, store=store, **settings)

    return make


def reserve(limiter: RateLimiter) -> float:
    """Reserve a slot as the engine does, moving the fake clock to wait."""
    while True:
        start, reserved = limiter.reserve()
        if reserved:
            return start
        limiter.clock.now = start  # type: ignore[attr-defined]


def max_in_window(starts: list[float], window: float) -> int:
    return max(sum(1 for s in starts if t - window < s <= t) for t in starts)


def test_never_more_than_the_limit_in_any_window(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(10, 1.0), clock=clock, margin_s=0.01)
    starts = [reserve(limiter) for _ in range(95)]
    assert max_in_window(starts, 1.0) == 10
    # Each window is used to the full, its requests spread over its first half.
    assert starts == pytest.approx([100.0 + 1.01 * (i // 10) + 0.05 * (i % 10) for i in range(95)])


def test_learns_a_higher_limit_unless_the_rate_was_explicit(new_limiter: LimiterFactory) -> None:
    default = new_limiter(Rate(10, 1.0))
    default.observe(RateLimitInfo(limit=50, remaining=49), 100.0)
    assert default.limit == 50
    explicit = new_limiter(Rate(10, 1.0), explicit=True)
    explicit.observe(RateLimitInfo(limit=50, remaining=49), 100.0)
    assert explicit.limit == 10
    explicit.observe(RateLimitInfo(limit=5, remaining=4), 100.0)
    assert explicit.limit == 5


def test_remaining_zero_from_another_client_pauses_new_starts(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(10, 1.0), clock=clock, margin_s=0.0)
    start = reserve(limiter)  # our only request in the window
    limiter.observe(RateLimitInfo(limit=10, remaining=0), start)
    assert limiter.blocked_until == pytest.approx(start + 1.0)
    assert reserve(limiter) >= start + 1.0


def test_remaining_zero_after_our_own_full_window_does_not_pause(
    new_limiter: LimiterFactory,
) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(3, 1.0), clock=clock, margin_s=0.0)
    starts = [reserve(limiter) for _ in range(3)]
    limiter.observe(RateLimitInfo(limit=3, remaining=0), starts[-1])
    assert limiter.blocked_until == 0.0


def test_429_backs_off_exponentially_and_recovers(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(10, 1.0), clock=clock)
    pauses = [limiter.on_rate_limited(None) for _ in range(6)]
    assert pauses == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    limiter.on_success()
    assert limiter.on_rate_limited(None) == pytest.approx(0.1)
    assert limiter.on_rate_limited(7.0) == 7.0  # Retry-After wins
    blocked_until = clock.now + 7.0
    assert reserve(limiter) >= blocked_until


def test_shared_limiter_is_one_per_key_and_tightened_by_an_explicit_rate() -> None:
    a = shared_limiter("key-a", "test scope", Rate(10, 1.0), explicit=False)
    assert shared_limiter("key-a", "test scope", Rate(10, 1.0), explicit=False) is a
    assert shared_limiter("key-b", "test scope", Rate(10, 1.0), explicit=False) is not a
    assert shared_limiter("key-a", "test scope", Rate(2, 1.0), explicit=True) is a
    assert a.limit == 2


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=8.0)
    rng = random.Random(1)
    for failures, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.backoff(failures, rng) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= cap
        assert max(delays) > cap * 0.8  # spread over the whole range, not fixed
    assert policy.delay(1, retry_after=12.0) == 12.0
    assert RetryPolicy(max_retry_after_s=5).delay(1, retry_after=12.0) == 5.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"initial_backoff_s": -1}]
)
def test_bad_retry_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_slots_reserved_ahead_do_not_look_like_another_client(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter(Rate(5, 1.0), margin_s=0.0)
    starts = [reserve(limiter) for _ in range(15)]  # three windows reserved ahead
    limiter.observe(RateLimitInfo(limit=5, remaining=0), starts[4])  # a full window, all ours
    assert limiter.blocked_until == 0.0


def test_our_own_requests_that_overtook_one_do_not_look_like_another_client(
    new_limiter: LimiterFactory,
) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(50, 1.0), clock=clock, margin_s=0.0)
    starts = [reserve(limiter) for _ in range(100)]
    # The server saw the window full when request 60 arrived: requests reserved a few ms
    # after it got there first. All of them are ours.
    limiter.observe(RateLimitInfo(limit=50, remaining=0), starts[60] - 0.005)
    assert limiter.blocked_until == 0.0
    # Truly another client: the window is full while we sent only a handful.
    lonely = new_limiter(Rate(50, 1.0), clock=clock, margin_s=0.0)
    first = [reserve(lonely) for _ in range(3)]
    lonely.observe(RateLimitInfo(limit=50, remaining=0), first[-1])
    assert lonely.blocked_until > first[-1]


def test_a_slow_response_is_judged_against_the_window_it_was_sent_in(
    new_limiter: LimiterFactory,
) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(50, 1.0), clock=clock, margin_s=0.0)
    starts = [reserve(limiter) for _ in range(50)]  # one full window, all ours
    clock.now += 3.0  # its responses come back seconds later, after newer requests started
    reserve(limiter)
    limiter.observe(RateLimitInfo(limit=50, remaining=0), starts[-1])
    assert limiter.blocked_until == 0.0


def test_slots_are_not_held_more_than_a_window_ahead_so_a_learned_limit_applies_at_once(
    new_limiter: LimiterFactory,
) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(10, 1.0), clock=clock, margin_s=0.0)
    granted = [limiter.reserve() for _ in range(200)]  # 200 workers asking at once
    assert sum(ok for _, ok in granted) <= 20  # at most the next window's worth is held
    limiter.observe(RateLimitInfo(limit=50, remaining=40), 100.0)
    retry_at = max(t for t, ok in granted if not ok)
    clock.now = retry_at
    later = [reserve(limiter) for _ in range(50)]
    assert later[-1] - later[0] < 1.1  # 50 in about one window: the new limit at once


def test_a_late_request_moves_to_its_real_start(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(3, 1.0), clock=clock, margin_s=0.0)
    a, b, c = (reserve(limiter) for _ in range(3))  # 100.0, 100.167, 100.333
    d, e = reserve(limiter), reserve(limiter)  # the next window's first slots: 101.0, 101.167
    clock.now = a
    assert limiter.confirm(a) == a  # on time
    clock.now = 100.7  # b's and c's process was starved: they really start now
    assert limiter.confirm(b) == pytest.approx(100.7)
    assert limiter.confirm(c) == pytest.approx(100.7), "a, b, c: three in (99.7, 100.7]"
    clock.now = d
    assert limiter.confirm(d) == d, "b, c, d: three in (100.0, 101.0]"
    clock.now = e
    assert limiter.confirm(e) is None, "b and c moved into e's window, which d fills"
    assert reserve(limiter) == pytest.approx(101.7), "the next slot: once b and c have left"


def test_an_on_time_slot_is_given_up_when_a_late_request_filled_its_window(
    new_limiter: LimiterFactory,
) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(2, 1.0), clock=clock, margin_s=0.0)
    a, b = reserve(limiter), reserve(limiter)  # 100.0, 100.25
    c = reserve(limiter)  # 101.0: a has left the window by then
    assert limiter.confirm(b) == b
    clock.now = 100.9  # a is 0.9 s late: the server will count it in c's window
    assert limiter.confirm(a) == pytest.approx(100.9)
    clock.now = c
    assert limiter.confirm(c) is None, "b and the late a already fill (100.0, 101.0]"
    assert reserve(limiter) >= 101.25 - 1e-9, "the next slot is after b has left the window"


def reserve_cold(limiter: RateLimiter, setup_s: float) -> float:
    """Reserve and confirm a slot for a request that opens its connection first."""
    while True:
        start, reserved = limiter.reserve(setup_s)
        limiter.clock.now = start  # type: ignore[attr-defined]
        if reserved and limiter.confirm(start, setup_s) == start:
            return start


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_first_request_counts_in_every_window_it_may_reach_the_service_in(
    new_limiter: LimiterFactory, limit: int
) -> None:
    # The first request may reach the server up to 0.1 s after its start, so it is counted
    # at its start and 0.1 s later; requests on warm connections arrive at their start.
    clock = FakeClock()
    limiter = new_limiter(Rate(limit, 1.0), clock=clock, margin_s=0.0)
    warm = [reserve(limiter) for _ in range(limit - 1)]
    cold = reserve_cold(limiter, 0.1)
    later = [reserve(limiter) for _ in range(2 * limit)]
    for arrives in (cold, cold + 0.05, cold + 0.1):  # wherever it really arrives
        at_server = sorted([*warm, arrives, *later])
        assert max_in_window(at_server, 1.0) <= limit, (arrives, at_server)
    if limit > 1:
        # Without the second place the next request would have been spaced from ``cold``.
        assert later[0] >= warm[0] + 1.0 - 1e-9 and max(later[:limit]) >= cold + 1.1 - 1e-9


def test_a_cold_slot_given_up_frees_both_places(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(2, 1.0), clock=clock, margin_s=0.0)
    start, reserved = limiter.reserve(0.1)
    assert reserved
    limiter.on_rate_limited(0.5)  # a 429 blocks new starts past the slot
    assert limiter.confirm(start, 0.1) is None
    clock.now = 100.5
    assert [reserve(limiter), reserve(limiter)] == pytest.approx([100.5, 100.75]), "both free"


def test_a_late_cold_request_moves_both_places(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(2, 1.0), clock=clock, margin_s=0.0)
    start, _ = limiter.reserve(0.1)  # 100.0
    clock.now = 100.4  # the process was starved: it really starts now
    assert limiter.confirm(start, 0.1) == pytest.approx(100.4)
    nxt = reserve(limiter)
    assert nxt == pytest.approx(101.4), "both places held until 100.4 and 100.5 leave"


def test_a_slot_behind_a_429_block_is_released(new_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    limiter = new_limiter(Rate(10, 1.0), clock=clock)
    start = reserve(limiter)
    limiter.on_rate_limited(2.0)
    blocked_until = clock.now + 2.0
    assert limiter.confirm(start) is None
    assert reserve(limiter) >= blocked_until


def test_a_shared_store_deletes_forgotten_starts_now_and_then(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteWindowStore(tmp_path / "limits.sqlite", "key", clock)
    limiter = RateLimiter(Rate(10, 1.0), store=store)
    for _ in range(600):  # one start an hour: each is forgotten long before the next
        reserve(limiter)
        clock.now += 3600.0
    with sqlite3.connect(tmp_path / "limits.sqlite") as db:
        (kept,) = db.execute("SELECT COUNT(*) FROM runwf_starts").fetchone()
    assert 0 < kept <= PruneSchedule().every, "deleted in bulk every so many appends"
