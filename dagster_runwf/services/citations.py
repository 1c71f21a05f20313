"""A run's citations as URLs, whatever shape the service gave them.

Citations are documented as a list of URL strings. Others are not stringified silently: an
object's ``url`` is taken, ``null`` items are dropped, anything else is dropped too, and
each such change is said in a warning kept with the answer (``Outcome.metadata`` under
:data:`WARNINGS_KEY`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

WARNINGS_KEY = "runwf_warnings"
"""The key of ``Outcome.metadata`` listing what the package changed in an answer."""

_SHOWN = 60
"""The most characters of a dropped item shown in a warning."""


def clean_citations(items: Iterable[Any]) -> tuple[tuple[str, ...], list[str]]:
    """The citations as URL strings, and warnings saying what was not a string and what
    became of it (empty when every item was a string)."""
    urls: list[str] = []
    from_objects = nulls = 0
    dropped: list[str] = []
    for item in items:
        if isinstance(item, str):
            urls.append(item)
        elif item is None:
            nulls += 1
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            urls.append(item["url"])
            from_objects += 1
        else:
            dropped.append(json.dumps(item, ensure_ascii=False, default=str)[:_SHOWN])
    warnings: list[str] = []
    if from_objects:
        warnings.append(f"citations: took the 'url' of {_count(from_objects, 'object')}")
    if nulls:
        warnings.append(f"citations: dropped {_count(nulls, 'null item')}")
    if dropped:
        warnings.append(
            f"citations: dropped {_count(len(dropped), 'item')} that are neither a URL nor "
            f"an object with a 'url': {', '.join(dropped)}"
        )
    return tuple(urls), warnings


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
