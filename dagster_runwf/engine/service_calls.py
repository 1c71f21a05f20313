"""The services' free calls: AI Tutor's balance and Runchat's flow schema.

They cost nothing, so a job can use them to check the key, the credits and the input
mapping before its first paid run.
"""

from __future__ import annotations

from ..services import aitutor, runchat
from ..services.http import HttpRequest, HttpResponse
from .client import DEFAULT_TIMEOUT, auth_headers, check_base_url, make_client, send


async def _call(base_url: str, api_key: str, request: HttpRequest, service: str) -> HttpResponse:
    headers = auth_headers(api_key)
    async with make_client(1, timeout=DEFAULT_TIMEOUT) as client:
        return await send(client, check_base_url(base_url), request, headers, service=service)


async def fetch_balance(api_key: str, base_url: str | None = None) -> float:
    """An AI Tutor key's remaining credits (``GET /balance``)."""
    url = base_url or aitutor.AITutorWorkflow.default_base_url
    response = await _call(url, api_key, aitutor.balance_request(), aitutor.DISPLAY_NAME)
    return aitutor.parse_balance(response)


async def fetch_schema(
    runchat_id: str, api_key: str, base_url: str | None = None
) -> runchat.RunchatSchema:
    """A Runchat flow's inputs and outputs (``GET /{runchat_id}/schema``)."""
    url = base_url or runchat.RunchatWorkflow.default_base_url
    response = await _call(url, api_key, runchat.schema_request(runchat_id), runchat.DISPLAY_NAME)
    return runchat.parse_schema(runchat_id, response)
