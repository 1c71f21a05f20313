"""Where the journal keeps a row in memory, packed into one int: the values of its index.

An int (8 bytes in the index's NumPy array) rather than an object per row keeps the index
at 16 bytes a row. Only :class:`RowLocation` packs and unpacks locations.
"""

from __future__ import annotations


class RowLocation:
    """The packing of row locations; a namespace, never instantiated.

    Two kinds of rows, told apart by the sign:

    - rows of the tables read when the journal opened, kept decoded, table by table:
      ``table << 32 | row``, zero or more;
    - rows this writer recorded, numbered in recording order: ``-1 - number``, below zero.
    """

    _ROW_BITS = 32
    _ROW_MASK = (1 << _ROW_BITS) - 1

    @classmethod
    def of_read_rows(cls, table: int, rows: int) -> range:
        """The locations of the ``rows`` rows of read table number ``table``, in order."""
        if rows > cls._ROW_MASK + 1:
            raise ValueError(f"a table of {rows} rows has rows beyond {cls._ROW_BITS} bits")
        first = table << cls._ROW_BITS
        return range(first, first + rows)

    @staticmethod
    def of_recorded_rows(first: int, rows: int) -> range:
        """The locations of recorded rows ``first`` to ``first + rows - 1``, in order."""
        return range(-1 - first, -1 - first - rows, -1)

    @staticmethod
    def is_recorded(location: int) -> bool:
        """Whether a location is of a row this writer recorded."""
        return location < 0

    @staticmethod
    def recorded_number(location: int) -> int:
        """The number of a recorded row (see :meth:`is_recorded`)."""
        return -1 - location

    @classmethod
    def read_table_row(cls, location: int) -> tuple[int, int]:
        """The table number and the row of a read row (see :meth:`is_recorded`)."""
        return location >> cls._ROW_BITS, location & cls._ROW_MASK
