"""What a claim store is: the rows some writer of a job is paying for right now.

Two writers of one job (two ``runwf enrich`` commands, a schedule tick over a manual
launch) share the job's journal, but a row is journaled only once its answer is in. A
*claim* covers the time before: a writer claims a row before it sends it, and releases the
claim once the journal holds the row. Another writer that finds the row claimed waits for
the answer to appear in the journal, or, when the holder stopped renewing its claims (it
died), takes the row over.

Claims are keyed by a *scope* — the journal's location, the job and the journal's version,
hashed; never the API key — and the row's input hash. A released claim is remembered as
*answered*, so a writer that claims a row someone answered since it opened the journal
knows to read the journal again before paying.

The store also counts what the job's writers spent (paid runs, and credits where the service
reports them), so a budget holds across them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Spending = Literal["runs", "credits"]
"""What a job's writers count together: paid runs, or credits (spent, or set aside for runs
in flight)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What asking for a row's claim gave.

    Attributes:
        won: the asker holds the claim now.
        seen_before: (when won) another writer held it before: it answered the row (look
            in the journal first) or it died holding it.
        holder: (when not won) the writer holding it.
    """

    won: bool
    seen_before: bool = False
    holder: str | None = None


class ClaimStore(Protocol):
    """The claims of every job that shares this store (one SQLite file, one Redis server).

    Every method is synchronous, safe to call from several threads, and cheap (one
    transaction or one round trip).
    """

    shared: bool
    """``True``: other processes see these claims."""

    where: str
    """Where the claims are, for messages (a file, a server; never a password)."""

    def claim(self, scope: str, key: str, holder: str, ttl_s: float) -> Claim:
        """Claim row ``key`` of job ``scope`` for ``holder`` for ``ttl_s`` seconds, unless a
        live writer holds it."""

    def renew(self, scope: str, holder: str, ttl_s: float) -> None:
        """Extend every claim ``holder`` has in ``scope`` by ``ttl_s`` from now (the
        heartbeat)."""

    def release(self, scope: str, holder: str, keys: list[str]) -> None:
        """``holder``'s rows ``keys`` are answered (and journaled) or given up."""

    def holder(self, scope: str, key: str) -> str | None:
        """The live writer holding row ``key``, if any."""

    def add_spent(
        self, scope: str, what: Spending, amount: float, *, at_least: float, limit: float | None
    ) -> tuple[bool, float]:
        """Count ``amount`` more of ``what`` for the job, whose count is at least
        ``at_least`` (what its journal shows); not, when ``amount`` is not negative, if the
        count is at ``limit`` already or ``amount`` would take it past. A negative
        ``amount`` gives back what was not spent.

        Returns:
            whether it was counted, and the job's count after the call.
        """

    def close(self) -> None:
        """Close this process's connections."""
