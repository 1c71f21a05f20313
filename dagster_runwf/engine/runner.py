"""The fan-out: rows in, workflow runs out, as many in flight as the key's rate allows.

A fixed set of worker tasks (one per concurrency slot) pulls rows lazily from the input and
puts finished results on a small queue that the caller drains, so memory stays flat however
many rows there are and a slow consumer slows the fan-out instead of filling memory.

For each row a worker: builds the request (a bad row fails here, unsent); answers it from an
identical row of this call or from the journal when it can; otherwise asks the budget, waits
for the rate limiter, sends, and retries transient failures with backoff. A fatal answer (or
the budget running out) stops the fan-out: no request starts after it, requests in flight
finish and are reported, then the iteration raises
:class:`~dagster_runwf.errors.FanOutStopped`.

With a journal, a recorder task writes finished rows in batches (group commit, at most one
write per ``journal.flush_interval_s``) and reports them only once written, so workers never
wait on the disk or the object store and a crash loses at most the rows not yet reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx

from ..errors import (
    BudgetReachedError,
    ConfigError,
    FanOutStopped,
    FatalError,
    JournalError,
    RateLimitedError,
    RowError,
    RowInputError,
    ServiceError,
    TransientError,
)
from ..services.base import PreparedRun, Workflow
from ..services.http import HttpResponse, parse_retry_after
from ..services.rate import Rate
from .budget import Budget, BudgetGate
from .client import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    HttpBackend,
    auth_headers,
    check_base_url,
    make_client,
    send,
)
from .ratelimit import RateLimiter, shared_limiter
from .results import Journal, RowResult
from .retry import RetryPolicy
from .stats import Progress, RunStats

Row = Mapping[str, Any]
RateSetting = Rate | str | Literal["unlimited"] | None

_DONE = object()
_T = TypeVar("_T")


def key_fingerprint(api_key: str) -> str:
    """A short, one-way id of an API key: safe to log, enough to tell keys apart."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


class WorkflowRun:
    """One fan-out of rows through a workflow; iterate it (once) to get the results.

    ``async for result in WorkflowRun(...)`` yields a :class:`RowResult` per input row as rows
    finish (not in input order: use ``result.index``). :attr:`stats` is updated live and is
    final once the iteration ends. To stop early, close the iterator
    (``contextlib.aclosing``): that stops the workers and the HTTP client.

    Args:
        workflow: the workflow to run, e.g. ``AITutorWorkflow("wf_abc123", ["story"])``.
        rows: mappings of input name to value, consumed lazily (sync or async iterable).
        api_key: the service's API key; sent only over https or to loopback.
        base_url: the service's API root; defaults to the service's public URL.
        rate: the key's rate, e.g. ``"10/s"``; ``None`` for the service's documented limit
            (then ``x-ratelimit-limit`` may adjust it); ``"unlimited"`` for no limiter.
        concurrency: rows in flight at once; defaults to the workflow's service default.
        retry: the retry policy for transient errors.
        backend: ``"aiohttp"`` (httpx over aiohttp: the default, several times faster at
            high concurrency, see ``bench/``) or ``"httpx"`` (httpx's own pool); ignored
            when ``transport`` is given.
        transport: an ``httpx.AsyncBaseTransport`` to use instead.
        timeout: httpx timeouts; the default allows 300-second runs.
        journal: where finished rows are recorded and looked up (see :class:`RowJournal`);
            a row is reported only once it is recorded.
        budget: a cap on paid runs / credits for the job (earlier attempts recorded in the
            journal count too); reaching it stops the fan-out cleanly.
        on_progress: called with a :class:`Progress` every ``progress_interval_s`` and at the
            end.
        progress_interval_s: seconds between progress reports.
        max_consecutive_failures: stop after this many rows in a row failed at the service
            (a circuit breaker, so a broken workflow does not burn credits); ``None`` = never.
        dedup_cache_size: finished results kept (most recent first) to answer identical rows
            later in the call, bounded so memory stays flat; identical rows in flight at once
            always share one request, and the journal answers older duplicates.
        rate_limit_store: where the key's rate-limit window is kept: ``None`` for this
            process (every run of the key in the process shares it), or
            ``"sqlite:///path/limits.sqlite"`` to share it with every process of the host
            (chunk steps under Dagster's multiprocess executor, a backfill's runs).
        limiter: a :class:`RateLimiter` to use instead of the shared one of this key.
        max_response_bytes: the largest answer read; a larger one fails its row with a
            :class:`ResponseTooLargeError` instead of filling memory.
        first_row: the position of the first row in the whole table when these rows are a
            part of it (a chunk), so that messages name the table's row.
        seed: seed for the retry jitter (for reproducible tests).
    """

    def __init__(
        self,
        workflow: Workflow,
        rows: Iterable[Row] | AsyncIterable[Row],
        *,
        api_key: str,
        base_url: str | None = None,
        rate: RateSetting = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        backend: HttpBackend = "aiohttp",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        journal: Journal | None = None,
        budget: Budget | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = 5.0,
        max_consecutive_failures: int | None = 25,
        dedup_cache_size: int = 10_000,
        rate_limit_store: str | None = None,
        limiter: RateLimiter | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        first_row: int = 0,
        seed: int | None = None,
    ) -> None:
        if not isinstance(workflow, Workflow):
            raise ConfigError(f"workflow must be a Workflow, got {type(workflow).__name__}")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigError(
                f"api_key for {workflow.display_name} is empty; set it (e.g. from an "
                "environment variable) to the service's secret key"
            )
        self.workflow = workflow
        self.base_url = check_base_url(base_url or workflow.default_base_url)
        self.concurrency = (
            _DEFAULT_CONCURRENCY.get(workflow.service, 16) if concurrency is None else concurrency
        )
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if max_consecutive_failures is not None and max_consecutive_failures < 1:
            raise ConfigError("max_consecutive_failures must be >= 1 or None")
        self.retry = retry or RetryPolicy()
        self.limiter = (
            limiter if limiter is not None else self._limiter_for(api_key, rate, rate_limit_store)
        )
        self._headers = auth_headers(api_key)
        self._rows = rows
        self._total = len(rows) if isinstance(rows, Sized) else None
        self._backend = backend
        self._transport = transport
        self._timeout = timeout
        self._journal = journal
        if budget is not None and budget.max_credits is not None and not workflow.reports_credits:
            raise ConfigError(
                f"{workflow.display_name} does not report what a run costs, so a credit budget "
                "cannot be kept; cap its paid runs with Budget(max_runs=...) instead"
            )
        self._budget = budget
        self._gate: BudgetGate | None = None
        self._unrecorded: list[RowResult] = []
        # Finished rows not yet in the journal, by input hash, so duplicates still match.
        self._awaiting_record: dict[str, RowResult] = {}
        self._on_progress = on_progress
        self._progress_interval_s = progress_interval_s
        self._max_consecutive_failures = max_consecutive_failures
        self._dedup_cache_size = dedup_cache_size
        self._rng = random.Random(seed)
        self._first_row = first_row
        self._max_response_bytes = max_response_bytes
        self.stats = RunStats()
        self._started = False
        self._in_flight = 0
        self._consecutive_failures = 0
        self._last_failure: ServiceError | None = None
        self._stop_cause: ServiceError | None = None
        self._stop_message: str | None = None
        self._crash: BaseException | None = None
        self._pending: dict[str, asyncio.Future[RowResult | None]] = {}
        self._cache: OrderedDict[str, RowResult] = OrderedDict()

    def __repr__(self) -> str:  # never the key
        return f"WorkflowRun({self.workflow!r}, base_url={self.base_url!r})"

    def _limiter_for(
        self, api_key: str, rate: RateSetting, store: str | None
    ) -> RateLimiter | None:
        if isinstance(rate, str) and rate.strip().lower() == "unlimited":
            return None
        explicit = rate is not None
        parsed = Rate.parse(rate) if rate is not None else self.workflow.default_rate
        scope = f"{self.workflow.service} {self.base_url}"
        return shared_limiter(
            key_fingerprint(api_key), scope, parsed, explicit=explicit, store=store
        )

    # -- iteration --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncGenerator[RowResult, None]:
        if self._started:
            raise RuntimeError("a WorkflowRun can be iterated only once")
        self._started = True
        return self._results()

    async def _results(self) -> AsyncGenerator[RowResult, None]:
        started = time.monotonic()
        self._stop_event = asyncio.Event()
        self._setup_s = _FIRST_REQUEST_SETUP_S  # a new client: no connection open yet
        self._row_source = _RowSource(self._rows)
        self._gate = self._open_budget()
        out: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency * 4)
        self._recorded = asyncio.Event()
        self._workers_done = False
        async with make_client(
            self.concurrency,
            timeout=self._timeout,
            backend=self._backend,
            transport=self._transport,
        ) as client:
            workers = [
                asyncio.create_task(self._worker(client, out)) for _ in range(self.concurrency)
            ]
            recorder = asyncio.create_task(self._record_batches(out))
            closer = asyncio.create_task(self._close_when_done(workers, recorder, out))
            reporter = asyncio.create_task(self._report_progress(started))
            try:
                while True:
                    item = await out.get()
                    if item is _DONE:
                        break
                    self._count(item)
                    yield item
            finally:
                self._stop_event.set()
                for task in (*workers, recorder, closer, reporter):
                    task.cancel()
                await asyncio.gather(*workers, recorder, closer, reporter, return_exceptions=True)
                await self._record_leftovers()
                self.stats.elapsed_s = time.monotonic() - started
                self._emit_progress(started)
        if self._crash is not None:
            raise self._crash
        if self._stop_cause is not None:
            left = None if self._total is None else self._total - self.stats.rows
            if isinstance(self._stop_cause, BudgetReachedError):
                self._stop_cause.rows_left = left
            raise FanOutStopped(
                f"{self._stop_message}\nStopped after {self.stats.rows} rows finished "
                f"({self.stats.succeeded} succeeded, {self.stats.failed} failed)"
                + ("" if left is None else f"; {left} rows are not done yet")
                + ". No further request was sent. Re-run to continue: finished rows are kept.",
                cause=self._stop_cause,
                finished=self.stats.rows,
            )

    def _open_budget(self) -> BudgetGate | None:
        if self._budget is None:
            return None
        runs, credits = (0, 0.0) if self._journal is None else self._journal.spent()
        return BudgetGate(self._budget, runs_spent=runs, credits_spent=credits)

    async def _close_when_done(
        self,
        workers: list[asyncio.Task[None]],
        recorder: asyncio.Task[None],
        out: asyncio.Queue[Any],
    ) -> None:
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers_done = True
        self._recorded.set()
        await asyncio.gather(recorder, return_exceptions=True)
        await out.put(_DONE)

    async def _worker(self, client: httpx.AsyncClient, out: asyncio.Queue[Any]) -> None:
        try:
            while not self._stop_event.is_set():
                item = await self._row_source.next()
                if item is None:
                    return
                index, row = item
                self._in_flight += 1
                try:
                    result = await self._process(client, index, row)
                finally:
                    self._in_flight -= 1
                if result is None:
                    continue
                if result.source == "run":
                    self._trip_breaker(result)
                if self._needs_record(result):
                    await self._submit(result)
                else:
                    await out.put(result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, or the input iterable failed: stop, re-raise
            self._crash_with(exc)

    def _crash_with(self, exc: BaseException) -> None:
        if self._crash is None:
            self._crash = exc
        self._stop_event.set()
        if self._gate is not None:
            self._gate.close()

    # -- the journal ------------------------------------------------------------------------

    def _needs_record(self, result: RowResult) -> bool:
        """Rows finished by a request of this call, except those a later run should retry."""
        return self._journal is not None and result.source == "run" and not result.retryable

    async def _submit(self, result: RowResult) -> None:
        self._unrecorded.append(result)
        if result.input_hash is not None:
            self._awaiting_record[result.input_hash] = result
        self._recorded.set()
        # Back-pressure: a journal slower than the fan-out must not fill memory.
        while len(self._unrecorded) > _MAX_UNRECORDED and self._crash is None:
            await asyncio.sleep(0.01)

    async def _record_batches(self, out: asyncio.Queue[Any]) -> None:
        """Write finished rows in batches, then report them (group commit)."""
        assert self._journal is not None or not self._unrecorded
        journal = self._journal
        last_write = -float("inf")
        while True:
            await self._recorded.wait()
            self._recorded.clear()
            if journal is not None and self._unrecorded:
                pause = last_write + journal.flush_interval_s - time.monotonic()
                if pause > 0 and not self._workers_done:
                    await asyncio.sleep(pause)
                batch, self._unrecorded = self._unrecorded, []
                last_write = time.monotonic()
                try:
                    await asyncio.to_thread(journal.record, batch)
                except Exception as exc:
                    self._crash_with(_journal_failed(journal, batch, exc))
                for result in batch:
                    if result.input_hash is not None:
                        self._awaiting_record.pop(result.input_hash, None)
                # Reported even when the write failed: the rows are paid for.
                for result in batch:
                    await out.put(result)
                if self._unrecorded:
                    self._recorded.set()
            if self._workers_done and not self._unrecorded:
                return

    async def _record_leftovers(self) -> None:
        """The consumer stopped early: still record what was paid for."""
        if self._journal is None or not self._unrecorded:
            return
        batch, self._unrecorded = self._unrecorded, []
        try:
            await asyncio.to_thread(self._journal.record, batch)
        except Exception as exc:
            if self._crash is None:
                self._crash = _journal_failed(self._journal, batch, exc)

    # -- one row ----------------------------------------------------------------------------

    async def _process(self, client: httpx.AsyncClient, index: int, row: Row) -> RowResult | None:
        try:
            prepared = self.workflow.prepare(row)
        except RowInputError as exc:
            return RowResult(
                index,
                None,
                "failed",
                error=f"row {self._first_row + index}: {exc}",
                error_type=type(exc).__name__,
                source="none",
            )
        key = prepared.input_hash
        cached = self._cache.get(key) or self._awaiting_record.get(key)
        if cached is not None:
            return cached.for_row(index, "duplicate")
        pending = self._pending.get(key)
        if pending is not None:
            shared = await pending
            return None if shared is None else shared.for_row(index, "duplicate")
        if self._journal is not None:
            earlier = self._journal.lookup(key)
            if earlier is not None:
                reused = earlier.for_row(index, "journal")
                self._remember(key, reused)
                return reused
        future: asyncio.Future[RowResult | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        result: RowResult | None = None
        try:
            result = await self._send_row(client, index, prepared)
        finally:
            del self._pending[key]
            future.set_result(result)
        if result is not None and not result.retryable:
            self._remember(key, result)
        return result

    def _remember(self, key: str, result: RowResult) -> None:
        if self._dedup_cache_size <= 0:
            return
        self._cache[key] = result
        if len(self._cache) > self._dedup_cache_size:
            self._cache.popitem(last=False)

    async def _send_row(
        self, client: httpx.AsyncClient, index: int, prepared: PreparedRun
    ) -> RowResult | None:
        """Send (within the budget) until success, a row error, retries run out, or a stop."""
        gate = self._gate
        if gate is None:
            return await self._attempts(client, index, prepared, _Tally())
        if not await gate.acquire():
            self._stop_for_budget(gate)
            return None
        tally = _Tally()
        result: RowResult | None = None
        try:
            result = await self._attempts(client, index, prepared, tally)
            return result
        finally:
            cost = result.outcome.credits if result and result.outcome else None
            gate.release(cost, sent=tally.attempts > 0)

    async def _attempts(
        self, client: httpx.AsyncClient, index: int, prepared: PreparedRun, tally: _Tally
    ) -> RowResult | None:
        failures = rate_limited = 0

        def failed(exc: ServiceError, note: str = "") -> RowResult:
            self._last_failure = exc
            return RowResult(
                index,
                prepared.input_hash,
                "failed",
                error=str(exc) + note,
                error_type=type(exc).__name__,
                attempts=tally.attempts,
                latency_s=tally.latency_s(),
                retryable=isinstance(exc, TransientError),
            )

        while True:
            started_at = await self._wait_for_slot()
            if started_at is None:
                return None
            tally.attempts += 1
            self.stats.requests += 1
            if tally.first_sent is None:
                tally.first_sent = time.monotonic()
            response: HttpResponse | None = None
            try:
                response = await send(
                    client,
                    self.base_url,
                    prepared.request,
                    self._headers,
                    service=self.workflow.display_name,
                    max_bytes=self._max_response_bytes,
                )
                if self.limiter is not None:
                    await self._decide(
                        self.limiter.observe, self.workflow.rate_limit_info(response), started_at
                    )
                outcome = self.workflow.parse(response)
            except RateLimitedError as exc:
                self.stats.rate_limited += 1
                rate_limited += 1
                if self.limiter is not None:
                    await self._decide(self.limiter.on_rate_limited, self._retry_after(response))
                if rate_limited > self.retry.max_rate_limited:
                    return failed(
                        exc,
                        f" (gave up after {_plural(rate_limited, 'rate-limited answer')}; lower "
                        "the rate or raise RetryPolicy.max_rate_limited)",
                    )
                if self.limiter is None and not await self._sleep(
                    self.retry.delay(rate_limited, self._retry_after(response), self._rng)
                ):
                    return None
                continue
            except TransientError as exc:
                self.stats.transient_errors += 1
                failures += 1
                if failures >= self.retry.max_attempts:
                    # Say the retries ran out and that the row is not done for good.
                    return failed(
                        exc,
                        f" (gave up after {_plural(failures, 'attempt')}; a re-run tries this "
                        "row again)",
                    )
                delay = self.retry.delay(failures, self._retry_after(response), self._rng)
                if not await self._sleep(delay):
                    return None
                continue
            except FatalError as exc:
                self._stop(exc, str(exc))
                return None
            except RowError as exc:
                return failed(exc)
            if self.limiter is not None:
                self.limiter.on_success()
            return RowResult(
                index,
                prepared.input_hash,
                "succeeded",
                outcome=outcome,
                attempts=tally.attempts,
                latency_s=tally.latency_s(),
            )

    def _retry_after(self, response: HttpResponse | None) -> float | None:
        if response is None:
            return None
        seconds = parse_retry_after(response.headers.get("retry-after"), now=time.time())
        return None if seconds is None else min(seconds, self.retry.max_retry_after_s)

    async def _wait_for_slot(self) -> float | None:
        """Wait for the rate limiter; the reserved start time, or ``None`` once stopping."""
        while not self._stop_event.is_set():
            if self.limiter is None:
                return time.monotonic()
            setup_s = self._setup_s
            start, reserved = await self._decide(self.limiter.reserve, setup_s)
            delay = start - self.limiter.clock()
            if delay > 0 and not await self._sleep(delay):
                return None
            if self._stop_event.is_set():
                return None
            if reserved:
                confirmed = await self._decide(self.limiter.confirm, start, setup_s)
                if confirmed is not None:
                    self._setup_s = 0.0
                    return confirmed
            # A 429 moved the block past our slot, or we woke too late to use it.
        return None

    async def _decide(self, decision: Callable[..., _T], *args: Any) -> _T:
        """Run a limiter decision; off the event loop when the store is shared, since it may
        wait for another process's turn and must not hold up requests about to be sent."""
        assert self.limiter is not None
        if self.limiter.store.shared:
            return await asyncio.to_thread(decision, *args)
        return decision(*args)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a stop; ``True`` if the full time passed."""
        if seconds <= 0:
            return not self._stop_event.is_set()
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    # -- bookkeeping ------------------------------------------------------------------------

    def _count(self, result: RowResult) -> None:
        stats = self.stats
        stats.rows += 1
        if result.status == "succeeded":
            stats.succeeded += 1
        else:
            stats.failed += 1
        if result.source == "journal":
            stats.reused += 1
        elif result.source == "duplicate":
            stats.deduplicated += 1
        elif result.source == "none":
            stats.invalid += 1
        else:
            stats.sent += 1
            if result.attempts > 1:
                stats.retried += 1
            if result.latency_s is not None:
                stats.latency.add(result.latency_s)
            if result.outcome is not None:
                stats.add_credits(result.outcome.credits)

    def _trip_breaker(self, result: RowResult) -> None:
        if result.status == "succeeded":
            self._consecutive_failures = 0
            return
        self._consecutive_failures += 1
        limit = self._max_consecutive_failures
        if limit is not None and self._consecutive_failures >= limit and self._last_failure:
            self._stop(
                self._last_failure,
                f"{self._consecutive_failures} rows in a row failed at "
                f"{self.workflow.display_name} (the last: {self._last_failure}); stopped so "
                "as not to pay for more failing runs. Check the workflow and its inputs, or "
                "raise max_consecutive_failures.",
            )

    def _stop(self, cause: ServiceError, message: str) -> None:
        if self._stop_cause is None:
            self._stop_cause = cause
            self._stop_message = message
            self.stats.stopped_by = message
        self._stop_event.set()
        if self._gate is not None:
            self._gate.close()

    def _stop_for_budget(self, gate: BudgetGate) -> None:
        if self._stop_event.is_set():
            return
        budget = gate.budget
        caps = [
            f"{name}={value:g}"
            for name, value in (("max_runs", budget.max_runs), ("max_credits", budget.max_credits))
            if value is not None
        ]
        spent = f"{gate.runs_spent} runs"
        if self.workflow.reports_credits:
            spent += f" and {gate.credits_spent:g} credits"
        message = (
            f"The budget ({', '.join(caps)}) is reached: this job has paid for {spent}, "
            "earlier attempts included. Raise the budget and re-run with the same journal "
            "to continue."
        )
        cause = BudgetReachedError(
            message,
            service=self.workflow.display_name,
            runs_spent=gate.runs_spent,
            credits_spent=gate.credits_spent,
            rows_left=None,
        )
        self._stop(cause, message)

    async def _report_progress(self, started: float) -> None:
        if self._on_progress is None:
            return
        while True:
            await asyncio.sleep(self._progress_interval_s)
            self.stats.elapsed_s = time.monotonic() - started
            self._emit_progress(started)

    def _emit_progress(self, started: float) -> None:
        if self._on_progress is None:
            return
        elapsed = time.monotonic() - started
        done = self.stats.rows
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self._total is not None and rate > 0:
            eta = max(0.0, (self._total - done) / rate)
        self._on_progress(
            Progress(
                done=done,
                succeeded=self.stats.succeeded,
                failed=self.stats.failed,
                in_flight=self._in_flight,
                total=self._total,
                elapsed_s=elapsed,
                rows_per_s=rate,
                eta_s=eta,
            )
        )


_MAX_UNRECORDED = 10_000
"""Finished rows waiting for the journal before workers pause."""

_FIRST_REQUEST_SETUP_S = 0.1
"""How much later than its slot a run's first request may reach the service: it opens the
client's first connection (and warms up the HTTP stack), which took ~25 ms on loopback where
later requests are on time within a few ms. The limiter counts it in every window from its
start to this long after (see ``RateLimiter.reserve``), so the request ``limit`` places
after it cannot share its window at the server; it costs one place of one window a run."""

_DEFAULT_CONCURRENCY = {"aitutor": 32, "runchat": 8}
"""Enough runs in flight to fill the documented rate at typical run times (seconds to a
minute): AI Tutor 10/s x ~3 s; Runchat 10/min x ~45 s."""


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _journal_failed(journal: Journal, batch: list[RowResult], exc: Exception) -> JournalError:
    error = JournalError(
        f"the row journal ({journal!r}) could not record {len(batch)} finished rows: "
        f"{type(exc).__name__}: {exc}. The run stopped; these rows are reported but a rerun "
        "will pay for them again. Check that the journal location is writable."
    )
    error.__cause__ = exc
    return error


@dataclass(slots=True)
class _Tally:
    """Requests sent for one row so far."""

    attempts: int = 0
    first_sent: float | None = None

    def latency_s(self) -> float | None:
        return None if self.first_sent is None else time.monotonic() - self.first_sent


class _RowSource:
    """Hands out ``(index, row)`` pairs from a sync or async iterable, one at a time."""

    def __init__(self, rows: Iterable[Row] | AsyncIterable[Row]) -> None:
        self._index = 0
        self._sync = iter(rows) if isinstance(rows, Iterable) else None
        self._async = aiter(rows) if self._sync is None else None  # type: ignore[arg-type]
        self._lock = asyncio.Lock()
        self._exhausted = False

    async def next(self) -> tuple[int, Row] | None:
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


def run_workflow_rows(
    workflow: Workflow, rows: Iterable[Row] | AsyncIterable[Row], **settings: Any
) -> WorkflowRun:
    """Fan ``rows`` out through ``workflow``; iterate the returned run for the results.

    A shorthand for :class:`WorkflowRun` (see it for the settings)::

        run = run_workflow_rows(AITutorWorkflow("wf_abc123", ["story"]), rows, api_key=key)
        async for result in run:
            ...
        print(run.stats)
    """
    return WorkflowRun(workflow, rows, **settings)


def run_workflow_rows_sync(
    workflow: Workflow, rows: Iterable[Row], **settings: Any
) -> tuple[list[RowResult], RunStats]:
    """Run the fan-out to the end from synchronous code; results in input order.

    Raises:
        FanOutStopped: a fatal error stopped it; ``exc.results`` holds the finished rows.
    """
    run = WorkflowRun(workflow, rows, **settings)

    async def collect() -> list[RowResult]:
        results: list[RowResult] = []
        try:
            async for result in run:
                results.append(result)
        except FanOutStopped as exc:
            exc.results = sorted(results, key=lambda r: r.index)
            raise
        return results

    results = asyncio.run(collect())
    results.sort(key=lambda r: r.index)
    return results, run.stats
