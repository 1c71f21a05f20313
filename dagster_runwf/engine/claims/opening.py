"""Which claim store a job uses (the ``claim_store`` engine option)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ... import wording
from ...errors import ConfigError
from .redis_store import RedisClaimStore
from .row_claims import ClaimedJournal, RowClaims
from .sqlite_store import SqliteClaimStore
from .store import ClaimStore

AUTO = "auto"
OFF = "off"
SQLITE_SCHEME = "sqlite://"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
LOCAL_FILE = "claims.sqlite"
"""The claims file of a local journal, in the journal's folder."""

_log = logging.getLogger(__name__)
_warned: set[str] = set()


def check_claim_store(setting: str | None) -> None:
    """Raise :class:`ConfigError` for a ``claim_store`` naming no supported store."""
    if setting is None or setting in (AUTO, OFF):
        return
    if isinstance(setting, str) and setting.startswith((SQLITE_SCHEME, *REDIS_SCHEMES)):
        if setting == SQLITE_SCHEME:
            raise ConfigError(f"claim store {setting!r} names no file")
        return
    raise ConfigError(
        f"claim store {setting!r} is not supported: use 'auto' (a SQLite file in a local "
        "journal's folder), 'off', 'sqlite:///path/claims.sqlite' (every process of this "
        "host) or 'redis://host:6379/0' (every host reaching that Redis server)"
    )


def claim_store_for(
    setting: str | None, *, journal_folder: str | None, journal_url: str
) -> Callable[[], ClaimStore] | None:
    """What opens the store ``setting`` names for a journal at ``journal_url``
    (``journal_folder``: its local folder, ``None`` in object storage); ``None``: claims
    are off.

    ``"auto"`` is a SQLite file in a local journal's folder (every process writing the
    journal shares that file system); for a journal in object storage there is no store to
    assume, so it warns once that concurrent writers are not coordinated.
    """
    check_claim_store(setting)
    if setting is None or setting == OFF:
        return None
    if setting == AUTO:
        if journal_folder is None:
            if journal_url not in _warned:
                _warned.add(journal_url)
                _log.warning(
                    "the journal %s is in object storage and no claim store is set: two "
                    "writers of one job at once are not coordinated and may pay for rows "
                    "twice; set %s to coordinate them",
                    journal_url,
                    wording.setting("claim_store", "redis://..."),
                )
            return None
        setting = SQLITE_SCHEME + os.path.join(journal_folder, LOCAL_FILE)
    # A store per fan-out, closed with it: a journal folder deleted meanwhile (``clear()``)
    # gets a fresh file, and no connection outlives its run. A SQLite file is created at
    # the first claim (a run that pays for nothing leaves none); a Redis server is reached
    # at once, so a wrong URL is a configuration error before any request.
    url = setting
    if url.startswith(SQLITE_SCHEME):
        return lambda: SqliteClaimStore(url[len(SQLITE_SCHEME) :])
    redis_store = RedisClaimStore(url)
    return lambda: redis_store


def row_claims_for(
    setting: str | None,
    journal: ClaimedJournal,
    *,
    ttl_s: float,
    stopped: Callable[[], bool],
) -> RowClaims | None:
    """One fan-out's claims in ``journal``'s job, in the store ``setting`` names (see
    :func:`claim_store_for`); ``None`` when claims are off."""
    open_store = claim_store_for(
        setting, journal_folder=journal.local_folder, journal_url=journal.location_url
    )
    if open_store is None:
        return None
    return RowClaims(open_store, journal.claim_scope, journal, ttl_s=ttl_s, stopped=stopped)
