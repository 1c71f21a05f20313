"""The arguments of ``runwf enrich`` and its help, written from the services' registry (each
service's choices, defaults, environment variables and settings of its own).
"""

from __future__ import annotations

import argparse
import textwrap

from ..engine.client import DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES
from ..engine.options import DEFAULT_MAX_CONSECUTIVE_FAILURES
from ..engine.retry import RetryPolicy
from ..services.base import ON_MISSING
from ..services.registry import SERVICE_NAMES, SERVICES, offered_by
from ._common import ENV_HELP, Parser, add_base_url, make_parser

JOURNAL_SUFFIX = ".journal"
"""The default journal location is the output path plus this suffix."""


def _mapping_help() -> str:
    """How each service's inputs are mapped, for the help's ``mapping:`` section."""
    lines = []
    for info in SERVICES.values():
        text = f"{info.display_name}: {info.inputs_help}"
        if info.schema is not None:
            text += " (see 'runwf schema --workflow ID')"
        lines += textwrap.wrap(text + ".", 88, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def _per_service(fact: str) -> str:
    """A default for each service, e.g. ``10/s AI Tutor, 10/min Runchat``."""
    return ", ".join(f"{getattr(info, fact)} {info.display_name}" for info in SERVICES.values())


_EPILOG = f"""mapping:
  Each --map VARIABLE=COLUMN sends the value of COLUMN as the workflow's VARIABLE.
{_mapping_help()}

output:
  OUTPUT gets the input columns (or those named by --keep), then wf_status, wf_result,
  wf_citations (a list of URLs), wf_outputs, wf_error, ... one row per input row, in
  input order. It is written atomically: it appears whole when the run is complete
  (or, with --land-partial, when the run stops: finished rows and 'pending' ones).
  'runwf export' writes the rows a journal holds at any time.

resume:
  Finished rows are journaled in OUTPUT{JOURNAL_SUFFIX}/ (or --journal DIR) under a job id
  derived from INPUT's path, the service, the workflow, the base URL and the mapping.
  If a run stops (Ctrl-C, kill -9, a crash, a fatal error), run the same command again:
  journaled rows are reused, only the rest is sent. With --incremental, successful
  answers of earlier jobs at the same journal (e.g. last night's file) are reused too.
  Rows journaled as failed (the run failed, or its answer could not be used and was
  most likely paid) are not sent again unless you pass --retry-failed.

exit status:
  0    done (rows that failed are counted in the summary and the wf_error column)
  1    stopped by the service (bad key, no credits, unknown workflow), the budget,
       too many failures in a row, or the journal
  2    configuration error: arguments, missing key or column, unreadable input
  3    done, but rows failed and --fail-on-row-errors was given, or answers hold the
       word 'undefined' (a variable not sent) and --fail-on-undefined was given
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM): rerun to resume

examples:
  export AITUTOR_API_KEY=sk_...
  runwf enrich companies.csv profiles.parquet --service aitutor \\
      --workflow wf_company_profile --map company=name --map country=country

  # before paying: what would be sent or reused, and what it costs (free)
  runwf enrich companies.csv profiles.parquet ... --plan
  # try 5 rows spread over the table first (profiles.sample.parquet); the full
  # run then reuses them
  runwf enrich companies.csv profiles.parquet ... --sample 5

  export RUNCHAT_API_KEY=...
  runwf schema --workflow abc123          # what the flow takes and gives
  runwf enrich questions.parquet answers.parquet --service runchat \\
      --workflow abc123 --map Query=question --result-output Answer \\
      --citations-output Sources --output-column answer_sources=Sources

{ENV_HELP}
"""


def build_parser() -> Parser:
    """The ``runwf enrich`` argument parser."""
    services = " or ".join(info.display_name for info in SERVICES.values())
    parser = make_parser(
        "runwf enrich",
        f"Run every row of a CSV or Parquet file through a hosted workflow ({services}) and "
        "write the rows with their answers and citations as Parquet.",
        _EPILOG,
    )
    parser.add_argument("input", metavar="INPUT", help="a .csv, .tsv or .parquet file")
    parser.add_argument("output", metavar="OUTPUT", help="the Parquet file to write")
    parser.add_argument("--service", required=True, choices=SERVICE_NAMES)
    parser.add_argument("--workflow", required=True, metavar="ID", help="the workflow's id")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="VARIABLE=COLUMN",
        help="send COLUMN as the workflow's VARIABLE (repeat for each)",
    )
    parser.add_argument(
        "--keep",
        action="append",
        metavar="COLUMN",
        help="carry only these input columns into OUTPUT (repeat; default: all)",
    )
    parser.add_argument(
        "--output-column",
        action="append",
        default=[],
        metavar="NAME=LABEL",
        help=f"{offered_by('output_columns')}lift the output LABEL (or id) into its own "
        "column NAME (repeat)",
    )
    parser.add_argument(
        "--output-schema",
        metavar="FILE",
        help="a JSON Schema file (an object with 'properties' of type string, number, "
        "integer, boolean or array with 'items'): the JSON object in each answer becomes "
        "one typed column per property (wf_<name>) and wf_parse_error says why an answer "
        "did not fit; the raw answer stays in wf_result",
    )
    parser.add_argument(
        "--prefix",
        default="wf_",
        help="prefix of the result columns (default wf_: wf_status, wf_result, ...)",
    )
    parser.add_argument(
        "--result-output",
        metavar="LABEL",
        help=f"{offered_by('result_output')}the output whose value is wf_result (default: the "
        "first text output)",
    )
    parser.add_argument(
        "--citations-output",
        metavar="LABEL",
        help=f"{offered_by('citations_output')}the output listing the run's source URLs, for "
        "wf_citations",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help=f"{offered_by('webhook')}send each row as a raw JSON body (a flow starting at a "
        "Webhook node)",
    )
    parser.add_argument(
        "--instance-id-column",
        metavar="COLUMN",
        help=f"{offered_by('instance_id_column')}continue the instance (runchat_instance_id) "
        "named in this column, row by row; an empty cell starts a new one",
    )
    parser.add_argument(
        "--continue-by",
        metavar="COLUMN",
        help=f"{offered_by('continue_by')}a key column (e.g. customer_id): each row continues "
        "the instance of its key's latest answer recorded in the journal, so each key keeps "
        "its own conversation from run to run",
    )
    parser.add_argument(
        "--on-missing",
        choices=ON_MISSING,
        default="fail",
        help="a missing (empty) cell fails its row without a run (default), is sent as null, "
        "or skips its row: not sent, counted as skipped in the summary (its wf_status is "
        "'failed', its wf_error says 'skipped')",
    )
    parser.add_argument(
        "--rate",
        metavar="RATE",
        help="the key's rate, e.g. 10/s, 10/min or 'unlimited' (default: the service's "
        f"documented limit, {_per_service('default_rate')})",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"rows in flight at once (default {_per_service('default_concurrency')})",
    )
    parser.add_argument(
        "--rate-limit-store",
        metavar="URL",
        default="auto",
        help="where the key's rate-limit window is kept, so that every job using the key at "
        "once shares its rate: 'auto' (default: a file in the user's cache folder, shared by "
        "every process of this host), 'memory' (this process only), "
        "'sqlite:///path/limits.sqlite' or 'redis://host:6379/0' (every host reaching it)",
    )
    parser.add_argument(
        "--attempt-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="the longest one request may take, from connecting to the answer's last byte; "
        "a slower one is retried like a timeout (default "
        f"{_DEFAULT_ATTEMPT_TIMEOUT:g}: runs take up to 300 s)",
    )
    parser.add_argument(
        "--max-attempts",
        type=_at_least_one,
        metavar="N",
        default=RetryPolicy().max_attempts,
        help="requests a row may make on transient errors (5xx, timeouts, dropped "
        f"connections) before it is recorded as failed (default {RetryPolicy().max_attempts}; "
        "429s do not count)",
    )
    parser.add_argument(
        "--max-response-bytes",
        type=_at_least_one,
        metavar="N",
        default=MAX_RESPONSE_BYTES,
        help="the largest answer, in bytes, read; a larger one fails its row unread "
        f"(default {MAX_RESPONSE_BYTES}: 64 MiB)",
    )
    add_base_url(parser)
    parser.add_argument(
        "--journal",
        metavar="DIR",
        help=f"where finished rows are journaled (default: OUTPUT{JOURNAL_SUFFIX})",
    )
    parser.add_argument(
        "--job-id",
        metavar="ID",
        help="name the job yourself instead of deriving it from the arguments",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="also reuse successful answers of earlier jobs in the journal for unchanged rows",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the rows this job recorded as failed (they may be paid again); "
        "by default a rerun answers them from the journal",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        metavar="N",
        help="pay for at most N runs in this job, earlier attempts included",
    )
    parser.add_argument(
        "--max-consecutive-failures",
        type=_at_least_zero,
        metavar="N",
        default=DEFAULT_MAX_CONSECUTIVE_FAILURES,
        help="stop after N rows in a row failed at the service, so a broken workflow does "
        f"not keep paying (default {DEFAULT_MAX_CONSECUTIVE_FAILURES}; 0: never)",
    )
    parser.add_argument(
        "--claims",
        metavar="STORE",
        default="auto",
        help="where concurrent commands of one job claim rows, so none pays for a row "
        "another is paying for: 'auto' (a file in a local journal's folder; default), "
        "'redis://host:6379/0' (every host), or 'off'",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="send nothing: print how many rows would be sent, reused from the journal, "
        "deduplicated, retried (--retry-failed), skipped and rejected, and the credits the "
        "journal's history expects; then exit 0",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --plan: print the plan as one JSON object",
    )
    parser.add_argument(
        "--sample",
        type=_at_least_one,
        metavar="N",
        help="enrich only N rows spread evenly over INPUT (the first and the last among "
        "them) and write them to OUTPUT with .sample before its extension; they are "
        "journaled, so the full run reuses them",
    )
    parser.add_argument(
        "--land-partial",
        action="store_true",
        help="when the service (bad key, no credits) or the budget stops the run, write "
        "OUTPUT anyway: the finished rows, and the others with wf_status 'pending' (the "
        "exit status still says the run stopped; rerun to finish the pending rows)",
    )
    parser.add_argument(
        "--fail-on-row-errors",
        action="store_true",
        help="exit with status 3 when any row failed",
    )
    parser.add_argument(
        "--fail-on-undefined",
        action="store_true",
        help="exit with status 3 when a succeeded answer holds the word 'undefined' (what AI "
        "Tutor puts in for a variable it was not sent: a forgotten --map); without it, a "
        "warning naming the input columns not sent",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress display (the summary stays)"
    )
    return parser


_DEFAULT_ATTEMPT_TIMEOUT = (DEFAULT_TIMEOUT.connect or 0.0) + (DEFAULT_TIMEOUT.read or 0.0)
"""An attempt's deadline without --attempt-timeout: the connect plus the read timeout."""


def _seconds(text: str) -> float:
    """Seconds > 0, for argparse."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return seconds


def _at_least_one(text: str) -> int:
    """A whole number >= 1, for argparse."""
    number = _at_least_zero(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return number


def _at_least_zero(text: str) -> int:
    """A whole number >= 0, for argparse."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return number
