"""Deciding which injected fault, if any, a request meets.

Kept apart from the handlers so the decision is one place with one seeded random
generator: the same configuration and the same sequence of requests meet the same faults.
Probabilistic faults draw only when their rate is non-zero, so turning one fault on does
not reshuffle the others' draws. Counted faults (``fail_attempts``, ``rate_limit_burst``)
draw nothing and are exact.
"""

from __future__ import annotations

import random
from collections import Counter
from enum import Enum

from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.workflow_spec import WorkflowSpec

GLOBAL_SCOPE = "*"
UNUSABLE_ANSWERS = frozenset(
    {
        "no_result",
        "null_result",
        "number_result",
        "bad_citations",
        "odd_citations",
        "invalid_utf8",
        "html_200",
        "drop_after_run",
    }
)
"""``fail_with`` kinds that replace the answer of a run that happened (see
:func:`~dagster_runwf.emulator.protocols.exchange.damaged_answer`)."""
LATE_FAILURES = frozenset({"reset", "malformed"}) | UNUSABLE_ANSWERS
"""``fail_with`` kinds that damage the answer of a run that happened."""


class Fault(Enum):
    """A fault met before the run, in the order they are checked."""

    DROP = "drop"
    HTML_ERROR = "html_error"
    FAIL_ATTEMPT = "fail_attempts"
    ERROR = "error"


class FaultInjector:
    """Seeded fault decisions plus the counters behind the deterministic faults."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.bursts: dict[str, int] = {}
        self.rearm_bursts([GLOBAL_SCOPE])
        self.rearm_bursts([w.id for w in self.config.workflows if w.faults is not None])

    def rearm_bursts(self, scopes: list[str]) -> None:
        """Take ``rate_limit_burst`` of the given scopes from the configuration again."""
        for scope in scopes:
            if scope == GLOBAL_SCOPE:
                self.bursts[GLOBAL_SCOPE] = self.config.faults.rate_limit_burst
                for w in self.config.workflows:
                    if w.faults is not None:
                        self.bursts[w.id] = w.faults.rate_limit_burst
                continue
            for w in self.config.workflows:
                if w.id == scope and w.faults is not None:
                    self.bursts[scope] = w.faults.rate_limit_burst

    def faults_for(self, spec: WorkflowSpec | None) -> tuple[str, FaultConfig]:
        if spec is not None and spec.faults is not None:
            return spec.id, spec.faults
        return GLOBAL_SCOPE, self.config.faults

    def take_burst(self, scope: str) -> bool:
        """True while the scope's burst of forced 429s lasts."""
        left = self.bursts.get(scope, 0)
        if left <= 0:
            return False
        self.bursts[scope] = left - 1
        return True

    def before_run(self, faults: FaultConfig, workflow_id: str, body_sha: str) -> Fault | None:
        """The fault this request meets before its run starts, if any."""
        rng = self.rng
        if faults.drop_rate and rng.random() < faults.drop_rate:
            return Fault.DROP
        if faults.html_error_rate and rng.random() < faults.html_error_rate:
            return Fault.HTML_ERROR
        if faults.fail_attempts:
            slot = (workflow_id, body_sha)
            seen = self.attempts[slot]
            self.attempts[slot] = seen + 1
            if seen < faults.fail_attempts:
                return Fault.FAIL_ATTEMPT
        if faults.error_rate and rng.random() < faults.error_rate:
            return Fault.ERROR
        return None

    def late(self, fault: Fault | None, faults: FaultConfig) -> str | None:
        """One of :data:`LATE_FAILURES` when the request fails only after its run (which is
        then charged, as a real answer lost on the way would be); else ``None``."""
        if fault is Fault.FAIL_ATTEMPT and faults.fail_with in LATE_FAILURES:
            return faults.fail_with
        return None

    def malformed(self, faults: FaultConfig) -> bool:
        return bool(faults.malformed_rate) and self.rng.random() < faults.malformed_rate

    def delay(self, spec: WorkflowSpec, faults: FaultConfig) -> float:
        """How long the run takes, in seconds."""
        lat = spec.latency
        base = lat.min_s if lat.max_s <= lat.min_s else self.rng.uniform(lat.min_s, lat.max_s)
        return base + faults.slow_s
