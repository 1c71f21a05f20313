"""What the answers of a results table are worth, beyond their status: empty answers, answers
holding the literal ``undefined`` (what AI Tutor puts in for a variable it was not sent),
answers with citations, answers that parsed, answers that changed since an earlier job, and
the failures by error type.

Pure functions of a results table (the ``wf_`` columns, see :mod:`.table`), shared by the
Dagster asset checks and the ``runwf enrich`` summary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

UNDEFINED_PATTERN = r"\bundefined\b"
"""The word AI Tutor substitutes for a ``{{variable}}`` missing from the request (any case)."""

PARSE_ERROR = "parse_error"
"""The column (prefixed: ``wf_parse_error``) holding why a row's answer did not parse under
the workflow's ``output_schema``; null when it parsed. Tables without it were not parsed."""

EXAMPLES = 3
"""Rows quoted as examples of a finding."""

EXCERPT_CHARS = 160
"""Characters of an answer (or error message) quoted in an example."""

_ROW_PREFIX = re.compile(r"^row \d+: ")
"""How a row's error starts (``row 12: input 'tier' is missing``): left out when grouping."""


@dataclass(frozen=True)
class AnswerCount:
    """How many of the rows looked at match a finding, with a few examples.

    Attributes:
        rows: the rows looked at (succeeded rows, or those with an earlier answer).
        matching: the rows of those with the finding.
        examples: up to :data:`EXAMPLES` of them: ``{"row": position, ...}`` with an excerpt.
    """

    rows: int
    matching: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> float:
        """``matching / rows`` (0 when no row was looked at)."""
        return self.matching / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class FailureGroup:
    """The failed rows of one error type, and the message most of them share."""

    error_type: str
    rows: int
    commonest: str
    commonest_rows: int

    def __str__(self) -> str:
        return f"{self.rows} rows {self.error_type}: {_excerpt(self.commonest)}" + (
            "" if self.commonest_rows == self.rows else f" ({self.commonest_rows} of them)"
        )


def succeeded(table: pa.Table, prefix: str) -> pa.ChunkedArray:
    """Which rows succeeded."""
    return pc.equal(table.column(f"{prefix}status"), "succeeded")


def empty_answers(table: pa.Table, prefix: str) -> AnswerCount:
    """Succeeded rows whose answer is empty or only whitespace."""
    answers = table.column(f"{prefix}result")
    blank = pc.fill_null(pc.match_substring_regex(answers, r"^\s*$"), True)
    return _count(table, prefix, succeeded(table, prefix), blank)


def undefined_answers(table: pa.Table, prefix: str) -> AnswerCount:
    """Succeeded rows whose answer holds the word ``undefined``."""
    answers = table.column(f"{prefix}result")
    found = pc.fill_null(
        pc.match_substring_regex(answers, UNDEFINED_PATTERN, ignore_case=True), False
    )
    return _count(table, prefix, succeeded(table, prefix), found)


def cited_answers(table: pa.Table, prefix: str) -> AnswerCount:
    """Succeeded rows with at least one citation (examples: rows without)."""
    cited = pc.fill_null(
        pc.greater(pc.list_value_length(table.column(f"{prefix}citations")), 0), False
    )
    done = succeeded(table, prefix)
    uncited = _count(table, prefix, done, pc.invert(cited))
    return AnswerCount(uncited.rows, uncited.rows - uncited.matching, uncited.examples)


def unparsed_answers(table: pa.Table, prefix: str) -> AnswerCount | None:
    """Succeeded rows whose answer did not parse (a ``parse_error``); ``None`` when the table
    has no parse error column (its workflow has no ``output_schema``)."""
    column = f"{prefix}{PARSE_ERROR}"
    if column not in table.column_names:
        return None
    failed = pc.is_valid(table.column(column))
    return _count(table, prefix, succeeded(table, prefix), failed, quote=column)


def changed_answers(table: pa.Table, prefix: str, earlier: Mapping[str, str | None]) -> AnswerCount:
    """Succeeded rows with an earlier answer for the same input hash (``earlier``) that
    differs from theirs; ``rows`` counts those compared."""
    hashes = table.column(f"{prefix}input_hash").to_pylist()
    answers = table.column(f"{prefix}result").to_pylist()
    done = succeeded(table, prefix).to_pylist()
    compared = 0
    changed: list[dict[str, Any]] = []
    count = 0
    for row, (input_hash, answer, ok) in enumerate(zip(hashes, answers, done, strict=True)):
        if not ok or input_hash not in earlier:
            continue
        compared += 1
        before = earlier[input_hash]
        if before != answer:
            count += 1
            if len(changed) < EXAMPLES:
                changed.append({"row": row, "before": _excerpt(before), "after": _excerpt(answer)})
    return AnswerCount(compared, count, changed)


def failures_by_type(
    table: pa.Table, prefix: str, *, leave_out: Sequence[str] = ()
) -> list[FailureGroup]:
    """The failed rows grouped by error type (commonest first), with each type's commonest
    message; error types in ``leave_out`` (e.g. rows skipped on purpose) are left out."""
    failed = table.filter(pc.equal(table.column(f"{prefix}status"), "failed"))
    types = failed.column(f"{prefix}error_type").to_pylist()
    errors = failed.column(f"{prefix}error").to_pylist()
    by_type: dict[str, Counter[str]] = {}
    for error_type, error in zip(types, errors, strict=True):
        name = error_type or "unknown"
        if name in leave_out:
            continue
        by_type.setdefault(name, Counter())[_ROW_PREFIX.sub("", error or "")] += 1
    groups = [
        FailureGroup(name, sum(messages.values()), *messages.most_common(1)[0])
        for name, messages in by_type.items()
    ]
    return sorted(groups, key=lambda group: (-group.rows, group.error_type))


def unsent_columns(columns: Sequence[str], mapping: Mapping[str, str], prefix: str) -> list[str]:
    """The input table's columns not sent as any input (result columns left out): where a
    variable the workflow uses but was not sent most likely lives."""
    sent = set(mapping.values())
    return [c for c in columns if c not in sent and not str(c).startswith(prefix)]


def undefined_hint(unsent: Sequence[str], unmapped_inputs: Sequence[str] = ()) -> str:
    """A sentence naming the likely unsent input: the flow's inputs not mapped when the
    service said which (Runchat's schema), else the input columns that were not sent."""
    if unmapped_inputs:
        return f"the workflow's inputs not sent: {', '.join(map(str, unmapped_inputs))}"
    if unsent:
        shown = ", ".join(map(str, unsent[:8])) + (", ..." if len(unsent) > 8 else "")
        return (
            "a variable of the workflow was most likely not sent (AI Tutor puts 'undefined' "
            f"in its place); the input columns not sent are: {shown}"
        )
    return (
        "a variable of the workflow was most likely not sent (AI Tutor puts 'undefined' in "
        "its place)"
    )


def _count(
    table: pa.Table,
    prefix: str,
    looked_at: pa.ChunkedArray,
    finding: pa.ChunkedArray,
    quote: str | None = None,
) -> AnswerCount:
    matching = pc.and_(looked_at, finding)
    rows = int(pc.sum(looked_at).as_py() or 0)
    count = int(pc.sum(matching).as_py() or 0)
    examples: list[dict[str, Any]] = []
    if count:
        positions = pc.indices_nonzero(matching.combine_chunks())[:EXAMPLES].to_pylist()
        column = table.column(quote or f"{prefix}result")
        examples = [
            {"row": row, "answer" if quote is None else quote: _excerpt(column[row].as_py())}
            for row in positions
        ]
    return AnswerCount(rows, count, examples)


def _excerpt(text: str | None) -> str | None:
    if text is None or len(text) <= EXCERPT_CHARS:
        return text
    return text[: EXCERPT_CHARS - 3] + "..."
