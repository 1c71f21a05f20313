"""A 2xx answer the client cannot use: the service most likely ran and billed the run, so it
is paid at most twice per row (one retry by default), journaled as failed, and not paid again
by a rerun unless failed rows are asked for (``retry_failed``).

Every figure is counted at the emulator (``runs_by_sha256``: paid runs per row's body), over
real loopback HTTP, from the ``fail_with`` faults that answer a run with such a body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    RetryPolicy,
    RowJournal,
    RunchatWorkflow,
    UnusableAnswerError,
    enrich,
)
from dagster_runwf.emulator import Emulator
from dagster_runwf.services.citations import WARNINGS_KEY
from dagster_runwf.services.http import HttpResponse

from ..conftest import KEY, split_options
from .test_faults import (
    AITUTOR,
    RUNCHAT,
    TARGETS,
    Target,
    check_table,
    emulator_for,
    enrich_rows,
    paid_runs,
    run_requests,
    run_rows,
    texts,
)

ROWS = 6


def retry(max_attempts: int = 5, **settings: Any) -> RetryPolicy:
    """The default policy (5 attempts, one retry of an unusable answer), backing off fast."""
    return RetryPolicy(
        max_attempts=max_attempts, initial_backoff_s=0.01, max_backoff_s=0.02, **settings
    )


# fail_with -> a phrase of the row's error. Every one of them is run and charged.
UNUSABLE = {
    "no_result": "has no 'result'",
    "null_result": "'result' is null, not text",
    "number_result": "'result' is a number (42), not text",
    "bad_citations": "'citations' is text, not a list",
    "invalid_utf8": "not valid UTF-8",
    "html_200": "an HTML page: Sign in - Example SSO",
    "malformed": "not JSON",
    "reset": "cut short",
    "drop_after_run": "the connection closed after the request was sent, with no answer",
}
RUNCHAT_UNUSABLE = {
    "no_result": "has no 'data'",
    "null_result": "'data' is null, not a list",
    "number_result": "'data' is a number (42), not a list",
    "invalid_utf8": "not valid UTF-8",
    "html_200": "an HTML page",
    "malformed": "not JSON",
    "reset": "cut short",
    "drop_after_run": "the connection closed after the request was sent, with no answer",
}
CASES = [(AITUTOR, kind) for kind in UNUSABLE] + [(RUNCHAT, kind) for kind in RUNCHAT_UNUSABLE]


def phrase(target: Target, kind: str) -> str:
    return (UNUSABLE if target is AITUTOR else RUNCHAT_UNUSABLE)[kind]


def paid_per_row(emu: Emulator) -> list[int]:
    return sorted(emu.stats()["runs_by_sha256"].values())


@pytest.mark.parametrize(("target", "kind"), CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_an_unusable_answer_is_paid_at_most_twice_and_never_again_by_a_rerun(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target, kind: str
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 100, "fail_with": kind})
    values = texts(ROWS)
    done = enrich_rows(emu, target, values, tmp_path, concurrency=3, retry=retry())
    table = done.to_pandas()
    check_table(table, values, "failed")
    assert table["wf_error_type"].tolist() == ["UnusableAnswerError"] * ROWS
    assert table["wf_attempts"].tolist() == [2] * ROWS
    for error in table["wf_error"]:
        assert phrase(target, kind) in error, error
        assert "most likely ran and billed" in error and "retry_failed=True" in error
        assert "--retry-failed" not in error, "the engine speaks Python"
        assert KEY not in error
    # Paid twice per row (one retry), where 5 attempts used to pay five times.
    assert paid_per_row(emu) == [2] * ROWS
    assert done.stats.stopped_by is None, "row failures alone do not stop the run"

    # The same journal: the failed rows are answered from it, nothing is paid.
    requests = run_requests(emu)
    again = enrich_rows(emu, target, values, tmp_path, concurrency=3, retry=retry())
    check_table(again.to_pandas(), values, "failed")
    assert again.stats.reused == ROWS and again.stats.sent == 0
    assert run_requests(emu) == requests and paid_per_row(emu) == [2] * ROWS


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_retry_failed_pays_for_the_failed_rows_again(
    start_emulator: Callable[..., Emulator], tmp_path: Path, target: Target
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 2, "fail_with": "null_result"})
    values = texts(ROWS)
    first = enrich_rows(emu, target, values, tmp_path, retry=retry())
    check_table(first.to_pandas(), values, "failed")
    assert paid_per_row(emu) == [2] * ROWS

    engine, _ = split_options(target.url(emu), {"retry": retry(), "concurrency": 3})
    with RowJournal(tmp_path, job_id="job", retry_failed=True, flush_interval_s=0.01) as journal:
        assert "retry_failed=True" in repr(journal)
        again = enrich(
            pd.DataFrame({"text": values}),
            target.workflow(),
            engine,
            columns={target.input: "text"},
            journal=journal,
        )
    check_table(again.to_pandas(), values, "succeeded")
    assert again.stats.sent == ROWS and again.stats.reused == 0
    assert paid_per_row(emu) == [3] * ROWS, "each failed row paid once more, on request"

    # Its success is the job's latest row: a plain rerun reuses it.
    last = enrich_rows(emu, target, values, tmp_path)
    check_table(last.to_pandas(), values, "succeeded")
    assert last.stats.reused == ROWS and paid_per_row(emu) == [3] * ROWS


def test_an_unusable_answer_once_costs_one_retry_and_the_row_succeeds(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 1, "fail_with": "html_200"})
    values = texts(ROWS)
    done = enrich_rows(emu, AITUTOR, values, tmp_path, retry=retry())
    table = done.to_pandas()
    check_table(table, values, "succeeded")
    assert table["wf_attempts"].tolist() == [2] * ROWS
    assert paid_per_row(emu) == [2] * ROWS


@pytest.mark.parametrize(("unusable_retries", "paid"), [(0, 1), (3, 4)])
def test_how_often_an_unusable_answer_is_retried_is_configurable(
    start_emulator: Callable[..., Emulator], unusable_retries: int, paid: int
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 100, "fail_with": "no_result"})
    rows = [AITUTOR.row(t) for t in texts(3)]
    results, stats = run_rows(emu, AITUTOR, rows, retry=retry(unusable_retries=unusable_retries))
    assert [r.error_type for r in results] == ["UnusableAnswerError"] * 3
    assert [r.attempts for r in results] == [paid] * 3
    assert not any(r.retryable for r in results), "journaled as failed, not retried by a rerun"
    assert paid_per_row(emu) == [paid] * 3 and stats.transient_errors == 3 * paid
    # Never more than max_attempts, whatever unusable_retries says.
    emu.reset()
    results, _ = run_rows(emu, AITUTOR, rows[:1], retry=retry(2, unusable_retries=5))
    assert results[0].attempts == 2 and paid_per_row(emu) == [2]


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize("fail_with", ["drop", "drop_after_run"])
def test_a_connection_closed_once_with_no_answer_costs_one_more_attempt(
    start_emulator: Callable[..., Emulator], fail_with: str, backend: str
) -> None:
    """A client cannot tell a connection closed before the run (``drop``: a proxy) from one
    closed after it (``drop_after_run``: run and billed); both end with no answer at all, so
    both are a lost answer: sent again once, then recorded as failed (above)."""
    emu = emulator_for(start_emulator, faults={"fail_attempts": 1, "fail_with": fail_with})
    rows = [AITUTOR.row(t) for t in texts(3)]
    results, _ = run_rows(emu, AITUTOR, rows, backend=backend, retry=retry())
    assert [(r.status, r.attempts) for r in results] == [("succeeded", 2)] * 3
    assert paid_per_row(emu) == ([2] * 3 if fail_with == "drop_after_run" else [1] * 3)


def test_citations_that_are_not_strings_are_cleaned_and_said(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_for(start_emulator, faults={"fail_attempts": 1, "fail_with": "odd_citations"})
    values = texts(3)
    done = enrich_rows(emu, AITUTOR, values, tmp_path, retry=retry())
    table = done.to_pandas()
    check_table(table, values, "succeeded")
    assert table["wf_attempts"].tolist() == [1] * 3 and paid_runs(emu) == 3
    urls = [[f"https://example.com/{v}"] for v in values]
    assert [list(c) for c in table["wf_citations"]] == urls
    for metadata in table["wf_metadata"]:
        warnings = json.loads(metadata)[WARNINGS_KEY]
        assert warnings == [
            "citations: took the 'url' of 1 object",
            "citations: dropped 1 null item",
            "citations: dropped 1 item that are neither a URL nor an object with a 'url': 3",
        ]


def test_runchat_citations_that_are_not_strings_are_cleaned_and_said() -> None:
    workflow = RunchatWorkflow("demo", ["q"], citations_output="sources")
    body = {
        "data": [
            {"id": "text", "type": "string", "data": ["hello"]},
            {
                "id": "sources",
                "type": "array",
                "data": ["https://a.example", {"url": "https://b.example"}, None, {"x": 1}],
            },
        ]
    }
    outcome = workflow.parse(HttpResponse(200, {}, json.dumps(body).encode()))
    assert outcome.citations == ("https://a.example", "https://b.example")
    assert outcome.metadata[WARNINGS_KEY] == [
        "citations: took the 'url' of 1 object",
        "citations: dropped 1 null item",
        """citations: dropped 1 item that are neither a URL nor an object with a 'url': {"x": 1}""",
    ]


def test_an_unusable_answer_keeps_a_bounded_excerpt_and_never_the_key() -> None:
    workflow = AITutorWorkflow("wf_echo", ["text"])
    echoed = json.dumps({"success": True, "result": None, "echo": f"Bearer {KEY}" + "x" * 500})
    with pytest.raises(UnusableAnswerError) as info:
        workflow.parse(HttpResponse(200, {}, echoed.encode()))
    error = info.value
    assert error.status == 200 and len(error.excerpt) < 220
    assert "first 160 characters" in error.excerpt
    masked = error.without(KEY)
    assert KEY not in str(masked) and KEY not in masked.excerpt and "[redacted]" in str(masked)
