"""The pure service layer: requests from rows, outcomes and classified errors from responses."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pandas as pd
import pytest

from dagster_runwf import (
    AITutorWorkflow,
    AuthenticationError,
    ConfigError,
    CreditsExhaustedError,
    Rate,
    RateLimitedError,
    RowInputError,
    RunchatWorkflow,
    RunFailedError,
    ServerError,
    UnusableAnswerError,
    WorkflowNotFoundError,
)
from dagster_runwf.services import aitutor, runchat
from dagster_runwf.services.http import HttpResponse, parse_rate_limit_headers, parse_retry_after


def response(status: int, body: object, headers: dict[str, str] | None = None) -> HttpResponse:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, headers or {"content-type": "application/json"}, content)


# -- requests ---------------------------------------------------------------------------------


def test_aitutor_request_sends_exactly_the_declared_variables() -> None:
    wf = AITutorWorkflow("wf_abc123", ["story"])
    prepared = wf.prepare({"story": "a dog named charlie", "unrelated": 1})
    assert prepared.request.method == "POST"
    assert prepared.request.path == "run/wf_abc123"
    assert json.loads(prepared.request.content or b"") == {"story": "a dog named charlie"}


def test_missing_variable_is_a_row_error_never_a_request() -> None:
    wf = AITutorWorkflow("wf_abc123", ["story", "tone"])
    with pytest.raises(RowInputError, match="'tone' is not in the row") as info:
        wf.prepare({"story": "x"})
    assert info.value.variable == "tone"


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT, np.nan])
def test_missing_cells_fail_by_default_and_send_null_when_asked(missing: object) -> None:
    with pytest.raises(RowInputError, match="'story' is missing"):
        AITutorWorkflow("wf_a", ["story"]).prepare({"story": missing})
    prepared = AITutorWorkflow("wf_a", ["story"], on_missing="null").prepare({"story": missing})
    assert json.loads(prepared.request.content or b"") == {"story": None}


def test_cells_convert_by_the_documented_rules() -> None:
    wf = RunchatWorkflow("demo", ["a", "b", "c", "d", "e", "f", "g", "h"])
    row = {
        "a": np.int64(3),
        "b": np.float32(0.5),
        "c": decimal.Decimal("2.25"),
        "d": pd.Timestamp("2024-01-31T12:00:00Z"),
        "e": dt.date(2024, 2, 1),
        "f": np.array([1, 2]),
        "g": {"0": [1, "x"], "0:1": [np.bool_(True)]},
        "h": "emoji 🚀 ünïcode",
    }
    body = json.loads(wf.prepare(row).request.content or b"")
    assert body == {
        "inputs": {
            "a": 3,
            "b": 0.5,
            "c": 2.25,
            "d": "2024-01-31T12:00:00+00:00",
            "e": "2024-02-01",
            "f": [1, 2],
            "g": {"0": [1, "x"], "0:1": [True]},
            "h": "emoji 🚀 ünïcode",
        }
    }


def test_numpy_datetime64_becomes_iso_text() -> None:
    wf = AITutorWorkflow("wf_a", ["when"])
    request = wf.prepare({"when": np.datetime64("2024-03-04T05:06:07")}).request
    assert request.content is not None
    body = json.loads(request.content)
    assert body == {"when": "2024-03-04T05:06:07"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"raw", "bytes cannot be sent"),
        (math.inf, "not a finite number"),
        (decimal.Decimal("NaN"), "not a finite number"),
        (object(), "cannot be sent as JSON"),
        ({1: "x"}, "not a string"),
    ],
)
def test_unsendable_values_are_row_errors_naming_the_input(value: object, reason: str) -> None:
    with pytest.raises(RowInputError, match=reason) as info:
        AITutorWorkflow("wf_a", ["story"]).prepare({"story": value})
    assert "story" in str(info.value)


def test_input_hash_depends_on_workflow_and_inputs_only() -> None:
    wf = AITutorWorkflow("wf_a", ["x", "y"])
    one = wf.prepare({"x": 1, "y": "a"}).input_hash
    assert wf.prepare({"y": "a", "x": np.int64(1)}).input_hash == one
    assert wf.prepare({"x": 2, "y": "a"}).input_hash != one
    assert AITutorWorkflow("wf_b", ["x", "y"]).prepare({"x": 1, "y": "a"}).input_hash != one


def test_runchat_webhook_body_and_instance_id() -> None:
    wf = RunchatWorkflow("demo", ["event", "user_id"], webhook=True, instance_id="inst-1")
    request = wf.prepare({"event": "user_created", "user_id": "usr_789"}).request
    assert request.content is not None
    body = json.loads(request.content)
    assert body == {"event": "user_created", "user_id": "usr_789", "runchat_instance_id": "inst-1"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: AITutorWorkflow("", ["x"]),
        lambda: AITutorWorkflow("wf_a", "story"),
        lambda: AITutorWorkflow("wf_a", ["x", "x"]),
        lambda: RunchatWorkflow("demo", ["a"], on_missing="ignore"),  # type: ignore[arg-type]
    ],
)
def test_bad_workflow_settings_are_config_errors(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


# -- responses --------------------------------------------------------------------------------


def test_aitutor_success_with_and_without_citations() -> None:
    wf = AITutorWorkflow("wf_a", ["x"])
    out = wf.parse(response(200, {"success": True, "result": "hi", "citations": ["https://a"]}))
    assert (out.result, out.citations) == ("hi", ("https://a",))
    assert wf.parse(response(200, {"success": True, "result": "hi"})).citations == ()


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (401, {"error": "Unauthorized.", "success": False}, AuthenticationError, "API key"),
        (402, {"error": "No credits", "code": "invalid_billing"}, CreditsExhaustedError, "credits"),
        (402, {"error": "limit", "code": "spend_limit_reached"}, CreditsExhaustedError, "limit"),
        (404, {"error": "Workflow not found"}, WorkflowNotFoundError, "wf_a"),
        (429, {"error": "Rate limit exceeded", "success": False}, RateLimitedError, "429"),
        (500, {"error": "Failed", "code": "internal_server_error"}, ServerError, "500"),
        (503, b"<html><title>Service Unavailable</title></html>", ServerError, "HTML page"),
        (500, {"error": "x", "code": "workflow_run_failed"}, RunFailedError, "workflow_run"),
        (400, {"error": "x", "code": "missing_input"}, RunFailedError, "missing_input"),
        (200, b'{"success": true, "resu', UnusableAnswerError, "not JSON"),
        (200, {"success": False, "error": "blocked"}, RunFailedError, "success=false"),
        (200, {"success": True}, UnusableAnswerError, "has no 'result'"),
    ],
)
def test_aitutor_errors_are_classified(
    status: int, body: object, kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind, match=text):
        AITutorWorkflow("wf_a", ["x"]).parse(response(status, body))


def param(pid: str, label: str, ptype: str, data: list[object]) -> dict[str, object]:
    return {"id": pid, "label": label, "type": ptype, "description": "", "data": data}


def test_runchat_outputs_metadata_and_credits() -> None:
    wf = RunchatWorkflow("demo", ["q"], citations_output="Sources")
    out = wf.parse(
        response(
            200,
            {
                "metadata": json.dumps({"credits": 3, "duration_ms": 12}),
                "runchat_instance_id": "inst-9",
                "data": [
                    {
                        "id": "n_x",
                        "label": "Count",
                        "type": "number",
                        "description": "",
                        "data": [2],
                    },
                    {
                        "id": "a_1",
                        "label": "Answer",
                        "type": "string",
                        "description": "",
                        "data": ["ok"],
                    },
                    {
                        "id": "s_2",
                        "label": "Sources",
                        "type": "array",
                        "description": "",
                        "data": ["u1"],
                    },
                ],
            },
        )
    )
    assert out.result == "ok"  # the first text-typed output
    assert out.outputs == {"n_x": 2, "a_1": "ok", "s_2": ["u1"]}
    assert out.output_labels["Answer"] == "a_1"
    assert out.citations == ("u1",)
    assert out.metadata == {"credits": 3, "duration_ms": 12}
    assert (out.instance_id, out.credits) == ("inst-9", 3.0)


def test_runchat_metadata_that_is_not_json_is_kept_raw() -> None:
    out = RunchatWorkflow("demo").parse(response(200, {"metadata": "oops", "data": []}))
    assert out.metadata == {"raw": "oops"}
    assert out.result is None and out.credits is None


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (403, "You have used all of your credits", CreditsExhaustedError),
        (403, "Forbidden", AuthenticationError),
        (404, "Flow not found", WorkflowNotFoundError),
        (400, "Missing parameters", RunFailedError),
    ],
)
def test_runchat_errors_are_classified(status: int, error: str, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        RunchatWorkflow("demo").parse(response(status, {"error": error}))


def test_balance_and_schema_parsing() -> None:
    assert aitutor.parse_balance(response(200, {"success": True, "credits": 42})) == 42.0
    with pytest.raises(AuthenticationError):
        aitutor.parse_balance(response(401, {"error": "no", "success": False}))
    schema = runchat.parse_schema(
        "demo",
        response(
            200,
            {
                "name": "Demo",
                "inputs": [{"id": "q_n", "label": "Q", "type": "string", "description": ""}],
                "outputs": [],
            },
        ),
    )
    assert schema.name == "Demo" and schema.inputs[0].id == "q_n"


# -- headers and rates ------------------------------------------------------------------------


def test_rate_limit_and_retry_after_headers() -> None:
    info = parse_rate_limit_headers({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0"})
    assert info is not None and (info.limit, info.remaining) == (10, 0)
    assert parse_rate_limit_headers({}) is None
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon", now=0) is None


@pytest.mark.parametrize(
    ("text", "requests", "window"),
    [("10/s", 10, 1.0), ("10/min", 10, 60.0), ("5/10s", 5, 10.0), ("600 / hour", 600, 3600.0)],
)
def test_rates_parse(text: str, requests: int, window: float) -> None:
    assert Rate.parse(text) == Rate(requests, window)


@pytest.mark.parametrize("text", ["ten/s", "10", "10/fortnight", "0/s"])
def test_bad_rates_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="rate"):
        Rate.parse(text)
