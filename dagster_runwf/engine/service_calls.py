"""The services' free calls: AI Tutor's balance and Runchat's flow schema.

They cost nothing, so a job can use them to check the key, the credits and the input
mapping before its first paid run. Each service declares its free calls in its
:class:`~dagster_runwf.services.service_info.ServiceInfo`; :func:`call_free` makes any of
them.
"""

from __future__ import annotations

from typing import TypeVar

from ..errors import ConfigError
from ..services import aitutor, runchat
from ..services.http import HttpRequest, HttpResponse
from ..services.runchat_schema import RunchatSchema
from ..services.service_info import FreeCall, ServiceInfo
from .client import DEFAULT_TIMEOUT, auth_headers, check_base_url, make_client, send

T = TypeVar("T")


async def _call(base_url: str, api_key: str, request: HttpRequest, service: str) -> HttpResponse:
    headers = auth_headers(api_key)
    async with make_client(1, timeout=DEFAULT_TIMEOUT) as client:
        return await send(client, check_base_url(base_url), request, headers, service=service)


async def call_free(
    info: ServiceInfo,
    call: FreeCall[T] | None,
    api_key: str,
    base_url: str | None,
    *arguments: str,
) -> T:
    """Make one of ``info``'s free calls (its ``balance`` or ``schema``) with ``arguments``.

    Raises:
        ConfigError: the service has no such call (``call`` is ``None``).
        ServiceError: the service refused it (classified as a run's error would be).
    """
    if call is None:
        raise ConfigError(f"{info.display_name} has no such free call")
    url = base_url or info.default_base_url
    response = await _call(url, api_key, call.request(*arguments), info.display_name)
    return call.parse(*arguments, response)


async def fetch_balance(api_key: str, base_url: str | None = None) -> float:
    """An AI Tutor key's remaining credits (``GET /balance``)."""
    return await call_free(aitutor.SERVICE, aitutor.SERVICE.balance, api_key, base_url)


async def fetch_schema(runchat_id: str, api_key: str, base_url: str | None = None) -> RunchatSchema:
    """A Runchat flow's inputs and outputs (``GET /{runchat_id}/schema``)."""
    service = runchat.SERVICE
    return await call_free(service, service.schema, api_key, base_url, runchat_id)
