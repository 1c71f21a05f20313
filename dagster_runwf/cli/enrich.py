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
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from ..engine.budget import Budget
from ..engine.claims import check_claim_store
from ..engine.client import DEFAULT_TIMEOUT
from ..engine.enrich import Enrichment, enrich_async
from ..engine.enrichment_plan import plan_enrichment
from ..engine.flow_records import check_schema, read_instances, record_table_instances
from ..engine.journal import RowJournal
from ..engine.options import EngineOptions
from ..engine.ratelimit.store_url import check_store_url
from ..engine.retry import RetryPolicy
from ..engine.service_calls import call_free
from ..engine.stats import Progress, about
from ..engine.storage import Storage
from ..errors import ConfigError, FanOutStopped, ServiceUnreachableError
from ..services.base import Workflow
from ..services.rate import Rate
from ..services.registry import check_settings, service_info
from ..services.runchat import RunchatWorkflow
from ..services.runchat_schema import RunchatSchema, check_output, output_types, resolve_inputs
from ..services.typed_answer import OutputSchema
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_ROW_ERRORS,
    EXIT_TERMINATED,
    CommandError,
    Interrupted,
    api_key,
    base_url,
    parse_pairs,
    run_command,
    show_engine_messages,
)
from .answers import undefined_in_output, undefined_warning
from .enrich_parser import JOURNAL_SUFFIX, build_parser
from .inputs import derive_job_id, input_reference, read_table, sample_output, sample_positions
from .progress import ProgressDisplay, summary


def main(argv: Sequence[str] | None = None) -> int:
    """``runwf enrich INPUT OUTPUT ...``; returns the exit status."""
    args = build_parser().parse_args(argv)
    show_engine_messages()
    return run_command(lambda: _EnrichCommand(args).run())


class _EnrichCommand:
    """One ``runwf enrich`` invocation: checks, then the run, then the summary."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.service = service_info(args.service)
        self.last_progress: Progress | None = None
        self.terminated = False
        self.output_columns: dict[str, str] = {}
        self.output_types: dict[str, pa.DataType] = {}
        self.unmapped_inputs: list[str] = []
        """The flow's inputs the mapping does not send, when the service said (Runchat)."""

    def run(self) -> int:
        args = self.args
        key = api_key(self.service)
        url = base_url(self.service, args.base_url)
        mapping = parse_pairs(args.map, "--map", "VARIABLE=COLUMN")
        output_columns = parse_pairs(args.output_column, "--output-column", "NAME=LABEL")
        self.output_columns = output_columns
        self._check_options(mapping, output_columns)
        output_schema = read_output_schema(args.output_schema)
        budget = None if args.max_runs is None else Budget(max_runs=args.max_runs)
        if input_reference(args.input) == input_reference(args.output):
            raise ConfigError("OUTPUT is the INPUT file; write the results to another file")
        frame = read_table(args.input)
        self._check_columns(frame, mapping)
        workflow, columns, schema = self._workflow(
            key, url, mapping, output_columns, list(frame.columns), output_schema
        )
        job_id = args.job_id or derive_job_id(
            input_ref=input_reference(args.input),
            service=self.service.name,
            workflow_id=args.workflow,
            base_url=url or workflow.default_base_url,
            columns=columns,
            webhook=bool(args.webhook),
        )
        location = args.journal or args.output + JOURNAL_SUFFIX
        journal = _open_journal(location, job_id, args)
        what = f"{self.service.display_name} workflow {args.workflow}"
        records = Storage(location)
        # A plan records nothing: the next run still warns of a flow that changed.
        workflow = self._tied_to_records(workflow, schema, records, record=not args.plan)
        rows = _Rows(frame, args.sample)
        if args.plan:
            # Free: no request is sent, and the journal is read, not written (nor closed,
            # which would merge and compact its files).
            self._print_plan(rows, workflow, columns, journal, what, job_id)
            return EXIT_OK
        with journal:
            print(
                f"runwf enrich: {rows.describe(args.input)} through {what}"
                + (
                    f"; resuming job, {journal.finished_rows} rows journaled earlier"
                    if journal.finished_rows
                    else ""
                ),
                flush=True,
            )
            enrichment = self._enrich_frame(
                rows.frame, workflow, columns, journal, key, url, budget
            )
        if args.continue_by is not None:
            # The two columns the records need, read back from the output just written.
            wanted = [f"{args.prefix}status", f"{args.prefix}instance_id"]
            record_table_instances(
                records,
                args.workflow,
                args.continue_by,
                rows.frame[args.continue_by],
                enrichment.to_arrow(columns=wanted),
                args.prefix,
            )
        print(summary(enrichment.stats, what, enrichment.path, location, job_id))
        if rows.positions is not None:
            print(
                f"  sample    {len(rows.positions)} of {rows.total} rows, journaled: run the "
                "command without --sample\n            for the whole table (they are reused, "
                "not paid again)"
            )
        self._check_undefined(enrichment, list(frame.columns), columns)
        if args.fail_on_row_errors and enrichment.stats.failed:
            raise CommandError(
                f"{enrichment.stats.failed} of {enrichment.stats.rows} rows failed "
                "(--fail-on-row-errors); see the wf_error column of the output",
                EXIT_ROW_ERRORS,
            )
        return EXIT_OK

    def _enrich_frame(
        self,
        frame: pd.DataFrame,
        workflow: Workflow,
        columns: dict[str, str],
        journal: RowJournal,
        key: str,
        url: str | None,
        budget: Budget | None,
    ) -> Enrichment:
        """Run the engine over ``frame`` with the journal, writing the output."""
        args = self.args
        display = ProgressDisplay("enrich", len(frame))
        options = EngineOptions(
            api_key=key,
            base_url=url,
            rate=args.rate,
            concurrency=args.concurrency,
            rate_limit_store=args.rate_limit_store,
            claim_store=args.claims,
            max_consecutive_failures=args.max_consecutive_failures or None,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            timeout=_timeout(args.attempt_timeout),
            attempt_timeout_s=args.attempt_timeout,
            max_response_bytes=args.max_response_bytes,
            progress_interval_s=display.interval_s,
        )

        def run_engine() -> Coroutine[Any, Any, Enrichment]:
            return enrich_async(
                frame,
                workflow,
                options,
                columns=columns,
                keep_columns=args.keep,
                output_columns=self.output_columns or None,
                output_types=self.output_types,
                prefix=args.prefix,
                destination=sample_output(args.output) if args.sample else args.output,
                journal=journal,
                budget=budget,
                on_progress=self._on_progress(display),
                land_partial=args.land_partial,
            )

        try:
            return self._run_engine(run_engine, display, len(frame), journal.location_url)
        except FanOutStopped as exc:
            if isinstance(exc.cause, ServiceUnreachableError):
                raise self._unreachable(exc.cause) from None
            if exc.partial is not None:
                print(
                    f"runwf enrich: stopped; wrote {len(frame) - exc.pending} finished "
                    f"rows and {exc.pending} pending rows to {exc.partial.path} "
                    "(--land-partial); run the same command again to finish them",
                    flush=True,
                )
            raise

    def _print_plan(
        self,
        rows: _Rows,
        workflow: Workflow,
        columns: dict[str, str],
        journal: RowJournal,
        what: str,
        job_id: str,
    ) -> None:
        """Print what the run would do (``--plan``), having sent nothing."""
        args = self.args
        same_workflow = f"cli-{self.service.name}-{args.workflow}-"
        plan = plan_enrichment(
            rows.frame,
            workflow,
            columns=columns,
            journal=journal,
            history_jobs=lambda job: job == job_id or job.startswith(same_workflow),
        )
        if args.json:
            where = {
                "journal": _local(journal.location_url),
                "job_id": job_id,
                "sample": rows.positions,
            }
            print(json.dumps({**plan.as_dict(), **where}))
            return
        print(f"runwf enrich --plan: {rows.describe(args.input)} through {what}; nothing sent")
        lines = [
            *plan.lines(),
            f"time          {self._paced(plan.rows.send)}",
            f"journal       {_local(journal.location_url)} (job {job_id})",
        ]
        print("\n".join(f"  {line}" for line in lines))

    def _paced(self, to_send: int) -> str:
        """How long the key's rate makes sending ``to_send`` rows, as the run's first
        line would say it."""
        given: str | None = self.args.rate
        if given is not None and given.strip().lower() == "unlimited":
            return "no rate limit (--rate unlimited)"
        rate = self.service.default_rate if given is None else Rate.parse(given)
        if to_send <= rate.requests:
            return f"not paced: the key allows {rate}"
        return f"about {about(to_send / rate.per_second)} at {rate} (the key's rate)"

    def _check_undefined(
        self, enrichment: Enrichment, table_columns: list[str], columns: Mapping[str, str]
    ) -> None:
        """Warn when succeeded answers hold the word ``undefined`` (a variable not sent);
        with ``--fail-on-undefined``, exit with status 3.

        Raises:
            CommandError: such answers, and ``--fail-on-undefined``.
        """
        if not enrichment.stats.succeeded or enrichment.path is None:
            return
        found = undefined_in_output(enrichment.path, self.args.prefix)
        if not found.matching:
            return
        warning = undefined_warning(
            found, table_columns, columns, self.args.prefix, self.unmapped_inputs
        )
        if self.args.fail_on_undefined:
            raise CommandError(f"{warning} (--fail-on-undefined)", EXIT_ROW_ERRORS)
        print(
            f"runwf: warning: {warning}; --fail-on-undefined makes this exit with status 3",
            file=sys.stderr,
            flush=True,
        )

    def _unreachable(self, cause: ServiceUnreachableError) -> CommandError:
        """The service could not be reached: say which host, and which setting chose it."""
        variable = self.service.base_url_variable
        if self.args.base_url:
            chosen = "set by --base-url"
        elif os.environ.get(variable, "").strip():
            chosen = f"set by ${variable}"
        else:
            chosen = (
                f"{self.service.display_name}'s public URL, as neither --base-url nor "
                f"${variable} is set"
            )
        return CommandError(
            f"could not reach {cause.host} ({cause.base_url}, {chosen}): {cause.reason}. "
            "No request got an answer, so nothing was paid; check that URL and the network",
            EXIT_FAILED,
        )

    def _check_options(self, mapping: Mapping[str, str], output_columns: Mapping[str, str]) -> None:
        args = self.args
        info = self.service
        given = {
            "output_columns": ("--output-column", bool(output_columns)),
            "result_output": ("--result-output", args.result_output is not None),
            "citations_output": ("--citations-output", args.citations_output is not None),
            "webhook": ("--webhook", args.webhook),
            "instance_id_column": ("--instance-id-column", args.instance_id_column is not None),
            "continue_by": ("--continue-by", args.continue_by is not None),
        }
        check_settings(info, {setting: flag for setting, (flag, set_) in given.items() if set_})
        if info.schema is None and not mapping:
            # Without a schema call nothing says what the workflow's inputs are.
            raise ConfigError(
                f"{info.display_name} {info.workflow_term}s need --map NAME=COLUMN for each of "
                f"their {info.workflow.inputs_setting}"
            )
        if args.json and not args.plan:
            raise ConfigError("--json goes with --plan (the plan as JSON); add --plan")
        if args.webhook and not mapping:
            raise ConfigError("--webhook needs --map FIELD=COLUMN for each field of the body")
        if args.rate is not None and args.rate.strip().lower() != "unlimited":
            Rate.parse(args.rate)
        check_store_url(args.rate_limit_store)
        if args.concurrency is not None and args.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
        check_claim_store(args.claims)

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
        for flag, column in (
            ("--instance-id-column", self.args.instance_id_column),
            ("--continue-by", self.args.continue_by),
        ):
            if column is not None and column not in present:
                raise ConfigError(f"{flag} {column}: {where} {column!r}; its columns are {present}")

    def _tied_to_records(
        self,
        workflow: Workflow,
        schema: RunchatSchema | None,
        records: Storage,
        *,
        record: bool,
    ) -> Workflow:
        """The workflow tied to the flow's schema as it is now (a warning when it changed
        since the journal's last run) and, with --continue-by, to the instances recorded."""
        if not isinstance(workflow, RunchatWorkflow) or schema is None:
            return workflow
        args = self.args
        workflow = workflow.with_schema(schema)
        try:
            change = check_schema(records, args.workflow, schema, record=record)
            instances = (
                {}
                if args.continue_by is None
                else read_instances(records, args.workflow, args.continue_by)
            )
        except OSError as exc:
            raise CommandError(
                f"cannot read the journal's records at {records.url!r}: {exc}"
            ) from None
        if change.changed:
            flow = self.service.describe(args.workflow)
            print(f"runwf enrich: warning: {change.warning(flow)}", file=sys.stderr, flush=True)
        return workflow if args.continue_by is None else workflow.continuing(instances)

    def _workflow(
        self,
        key: str,
        url: str | None,
        mapping: dict[str, str],
        output_columns: Mapping[str, str],
        table_columns: list[str],
        output_schema: OutputSchema | None,
    ) -> tuple[Workflow, dict[str, str], RunchatSchema | None]:
        args = self.args
        info = self.service
        columns = mapping
        schema = None
        if info.schema is not None:
            # The schema call is free: it checks the key and the flow before any paid run.
            schema = asyncio.run(call_free(info, info.schema, key, url, args.workflow))
            flow = info.describe(args.workflow)
            for option, name in (
                ("--result-output", args.result_output),
                ("--citations-output", args.citations_output),
                *(("--output-column", label) for label in output_columns.values()),
            ):
                if name is not None:
                    check_output(flow, schema, name, setting=option)
            # Lifted outputs are typed as the flow's schema types them (number -> float64...).
            self.output_types = output_types(schema, output_columns)
            if not args.webhook:
                hint = f" (see 'runwf schema --workflow {args.workflow}')"
                columns = resolve_inputs(
                    flow, schema, mapping, table_columns, setting="--map", hint=hint
                )
                self.unmapped_inputs = sorted({p.id for p in schema.inputs} - set(columns))
        workflow = info.build_workflow(
            args.workflow,
            list(columns),
            on_missing=args.on_missing,
            output_schema=output_schema,
            webhook=args.webhook,
            result_output=args.result_output,
            citations_output=args.citations_output,
            instance_id_column=args.instance_id_column,
            continue_by=args.continue_by,
        )
        return workflow, columns, schema

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


def _local(path: str) -> str:
    """A local path made absolute, so the user can find it from anywhere."""
    return path if "://" in path else os.path.abspath(path)


def _open_journal(location: str, job_id: str, args: argparse.Namespace) -> RowJournal:
    try:
        return RowJournal(
            location,
            job_id=job_id,
            incremental=args.incremental,
            retry_failed=args.retry_failed,
        )
    except OSError as exc:
        raise CommandError(f"cannot open the journal at {location!r}: {exc}") from None


class _Rows:
    """The rows a command enriches: the whole table, or with ``--sample N`` N rows spread
    evenly over it (:func:`sample_positions`)."""

    def __init__(self, table: pd.DataFrame, sample: int | None) -> None:
        self.total = len(table)
        self.positions = None if sample is None else sample_positions(self.total, sample)
        self.frame = table if self.positions is None else table.iloc[self.positions]

    def describe(self, source: str) -> str:
        """E.g. ``240 rows of in.csv`` or ``3 of 240 rows of in.csv (rows 0, 120, 239)``."""
        if self.positions is None:
            return f"{self.total} rows of {source}"
        shown = ", ".join(map(str, self.positions[:10])) + (
            ", ..." if len(self.positions) > 10 else ""
        )
        return f"a sample of {len(self.positions)} of {self.total} rows of {source} (rows {shown})"


def read_output_schema(path: str | None) -> OutputSchema | None:
    """The ``--output-schema`` file's schema (``None`` without the flag).

    Raises:
        ConfigError: the file cannot be read, is not JSON, or is not an object schema of
            supported types; the message names the flag and the file.
    """
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"--output-schema {path}: cannot read the file: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--output-schema {path}: not a JSON file: {exc}") from None
    try:
        return OutputSchema.from_json_schema(document)
    except ConfigError as exc:
        raise ConfigError(f"--output-schema {path}: {exc}") from None


def _timeout(attempt_timeout_s: float | None) -> httpx.Timeout:
    """The timeouts of ``--attempt-timeout``: the read timeout never ends an attempt before
    its deadline, so raising the one raises the other."""
    if attempt_timeout_s is None:
        return DEFAULT_TIMEOUT
    read = max(DEFAULT_TIMEOUT.read or 0.0, attempt_timeout_s)
    return httpx.Timeout(
        read, connect=DEFAULT_TIMEOUT.connect, read=read, write=DEFAULT_TIMEOUT.write, pool=None
    )


if __name__ == "__main__":
    sys.exit(main())
