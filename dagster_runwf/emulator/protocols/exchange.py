"""What every emulated endpoint shares: bookkeeping of each request (counters, the log),
reading bodies, and the answers that damage or refuse a run the same way on both services.

Handlers are written for speed (no middleware, no access log, constant error bodies
pre-encoded): a benchmark must measure the client, not the emulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.faults import UNUSABLE_ANSWERS, Fault, FaultInjector
from dagster_runwf.emulator.render import body_digest, sha256_hex
from dagster_runwf.emulator.state import EmulatorState, fingerprint
from dagster_runwf.emulator.workflow_spec import Service, WorkflowSpec

MISSING = object()
"""What :meth:`Exchange.take_body` returns for a body that is not JSON."""

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

HTML_200 = (
    b"<!DOCTYPE html>\r\n<html><head><title>Sign in - Example SSO</title></head>\r\n"
    b'<body><form action="/login"><input name="user"></form></body></html>\r\n'
)
"""A 200 HTML page, as from a captive portal or a login wall in front of the service."""

_encoder = json.JSONEncoder(ensure_ascii=False).encode


def encode(payload: Any) -> bytes:
    """``payload`` as a UTF-8 JSON body."""
    return _encoder(payload).encode("utf-8")


def json_response(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response with an already encoded JSON ``body``."""
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def bearer_key(request: web.Request) -> str | None:
    """The bearer token of the request, or ``None`` if absent or empty."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


@dataclass(frozen=True)
class ServiceBodies:
    """The error bodies of one service that the shared answers use."""

    service: Service
    failed: bytes
    """A server error (status 500, or the configured ``error_status``)."""
    rate_limited: bytes
    """The 429's body."""
    run_failed_200: bytes
    """A 200 that says the run failed (``fail_with: success_false``)."""


class RequestRecord:
    """What the log records about one request."""

    __slots__ = ("endpoint", "key", "method", "path", "raw", "service", "sha", "t0", "workflow")

    def __init__(self, request: web.Request, service: str, endpoint: str) -> None:
        self.service = service
        self.endpoint = endpoint
        self.method = request.method
        self.path = request.path
        self.key: str | None = None
        self.workflow: str | None = None
        self.raw: bytes | None = None
        self.sha: str | None = None
        self.t0 = time.perf_counter()


class Dropped(Exception):
    """The connection was closed on purpose: with no response, or halfway through one."""

    def __init__(self, status: str = "dropped") -> None:
        super().__init__(status)
        self.status = status


Handler = Callable[[web.Request, RequestRecord], Awaitable[web.StreamResponse]]


class Exchange:
    """The configuration, state and fault decisions every protocol's handlers share, and
    what they do alike."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self.faults = FaultInjector(config)

    async def serve(
        self, request: web.Request, bodies: ServiceBodies, endpoint: str, handler: Handler
    ) -> web.StreamResponse:
        """Run ``handler``, counting and logging the request whatever it answers."""
        st = self.state
        ctx = RequestRecord(request, bodies.service, endpoint)
        st.total_requests += 1
        st.by_endpoint[endpoint] += 1
        st.in_flight += 1
        if st.in_flight > st.max_in_flight:
            st.max_in_flight = st.in_flight
        status: int | str
        try:
            resp = await handler(request, ctx)
            status = resp.status
        except Dropped as dropped:
            transport = request.transport
            if transport is not None:
                transport.close()
            resp = web.Response(status=500)
            status = dropped.status
        except asyncio.CancelledError:
            status = "cancelled"
            self._record(ctx, status)
            raise
        except Exception as exc:  # a bug in the emulator must still answer as a server
            resp = json_response(500, bodies.failed, {"x-emulator-error": type(exc).__name__})
            status = 500
        finally:
            st.in_flight -= 1
        self._record(ctx, status)
        return resp

    def _record(self, ctx: RequestRecord, status: int | str) -> None:
        st = self.state
        st.by_status[str(status)] += 1
        log = st.log
        key = ctx.key
        log.add(
            (
                log.total,
                time.time(),
                ctx.service,
                ctx.endpoint,
                ctx.method,
                ctx.path,
                ctx.workflow,
                status,
                None if key is None else fingerprint(key),
                ctx.sha,
                ctx.raw if self.config.log_bodies else None,
                time.perf_counter() - ctx.t0,
            )
        )

    def take_body(self, ctx: RequestRecord, raw: bytes) -> Any:
        """Parse a JSON body, remembering it and its digest; :data:`MISSING` if not JSON."""
        if not raw:
            body: Any = MISSING
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = MISSING
        ctx.raw = raw
        ctx.sha = sha256_hex(raw) if body is MISSING else body_digest(body)
        self.state.bodies_by_sha256[ctx.sha] += 1
        return body

    def fault_response(
        self, fault: Fault, bodies: ServiceBodies, faults: FaultConfig
    ) -> web.Response:
        """The answer to a request that met ``fault`` before its run."""
        self.state.faults_injected[fault.value] += 1
        kind = faults.fail_with if fault is Fault.FAIL_ATTEMPT else fault.value
        if kind in ("drop", "reset"):  # a reset before the run has nothing to cut short
            raise Dropped()
        if kind in ("html", "html_error"):
            return web.Response(status=502, body=HTML_502, content_type="text/html")
        if kind == "success_false":
            return json_response(200, bodies.run_failed_200)
        return json_response(faults.error_status, bodies.failed)

    async def before_run(
        self, ctx: RequestRecord, spec: WorkflowSpec, faults: FaultConfig, bodies: ServiceBodies
    ) -> tuple[web.Response | None, str | None]:
        """Meet the injected faults due before a run, then wait out its latency.

        Returns:
            ``(response, None)``: a fault ended the request, answer ``response``.
            ``(None, late)``: run it, then damage its answer as ``late`` says (see
            :meth:`answer`).
        """
        fault = self.faults.before_run(faults, spec.id, ctx.sha or "")
        late = self.faults.late(fault, faults)
        if fault is not None and late is None:
            return self.fault_response(fault, bodies, faults), None
        delay = self.faults.delay(spec, faults)
        if delay > 0:
            await asyncio.sleep(delay)
        return None, late

    async def answer(
        self,
        request: web.Request,
        payload: Any,
        faults: FaultConfig,
        late: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """A run's answer, damaged on the way when ``late`` says so (see ``fail_with``)."""
        if late is None and faults.drip_interval_s > 0:
            return await self._drip(request, payload, faults, headers)
        if late is None:
            return self._success(payload, faults, headers)
        self.state.faults_injected[late] += 1
        if late == "malformed":
            return self._success(payload, faults, headers, malformed=True)
        if late == "drop_after_run":
            raise Dropped()
        if late in UNUSABLE_ANSWERS:
            body, content_type = damaged_answer(payload, late)
            return web.Response(status=200, body=body, content_type=content_type, headers=headers)
        # "reset": the headers and half the body, then the connection closes.
        body = encode(payload)
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        raise Dropped("reset")

    async def _drip(
        self,
        request: web.Request,
        payload: Any,
        faults: FaultConfig,
        headers: Mapping[str, str] | None,
    ) -> web.StreamResponse:
        """A successful answer sent one byte every ``drip_interval_s`` (the run is charged)."""
        self.state.faults_injected["drip"] += 1
        body = encode(payload)
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(request)
        for i in range(len(body)):
            await resp.write(body[i : i + 1])
            await asyncio.sleep(faults.drip_interval_s)
        await resp.write_eof()
        return resp

    def rate_limited(self, bodies: ServiceBodies, faults: FaultConfig) -> web.Response:
        """A 429, with the configured ``Retry-After`` if any."""
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
        return json_response(429, bodies.rate_limited, headers)

    def _success(
        self,
        payload: Any,
        faults: FaultConfig,
        headers: Mapping[str, str] | None = None,
        *,
        malformed: bool = False,
    ) -> web.Response:
        body = encode(payload)
        if malformed or self.faults.malformed(faults):
            self.state.faults_injected["malformed"] += 1
            body = body[: max(1, len(body) // 2)]
        elif faults.huge_body_bytes and len(body) < faults.huge_body_bytes:
            body += b" " * (faults.huge_body_bytes - len(body))
        return json_response(200, body, headers)

    def count_run(self, ctx: RequestRecord, spec: WorkflowSpec, key: str) -> None:
        """A run happened: charge it and count it by workflow and body."""
        st = self.state
        st.charge(key, spec.credits_per_run)
        st.runs_by_workflow[spec.id] += 1
        if ctx.sha is not None:
            st.runs_by_sha256[ctx.sha] += 1


def damaged_answer(payload: dict[str, Any], kind: str) -> tuple[bytes, str]:
    """A run's answer replaced as ``fail_with: kind`` says (one of ``UNUSABLE_ANSWERS``
    but ``drop_after_run``): the body and its content type. The result is AI Tutor's
    ``result`` or Runchat's ``data``; citations are AI Tutor's (Runchat's are left alone)."""
    key = "result" if "result" in payload else "data"
    changed = dict(payload)
    if kind == "html_200":
        return HTML_200, "text/html"
    if kind == "invalid_utf8":
        body = encode(payload)
        return body[:2] + b"\xff" + body[2:], "application/json"  # inside the first key
    if kind == "no_result":
        del changed[key]
    elif kind == "null_result":
        changed[key] = None
    elif kind == "number_result":
        changed[key] = 42
    elif kind == "bad_citations" and "citations" in payload:
        changed["citations"] = ", ".join(payload["citations"])
    elif kind == "odd_citations" and "citations" in payload:
        changed["citations"] = [{"url": c, "title": "a source"} for c in payload["citations"]]
        changed["citations"] += [None, 3]
    return encode(changed), "application/json"
