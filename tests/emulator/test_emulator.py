"""The emulator speaks both services' wire protocols, over real loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dagster_runwf.emulator import Emulator, EmulatorConfig, WorkflowSpec
from dagster_runwf.emulator.builtins import builtin_workflows
from dagster_runwf.emulator.cli import main as emulator_main
from dagster_runwf.emulator.render import aitutor_run, js_string
from dagster_runwf.emulator.state import fingerprint

KEY = "sk_emulator_test_a"
OTHER = "sk_emulator_test_b"
AUTH = {"Authorization": f"Bearer {KEY}"}

STATS_KEYS = {
    "total_requests",
    "by_endpoint",
    "by_status",
    "runs_by_workflow",
    "max_requests_in_window",
    "rate_limits",
    "window_s",
    "undefined_substitutions",
    "instances_started",
    "instances_continued",
    "bodies_by_sha256",
    "runs_by_sha256",
    "duplicate_runs",
    "faults_injected",
    "credits_remaining",
    "credits_spent",
    "in_flight",
    "max_in_flight",
    "log_entries",
    "log_dropped",
    "uptime_s",
    "since_reset_s",
}


@pytest.fixture
def make_emu() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(**config: Any) -> Emulator:
        emu = Emulator(EmulatorConfig.from_dict(config)).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def run_at(c: httpx.Client, emu: Emulator, wf: str, body: Any, key: str = KEY) -> httpx.Response:
    return c.post(
        f"{emu.aitutor_url}/run/{wf}", json=body, headers={"Authorization": f"Bearer {key}"}
    )


# -- the seeds' examples ------------------------------------------------------------------


def test_aitutor_seed_curl_example_as_written(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu()
    # The documentation's curl example, only the base URL swapped.
    r = httpx.post(
        f"{emu.aitutor_url}/run/wf_abc123",
        headers={"Authorization": "Bearer YOUR_API_KEY", "Content-Type": "application/json"},
        content='{"story": "a story about a dog named charlie"}',
    )
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert "a story about a dog named charlie" in body["result"]
    assert "citations" not in body  # no citations configured: the key is omitted
    assert r.headers["x-ratelimit-limit"] == "10"
    assert r.headers["x-ratelimit-remaining"] == "9"
    assert emu.aitutor_url.startswith("http://127.0.0.1:")
    assert emu.aitutor_url.endswith("/aitutor/api/v1")


def test_runchat_seed_examples(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu()
    url = f"{emu.runchat_url}/demo"
    api_input = {
        "runchat_instance_id": "existing-instance-uuid",
        "inputs": {"prompt_xyz123": "Generate a story about a robot.", "maxTokens_abc456": [100]},
    }
    webhook_input = {
        "runchat_instance_id": "new-or-existing-instance-uuid",
        "event": "user_created",
        "user_id": "usr_789",
        "timestamp": "2024-01-01T12:00:00Z",
    }
    new_instance = {"inputs": {"query_nodeA": "What is the weather?"}}
    answers = []
    for body, instance in (
        (api_input, "existing-instance-uuid"),
        (webhook_input, "new-or-existing-instance-uuid"),
        (new_instance, None),
    ):
        r = client.post(url, json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        out = r.json()
        assert set(out) == {"metadata", "runchat_instance_id", "data"}
        meta = json.loads(out["metadata"])
        assert isinstance(meta, dict) and meta["credits_used"] == 1
        if instance is None:
            assert len(out["runchat_instance_id"]) == 36  # a fresh uuid
        else:
            assert out["runchat_instance_id"] == instance
        by_id = {p["id"]: p for p in out["data"]}
        assert by_id["answer_out1"]["label"] == "Answer"
        assert by_id["answer_out1"]["type"] == "string"
        assert by_id["sources_out2"]["type"] == "array"
        assert len(by_id["sources_out2"]["data"]) == 2
        for p in out["data"]:
            assert set(p) == {"id", "label", "type", "description", "data"}
            assert isinstance(p["data"], list)
        answers.append(by_id["answer_out1"]["data"][0])
    assert "usr_789" in answers[1]  # the webhook body became the flow's input
    assert "What is the weather?" in answers[2]
    assert len(set(answers)) == 3
    # GET runs the flow with no inputs.
    r = client.get(url, headers=AUTH)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "answer_out1"


def test_runchat_schema(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu()
    r = client.get(f"{emu.runchat_url}/demo/schema", headers=AUTH)
    assert r.status_code == 200
    schema = r.json()
    assert set(schema) == {"name", "inputs", "outputs"}
    ids = [p["id"] for p in schema["inputs"]]
    assert {"prompt_xyz123", "maxTokens_abc456", "query_nodeA"} <= set(ids)
    assert all(p["data"] == [] for p in schema["inputs"] + schema["outputs"])
    assert {"id": "answer_out1", "label": "Answer"}.items() <= schema["outputs"][0].items()
    assert client.get(f"{emu.runchat_url}/nope/schema", headers=AUTH).status_code == 404


def test_runchat_input_validation(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu()
    r = client.post(f"{emu.runchat_url}/demo", json={"inputs": {"bogus_x": 1}}, headers=AUTH)
    assert r.status_code == 400 and r.json() == {"error": "Unknown input parameter: bogus_x"}
    r = client.post(f"{emu.runchat_url}/translate", json={"inputs": {}}, headers=AUTH)
    assert r.status_code == 400 and "text_n1" in r.json()["error"]
    r = client.post(f"{emu.runchat_url}/demo", content=b"{not json", headers=AUTH)
    assert r.status_code == 400


# -- auth, not found, credits -------------------------------------------------------------


def test_401_for_missing_or_unknown_key(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(keys={KEY: {}})
    r = client.post(f"{emu.aitutor_url}/run/wf_abc123", json={"story": "x"})
    assert r.status_code == 401
    assert r.json() == {
        "error": "Unauthorized. Please provide a valid secret key.",
        "success": False,
    }
    assert run_at(client, emu, "wf_abc123", {"story": "x"}, key=OTHER).status_code == 401
    assert client.get(f"{emu.aitutor_url}/balance").status_code == 401
    r = client.post(f"{emu.runchat_url}/demo", json={})
    assert r.status_code == 401 and "error" in r.json()
    assert run_at(client, emu, "wf_abc123", {"story": "x"}).status_code == 200


def test_404_unknown_or_unpublished_workflow(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu()
    expected = {"error": "Workflow not found", "success": False, "code": "workflow_not_found"}
    for wf in ("wf_nope", "wf_draft", "demo"):  # demo is a Runchat flow, not AI Tutor
        r = run_at(client, emu, wf, {"text": "x"})
        assert r.status_code == 404 and r.json() == expected
    r = client.post(f"{emu.runchat_url}/wf_abc123", json={}, headers=AUTH)
    assert r.status_code == 404 and "error" in r.json()


def test_402_when_aitutor_credits_run_out(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(keys={KEY: {"credits": 2}})
    assert client.get(f"{emu.aitutor_url}/balance", headers=AUTH).json() == {
        "success": True,
        "credits": 2,
    }
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 200
    assert run_at(client, emu, "wf_abc123", {"story": "b"}).status_code == 200
    r = run_at(client, emu, "wf_abc123", {"story": "c"})
    assert r.status_code == 402
    assert r.json() == {
        "error": "No credits remaining. Please add credits to continue using the service.",
        "success": False,
        "code": "invalid_billing",
    }
    assert client.get(f"{emu.aitutor_url}/balance", headers=AUTH).json()["credits"] == 0
    assert emu.stats()["credits_remaining"] == {fingerprint(KEY): 0}


def test_403_when_runchat_credits_run_out(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(keys={KEY: {"credits": 1}})
    url = f"{emu.runchat_url}/demo"
    assert client.post(url, json={"inputs": {"query_nodeA": "a"}}, headers=AUTH).status_code == 200
    r = client.post(url, json={"inputs": {"query_nodeA": "b"}}, headers=AUTH)
    assert r.status_code == 403 and r.json()["error"].startswith(
        "You have used all of your credits"
    )


def test_a_runchat_flow_fails_a_run_whose_body_holds_its_fail_when_text(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    flow = {
        "id": "fragile",
        "service": "runchat",
        "inputs": [{"id": "text_n1", "label": "Text", "type": "string"}],
        "outputs": [{"id": "out_n2", "label": "Out", "type": "string", "template": "{{text_n1}}"}],
        "fail_when": "bad",
    }
    emu = make_emu(workflows=[flow], keys={KEY: {"credits": 5}})
    url = f"{emu.runchat_url}/fragile"
    good = client.post(url, json={"inputs": {"text_n1": "fine"}}, headers=AUTH)
    assert good.status_code == 200 and "data" in good.json()
    bad = client.post(url, json={"inputs": {"text_n1": "a bad one"}}, headers=AUTH)
    assert bad.status_code == 200
    assert bad.json() == {"status": "error", "error": "The flow failed on this input"}
    assert emu.stats()["credits_remaining"][fingerprint(KEY)] == 3, "the failed run is charged too"


# -- rate limits --------------------------------------------------------------------------


def test_aitutor_sliding_window(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(aitutor_rate_limit=3)
    remaining = []
    for i in range(3):
        r = run_at(client, emu, "wf_abc123", {"story": str(i)})
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "3"
        remaining.append(r.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    first_ok = time.monotonic()
    r = run_at(client, emu, "wf_abc123", {"story": "3"})
    assert r.status_code == 429
    assert r.json() == {"error": "Rate limit exceeded", "success": False}
    assert not any(h.lower().startswith("x-ratelimit") for h in r.headers)
    assert "retry-after" not in r.headers
    # Another key has its own window.
    assert run_at(client, emu, "wf_abc123", {"story": "x"}, key=OTHER).status_code == 200
    time.sleep(max(0.0, 1.02 - (time.monotonic() - first_ok)))
    assert run_at(client, emu, "wf_abc123", {"story": "4"}).status_code == 200
    stats = emu.stats()
    # Every arrival counts, the refused one included.
    assert stats["max_requests_in_window"]["aitutor"][fingerprint(KEY)] == 4
    assert stats["max_requests_in_window"]["aitutor"][fingerprint(OTHER)] == 1
    assert stats["rate_limits"]["aitutor"][fingerprint(KEY)] == 3
    assert stats["by_status"]["429"] == 1


def test_per_key_rate_override(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(keys={KEY: {"aitutor_rate_limit": 1}, OTHER: {}}, aitutor_rate_limit=5)
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).headers["x-ratelimit-limit"] == "1"
    assert run_at(client, emu, "wf_abc123", {"story": "b"}).status_code == 429
    r = run_at(client, emu, "wf_abc123", {"story": "b"}, key=OTHER)
    assert r.headers["x-ratelimit-limit"] == "5"


def test_runchat_short_window(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(runchat_rate_limit=2, runchat_window_s=0.4)
    url = f"{emu.runchat_url}/demo"
    codes = [client.post(url, json={"inputs": {}}, headers=AUTH).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.post(url, json={"inputs": {}}, headers=AUTH)
    assert r.status_code == 429 and r.json() == {"error": "Rate limit exceeded"}
    time.sleep(0.45)
    assert client.post(url, json={"inputs": {}}, headers=AUTH).status_code == 200
    assert emu.stats()["window_s"]["runchat"] == 0.4


def test_rate_limit_disabled(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(aitutor_rate_limit=1, rate_limit_enabled=False)
    codes = {run_at(client, emu, "wf_abc123", {"story": str(i)}).status_code for i in range(5)}
    assert codes == {200}
    assert emu.stats()["max_requests_in_window"]["aitutor"][fingerprint(KEY)] == 5


# -- faults -------------------------------------------------------------------------------


def test_fail_attempts_is_deterministic(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(faults={"fail_attempts": 2}, rate_limit_enabled=False)
    codes = [run_at(client, emu, "wf_abc123", {"story": "a"}).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    r = run_at(client, emu, "wf_abc123", {"story": "b"})
    assert r.status_code == 500
    assert r.json() == {
        "error": "Failed to run workflow",
        "success": False,
        "code": "internal_server_error",
    }
    stats = emu.stats()
    assert stats["faults_injected"]["fail_attempts"] == 3
    assert stats["runs_by_workflow"] == {"wf_abc123": 1}
    emu.reset()  # re-arms the counters
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 500


def test_rate_limit_burst_and_retry_after(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(faults={"rate_limit_burst": 2, "retry_after": "1"})
    for _ in range(2):
        r = run_at(client, emu, "wf_abc123", {"story": "a"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 200
    emu.update_config({"faults": {"rate_limit_burst": 1}})
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 429


def test_transport_faults(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(rate_limit_enabled=False)
    emu.update_config({"faults": {"drop_rate": 1.0}})
    with pytest.raises(httpx.TransportError):
        run_at(client, emu, "wf_abc123", {"story": "a"})
    emu.update_config({"faults": {"drop_rate": 0.0, "html_error_rate": 1.0}})
    r = run_at(client, emu, "wf_abc123", {"story": "a"})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    emu.update_config({"faults": {"html_error_rate": 0.0, "malformed_rate": 1.0}})
    r = run_at(client, emu, "wf_abc123", {"story": "a"})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    emu.update_config({"faults": {"malformed_rate": 0.0, "huge_body_bytes": 100_000}})
    r = run_at(client, emu, "wf_abc123", {"story": "a"})
    assert len(r.content) == 100_000 and r.json()["success"] is True
    stats = emu.stats()
    assert stats["by_status"]["dropped"] == 1
    assert {"drop", "html_error", "malformed"} <= set(stats["faults_injected"])


def test_error_rate_is_reproducible(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    outcomes = []
    for _ in range(2):
        emu = make_emu(faults={"error_rate": 0.5}, seed=7, rate_limit_enabled=False)
        codes = [run_at(client, emu, "wf_abc123", {"story": str(i)}).status_code for i in range(20)]
        assert {200, 500} == set(codes)
        outcomes.append(codes)
    assert outcomes[0] == outcomes[1]


def test_per_workflow_faults(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(
        include_builtins=True,
        workflows=[{"id": "wf_flaky", "template": "{{x}}", "faults": {"error_rate": 1.0}}],
    )
    assert run_at(client, emu, "wf_flaky", {"x": "1"}).status_code == 500
    assert run_at(client, emu, "wf_abc123", {"story": "1"}).status_code == 200


def test_latency(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(
        workflows=[{"id": "wf_slow", "template": "{{x}}", "latency": {"min_s": 0.2, "max_s": 0.2}}]
    )
    started = time.monotonic()
    assert run_at(client, emu, "wf_slow", {"x": "1"}).status_code == 200
    assert time.monotonic() - started >= 0.2


# -- results ------------------------------------------------------------------------------


def test_results_are_deterministic_per_input(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(rate_limit_enabled=False)
    spec = next(w for w in builtin_workflows() if w.id == "wf_company_profile")
    bodies = [{"company": f"Acme {i}", "country": "France"} for i in range(5)]
    results = [run_at(client, emu, "wf_company_profile", b).json() for b in bodies]
    again = run_at(client, emu, "wf_company_profile", bodies[0]).json()
    assert again == results[0]
    assert len({r["result"] for r in results}) == 5
    for body, got in zip(bodies, results, strict=True):
        expected = aitutor_run(spec, body)
        assert got["result"] == expected.result
        assert got["citations"] == expected.citations
        assert body["company"] in got["citations"][0]
    # Key order does not matter: the digest is of the canonical JSON.
    swapped = {"country": "France", "company": "Acme 0"}
    assert run_at(client, emu, "wf_company_profile", swapped).json() == results[0]
    stats = emu.stats()
    assert stats["duplicate_runs"] == 2  # bodies[0] ran three times
    assert max(stats["runs_by_sha256"].values()) == 3
    assert sum(stats["bodies_by_sha256"].values()) == 7


def test_template_quirks_and_undefined_substitutions(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(
        include_builtins=True,
        workflows=[{"id": "wf_twice", "template": "{{a}} and {{a}} / {{b}}"}],
        rate_limit_enabled=False,
    )
    r = run_at(client, emu, "wf_company_profile", {"company": "Acme"})
    assert r.status_code == 200
    assert "based in undefined." in r.json()["result"]
    assert emu.stats()["undefined_substitutions"] == 1
    result = run_at(client, emu, "wf_twice", {"a": "x", "b": True}).json()["result"]
    assert result.startswith("x and {{a}} / true [")  # only the first occurrence
    result = run_at(client, emu, "wf_twice", {"a": 1.5, "b": {"k": [1, None]}}).json()["result"]
    assert result.startswith('1.5 and {{a}} / {"k":[1,null]} [')
    # A body that is not JSON is read as {}: every variable is undefined.
    r = client.post(f"{emu.aitutor_url}/run/wf_abc123", content=b"not json", headers=AUTH)
    assert r.status_code == 200 and "undefined" in r.json()["result"]
    assert emu.stats()["undefined_substitutions"] == 2
    assert [js_string(v) for v in (None, False, 3, 2.0, 1e21, 1e-7)] == [
        "null",
        "false",
        "3",
        "2",
        "1e+21",
        "1e-7",
    ]


# -- admin --------------------------------------------------------------------------------


def test_admin_endpoints(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(keys={KEY: {"credits": 100}, OTHER: {}})
    admin = emu.base_url + "/_emulator"
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 200
    client.post(f"{emu.runchat_url}/demo", json={"inputs": {}}, headers=AUTH)

    stats = client.get(f"{admin}/stats").json()
    assert set(stats) == STATS_KEYS
    assert set(emu.stats()) == STATS_KEYS
    assert stats["total_requests"] == 2
    assert stats["by_endpoint"] == {"aitutor.run": 1, "runchat.run": 1}
    assert stats["by_status"] == {"200": 2}
    assert stats["runs_by_workflow"] == {"wf_abc123": 1, "demo": 1}
    assert stats["credits_remaining"][fingerprint(KEY)] == 98

    log = client.get(f"{admin}/requests").json()
    assert log["total"] == 2 and log["dropped"] == 0
    first = log["requests"][0]
    assert set(first) == {
        "seq",
        "time",
        "service",
        "endpoint",
        "method",
        "path",
        "workflow",
        "status",
        "key",
        "body_sha256",
        "body",
        "duration_ms",
    }
    assert first["service"] == "aitutor" and first["status"] == 200
    assert first["body"] == {"story": "a"} and first["key"] == fingerprint(KEY)
    assert KEY not in json.dumps(log)  # keys never leave the process
    assert KEY not in client.get(f"{admin}/config").text
    assert client.get(f"{admin}/requests?service=runchat").json()["requests"][0]["path"] == (
        "/runchat/api/v1/demo"
    )
    assert len(emu.requests(limit=1)) == 1

    # Runtime config: revoke a key, set credits, delete a workflow, change faults.
    patch = {
        "keys": {OTHER: None},
        "credits": {KEY: 0},
        "workflows": {"wf_summarize": None},
        "faults": {"error_rate": 0.0},
    }
    r = client.post(f"{admin}/config", json=patch)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert run_at(client, emu, "wf_abc123", {"story": "b"}, key=OTHER).status_code == 401
    assert run_at(client, emu, "wf_abc123", {"story": "b"}).status_code == 402
    client.post(f"{admin}/config", json={"credits": {KEY: None}})
    assert run_at(client, emu, "wf_summarize", {"text": "b"}).status_code == 404
    assert run_at(client, emu, "wf_abc123", {"story": "b"}).status_code == 200
    assert client.post(f"{admin}/config", json={"nonsense": 1}).status_code == 400
    assert client.post(f"{admin}/config", json={"faults": {"error_rate": 2}}).status_code == 400

    assert client.post(f"{admin}/reset").json() == {"ok": True}
    stats = client.get(f"{admin}/stats").json()
    assert stats["total_requests"] == 0 and stats["by_status"] == {}
    assert client.get(f"{admin}/requests").json()["requests"] == []
    # Reset keeps the (patched) configuration.
    assert run_at(client, emu, "wf_summarize", {"text": "b"}).status_code == 404


def test_log_limit(make_emu: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emu(log_limit=3, rate_limit_enabled=False)
    for i in range(5):
        run_at(client, emu, "wf_abc123", {"story": str(i)})
    assert [e["body"]["story"] for e in emu.requests()] == ["2", "3", "4"]
    assert emu.stats()["log_dropped"] == 2


def test_update_config_adds_a_workflow(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu()
    emu.update_config(workflows={"wf_new": {"service": "aitutor", "template": "New {{q}}"}})
    r = run_at(client, emu, "wf_new", {"q": "thing"})
    assert r.status_code == 200 and r.json()["result"].startswith("New thing [")


def test_a_patch_changes_a_runchat_flows_schema_between_runs(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(rate_limit_enabled=False)
    url = f"{emu.runchat_url}/translate/schema"
    before = client.get(url, headers=AUTH).json()
    assert [p["id"] for p in before["inputs"]] == ["text_n1", "language_n1"]
    emu.update_config(
        workflows={
            "translate": {
                "inputs": [{"id": "text_n1", "label": "Text", "required": True}],
                "outputs": [{"id": "translation_n2", "type": "markdown", "template": "t"}],
            }
        }
    )
    after = client.get(url, headers=AUTH).json()
    assert [p["id"] for p in after["inputs"]] == ["text_n1"]
    assert [(p["id"], p["type"]) for p in after["outputs"]] == [("translation_n2", "markdown")]
    refused = client.post(
        f"{emu.runchat_url}/translate",
        json={"inputs": {"text_n1": "x", "language_n1": "fr"}},
        headers=AUTH,
    )
    assert refused.status_code == 400, "the removed input is no longer the flow's"


def test_the_emulator_records_which_instance_each_run_continued(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(rate_limit_enabled=False)

    def run(text: str, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"inputs": {"text_n1": text}}
        if instance is not None:
            body["runchat_instance_id"] = instance
        answer = client.post(f"{emu.runchat_url}/translate", json=body, headers=AUTH)
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    first = run("one")
    started = first["runchat_instance_id"]
    second = run("two", started)
    assert second["runchat_instance_id"] == started
    assert json.loads(second["metadata"])["instance_turn"] == 2
    other = run("three")["runchat_instance_id"]
    assert other != started
    expected = [
        ("one", started, False, 1),
        ("two", started, True, 2),
        ("three", other, False, 1),
    ]
    runs = emu.instances("translate")
    assert [
        (r["inputs"]["text_n1"], r["instance_id"], r["continued"], r["turn"]) for r in runs
    ] == (expected)
    over_http = client.get(f"{emu.admin_url}/instances", params={"flow": "translate"}).json()
    assert over_http["runs"] == runs
    assert emu.instances("demo") == []
    stats = emu.stats()
    assert (stats["instances_started"], stats["instances_continued"]) == (2, 1)
    emu.reset()
    assert emu.instances() == []


# -- stream -------------------------------------------------------------------------------


def test_stream_with_single_use_token(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(aitutor_rate_limit=1)
    tok = client.get(f"{emu.aitutor_url}/token?ttl=999", headers=AUTH).json()
    assert tok["success"] is True and tok["ttl"] == 300 and tok["token"].startswith("pub_tok_")
    url = f"{emu.aitutor_url}/run/wf_abc123/stream?token={tok['token']}"
    r = client.post(url, json={"story": "a dog"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == aitutor_run(builtin_workflows()[0], {"story": "a dog"}).result
    assert client.post(url, json={"story": "a dog"}).status_code == 401  # used


# -- configuration, CLI, subprocess -------------------------------------------------------


def test_config_from_files(tmp_path: Path) -> None:
    yml = tmp_path / "emu.yaml"
    yml.write_text(
        "aitutor_rate_limit: 3\n"
        "keys:\n  sk_emulator_x: {credits: 5}\n"
        "faults: {fail_attempts: 1, retry_after: 2}\n"
        "workflows:\n"
        "  - id: wf_y\n    template: 'Hi {{name}}'\n    citations: ['https://x/{{name}}']\n"
        "  - id: flow\n    service: runchat\n"
        "    inputs: [{id: q_n1, label: Q}]\n"
        "    outputs: [{id: a_n2, label: A, template: '{{q_n1}}'}]\n",
        encoding="utf-8",
    )
    cfg = EmulatorConfig.from_file(yml)
    assert cfg.aitutor_rate_limit == 3 and cfg.faults.retry_after == "2"
    assert cfg.keys is not None and cfg.keys["sk_emulator_x"].credits == 5
    assert [w.id for w in cfg.workflows] == ["wf_y", "flow"]
    assert cfg.workflows[0].variables == ["name"]  # derived from the template
    js = tmp_path / "emu.json"
    js.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert EmulatorConfig.from_file(js) == cfg
    assert [w.id for w in EmulatorConfig().workflows] == [w.id for w in builtin_workflows()]
    with pytest.raises(ValueError, match="unknown"):
        EmulatorConfig.from_dict({"aitutor_rate": 3})
    with pytest.raises(ValueError):
        WorkflowSpec.from_dict({"id": "x", "service": "other"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"aitutor_rate": 3}, "EmulatorConfig: unknown field(s) ['aitutor_rate']"),
        ({"aitutor_rate_limit": "3"}, "EmulatorConfig.aitutor_rate_limit: expected an integer"),
        ({"rate_limit_enabled": 1}, "EmulatorConfig.rate_limit_enabled: expected true or false"),
        (
            {"workflows": [{"id": "x", "service": "other"}]},
            "EmulatorConfig.workflows[0].service: must be one of 'aitutor', 'runchat'",
        ),
        ({"workflows": [{"service": "runchat"}]}, "workflows[0]: missing required field(s) ['id']"),
        (
            {"workflows": [{"id": "x", "latency": {"min_s": "slow"}}]},
            "EmulatorConfig.workflows[0].latency.min_s: expected a number, got 'slow'",
        ),
        (
            {"workflows": [{"id": "x", "latency": {"min_s": -1}}]},
            "EmulatorConfig.workflows[0].latency: min_s must be >= 0",
        ),
        (
            {"workflows": [{"id": "f", "service": "runchat", "outputs": [{"id": "a", "x": 1}]}]},
            "EmulatorConfig.workflows[0].outputs[0]: unknown field(s) ['x']",
        ),
        (
            {"workflows": [{"id": "x", "template": ["a"]}]},
            "EmulatorConfig.workflows[0].template: expected a string, got ['a']",
        ),
        ({"workflows": [{"id": "x"}, {"id": "x"}]}, "duplicate workflow id(s): ['x']"),
        ({"faults": {"error_rate": 2}}, "EmulatorConfig.faults: error_rate must be within [0, 1]"),
        ({"faults": {"fail_with": "boom"}}, "EmulatorConfig.faults.fail_with: must be one of"),
        ({"keys": {"sk_a": "lots"}}, "EmulatorConfig.keys['sk_a']: expected a mapping or a"),
        ({"keys": {"sk_a": {"credits": [1]}}}, "keys['sk_a'].credits: expected a number"),
        ({"include_builtins": "yes"}, "EmulatorConfig.include_builtins: expected true or false"),
    ],
)
def test_a_bad_config_is_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        EmulatorConfig.from_dict(config)
    assert message in str(refused.value)


def test_config_shorthands_and_empty_sections() -> None:
    cfg = EmulatorConfig.from_dict(
        {
            "keys": {"sk_a": 5, "sk_b": None},  # a number: its credits; null: unlimited
            "faults": None,  # an empty YAML section: the defaults
            "workflows": [{"id": "x", "latency": 0.25, "faults": {"retry_after": 2}}],
        }
    )
    assert cfg.keys is not None
    assert cfg.keys["sk_a"].credits == 5.0 and cfg.keys["sk_b"].credits is None
    assert cfg.faults == EmulatorConfig().faults
    (spec,) = cfg.workflows
    assert (spec.latency.min_s, spec.latency.max_s) == (0.25, 0.25)
    assert spec.faults is not None and spec.faults.retry_after == "2"
    assert spec.name == "x"
    assert EmulatorConfig.from_dict({"workflows": None}).workflows == []


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"nonsense": 1}, "unknown config field(s) ['nonsense']"),
        ({"seed": "s"}, "seed: expected an integer"),
        ({"faults": {"error_rate": 2}}, "faults: error_rate must be within [0, 1]"),
        ({"keys": ["sk_a"]}, "keys: expected a mapping"),
        ({"credits": {"sk_a": "x"}}, "credits['sk_a']: expected a number"),
        ({"workflows": {"wf_abc123": {"latency": "x"}}}, "workflows['wf_abc123'].latency:"),
        ({"workflows": {"wf_new": 3}}, "workflows['wf_new']: expected a mapping"),
    ],
)
def test_a_bad_patch_changes_nothing_and_names_the_field(
    make_emu: Callable[..., Emulator], client: httpx.Client, patch: dict[str, Any], message: str
) -> None:
    emu = make_emu()
    before = emu.config.to_dict()
    r = client.post(f"{emu.admin_url}/config", json=patch)
    assert r.status_code == 400 and message in r.json()["error"]
    assert emu.config.to_dict() == before


def test_cli_help_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        emulator_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("wf_abc123", "story", "wf_company_profile", "demo", "prompt_xyz123", "runchat"):
        assert text in out


def test_subprocess_emulator() -> None:
    with Emulator.in_subprocess({"keys": {KEY: {"credits": 3}}}) as emu:
        r = httpx.post(f"{emu.aitutor_url}/run/wf_abc123", json={"story": "s"}, headers=AUTH)
        assert r.status_code == 200
        assert emu.stats()["credits_remaining"] == {fingerprint(KEY): 2}
        assert emu.requests()[0]["body"] == {"story": "s"}
        emu.update_config({"workflows": {"wf_abc123": {"published": False}}})
        r = httpx.post(f"{emu.aitutor_url}/run/wf_abc123", json={"story": "s"}, headers=AUTH)
        assert r.status_code == 404
        emu.reset()
        assert emu.stats()["total_requests"] == 0
    assert emu.process.poll() is not None


def test_patching_a_key_keeps_spent_credits(
    make_emu: Callable[..., Emulator], client: httpx.Client
) -> None:
    emu = make_emu(keys={KEY: {"credits": 2}})
    assert run_at(client, emu, "wf_abc123", {"story": "a"}).status_code == 200
    emu.update_config(keys={KEY: {"aitutor_rate_limit": 5}})
    r = run_at(client, emu, "wf_abc123", {"story": "b"})
    assert r.headers["x-ratelimit-limit"] == "5"
    assert run_at(client, emu, "wf_abc123", {"story": "c"}).status_code == 402
    emu.update_config(keys={KEY: {"credits": 1}})
    assert run_at(client, emu, "wf_abc123", {"story": "c"}).status_code == 200
