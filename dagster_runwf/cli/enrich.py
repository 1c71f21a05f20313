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
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import httpx
import pandas as pd

from ..engine.budget import Budget
from ..engine.claims import check_claim_store
from ..engine.client import DEFAULT_TIMEOUT
from ..engine.enrich import Enrichment, enrich_async
from ..engine.journal import RowJournal
from ..engine.options import EngineOptions
from ..engine.ratelimit.store_url import check_store_url
from ..engine.retry import RetryPolicy
from ..engine.service_calls import call_free
from ..engine.stats import Progress
from ..errors import ConfigError, FanOutStopped, ServiceUnreachableError
from ..services.base import Workflow
from ..services.rate import Rate
from ..services.registry import check_settings, service_info
from ..services.runchat_schema import check_output, resolve_inputs
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
from .enrich_parser import JOURNAL_SUFFIX, build_parser
from .inputs import derive_job_id, input_reference, read_table
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
            service=self.service.name,
            workflow_id=args.workflow,
            base_url=url or workflow.default_base_url,
            columns=columns,
            webhook=bool(args.webhook),
        )
        location = args.journal or args.output + JOURNAL_SUFFIX
        try:
            journal = RowJournal(
                location,
                job_id=job_id,
                incremental=args.incremental,
                retry_failed=args.retry_failed,
            )
        except OSError as exc:
            raise CommandError(f"cannot open the journal at {location!r}: {exc}") from None
        what = f"{self.service.display_name} workflow {args.workflow}"
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
                    output_columns=output_columns or None,
                    prefix=args.prefix,
                    destination=args.output,
                    journal=journal,
                    budget=budget,
                    on_progress=self._on_progress(display),
                    land_partial=args.land_partial,
                )

            try:
                enrichment = self._run_engine(run_engine, display, len(frame), location)
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
        print(summary(enrichment.stats, what, enrichment.path, location, job_id))
        if args.fail_on_row_errors and enrichment.stats.failed:
            raise CommandError(
                f"{enrichment.stats.failed} of {enrichment.stats.rows} rows failed "
                "(--fail-on-row-errors); see the wf_error column of the output",
                EXIT_ROW_ERRORS,
            )
        return EXIT_OK

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
        }
        check_settings(info, {setting: flag for setting, (flag, set_) in given.items() if set_})
        if info.schema is None and not mapping:
            # Without a schema call nothing says what the workflow's inputs are.
            raise ConfigError(
                f"{info.display_name} {info.workflow_term}s need --map NAME=COLUMN for each of "
                f"their {info.workflow.inputs_setting}"
            )
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

    def _workflow(
        self,
        key: str,
        url: str | None,
        mapping: dict[str, str],
        output_columns: Mapping[str, str],
        table_columns: list[str],
    ) -> tuple[Workflow, dict[str, str]]:
        args = self.args
        info = self.service
        columns = mapping
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
            if not args.webhook:
                hint = f" (see 'runwf schema --workflow {args.workflow}')"
                columns = resolve_inputs(
                    flow, schema, mapping, table_columns, setting="--map", hint=hint
                )
        workflow = info.build_workflow(
            args.workflow,
            list(columns),
            on_missing=args.on_missing,
            webhook=args.webhook,
            result_output=args.result_output,
            citations_output=args.citations_output,
        )
        return workflow, columns

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
