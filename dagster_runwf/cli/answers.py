"""What ``runwf enrich`` says of the answers once the output is written: answers holding the
word ``undefined``, which AI Tutor puts in for a variable it was not sent (a forgotten
``--map``), counted as "succeeded" all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow.parquet as pq

from ..engine.answer_quality import AnswerCount, undefined_answers, undefined_hint, unsent_columns
from ..engine.storage import Storage


def undefined_in_output(
    path: str, prefix: str, storage_options: Mapping[str, Any] | None = None
) -> AnswerCount:
    """The succeeded rows of the written output whose answer holds ``undefined`` (only the
    status and answer columns are read)."""
    storage = Storage(path, storage_options)
    with storage.fs.open(storage.root, "rb") as handle:
        table = pq.ParquetFile(handle).read(
            columns=[f"{prefix}status", f"{prefix}result"], use_threads=False
        )
    return undefined_answers(table, prefix)


def undefined_warning(
    found: AnswerCount,
    table_columns: Sequence[str],
    mapping: Mapping[str, str],
    prefix: str,
    unmapped_inputs: Sequence[str] = (),
) -> str:
    """The warning for answers holding ``undefined``, naming the likely unsent input and how
    to send it."""
    unsent = unsent_columns(table_columns, mapping, prefix)
    rows = ", ".join(str(example["row"]) for example in found.examples)
    more = ", ..." if found.matching > len(found.examples) else ""
    hint = undefined_hint(unsent, unmapped_inputs)
    if unmapped_inputs:
        how = f"e.g. --map {unmapped_inputs[0]}=COLUMN"
    elif len(unsent) == 1:
        how = f"e.g. --map {unsent[0]}={unsent[0]} if the variable is named like its column"
    else:
        how = "--map VARIABLE=COLUMN"
    return (
        f"{found.matching} of {found.rows} succeeded answers hold the word 'undefined' "
        f"(rows {rows}{more}): {hint}. Send it with {how}"
    )
