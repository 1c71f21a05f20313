"""How a service's responses are read: JSON bodies, and error responses as classified errors.

The rules are shared by every service, which adds its own through a :data:`Classifier`
consulted first. Nothing here needs a workflow, so the free calls (AI Tutor's balance,
Runchat's schema) classify their errors exactly as runs do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..errors import (
    AuthenticationError,
    CreditsExhaustedError,
    FatalError,
    RateLimitedError,
    RunFailedError,
    ServerError,
    ServiceError,
    WorkflowNotFoundError,
)
from ..wording import setting
from .http import HttpResponse

Classifier = Callable[[int, str | None, str], type[ServiceError] | None]
"""A service's own rules for an error response: ``(status, code, detail)`` -> the error
class, or ``None`` to leave the response to the shared rules."""


def no_special_errors(status: int, code: str | None, detail: str) -> type[ServiceError] | None:
    """The :data:`Classifier` of a service whose errors follow the shared rules only."""
    return None


def error_for(
    service: str,
    response: HttpResponse,
    classify: Classifier = no_special_errors,
    workflow_id: str | None = None,
    api_key_variable: str | None = None,
) -> ServiceError:
    """Classify an error response of ``service`` (its display name): fatal, transient or
    row-level.

    Args:
        service: the service's name for people, e.g. ``"AI Tutor"``.
        response: the error response.
        classify: the service's own rules, consulted before the shared ones.
        workflow_id: the workflow the request was for, named when it is not found.
        api_key_variable: the environment variable the service's key is usually read
            from, named when the key is refused.
    """
    detail, code = _error_fields(response)
    status = response.status
    where = f"{service} answered {status}" + (f" {code}" if code else "")
    text = f"{where}: {detail.rstrip('. ')}" if detail else where
    kwargs: dict[str, Any] = {"service": service, "status": status, "code": code, "detail": detail}
    special = classify(status, code, detail or "")
    if special is not None:
        return special(f"{text}{_advice(special, api_key_variable)}", **kwargs)
    if status == 401:
        advice = _advice(AuthenticationError, api_key_variable)
        return AuthenticationError(f"{text}{advice}", **kwargs)
    if status == 402:
        advice = _advice(CreditsExhaustedError, api_key_variable)
        return CreditsExhaustedError(f"{text}{advice}", **kwargs)
    if status == 404:
        advice = (
            f"Check the workflow id {workflow_id!r} and that it is published and belongs to "
            "this key's organisation."
            if workflow_id is not None
            else "Check that base_url is the service's API root."
        )
        return WorkflowNotFoundError(f"{text}. {advice}", **kwargs)
    if status == 429:
        return RateLimitedError(text, **kwargs)
    if status >= 500 or status in (408, 425):
        return ServerError(text, **kwargs)
    if 300 <= status < 400:
        # Not followed, so that the key is never sent on to another host; every row
        # would get the same answer.
        location = response.headers.get("location") or "nowhere"
        return FatalError(
            f"{where}, a redirect to {location}, which is not followed: set "
            f"{setting('base_url')} to the service's real API root",
            **kwargs,
        )
    return RunFailedError(text, **kwargs)


def decode_json(service: str, response: HttpResponse) -> Any:
    """The body as JSON, or a transient :class:`ServerError` naming what came instead."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise ServerError(
            f"{service} answered {response.status} with a body that is not JSON "
            f"({describe_body(response)})",
            service=service,
            status=response.status,
        ) from None


def unexpected_body(service: str, response: HttpResponse, why: str) -> ServerError:
    """A 2xx whose body is not the documented one: transient, the next try may be fine."""
    return ServerError(
        f"{service} answered {response.status} with an unexpected body: {why}",
        service=service,
        status=response.status,
    )


def _advice(error: type[ServiceError], api_key_variable: str | None) -> str:
    """What to do about a fatal answer. (Whether finished rows are kept is said by the
    stop that follows it in a run; a pre-flight call fails before any row.)"""
    if error is AuthenticationError:
        where = setting("api_key", api_key_variable or "the service's key variable")
        return f". Check the API key ({where}): is it set to a current key for this service?"
    if error is CreditsExhaustedError:
        return (
            ". Add credits (or raise the spend limit) in the service's billing settings, "
            "then re-run: rows already answered will not be paid again."
        )
    return ""


def _error_fields(response: HttpResponse) -> tuple[str | None, str | None]:
    """The service's error text and code from a ``{"error": ..., "code": ...}`` body."""
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return describe_body(response), None
    if not isinstance(payload, dict):
        return describe_body(response), None
    error = payload.get("error")
    code = payload.get("code")
    detail = error if isinstance(error, str) else (None if error is None else str(error))
    return detail, code if isinstance(code, str) else None


_TAG = re.compile(r"<[^>]+>")


def describe_body(response: HttpResponse) -> str:
    """A short, safe description of a body that is not the documented JSON."""
    if not response.content:
        return "an empty body"
    head = response.content[:2000].decode("utf-8", "replace")
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or head.lstrip().lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else _TAG.sub(" ", head)
        return "an HTML page: " + " ".join(text.split())[:120]
    return f"{len(response.content)} bytes starting {head[:80]!r}"
