"""The answers earlier jobs at a journal location gave for given inputs: what an answer is
compared with to tell whether it changed since (the ``changed_answers`` check).

Reads the location's job files (but those of the jobs left out: the run's own) and snapshots,
as an incremental opening does, keeping per input hash the latest success recorded under the
same version.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..storage import Storage
from .damage import read_or_set_aside
from .files import SUFFIX, job_folder_name


def earlier_answers(
    location: str,
    *,
    input_hashes: Collection[str],
    leave_out_jobs: Collection[str],
    version: str = "",
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, str | None]:
    """Input hash -> the latest successful answer (``result``) another job at ``location``
    recorded for it under ``version``, for the hashes in ``input_hashes`` that have one.

    Args:
        location: the journal's location.
        input_hashes: the inputs to look up.
        leave_out_jobs: job ids (generation ids, as the rows hold them) not to read: the
            run's own.
        version: the journal version the answers were recorded under.
        storage_options: fsspec options for a URL ``location``.
    """
    storage = Storage(location, storage_options)
    wanted = pa.array(sorted(set(input_hashes)), pa.string())
    if not len(wanted):
        return {}
    skipped = {job_folder_name(job) for job in leave_out_jobs}
    paths = list(storage.list_files(storage.path("snapshots"), SUFFIX))
    for folder in storage.list_folders(storage.path("jobs")):
        if folder.rstrip("/").rsplit("/", 1)[-1] not in skipped:
            paths.extend(storage.list_files(folder, SUFFIX))
    latest: dict[str, tuple[int, str | None]] = {}
    leave_out = pa.array(sorted(set(leave_out_jobs)), pa.string())
    for path in paths:
        try:
            table = read_or_set_aside(storage, path)
        except FileNotFoundError:
            continue  # merged or folded meanwhile: its rows are in a file read or not needed
        if table is None:
            continue
        keep = pc.and_(
            pc.and_(
                pc.equal(table.column("version"), version),
                pc.equal(table.column("status"), "succeeded"),
            ),
            pc.and_(
                pc.is_in(table.column("input_hash"), value_set=wanted),
                pc.invert(pc.is_in(table.column("job_id"), value_set=leave_out)),
            ),
        )
        rows = table.filter(keep)
        finished = rows.column("finished_at").cast(pa.int64()).to_pylist()
        for input_hash, answer, when in zip(
            rows.column("input_hash").to_pylist(),
            rows.column("result").to_pylist(),
            finished,
            strict=True,
        ):
            if input_hash not in latest or latest[input_hash][0] <= when:
                latest[input_hash] = (when, answer)
    return {input_hash: answer for input_hash, (_, answer) in latest.items()}
