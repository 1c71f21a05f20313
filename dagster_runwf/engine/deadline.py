"""A time limit on a block of async code that never swallows a cancellation.

``asyncio.wait_for`` before Python 3.12 can lose a cancellation that arrives while the
awaited work is finishing: it returns the result and the cancelled task carries on. A
fan-out being stopped (Ctrl-C, SIGTERM, the consumer closing it) then has a worker that
never ends, and the stop hangs. :func:`deadline` cancels the task itself when the time is
up and turns only *its own* cancellation into :class:`TimeoutError`: ``asyncio.timeout`` on
Python 3.11 and later, the same idea by hand on 3.10.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def deadline(seconds: float | None) -> AsyncIterator[None]:
    """Run the block within ``seconds`` (``None``: no limit).

    Raises:
        TimeoutError: the time ran out (the block was cancelled).
    """
    if seconds is None:
        yield
        return
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            yield
        return
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if expired:
            raise asyncio.TimeoutError from None
        raise
    finally:
        handle.cancel()
