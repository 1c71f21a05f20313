"""The Runchat API's wire protocol: ``POST|GET /{id}`` (a run, with inputs or a webhook
body) and ``GET /{id}/schema``.

Responses copy the real service's bodies, statuses and headers as far as they are known
(see the wire reference). Checks run in the order the real server is understood to use:
key, flow, rate limit, credits, then the body, injected faults and the run itself.
Runchat's documentation speaks of "requests per minute", so every authenticated call
counts against the rate limit, schema calls included; a refused request does not take a
slot. Credits are charged only for runs that produced a result.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.protocols.exchange import (
    MISSING,
    Exchange,
    RequestRecord,
    ServiceBodies,
    bearer_key,
    encode,
    json_response,
)
from dagster_runwf.emulator.render import canonical_json, runchat_outputs
from dagster_runwf.emulator.workflow_spec import WorkflowSpec

# Runchat bodies: ``{"error": str}``.
UNAUTHORIZED = encode({"error": "Unauthorized: invalid or missing API key"})
NOT_FOUND = encode({"error": "Runchat not found"})
NO_CREDITS = encode(
    {"error": "You have used all of your credits. Please upgrade your plan to continue."}
)
NO_ROUTE = encode({"error": "Not found"})
BODIES = ServiceBodies(
    service="runchat",
    failed=encode({"error": "Internal server error"}),
    rate_limited=encode({"error": "Rate limit exceeded"}),
    # A run that failed, answered with a 200 in the shape of a job's answer.
    run_failed_200=encode({"status": "error", "error": "The flow failed on this input"}),
)


class _BadRequest(Exception):
    """The body cannot be run: answered 400 with ``{"error": message}``."""


class RunchatAPI:
    """The Runchat endpoints."""

    def __init__(self, exchange: Exchange) -> None:
        self._x = exchange

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Serve the endpoints under ``prefix`` (anything else there answers 404)."""
        router.add_get(f"{prefix}/{{runchat_id}}/schema", self.schema)
        router.add_post(f"{prefix}/{{runchat_id}}", self.run)
        router.add_get(f"{prefix}/{{runchat_id}}", self.run)
        router.add_route("*", f"{prefix}/{{tail:.*}}", self.no_route)

    async def schema(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "runchat.schema", self._schema)

    async def run(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "runchat.run", self._run)

    async def no_route(self, request: web.Request) -> web.StreamResponse:
        return await self._x.serve(request, BODIES, "runchat.other", self._no_route)

    def _gate(
        self, request: web.Request, ctx: RequestRecord
    ) -> tuple[web.Response | None, WorkflowSpec | None, FaultConfig]:
        """Key, flow and rate-limit checks shared by run and schema: a refusal, or the
        flow and the faults it meets."""
        x = self._x
        st = x.state
        key = ctx.key = bearer_key(request)
        flow_id = ctx.workflow = request.match_info["runchat_id"]
        if key is None or not st.key_known(key):
            return json_response(401, UNAUTHORIZED), None, x.config.faults
        # One instant for the arrival window and the limiter: judged on two clock readings, a
        # thread switch between them (a loaded machine) could refuse a request the arrival
        # window shows within the limit.
        arrived = time.monotonic()
        st.arrive("runchat", key, arrived)
        spec = x.config.workflow(flow_id, "runchat")
        if spec is None:
            return json_response(404, NOT_FOUND), None, x.config.faults
        scope, faults = x.faults.faults_for(spec)
        if x.faults.take_burst(scope):
            st.faults_injected["rate_limit_burst"] += 1
            return x.rate_limited(BODIES, faults), spec, faults
        ok, _, _ = st.admit("runchat", key, arrived)
        if not ok:
            return x.rate_limited(BODIES, faults), spec, faults
        return None, spec, faults

    async def _schema(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        refused, spec, _ = self._gate(request, ctx)
        if refused is not None or spec is None:
            return refused or json_response(404, NOT_FOUND)
        payload = {
            "name": spec.name,
            "inputs": [p.schema() for p in spec.inputs],
            "outputs": [p.schema() for p in spec.outputs],
        }
        return json_response(200, encode(payload))

    async def _run(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        x = self._x
        st = x.state
        t_start = time.perf_counter()
        refused, spec, faults = self._gate(request, ctx)
        if refused is not None or spec is None or ctx.key is None:
            return refused or json_response(404, NOT_FOUND)
        key = ctx.key
        if not st.has_credits(key):
            return json_response(403, NO_CREDITS)
        raw = await request.read() if request.method == "POST" else b""
        try:
            instance_id, inputs, webhook = _read_run_body(spec, x.take_body(ctx, raw), raw)
        except _BadRequest as bad:
            return json_response(400, encode({"error": str(bad)}))
        failed, late = await x.before_run(ctx, spec, faults, BODIES)
        if failed is not None:
            return failed
        data = runchat_outputs(spec, inputs, webhook)
        x.count_run(ctx, spec, key)
        if spec.fail_when is not None and spec.fail_when in raw.decode("utf-8", "replace"):
            # The run happened (and is charged), and the flow failed on this input.
            return json_response(200, BODIES.run_failed_200)
        instance_id, turn = st.run_instance(
            spec.id, instance_id, inputs if webhook is None else webhook
        )
        metadata = {
            "credits_used": spec.credits_per_run,
            "duration_ms": round((time.perf_counter() - t_start) * 1000.0, 3),
            "node_count": len(spec.inputs) + len(spec.outputs) + 1,
            "trigger": "webhook" if webhook is not None else "api",
            "instance_turn": turn,
            "emulated": True,
        }
        payload = {
            "metadata": canonical_json(metadata),
            "runchat_instance_id": instance_id,
            "data": data,
        }
        return await x.answer(request, payload, faults, late)

    async def _no_route(self, request: web.Request, ctx: RequestRecord) -> web.StreamResponse:
        ctx.key = bearer_key(request)
        return json_response(404, NO_ROUTE)


def _read_run_body(
    spec: WorkflowSpec, body: Any, raw: bytes
) -> tuple[str | None, dict[str, Any], Any]:
    """A run's body as ``(instance id, inputs, webhook data)``: ``{"inputs": {...}}`` names
    the flow's inputs; any other object (or JSON value) is webhook data if the flow takes
    it. Raises :class:`_BadRequest` where the real service answers 400."""
    if body is MISSING:
        if raw.strip():
            raise _BadRequest("Invalid JSON body")
        body = {}
    instance_id, inputs, webhook = _split_body(spec, body)
    if webhook is None:
        for p in spec.inputs:
            if p.required and p.id not in inputs:
                raise _BadRequest(f"Missing required input: {p.id}")
    return instance_id, inputs, webhook


def _split_body(spec: WorkflowSpec, body: Any) -> tuple[str | None, dict[str, Any], Any]:
    if not isinstance(body, dict):
        if spec.accepts_webhook:
            return None, {}, body
        raise _BadRequest("Request body must be a JSON object")
    rid = body.get("runchat_instance_id")
    instance_id = rid if isinstance(rid, str) and rid else None
    if "inputs" in body:
        given = body["inputs"]
        if not isinstance(given, dict):
            raise _BadRequest("inputs must be an object")
        known = {p.id for p in spec.inputs}
        for name in given:
            if name not in known:
                raise _BadRequest(f"Unknown input parameter: {name}")
        return instance_id, given, None
    rest = {k: v for k, v in body.items() if k != "runchat_instance_id"}
    if rest and not spec.accepts_webhook:
        raise _BadRequest("Missing inputs")
    return instance_id, {}, rest or None
