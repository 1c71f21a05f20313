"""The common shape of a successful workflow run, whatever service ran it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """A workflow run that succeeded.

    Attributes:
        result: the main text answer (AI Tutor's ``result``; for Runchat, the chosen output).
        citations: web sources the run cited, in the service's order; empty when none.
        outputs: named outputs by id (Runchat's output parameters); empty for AI Tutor.
        output_labels: output label -> output id, so outputs can be chosen by label.
        metadata: the service's execution metadata, decoded, kept whole; plus, under
            ``"runwf_warnings"``, what the package changed in the answer, when it did (e.g.
            citations given as objects or ``null``: see :mod:`~dagster_runwf.services.citations`).
        instance_id: the service's instance/execution id, when it names one.
        credits: credits the run cost, when the service says.
    """

    result: str | None
    citations: tuple[str, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)
    output_labels: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    instance_id: str | None = None
    credits: float | None = None
