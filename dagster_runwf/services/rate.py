"""A request rate such as ``"10/s"`` or ``"10/min"``: a number of requests per window."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``requests`` requests in any window of ``window_s`` seconds.

    A sliding window, like the services' own: ``Rate(10, 1.0)`` allows ten requests in any
    one-second span, not ten per calendar second.
    """

    requests: int
    window_s: float

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ConfigError(f"rate: requests per window must be at least 1, got {self.requests}")
        if not self.window_s > 0:
            raise ConfigError(f"rate: the window must be positive, got {self.window_s}")

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        """Parse ``"10/s"``, ``"10/min"``, ``"600/h"`` or ``"5/10s"`` (five per ten seconds)."""
        if isinstance(text, Rate):
            return text
        match = _PATTERN.match(text.lower())
        if not match or match.group(3) not in _UNITS:
            raise ConfigError(
                f"rate {text!r} is not understood; write it as REQUESTS/UNIT, "
                "e.g. '10/s', '10/min' or '5/10s'"
            )
        count, multiple, unit = match.groups()
        return cls(int(count), float(multiple or 1) * _UNITS[unit])

    @property
    def per_second(self) -> float:
        return self.requests / self.window_s

    def __str__(self) -> str:
        if self.window_s == 1:
            return f"{self.requests}/s"
        if self.window_s == 60:
            return f"{self.requests}/min"
        return f"{self.requests}/{self.window_s:g}s"
