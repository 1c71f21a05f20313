"""Where the key may go: never along a redirect, never to a server whose certificate does not
verify. Real servers on loopback, both HTTP backends."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagster_runwf import AITutorWorkflow, FanOutStopped, FatalError, run_workflow_rows_sync

from ..conftest import KEY, engine_options

BACKENDS = ["aiohttp", "httpx"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every POST as the handler class's ``answer`` says, recording what came."""

    answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        type(self).seen.append({"path": self.path, "headers": dict(self.headers)})
        status, headers, body = self.answer
        self.send_response(status)
        for name, value in {**headers, "content-length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(
    host: str, answer: tuple[int, dict[str, str], bytes], tls: ssl.SSLContext | None = None
) -> tuple[http.server.ThreadingHTTPServer, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"answer": answer, "seen": seen})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def servers() -> Iterator[list[http.server.ThreadingHTTPServer]]:
    started: list[http.server.ThreadingHTTPServer] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def _run(base_url: str, backend: str) -> FanOutStopped:
    with pytest.raises(FanOutStopped) as stopped:
        run_workflow_rows_sync(
            AITutorWorkflow("wf_echo", ["text"]),
            [{"text": f"row {i}"} for i in range(5)],
            engine_options(base_url, concurrency=2, backend=backend),
        )
    return stopped.value


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_stops_the_run(
    servers: list[http.server.ThreadingHTTPServer], backend: str, status: int
) -> None:
    # 127.0.0.2 is loopback too, but another host as far as a client is concerned.
    elsewhere, reached = _serve("127.0.0.2", (200, {}, json.dumps({"result": "x"}).encode()))
    target = f"http://127.0.0.2:{elsewhere.server_port}/api/v1/run"
    redirecting, asked = _serve("127.0.0.1", (status, {"location": target}, b""))
    servers.extend([elsewhere, redirecting])

    stop = _run(f"http://127.0.0.1:{redirecting.server_port}/api/v1", backend)

    assert not reached, "nothing, let alone the key, went to the redirect's target"
    assert 1 <= len(asked) <= 2, "the first answers stop the fan-out (two in flight)"
    assert isinstance(stop.cause, FatalError)
    message = str(stop)
    assert f"answered {status}" in message and "127.0.0.2" in message and "base_url" in message
    assert KEY not in message


@pytest.fixture(scope="module")
def untrusted_tls() -> ssl.SSLContext:
    """A server certificate for 127.0.0.1 from a CA that nobody trusts."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_certificate_that_does_not_verify_stops_before_the_key_is_sent(
    servers: list[http.server.ThreadingHTTPServer],
    untrusted_tls: ssl.SSLContext,
    backend: str,
    tmp_path: Path,
) -> None:
    server, seen = _serve("127.0.0.1", (200, {}, b"{}"), tls=untrusted_tls)
    servers.append(server)
    with pytest.raises(FanOutStopped) as stopped:
        run_workflow_rows_sync(
            AITutorWorkflow("wf_echo", ["text"]),
            [{"text": "row"}],
            engine_options(f"https://127.0.0.1:{server.server_port}/api/v1", backend=backend),
        )
    assert not seen, "the TLS handshake failed: no request, no key"
    message = str(stopped.value).lower()
    assert "certificate" in message and KEY.lower() not in message
