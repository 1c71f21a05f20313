"""Plain data for one HTTP exchange, so the services stay pure and the transport swappable.

The services build :class:`HttpRequest` values and parse :class:`HttpResponse` values; only the
engine performs I/O. Request bodies are serialised once, here, so the engine sends bytes and
the hash of a row's inputs is computed from exactly what goes on the wire.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request relative to a service's base URL.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: path below the base URL, without a leading slash, e.g. ``"run/wf_abc123"``.
        content: the JSON body as UTF-8 bytes, or ``None`` for no body.
        params: query parameters.
    """

    method: str
    path: str
    content: bytes | None = None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What came back: status, headers with lower-case names, and the raw body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The rate-limit headers of a response (AI Tutor sends them on every success).

    Attributes:
        limit: requests allowed per window (``x-ratelimit-limit``).
        remaining: requests left in the current window (``x-ratelimit-remaining``).
    """

    limit: int | None
    remaining: int | None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Read ``x-ratelimit-limit`` / ``x-ratelimit-remaining``; ``None`` when neither is usable."""
    limit = _int_header(headers, "x-ratelimit-limit")
    remaining = _int_header(headers, "x-ratelimit-remaining")
    if limit is None and remaining is None:
        return None
    return RateLimitInfo(limit=limit, remaining=remaining)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    Args:
        value: the header's value, or ``None``.
        now: the current time as a Unix timestamp (passed in to keep this function pure).

    Returns:
        A non-negative number of seconds, or ``None`` when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
