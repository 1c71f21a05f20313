"""The input rows of a fan-out, handed to the workers one at a time as they ask."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

Row = Mapping[str, Any]
"""One input row: the workflow's input names mapped to their values."""

Rows = Iterable[Row] | AsyncIterable[Row]
"""The rows of a fan-out: a sync or async iterable, consumed lazily."""


class RowFeed:
    """Hands out ``(index, row)`` pairs from a sync or async iterable, one at a time.

    Rows are pulled only when a worker is free for one, so the input is never read ahead
    of the fan-out.
    """

    def __init__(self, rows: Rows) -> None:
        self._index = 0
        self._sync = iter(rows) if isinstance(rows, Iterable) else None
        self._async = aiter(rows) if self._sync is None else None  # type: ignore[arg-type]
        self._lock = asyncio.Lock()  # an async iterator must not be advanced concurrently
        self._exhausted = False

    async def next(self) -> tuple[int, Row] | None:
        """The next row and its position in the input; ``None`` once there are no more."""
        if self._exhausted:
            return None
        if self._sync is not None:
            try:
                row = next(self._sync)
            except StopIteration:
                self._exhausted = True
                return None
        else:
            assert self._async is not None
            async with self._lock:
                if self._exhausted:
                    return None
                try:
                    row = await anext(self._async)
                except StopAsyncIteration:
                    self._exhausted = True
                    return None
        index = self._index
        self._index += 1
        return index, row
