"""A step that outlives its run stops paying.

Under the multiprocess executor each step runs in a process the run's process started. When
the run's process is killed (``kill -9``, the OOM killer, a pod evicted), the step process
keeps running and paying, while the run shows as started forever and a new run of the same
asset pays for the same rows. :func:`unless_orphaned` watches the run's process and, once it
is gone, stops the fan-out (requests in flight are abandoned, finished rows are journaled)
and fails the step with :class:`RunProcessGone`.

A step running in the run's own process (the in-process executor, ``dagster.materialize``)
has no run process to outlive: nothing is watched.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHECK_INTERVAL_S = 0.5
"""How often a step checks that its run's process is alive."""


class RunProcessGone(Exception):
    """The process of the run that started this step is gone; the step stopped paying."""


def run_process_alive() -> bool | None:
    """Whether the run's process that started this step (by multiprocessing) is alive;
    ``None`` when this process was not started by another one's multiprocessing."""
    parent = multiprocessing.parent_process()
    return None if parent is None else parent.is_alive()


async def unless_orphaned(work: Coroutine[Any, Any, T], check_s: float = CHECK_INTERVAL_S) -> T:
    """``work``'s result; cancelled, raising :class:`RunProcessGone`, if the run's process
    dies first.

    Raises:
        RunProcessGone: the run's process died; ``work`` was cancelled (the fan-out records
            the rows it finished before it ends).
    """
    task = asyncio.ensure_future(work)
    if run_process_alive() is None:
        return await task
    while True:
        done, _ = await asyncio.wait({task}, timeout=check_s)
        if done:
            return task.result()
        if not run_process_alive():
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled():
        return task.result()  # it finished before the cancellation reached it
    raise RunProcessGone(
        "The process of the run that started this step is gone (killed?), so this step "
        "stopped sending requests: a new run of the asset would pay for the same rows. "
        "Finished rows are in the journal; the next run of this asset and partition "
        "resumes them."
    )
