"""A run's 2xx answer that cannot be used, as an :class:`~dagster_runwf.errors.UnusableAnswerError`.

Such an answer (no text result, a body that is not JSON or not UTF-8, an HTML page) most
likely means the service ran and billed the workflow, so the error says so and carries a
bounded excerpt of what came back, to be kept in the row's recorded error. Free calls
(a balance, a schema) cost nothing and keep the transient ``ServerError`` of
:mod:`.responses`.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UnusableAnswerError
from .http import HttpResponse
from .responses import describe_body

EXCERPT_CHARS = 160
"""The most characters of an unusable body kept in the row's error."""

PAID_NOTE = "the service most likely ran and billed this run"


def body_excerpt(response: HttpResponse, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``response``'s body as a quoted, escaped string of at most ``limit``
    characters (bytes that are not UTF-8 shown as ``\\xNN``)."""
    if not response.content:
        return "an empty body"
    text = response.content[: limit * 4].decode("utf-8", "backslashreplace")
    cut = text[:limit]
    more = len(text) > limit or len(response.content) > limit * 4
    return repr(cut) + (f" (first {limit} characters)" if more else "")


def unusable_answer(service: str, response: HttpResponse, why: str) -> UnusableAnswerError:
    """The error for a run's 2xx answer that cannot be used, saying ``why``."""
    excerpt = body_excerpt(response)
    return UnusableAnswerError(
        f"{service} answered {response.status} with an answer that cannot be used: {why} "
        f"({PAID_NOTE}); it began {excerpt}",
        service=service,
        status=response.status,
        excerpt=excerpt,
    )


def decode_answer(service: str, response: HttpResponse) -> Any:
    """A run's 2xx body as JSON, or an :class:`UnusableAnswerError` naming what came."""
    try:
        return json.loads(response.content)
    except UnicodeDecodeError as exc:
        why = f"the body is not valid UTF-8 (byte {exc.start} of {len(response.content)})"
    except ValueError:
        described = describe_body(response)
        why = (
            f"the body is {described}"
            if described.startswith(("an HTML page", "an empty body"))
            else f"the body is not JSON ({len(response.content)} bytes)"
        )
    raise unusable_answer(service, response, why)


def describe_value(value: Any) -> str:
    """A JSON value named for a message: ``null``, ``a number (42)``, ``a list``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({json.dumps(value)})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"
