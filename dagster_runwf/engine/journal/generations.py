"""Jobs that resume until their results land: a job's *generations*.

A caller that cannot name a run group that every later attempt will share (a Dagster asset:
a fresh materialization, a backfill's re-launch and a run after ``kill -9`` all get new run
ids) names the *job* by what it computes instead (asset, partition, configuration). The job
then has generations, ``<job>#1``, ``<job>#2``…: the newest generation not yet *landed* is
the one every run resumes, and once the caller marks it landed (its results are stored),
the next run starts the next generation.

A landed generation is a marker file, ``<location>/landed/<job folder>/<generation>.landed``;
writing a newer marker deletes the older ones, so a job keeps one marker. Markers are apart
from the job folders and snapshots, so loading and compaction never see them.
"""

from __future__ import annotations

import datetime as dt
import json

from ..storage import Storage
from .files import file_name, job_folder_name

MARKER_SUFFIX = ".landed"


def generation_job_id(job: str, generation: int) -> str:
    """The journal job id of ``job``'s ``generation``."""
    return f"{job}#{generation}"


def current_generation(storage: Storage, job: str) -> int:
    """The generation of ``job`` a run resumes: the one after the newest landed (1 if none)."""
    markers = storage.list_files(_markers(storage, job), MARKER_SUFFIX)
    landed = [_generation(path) for path in markers]
    return max((n for n in landed if n is not None), default=0) + 1


def mark_landed(storage: Storage, job: str, generation: int) -> None:
    """Record that ``job``'s ``generation`` landed: the next run starts the one after it."""
    folder = _markers(storage, job)
    marker = {"job": job, "generation": generation, "landed_at": dt.datetime.now(dt.timezone.utc)}
    storage.write_bytes(
        f"{folder}/{generation:09d}{MARKER_SUFFIX}",
        json.dumps(marker, default=str).encode(),
    )
    older = [
        path
        for path in storage.list_files(folder, MARKER_SUFFIX)
        if (n := _generation(path)) is not None and n < generation
    ]
    storage.delete(older)


def _markers(storage: Storage, job: str) -> str:
    return storage.path("landed", job_folder_name(job))


def _generation(path: str) -> int | None:
    stem = file_name(path).removesuffix(MARKER_SUFFIX)
    return int(stem) if stem.isdigit() else None
