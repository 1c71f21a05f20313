"""One fan-out: the worker tasks, the journal's recorder and the progress reporter, wired
together; and the two functions that start one.

A fixed set of worker tasks (one per concurrency slot) pulls rows lazily from the input and
puts finished results on a small queue that the caller drains, so memory stays flat however
many rows there are and a slow consumer slows the fan-out instead of filling memory.

For each row a worker builds the request (a bad row fails here, unsent), then takes its
answer from an identical row or the journal when it can (:mod:`.answers`), else sends it
within the budget (:mod:`.admission`), the rate limit and the retries (:mod:`.attempts`).
Rows sent by this call go through the journal's recorder (:mod:`.recorder`) before they are
reported. A fatal answer, the budget or the circuit breaker stops the fan-out
(:mod:`.stopping`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sized
from typing import Any

import httpx

from ...errors import ConfigError, FanOutStopped, RowInputError
from ...services.base import Workflow
from ..budget import Budget
from ..claims import RowClaims, row_claims_for
from ..client import make_client
from ..journal import RowJournal
from ..options import EngineOptions
from ..ratelimit import RateLimiter
from ..results import Journal, RowResult
from ..retry import RetryPolicy
from ..stats import Progress, RunStats
from .admission import BudgetAdmission
from .answers import Answers
from .attempts import RowAttempts, RowSender
from .plan import count_to_send
from .progress import ProgressReporter
from .recorder import JournalRecorder
from .rows import Row, RowFeed, Rows
from .stopping import CircuitBreaker, StopSignal

SendRow = Callable[[RowAttempts], Awaitable[RowResult | None]]
"""Sends one row over the fan-out's HTTP client (:meth:`RowSender.send_row`)."""

_DONE = object()
"""Put on the results queue once every result is."""


class WorkflowRun:
    """One fan-out of rows through a workflow; iterate it (once) to get the results.

    ``async for result in WorkflowRun(...)`` yields a :class:`RowResult` per input row as rows
    finish (not in input order: use ``result.index``). :attr:`stats` is updated live and is
    final once the iteration ends. To stop early, close the iterator
    (``contextlib.aclosing``): that stops the workers and the HTTP client.

    A fatal answer (or the budget running out, or the circuit breaker) stops the fan-out:
    no request starts after it, requests in flight finish and are reported, then the
    iteration raises :class:`~dagster_runwf.errors.FanOutStopped`.

    Args:
        workflow: the workflow to run, e.g. ``AITutorWorkflow("wf_abc123", ["story"])``.
        rows: mappings of input name to value, consumed lazily (sync or async iterable).
        options: the key, the service and how hard to push it (see :class:`EngineOptions`).
        journal: where finished rows are recorded and looked up (see :class:`RowJournal`);
            a row is reported only once it is recorded.
        budget: a cap on paid runs / credits for the job (earlier attempts recorded in the
            journal count too); reaching it stops the fan-out cleanly.
        on_progress: called with a :class:`Progress` every ``options.progress_interval_s``
            and at the end.
        first_row: the position of the first row in the whole table when these rows are a
            part of it (a chunk), so that messages name the table's row.

    Raises:
        ConfigError: a setting does not fit the workflow (before any request).
    """

    def __init__(
        self,
        workflow: Workflow,
        rows: Rows,
        options: EngineOptions,
        *,
        journal: Journal | None = None,
        budget: Budget | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        first_row: int = 0,
    ) -> None:
        if not isinstance(workflow, Workflow):
            raise ConfigError(f"workflow must be a Workflow, got {type(workflow).__name__}")
        if not isinstance(options, EngineOptions):
            raise ConfigError(f"options must be EngineOptions, got {type(options).__name__}")
        self.workflow = workflow
        self.concurrency = options.concurrency_for(workflow)
        self.stats = RunStats()
        self._stop = StopSignal(self.stats)
        self._breaker = CircuitBreaker(options.max_consecutive_failures, workflow, self._stop)
        self._sender = RowSender(
            workflow, options, stats=self.stats, stop=self._stop, breaker=self._breaker
        )
        claims = self._claims_for(journal, options)
        self._admission = BudgetAdmission(budget, journal, workflow, self._stop, claims)
        self._answers = Answers(journal, options.dedup_cache_size, claims)
        self._recorder = JournalRecorder(journal, self._answers, self._stop)
        self._total = len(rows) if isinstance(rows, Sized) else None
        self._progress = ProgressReporter(
            self.stats,
            self._total,
            on_progress,
            options.progress_interval_s,
            waits=self._sender.waits,
            limiter=self._sender.limiter,
        )
        self._rows = rows
        self._journal = journal
        self._feed = RowFeed(rows)
        self._options = options
        self._first_row = first_row
        self._started = False

    def _claims_for(self, journal: Journal | None, options: EngineOptions) -> RowClaims | None:
        """The row claims this run shares with the other writers of its journal's job."""
        if not isinstance(journal, RowJournal):
            return None
        return row_claims_for(
            options.claim_store,
            journal,
            ttl_s=options.claim_ttl_s,
            stopped=lambda: self._stop.is_set,
        )

    @property
    def base_url(self) -> str:
        """Where the requests go."""
        return self._sender.base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy for transient errors."""
        return self._sender.retry

    @property
    def limiter(self) -> RateLimiter | None:
        """The key's rate limiter (``None``: unlimited)."""
        return self._sender.limiter

    def __repr__(self) -> str:  # never the key
        return f"WorkflowRun({self.workflow!r}, base_url={self.base_url!r})"

    def __aiter__(self) -> AsyncGenerator[RowResult, None]:
        if self._started:
            raise RuntimeError("a WorkflowRun can be iterated only once")
        self._started = True
        return self._results()

    async def _results(self) -> AsyncGenerator[RowResult, None]:
        self._progress.start()
        to_send = None
        if self._progress.reports:
            to_send = await asyncio.to_thread(
                count_to_send, self._rows, self._total, self.workflow, self._journal
            )
        self._progress.plan(to_send)
        self._admission.open()
        out: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency * 4)
        options = self._options
        async with make_client(
            self.concurrency,
            timeout=options.timeout,
            backend=options.backend,
            transport=options.transport,
        ) as client:
            workers = [
                asyncio.create_task(self._worker(client, out)) for _ in range(self.concurrency)
            ]
            recorder = asyncio.create_task(self._recorder.run(out))
            closer = asyncio.create_task(self._close_when_done(workers, recorder, out))
            reporter = asyncio.create_task(self._progress.run())
            try:
                while True:
                    item = await out.get()
                    if item is _DONE:
                        break
                    self.stats.add_result(item)
                    yield item
            finally:
                self._stop.set()
                for task in (*workers, recorder, closer, reporter):
                    task.cancel()
                await asyncio.gather(*workers, recorder, closer, reporter, return_exceptions=True)
                await self._recorder.record_leftovers()
                await self._answers.close()
                self._progress.finish()
        self._stop.raise_if_stopped(self._total)

    async def _close_when_done(
        self,
        workers: list[asyncio.Task[None]],
        recorder: asyncio.Task[None],
        out: asyncio.Queue[Any],
    ) -> None:
        await asyncio.gather(*workers, return_exceptions=True)
        self._recorder.workers_done()
        await asyncio.gather(recorder, return_exceptions=True)
        await out.put(_DONE)

    async def _worker(self, client: httpx.AsyncClient, out: asyncio.Queue[Any]) -> None:
        send_row = functools.partial(self._sender.send_row, client)
        try:
            while not self._stop.is_set:
                item = await self._feed.next()
                if item is None:
                    return
                index, row = item
                self._progress.in_flight += 1
                try:
                    result = await self._process(send_row, index, row)
                finally:
                    self._progress.in_flight -= 1
                if result is None:
                    continue
                if result.source == "run":
                    self._breaker.count_row(result)
                if self._recorder.needs_record(result):
                    await self._recorder.submit(result)
                else:
                    await out.put(result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, or the input iterable failed: stop, re-raise
            self._stop.crash_with(exc)

    async def _process(self, send_row: SendRow, index: int, row: Row) -> RowResult | None:
        """Row ``index``'s result; ``None`` when the fan-out stopped before it finished."""
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
        return await self._answers.answer(
            index,
            prepared.input_hash,
            lambda: self._admission.send(send_row, RowAttempts(index, prepared)),
        )


def run_workflow_rows(
    workflow: Workflow,
    rows: Rows,
    options: EngineOptions,
    *,
    journal: Journal | None = None,
    budget: Budget | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    first_row: int = 0,
) -> WorkflowRun:
    """Fan ``rows`` out through ``workflow``; iterate the returned run for the results.

    A shorthand for :class:`WorkflowRun` (see it for the arguments)::

        options = EngineOptions(api_key=key)
        run = run_workflow_rows(AITutorWorkflow("wf_abc123", ["story"]), rows, options)
        async for result in run:
            ...
        print(run.stats)
    """
    return WorkflowRun(
        workflow,
        rows,
        options,
        journal=journal,
        budget=budget,
        on_progress=on_progress,
        first_row=first_row,
    )


def run_workflow_rows_sync(
    workflow: Workflow,
    rows: Iterable[Row],
    options: EngineOptions,
    *,
    journal: Journal | None = None,
    budget: Budget | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    first_row: int = 0,
) -> tuple[list[RowResult], RunStats]:
    """Run the fan-out to the end from synchronous code; results in input order.

    Takes the arguments of :class:`WorkflowRun`.

    Raises:
        FanOutStopped: a fatal error stopped it; ``exc.results`` holds the finished rows.
    """
    run = WorkflowRun(
        workflow,
        rows,
        options,
        journal=journal,
        budget=budget,
        on_progress=on_progress,
        first_row=first_row,
    )

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
