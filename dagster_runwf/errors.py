"""What can go wrong when running a hosted workflow, sorted by what the caller should do.

Every error this package raises derives from :class:`RunwfError`. The hierarchy follows the
three kinds of failure a fan-out over a table meets, because each calls for a different
reaction::

    RunwfError
    ├── ConfigError              a setting or mapping is wrong; raised before any paid request
    ├── JournalError             the row journal could not be written (disk, permissions, store)
    │   └── ClaimStoreError      the row claims shared with the job's other writers could not
    │                            be read or written (a full disk, Redis gone): the run stopped
    ├── RowError                 this row cannot succeed: record it in the row, go on
    │   ├── RowInputError        the row's inputs are unusable (missing variable, not JSON)
    │   ├── RunFailedError       the service ran the workflow and it failed on this row
    │   ├── ResponseTooLargeError  the answer is larger than the engine reads (maybe paid)
    │   └── UnusableAnswerError  a 2xx the engine cannot use, or no answer once the request
    │                            was sent: the service most likely ran
    │                            and billed the run; retried at most
    │                            ``RetryPolicy.unusable_retries`` times (default 1), then
    │                            journaled as failed: a rerun does not pay for it again
    │                            unless asked to (``retry_failed``)
    ├── TransientError           worth retrying with backoff
    │   ├── RateLimitedError     429; does not use up a row's attempt budget
    │   ├── ServerError          5xx, a proxy's HTML error page, an error body that is
    │   │                        not the documented JSON
    │   └── TransportError       timeouts, connections that failed before the request was sent
    │       └── UnreachableError  no connection made (refused, unknown host): nothing sent
    └── FatalError               every following row would fail the same way: stop at once
        ├── AuthenticationError  401: the API key is missing, wrong or revoked
        ├── CreditsExhaustedError  402, Runchat's credits 403, a spend limit
        ├── WorkflowNotFoundError  404: unknown, unpublished or another organisation's
        ├── BudgetReachedError   the job's cap on paid runs or credits is reached
        ├── ServiceUnreachableError  no request of the run could reach the service
        └── FanOutStopped        raised by the engine: a fatal error (or too many failures in
                                 a row) stopped the fan-out; carries what finished

A :class:`TransientError` whose retries run out becomes the row's recorded error; it never
stops the fan-out on its own (the circuit breaker does that after many failed rows in a row).

Messages name the service, the HTTP status and the service's error code, and say what to do.
They never contain an API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine's result types; errors.py imports nothing of the package
    from .engine.enrich import Enrichment
    from .engine.results import RowResult
    from .engine.stats import RunStats


class RunwfError(Exception):
    """Base class of every error raised by ``dagster_runwf``."""


class ConfigError(RunwfError, ValueError):
    """A setting, a column mapping or a workflow definition is wrong.

    Raised before the first paid request, naming the setting or column at fault.
    """


class JournalError(RunwfError):
    """The row journal could not record finished rows; the run stopped.

    The rows were paid for and are still reported, but a rerun cannot know about them.
    """


class ClaimStoreError(JournalError):
    """The row claims a job's writers share (a SQLite file, a Redis server) could not be read
    or written during the run; it stopped, since without them two writers may pay for one
    row. What was paid for is journaled; the message names the store."""


class ServiceError(RunwfError):
    """An error answered by (or on the way to) a hosted service.

    Attributes:
        service: the service's display name, e.g. ``"AI Tutor"``.
        status: the HTTP status, or ``None`` when no response arrived.
        code: the service's machine-readable error code, when it sent one.
        detail: the service's own error text, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class RowError(ServiceError):
    """This row cannot succeed as it is; the error is recorded in the row."""


class RowInputError(RowError):
    """The row's inputs cannot be sent: a required variable is missing or a value is not JSON.

    Raised by the services before any request, so such a row never costs a run.
    """

    def __init__(self, message: str, *, service: str, variable: str | None = None) -> None:
        super().__init__(message, service=service)
        self.variable = variable


class RowSkippedError(RowInputError):
    """The row was left out on purpose: an input is missing and the workflow's
    ``on_missing`` is ``"skip"``. Recorded as failed (never sent), but not counted by the
    ``failure_rate`` check."""


class ResponseTooLargeError(RowError):
    """The answer was larger than the engine reads (``max_response_bytes``); the run may have
    been paid, so the row is recorded as failed rather than retried."""


class RunFailedError(RowError):
    """The service ran the workflow for this row and answered that it failed."""


class UnusableAnswerError(RowError):
    """A 2xx answer the engine cannot use: no text ``result`` (missing, ``null``, a number),
    ``citations`` that are not a list, a body that is not JSON (truncated, not UTF-8, an HTML
    page), an answer cut short when the connection closed halfway through it, or no answer
    at all: the connection closed once the whole request was sent.

    Unlike a 5xx or a failed connection (:class:`TransientError`), the service most likely
    ran the workflow and billed it. The engine retries such a row at most
    ``RetryPolicy.unusable_retries`` times (default 1), then records it as failed and not
    retryable, so a rerun with the same journal does not pay for it again unless asked to
    (``RowJournal(retry_failed=True)``, ``runwf enrich --retry-failed``,
    ``EnrichmentSettings(retry_failed=True)``).

    Attributes:
        excerpt: the start of what came back (bounded), to show what the service answered.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        super().__init__(message, service=service, status=status)
        self.excerpt = excerpt

    def without(self, secret: str) -> UnusableAnswerError:
        """This error with every occurrence of ``secret`` (the API key, should an answer
        ever echo it) masked in its message and excerpt."""
        if not secret or (secret not in self.message and secret not in self.excerpt):
            return self
        mask = "[redacted]"
        return type(self)(
            self.message.replace(secret, mask),
            service=self.service,
            status=self.status,
            excerpt=self.excerpt.replace(secret, mask),
        )


class TransientError(ServiceError):
    """A failure worth retrying: the same request may well succeed a little later.

    Attributes:
        retry_after: seconds the service asked us to wait (``Retry-After``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status, code=code, detail=detail)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """429: the key's rate limit was exceeded. The limiter backs off; no attempt is used up."""


class ServerError(TransientError):
    """A 5xx answer, a proxy's HTML error page, or an error body that is not the documented
    JSON. A 2xx whose body cannot be used is an :class:`UnusableAnswerError` instead: that run
    was most likely paid for."""


class TransportError(TransientError):
    """No usable response: a timeout, or a connection refused, or closed before the whole
    request was sent. (Closed with no answer after it was sent: :class:`UnusableAnswerError`.)"""


class UnreachableError(TransportError):
    """The connection was never made (refused, the host name did not resolve, no answer to
    connect): the request was not sent, so nothing was paid.

    Attributes:
        host: the host that could not be reached.
        reason: why, e.g. ``"ConnectionRefusedError: Connect call failed"``.
    """

    def __init__(self, message: str, *, service: str, host: str, reason: str) -> None:
        super().__init__(message, service=service)
        self.host = host
        self.reason = reason


class FatalError(ServiceError):
    """Every following row would fail the same way; the fan-out stops at once."""


class AuthenticationError(FatalError):
    """401: the API key is missing, invalid or revoked."""


class CreditsExhaustedError(FatalError):
    """The account cannot pay for more runs: no credits, no subscription, or a spend limit."""


class WorkflowNotFoundError(FatalError):
    """404: the workflow does not exist, is not published, or belongs to someone else."""


class BudgetReachedError(FatalError):
    """The job's budget (a cap on paid runs or on credits) does not allow another run.

    Raised by the engine, never by a service, before the request that would exceed the cap.

    Attributes:
        runs_spent: runs paid in this job, earlier attempts included (from the journal).
        credits_spent: credits reported by the service for those runs (0 when none reported).
        rows_left: rows not yet done, when the number of rows is known.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        runs_spent: int,
        credits_spent: float,
        rows_left: int | None,
    ) -> None:
        super().__init__(message, service=service)
        self.runs_spent = runs_spent
        self.credits_spent = credits_spent
        self.rows_left = rows_left


class ServiceUnreachableError(FatalError):
    """The first rows of a run could not connect to the service at all, and none of its
    requests got an answer: a wrong base URL, a service that is down, or no network. Raised
    by the engine; nothing was sent, so nothing was paid.

    Attributes:
        host: the host that could not be reached.
        base_url: the URL the requests went to.
        reason: why the last connection failed, e.g. ``"the host name did not resolve"``.
    """

    def __init__(
        self, message: str, *, service: str, host: str, base_url: str, reason: str
    ) -> None:
        super().__init__(message, service=service)
        self.host = host
        self.base_url = base_url
        self.reason = reason


class FanOutStopped(FatalError):
    """The engine stopped the fan-out; rows finished before the stop were all reported.

    Attributes:
        cause: the error that stopped it (a :class:`FatalError`, or the last row error when
            the circuit breaker opened).
        finished: rows finished (succeeded or failed) before the stop, in this call.
        results: the finished rows, when the caller collected them (see
            ``run_workflow_rows_sync``); rows after the stop were not sent.
        stats: the run's statistics, when the caller attached them (``enrich`` does).
        partial: with ``enrich(..., land_partial=True)``, the table it landed anyway: the
            finished rows, and the others with status ``pending`` (``None`` otherwise).
        pending: the rows of ``partial`` with status ``pending``.
    """

    def __init__(self, message: str, *, cause: ServiceError, finished: int) -> None:
        super().__init__(
            message,
            service=cause.service,
            status=cause.status,
            code=cause.code,
            detail=cause.detail,
        )
        self.cause = cause
        self.finished = finished
        self.results: list[RowResult] = []
        self.stats: RunStats | None = None
        self.partial: Enrichment | None = None
        self.pending = 0
