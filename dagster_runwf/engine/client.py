"""The one HTTP client of a fan-out, and the translation of transport failures.

Runs last up to 300 s, so the read timeout is generous while connecting stays quick to fail;
and since a read timeout only bounds the wait for the *next* bytes (an answer dripping a
byte a second never trips it), each attempt also has a deadline for the whole exchange.
The connection pool is sized to the concurrency so no request waits for a connection. The
transport is swappable: httpx over aiohttp (the default) or httpx's own, whose pool slows
down as concurrency grows (about 5x fewer rows/s at concurrency 64: ``bench/``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import httpx

from .._version import __version__
from ..errors import (
    ConfigError,
    FatalError,
    ResponseTooLargeError,
    TransportError,
    UnreachableError,
    UnusableAnswerError,
)
from ..services.http import HttpRequest, HttpResponse
from ..wording import setting
from .deadline import deadline

HttpBackend = Literal["httpx", "aiohttp"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=330.0, write=30.0, pool=None)
"""Connect within 15 s; allow a 300 s run plus margin for the answer to arrive."""


def auth_headers(api_key: str) -> dict[str, str]:
    """The headers every call to a service carries: the bearer key, JSON, our user agent."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"dagster-runwf/{__version__}",
    }


def check_base_url(base_url: str, *, setting: str = "base_url") -> str:
    """Refuse to send a bearer key anywhere but https or loopback.

    Returns:
        The base URL without a trailing slash.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{setting} {base_url!r} uses plain http to a host that is not loopback; an API "
            "key is only sent over https (or to 127.0.0.1/localhost for a local emulator)"
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(
    concurrency: int,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    backend: HttpBackend = "aiohttp",
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with a pool of ``concurrency`` connections.

    Redirects are not followed: a run endpoint has no reason to redirect, and following one
    could carry the ``Authorization`` header to another host.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if transport is None and backend == "aiohttp":
        transport = _aiohttp_transport(concurrency)
    elif transport is None and backend != "httpx":
        raise ConfigError(f"http backend must be 'httpx' or 'aiohttp', got {backend!r}")
    return httpx.AsyncClient(
        limits=limits, timeout=timeout, transport=transport, follow_redirects=False
    )


def _aiohttp_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    return transport


MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest answer read (a few MB is a big one): more is a proxy or a runaway workflow,
and would otherwise be held in memory whole."""


async def send(
    client: httpx.AsyncClient,
    base_url: str,
    request: HttpRequest,
    headers: dict[str, str],
    *,
    service: str,
    max_bytes: int = MAX_RESPONSE_BYTES,
    deadline_s: float | None = None,
) -> HttpResponse:
    """Send one request and read its answer, at most ``max_bytes`` of it, all within
    ``deadline_s`` (``None``: only httpx's timeouts bound it).

    Raises:
        TransportError: the connection failed or timed out, or the answer was not complete
            within ``deadline_s``.
        UnusableAnswerError: a 2xx answer was cut short (the run was most likely paid).
        FatalError: the server's TLS certificate does not verify.
        ResponseTooLargeError: the answer is larger than ``max_bytes``.
    """
    url = f"{base_url}/{request.path}"
    built = client.build_request(
        request.method,
        url,
        content=request.content,
        params=dict(request.params) if request.params else None,
        headers=headers,
    )
    try:
        async with deadline(deadline_s):
            response, content = await _exchange(client, built, max_bytes, service=service, url=url)
    except asyncio.TimeoutError:
        raise TransportError(
            f"{service}: no complete answer within the attempt's deadline of {deadline_s:g} s "
            f"from {url}; the answer was still arriving or had not begun. Raise "
            f"{setting('attempt_timeout_s')} if this workflow's runs take longer",
            service=service,
        ) from None
    except (httpx.TransportError, OSError) as exc:
        untrusted = _certificate_error(exc)
        if untrusted is not None:
            raise FatalError(
                f"{service}: the TLS certificate of {httpx.URL(url).host} does not verify "
                f"({getattr(untrusted, 'verify_message', None) or 'certificate verify failed'})"
                "; the key is never sent to a server "
                f"that cannot prove who it is. Check {setting('base_url')}, or point "
                "SSL_CERT_FILE at your "
                "organisation's CA bundle if a proxy re-signs TLS",
                service=service,
            ) from None
        raise transport_error(exc, client.timeout, service=service, url=url) from None
    return HttpResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        content=content,
    )


async def _exchange(
    client: httpx.AsyncClient, request: httpx.Request, max_bytes: int, *, service: str, url: str
) -> tuple[httpx.Response, bytes]:
    try:
        response = await client.send(request, stream=True)
    except (httpx.TransportError, OSError) as exc:
        if _lost_after_sending(exc):
            raise response_lost(exc, service=service, url=url) from None
        raise
    try:
        try:
            content = await _read_capped(response, max_bytes, service=service)
        except (httpx.TransportError, OSError) as exc:
            if not response.is_success:
                raise
            raise cut_short(exc, response, client.timeout, service=service, url=url) from None
        return response, content
    finally:
        await response.aclose()


async def _read_capped(response: httpx.Response, max_bytes: int, *, service: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if not (declared.isdigit() and int(declared) > max_bytes):
        chunks: list[bytes] = []
        read = 0
        async for chunk in response.aiter_bytes():
            read += len(chunk)
            if read > max_bytes:
                break
            chunks.append(chunk)
        else:
            return b"".join(chunks)
    raise ResponseTooLargeError(
        f"{service} answered {response.status_code} with more than {max_bytes:,} bytes; it "
        "was not read further (a misbehaving proxy, or a workflow returning far more than "
        f"usual?). Raise {setting('max_response_bytes')} if this workflow really returns "
        "that much",
        service=service,
        status=response.status_code,
    )


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure under a transport error, whichever backend wrapped it."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chains are short; a bound guards against a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_TIMEOUT_PHASES: dict[type[Exception], tuple[str, Callable[[], str]]] = {
    httpx.ReadTimeout: (
        "read",
        lambda: f"; raise {setting('read_timeout')} if this workflow's runs take longer",
    ),
    httpx.ConnectTimeout: ("connect", lambda: "; check the base URL and the network"),
    httpx.WriteTimeout: ("write", str),
    httpx.PoolTimeout: ("pool", str),
}
"""Each timeout's phase (its ``httpx.Timeout`` field) and the advice after it, in the words
of the interface in force when it happens."""


def transport_error(
    exc: Exception, timeout: httpx.Timeout, *, service: str, url: str
) -> TransportError:
    """A :class:`TransportError` saying what really happened: a timeout (which one, after how
    long) or a failed connection (refused, dropped, reset)."""
    unreached = _unreached(exc)
    if unreached is not None:
        host = httpx.URL(url).host
        return UnreachableError(
            f"{service}: could not connect to {host} ({unreached}) at {url}; the request "
            "was not sent",
            service=service,
            host=host,
            reason=unreached,
        )
    shown: BaseException = exc
    cause = _aiohttp_cause(exc)
    if cause is not None:
        # httpx-aiohttp turns every aiohttp connection error, a refused or dropped connection
        # included, into httpx.ConnectTimeout; the aiohttp error underneath says what it was.
        shown = cause
        timed_out = isinstance(cause, TimeoutError)
    else:
        timed_out = isinstance(exc, httpx.TimeoutException)
    if timed_out:
        phase, advice = _TIMEOUT_PHASES.get(type(exc), ("", str))
        seconds = getattr(timeout, phase, None) if phase else None
        after = f" after {seconds:g} s" if seconds else ""
        return TransportError(
            f"{service}: no answer in time ({type(exc).__name__}{after}) from {url}{advice()}",
            service=service,
        )
    return TransportError(
        f"{service}: connection failed ({type(shown).__name__}: {shown}) to {url}",
        service=service,
    )


def cut_short(
    exc: Exception, response: httpx.Response, timeout: httpx.Timeout, *, service: str, url: str
) -> UnusableAnswerError:
    """A 2xx answer whose body did not arrive whole (the connection closed or timed out
    halfway): the service ran the request, most likely billed, so it is not a plain
    transport error."""
    lost = transport_error(exc, timeout, service=service, url=url).message
    return UnusableAnswerError(
        f"{service} answered {response.status_code} but the answer was cut short: {lost} "
        "(the service most likely ran and billed this run)",
        service=service,
        status=response.status_code,
        excerpt=f"{response.status_code} headers, then the body was cut short",
    )


def response_lost(exc: Exception, *, service: str, url: str) -> UnusableAnswerError:
    """The connection closed after the request was sent, before any answer. A client cannot
    tell a service that ran the request (and billed it) from a proxy that dropped it first;
    the former is what a lost answer to a whole request most often is (a proxy's idle
    timeout during a long run, the answer lost on the way), so it is treated as an unusable
    answer, sent again at most ``unusable_retries`` times, not as a transient fault."""
    shown = _aiohttp_cause(exc) or exc
    return UnusableAnswerError(
        f"{service}: the connection closed after the request was sent, with no answer "
        f"({type(shown).__name__}: {shown}) from {url} (the service most likely ran and "
        "billed this run)",
        service=service,
        excerpt="no answer: the connection closed after the request was sent",
    )


def _lost_after_sending(exc: Exception) -> bool:
    """Whether ``exc`` says the whole request went out and the connection then closed with no
    answer (not a refused connection, not a timeout, not a failure while sending)."""
    cause = _aiohttp_cause(exc)
    if cause is not None:
        import aiohttp

        return isinstance(cause, aiohttp.ServerDisconnectedError)
    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)


def _aiohttp_cause(exc: Exception) -> BaseException | None:
    """The aiohttp error under an httpx error raised by the aiohttp backend, if any."""
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.partition(".")[0] == "aiohttp":
        return cause
    return None


def _unreached(exc: Exception) -> str | None:
    """Why no connection was made, when none was (so no byte of the request was sent):
    refused, the host name did not resolve, or connecting timed out; else ``None``."""
    cause = _aiohttp_cause(exc)
    if cause is not None:
        import aiohttp

        if isinstance(cause, aiohttp.ClientConnectorDNSError):
            return f"the host name did not resolve: {cause.os_error}"
        if isinstance(cause, aiohttp.ClientConnectorError):
            return f"{type(cause.os_error).__name__}: {cause.os_error.strerror or cause.os_error}"
        if isinstance(cause, aiohttp.ConnectionTimeoutError):
            return "connecting timed out"
        return None
    if isinstance(exc, httpx.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"{type(exc).__name__}: {exc}"
    return None
