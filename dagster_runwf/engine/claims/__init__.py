"""Row claims: two writers of one job never pay for the same row at once.

A writer claims a row before it sends it and releases the claim once the journal holds the
row; another writer of the job waits for that answer, or takes the row over when the
holder stops renewing its claims (it died). The job's paid runs are counted in the same
store, so a budget holds across its writers.

:mod:`.store` says what a claim store is; :mod:`.sqlite_store` (one host: by default a file
in a local journal's folder) and :mod:`.redis_store` (every host) are the two kinds;
:mod:`.opening` picks one from the ``claim_store`` engine option; :mod:`.row_claims` is one
fan-out's use of them.
"""

from .opening import AUTO, check_claim_store, claim_store_for, row_claims_for
from .redis_store import RedisClaimStore
from .row_claims import ClaimedJournal, RowClaims
from .sqlite_store import SqliteClaimStore
from .store import Claim, ClaimStore, Spending

__all__ = [
    "AUTO",
    "Claim",
    "Spending",
    "ClaimStore",
    "ClaimedJournal",
    "RedisClaimStore",
    "RowClaims",
    "SqliteClaimStore",
    "check_claim_store",
    "claim_store_for",
    "row_claims_for",
]
