"""The index from input hash to row: the latest row for each input, in about 16 bytes a row.

The journal keeps two (see :class:`~.store.RowStore`): this job's rows, and the rows of
earlier jobs that may answer it (incremental mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class IndexedRows(Protocol):
    """What the index asks of the rows it points at (by location, see :mod:`.location`)."""

    def hash_at(self, location: int) -> str:
        """The full input hash of the row at ``location``."""
        ...

    def finished_at(self, location: int) -> int:
        """When the row at ``location`` finished, in microseconds since the epoch."""
        ...


class RowIndex:
    """Input hash -> location of the latest row for that input.

    Keys are the hash's first 64 bits, held in two sorted NumPy arrays (keys, locations:
    16 bytes a row) plus a dict of recent additions, folded into the arrays as it grows. A
    key found is confirmed against the row's full hash; a hash sharing its 64 bits with
    another row's (one chance in 2**64 a pair) is kept by full hash in a small spill dict.

    Written by one thread at a time (under the row store's lock); read without a lock: the
    sorted arrays are replaced as one tuple, before the dict they absorbed is emptied, so a
    reader (dict first, then arrays) always finds a key that is in either.

    Args:
        rows: the rows the locations point at, to confirm hashes and compare finish times.
    """

    FOLD_AT = 4096
    """Recent additions kept in the dict (at least; a quarter of the arrays' size) before
    they are folded into the sorted arrays."""

    def __init__(self, rows: IndexedRows) -> None:
        self._rows = rows
        empty_keys: np.ndarray[Any, np.dtype[np.uint64]] = np.empty(0, np.uint64)
        empty_locations: np.ndarray[Any, np.dtype[np.int64]] = np.empty(0, np.int64)
        self._sorted = (empty_keys, empty_locations)
        self._recent: dict[int, int] = {}
        self._spill: dict[str, int] = {}

    def __len__(self) -> int:
        """The number of inputs indexed."""
        return len(self._sorted[0]) + len(self._recent) + len(self._spill)

    def get(self, input_hash: str) -> int | None:
        """The location of the latest row for ``input_hash``, or ``None``."""
        location = self._find(_key(input_hash))
        if location is None or self._rows.hash_at(location) == input_hash:
            return location
        return self._spill.get(input_hash)

    def put(self, input_hash: str, location: int, finished: int) -> None:
        """Point the input at ``location``, unless a row for it that finished later is known."""
        key = _key(input_hash)
        earlier = self._find(key)
        if earlier is not None and self._rows.hash_at(earlier) != input_hash:
            # Two hashes share 64 bits: keep the newcomer by its full hash.
            earlier = self._spill.get(input_hash)
            if earlier is None or self._rows.finished_at(earlier) <= finished:
                self._spill[input_hash] = location
        elif earlier is None or self._rows.finished_at(earlier) <= finished:
            self._set(key, location)  # the latest answer wins

    def put_rows(
        self,
        hashes: Sequence[str],
        locations: Sequence[int],
        finished: np.ndarray[Any, np.dtype[np.int64]],
    ) -> None:
        """:meth:`put` each row of a table (its hashes, locations and finish times)."""
        for input_hash, location, when in zip(hashes, locations, finished.tolist(), strict=True):
            self.put(input_hash, location, when)

    def _find(self, key: int) -> int | None:
        found = self._recent.get(key)
        if found is not None:
            return found
        keys, locations = self._sorted
        at = int(keys.searchsorted(np.uint64(key)))
        if at < len(keys) and int(keys[at]) == key:
            return int(locations[at])
        return None

    def _set(self, key: int, location: int) -> None:
        if key not in self._recent:
            keys, locations = self._sorted
            at = int(keys.searchsorted(np.uint64(key)))
            if at < len(keys) and int(keys[at]) == key:
                locations[at] = location
                return
        self._recent[key] = location
        if len(self._recent) >= max(self.FOLD_AT, len(self._sorted[0]) // 4):
            self._fold()

    def _fold(self) -> None:
        recent = self._recent
        keys = np.concatenate([self._sorted[0], np.fromiter(recent.keys(), np.uint64, len(recent))])
        locations = np.concatenate(
            [self._sorted[1], np.fromiter(recent.values(), np.int64, len(recent))]
        )
        order = np.argsort(keys, kind="stable")
        self._sorted = (keys[order], locations[order])
        self._recent = {}


def _key(input_hash: str) -> int:
    # 64 bits of the hash keep the index small; a hit is confirmed against the full hash.
    return int(input_hash[:16], 16)
