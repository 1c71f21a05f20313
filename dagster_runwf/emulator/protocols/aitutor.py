"""The AI Tutor API's wire protocol: ``POST /run/{id}``, ``POST /run/{id}/stream``,
``GET /balance`` and ``GET /token``.

Responses copy the real service's bodies, statuses and headers as far as they are known
(see the wire reference). Checks run in the order the real server is understood to use:
key, workflow, rate limit, credits, then injected faults and the run itself. Only run calls
count against the rate limit (the stream call is documented as not limited); a refused
request does not take a slot. Credits are charged only for runs that produced a result: a
200, including a deliberately malformed one (the run happened; only its response was
damaged on the way).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web

from dagster_runwf.emulator.faults import Fault
from dagster_runwf.emulator.protocols.exchange import (
    MISSING,
    Exchange,
    RequestRecord,
    ServiceBodies,
    bearer_key,
    encode,
    json_response,
)
from dagster_runwf.emulator.render import aitutor_run, canonical_json
from dagster_runwf.emulator.state import UNLIMITED_BALANCE

# AI Tutor bodies, as its documentation and source show them.
UNAUTHORIZED = encode(
    {"error": "Unauthorized. Please provide a valid secret key.", "success": False}
)
NOT_FOUND = encode({"error": "Workflow not found", "success": False, "code": "workflow_not_found"})
NO_CREDITS = encode(
    {
        "error": "No credits remaining. Please add credits to continue using the service.",
        "success": False,
        "code": "invalid_billing",
    }
)
RUN_FAILED = encode(
    {"error": "The workflow failed on this input", "success": False, "code": "workflow_run_failed"}
)
NO_ROUTE = encode({"error": "Not found", "success": False})
BODIES = ServiceBodies(
    service="aitutor",
    failed=encode(
        {"error": "Failed to run workflow", "success": False, "code": "internal_server_error"}
    ),
    rate_limited=encode({"error": "Rate limit exceeded", "success": False}),
    run_failed_200=RUN_FAILED,  # the same body, answered with a 200
)


class AITutorAPI:
    """The AI Tutor endpoints."""

    def __init__(self, exchange: Exchange) -> None:
        self._x = exchange

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Serve the endpoints under ``prefix`` (anything else there answers 404)."""
        router.add_post(f"{prefix}/run/{{workflow_id}}", self.run)
        router.add_post(f"{prefix}/run/{{workflow_id}}/stream", self.stream)
        router.add_get(f"{prefix}/balance", self.balance)
        router.add_get(f"{prefix}/token", self.token)
        router.add_route("*", f"{prefix}/{{tail:.*}}", self.no_route)

    async def run(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "aitutor.run", self._run)

    async def balance(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "aitutor.balance", self._balance)

    async def token(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "aitutor.token", self._token)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "aitutor.stream", self._stream)

    async def no_route(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "aitutor.other", self._no_route)

    async def _run(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        x = self._x
        st = x.state
        key = ctx.key = bearer_key(request)
        wf_id = ctx.workflow = request.match_info["workflow_id"]
        if key is None or not st.key_known(key):
            return json_response(401, UNAUTHORIZED)
        body = x.take_body(ctx, await request.read())
        body_sha = ctx.sha
        if body is MISSING:
            body, body_sha = {}, None  # the server reads a body that is not JSON as {}
        # One instant for the arrival window and the limiter: judged on two clock readings, a
        # thread switch between them (a loaded machine) could refuse a request the arrival
        # window shows within the limit.
        arrived = time.monotonic()
        st.arrive("aitutor", key, arrived)
        spec = x.config.workflow(wf_id, "aitutor")
        if spec is None:
            return json_response(404, NOT_FOUND)
        scope, faults = x.faults.faults_for(spec)
        if x.faults.take_burst(scope):
            st.faults_injected["rate_limit_burst"] += 1
            return x.rate_limited(BODIES, faults)
        ok, limit, remaining = st.admit("aitutor", key, arrived)
        if not ok:
            return x.rate_limited(BODIES, faults)
        if not st.has_credits(key):
            return json_response(402, NO_CREDITS)
        failed, late = await x.before_run(ctx, spec, faults, BODIES)
        if failed is not None:
            return failed
        run = aitutor_run(spec, body, body_sha)
        st.undefined_substitutions += len(run.undefined)
        x.count_run(ctx, spec, key)
        if spec.fail_when is not None and spec.fail_when in canonical_json(body):
            return json_response(500, RUN_FAILED)
        payload: dict[str, Any] = {"success": True, "result": run.result}
        if run.citations:
            payload["citations"] = run.citations
        headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining)}
        return await x.answer(request, payload, faults, late, headers)

    async def _balance(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        st = self._x.state
        key = ctx.key = bearer_key(request)
        if key is None or not st.key_known(key):
            return json_response(401, UNAUTHORIZED)
        left = st.balance(key)
        credits: float = UNLIMITED_BALANCE if left is None else left
        if float(credits).is_integer():
            credits = int(credits)
        return json_response(200, encode({"success": True, "credits": credits}))

    async def _token(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        st = self._x.state
        key = ctx.key = bearer_key(request)
        if key is None or not st.key_known(key):
            return json_response(401, UNAUTHORIZED)
        try:
            ttl = int(request.query.get("ttl", "60"))
        except ValueError:
            ttl = 60
        ttl = min(300, max(1, ttl))
        token = "pub_tok_" + uuid.uuid4().hex
        st.tokens.issue(token, key, ttl, time.monotonic())
        return json_response(200, encode({"success": True, "token": token, "ttl": ttl}))

    async def _stream(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        """Plain-text deltas; single-use token; not rate limited. A fault that happens
        after the stream began (``malformed_rate``, ``error_rate``) just ends it early."""
        x = self._x
        st = x.state
        wf_id = ctx.workflow = request.match_info["workflow_id"]
        key = ctx.key = st.tokens.redeem(request.query.get("token", ""), time.monotonic())
        if key is None or not st.key_known(key):
            return json_response(401, UNAUTHORIZED)
        body = x.take_body(ctx, await request.read())
        if body is MISSING:
            body = {}
        spec = x.config.workflow(wf_id, "aitutor")
        if spec is None:
            return json_response(404, NOT_FOUND)
        if not st.has_credits(key):
            return json_response(402, NO_CREDITS)
        _, faults = x.faults.faults_for(spec)
        fault = x.faults.before_run(faults, wf_id, ctx.sha or "")
        late = x.faults.late(fault, faults)
        cut = fault is Fault.ERROR or late is not None or x.faults.malformed(faults)
        if fault is not None and fault is not Fault.ERROR and late is None:
            return x.fault_response(fault, BODIES, faults)
        run = aitutor_run(spec, body)
        st.undefined_substitutions += len(run.undefined)
        text = run.result
        chunks = [text[i : i + 16] for i in range(0, len(text), 16)] or [""]
        if cut:
            st.faults_injected["stream_cut"] += 1
            chunks = chunks[: max(1, len(chunks) // 2)]
        resp = web.StreamResponse(status=200)
        resp.content_type = "text/plain"
        resp.charset = "utf-8"
        await resp.prepare(request)
        pause = x.faults.delay(spec, faults) / len(chunks)
        for chunk in chunks:
            if pause > 0:
                await asyncio.sleep(pause)
            await resp.write(chunk.encode("utf-8"))
        if not cut:
            x.count_run(ctx, spec, key)
        await resp.write_eof()
        return resp

    async def _no_route(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        ctx.key = bearer_key(request)
        return json_response(404, NO_ROUTE)
