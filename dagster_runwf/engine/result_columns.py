"""The result columns: how :class:`~.results.RowResult` objects become Arrow columns, and back.

Two Parquet files hold results, and both are built from the columns declared here, each
column's name, Arrow type, nullability and encoding once:

- the row journal (:mod:`.journal`) adds its bookkeeping (version, job id; the input hash
  and the finish time it requires), and keeps outputs by id beside their labels, so that
  :func:`result_from_row` gives the outcome back whole;
- the results table (:mod:`.table`) prefixes the names (``wf_``), shows outputs by label,
  may lift chosen outputs into columns of their own (:func:`lifted_output`), and with an
  output schema adds one typed column per field and the parse error (:func:`typed_columns`),
  derived from the answer each time the table is built (the journal keeps the answer only).

Each file lists its columns in its own order (the order of files already written).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..services.outcome import Outcome
from ..services.typed_answer import OutputSchema, TypedAnswer, convert
from .results import RowResult, RowSource

Encoder = Callable[[Sequence[RowResult]], list[Any]]
"""The values of one column for a batch of results, in order."""


@dataclass(frozen=True, slots=True)
class ResultColumn:
    """One column of results: its name (unprefixed), Arrow type, and how results fill it."""

    name: str
    type: pa.DataType
    nullable: bool
    values: Encoder

    def field(self, prefix: str = "") -> pa.Field:
        """The column's Arrow field, its name prefixed."""
        return pa.field(prefix + self.name, self.type, self.nullable)

    def array(self, results: Sequence[RowResult]) -> pa.Array:
        """The column's values for ``results``."""
        return pa.array(self.values(results), self.type)

    def required(self) -> ResultColumn:
        """This column, declared never null (for a file that only holds rows that have it)."""
        return dataclasses.replace(self, nullable=False)


def _json(value: Mapping[str, Any]) -> str | None:
    """A mapping as compact JSON text; ``None`` when empty."""
    if not value:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _of_outcome(value: Callable[[Outcome], Any], failed: Any = None) -> Encoder:
    """An encoder of one value of each outcome (``failed`` for rows without one)."""

    def values(results: Sequence[RowResult]) -> list[Any]:
        return [failed if r.outcome is None else value(r.outcome) for r in results]

    return values


def _labelled_outputs(outcome: Outcome) -> dict[str, Any]:
    label_of = {output_id: label for label, output_id in outcome.output_labels.items()}
    return {label_of.get(key, key): value for key, value in outcome.outputs.items()}


TEXT = pa.string()

STATUS = ResultColumn("status", TEXT, False, lambda results: [r.status for r in results])
RESULT = ResultColumn("result", TEXT, True, _of_outcome(lambda o: o.result))
CITATIONS = ResultColumn(
    "citations", pa.list_(TEXT), False, _of_outcome(lambda o: list(o.citations), [])
)
OUTPUTS_BY_LABEL = ResultColumn(
    "outputs", TEXT, True, _of_outcome(lambda o: _json(_labelled_outputs(o)))
)
"""Named outputs as a JSON object by label (what a reader of the results table wants)."""
OUTPUTS_BY_ID = ResultColumn("outputs", TEXT, True, _of_outcome(lambda o: _json(o.outputs)))
"""Named outputs as a JSON object by id; with :data:`OUTPUT_LABELS`, the outputs whole."""
OUTPUT_LABELS = ResultColumn(
    "output_labels", TEXT, True, _of_outcome(lambda o: _json(o.output_labels))
)
METADATA = ResultColumn("metadata", TEXT, True, _of_outcome(lambda o: _json(o.metadata)))
INSTANCE_ID = ResultColumn("instance_id", TEXT, True, _of_outcome(lambda o: o.instance_id))
CREDITS = ResultColumn("credits", pa.float64(), True, _of_outcome(lambda o: o.credits))
ERROR = ResultColumn("error", TEXT, True, lambda results: [r.error for r in results])
ERROR_TYPE = ResultColumn("error_type", TEXT, True, lambda results: [r.error_type for r in results])
ATTEMPTS = ResultColumn(
    "attempts", pa.int32(), False, lambda results: [r.attempts for r in results]
)
LATENCY_S = ResultColumn(
    "latency_s", pa.float64(), True, lambda results: [r.latency_s for r in results]
)
INPUT_HASH = ResultColumn("input_hash", TEXT, True, lambda results: [r.input_hash for r in results])
FINISHED_AT = ResultColumn(
    "finished_at",
    pa.timestamp("us", tz="UTC"),
    True,
    # A pending row (a stopped run's, see RowResult.pending) has not finished.
    lambda results: [None if r.status == "pending" else r.finished_at for r in results],
)
REUSED = ResultColumn("reused", pa.bool_(), False, lambda results: [r.reused for r in results])


def lifted_output(column: str, wanted: str, arrow: pa.DataType = TEXT) -> ResultColumn:
    """A column named ``column`` holding one output, chosen by label or id; null when the
    row has no such output.

    As text (the default; JSON for anything but a string), or as ``arrow`` when the output's
    type is known (a Runchat flow's schema: :func:`~..services.runchat_schema.arrow_type_of`);
    a value that does not fit that type is null.
    """

    def value(outcome: Outcome) -> Any:
        output_id = outcome.output_labels.get(wanted, wanted)
        if output_id not in outcome.outputs:
            return None
        found = outcome.outputs[output_id]
        if arrow != TEXT:
            return _typed(found, arrow)
        if found is None or isinstance(found, str):
            return found
        # Not compact like _json: lifted columns have always been written this way.
        return json.dumps(found, ensure_ascii=False, default=str)

    return ResultColumn(column, arrow, True, _of_outcome(value))


def _typed(found: Any, arrow: pa.DataType) -> Any:
    """An output's value as ``arrow`` (a list's items that are not text as JSON text, in a
    ``list<string>``), or null when it does not fit."""
    if found is None:
        return None
    if pa.types.is_list(arrow):
        items = found if isinstance(found, list) else [found]
        if pa.types.is_string(arrow.value_type):
            return [
                i if i is None or isinstance(i, str) else json.dumps(i, ensure_ascii=False)
                for i in items
            ]
        found = items
    try:
        return convert(found, arrow)
    except ValueError:
        return None


PARSE_ERROR = "parse_error"
"""The (unprefixed) name of the column saying why an answer did not fit the output schema."""


class _ParsedBatch:
    """Each answer of a batch read against an output schema once, whichever typed column
    asks first (every column of a batch is encoded from the same sequence of results)."""

    def __init__(self, schema: OutputSchema) -> None:
        self._schema = schema
        self._results: Sequence[RowResult] | None = None
        self._parsed: list[TypedAnswer] = []

    def __call__(self, results: Sequence[RowResult]) -> list[TypedAnswer]:
        if results is not self._results:
            self._parsed = [
                self._schema.parse(None if r.outcome is None else r.outcome.result) for r in results
            ]
            self._results = results
        return self._parsed


def typed_columns(schema: OutputSchema) -> list[ResultColumn]:
    """One column per field of ``schema`` (named by the field, of its Arrow type; null when
    the answer does not fit or the row failed), then :data:`PARSE_ERROR` (null when the
    answer fit, and for rows without an answer)."""
    parsed = _ParsedBatch(schema)

    def field_values(name: str) -> Encoder:
        return lambda results: [typed.values[name] for typed in parsed(results)]

    columns = [ResultColumn(f.name, f.type, True, field_values(f.name)) for f in schema.fields]
    errors = ResultColumn(
        PARSE_ERROR, TEXT, True, lambda results: [typed.error for typed in parsed(results)]
    )
    return [*columns, errors]


def result_from_row(
    row: Mapping[str, Any], *, index: int = -1, source: RowSource = "journal"
) -> RowResult:
    """The result a row of these columns holds (outputs by id, with their labels).

    Args:
        row: column name (unprefixed) -> value, as Arrow gives it (``as_py()``).
        index: the input row the result is for (``-1``: not known yet).
        source: where the result comes from.
    """
    outcome = None
    if row["status"] == "succeeded":
        outcome = Outcome(
            result=row["result"],
            citations=tuple(row["citations"] or ()),
            outputs=json.loads(row["outputs"] or "{}"),
            output_labels=json.loads(row["output_labels"] or "{}"),
            metadata=json.loads(row["metadata"] or "{}"),
            instance_id=row["instance_id"],
            credits=row["credits"],
        )
    return RowResult(
        index=index,
        input_hash=row["input_hash"],
        status=row["status"],
        outcome=outcome,
        error=row["error"],
        error_type=row["error_type"],
        attempts=row["attempts"],
        latency_s=row["latency_s"],
        finished_at=row["finished_at"],
        source=source,
    )
