"""``runwf enrich``: a CSV or Parquet file through a hosted workflow, row by row, into Parquet.

The same engine, journal and results table as the Dagster assets, driven from the shell.
The job is resumable by construction: its journal lives beside the output and its job id is
derived from the arguments that define the work (input file, service, workflow, base URL,
mapping), so rerunning the same command after a crash, a kill or Ctrl-C reuses every
journaled row and pays only for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa

from ..engine.budget import Budget
from ..engine.enrich import Enrichment, enrich_async
from ..engine.journal import RowJournal
from ..engine.options import EngineOptions
from ..engine.service_calls import fetch_schema
from ..engine.stats import Progress, RunStats
from ..errors import ConfigError
from ..services.aitutor import AITutorWorkflow
from ..services.base import Workflow
from ..services.rate import Rate
from ..services.runchat import Parameter, RunchatSchema, RunchatWorkflow
from ._common import (
    ENV_HELP,
    EXIT_OK,
    EXIT_ROW_ERRORS,
    EXIT_TERMINATED,
    SERVICE_NAMES,
    CommandError,
    Interrupted,
    Parser,
    Service,
    add_base_url,
    api_key,
    base_url,
    make_parser,
    run_command,
)
from .progress import ProgressDisplay

JOURNAL_SUFFIX = ".journal"
"""The default journal location is the output path plus this suffix."""

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SEPARATORS = {".csv": ",", ".tsv": "\t"}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")

_EPILOG = f"""mapping:
  Each --map VARIABLE=COLUMN sends the value of COLUMN as the workflow's VARIABLE.
  AI Tutor: map every {{{{variable}}}} of the workflow's template; only mapped variables
  are sent (the service would silently put 'undefined' in for a missing one).
  Runchat: the flow's inputs are read from its schema ('runwf schema --workflow ID');
  map an input by id (paramId_nodeId) or by its label; an input whose id is also a
  column name is sent from that column without a --map.

output:
  OUTPUT gets the input columns (or those named by --keep), then wf_status, wf_result,
  wf_citations (a list of URLs), wf_outputs, wf_error, ... one row per input row, in
  input order. It is written atomically: it appears whole when the run is complete.

resume:
  Finished rows are journaled in OUTPUT{JOURNAL_SUFFIX}/ (or --journal DIR) under a job id
  derived from INPUT's path, the service, the workflow, the base URL and the mapping.
  If a run stops (Ctrl-C, kill -9, a crash, a fatal error), run the same command again:
  journaled rows are reused, only the rest is sent. With --incremental, successful
  answers of earlier jobs at the same journal (e.g. last night's file) are reused too.

exit status:
  0    done (rows that failed are counted in the summary and the wf_error column)
  1    stopped by the service (bad key, no credits, unknown workflow), the budget,
       too many failures in a row, or the journal
  2    configuration error: arguments, missing key or column, unreadable input
  3    done, but rows failed and --fail-on-row-errors was given
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM): rerun to resume

examples:
  export AITUTOR_API_KEY=sk_...
  runwf enrich companies.csv profiles.parquet --service aitutor \\
      --workflow wf_company_profile --map company=name --map country=country

  export RUNCHAT_API_KEY=...
  runwf schema --workflow abc123          # what the flow takes and gives
  runwf enrich questions.parquet answers.parquet --service runchat \\
      --workflow abc123 --map Query=question --result-output Answer \\
      --citations-output Sources --output-column answer_sources=Sources

{ENV_HELP}
"""


def build_parser() -> Parser:
    """The ``runwf enrich`` argument parser."""
    parser = make_parser(
        "runwf enrich",
        "Run every row of a CSV or Parquet file through a hosted workflow (AI Tutor or "
        "Runchat) and write the rows with their answers and citations as Parquet.",
        _EPILOG,
    )
    parser.add_argument("input", metavar="INPUT", help="a .csv, .tsv or .parquet file")
    parser.add_argument("output", metavar="OUTPUT", help="the Parquet file to write")
    parser.add_argument("--service", required=True, choices=["aitutor", "runchat"])
    parser.add_argument(
        "--workflow", required=True, metavar="ID", help="the workflow (AI Tutor) or flow id"
    )
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
        help="Runchat: lift the output LABEL (or id) into its own column NAME (repeat)",
    )
    parser.add_argument(
        "--prefix",
        default="wf_",
        help="prefix of the result columns (default wf_: wf_status, wf_result, ...)",
    )
    parser.add_argument(
        "--result-output",
        metavar="LABEL",
        help="Runchat: the output whose value is wf_result (default: the first text output)",
    )
    parser.add_argument(
        "--citations-output",
        metavar="LABEL",
        help="Runchat: the output listing the run's source URLs, for wf_citations",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="Runchat: send each row as a raw JSON body (a flow starting at a Webhook node)",
    )
    parser.add_argument(
        "--on-missing",
        choices=["fail", "null", "skip"],
        default="fail",
        help="a missing (empty) cell fails its row without a run (default), is sent as null, "
        "or skips its row (recorded as skipped, not sent)",
    )
    parser.add_argument(
        "--rate",
        metavar="RATE",
        help="the key's rate, e.g. 10/s, 10/min or 'unlimited' (default: the service's "
        "documented limit, 10/s AI Tutor, 10/min Runchat)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="rows in flight at once (default 32 AI Tutor, 8 Runchat)",
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
        "--max-runs",
        type=int,
        metavar="N",
        help="pay for at most N runs in this job, earlier attempts included",
    )
    parser.add_argument(
        "--fail-on-row-errors",
        action="store_true",
        help="exit with status 3 when any row failed",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress display (the summary stays)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``runwf enrich INPUT OUTPUT ...``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _EnrichCommand(args).run())


# -- arguments ----------------------------------------------------------------------------------


def parse_pairs(values: Sequence[str], option: str, shape: str) -> dict[str, str]:
    """``["a=x", "b=y"]`` as ``{"a": "x", "b": "y"}``.

    Raises:
        ConfigError: a value is not ``NAME=VALUE`` with both sides non-empty, or a name
            repeats.
    """
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise ConfigError(f"{option} {value!r} is not {shape}")
        if name in pairs:
            raise ConfigError(
                f"{option} names {name!r} twice ({name}={pairs[name]} and {name}={target})"
            )
        pairs[name] = target
    return pairs


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


def _describe(params: Sequence[Parameter]) -> str:
    return ", ".join(f"{p.id} ({p.label})" if p.label else p.id for p in params) or "none"


def _find_param(name: str, params: Sequence[Parameter]) -> list[Parameter]:
    """Parameters whose id is ``name``, else whose label is (ignoring case)."""
    exact = [p for p in params if p.id == name]
    if exact:
        return exact
    return [p for p in params if p.label.casefold() == name.casefold()]


def runchat_columns(
    runchat_id: str,
    schema: RunchatSchema,
    mapping: Mapping[str, str],
    table_columns: Sequence[str],
) -> dict[str, str]:
    """The flow's input ids to send, each with its column.

    ``--map`` keys may be ids or unique labels; inputs whose id is a column name are sent
    from that column without a mapping.

    Raises:
        ConfigError: a key is neither an input id nor a unique label, two keys name one
            input, or nothing at all would be sent.
    """
    flow = f"Runchat flow {runchat_id!r} ({schema.name})"
    resolved: dict[str, str] = {}
    for name, column in mapping.items():
        found = _find_param(name, schema.inputs)
        if not found:
            raise ConfigError(
                f"--map {name}={column}: {flow} has no input {name!r}; its inputs are "
                f"{_describe(schema.inputs)} (see 'runwf schema --workflow {runchat_id}')"
            )
        if len(found) > 1:
            raise ConfigError(
                f"--map {name}={column}: several inputs of {flow} are labelled {name!r} "
                f"({', '.join(p.id for p in found)}); map one by its id"
            )
        input_id = found[0].id
        if input_id in resolved:
            raise ConfigError(f"--map maps the input {input_id!r} of {flow} twice")
        resolved[input_id] = column
    for param in schema.inputs:
        if param.id not in resolved and param.id in table_columns:
            resolved[param.id] = param.id
    if not resolved:
        raise ConfigError(
            f"nothing to send to {flow}: map at least one of its inputs to a column with "
            f"--map INPUT=COLUMN; its inputs are {_describe(schema.inputs)}"
        )
    return resolved


def _check_output_name(option: str, name: str, runchat_id: str, schema: RunchatSchema) -> None:
    """A clear error for an output the flow does not have (it would silently stay empty)."""
    if schema.outputs and not any(name in (p.id, p.label) for p in schema.outputs):
        raise ConfigError(
            f"{option} {name!r}: Runchat flow {runchat_id!r} ({schema.name}) has no such "
            f"output; its outputs are {_describe(schema.outputs)}"
        )


# -- the command --------------------------------------------------------------------------------


class _EnrichCommand:
    """One ``runwf enrich`` invocation: checks, then the run, then the summary."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.service: Service = args.service
        self.last_progress: Progress | None = None
        self.terminated = False

    def run(self) -> int:
        args = self.args
        key = api_key(self.service)
        url = base_url(self.service, args.base_url)
        mapping = parse_pairs(args.map, "--map", "VARIABLE=COLUMN")
        output_columns = parse_pairs(args.output_column, "--output-column", "NAME=LABEL")
        self._check_options(mapping, output_columns)
        budget = None if args.max_runs is None else Budget(max_runs=args.max_runs)
        if input_reference(args.input) == input_reference(args.output):
            raise ConfigError("OUTPUT is the INPUT file; write the results to another file")
        frame = read_table(args.input)
        self._check_columns(frame, mapping)
        workflow, columns = self._workflow(key, url, mapping, output_columns, list(frame.columns))
        job_id = args.job_id or derive_job_id(
            input_ref=input_reference(args.input),
            service=self.service,
            workflow_id=args.workflow,
            base_url=url or workflow.default_base_url,
            columns=columns,
            webhook=bool(args.webhook),
        )
        location = args.journal or args.output + JOURNAL_SUFFIX
        try:
            journal = RowJournal(
                location, job_id=job_id, incremental=args.incremental, version=self._version()
            )
        except OSError as exc:
            raise CommandError(f"cannot open the journal at {location!r}: {exc}") from None
        what = f"{SERVICE_NAMES[self.service]} workflow {args.workflow}"
        with journal:
            resumed = journal.finished_rows
            print(
                f"runwf enrich: {len(frame)} rows of {args.input} through {what}"
                + (f"; resuming job, {resumed} rows journaled earlier" if resumed else ""),
                flush=True,
            )
            display = ProgressDisplay("enrich", len(frame))
            options = EngineOptions(
                api_key=key,
                base_url=url,
                rate=args.rate,
                concurrency=args.concurrency,
                progress_interval_s=display.interval_s,
            )

            def run_engine() -> Coroutine[Any, Any, Enrichment]:
                return enrich_async(
                    frame,
                    workflow,
                    options,
                    columns=columns,
                    keep_columns=args.keep,
                    output_columns=output_columns or None,
                    prefix=args.prefix,
                    destination=args.output,
                    journal=journal,
                    budget=budget,
                    on_progress=self._on_progress(display),
                )

            enrichment = self._run_engine(run_engine, display, len(frame), location)
        print(summary(enrichment.stats, what, enrichment.path, location, job_id))
        if args.fail_on_row_errors and enrichment.stats.failed:
            raise CommandError(
                f"{enrichment.stats.failed} of {enrichment.stats.rows} rows failed "
                "(--fail-on-row-errors); see the wf_error column of the output",
                EXIT_ROW_ERRORS,
            )
        return EXIT_OK

    def _check_options(self, mapping: Mapping[str, str], output_columns: Mapping[str, str]) -> None:
        args = self.args
        if self.service == "aitutor":
            runchat_only = [
                option
                for option, given in (
                    ("--output-column", bool(output_columns)),
                    ("--result-output", args.result_output is not None),
                    ("--citations-output", args.citations_output is not None),
                    ("--webhook", args.webhook),
                )
                if given
            ]
            if runchat_only:
                raise ConfigError(
                    f"{', '.join(runchat_only)}: only for Runchat flows (an AI Tutor run "
                    "answers one text result and its citations)"
                )
            if not mapping:
                raise ConfigError(
                    "AI Tutor workflows need --map VARIABLE=COLUMN for each {{variable}} of "
                    "the workflow's template"
                )
        if args.webhook and not mapping:
            raise ConfigError("--webhook needs --map FIELD=COLUMN for each field of the body")
        if args.rate is not None and args.rate.strip().lower() != "unlimited":
            Rate.parse(args.rate)
        if args.concurrency is not None and args.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")

    def _check_columns(self, frame: pd.DataFrame, mapping: Mapping[str, str]) -> None:
        """Name a missing column in the command's own words, before any request."""
        where = f"{self.args.input} has no column"
        present = list(frame.columns)
        for name, column in mapping.items():
            if column not in present:
                raise ConfigError(
                    f"--map {name}={column}: {where} {column!r}; its columns are {present}"
                )
        for column in self.args.keep or ():
            if column not in present:
                raise ConfigError(f"--keep {column}: {where} {column!r}; its columns are {present}")

    def _workflow(
        self,
        key: str,
        url: str | None,
        mapping: dict[str, str],
        output_columns: Mapping[str, str],
        table_columns: list[str],
    ) -> tuple[Workflow, dict[str, str]]:
        args = self.args
        if self.service == "aitutor":
            variables = list(mapping)
            return AITutorWorkflow(args.workflow, variables, on_missing=args.on_missing), mapping
        # The schema call is free: it checks the key and the flow before any paid run.
        schema = asyncio.run(fetch_schema(args.workflow, key, url))
        for option, name in (
            ("--result-output", args.result_output),
            ("--citations-output", args.citations_output),
            *(("--output-column", label) for label in output_columns.values()),
        ):
            if name is not None:
                _check_output_name(option, name, args.workflow, schema)
        columns = (
            mapping
            if args.webhook
            else runchat_columns(args.workflow, schema, mapping, table_columns)
        )
        workflow = RunchatWorkflow(
            args.workflow,
            list(columns),
            webhook=args.webhook,
            result_output=args.result_output,
            citations_output=args.citations_output,
            on_missing=args.on_missing,
        )
        return workflow, columns

    def _version(self) -> str:
        """The journal version: what changes a recorded answer beyond the request body.

        Runchat's result text and citations are picked from the outputs when the answer
        arrives, so rows recorded with other picks must not be reused.
        """
        args = self.args
        if args.result_output is None and args.citations_output is None:
            return ""
        return json.dumps(
            {"result_output": args.result_output, "citations_output": args.citations_output},
            sort_keys=True,
        )

    def _on_progress(self, display: ProgressDisplay) -> Callable[[Progress], None]:
        def on_progress(progress: Progress) -> None:
            self.last_progress = progress
            if not self.args.quiet:
                display(progress)

        return on_progress

    def _run_engine(
        self,
        run_engine: Callable[[], Coroutine[Any, Any, Enrichment]],
        display: ProgressDisplay,
        total: int,
        location: str,
    ) -> Enrichment:
        try:
            with contextlib.nullcontext() if self.args.quiet else display:
                return asyncio.run(self._enrich(run_engine))
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted("interrupted", location, total)) from None
        except asyncio.CancelledError:
            if not self.terminated:
                raise
            raise Interrupted(
                self._interrupted("terminated", location, total), EXIT_TERMINATED
            ) from None

    async def _enrich(
        self, run_engine: Callable[[], Coroutine[Any, Any, Enrichment]]
    ) -> Enrichment:
        # SIGTERM (a scheduler, `kill`) cancels the run like Ctrl-C does, so the engine
        # records every paid row before the process ends.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        handled = False
        if task is not None:
            try:
                loop.add_signal_handler(signal.SIGTERM, self._terminate, task)
                handled = True
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, not main thread
                pass
        try:
            return await run_engine()
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGTERM)

    def _terminate(self, task: asyncio.Task[Any]) -> None:
        self.terminated = True
        task.cancel()

    def _interrupted(self, how: str, location: str, total: int) -> str:
        done = self.last_progress.done if self.last_progress is not None else None
        counted = f" after {done} of {total} rows" if done is not None else ""
        return (
            f"{how}{counted}; finished rows are kept in the journal {location}: run the same "
            "command again to resume"
        )


def summary(stats: RunStats, what: str, path: str | None, journal: str, job_id: str) -> str:
    """The closing report of a run, a few aligned lines."""
    p50 = stats.latency.percentile(50)
    p95 = stats.latency.percentile(95)
    lines = [f"runwf enrich: {stats.rows} rows through {what} in {stats.elapsed_s:.1f} s"]
    rows = [
        ("succeeded", f"{stats.succeeded}"),
        (
            "failed",
            f"{stats.failed}"
            + (" (see the wf_status and wf_error columns)" if stats.failed else ""),
        ),
        (
            "reused",
            f"{stats.reused} from the journal, {stats.deduplicated} identical rows sent once",
        ),
        (
            "requests",
            f"{stats.requests} ({stats.sent} rows paid now, {stats.rate_limited} answered 429, "
            f"{stats.retried} rows retried)",
        ),
        (
            "credits",
            "not reported by the service" if stats.credits is None else f"{stats.credits:g}",
        ),
    ]
    if p50 is not None and p95 is not None:
        rows.append(("latency", f"p50 {_seconds(p50)}, p95 {_seconds(p95)}"))
    rows += [("output", _location(path)), ("journal", f"{_location(journal)} (job {job_id})")]
    lines += [f"  {name:<10}{value}" for name, value in rows]
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _location(path: str | None) -> str:
    """A local path made absolute (so the user can find the file from anywhere)."""
    if path is None:
        return "-"
    return path if "://" in path else os.path.abspath(path)


if __name__ == "__main__":
    sys.exit(main())
