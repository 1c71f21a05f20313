"""``runwf export JOURNAL OUTPUT``: a job's rows, as journaled, written as a results table.

The journal is durable from the first row, so this works at any time: while a run is going,
after a run stopped (a fatal error, the budget) or was killed. It pays nothing and changes
nothing in the journal (a file found damaged is set aside, as every reader of it does).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..engine.journal.export import export_job, journal_jobs
from ..engine.table import DEFAULT_PREFIX
from ._common import EXIT_OK, CommandError, make_parser, parse_pairs, run_command

_EPILOG = """what is written:
  The result columns of a results table (wf_status, wf_result, wf_citations, wf_outputs,
  wf_error, ..., wf_input_hash) with the same types as 'runwf enrich' writes, one row per
  input the job journaled (the last answer, when a failed row was sent again), in the
  order they finished. The journal holds no input columns: join on wf_input_hash, or
  rerun 'runwf enrich' to get them. Rows not journaled (not sent yet, in flight when the
  run was killed, or whose transient errors ran out of retries) are not in it.

which job:
  A journal holds one job per input file, workflow and mapping ('runwf enrich'), or per
  asset, partition and generation (Dagster). By default the job written to last is
  exported; --list shows them, --job ID picks one.

exit status: 0 written (or listed); 1 the journal or OUTPUT could not be read or
written; 2 no such job, or bad arguments.

examples:
  runwf export profiles.parquet.journal partial.parquet
  runwf export journals/profiles --list
  runwf export journals/profiles/2026_11_20 day.parquet --job 'profiles/2026-11-20/3f1c...#1'
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``runwf export JOURNAL OUTPUT``; returns the exit status."""
    parser = make_parser(
        "runwf export",
        "Write the rows a journal holds for one job as a Parquet results table. Free, and "
        "possible at any time (also after a run stopped or was killed).",
        _EPILOG,
    )
    parser.add_argument("journal", metavar="JOURNAL", help="the journal's folder (or URL)")
    parser.add_argument("output", metavar="OUTPUT", nargs="?", help="the Parquet file to write")
    parser.add_argument("--job", metavar="ID", help="the job to export (default: the last)")
    parser.add_argument(
        "--list", action="store_true", help="list the journal's jobs, the last written last"
    )
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"the result columns' prefix ({DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--output-column",
        action="append",
        default=[],
        metavar="NAME=LABEL",
        help="lift a Runchat output (by label or id) into a column of its own (repeatable)",
    )
    args = parser.parse_args(argv)
    return run_command(lambda: _export(args))


def _export(args: argparse.Namespace) -> int:
    if args.list:
        jobs = journal_jobs(args.journal)
        if not jobs:
            raise CommandError(f"the journal at {args.journal!r} holds no job")
        for job in jobs:
            print(f"{job.job_id}\t{job.files} files\tlast written {job.last_written[:20]}")
        return EXIT_OK
    if args.output is None:
        raise CommandError("give OUTPUT, the Parquet file to write (or --list)")
    lifted = parse_pairs(args.output_column, "--output-column", "NAME=LABEL")
    job, rows = export_job(
        args.journal,
        args.output,
        job_id=args.job,
        prefix=args.prefix,
        output_columns=lifted or None,
    )
    print(f"runwf export: {rows} rows of job {job.job_id} written to {args.output}")
    return EXIT_OK
