"""The fault matrix: every failure a hosted service (or the way to it) can produce, injected
by the emulator, through the engine and, for a representative subset, through Dagster.

For each fault the tests check the classification (``wf_error_type`` / the exception), the
attempts a row made, that no row is lost or paid twice (one result per input row, in input
order; the emulator's ``duplicate_runs``), the run's final state, and that the message says
what happened and what to do.

Paid at most once holds everywhere except where the service did run the workflow and the
answer was lost on the way. A 200 that cannot be used (truncated, cut short, no result...) or
a connection closed with no answer once the request was sent is retried once and paid at
most twice (``test_unusable_answers.py``); a timeout cannot be told from one before the run,
so its retries pay again. Those cases assert exactly how many runs were paid.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorResource,
    AITutorWorkflow,
    AuthenticationError,
    CreditsExhaustedError,
    Enrichment,
    EnrichmentSettings,
    FanOutStopped,
    RateLimiter,
    RetryPolicy,
    RowJournal,
    RunchatResource,
    RunchatWorkflow,
    WorkflowNotFoundError,
    enrich,
    enriched_asset,
    run_workflow_rows_sync,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.errors import FatalError, ServiceUnreachableError
from dagster_runwf.services.base import Workflow
from dagster_runwf.services.rate import Rate

from ..conftest import ECHO, KEY, split_options

# -- what the tests run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One service: its workflow on the emulator, and how a row's text becomes its input."""

    service: str

    def workflow(self) -> Workflow:
        if self.service == "aitutor":
            return AITutorWorkflow("wf_echo", ["text"])
        return RunchatWorkflow("demo", ["query_nodeA"])

    @property
    def input(self) -> str:
        return "text" if self.service == "aitutor" else "query_nodeA"

    def url(self, emu: Emulator) -> str:
        return emu.aitutor_url if self.service == "aitutor" else emu.runchat_url

    def row(self, text: str) -> dict[str, Any]:
        return {self.input: text}

    def __str__(self) -> str:
        return self.service


AITUTOR, RUNCHAT = Target("aitutor"), Target("runchat")
TARGETS = [AITUTOR, RUNCHAT]


def texts(n: int, prefix: str = "row") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def retry(max_attempts: int = 3, **settings: Any) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts, initial_backoff_s=0.01, max_backoff_s=0.02, **settings
    )


def emulator_for(start: Callable[..., Emulator], **config: Any) -> Emulator:
    """Both services' test workflows, no rate limit unless asked for."""
    config.setdefault("rate_limit_enabled", False)
    config.setdefault("workflows", [ECHO])
    return start(**config)


def run_rows(emu: Emulator | None, target: Target, rows: Any, **settings: Any) -> Any:
    """The engine over dict rows (``run_workflow_rows_sync``); ``base_url`` or ``emu``."""
    settings.setdefault("retry", retry())
    base_url = settings.pop("base_url", None if emu is None else target.url(emu))
    options, rest = split_options(base_url, settings)
    return run_workflow_rows_sync(target.workflow(), rows, options, **rest)


def enrich_rows(
    emu: Emulator, target: Target, values: list[str], journal_dir: Path, **settings: Any
) -> Enrichment:
    """``enrich`` of a one-column table, with a row journal (job ``"job"``) in ``journal_dir``."""
    settings.setdefault("retry", retry())
    options, rest = split_options(target.url(emu), settings)
    with RowJournal(journal_dir, job_id="job", flush_interval_s=0.01) as journal:
        return enrich(
            pd.DataFrame({"text": values}),
            target.workflow(),
            options,
            columns={target.input: "text"},
            journal=journal,
            **rest,
        )


def run_requests(emu: Emulator) -> int:
    return sum(n for name, n in emu.stats()["by_endpoint"].items() if name.endswith(".run"))


def paid_runs(emu: Emulator) -> int:
    return sum(emu.stats()["runs_by_workflow"].values())


def settle(emu: Emulator) -> None:
    """Wait for the emulator to finish runs whose client gave up (a timeout)."""
    deadline = time.monotonic() + 5.0
    while emu.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)


def check_table(table: pd.DataFrame, values: list[str], status: str | None = None) -> None:
    """One result row per input row, in input order, the input column kept."""
    assert table["text"].tolist() == values
    assert len(table) == len(values) and table.index.tolist() == list(range(len(values)))
    if status is not None:
        assert table["wf_status"].tolist() == [status] * len(values)
    if status == "succeeded":  # every row its own answer: the emulator echoes the input
        assert all(v in r for v, r in zip(values, table["wf_result"], strict=True))


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- transient faults, attempt by attempt ----------------------------------------------------


@dataclass(frozen=True)
class AttemptFault:
    """A fault met by the first ``fail_attempts`` requests of each row."""

    faults: dict[str, Any]
    error_type: str
    phrases: tuple[str, ...]
    paid: bool
    """The service ran the workflow before the answer was damaged: a retry pays again."""


ATTEMPT_FAULTS = {
    "500": AttemptFault({"fail_with": "error"}, "ServerError", ("answered 500",), False),
    "502": AttemptFault(
        {"fail_with": "error", "error_status": 502}, "ServerError", ("answered 502",), False
    ),
    "503": AttemptFault(
        {"fail_with": "error", "error_status": 503}, "ServerError", ("answered 503",), False
    ),
    "504": AttemptFault(
        {"fail_with": "error", "error_status": 504}, "ServerError", ("answered 504",), False
    ),
    "proxy HTML page": AttemptFault(
        {"fail_with": "html"},
        "ServerError",
        ("answered 502", "an HTML page: 502 Bad Gateway"),
        False,
    ),
}
"""Truncated and cut-short 200s, and a connection closed with no answer once the request was
sent, are unusable answers, not transient faults: the service most likely ran and billed
them (``test_unusable_answers.py``)."""


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("name", list(ATTEMPT_FAULTS))
def test_a_transient_fault_shorter_than_the_retries_costs_nothing_but_attempts(
    start_emulator: Callable[..., Emulator], tmp_path: Path, name: str, target: Target
) -> None:
    fault = ATTEMPT_FAULTS[name]
    emu = emulator_for(start_emulator, faults={"fail_attempts": 2, **fault.faults})
    values = texts(6)
    done = enrich_rows(emu, target, values, tmp_path, concurrency=3, retry=retry(3))
    table = done.to_pandas()
    check_table(table, values, "succeeded")
    assert table["wf_attempts"].tolist() == [3] * 6
    assert (done.stats.retried, done.stats.transient_errors, done.stats.requests) == (6, 12, 18)
    server = emu.stats()
    assert run_requests(emu) == 18
    # Each row paid once; twice more where the service ran it and the answer was lost.
    runs_per_row = 3 if fault.paid else 1
    assert sorted(server["runs_by_sha256"].values()) == [runs_per_row] * 6
    assert server["duplicate_runs"] == (12 if fault.paid else 0)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("name", list(ATTEMPT_FAULTS))
def test_a_transient_fault_outlasting_the_retries_fails_the_rows_for_a_rerun(
    start_emulator: Callable[..., Emulator], tmp_path: Path, name: str, target: Target
) -> None:
    fault = ATTEMPT_FAULTS[name]
    emu = emulator_for(start_emulator, faults={"fail_attempts": 5, **fault.faults})
    values = texts(4)
    done = enrich_rows(emu, target, values, tmp_path, concurrency=2, retry=retry(2))
    table = done.to_pandas()
    check_table(table, values, "failed")
    assert table["wf_error_type"].tolist() == [fault.error_type] * 4
    assert table["wf_attempts"].tolist() == [2] * 4
    for error in table["wf_error"]:
        for phrase in (*fault.phrases, "gave up after 2 attempts", "a re-run tries this row"):
            assert phrase in error
        assert KEY not in error
    assert done.stats.stopped_by is None, "row failures alone do not stop the run"
    assert run_requests(emu) == 8

    # Such rows are not journaled as done: the next run, the fault gone, sends them again.
    emu.update_config({"faults": {"fail_attempts": 0}})
    again = enrich_rows(emu, target, values, tmp_path, concurrency=2)
    check_table(again.to_pandas(), values, "succeeded")
    assert again.stats.sent == 4 and again.stats.reused == 0
    assert emu.stats()["duplicate_runs"] == (8 if fault.paid else 0)


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_a_200_saying_the_run_failed_is_a_row_error_never_retried(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 1, "fail_with": "success_false"})
    values = texts(3)
    done = enrich_rows(emu, target, values, tmp_path)
    table = done.to_pandas()
    check_table(table, values, "failed")
    assert table["wf_error_type"].tolist() == ["RunFailedError"] * 3
    assert table["wf_attempts"].tolist() == [1] * 3
    said = "success=false" if target is AITUTOR else "status=error"
    assert all(said in e and "failed on this input" in e for e in table["wf_error"])
    assert (run_requests(emu), paid_runs(emu)) == (3, 0)
    # A row error is final: the journal answers it, the rerun sends nothing.
    again = enrich_rows(emu, target, values, tmp_path)
    assert again.stats.reused == 3 and run_requests(emu) == 3


# -- 429s ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_a_429_storm_without_headers_is_absorbed_and_never_paid(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target
) -> None:
    emu = emulator_for(start_emulator, faults={"rate_limit_burst": 12})
    values = texts(4)
    done = enrich_rows(emu, target, values, tmp_path, concurrency=4, retry=retry(1))
    check_table(done.to_pandas(), values, "succeeded")
    assert done.stats.rate_limited == 12 and done.stats.transient_errors == 0
    assert int(done.to_pandas()["wf_attempts"].sum()) == 16, "every 429 counted as an attempt"
    server = emu.stats()
    assert server["by_status"] == {"429": 12, "200": 4}
    assert paid_runs(emu) == 4 and server["duplicate_runs"] == 0


def test_a_429_storm_longer_than_allowed_fails_the_rows_with_advice(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_for(start_emulator, faults={"rate_limit_burst": 100})
    values = texts(2)
    done = enrich_rows(
        emu, AITUTOR, values, tmp_path, concurrency=1, retry=retry(5, max_rate_limited=3)
    )
    table = done.to_pandas()
    check_table(table, values, "failed")
    assert table["wf_error_type"].tolist() == ["RateLimitedError"] * 2
    assert table["wf_attempts"].tolist() == [4, 4]
    for error in table["wf_error"]:
        assert "answered 429" in error and "gave up after 4 rate-limited answers" in error
        assert "lower the rate (rate) or raise retry=RetryPolicy(max_rate_limited=...)" in error
    assert emu.stats()["by_status"] == {"429": 8} and paid_runs(emu) == 0


def http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.parametrize("limiter", [False, True], ids=["no-limiter", "limiter"])
@pytest.mark.parametrize(
    ("retry_after", "cap", "least", "most"),
    [
        ("1", 300.0, 0.95, 2.5),
        (None, 300.0, 0.5, 3.0),  # an HTTP date 2 s ahead (whole seconds: 1-2 s of wait)
        ("3600", 0.3, 0.25, 2.0),  # capped by RetryPolicy.max_retry_after_s
    ],
    ids=["seconds", "http-date", "capped"],
)
def test_retry_after_is_honoured_in_seconds_and_as_a_date(
    start_emulator: Callable[..., Emulator],
    retry_after: str | None,
    cap: float,
    least: float,
    most: float,
    limiter: bool,
) -> None:
    emu = emulator_for(
        start_emulator,
        rate_limit_enabled=True,
        aitutor_rate_limit=1000,
        faults={"rate_limit_burst": 1, "retry_after": retry_after or http_date(2.0)},
    )
    settings: dict[str, Any] = {"retry": retry(1, max_retry_after_s=cap)}
    if limiter:
        settings["limiter"] = RateLimiter(Rate(1000, 1.0), explicit=True)
    results, stats = run_rows(emu, AITUTOR, [AITUTOR.row("only")], **settings)
    assert results[0].status == "succeeded" and results[0].attempts == 2
    assert stats.rate_limited == 1
    first, second = (e["time"] for e in emu.requests())
    assert least <= second - first <= most


# -- transport ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_with", "backend", "named"),
    [
        ("drop", "aiohttp", "ServerDisconnectedError: Server disconnected"),
        ("drop", "httpx", "RemoteProtocolError: Server disconnected"),
        ("reset", "aiohttp", "ClientPayloadError: Response payload is not completed"),
        ("reset", "httpx", "RemoteProtocolError: peer closed connection"),
    ],
)
def test_dropped_and_reset_connections_are_named_as_such_by_both_backends(
    start_emulator: Callable[..., Emulator], fail_with: str, backend: str, named: str
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 1, "fail_with": fail_with})
    results, _ = run_rows(emu, AITUTOR, [AITUTOR.row("x")], backend=backend, retry=retry(1))
    error = results[0].error or ""
    # A connection closed with no answer after the request was sent, like a 200 cut short,
    # most likely means the service ran (and billed) the run: an unusable answer.
    assert results[0].error_type == "UnusableAnswerError" and results[0].attempts == 1
    said = "with no answer (" if fail_with == "drop" else "connection failed ("
    # Not "no answer in time": raising the timeout would not help.
    assert f"{said}{named}" in error and "no answer in time" not in error
    assert emu.aitutor_url in error


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_a_refused_connection_stops_the_run_as_unreachable_with_nothing_paid(
    backend: str, tmp_path: Path
) -> None:
    # Every row would be refused the same way: the first row's retries are enough to stop
    # (the circuit breaker, off here, is not needed), and no refused request counts as sent.
    port = unused_port()
    url = f"http://127.0.0.1:{port}/aitutor/api/v1"
    rows = [AITUTOR.row(t) for t in texts(10)]
    with pytest.raises(FanOutStopped) as info:
        run_rows(
            None,
            AITUTOR,
            rows,
            base_url=url,
            backend=backend,
            retry=retry(2),
            concurrency=1,
            max_consecutive_failures=None,
        )
    stop = info.value
    assert isinstance(stop.cause, ServiceUnreachableError)
    assert stop.cause.host == "127.0.0.1" and stop.cause.base_url == url
    assert f"could not be reached at 127.0.0.1 ({url}, from base_url)" in str(stop)
    assert "connection failed" not in str(stop) and "no answer in time" not in str(stop)
    assert stop.finished == 0 and "10 rows are not done yet" in str(stop)
    assert stop.results == []


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_a_server_slower_than_the_read_timeout_is_retried_and_named(
    start_emulator: Callable[..., Emulator], backend: str
) -> None:
    emu = emulator_for(start_emulator, faults={"slow_s": 0.4})
    rows = [AITUTOR.row(t) for t in texts(3)]
    results, stats = run_rows(
        emu,
        AITUTOR,
        rows,
        backend=backend,
        retry=retry(2),
        timeout=httpx.Timeout(5.0, read=0.1),
        max_consecutive_failures=None,
    )
    assert [r.error_type for r in results] == ["TransportError"] * 3
    assert [r.attempts for r in results] == [2, 2, 2]
    for r in results:
        error = r.error or ""
        assert "no answer in time (ReadTimeout after 0.1 s)" in error
        assert "raise the read timeout (timeout=httpx.Timeout(..., read=...))" in error
        assert "gave up after 2 attempts" in error
    assert stats.transient_errors == 6
    # The service still ran each timed-out attempt: a timeout may be paid for twice.
    settle(emu)
    assert paid_runs(emu) == 6 and emu.stats()["duplicate_runs"] == 3


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_a_response_body_of_several_megabytes_is_read_whole(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target
) -> None:
    emu = emulator_for(start_emulator, faults={"huge_body_bytes": 4_000_000})
    values = texts(3)
    done = enrich_rows(emu, target, values, tmp_path)
    table = done.to_pandas()
    check_table(table, values, "succeeded")
    assert table["wf_attempts"].tolist() == [1, 1, 1]
    assert paid_runs(emu) == 3


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_a_body_beyond_the_cap_fails_its_row_unread(
    start_emulator: Callable[..., Emulator], tmp_path: Path, backend: str
) -> None:
    target = TARGETS[0]
    emu = emulator_for(start_emulator, faults={"huge_body_bytes": 4_000_000})
    values = texts(3)
    done = enrich_rows(emu, target, values, tmp_path, max_response_bytes=1_000_000, backend=backend)
    table = done.to_pandas()
    assert table["wf_status"].tolist() == ["failed"] * 3
    assert set(table["wf_error_type"]) == {"ResponseTooLargeError"}
    assert "more than 1,000,000 bytes" in table["wf_error"].iloc[0]
    assert "max_response_bytes" in table["wf_error"].iloc[0]
    assert table["wf_attempts"].tolist() == [1, 1, 1], "not retried: the run may be paid"


# -- fatal errors mid-run --------------------------------------------------------------------


@dataclass(frozen=True)
class FatalFault:
    """A fault that stops the fan-out, how it starts, and how it is put right."""

    target: Target
    config: dict[str, Any]
    trigger: dict[str, Any] | None
    """Applied when row ``TRIGGER_ROW`` is pulled; ``None``: the start config runs out."""
    repair: dict[str, Any]
    cause: type[FatalError]
    phrases: tuple[str, ...]


TRIGGER_ROW = 6
FATAL_FAULTS = {
    "aitutor key revoked (401)": FatalFault(
        AITUTOR,
        {"keys": {KEY: {}}},
        {"keys": {KEY: None}},
        {"keys": {KEY: {}}},
        AuthenticationError,
        ("AI Tutor answered 401", "Check the API key"),
    ),
    "runchat key revoked (401)": FatalFault(
        RUNCHAT,
        {"keys": {KEY: {}}},
        {"keys": {KEY: None}},
        {"keys": {KEY: {}}},
        AuthenticationError,
        ("Runchat answered 401", "Check the API key"),
    ),
    "aitutor credits run out (402)": FatalFault(
        AITUTOR,
        {"keys": {KEY: {"credits": 5}}},
        None,
        {"credits": {KEY: None}},
        CreditsExhaustedError,
        ("AI Tutor answered 402 invalid_billing", "Add credits", "will not be paid again"),
    ),
    "runchat credits run out (403)": FatalFault(
        RUNCHAT,
        {"keys": {KEY: {"credits": 5}}},
        None,
        {"credits": {KEY: None}},
        CreditsExhaustedError,
        ("Runchat answered 403", "You have used all of your credits", "Add credits"),
    ),
    "aitutor workflow deleted (404)": FatalFault(
        AITUTOR,
        {},
        {"workflows": {"wf_echo": None}},
        {"workflows": {"wf_echo": ECHO}},
        WorkflowNotFoundError,
        ("AI Tutor answered 404 workflow_not_found", "Check the workflow id 'wf_echo'"),
    ),
    "runchat flow unpublished (404)": FatalFault(
        RUNCHAT,
        {},
        {"workflows": {"demo": {"published": False}}},
        {"workflows": {"demo": {"published": True}}},
        WorkflowNotFoundError,
        ("Runchat answered 404", "Check the workflow id 'demo'"),
    ),
}


@pytest.mark.parametrize("name", list(FATAL_FAULTS))
def test_a_fatal_fault_mid_run_stops_keeps_finished_rows_and_a_rerun_pays_only_the_rest(
    start_emulator: Callable[..., Emulator], tmp_path: Path, name: str
) -> None:
    fault = FATAL_FAULTS[name]
    target = fault.target
    emu = emulator_for(start_emulator, **fault.config, workflows=[{**ECHO, "latency": 0.01}])
    values = texts(20)
    concurrency = 2

    def rows() -> Iterator[dict[str, Any]]:
        for i, text in enumerate(values):
            if i == TRIGGER_ROW and fault.trigger is not None:
                emu.update_config(fault.trigger)
            yield target.row(text)

    with (
        RowJournal(tmp_path, job_id="job", flush_interval_s=0.01) as journal,
        pytest.raises(FanOutStopped) as info,
    ):
        run_rows(emu, target, rows(), concurrency=concurrency, journal=journal)
    stop = info.value
    message = str(stop)
    assert isinstance(stop.cause, fault.cause)
    for phrase in (*fault.phrases, "No further request was sent", "finished rows are kept"):
        assert phrase in message
    assert KEY not in message
    # The rows finished before the stop, each once, all paid and all reported.
    finished = stop.results
    assert len(finished) == stop.finished > 0
    assert len({r.index for r in finished}) == len(finished)
    assert all(r.status == "succeeded" for r in finished)
    assert paid_runs(emu) == len(finished)
    assert f"Stopped after {len(finished)} rows finished ({len(finished)} succeeded, 0 failed)" in (
        message
    )
    if fault.trigger is None:  # the credits, and any run already past the credit check
        assert 5 <= len(finished) <= 5 + concurrency - 1
    else:
        assert len(finished) <= TRIGGER_ROW + concurrency
    # Only requests already in flight met the fatal answer; none started after it.
    fatal = sum(n for s, n in emu.stats()["by_status"].items() if s in ("401", "402", "403", "404"))
    assert 1 <= fatal <= concurrency

    # Put it right and run again with the same journal: nothing lost, nothing paid twice.
    emu.update_config(fault.repair)
    done = enrich_rows(emu, target, values, tmp_path, concurrency=concurrency)
    table = done.to_pandas()
    check_table(table, values, "succeeded")
    assert done.stats.reused == len(finished) and done.stats.sent == 20 - len(finished)
    assert table["wf_reused"].sum() == len(finished)
    assert paid_runs(emu) == 20 and emu.stats()["duplicate_runs"] == 0


# -- through Dagster -------------------------------------------------------------------------

DAGSTER_ROWS = texts(12, "company")


@dg.asset
def companies() -> pd.DataFrame:
    frame: pd.DataFrame = pd.DataFrame({"name": DAGSTER_ROWS})
    return frame


def enriched(target: Target, journal_dir: Path, **settings: Any) -> dg.AssetsDefinition:
    return enriched_asset(
        source=companies,
        workflow=target.workflow(),
        settings=EnrichmentSettings(
            columns={target.input: "name"},
            journal_dir=str(journal_dir),
            failure_rate_threshold=0.0,
            **settings,
        ),
    )


def dagster_resources(emu: Emulator, **settings: Any) -> dict[str, Any]:
    common = {
        "api_key": KEY,
        "rate": "unlimited",
        "initial_backoff_s": 0.01,
        "max_backoff_s": 0.02,
        **settings,
    }
    return {
        "aitutor": AITutorResource(base_url=emu.aitutor_url, **common),
        "runchat": RunchatResource(base_url=emu.runchat_url, **common),
    }


def materialize(asset: dg.AssetsDefinition, emu: Emulator, **settings: Any) -> Any:
    return dg.materialize(
        [companies, asset], resources=dagster_resources(emu, **settings), raise_on_error=False
    )


def step_failure(result: Any) -> tuple[str, dict[str, Any]]:
    """The failed step's message and metadata."""
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data.user_failure_data
    return str(data.description), {k: v.value for k, v in (data.metadata or {}).items()}


def metadata_of(result: Any, asset: dg.AssetsDefinition) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset.node_def.name)
    return {k: v.value for k, v in event.metadata.items()}


@contextmanager
def when_runs_reach(emu: Emulator, runs: int, patch: dict[str, Any]) -> Iterator[None]:
    """Apply ``patch`` to the emulator as soon as it has run ``runs`` workflows."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if paid_runs(emu) >= runs:
                emu.update_config(patch)
                return
            stop.wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_dagster_absorbs_5xx_bursts_and_a_429_storm(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target
) -> None:
    emu = emulator_for(
        start_emulator,
        faults={"fail_attempts": 1, "error_status": 503, "rate_limit_burst": 5},
    )
    # No pre-flight: its free calls (Runchat's schema) would meet the burst first.
    asset = enriched(target, tmp_path, concurrency=3, preflight=False)
    result = materialize(asset, emu, max_attempts=3)
    assert result.success
    table = result.output_for_node(asset.node_def.name)
    assert table["name"].tolist() == DAGSTER_ROWS
    assert table["wf_status"].tolist() == ["succeeded"] * 12
    metadata = metadata_of(result, asset)
    assert metadata["runwf/retried"] == 12 and metadata["runwf/transient_errors"] == 12
    assert metadata["runwf/rate_limited_429"] == 5 and metadata["runwf/failed"] == 0
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["failure_rate"] and checks["every_row_answered"]
    assert all(checks.values()), checks
    assert emu.stats()["duplicate_runs"] == 0


def test_dagster_records_rows_whose_retries_ran_out_and_the_check_flags_them(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_for(
        start_emulator, faults={"fail_attempts": 5, "fail_with": "error", "error_status": 503}
    )
    asset = enriched(AITUTOR, tmp_path, concurrency=3)
    result = materialize(asset, emu, max_attempts=2)
    assert result.success, "row failures do not fail the step"
    table = result.output_for_node(asset.node_def.name)
    assert table["wf_error_type"].tolist() == ["ServerError"] * 12
    assert table["wf_attempts"].tolist() == [2] * 12
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["failure_rate"].passed and checks["every_row_answered"].passed
    assert "12 of 12 rows failed" in (checks["failure_rate"].description or "")
    assert paid_runs(emu) == 0


@pytest.mark.parametrize(
    ("target", "config", "trigger", "repair", "phrases"),
    [
        (
            AITUTOR,
            {"keys": {KEY: {}}},
            {"keys": {KEY: None}},
            {"keys": {KEY: {}}},
            ("answered 401", "Check the API key"),
        ),
        (
            RUNCHAT,
            {"keys": {KEY: {"credits": 5}}},
            None,
            {"credits": {KEY: None}},
            ("answered 403", "Add credits"),
        ),
    ],
    ids=["aitutor-key-revoked", "runchat-credits-out"],
)
def test_dagster_fails_the_step_on_a_fatal_fault_and_the_next_run_pays_only_the_rest(
    start_emulator: Callable[..., Emulator],
    tmp_path: Path,
    target: Target,
    config: dict[str, Any],
    trigger: dict[str, Any] | None,
    repair: dict[str, Any],
    phrases: tuple[str, ...],
) -> None:
    emu = emulator_for(start_emulator, **config, workflows=[{**ECHO, "latency": 0.02}])
    asset = enriched(target, tmp_path, concurrency=2, incremental=True)
    with when_runs_reach(emu, 5, trigger or {}):
        failed = materialize(asset, emu)
    assert not failed.success
    text, metadata = step_failure(failed)
    for phrase in (*phrases, "finished rows are kept", "Re-run to continue"):
        assert phrase in text
    assert KEY not in text
    paid_before = paid_runs(emu)
    assert 5 <= paid_before <= 9, "stopped soon after the fault, not at the end"
    assert metadata["runwf/succeeded"] == metadata["runwf/sent"] == paid_before

    emu.update_config(repair)
    again = materialize(asset, emu)
    assert again.success
    table = again.output_for_node(asset.node_def.name)
    assert table["name"].tolist() == DAGSTER_ROWS
    assert table["wf_status"].tolist() == ["succeeded"] * 12
    assert int(table["wf_reused"].sum()) == paid_before
    assert paid_runs(emu) == 12 and emu.stats()["duplicate_runs"] == 0
