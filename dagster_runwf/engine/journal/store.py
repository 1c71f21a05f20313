"""The rows a journal holds in memory, and its two indexes over them.

Rows read when the journal opens (this job's earlier attempts; in incremental mode the
reusable answers) are kept decoded, as Arrow arrays, since most of them will be asked for.
Rows this writer records are kept compressed (:class:`~.recorded.RecordedRows`). Each row
has a location (:class:`~.location.RowLocation`), which the indexes
(:class:`~.index.RowIndex`) map input hashes to.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc

from ..results import RowResult
from .index import RowIndex
from .location import RowLocation
from .recorded import RecordedRows
from .schema import FINISHED_COLUMN, HASH_COLUMN, Micros, column_arrays, decode, finished_micros


class RowStore:
    """The rows a journal may answer from, by location, and the indexes over them.

    Attributes:
        own: this job's rows (read at opening, or recorded by this writer).
        reusable: rows of earlier jobs that may answer this one (incremental mode).

    Rows are added under a lock, by one thread at a time; :meth:`lookup` may run in another
    thread meanwhile (see :class:`~.index.RowIndex`).
    """

    def __init__(self) -> None:
        # Per table read at opening: its columns, in schema order, and its finish times.
        self._tables: list[list[pa.Array]] = []
        self._finished: list[Micros] = []
        self._recorded = RecordedRows()
        self._runs_spent = 0
        self._credits_spent = 0.0
        self._lock = threading.RLock()
        self.own = RowIndex(self)
        self.reusable = RowIndex(self)

    def add_read(self, table: pa.Table, *, own: bool) -> None:
        """Keep a journal table read at opening (decoded) and index its rows, as this job's
        (counting what they cost) or as reusable."""
        if table.num_rows == 0:
            return
        with self._lock:
            locations = RowLocation.of_read_rows(len(self._tables), table.num_rows)
            finished = finished_micros(table)
            self._tables.append(column_arrays(table))
            self._finished.append(finished)
            index = self.own if own else self.reusable
            index.put_rows(table.column("input_hash").to_pylist(), locations, finished)
            if own:
                self._runs_spent += table.num_rows
                credits = pc.sum(table.column("credits")).as_py()
                self._credits_spent += float(credits or 0.0)

    def add_recorded(self, table: pa.Table) -> None:
        """Keep a journal table this writer recorded (compressed, in time) and index it."""
        with self._lock:
            first = self._recorded.add(table)
            locations = RowLocation.of_recorded_rows(first, table.num_rows)
            hashes = table.column("input_hash").to_pylist()
            self.own.put_rows(hashes, locations, finished_micros(table))

    def spent(self) -> tuple[int, float]:
        """Runs and credits of this job's rows read at opening (its earlier attempts)."""
        return self._runs_spent, self._credits_spent

    def lookup(self, input_hash: str, *, failed: bool = True) -> RowResult | None:
        """This job's row for these inputs, else a reusable one, else ``None``; with
        ``failed=False``, a failed row of this job is passed over (to be sent again)."""
        for index in (self.own, self.reusable):
            location = index.get(input_hash)
            if location is not None:
                columns, row = self._row(location)
                found = decode(columns, row)
                if failed or found.status != "failed":
                    return found
        return None

    def hash_at(self, location: int) -> str:
        """The input hash of the row at ``location``."""
        columns, row = self._row(location)
        value: str = columns[HASH_COLUMN][row].as_py()
        return value

    def finished_at(self, location: int) -> int:
        """When the row at ``location`` finished (microseconds since the epoch)."""
        if not RowLocation.is_recorded(location):
            table, row = RowLocation.read_table_row(location)
            return int(self._finished[table][row])
        columns, row = self._row(location)
        finished: int = columns[FINISHED_COLUMN][row].value
        return finished

    def _row(self, location: int) -> tuple[list[pa.Array], int]:
        """The columns holding a location's row, and the row's position in them."""
        if not RowLocation.is_recorded(location):
            table, row = RowLocation.read_table_row(location)
            return self._tables[table], row
        with self._lock:
            return self._recorded.row(RowLocation.recorded_number(location))
