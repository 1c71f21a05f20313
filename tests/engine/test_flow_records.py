"""``continue_by``'s records over many runs: the folder of a key column's records stays
bounded (a run that finds more than ``FOLD_AFTER`` files folds them into one), every entity
still continues its own latest instance, and folds that meet other runs (another fold,
another run recording) lose no record. Real files (and S3 on loopback); the nightly runs go
to the emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dagster_runwf import RunchatWorkflow, enrich
from dagster_runwf.emulator import Emulator
from dagster_runwf.engine.flow_records import (
    FOLD_AFTER,
    _instances_folder,
    read_instances,
    record_instances,
)
from dagster_runwf.engine.storage import Storage
from dagster_runwf.services.runchat import entity_key

from ..conftest import CHAT, engine_options

FLOW, COLUMN = "chat", "customer"


def record_files(storage: Storage) -> list[str]:
    return storage.list_files(_instances_folder(storage, FLOW, COLUMN), ".json")


def night(emu: Emulator, storage: Storage, number: int, customers: list[str]) -> None:
    """One nightly run, as ``runwf enrich --continue-by customer`` does it: read the records,
    send each customer's message of the night, record the instances answered."""
    rows = pd.DataFrame({"customer": customers, "message_n1": [f"{c}@{number}" for c in customers]})
    workflow = RunchatWorkflow(FLOW, ["message_n1"], continue_by=COLUMN)
    done = enrich(
        rows,
        workflow.continuing(read_instances(storage, FLOW, COLUMN)),
        engine_options(emu.runchat_url),
    ).to_arrow()
    record_instances(
        storage,
        FLOW,
        COLUMN,
        zip(
            customers,
            done.column("wf_status").to_pylist(),
            done.column("wf_instance_id").to_pylist(),
            strict=True,
        ),
    )


def test_twenty_nights_keep_the_folder_bounded_and_each_entitys_conversation(
    start_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = start_emulator(workflows=[CHAT], rate_limit_enabled=False)
    storage = Storage(tmp_path / "journal")
    files = []
    for number in range(20):
        # A and B every night, a new customer each night, and "old" on the first and the
        # last night only: its record is 19 runs old when it comes back.
        customers = ["A", "B", f"new{number}"] + (["old"] if number in (0, 19) else [])
        night(emu, storage, number, customers)
        files.append(len(record_files(storage)))
    assert max(files) <= FOLD_AFTER + 1, files
    assert files[-1] < FOLD_AFTER, f"the records were folded: {files}"

    runs: dict[str, list[dict[str, Any]]] = {}
    for run in emu.instances(FLOW):
        runs.setdefault(run["inputs"]["message_n1"].split("@")[0], []).append(run)
    # Server side: every night of A and B continued the instance its first night started.
    for customer in ("A", "B"):
        first, *later = runs[customer]
        assert len(later) == 19 and all(r["continued"] for r in later)
        assert {r["instance_id"] for r in later} == {first["instance_id"]}
        assert [r["turn"] for r in runs[customer]] == list(range(1, 21))
    first, last = runs["old"]
    assert last["continued"] and last["instance_id"] == first["instance_id"], (
        "an entity whose latest record is old still continues its conversation"
    )
    assert len(read_instances(storage, FLOW, COLUMN)) == 3 + 20


def nine_runs(storage: Storage) -> dict[str, str]:
    """Records of ``FOLD_AFTER + 1`` runs (one more than a run leaves unfolded): run ``r``
    answers key ``all`` and its own key ``only<r>``. Returns each key's latest instance."""
    runs = FOLD_AFTER + 1
    for r in range(runs):
        answered = [("all", f"i{r}"), (f"only{r}", f"i{r}")]
        record_instances(storage, FLOW, COLUMN, succeeded(answered))
    return keyed({"all": f"i{runs - 1}", **{f"only{r}": f"i{r}" for r in range(runs)}})


def keyed(instances: dict[str, str]) -> dict[str, str]:
    """``instances`` keyed as the records key them (:func:`entity_key` of the cell)."""
    return {str(entity_key(cell)): instance for cell, instance in instances.items()}


def succeeded(answers: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(key, "succeeded", instance) for key, instance in answers]


def test_a_fold_keeps_every_keys_latest_record_and_leaves_damaged_files_alone(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path)
    expected = nine_runs(storage)
    damaged = Path(_instances_folder(storage, FLOW, COLUMN)) / "0-damaged.json"
    damaged.write_text("{not json")
    assert read_instances(storage, FLOW, COLUMN) == expected
    assert damaged.read_text() == "{not json"
    assert len(record_files(storage)) == 2, "one merged file beside the damaged one"
    assert read_instances(storage, FLOW, COLUMN) == expected, "the folded file reads the same"


def test_records_in_object_storage_are_folded_too(s3: dict[str, Any]) -> None:
    storage = Storage("s3://bucket/flow-records", s3["options"])
    expected = nine_runs(storage)
    assert read_instances(storage, FLOW, COLUMN) == expected
    assert len(record_files(storage)) == 1
    record_instances(storage, FLOW, COLUMN, succeeded([("all", "later")]))
    assert read_instances(storage, FLOW, COLUMN) == {**expected, **keyed({"all": "later"})}


class Interleaved(Storage):
    """Local storage letting another run act at one moment of this one's read: right after
    its first listing, or right before it writes (its merged file)."""

    def __init__(
        self,
        location: Path,
        *,
        after_listing: Callable[[], object] | None = None,
        before_writing: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(location)
        self.after_listing = after_listing
        self.before_writing = before_writing

    def list_files(self, folder: str, suffix: str = "") -> list[str]:
        found = super().list_files(folder, suffix)
        action, self.after_listing = self.after_listing, None
        if action is not None:
            action()
        return found

    def write_bytes(self, path: str, data: bytes | memoryview) -> None:
        action, self.before_writing = self.before_writing, None
        if action is not None:
            action()
        super().write_bytes(path, data)


def test_two_runs_folding_the_same_files_lose_no_record(tmp_path: Path) -> None:
    other = Storage(tmp_path)
    expected = nine_runs(other)
    seen: list[dict[str, str]] = []
    # The other run reads the same files, folds them and deletes them while this one is
    # about to write its own merged file.
    storage = Interleaved(
        tmp_path, before_writing=lambda: seen.append(read_instances(other, FLOW, COLUMN))
    )
    assert read_instances(storage, FLOW, COLUMN) == expected
    assert seen == [expected]
    assert len(record_files(other)) == 2, "two merged files, the run files all deleted"
    assert read_instances(other, FLOW, COLUMN) == expected


def test_a_read_whose_files_were_folded_meanwhile_lists_again(tmp_path: Path) -> None:
    other = Storage(tmp_path)
    expected = nine_runs(other)
    storage = Interleaved(tmp_path, after_listing=lambda: read_instances(other, FLOW, COLUMN))
    assert read_instances(storage, FLOW, COLUMN) == expected
    assert len(record_files(other)) == 1


def test_a_run_recording_during_a_fold_keeps_its_file_and_wins(tmp_path: Path) -> None:
    other = Storage(tmp_path)
    expected = nine_runs(other)
    late = succeeded([("all", "late"), ("newcomer", "late")])
    storage = Interleaved(
        tmp_path, before_writing=lambda: record_instances(other, FLOW, COLUMN, late)
    )
    assert read_instances(storage, FLOW, COLUMN) == expected
    assert read_instances(other, FLOW, COLUMN) == {
        **expected,
        **keyed({"all": "late", "newcomer": "late"}),
    }
    assert len(record_files(other)) == 2, "the merged file and the file written meanwhile"


def test_a_file_landing_late_with_an_older_stamp_wins_by_its_stamp(tmp_path: Path) -> None:
    """A slow run's upload lands after a fold though its name (the time it started writing)
    sorts among the folded files: its records win over older ones, lose to newer ones, as
    they would have without the fold."""
    other = Storage(tmp_path)
    expected = nine_runs(other)
    third, fourth = (int(Path(p).name.split("-")[0]) for p in record_files(other)[3:5])
    assert fourth > third + 1

    def land_late() -> None:
        record_instances(other, FLOW, COLUMN, succeeded([("only3", "slow"), ("all", "slow")]))
        written = record_files(other)[-1]
        other.move(written, str(Path(written).with_name(f"{third + 1:020d}-slow0000.json")))

    storage = Interleaved(tmp_path, before_writing=land_late)
    assert read_instances(storage, FLOW, COLUMN) == expected
    # "only3" was last recorded by run 3, before the slow run; "all" by run 8, after it.
    assert read_instances(other, FLOW, COLUMN) == {**expected, **keyed({"only3": "slow"})}
    assert any(Path(p).name == f"{third + 1:020d}-slow0000.json" for p in record_files(other))


@pytest.mark.parametrize("runs", [FOLD_AFTER, FOLD_AFTER + 1])
def test_a_run_folds_only_beyond_fold_after_files(tmp_path: Path, runs: int) -> None:
    storage = Storage(tmp_path)
    for r in range(runs):
        record_instances(storage, FLOW, COLUMN, succeeded([(f"k{r}", f"i{r}")]))
    assert read_instances(storage, FLOW, COLUMN) == keyed({f"k{r}": f"i{r}" for r in range(runs)})
    assert len(record_files(storage)) == (runs if runs <= FOLD_AFTER else 1)
