"""What every ``runwf`` command shares: keys and base URLs, argument parsing, exit statuses.

A command raises; :func:`run_command` turns what it raised into one line on stderr and an
exit status, so no traceback ever reaches a user, and scrubs the API keys from that line
(the package's own messages never hold a key, but an unexpected error might).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from ..engine.client import check_base_url
from ..errors import ConfigError, RunwfError
from ..services.registry import SERVICES
from ..services.service_info import ServiceInfo
from ..wording import spelled
from .spelling import CLI

EXIT_OK = 0
EXIT_FAILED = 1
"""A fatal stop (bad key, no credits, unknown workflow, budget), a service or journal error."""
EXIT_USAGE = 2
"""A configuration error: bad arguments, a missing key or column, an unreadable input."""
EXIT_ROW_ERRORS = 3
"""``--fail-on-row-errors`` and some rows failed."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as shells report it."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + SIGTERM)."""


def _environment_help() -> str:
    """The ``environment:`` section of every command's help: each service's variables."""
    width = max(
        len(v) for i in SERVICES.values() for v in (i.api_key_variable, i.base_url_variable)
    )
    lines = ["environment:"]
    for info in SERVICES.values():
        lines.append(f"  {info.api_key_variable:<{width}}  the {info.display_name} API key")
    for info in SERVICES.values():
        lines.append(
            f"  {info.base_url_variable:<{width}}  {info.display_name} API root when --base-url "
            "is not given"
        )
        lines.append(f"  {'':<{width}}  (default {info.default_base_url})")
    lines.append(
        "Keys are never taken as flags, so they stay out of shell history and process lists."
    )
    lines.append(
        "A key is only sent over https, or over http to a loopback address (a local emulator)."
    )
    return "\n".join(lines)


ENV_HELP = _environment_help()
"""Where each service's key and base URL are read from, for the commands' help."""


class CommandError(Exception):
    """A fatal condition of a command, reported as one line with this exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class Interrupted(Exception):
    """The command was interrupted (Ctrl-C or SIGTERM); the message says what was kept."""

    def __init__(self, message: str, status: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other ``runwf`` error."""

    def error(self, message: str) -> NoReturn:
        print(f"runwf: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def make_parser(prog: str, description: str, epilog: str) -> Parser:
    """A parser for one command, with its help laid out as written."""
    return Parser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_base_url(parser: argparse.ArgumentParser, service: ServiceInfo | None = None) -> None:
    """The ``--base-url`` option (its help names the service's variable when known)."""
    variables = (
        [service.base_url_variable]
        if service is not None
        else [info.base_url_variable for info in SERVICES.values()]
    )
    where = f"{' / '.join('$' + v for v in variables)}, else the service's public URL"
    parser.add_argument(
        "--base-url", metavar="URL", help=f"the service's API root (default: {where})"
    )


def api_key(service: ServiceInfo) -> str:
    """The service's API key, from its environment variable.

    Raises:
        CommandError: the variable is unset or empty.
    """
    variable = service.api_key_variable
    key = os.environ.get(variable, "").strip()
    if not key:
        raise CommandError(
            f"{variable} is not set; export it with your {service.display_name} API key "
            "(keys are read from the environment only, never from flags)"
        )
    return key


def base_url(service: ServiceInfo, flag: str | None) -> str | None:
    """``--base-url``, else the service's variable, else ``None`` (the service default).

    Raises:
        ConfigError: the URL is not https (or http to loopback).
    """
    variable = service.base_url_variable
    url = flag or os.environ.get(variable, "").strip() or None
    if url is None:
        return None
    return check_base_url(url, setting="--base-url" if flag else variable)


def parse_pairs(values: Sequence[str], option: str, shape: str) -> dict[str, str]:
    """``["a=x", "b=y"]`` as ``{"a": "x", "b": "y"}``.

    Raises:
        ConfigError: a value is not ``NAME=VALUE`` with both sides non-empty, or a name
            repeats.
    """
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise ConfigError(f"{option} {value!r} is not {shape}")
        if name in pairs:
            raise ConfigError(
                f"{option} names {name!r} twice ({name}={pairs[name]} and {name}={target})"
            )
        pairs[name] = target
    return pairs


def one_line(message: str) -> str:
    """A multi-line message folded into one line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def scrub(message: str, secrets: Sequence[str]) -> str:
    """``message`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def _known_keys() -> list[str]:
    keys = [os.environ.get(info.api_key_variable, "").strip() for info in SERVICES.values()]
    # Longest first, so a key that contains another is scrubbed whole.
    return sorted((k for k in keys if k), key=len, reverse=True)


def run_command(command: Callable[[], int]) -> int:
    """Run a command, turning whatever it raises into one line on stderr and a status.

    Set ``RUNWF_DEBUG=1`` to see the traceback of an unexpected error instead. Warnings
    (a damaged journal file set aside) are printed as ``runwf: warning: …`` lines.
    """
    # The package's messages name settings as this command's flags (--on-missing null).
    with warnings.catch_warnings(), spelled(CLI):
        warnings.showwarning = _print_warning
        return _run(command)


def _print_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    line = scrub(one_line(str(message)), _known_keys())
    print(f"runwf: warning: {line}", file=sys.stderr, flush=True)


def _run(command: Callable[[], int]) -> int:
    try:
        return command()
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except Interrupted as exc:
        return _fail(str(exc), exc.status)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except RunwfError as exc:  # fatal stops, service and journal errors
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:  # the output or the journal cannot be written
        return _fail(str(exc), EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("RUNWF_DEBUG"):
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (set RUNWF_DEBUG=1 to see the traceback)",
            EXIT_FAILED,
        )


class _EngineMessages(logging.Handler):
    """The engine's warnings (and its notes, e.g. a rate-limit store answering again) as
    ``runwf: warning: ...`` lines on stderr, with any key scrubbed."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        message = scrub(one_line(record.getMessage()), _known_keys())
        print(f"runwf: {level}{message}", file=sys.stderr, flush=True)


def show_engine_messages() -> None:
    """Print the package's log messages of level INFO and up on stderr, once per process."""
    package = logging.getLogger("dagster_runwf")
    if not any(isinstance(h, _EngineMessages) for h in package.handlers):
        package.addHandler(_EngineMessages(logging.INFO))
        package.setLevel(logging.INFO)
        package.propagate = False


def _fail(message: str, status: int) -> int:
    print(f"runwf: error: {scrub(one_line(message), _known_keys())}", file=sys.stderr)
    return status
