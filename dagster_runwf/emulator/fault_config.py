"""What faults the emulator injects, globally or for one workflow (plain data).

How a request meets them is decided in :mod:`~dagster_runwf.emulator.faults`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from dagster_runwf.emulator.parse import parse, replace

FailWith = Literal[
    "error",
    "html",
    "drop",
    "reset",
    "malformed",
    "success_false",
    "no_result",
    "null_result",
    "number_result",
    "bad_citations",
    "odd_citations",
    "invalid_utf8",
    "html_200",
    "drop_after_run",
]
FAIL_WITH: tuple[FailWith, ...] = get_args(FailWith)
"""The ways ``fail_attempts`` can fail a request (see :attr:`FaultConfig.fail_with`)."""

_RATES = ("error_rate", "drop_rate", "malformed_rate", "html_error_rate")
_COUNTS = ("fail_attempts", "rate_limit_burst", "huge_body_bytes")


@dataclass
class FaultConfig:
    """Faults to inject, globally or for one workflow (a workflow's own set wins whole).

    Rates are probabilities per request, drawn from the emulator's seeded generator so a
    run is reproducible. ``fail_attempts`` and ``rate_limit_burst`` are counters and fully
    deterministic, which is what retry tests want.
    """

    error_rate: float = 0.0
    """Fraction of runs that answer ``error_status`` (nothing charged)."""
    error_status: int = 500
    """Status of the error answers (``error_rate``, and ``fail_attempts`` with
    ``fail_with="error"``), e.g. 502, 503 or 504; the body is the service's JSON error."""
    fail_attempts: int = 0
    """The first N requests for each distinct (workflow, body) fail the way ``fail_with``
    says."""
    fail_with: FailWith = "error"
    """How the first ``fail_attempts`` requests fail: ``"error"`` (an ``error_status``
    answer), ``"html"`` (a proxy's 502 HTML page), ``"drop"`` (the connection is closed with
    no response), ``"reset"`` (the run happens and is charged, then the connection is
    closed halfway through the answer), ``"malformed"`` (200 with truncated JSON; charged)
    or ``"success_false"`` (200 whose body says the run failed; nothing charged). Run and
    charged, then answered with a 200 the client cannot use: ``"no_result"`` (no
    ``result``; Runchat: no ``data``), ``"null_result"`` / ``"number_result"`` (it is
    ``null`` / ``42``), ``"bad_citations"`` (AI Tutor's ``citations`` a string),
    ``"invalid_utf8"`` (a byte that is not UTF-8), ``"html_200"`` (an HTML page);
    ``"odd_citations"`` answers a usable run whose AI Tutor citations are objects, ``null``
    and a number; ``"drop_after_run"`` closes the connection with no response after the
    run."""
    rate_limit_burst: int = 0
    """The next N requests answer 429 whatever the rate (re-armed by reset or a patch)."""
    retry_after: str | None = None
    """``Retry-After`` value sent with every 429 (the real AI Tutor sends none)."""
    drop_rate: float = 0.0
    """Fraction of requests whose connection is closed without any response."""
    malformed_rate: float = 0.0
    """Fraction of runs answering 200 with truncated JSON (the run happened and is charged)."""
    html_error_rate: float = 0.0
    """Fraction of requests answering 502 with an HTML page, as from a proxy."""
    slow_s: float = 0.0
    """Extra delay added to every run, in seconds."""
    huge_body_bytes: int = 0
    """Pad successful JSON bodies with trailing whitespace up to this many bytes."""
    drip_interval_s: float = 0.0
    """Send successful answers one byte every this many seconds (the headers at once), like
    a stalled proxy: each read gets a byte in time, so only a deadline on the whole answer
    ends the wait. 0: answers are sent whole."""

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Read plain data (see :mod:`~dagster_runwf.emulator.parse`)."""
        return parse(cls, data)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of its range."""
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        for name in _COUNTS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 4xx or 5xx status, got {self.error_status!r}")
        if self.fail_with not in FAIL_WITH:
            raise ValueError(f"fail_with must be one of {FAIL_WITH}, got {self.fail_with!r}")
        for name in ("slow_s", "drip_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def merged(self, patch: Mapping[str, Any], where: str = "faults") -> FaultConfig:
        """A copy with the fields of ``patch`` replaced."""
        return replace(self, patch, where)
