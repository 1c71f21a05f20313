"""Settings named in messages, in the words of the interface the message is shown in.

The services and the engine are used from Python, from the ``runwf`` command and from
Dagster (Python definitions or YAML), and each spells a setting its own way: Python
``on_missing='null'``, the command ``--on-missing null``, YAML ``on_missing: "null"``. A
message that tells the user what to change names the setting through :func:`setting`, by
its Python name (the engine's own); the spelling in force renders it. The interface's layer
(``cli/``, ``integration/``) owns its :class:`Spelling` and puts it in force with
:func:`spelled` around the work it hands down, so the engine never imports it, and the
messages come out in the interface's words wherever they go (an exception, a row's
``wf_error``, the journal). Without one, messages are in Python's words.

The spelling is a :class:`contextvars.ContextVar`: each asyncio task of a run sees the
spelling in force when the run started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["PYTHON", "Spelling", "in_force", "note", "offers", "setting", "spelled"]


@dataclass(frozen=True)
class Spelling:
    """How one interface names settings.

    Args:
        interface: a short name: ``"python"``, ``"cli"``, ``"dagster"``, ``"yaml"``.
        names: a setting's Python name -> how this interface writes it (a flag, a key); a
            name not listed keeps its Python name.
        assignment: a name given a value, with ``{name}`` and ``{value}`` (``"{name}={value}"``
            in Python, ``"{name} {value}"`` for flags, ``"{name}: {value}"`` in YAML).
        switches: names whose ``True`` is the name alone (a command's on/off flags).
        values: a value's text -> how this interface writes it (e.g. YAML quotes ``null``,
            which it would otherwise read as no value).
        phrases: a name -> the whole mention, with ``{value}``: for a setting this interface
            sets somewhere else (a resource's field) or through something else (an
            environment variable).
        python_values: values written as Python literals (``'null'``, ``True``), else as
            plain words (``null``, ``true``).
        notes: a remark's name -> this interface's own text for it (see :func:`note`).
        lacks: settings this interface does not offer: a message leaves out the advice to
            change them (see :func:`offers`).
    """

    interface: str
    names: Mapping[str, str] = field(default_factory=dict)
    assignment: str = "{name}={value}"
    switches: frozenset[str] = frozenset()
    values: Mapping[str, str] = field(default_factory=dict)
    phrases: Mapping[str, str] = field(default_factory=dict)
    python_values: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)
    lacks: frozenset[str] = frozenset()

    def mention(self, name: str, value: object = None) -> str:
        """``name`` (with ``value``, when given) as this interface writes it."""
        if name in self.phrases:
            return self.phrases[name].format(value="" if value is None else value)
        own = self.names.get(name, name)
        if value is None or (value is True and name in self.switches):
            return own
        text = self._value(value)
        return self.assignment.format(name=own, value=self.values.get(text, text))

    def _value(self, value: object) -> str:
        if self.python_values:
            return repr(value)
        return str(value).lower() if isinstance(value, bool) else str(value)


PYTHON = Spelling(
    "python",
    phrases={
        "api_key": "api_key, e.g. from ${value}",
        # The deadline defaults to the connect plus the read timeout; past 345 s both count.
        "attempt_timeout_s": "attempt_timeout_s (and the read timeout of timeout=httpx.Timeout)",
        "read_timeout": "the read timeout (timeout=httpx.Timeout(..., read=...))",
        "max_rate_limited": "retry=RetryPolicy(max_rate_limited=...)",
        "budget.max_runs": "Budget(max_runs=...)",
    },
    python_values=True,
)
"""The engine's own words: ``on_missing='null'``, ``max_consecutive_failures=50``."""

_IN_FORCE: ContextVar[Spelling] = ContextVar("dagster_runwf_spelling", default=PYTHON)


def setting(name: str, value: object = None) -> str:
    """The setting ``name`` (a Python name; with ``value`` if given), as the interface in
    force writes it: ``setting("on_missing", "null")`` is ``on_missing='null'`` in Python,
    ``--on-missing null`` for the command."""
    return _IN_FORCE.get().mention(name, value)


def offers(name: str) -> bool:
    """Whether the interface in force lets the user change the setting ``name``: advice to
    change one it does not offer is left out (``runwf`` has no flag for every parameter)."""
    return name not in _IN_FORCE.get().lacks


def note(name: str, default: str) -> str:
    """A remark of a message that depends on the interface: ``default`` (Python's), unless
    the interface in force words it its own way. E.g. a missing cell is ``NaN`` to a pandas
    user, an empty cell to ``runwf``, which reads files itself."""
    return _IN_FORCE.get().notes.get(name, default)


def in_force() -> Spelling:
    """The spelling messages are written in now."""
    return _IN_FORCE.get()


@contextmanager
def spelled(spelling: Spelling) -> Iterator[Spelling]:
    """Write messages in ``spelling`` inside the block (and the tasks started in it)."""
    token = _IN_FORCE.set(spelling)
    try:
        yield spelling
    finally:
        _IN_FORCE.reset(token)
