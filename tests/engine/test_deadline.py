"""The attempt deadline and the fan-out's sleeps never swallow a cancellation (a stopped
run whose worker carried on would hang: Ctrl-C on ``runwf enrich`` once did)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from dagster_runwf.engine.deadline import deadline


async def within_deadline(work: Awaitable[object]) -> str:
    async with deadline(10):
        await work
    return "carried on"


async def with_wait_for(work: Awaitable[object]) -> str:
    await asyncio.wait_for(work, 10)
    return "carried on"


async def cancelled_as_its_work_finishes(
    limit: Callable[[Awaitable[object]], Coroutine[Any, Any, str]],
) -> str:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(limit(done))
    await asyncio.sleep(0)  # the task now waits for its work
    done.set_result(None)  # the work finishes...
    task.cancel()  # ...as the run is stopped
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


async def test_a_cancellation_as_the_work_finishes_is_not_swallowed() -> None:
    assert await cancelled_as_its_work_finishes(within_deadline) == "cancelled"


async def test_asyncio_wait_for_swallowed_it_which_is_why_the_deadline_exists() -> None:
    # Documents the race the deadline avoids; Python 3.12 fixed wait_for itself.
    import sys

    outcome = await cancelled_as_its_work_finishes(with_wait_for)
    assert outcome == ("cancelled" if sys.version_info >= (3, 12) else "carried on")


async def test_the_deadline_raises_timeout_when_the_time_is_up() -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with deadline(0.01):
            await asyncio.sleep(5)


async def test_no_deadline_is_no_limit() -> None:
    async with deadline(None):
        await asyncio.sleep(0.01)
