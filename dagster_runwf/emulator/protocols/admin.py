"""The emulator's own API: statistics, the request log, the Runchat instances each run
started or continued, reset and runtime configuration (``GET /stats``, ``GET /requests``,
``GET /instances``, ``POST /reset``, ``GET|POST /config``: a patch may change a flow's
inputs and outputs, so its schema, between runs).

The same operations serve :class:`~dagster_runwf.emulator.server.Emulator`'s methods
directly, without an HTTP round trip. Keys never leave the process: the configuration is
shown with their fingerprints.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dagster_runwf.emulator.protocols.exchange import Exchange, encode, json_response
from dagster_runwf.emulator.state import fingerprint


class AdminAPI:
    """The admin endpoints and the operations behind them."""

    def __init__(self, exchange: Exchange) -> None:
        self._x = exchange

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Serve the endpoints under ``prefix``."""
        router.add_get(f"{prefix}/stats", self.get_stats)
        router.add_get(f"{prefix}/requests", self.get_requests)
        router.add_get(f"{prefix}/instances", self.get_instances)
        router.add_post(f"{prefix}/reset", self.post_reset)
        router.add_get(f"{prefix}/config", self.get_config)
        router.add_post(f"{prefix}/config", self.post_config)

    # -- operations ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset (see :meth:`EmulatorState.stats`)."""
        return self._x.state.stats()

    def requests(
        self, limit: int | None = None, service: str | None = None
    ) -> list[dict[str, Any]]:
        """The request log, oldest first (``limit``: only the last N)."""
        return self._x.state.log.entries(limit, service)

    def instances(self, flow: str | None = None) -> list[dict[str, Any]]:
        """Runchat runs since the last reset, oldest first: each one's ``flow``,
        ``instance_id``, whether it ``continued`` that instance (its request sent the id) or
        started it, its ``turn`` in the instance and its ``inputs`` (``flow``: only that
        flow's)."""
        runs = self._x.state.instance_runs
        return [dict(r) for r in runs if flow is None or r["flow"] == flow]

    def reset(self) -> None:
        """Clear stats, log, rate windows and spent credits; keep the configuration."""
        self._x.state.reset()
        self._x.faults.reset()

    def update_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a runtime patch (see :meth:`EmulatorConfig.apply_patch`); the new
        configuration as :meth:`public_config` shows it."""
        x = self._x
        old_seed = x.config.seed
        changed = x.config.apply_patch(patch)
        x.state.rearm_credits(changed["keys"])
        x.faults.rearm_bursts(changed["bursts"])
        if "seed" in patch and x.config.seed != old_seed:
            x.faults.rng.seed(x.config.seed)
        x.state.resize_log()
        return self.public_config()

    def public_config(self) -> dict[str, Any]:
        """The configuration as JSON, keys replaced by their fingerprints."""
        config = self._x.config
        data = config.to_dict()
        if config.keys is not None:
            data["keys"] = {fingerprint(k): dataclasses.asdict(v) for k, v in config.keys.items()}
        return data

    # -- endpoints ----------------------------------------------------------------------

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, encode(self.stats()))

    async def get_requests(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return json_response(400, encode({"error": "limit must be an integer"}))
        log = self._x.state.log
        payload = {
            "requests": self.requests(limit, request.query.get("service")),
            "total": log.total,
            "dropped": log.dropped,
        }
        return json_response(200, encode(payload))

    async def get_instances(self, request: web.Request) -> web.StreamResponse:
        payload = {"runs": self.instances(request.query.get("flow"))}
        return json_response(200, encode(payload))

    async def post_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return json_response(200, encode({"ok": True}))

    async def get_config(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, encode(self.public_config()))

    async def post_config(self, request: web.Request) -> web.StreamResponse:
        try:
            patch = json.loads(await request.read() or b"{}")
            if not isinstance(patch, dict):
                raise ValueError("the patch must be a JSON object")
            config = self.update_config(patch)
        except ValueError as exc:  # not JSON, or a bad patch (which changed nothing)
            return json_response(400, encode({"error": str(exc)}))
        return json_response(200, encode({"ok": True, "config": config}))
