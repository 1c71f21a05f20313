"""One row's requests: wait for the rate limiter's slot, send, classify the answer, and
retry transient failures with backoff until the row succeeds, fails for good, or the
fan-out stops.

A 429 is the limiter's business (it moves the key's window; 429s do not use up the row's
attempts, up to ``RetryPolicy.max_rate_limited``); a fatal answer stops the whole fan-out.
A long ``Retry-After`` is noted in the run's stats, so progress says what the run waits for
and until when. A request that could not connect was not sent: it is not counted as an
attempt, and when the first row runs out of retries that way before any request got an
answer, the service is unreachable and the fan-out stops.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ...errors import (
    FatalError,
    RateLimitedError,
    RowError,
    ServiceError,
    ServiceUnreachableError,
    TransientError,
    UnreachableError,
    UnusableAnswerError,
)
from ...services.base import PreparedRun, Workflow
from ...services.http import HttpResponse, parse_retry_after
from ...services.outcome import Outcome
from ...wording import offers, setting
from ..client import auth_headers, send
from ..options import EngineOptions
from ..ratelimit import RateLimiter
from ..results import RowResult
from ..stats import RunStats, Waiting
from .stopping import CircuitBreaker, StopSignal
from .waits import Waits

_T = TypeVar("_T")

FIRST_REQUEST_SETUP_S = 0.1
"""How much later than its slot a run's first request may reach the service: it opens the
client's first connection (and warms up the HTTP stack), which took ~25 ms on loopback where
later requests are on time within a few ms. The limiter counts it in every window from its
start to this long after (see ``RateLimiter.reserve``), so the request ``limit`` places
after it cannot share its window at the server; it costs one place of one window a run."""


@dataclass(slots=True)
class RowAttempts:
    """One row being sent: its position, its request, and the requests sent for it so far
    (``failures``: transient errors and unusable answers; ``rate_limited``: 429s;
    ``unusable``: 2xx answers it could not use)."""

    index: int
    prepared: PreparedRun
    attempts: int = 0
    failures: int = 0
    rate_limited: int = 0
    unusable: int = 0
    first_sent: float | None = None

    def latency_s(self) -> float | None:
        return None if self.first_sent is None else time.monotonic() - self.first_sent

    def result(self, outcome: Outcome) -> RowResult:
        """The row succeeded with ``outcome``."""
        return RowResult(
            self.index,
            self.prepared.input_hash,
            "succeeded",
            outcome=outcome,
            attempts=self.attempts,
            latency_s=self.latency_s(),
        )

    def failure(self, exc: ServiceError, note: str = "") -> RowResult:
        """The row failed for good with ``exc`` (``note`` says why no retry is left)."""
        return RowResult(
            self.index,
            self.prepared.input_hash,
            "failed",
            error=str(exc) + note,
            error_type=type(exc).__name__,
            attempts=self.attempts,
            latency_s=self.latency_s(),
            retryable=isinstance(exc, TransientError),
        )


class _Again(enum.Enum):
    AGAIN = "again"


AGAIN = _Again.AGAIN
"""Send the row again (after the retry's delay)."""


class RowSender:
    """Sends rows for one fan-out (shared by its workers): the limiter, the retries, and
    the classification of every answer.

    Attributes:
        waits: how long the workers waited for the limiter's slots and for answers.
    """

    def __init__(
        self,
        workflow: Workflow,
        options: EngineOptions,
        *,
        stats: RunStats,
        stop: StopSignal,
        breaker: CircuitBreaker,
    ) -> None:
        self.workflow = workflow
        self.base_url = options.base_url_for(workflow)
        self.retry = options.retry
        self.limiter: RateLimiter | None = options.limiter_for(workflow)
        self._headers = auth_headers(options.api_key)
        self._api_key = options.api_key
        self._max_response_bytes = options.max_response_bytes
        self._attempt_timeout_s = options.attempt_deadline_s
        self._base_url_setting = "base_url" if options.base_url else "the service's public URL"
        self._answered = False  # a request of this fan-out got an answer: the service is there
        self._rng = random.Random(options.seed)
        self._stats = stats
        self._stop = stop
        self._breaker = breaker
        self._setup_s = FIRST_REQUEST_SETUP_S  # a new client: no connection open yet
        # The worker at the head of this lock is the one asking the limiter for a slot; the
        # others queue behind it, in order, instead of all asking again each time a slot is
        # taken (through a shared store, 21 decisions and 225 Redis commands a request with
        # 192 rows in flight against a 50/s key, bench/distributed.py).
        self._slot_queue = asyncio.Lock()
        self.waits = Waits()

    async def send_row(self, client: httpx.AsyncClient, row: RowAttempts) -> RowResult | None:
        """Send until success, a row error, retries run out (a failed row), or a stop
        (``None``); ``row`` counts the requests sent."""
        while True:
            with self.waits.slots.waiting():
                started_at = await self._wait_for_slot()
            if started_at is None:
                return None
            response: HttpResponse | None = None
            try:
                response = await self._send(client, row)
                if self.limiter is not None:
                    await self._ask_limiter(
                        self.limiter.observe, self.workflow.rate_limit_info(response), started_at
                    )
                outcome = self.workflow.parse(response)
            except ServiceError as exc:
                verdict = await self._after_error(exc, response, row)
                if verdict is AGAIN:
                    continue
                return verdict
            if self.limiter is not None:
                self.limiter.on_success()
            return row.result(outcome)

    async def _send(self, client: httpx.AsyncClient, row: RowAttempts) -> HttpResponse:
        """One attempt, counted unless it could not connect (then nothing was sent)."""
        if row.first_sent is None:
            row.first_sent = time.monotonic()
        try:
            with self.waits.answers.waiting():
                response = await send(
                    client,
                    self.base_url,
                    row.prepared.request,
                    self._headers,
                    service=self.workflow.display_name,
                    max_bytes=self._max_response_bytes,
                    deadline_s=self._attempt_timeout_s,
                )
        except UnreachableError:
            raise
        except BaseException:
            self._count_attempt(row)
            raise
        self._count_attempt(row)
        self._answered = True
        return response

    def _count_attempt(self, row: RowAttempts) -> None:
        row.attempts += 1
        self._stats.requests += 1

    async def _after_error(
        self,
        exc: ServiceError,
        response: HttpResponse | None,
        row: RowAttempts,
    ) -> RowResult | _Again | None:
        """What a failed request means for its row: send it :data:`AGAIN`, a failed row, or
        ``None`` (the fan-out stops)."""
        if isinstance(exc, RateLimitedError):
            return await self._after_rate_limited(exc, response, row)
        if isinstance(exc, UnusableAnswerError):
            return await self._after_unusable(exc, response, row)
        if isinstance(exc, TransientError):
            self._stats.transient_errors += 1
            row.failures += 1
            if row.failures >= self.retry.max_attempts:
                if isinstance(exc, UnreachableError) and not self._answered:
                    self._stop_unreachable(exc)
                    return None
                # Say the retries ran out and that the row is not done for good.
                return self._failed(
                    row,
                    exc,
                    f" (gave up after {_plural(row.failures, 'attempt')}; a re-run tries "
                    "this row again)",
                )
            delay = self.retry.delay(
                row.failures, self._retry_after(response, "the service"), self._rng
            )
            return AGAIN if await self._stop.sleep(delay) else None
        if isinstance(exc, FatalError):
            self._stop.stop(exc, str(exc))
            return None
        if isinstance(exc, RowError):
            return self._failed(row, exc)
        raise exc

    async def _after_rate_limited(
        self,
        exc: RateLimitedError,
        response: HttpResponse | None,
        row: RowAttempts,
    ) -> RowResult | _Again | None:
        """A 429: the limiter moves the key's window (or, unlimited, the row backs off);
        the row's attempts are not used up, up to ``RetryPolicy.max_rate_limited``."""
        self._stats.rate_limited += 1
        row.rate_limited += 1
        if self.limiter is not None:
            await self._ask_limiter(
                self.limiter.on_rate_limited,
                self._retry_after(response, "the key's rate limit"),
            )
        if row.rate_limited > self.retry.max_rate_limited:
            return self._failed(
                row,
                exc,
                f" (gave up after {_plural(row.rate_limited, 'rate-limited answer')}; lower "
                f"the rate ({setting('rate')})"
                + (f" or raise {setting('max_rate_limited')}" if offers("max_rate_limited") else "")
                + ")",
            )
        if self.limiter is None and not await self._stop.sleep(
            self.retry.delay(
                row.rate_limited, self._retry_after(response, "the key's rate limit"), self._rng
            )
        ):
            return None
        return AGAIN

    async def _after_unusable(
        self,
        exc: UnusableAnswerError,
        response: HttpResponse | None,
        row: RowAttempts,
    ) -> RowResult | _Again | None:
        """A 2xx the engine cannot use: the service most likely ran and billed it, so the
        row is sent again at most ``RetryPolicy.unusable_retries`` times (within
        ``max_attempts``), then recorded as failed, not retryable: a rerun does not pay for
        it again unless asked to (``retry_failed``)."""
        self._stats.transient_errors += 1
        row.unusable += 1
        row.failures += 1
        if row.unusable > self.retry.unusable_retries or row.failures >= self.retry.max_attempts:
            return self._failed(
                row,
                exc.without(self._api_key),
                f" (gave up after {_plural(row.unusable, 'unusable answer')}, each most "
                "likely paid; a re-run does not send this row again unless told to retry "
                f"failed rows: {setting('retry_failed', True)})",
            )
        delay = self.retry.delay(
            row.failures, self._retry_after(response, "the service"), self._rng
        )
        return AGAIN if await self._stop.sleep(delay) else None

    def _failed(self, row: RowAttempts, exc: ServiceError, note: str = "") -> RowResult:
        self._breaker.note_failure(exc)
        return row.failure(exc, note)

    def _stop_unreachable(self, exc: UnreachableError) -> None:
        """The first row ran out of retries without connecting, and no request of this
        fan-out got an answer: every row would meet the same, so stop now."""
        message = (
            f"{self.workflow.display_name} could not be reached at {exc.host} "
            f"({self.base_url}, from {self._base_url_setting}): {exc.reason}. No request of "
            "this run got an answer, so nothing was paid. Check the base URL and the network"
        )
        cause = ServiceUnreachableError(
            message,
            service=self.workflow.display_name,
            host=exc.host,
            base_url=self.base_url,
            reason=exc.reason,
        )
        self._stop.stop(cause, message)

    def _retry_after(self, response: HttpResponse | None, waiting_for: str) -> float | None:
        """The service's ``Retry-After`` in seconds (capped at ``max_retry_after_s``),
        noted in the stats as what the run waits for (``waiting_for``) and until when."""
        if response is None:
            return None
        asked = parse_retry_after(response.headers.get("retry-after"), now=time.time())
        if asked is None:
            return None
        seconds = min(asked, self.retry.max_retry_after_s)
        capped = " (RetryPolicy.max_retry_after_s)" if seconds < asked else ""
        self._stats.note_wait(
            Waiting(
                f"{waiting_for}: Retry-After {asked:g} s"
                + (f", capped at {seconds:g} s{capped}" if capped else ""),
                until=time.time() + seconds,
            )
        )
        return seconds

    async def _wait_for_slot(self) -> float | None:
        """Wait for the rate limiter; the reserved start time, or ``None`` once stopping."""
        stop = self._stop
        while not stop.is_set:
            if self.limiter is None:
                return time.monotonic()
            reservation = await self._reserve_in_turn()
            if reservation is None:
                return None
            start, setup_s = reservation
            delay = start - self.limiter.clock()
            if delay > 0 and not await stop.sleep(delay):
                return None
            if stop.is_set:
                return None
            confirmed = await self._ask_limiter(self.limiter.confirm, start, setup_s)
            if confirmed is not None:
                self._setup_s = 0.0
                return confirmed
            # A 429 moved the block past our slot, or we woke too late to use it.
        return None

    async def _reserve_in_turn(self) -> tuple[float, float] | None:
        """A slot reserved at the head of this fan-out's queue of waiting workers (its start
        time and the setup time it was reserved with; the queue moves on as soon as it is
        reserved), or ``None`` once stopping.

        The next free slot more than a window away is not reserved (a limit learned
        meanwhile may free an earlier one): the head waits until it comes within a window
        and asks again, and the workers behind it wait their turn."""
        assert self.limiter is not None
        stop = self._stop
        async with self._slot_queue:
            while not stop.is_set:
                # Read at each ask: only the fan-out's first request opens a connection.
                setup_s = self._setup_s
                start, reserved = await self._ask_limiter(self.limiter.reserve, setup_s)
                if reserved:
                    return start, setup_s
                delay = start - self.limiter.clock()
                if delay > 0 and not await stop.sleep(delay):
                    return None
        return None

    async def _ask_limiter(self, decision: Callable[..., _T], *args: Any) -> _T:
        """Ask the limiter ``decision(*args)``; off the event loop when the store is shared,
        since it may wait for another process's turn and must not hold up requests about
        to be sent."""
        assert self.limiter is not None
        if self.limiter.store.shared:
            return await asyncio.to_thread(decision, *args)
        return decision(*args)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
