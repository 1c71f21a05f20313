"""A shared window store that outlives its outages: while the SQLite file or the Redis
server cannot be used, the window is kept in this process at a conservative share of the
key's rate, and the shared store takes over again once it answers.

A run never aborts because the store failed (a SQLite file locked by another process for
longer than the store's timeout, a Redis server killed, paused or cut off): the transaction
that met the failure raises :class:`StoreUnavailable`, which the limiter answers by deciding
again, this time on the window kept here, and one warning names the store and the failure.
A background thread then tries the store every ``retry_every_s``; once it answers, the start
times reserved meanwhile are written to it (so the processes sharing it see them) and it
holds the window again.

While on its own the process uses only its *share* of the key's limit: the part of the
shared window's start times that were its own when last measured (ten times a second). The
shares measured in one window add up to at most 1, so the processes that lose the store at
once keep the key's rate between them, each rounding its limit down; a process that never
measured one (it met the outage at once) takes half.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Protocol

from .memory_store import MemoryWindowStore
from .store import WindowStore, WindowView

logger = logging.getLogger(__name__)

UNMEASURED_SHARE = 0.5
"""The share of a process that has not measured its own: half the key's limit."""

MEASURE_EVERY_S = 0.1
"""How often the share is measured (one more count in a transaction)."""


class StoreUnavailable(Exception):
    """The shared store failed during this transaction, which did nothing; the window is now
    kept in this process, so decide again."""


class FailingStore(WindowStore, Protocol):
    """A shared store that says which exceptions mean it cannot be used."""

    errors: tuple[type[BaseException], ...]
    name: str


class FallbackWindowStore:
    """Keeps the window in ``store`` while it answers, and in this process while it does not.

    Args:
        store: the shared store (SQLite or Redis).
        window_s: the key's window, over which the process's share is measured.
        retry_every_s: how often the store is tried again during an outage.
    """

    shared = True

    def __init__(self, store: FailingStore, *, window_s: float, retry_every_s: float = 1.0) -> None:
        self.store = store
        self.name = store.name
        self.clock = store.clock
        self.window_s = window_s
        self.retry_every_s = retry_every_s
        self.share = 1.0
        self.measured_share = UNMEASURED_SHARE
        self.outages = 0
        self._lock = threading.Lock()
        # Our own start times and blocks, mirrored from every shared transaction, so the
        # window goes on without a gap when the store fails.
        self._local = MemoryWindowStore(store.clock)
        # What was done to the window during an outage, to write to the store when it returns.
        self._missed: list[tuple[str, float]] = []
        self._measured_at = float("-inf")
        self._catching_up = False
        self._answering = threading.Event()
        self._answering.set()

    @property
    def available(self) -> bool:
        """The shared store holds the window (no outage, or it answered again)."""
        return self._answering.is_set()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WindowView]:
        with self._lock:
            if not self._answering.is_set():
                with self._local.transaction() as local:
                    view = _LoggingView(local)
                    yield view
                self._note_missed(view.log)
                return
            try:
                with self.store.transaction() as window:
                    self._catch_up(window)
                    self._measure(window)
                    view = _LoggingView(window)
                    yield view
            except self.store.errors as exc:
                self._lose_store(exc)
                raise StoreUnavailable(str(exc)) from exc
            with self._local.transaction() as local:
                view.replay(local)

    def _catch_up(self, window: WindowView) -> None:
        """After an outage: write what this process did meanwhile to the store."""
        if not self._catching_up:
            return
        horizon = self._local.forgotten_before
        for action, value in self._missed:
            if action in ("append", "remove") and value < horizon:
                continue
            getattr(window, action)(value)
        self._missed.clear()
        self.share = 1.0
        self._catching_up = False
        logger.info(
            f"rate-limit store {self.name} answers again; the key's rate is shared through it again"
        )

    def _note_missed(self, log: list[tuple[str, float]]) -> None:
        """Keep what an outage's transaction did, without what the store forgets anyway."""
        self._missed += [(action, value) for action, value in log if action != "forget_before"]
        if len(self._missed) > 4096:
            horizon = self._local.forgotten_before
            self._missed = [
                (action, value)
                for action, value in self._missed
                if action == "block_until" or value >= horizon
            ]

    @property
    def own_share(self) -> float:
        """This process's part of the key's recent start times, when last measured (1
        before its first request): what it gets of the key's rate while other processes
        share it."""
        return self.measured_share if self._measured_at > float("-inf") else 1.0

    def _measure(self, window: WindowView) -> None:
        """Now and then: this process's part of the start times within a window of now."""
        now = self.clock()
        if now - self._measured_at < MEASURE_EVERY_S:
            return
        since, until = now - self.window_s, now + self.window_s
        with self._local.transaction() as local:
            mine = local.count_between(since, until)
        if mine:  # before its first request, a process has no share to measure
            self.measured_share = min(1.0, mine / max(mine, window.count_between(since, until)))
            self._measured_at = now

    def _lose_store(self, exc: BaseException) -> None:
        """Go on in this process, warn once for this outage, and try the store again."""
        self._answering.clear()
        self._catching_up = True
        self.share = self.measured_share
        self.outages += 1
        why = (
            "this process's share of it when last seen"
            if self._measured_at > float("-inf")
            else "half: this process had not measured its share yet"
        )
        logger.warning(
            f"rate-limit store {self.name} is unavailable ({type(exc).__name__}: {exc}); "
            f"going on without it at {self.share:.0%} of the key's rate ({why}), and back "
            "to the store as soon as it answers"
        )
        threading.Thread(target=self._retry, name="runwf-rate-store-retry", daemon=True).start()

    def _retry(self) -> None:
        while not self._answering.wait(self.retry_every_s):
            try:
                with self.store.transaction():
                    pass
            except self.store.errors:
                continue
            self._answering.set()


class _LoggingView:
    """A window view that notes what it changes, to replay it on another store."""

    def __init__(self, window: WindowView) -> None:
        self._window = window
        self.log: list[tuple[str, float]] = []

    @property
    def blocked_until(self) -> float:
        return self._window.blocked_until

    @blocked_until.setter
    def blocked_until(self, until: float) -> None:
        self.block_until(until)

    @property
    def forgotten_before(self) -> float:
        return self._window.forgotten_before

    @forgotten_before.setter
    def forgotten_before(self, horizon: float) -> None:
        self.forget_before(horizon)

    def block_until(self, until: float) -> None:
        self._window.block_until(until)
        self.log.append(("block_until", until))

    def latest(self, n: int) -> float | None:
        return self._window.latest(n)

    def count_between(self, since: float, until: float) -> int:
        return self._window.count_between(since, until)

    def append(self, start: float) -> None:
        self._window.append(start)
        self.log.append(("append", start))

    def remove(self, start: float) -> None:
        self._window.remove(start)
        self.log.append(("remove", start))

    def forget_before(self, horizon: float) -> None:
        self._window.forget_before(horizon)
        self.log.append(("forget_before", horizon))

    def replay(self, window: WindowView) -> None:
        """Do to ``window`` what was done to this view."""
        for action, value in self.log:
            getattr(window, action)(value)
