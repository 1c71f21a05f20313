"""The engine end to end, over real loopback HTTP against the emulator."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    AuthenticationError,
    ConfigError,
    CreditsExhaustedError,
    EngineOptions,
    FanOutStopped,
    Progress,
    RateLimiter,
    RetryPolicy,
    RowResult,
    RunchatWorkflow,
    WorkflowNotFoundError,
    WorkflowRun,
    fetch_balance,
    fetch_schema,
    run_workflow_rows,
    run_workflow_rows_sync,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.services.rate import Rate

from ..conftest import ECHO, KEY, engine_options, split_options

FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


def echo_rows(n: int) -> list[dict[str, Any]]:
    return [{"text": f"row-{i}"} for i in range(n)]


def answer(result: RowResult) -> str | None:
    """The rendered template, without the emulator's digest suffix."""
    text = result.outcome.result if result.outcome else None
    return None if text is None else text.split(" [")[0]


def run_sync(emu: Emulator, rows: Any, *, workflow: Any = None, **settings: Any) -> Any:
    """The engine over ``rows`` (the echo workflow by default); ``settings`` are options
    (see ``engine_options``) and ``run_workflow_rows_sync``'s own arguments."""
    settings.setdefault("retry", FAST_RETRY)
    options, rest = split_options(settings.pop("base_url", emu.aitutor_url), settings)
    return run_workflow_rows_sync(
        workflow or AITutorWorkflow("wf_echo", ["text"]), rows, options, **rest
    )


def run_requests(emu: Emulator) -> int:
    return sum(n for name, n in emu.stats()["by_endpoint"].items() if name.endswith(".run"))


# -- success paths ----------------------------------------------------------------------------


def test_aitutor_rows_each_get_their_own_answer_and_citations(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    results, stats = run_sync(emu, echo_rows(60), concurrency=8)
    assert [r.index for r in results] == list(range(60))
    for r in results:
        assert r.status == "succeeded" and r.outcome is not None
        assert answer(r) == f"echo:row-{r.index}"
        assert r.outcome.citations == (f"https://example.com/row-{r.index}",)
        assert r.attempts == 1 and r.input_hash
    assert (stats.rows, stats.succeeded, stats.failed, stats.sent) == (60, 60, 0, 60)
    assert emu.stats()["duplicate_runs"] == 0
    assert stats.latency.percentile(50) is not None


def test_the_seed_example_runs_through_the_engine(emulator: Emulator) -> None:
    results, _ = run_sync(
        emulator,
        [{"story": "a story about a dog named charlie"}],
        workflow=AITutorWorkflow("wf_abc123", ["story"]),
    )
    assert results[0].status == "succeeded"
    assert "charlie" in (results[0].outcome.result or "")


def test_runchat_rows_get_named_outputs_and_metadata(emulator: Emulator) -> None:
    wf = RunchatWorkflow("demo", ["query_nodeA"], result_output="Answer")
    rows = [{"query_nodeA": f"question {i}"} for i in range(5)]
    results, stats = run_sync(emulator, rows, workflow=wf, base_url=emulator.runchat_url)
    assert stats.succeeded == 5
    answers = {r.outcome.result for r in results if r.outcome}
    assert len(answers) == 5  # every row its own answer
    first = results[0].outcome
    assert first is not None and first.instance_id and first.metadata
    assert "Answer" in first.output_labels


def test_identical_inputs_are_sent_once(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    rows = [{"text": f"dup-{i % 3}"} for i in range(12)]
    results, stats = run_sync(emu, rows, concurrency=6)
    assert run_requests(emu) == 3
    assert [answer(r) for r in results] == [f"echo:dup-{i % 3}" for i in range(12)]
    assert (stats.sent, stats.deduplicated) == (3, 9)


def test_bad_rows_are_failed_without_any_request(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    rows = [{"text": "ok"}, {"other": 1}, {"text": None}, {"text": b"raw"}]
    results, stats = run_sync(emu, rows)
    assert [r.status for r in results] == ["succeeded", "failed", "failed", "failed"]
    assert all(r.error_type == "RowInputError" and r.attempts == 0 for r in results[1:])
    assert "row 1" in (results[1].error or "") and "'text'" in (results[1].error or "")
    assert run_requests(emu) == 1 and stats.invalid == 3
    assert emu.stats()["undefined_substitutions"] == 0


# -- fatal stops ------------------------------------------------------------------------------


def test_unknown_key_stops_at_once(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], keys={KEY: {}}, rate_limit_enabled=False)
    with pytest.raises(FanOutStopped) as info:
        run_sync(emu, echo_rows(50), api_key="sk_wrong", concurrency=4)
    assert isinstance(info.value.cause, AuthenticationError)
    assert "401" in str(info.value) and "API key" in str(info.value)
    assert "sk_wrong" not in str(info.value)
    assert run_requests(emu) <= 4  # only what was in flight when the first 401 came back


def test_credits_running_out_keeps_finished_rows_and_sends_no_more(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], keys={KEY: {"credits": 10}}, rate_limit_enabled=False)
    with pytest.raises(FanOutStopped) as info:
        run_sync(emu, echo_rows(100), concurrency=4)
    exc = info.value
    assert isinstance(exc.cause, CreditsExhaustedError) and "402" in str(exc)
    assert "invalid_billing" in str(exc) and "10 rows finished" in str(exc)
    assert [r.status for r in exc.results] == ["succeeded"] * 10
    assert exc.finished == 10
    assert run_requests(emu) <= 10 + 4  # the paid ones, plus those in flight at the stop


def test_runchat_credits_403_and_unknown_flow_404_are_fatal(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(keys={KEY: {"credits": 2}}, rate_limit_enabled=False)
    wf = RunchatWorkflow("demo", ["query_nodeA"])
    rows = [{"query_nodeA": f"q{i}"} for i in range(10)]
    with pytest.raises(FanOutStopped) as info:
        run_sync(emu, rows, workflow=wf, base_url=emu.runchat_url, concurrency=1)
    assert isinstance(info.value.cause, CreditsExhaustedError) and "403" in str(info.value)
    other = start_emulator(rate_limit_enabled=False)
    with pytest.raises(FanOutStopped) as info:
        run_sync(
            other,
            rows,
            workflow=RunchatWorkflow("nope", ["query_nodeA"]),
            base_url=other.runchat_url,
        )
    assert isinstance(info.value.cause, WorkflowNotFoundError)


def test_workflow_deleted_mid_run_stops(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(
        workflows=[{**ECHO, "latency": {"min_s": 0.01, "max_s": 0.01}}], rate_limit_enabled=False
    )

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(200):
            if i == 20:
                emu.update_config({"workflows": {"wf_echo": {"published": False}}})
            yield {"text": f"r{i}"}

    with pytest.raises(FanOutStopped) as info:
        run_sync(emu, rows(), concurrency=2)
    assert isinstance(info.value.cause, WorkflowNotFoundError)
    assert 15 <= info.value.finished <= 22
    assert run_requests(emu) <= info.value.finished + 2


def test_consecutive_failures_open_the_circuit(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, faults={"error_rate": 1.0})
    with pytest.raises(FanOutStopped, match="5 rows in a row failed"):
        run_sync(
            emu,
            echo_rows(100),
            concurrency=1,
            max_consecutive_failures=5,
            retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.0),
        )
    assert run_requests(emu) == 10  # 5 rows x 2 attempts, then nothing


# -- transient errors -------------------------------------------------------------------------


def test_5xx_bursts_are_retried_until_every_row_succeeds(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, faults={"fail_attempts": 2})
    results, stats = run_sync(
        emu, echo_rows(20), concurrency=5, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01)
    )
    assert all(r.status == "succeeded" and r.attempts == 3 for r in results)
    assert (stats.retried, stats.transient_errors, stats.requests) == (20, 40, 60)


def test_retries_run_out_into_a_failed_row(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, faults={"fail_attempts": 5})
    results, stats = run_sync(
        emu,
        echo_rows(3),
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.01),
        max_consecutive_failures=None,
    )
    assert all(r.status == "failed" and r.attempts == 2 for r in results)
    assert all(r.error_type == "ServerError" and "500" in (r.error or "") for r in results)
    assert stats.failed == 3 and run_requests(emu) == 6


def test_dropped_connections_and_malformed_bodies_are_retried(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(
        workflows=[ECHO],
        rate_limit_enabled=False,
        seed=3,
        faults={"drop_rate": 0.2, "malformed_rate": 0.1, "html_error_rate": 0.1},
    )
    results, stats = run_sync(
        emu,
        echo_rows(60),
        concurrency=6,
        # A malformed 200 is an unusable answer, retried once by default: allow more here.
        retry=RetryPolicy(max_attempts=10, initial_backoff_s=0.01, unusable_retries=9),
    )
    assert all(r.status == "succeeded" for r in results)
    assert [answer(r) for r in results] == [f"echo:row-{i}" for i in range(60)]
    assert stats.transient_errors > 0 and stats.retried > 0


def test_a_server_slower_than_the_timeout_is_retried_then_failed(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False, faults={"slow_s": 1.0})
    results, _ = run_sync(
        emu,
        echo_rows(2),
        timeout=httpx.Timeout(0.2),
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.01),
        max_consecutive_failures=None,
    )
    assert all(r.status == "failed" and r.attempts == 2 for r in results)
    assert all(
        r.error_type == "TransportError" and "no answer in time" in (r.error or "") for r in results
    )


def test_429_storm_is_absorbed_without_using_the_attempt_budget(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], faults={"rate_limit_burst": 25}, aitutor_rate_limit=1000)
    limiter = RateLimiter(Rate(1000, 1.0), explicit=True)
    results, stats = run_sync(
        emu, echo_rows(10), concurrency=5, limiter=limiter, retry=RetryPolicy(max_attempts=1)
    )
    assert all(r.status == "succeeded" for r in results)
    assert stats.rate_limited == 25 and stats.requests == 35


def test_retry_after_is_honoured(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(
        workflows=[ECHO],
        faults={"rate_limit_burst": 1, "retry_after": "1"},
        aitutor_rate_limit=1000,
    )
    limiter = RateLimiter(Rate(1000, 1.0), explicit=True)
    results, _ = run_sync(emu, echo_rows(1), limiter=limiter)
    assert results[0].status == "succeeded" and results[0].attempts == 2
    times = [e["time"] for e in emu.requests()]
    assert times[1] - times[0] >= 0.99


# -- rate limits ------------------------------------------------------------------------------


def test_aitutor_rate_is_never_exceeded_and_fully_used(
    start_emulator: Callable[..., Emulator],
) -> None:
    emu = start_emulator(workflows=[ECHO], aitutor_rate_limit=20)
    limiter = RateLimiter(Rate(20, 1.0))
    started = time.monotonic()
    results, stats = run_sync(emu, echo_rows(70), concurrency=16, limiter=limiter, rate=None)
    elapsed = time.monotonic() - started
    server = emu.stats()
    assert all(r.status == "succeeded" for r in results)
    assert stats.rate_limited == 0 and server["by_status"].get("429", 0) == 0
    assert max(server["max_requests_in_window"]["aitutor"].values()) <= 20
    assert elapsed >= 3.0  # 70 requests at 20/s need three full windows after the first


def test_runchat_per_window_limit_holds(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(runchat_rate_limit=4, runchat_window_s=1.0)
    wf = RunchatWorkflow("demo", ["query_nodeA"])
    limiter = RateLimiter(Rate(4, 1.0))
    rows = [{"query_nodeA": f"q{i}"} for i in range(10)]
    results, stats = run_sync(
        emu, rows, workflow=wf, base_url=emu.runchat_url, limiter=limiter, concurrency=4
    )
    assert all(r.status == "succeeded" for r in results) and stats.rate_limited == 0
    assert max(emu.stats()["max_requests_in_window"]["runchat"].values()) <= 4


def test_limit_is_learned_from_the_headers(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], aitutor_rate_limit=30)
    limiter = RateLimiter(Rate(10, 1.0))  # the documented default, not chosen by the user
    _, stats = run_sync(emu, echo_rows(70), concurrency=32, limiter=limiter)
    assert limiter.limit == 30
    assert stats.rate_limited == 0
    assert max(emu.stats()["max_requests_in_window"]["aitutor"].values()) <= 30


def test_two_runs_on_one_key_share_its_rate(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], aitutor_rate_limit=10)

    async def both() -> None:
        async def one(prefix: str) -> None:
            run = run_workflow_rows(
                AITutorWorkflow("wf_echo", ["text"]),
                [{"text": f"{prefix}{i}"} for i in range(15)],
                EngineOptions(api_key="sk_shared_key", base_url=emu.aitutor_url, concurrency=8),
            )
            async for result in run:
                assert result.status == "succeeded"

        await asyncio.gather(one("a"), one("b"))

    asyncio.run(both())
    server = emu.stats()
    assert server["by_status"].get("429", 0) == 0
    assert max(server["max_requests_in_window"]["aitutor"].values()) <= 10


# -- streaming, progress, settings ------------------------------------------------------------


def test_rows_are_pulled_lazily(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    pulled = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield {"text": f"r{i}"}

    async def take(n: int) -> list[RowResult]:
        run = run_workflow_rows(
            AITutorWorkflow("wf_echo", ["text"]),
            rows(),
            engine_options(emu.aitutor_url, concurrency=4),
        )
        taken: list[RowResult] = []
        iterator = run.__aiter__()
        while len(taken) < n:
            taken.append(await iterator.__anext__())
        await asyncio.sleep(0.2)  # let workers run ahead as far as they would
        await iterator.aclose()
        return taken

    taken = asyncio.run(take(10))
    assert len(taken) == 10
    assert pulled <= 10 + 4 * 4 + 4 + 1  # results taken + the queue + in flight (+1 lookahead)


def test_progress_is_reported(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    reports: list[Progress] = []
    run_sync(emu, echo_rows(20), on_progress=reports.append, progress_interval_s=0.01)
    assert reports and reports[-1].done == 20 and reports[-1].total == 20
    assert "20/20 rows done" in str(reports[-1])


def test_httpx_backend_gives_the_same_results(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(workflows=[ECHO], rate_limit_enabled=False)
    results, _ = run_sync(emu, echo_rows(30), backend="httpx", concurrency=8)
    assert [answer(r) for r in results] == [f"echo:row-{i}" for i in range(30)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"base_url": "http://example.com/api"}, "plain http"),
        ({"api_key": ""}, "api_key"),
        ({"concurrency": 0}, "concurrency"),
        ({"rate": "fast"}, "rate"),
    ],
)
def test_bad_settings_fail_before_any_request(
    emulator: Emulator, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_sync(emulator, echo_rows(1), **settings)
    assert emulator.stats()["total_requests"] == 0


def test_balance_and_schema_calls(emulator: Emulator) -> None:
    assert asyncio.run(fetch_balance(KEY, emulator.aitutor_url)) > 0
    schema = asyncio.run(fetch_schema("demo", KEY, emulator.runchat_url))
    assert {"prompt_xyz123", "maxTokens_abc456", "query_nodeA"} <= {p.id for p in schema.inputs}


# -- the options ------------------------------------------------------------------------------


def test_the_options_never_show_the_key() -> None:
    options = EngineOptions(api_key=KEY, base_url="http://127.0.0.1:1", rate="10/s")
    for text in (repr(options), str(options), f"{options}", repr([options])):
        assert KEY not in text
        assert "api_key" not in text and "rate='10/s'" in text
    run = WorkflowRun(AITutorWorkflow("wf_echo", ["text"]), [], options)
    assert KEY not in repr(run)


def test_a_misspelt_option_is_refused() -> None:
    with pytest.raises(TypeError, match="concurency"):
        EngineOptions(api_key=KEY, concurency=4)  # type: ignore[call-arg]


def test_options_are_frozen_and_checked_again_when_replaced() -> None:
    options = EngineOptions(api_key=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.rate = "5/s"  # type: ignore[misc]
    faster = dataclasses.replace(options, rate="20/s", concurrency=4)
    assert (faster.api_key, faster.rate, faster.concurrency) == (KEY, "20/s", 4)
    with pytest.raises(ConfigError, match="concurrency"):
        dataclasses.replace(options, concurrency=0)
    with pytest.raises(ConfigError, match="max_consecutive_failures"):
        EngineOptions(api_key=KEY, max_consecutive_failures=0)


def test_concurrency_defaults_to_the_services_default() -> None:
    options = EngineOptions(api_key=KEY, rate="unlimited")
    aitutor, runchat = AITutorWorkflow("wf_echo", ["text"]), RunchatWorkflow("demo", ["q_n"])
    assert WorkflowRun(aitutor, [], options).concurrency == 32
    assert WorkflowRun(runchat, [], options).concurrency == 8
    chosen = dataclasses.replace(options, concurrency=3)
    assert WorkflowRun(runchat, [], chosen).concurrency == 3


def test_a_run_wants_engine_options() -> None:
    workflow = AITutorWorkflow("wf_echo", ["text"])
    with pytest.raises(ConfigError, match="options must be EngineOptions, got dict"):
        WorkflowRun(workflow, [], {"api_key": KEY})  # type: ignore[arg-type]
