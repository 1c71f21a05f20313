"""Render the package's reStructuredText habits as Markdown in the API reference.

The docstrings are Google style but name objects with roles (``:class:`RowJournal```,
``:func:`~dagster_runwf.engine.enrich.enrich```) and introduce examples with ``Example::`` or
``.. code-block:: yaml``. Markdown has none of these, so before mkdocstrings parses a
docstring this extension turns a role into inline code (``~`` keeps the last component
only), a trailing ``::`` into ``:`` and drops ``.. code-block::`` lines. The indented block
that follows either is already a Markdown code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`([^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
_CODE_BLOCK = re.compile(r"^[ \t]*\.\. code(?:-block)?::.*\n", re.MULTILINE)


def _role_text(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    titled = re.fullmatch(r"(.+?)\s*<[^>]+>", target)
    if titled:
        target = titled.group(1)
    elif target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown_docstring(text: str) -> str:
    """The docstring with roles as inline code and RST code-block introductions removed."""
    text = _CODE_BLOCK.sub("", text)
    return _LITERAL_INTRO.sub(":", _ROLE.sub(_role_text, text))


class RstRoles(griffe.Extension):
    """Rewrites every docstring of the loaded package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)  # type: ignore[arg-type]
