"""The emulator's HTTP application: one ``aiohttp.web`` application on one port, routing
each URL prefix to its protocol (:mod:`~dagster_runwf.emulator.protocols`):

- the AI Tutor API under ``/aitutor/api/v1``;
- the Runchat API under ``/runchat/api/v1``;
- the admin API under ``/_emulator`` (stats, request log, reset, runtime config).
"""

from __future__ import annotations

from aiohttp import web

from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.protocols import AdminAPI, AITutorAPI, Exchange, RunchatAPI

AITUTOR_PREFIX = "/aitutor/api/v1"
RUNCHAT_PREFIX = "/runchat/api/v1"
ADMIN_PREFIX = "/_emulator"


class EmulatorApp:
    """The three protocols over one shared configuration and state."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        exchange = Exchange(config)
        self.aitutor = AITutorAPI(exchange)
        self.runchat = RunchatAPI(exchange)
        self.admin = AdminAPI(exchange)

    def build(self) -> web.Application:
        """A new application serving the three protocols."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.aitutor.add_routes(app.router, AITUTOR_PREFIX)
        self.admin.add_routes(app.router, ADMIN_PREFIX)
        self.runchat.add_routes(app.router, RUNCHAT_PREFIX)
        return app
