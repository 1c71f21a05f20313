"""Damaged journal files: named in a warning and set aside, so their rows are run again.

A journal file whose bytes do not match the digest in its name (a flipped bit on a disk, a
file cut short by a copy or a full disk of an older version) must never answer a row: it
might give one row another row's answer. The reader that finds one moves it below
``<location>/damaged/`` (keeping its path: ``damaged/jobs/<job>/<file>``), warns with a
:class:`DamagedJournalFileWarning` naming both paths, and goes on without it; the rows it
held are then paid for again, like rows never recorded.

It is moved, not deleted: a person can look at it (or move it back, once repaired), and no
reader lists anything below ``damaged/``, so it is never read again, merged or compacted.
Moved, not renamed in place: the job's folder stays clean (compaction removes emptied job
folders) and everything damaged at a location is in one place. :meth:`RowJournal.clear`
deletes it with the rest.
"""

from __future__ import annotations

import warnings

import pyarrow as pa

from ..storage import Storage
from .files import DamagedFile, file_name, read_file

DAMAGED_FOLDER = "damaged"
"""The folder of a journal location where damaged files are set aside."""


class DamagedJournalFileWarning(UserWarning):
    """A journal file was damaged: it was set aside and its rows will be run again."""


def read_or_set_aside(storage: Storage, path: str) -> pa.Table | None:
    """A journal file's rows; ``None`` when it is damaged (then set aside, with a warning).

    Raises:
        FileNotFoundError: the file is gone (merged or folded by another writer).
    """
    try:
        return read_file(storage, path)
    except DamagedFile as damaged:
        set_aside(storage, damaged)
        return None


def set_aside(storage: Storage, damaged: DamagedFile) -> str | None:
    """Move a damaged file below ``damaged/`` and warn; its new path (``None`` when it
    could not be moved: it is skipped all the same)."""
    target = aside_path(storage, damaged.path)
    try:
        storage.move(damaged.path, target)
    except FileNotFoundError:
        pass  # another reader found it damaged first and moved it
    except OSError as exc:
        _warn(f"{damaged}; it could not be set aside ({exc}), so it is skipped")
        return None
    _warn(f"{damaged}; set aside as {target}")
    return target


def aside_path(storage: Storage, path: str) -> str:
    """Where a damaged file is set aside: below ``damaged/``, at its path in the location."""
    root = storage.root.rstrip("/") + "/"
    relative = path[len(root) :] if path.startswith(root) else file_name(path)
    return storage.path(DAMAGED_FOLDER, relative)


def _warn(message: str) -> None:
    warnings.warn(
        f"damaged journal file {message}; the rows it held will be run (and paid for) again",
        DamagedJournalFileWarning,
        stacklevel=4,
    )
