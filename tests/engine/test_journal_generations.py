"""A job's generations: every opening resumes the newest one until it lands, then the next
opening starts a new one (fresh, or reusing earlier successes in incremental mode)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dagster_runwf import ConfigError, RowJournal
from dagster_runwf.engine.journal import current_generation, mark_landed
from dagster_runwf.engine.storage import Storage

from .test_journal import failure, success

JOB = "profiles/2026-11-20/4c2752601fbb04e2"


def test_a_job_resumes_until_it_lands_then_starts_a_new_generation(tmp_path: Path) -> None:
    with RowJournal.open_job(tmp_path, job=JOB) as first:
        first.record([success(1), failure(2)])
    assert (first.job, first.generation, first.job_id) == (JOB, 1, f"{JOB}#1")

    with RowJournal.open_job(tmp_path, job=JOB) as again:  # not landed: resumed
        assert again.generation == 1 and again.finished_rows == 2
        again.record([success(3)])
    again.mark_landed()  # after closing, once the results are stored

    with RowJournal.open_job(tmp_path, job=JOB) as fresh:
        assert fresh.generation == 2 and fresh.finished_rows == 0
        assert fresh.lookup(success(1).input_hash or "") is None
    with RowJournal.open_job(tmp_path, job=JOB, incremental=True) as reusing:
        assert reusing.generation == 2 and reusing.reusable_rows == 2, "successes only"


def test_a_job_keeps_one_marker_and_other_jobs_are_apart(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    for generation in (1, 2, 3):
        mark_landed(storage, JOB, generation)
    assert current_generation(storage, JOB) == 4
    assert current_generation(storage, JOB + "/chunk-00001") == 1
    assert len(list((tmp_path / "landed").rglob("*.landed"))) == 1


def test_markers_survive_compaction_and_go_with_clear(tmp_path: Path) -> None:
    for generation in range(1, 5):
        with RowJournal.open_job(tmp_path, job=JOB, keep_jobs=1, keep_recent=_none()) as journal:
            journal.record([success(generation)])
        journal.mark_landed()
    assert not (tmp_path / "jobs" / "landed").exists()
    with RowJournal.open_job(tmp_path, job=JOB, keep_jobs=1, keep_recent=_none()) as journal:
        assert journal.generation == 5, "compaction folded old jobs, not the markers"
        journal.clear()
    assert current_generation(Storage(tmp_path), JOB) == 1


def test_only_a_journal_with_generations_lands(tmp_path: Path) -> None:
    with RowJournal(tmp_path, job_id="plain") as journal:
        pass
    with pytest.raises(RuntimeError, match="open_job"):
        journal.mark_landed()


def _none() -> dt.timedelta:
    """``keep_recent`` that keeps no job for being recent."""
    return dt.timedelta(0)


def test_a_job_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="job"):
        RowJournal.open_job(tmp_path, job=" ")
