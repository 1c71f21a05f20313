"""What a ``runwf enrich`` job reads and is named by: the input table and the job id.

The job id is derived from the arguments that define the work, so rerunning the same
command finds the same journal job and resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa

from ._common import CommandError

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SEPARATORS = {".csv": ",", ".tsv": "\t"}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")


def derive_job_id(
    *,
    input_ref: str,
    service: str,
    workflow_id: str,
    base_url: str,
    columns: Mapping[str, str],
    webhook: bool,
) -> str:
    """A job id that is the same exactly when the arguments that define the job are.

    Readable (service, workflow, input file name) then a digest of everything.
    """
    spec = {
        "input": input_ref,
        "service": service,
        "workflow": workflow_id,
        "base_url": base_url,
        "columns": sorted(columns.items()),
        "webhook": webhook,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    name = PurePosixPath(input_ref.replace("\\", "/")).name
    return f"cli-{service}-{workflow_id}-{name}-{digest}"


def input_reference(location: str) -> str:
    """The input as the job id knows it: an absolute path, or the URL as given."""
    if "://" in location:
        return location
    return str(Path(location).resolve())


def read_table(location: str) -> pd.DataFrame:
    """Read a CSV/TSV (maybe compressed) or Parquet file, chosen by its extension.

    CSV cells are read as text, exactly as written (only an empty cell is missing), so a
    value such as ``007`` or ``NA`` reaches the workflow unchanged. Use Parquet for typed
    values.

    Raises:
        CommandError: the extension is unknown or the file cannot be read.
    """
    lowered = location.lower().rstrip("/")
    base = lowered
    for suffix in _COMPRESSION_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    separator = next((sep for ext, sep in _CSV_SEPARATORS.items() if base.endswith(ext)), None)
    is_parquet = base == lowered and lowered.endswith(_PARQUET_SUFFIXES)
    if separator is None and not is_parquet:
        raise CommandError(
            f"cannot tell the format of {location!r} from its name: INPUT must end in .csv, "
            ".tsv (optionally compressed, e.g. .csv.gz) or .parquet"
        )
    if "://" not in location and not os.path.exists(location):
        raise CommandError(f"cannot read {location!r}: no such file")
    kind = "Parquet" if is_parquet else "CSV"
    try:
        if is_parquet:
            return pd.read_parquet(location)
        return pd.read_csv(
            location, sep=separator, dtype=str, keep_default_na=False, na_values=[""]
        )
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"cannot read {location!r} as {kind}: {reason}") from None


def sample_positions(total: int, size: int) -> list[int]:
    """``size`` row positions spread evenly over ``total`` rows, the first and the last
    included (all rows when ``size >= total``), so a sample meets the whole table's range
    of inputs, not only its first rows."""
    if size >= total:
        return list(range(total))
    if size == 1:
        return [0]
    step = (total - 1) / (size - 1)
    return [round(i * step) for i in range(size)]


def sample_output(output: str) -> str:
    """Where ``--sample`` writes its rows: OUTPUT with ``.sample`` before its extension
    (``profiles.parquet`` -> ``profiles.sample.parquet``), so OUTPUT only ever holds the
    whole table."""
    for suffix in _PARQUET_SUFFIXES:
        if output.lower().endswith(suffix):
            return output[: -len(suffix)] + ".sample" + output[-len(suffix) :]
    return output + ".sample.parquet"
