"""The emulator's HTTP application: both services' wire protocols plus admin endpoints.

One ``aiohttp.web`` application serves:

- the AI Tutor API under ``/aitutor/api/v1`` (``POST /run/{id}``, ``GET /balance``,
  ``GET /token``, ``POST /run/{id}/stream``);
- the Runchat API under ``/runchat/api/v1`` (``POST|GET /{id}``, ``GET /{id}/schema``);
- admin endpoints under ``/_emulator`` (stats, request log, reset, runtime config).

Responses copy the real services' bodies, statuses and headers as far as they are known
(see the wire reference), because the point is to test a client against what it will
meet. Checks run in the order the real servers are understood to use: key, workflow,
rate limit, credits, then injected faults and the run itself.

Rate limits (both sliding windows, per key and service): AI Tutor counts run calls only
(its stream call is documented as not limited); Runchat's documentation speaks of
"requests per minute", so there every authenticated call counts, schema calls included.
A refused request does not take a slot, but it does count in the arrival statistics.
Credits are charged only for runs that produced a result: a 200, including a deliberately
malformed one (the run happened; only its response was damaged on the way).

Handlers are written for speed (no middleware, no access log, constant error bodies
pre-encoded): a benchmark must measure the client, not the emulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.faults import Fault, FaultInjector
from dagster_runwf.emulator.render import (
    aitutor_run,
    body_digest,
    canonical_json,
    runchat_outputs,
    sha256_hex,
)
from dagster_runwf.emulator.state import UNLIMITED_BALANCE, EmulatorState, fingerprint
from dagster_runwf.emulator.workflow_spec import Service, WorkflowSpec

AITUTOR_PREFIX = "/aitutor/api/v1"
RUNCHAT_PREFIX = "/runchat/api/v1"
ADMIN_PREFIX = "/_emulator"

_MISSING = object()

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


_encoder = json.JSONEncoder(ensure_ascii=False).encode


def _enc(payload: Any) -> bytes:
    return _encoder(payload).encode("utf-8")


# AI Tutor bodies, as its documentation and source show them.
AT_UNAUTHORIZED = _enc(
    {"error": "Unauthorized. Please provide a valid secret key.", "success": False}
)
AT_NOT_FOUND = _enc({"error": "Workflow not found", "success": False, "code": "workflow_not_found"})
AT_RATE_LIMITED = _enc({"error": "Rate limit exceeded", "success": False})
AT_NO_CREDITS = _enc(
    {
        "error": "No credits remaining. Please add credits to continue using the service.",
        "success": False,
        "code": "invalid_billing",
    }
)
AT_FAILED = _enc(
    {"error": "Failed to run workflow", "success": False, "code": "internal_server_error"}
)
AT_RUN_FAILED = _enc(
    {"error": "The workflow failed on this input", "success": False, "code": "workflow_run_failed"}
)
AT_SUCCESS_FALSE = AT_RUN_FAILED  # the same body, answered with a 200
AT_NO_ROUTE = _enc({"error": "Not found", "success": False})

# Runchat bodies: ``{"error": str}``.
RC_UNAUTHORIZED = _enc({"error": "Unauthorized: invalid or missing API key"})
RC_NOT_FOUND = _enc({"error": "Runchat not found"})
RC_RATE_LIMITED = _enc({"error": "Rate limit exceeded"})
RC_NO_CREDITS = _enc(
    {"error": "You have used all of your credits. Please upgrade your plan to continue."}
)
RC_FAILED = _enc({"error": "Internal server error"})
# A run that failed, answered with a 200 in the shape of a job's answer ("status": "error").
RC_STATUS_ERROR = _enc({"status": "error", "error": "The flow failed on this input"})
RC_NO_ROUTE = _enc({"error": "Not found"})


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
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


class _Ctx:
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


class _Dropped(Exception):
    """The connection was closed on purpose: with no response, or halfway through one."""

    def __init__(self, status: str = "dropped") -> None:
        super().__init__(status)
        self.status = status


class EmulatorApp:
    """Handlers plus the state and configuration they share."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self.faults = FaultInjector(config)

    # -- building -----------------------------------------------------------------------

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        at, rc, ad = AITUTOR_PREFIX, RUNCHAT_PREFIX, ADMIN_PREFIX
        app.router.add_post(f"{at}/run/{{workflow_id}}", self.aitutor_run)
        app.router.add_post(f"{at}/run/{{workflow_id}}/stream", self.aitutor_stream)
        app.router.add_get(f"{at}/balance", self.aitutor_balance)
        app.router.add_get(f"{at}/token", self.aitutor_token)
        app.router.add_route("*", f"{at}/{{tail:.*}}", self.aitutor_no_route)
        app.router.add_get(f"{ad}/stats", self.admin_stats)
        app.router.add_get(f"{ad}/requests", self.admin_requests)
        app.router.add_post(f"{ad}/reset", self.admin_reset)
        app.router.add_get(f"{ad}/config", self.admin_get_config)
        app.router.add_post(f"{ad}/config", self.admin_patch_config)
        app.router.add_get(f"{rc}/{{runchat_id}}/schema", self.runchat_schema)
        app.router.add_post(f"{rc}/{{runchat_id}}", self.runchat_run)
        app.router.add_get(f"{rc}/{{runchat_id}}", self.runchat_run)
        app.router.add_route("*", f"{rc}/{{tail:.*}}", self.runchat_no_route)
        return app

    # -- bookkeeping --------------------------------------------------------------------

    async def _serve(
        self,
        request: web.Request,
        service: str,
        endpoint: str,
        impl: Callable[[web.Request, _Ctx], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        st = self.state
        ctx = _Ctx(request, service, endpoint)
        st.total_requests += 1
        st.by_endpoint[endpoint] += 1
        st.in_flight += 1
        if st.in_flight > st.max_in_flight:
            st.max_in_flight = st.in_flight
        status: int | str
        try:
            resp = await impl(request, ctx)
            status = resp.status
        except _Dropped as dropped:
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
            body = AT_FAILED if service == "aitutor" else RC_FAILED
            resp = _json(500, body, {"x-emulator-error": type(exc).__name__})
            status = 500
        finally:
            st.in_flight -= 1
        self._record(ctx, status)
        return resp

    def _record(self, ctx: _Ctx, status: int | str) -> None:
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

    def _take_body(self, ctx: _Ctx, raw: bytes) -> Any:
        """Parse a JSON body, remembering it and its digest; ``_MISSING`` if not JSON."""
        if not raw:
            body: Any = _MISSING
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = _MISSING
        ctx.raw = raw
        ctx.sha = sha256_hex(raw) if body is _MISSING else body_digest(body)
        self.state.bodies_by_sha256[ctx.sha] += 1
        return body

    def _fault_response(self, fault: Fault, service: Service, faults: FaultConfig) -> web.Response:
        self.state.faults_injected[fault.value] += 1
        kind = faults.fail_with if fault is Fault.FAIL_ATTEMPT else fault.value
        if kind in ("drop", "reset"):  # a reset before the run has nothing to cut short
            raise _Dropped()
        if kind in ("html", "html_error"):
            return web.Response(status=502, body=HTML_502, content_type="text/html")
        if kind == "success_false":
            return _json(200, AT_SUCCESS_FALSE if service == "aitutor" else RC_STATUS_ERROR)
        return _json(faults.error_status, AT_FAILED if service == "aitutor" else RC_FAILED)

    async def _answer(
        self,
        request: web.Request,
        payload: Any,
        faults: FaultConfig,
        late: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """A run's answer, damaged on the way when ``late`` says so (see ``fail_with``)."""
        if late is None:
            return self._success(payload, faults, headers)
        self.state.faults_injected[late] += 1
        if late == "malformed":
            return self._success(payload, faults, headers, malformed=True)
        # "reset": the headers and half the body, then the connection closes.
        body = _enc(payload)
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        raise _Dropped("reset")

    def _rate_limited(self, service: Service, faults: FaultConfig) -> web.Response:
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
        return _json(429, AT_RATE_LIMITED if service == "aitutor" else RC_RATE_LIMITED, headers)

    def _success(
        self,
        payload: Any,
        faults: FaultConfig,
        headers: Mapping[str, str] | None = None,
        *,
        malformed: bool = False,
    ) -> web.Response:
        body = _enc(payload)
        if malformed or self.faults.malformed(faults):
            self.state.faults_injected["malformed"] += 1
            body = body[: max(1, len(body) // 2)]
        elif faults.huge_body_bytes and len(body) < faults.huge_body_bytes:
            body += b" " * (faults.huge_body_bytes - len(body))
        return _json(200, body, headers)

    def _count_run(self, ctx: _Ctx, spec: WorkflowSpec, key: str) -> None:
        st = self.state
        st.charge(key, spec.credits_per_run)
        st.runs_by_workflow[spec.id] += 1
        if ctx.sha is not None:
            st.runs_by_sha256[ctx.sha] += 1

    # -- AI Tutor -----------------------------------------------------------------------

    async def aitutor_run(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aitutor", "aitutor.run", self._aitutor_run)

    async def _aitutor_run(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        st, cfg = self.state, self.config
        key = ctx.key = bearer_key(request)
        wf_id = ctx.workflow = request.match_info["workflow_id"]
        if key is None or not st.key_known(key):
            return _json(401, AT_UNAUTHORIZED)
        body = self._take_body(ctx, await request.read())
        body_sha = ctx.sha
        if body is _MISSING:
            body, body_sha = {}, None  # the server reads a body that is not JSON as {}
        st.arrive("aitutor", key, time.monotonic())
        spec = cfg.workflow(wf_id, "aitutor")
        if spec is None:
            return _json(404, AT_NOT_FOUND)
        scope, faults = self.faults.faults_for(spec)
        if self.faults.take_burst(scope):
            st.faults_injected["rate_limit_burst"] += 1
            return self._rate_limited("aitutor", faults)
        ok, limit, remaining = st.admit("aitutor", key, time.monotonic())
        if not ok:
            return self._rate_limited("aitutor", faults)
        if not st.has_credits(key):
            return _json(402, AT_NO_CREDITS)
        fault = self.faults.before_run(faults, wf_id, ctx.sha or "")
        late = self.faults.late(fault, faults)
        if fault is not None and late is None:
            return self._fault_response(fault, "aitutor", faults)
        delay = self.faults.delay(spec, faults)
        if delay > 0:
            await asyncio.sleep(delay)
        run = aitutor_run(spec, body, body_sha)
        st.undefined_substitutions += len(run.undefined)
        self._count_run(ctx, spec, key)
        if spec.fail_when is not None and spec.fail_when in canonical_json(body):
            return _json(500, AT_RUN_FAILED)
        payload: dict[str, Any] = {"success": True, "result": run.result}
        if run.citations:
            payload["citations"] = run.citations
        headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining)}
        return await self._answer(request, payload, faults, late, headers)

    async def aitutor_balance(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aitutor", "aitutor.balance", self._aitutor_balance)

    async def _aitutor_balance(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        key = ctx.key = bearer_key(request)
        if key is None or not self.state.key_known(key):
            return _json(401, AT_UNAUTHORIZED)
        left = self.state.balance(key)
        credits: float = UNLIMITED_BALANCE if left is None else left
        if float(credits).is_integer():
            credits = int(credits)
        return _json(200, _enc({"success": True, "credits": credits}))

    async def aitutor_token(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aitutor", "aitutor.token", self._aitutor_token)

    async def _aitutor_token(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        key = ctx.key = bearer_key(request)
        if key is None or not self.state.key_known(key):
            return _json(401, AT_UNAUTHORIZED)
        try:
            ttl = int(request.query.get("ttl", "60"))
        except ValueError:
            ttl = 60
        ttl = min(300, max(1, ttl))
        token = "pub_tok_" + uuid.uuid4().hex
        self.state.tokens.issue(token, key, ttl, time.monotonic())
        return _json(200, _enc({"success": True, "token": token, "ttl": ttl}))

    async def aitutor_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aitutor", "aitutor.stream", self._aitutor_stream)

    async def _aitutor_stream(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        """Plain-text deltas; single-use token; not rate limited. A fault that happens
        after the stream began (``malformed_rate``, ``error_rate``) just ends it early."""
        st, cfg = self.state, self.config
        wf_id = ctx.workflow = request.match_info["workflow_id"]
        key = st.tokens.redeem(request.query.get("token", ""), time.monotonic())
        ctx.key = key
        if key is None or not st.key_known(key):
            return _json(401, AT_UNAUTHORIZED)
        body = self._take_body(ctx, await request.read())
        if body is _MISSING:
            body = {}
        spec = cfg.workflow(wf_id, "aitutor")
        if spec is None:
            return _json(404, AT_NOT_FOUND)
        if not st.has_credits(key):
            return _json(402, AT_NO_CREDITS)
        _, faults = self.faults.faults_for(spec)
        fault = self.faults.before_run(faults, wf_id, ctx.sha or "")
        late = self.faults.late(fault, faults)
        cut = fault is Fault.ERROR or late is not None or self.faults.malformed(faults)
        if fault is not None and fault is not Fault.ERROR and late is None:
            return self._fault_response(fault, "aitutor", faults)
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
        pause = self.faults.delay(spec, faults) / len(chunks)
        for chunk in chunks:
            if pause > 0:
                await asyncio.sleep(pause)
            await resp.write(chunk.encode("utf-8"))
        if not cut:
            self._count_run(ctx, spec, key)
        await resp.write_eof()
        return resp

    async def aitutor_no_route(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aitutor", "aitutor.other", self._no_route)

    async def _no_route(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        ctx.key = bearer_key(request)
        return _json(404, AT_NO_ROUTE if ctx.service == "aitutor" else RC_NO_ROUTE)

    # -- Runchat ------------------------------------------------------------------------

    def _runchat_gate(
        self, request: web.Request, ctx: _Ctx
    ) -> tuple[web.Response | None, WorkflowSpec | None, FaultConfig]:
        """Key, flow and rate-limit checks shared by run and schema."""
        st = self.state
        key = ctx.key = bearer_key(request)
        flow_id = ctx.workflow = request.match_info["runchat_id"]
        if key is None or not st.key_known(key):
            return _json(401, RC_UNAUTHORIZED), None, self.config.faults
        st.arrive("runchat", key, time.monotonic())
        spec = self.config.workflow(flow_id, "runchat")
        if spec is None:
            return _json(404, RC_NOT_FOUND), None, self.config.faults
        scope, faults = self.faults.faults_for(spec)
        if self.faults.take_burst(scope):
            st.faults_injected["rate_limit_burst"] += 1
            return self._rate_limited("runchat", faults), spec, faults
        ok, _, _ = st.admit("runchat", key, time.monotonic())
        if not ok:
            return self._rate_limited("runchat", faults), spec, faults
        return None, spec, faults

    async def runchat_schema(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "runchat", "runchat.schema", self._runchat_schema)

    async def _runchat_schema(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        refused, spec, _ = self._runchat_gate(request, ctx)
        if refused is not None or spec is None:
            return refused or _json(404, RC_NOT_FOUND)
        payload = {
            "name": spec.name,
            "inputs": [p.schema() for p in spec.inputs],
            "outputs": [p.schema() for p in spec.outputs],
        }
        return _json(200, _enc(payload))

    async def runchat_run(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "runchat", "runchat.run", self._runchat_run)

    async def _runchat_run(self, request: web.Request, ctx: _Ctx) -> web.StreamResponse:
        st = self.state
        t_start = time.perf_counter()
        refused, spec, faults = self._runchat_gate(request, ctx)
        if refused is not None or spec is None or ctx.key is None:
            return refused or _json(404, RC_NOT_FOUND)
        key = ctx.key
        if not st.has_credits(key):
            return _json(403, RC_NO_CREDITS)
        raw = await request.read() if request.method == "POST" else b""
        body = self._take_body(ctx, raw)
        if body is _MISSING:
            if raw.strip():
                return _json(400, _enc({"error": "Invalid JSON body"}))
            body = {}
        instance_id: str | None = None
        webhook: Any = None
        inputs: dict[str, Any] = {}
        if isinstance(body, dict):
            rid = body.get("runchat_instance_id")
            instance_id = rid if isinstance(rid, str) and rid else None
            if "inputs" in body:
                given = body["inputs"]
                if not isinstance(given, dict):
                    return _json(400, _enc({"error": "inputs must be an object"}))
                known = {p.id for p in spec.inputs}
                for name in given:
                    if name not in known:
                        return _json(400, _enc({"error": f"Unknown input parameter: {name}"}))
                inputs = given
            else:
                rest = {k: v for k, v in body.items() if k != "runchat_instance_id"}
                if rest:
                    if not spec.accepts_webhook:
                        return _json(400, _enc({"error": "Missing inputs"}))
                    webhook = rest
        elif spec.accepts_webhook:
            webhook = body
        else:
            return _json(400, _enc({"error": "Request body must be a JSON object"}))
        if webhook is None:
            for p in spec.inputs:
                if p.required and p.id not in inputs:
                    return _json(400, _enc({"error": f"Missing required input: {p.id}"}))
        fault = self.faults.before_run(faults, spec.id, ctx.sha or "")
        late = self.faults.late(fault, faults)
        if fault is not None and late is None:
            return self._fault_response(fault, "runchat", faults)
        delay = self.faults.delay(spec, faults)
        if delay > 0:
            await asyncio.sleep(delay)
        data = runchat_outputs(spec, inputs, webhook)
        self._count_run(ctx, spec, key)
        if instance_id is None:
            instance_id = str(uuid.UUID(int=st.id_rng.getrandbits(128), version=4))
        metadata = {
            "credits_used": spec.credits_per_run,
            "duration_ms": round((time.perf_counter() - t_start) * 1000.0, 3),
            "node_count": len(spec.inputs) + len(spec.outputs) + 1,
            "trigger": "webhook" if webhook is not None else "api",
            "emulated": True,
        }
        payload = {
            "metadata": canonical_json(metadata),
            "runchat_instance_id": instance_id,
            "data": data,
        }
        return await self._answer(request, payload, faults, late)

    async def runchat_no_route(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "runchat", "runchat.other", self._no_route)

    # -- admin --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def requests(
        self, limit: int | None = None, service: str | None = None
    ) -> list[dict[str, Any]]:
        return self.state.log.entries(limit, service)

    def reset(self) -> None:
        self.state.reset()
        self.faults.reset()

    def update_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a runtime patch (see :meth:`EmulatorConfig.apply_patch`)."""
        old_seed = self.config.seed
        changed = self.config.apply_patch(patch)
        self.state.rearm_credits(changed["keys"])
        self.faults.rearm_bursts(changed["bursts"])
        if "seed" in patch and self.config.seed != old_seed:
            self.faults.rng.seed(self.config.seed)
        self.state.resize_log()
        return self.public_config()

    def public_config(self) -> dict[str, Any]:
        """The configuration as JSON, keys replaced by their fingerprints."""
        data = self.config.to_dict()
        if self.config.keys is not None:
            data["keys"] = {
                fingerprint(k): dataclasses.asdict(v) for k, v in self.config.keys.items()
            }
        return data

    async def admin_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(200, _enc(self.stats()))

    async def admin_requests(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return _json(400, _enc({"error": "limit must be an integer"}))
        entries = self.requests(limit, request.query.get("service"))
        payload = {
            "requests": entries,
            "total": self.state.log.total,
            "dropped": self.state.log.dropped,
        }
        return _json(200, _enc(payload))

    async def admin_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return _json(200, _enc({"ok": True}))

    async def admin_get_config(self, request: web.Request) -> web.StreamResponse:
        return _json(200, _enc(self.public_config()))

    async def admin_patch_config(self, request: web.Request) -> web.StreamResponse:
        try:
            patch = json.loads(await request.read() or b"{}")
            if not isinstance(patch, dict):
                raise ValueError("the patch must be a JSON object")
            config = self.update_config(patch)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json(400, _enc({"error": str(exc)}))
        return _json(200, _enc({"ok": True, "config": config}))


def build_app(config: EmulatorConfig | None = None) -> tuple[web.Application, EmulatorApp]:
    """The aiohttp application and the object holding its state."""
    emu = EmulatorApp(config if config is not None else EmulatorConfig())
    return emu.build(), emu
