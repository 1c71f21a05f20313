"""Asset checks on the answers, not only on the status: empty answers, answers holding the
literal ``undefined``, the share of answers with citations, the share that parsed under the
workflow's ``output_schema``, and answers that changed since an earlier job.

Like ``failure_rate``, each is evaluated in the step that builds the table (what they look
at is in :mod:`..engine.answer_quality`), so they describe the data written. Which run, with
what threshold and whether a failure blocks downstream assets is
:class:`AnswerChecks` (``EnrichmentSettings.answer_checks``; the same keys in YAML).
"""

# No `from __future__ import annotations`: pydantic and Dagster's YAML schema read the
# annotations at runtime.

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from ..engine.answer_quality import (
    AnswerCount,
    changed_answers,
    cited_answers,
    empty_answers,
    undefined_answers,
    undefined_hint,
    unparsed_answers,
)
from ..services.base import Workflow
from ..services.runchat import RunchatWorkflow

EMPTY_ANSWERS = "empty_answers"
UNDEFINED_ANSWERS = "undefined_answers"
CITATION_RATE = "citation_rate"
PARSE_RATE = "parse_rate"
CHANGED_ANSWERS = "changed_answers"


class AnswerCheck(dg.Resolvable, dg.Model):
    """One answer check's settings (``enabled``, ``threshold``, ``blocking``); what its
    threshold means is the check's own (see :class:`AnswerChecks`)."""

    enabled: bool | None = Field(
        default=None,
        description="Run the check; default (null): the check's own default (see AnswerChecks).",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The share of rows the check passes at; default (null): the check's own.",
    )
    blocking: bool = Field(
        default=False,
        description="A failure is an ERROR that keeps downstream assets of the same run from "
        "running (a blocking check); else a WARN.",
    )


class AnswerChecks(dg.Resolvable, dg.Model):
    """Which answer checks an enriched asset carries, with what threshold, and whether each
    blocks downstream assets when it fails (else it warns). Shares are of the succeeded rows.

    - ``empty_answers`` (on by default; threshold 0): passes when at most ``threshold`` of
      the answers are empty or whitespace.
    - ``undefined_answers`` (on; 0): at most ``threshold`` hold the word ``undefined``
      (AI Tutor's stand-in for a variable it was not sent); its description names the
      input columns not sent.
    - ``citation_rate`` (on when the workflow can cite: AI Tutor, or Runchat with
      ``citations_output``; 0): at least ``threshold`` cite a source.
    - ``parse_rate`` (on when the workflow has an ``output_schema``; 1): at least
      ``threshold`` parsed under it (the ``wf_parse_error`` column is null).
    - ``changed_answers`` (on; 1): at most ``threshold`` of the answers that an earlier
      journal job gave for the same inputs changed.

    A check at its default threshold of 0 (``citation_rate``) or 1 (``changed_answers``)
    never fails: it reports its share and examples, which the UI plots.

    Example::

        AnswerChecks(
            undefined_answers=AnswerCheck(blocking=True),
            citation_rate=AnswerCheck(threshold=0.8),
            changed_answers=AnswerCheck(enabled=False),
        )
    """

    empty_answers: AnswerCheck = Field(
        default_factory=AnswerCheck,
        description="At most threshold (default 0) of the answers are empty; on by default.",
    )
    undefined_answers: AnswerCheck = Field(
        default_factory=AnswerCheck,
        description="At most threshold (default 0) of the answers hold the word 'undefined' "
        "(a variable not sent); on by default.",
    )
    citation_rate: AnswerCheck = Field(
        default_factory=AnswerCheck,
        description="At least threshold (default 0) of the answers cite a source; on when "
        "the workflow can cite.",
    )
    parse_rate: AnswerCheck = Field(
        default_factory=AnswerCheck,
        description="At least threshold (default 1) of the answers parsed under the "
        "output_schema; on when the workflow has one.",
    )
    changed_answers: AnswerCheck = Field(
        default_factory=AnswerCheck,
        description="At most threshold (default 1) of the answers an earlier job gave for "
        "the same inputs changed; on by default.",
    )


@dataclass(frozen=True)
class AnswerFacts:
    """What the step knows besides the table, for the checks' hints and comparisons.

    Attributes:
        unsent_columns: input columns that were not sent (where a missing variable lives).
        unmapped_inputs: the flow's inputs not sent, when the service said (Runchat).
        earlier: input hash -> the answer an earlier job gave, for ``changed_answers``
            (a callable, so the journal is read only when that check runs).
    """

    unsent_columns: Sequence[str] = ()
    unmapped_inputs: Sequence[str] = ()
    earlier: Callable[[], Mapping[str, str | None]] | None = None


@dataclass(frozen=True)
class _Check:
    """A check's fixed parts: its default state and threshold, and its description."""

    on_by_default: Callable[[Workflow], bool]
    threshold: float
    describe: Callable[[float], str]
    noun: str
    """What a matching row is, in the metadata (``"empty": 3``)."""
    at_most: bool
    """Passes when the finding's share is at most the threshold (else at least)."""


def _can_cite(workflow: Workflow) -> bool:
    return not isinstance(workflow, RunchatWorkflow) or workflow.citations_output is not None


def _has_output_schema(workflow: Workflow) -> bool:
    return getattr(workflow, "output_schema", None) is not None


_CHECKS: dict[str, _Check] = {
    EMPTY_ANSWERS: _Check(
        lambda workflow: True,
        0.0,
        lambda t: f"At most {t:.1%} of the answers are empty or whitespace.",
        "empty",
        at_most=True,
    ),
    UNDEFINED_ANSWERS: _Check(
        lambda workflow: True,
        0.0,
        lambda t: (
            f"At most {t:.1%} of the answers hold the word 'undefined' (what AI Tutor "
            "puts in for a variable it was not sent)."
        ),
        "undefined",
        at_most=True,
    ),
    CITATION_RATE: _Check(
        _can_cite,
        0.0,
        lambda t: f"At least {t:.1%} of the answers cite a source.",
        "cited",
        at_most=False,
    ),
    PARSE_RATE: _Check(
        _has_output_schema,
        1.0,
        lambda t: f"At least {t:.1%} of the answers parsed under the output schema.",
        "parsed",
        at_most=False,
    ),
    CHANGED_ANSWERS: _Check(
        lambda workflow: True,
        1.0,
        lambda t: (
            f"At most {t:.1%} of the answers an earlier job gave for the same inputs changed."
        ),
        "changed",
        at_most=True,
    ),
}


def enabled_checks(settings: AnswerChecks, workflow: Workflow) -> dict[str, AnswerCheck]:
    """The answer checks an asset of ``workflow`` carries, by name."""
    enabled = {}
    for name, fixed in _CHECKS.items():
        chosen: AnswerCheck = getattr(settings, name)
        on = fixed.on_by_default(workflow) if chosen.enabled is None else chosen.enabled
        if on:
            enabled[name] = chosen
    return enabled


def threshold_of(name: str, chosen: AnswerCheck) -> float:
    """The check's threshold: the one chosen, else its default."""
    return _CHECKS[name].threshold if chosen.threshold is None else chosen.threshold


def answer_check_specs(
    asset_key: dg.AssetKey, settings: AnswerChecks, workflow: Workflow
) -> list[dg.AssetCheckSpec]:
    """The specs of the answer checks an asset of ``workflow`` carries."""
    return [
        dg.AssetCheckSpec(
            name,
            asset=asset_key,
            description=_CHECKS[name].describe(threshold_of(name, chosen)),
            blocking=chosen.blocking,
        )
        for name, chosen in enabled_checks(settings, workflow).items()
    ]


def answer_check_results(
    table: pa.Table, prefix: str, settings: AnswerChecks, workflow: Workflow, facts: AnswerFacts
) -> list[dg.AssetCheckResult]:
    """The results of the answer checks the asset carries, from the table just built."""
    results = []
    for name, chosen in enabled_checks(settings, workflow).items():
        found = _finding(name, table, prefix, facts)
        results.append(_result(name, chosen, found, prefix, facts))
    return results


def _finding(name: str, table: pa.Table, prefix: str, facts: AnswerFacts) -> AnswerCount | None:
    if name == EMPTY_ANSWERS:
        return empty_answers(table, prefix)
    if name == UNDEFINED_ANSWERS:
        return undefined_answers(table, prefix)
    if name == CITATION_RATE:
        return cited_answers(table, prefix)
    if name == PARSE_RATE:
        unparsed = unparsed_answers(table, prefix)
        if unparsed is None:
            return None
        return AnswerCount(unparsed.rows, unparsed.rows - unparsed.matching, unparsed.examples)
    earlier = facts.earlier() if facts.earlier is not None else {}
    return changed_answers(table, prefix, earlier)


def _result(
    name: str, chosen: AnswerCheck, found: AnswerCount | None, prefix: str, facts: AnswerFacts
) -> dg.AssetCheckResult:
    fixed = _CHECKS[name]
    threshold = threshold_of(name, chosen)
    severity = dg.AssetCheckSeverity.ERROR if chosen.blocking else dg.AssetCheckSeverity.WARN
    if found is None:  # parse_rate without a parse error column: nothing was parsed
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            severity=severity,
            metadata={"parse_error_column": f"none ({prefix}parse_error absent)"},
            description="The table has no parse error column: the workflow has no output schema.",
        )
    share = found.share
    passed = share <= threshold if fixed.at_most else share >= threshold
    metadata: dict[str, Any] = {
        "rows": found.rows,
        fixed.noun: found.matching,
        "share": dg.MetadataValue.float(round(share, 6)),
        "threshold": dg.MetadataValue.float(threshold),
    }
    if found.examples:
        metadata["examples"] = dg.MetadataValue.json(found.examples)
    description = None
    if name == UNDEFINED_ANSWERS and found.matching:
        hint = undefined_hint(facts.unsent_columns, facts.unmapped_inputs)
        metadata["likely_unsent_input"] = hint
        description = f"{found.matching} of {found.rows} answers hold 'undefined': {hint}"
    elif not passed:
        description = (
            f"{found.matching} of {found.rows} rows ({share:.1%}); threshold {threshold:.1%}; "
            f"see the {prefix}result column"
        )
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=severity,
        metadata=metadata,
        description=description,
    )
