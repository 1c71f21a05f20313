"""The progress of ``runwf enrich`` on stderr (a live bar on a terminal, lines in a log),
and the summary it prints when the run is over.

The engine calls back with a :class:`~dagster_runwf.engine.stats.Progress` every
``interval_s``. On a terminal that feeds a ``rich`` progress bar, refreshed several times a
second; anywhere else (CI logs, ``2> file``, a pipe) a bar would be a mess of control
characters, so a plain line is printed every few seconds instead. Before the first
request, a run the key's rate will pace for a while says so in a line of its own (the
engine's first report, ``Progress.starting``).
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from ..engine.stats import Progress, RunStats

if TYPE_CHECKING:
    import rich.progress

LIVE_INTERVAL_S = 0.25
"""Seconds between the engine's reports when a bar is drawn."""
LINE_INTERVAL_S = 5.0
"""Seconds between progress lines when stderr is not a terminal."""
PLAN_MIN_S = 5.0
"""The shortest estimate worth a line before the run (the key's rate paces it this long)."""


class ProgressDisplay:
    """Shows a run's progress on ``stream``; pass the instance as ``on_progress``.

    Use it as a context manager around the run, so a live bar is taken down (and the
    terminal restored) however the run ends.

    Args:
        label: the command, e.g. ``"enrich"``, shown before the bar or each line.
        total: rows in the input, when known.
        stream: where to draw; stderr by default.
        live: draw a bar (``True``) or print lines (``False``); by default a bar exactly
            when ``stream`` is a terminal.
        line_interval_s: seconds between lines when not live.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        line_interval_s: float = LINE_INTERVAL_S,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.live = _is_terminal(self._stream) if live is None else live
        self._label = label
        self._total = total
        self._line_interval_s = line_interval_s
        self._last_line_at: float | None = None
        self._bar: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None

    @property
    def interval_s(self) -> float:
        """How often the engine should report (its ``progress_interval_s``)."""
        return LIVE_INTERVAL_S if self.live else self._line_interval_s

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._start_bar()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, progress: Progress) -> None:
        """Take one report from the engine."""
        if progress.starting:
            self._plan(progress)
            return
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=progress.done,
                total=progress.total,
                detail=_detail(progress),
            )
            return
        if self.live:
            return
        # The last report of a finished run says nothing the summary will not.
        if progress.total is not None and progress.done >= progress.total:
            return
        # A line at most every interval, and none in the first one: a short run (or one
        # stopped at once by a fatal error) prints only its summary or its error.
        if progress.elapsed_s - (self._last_line_at or 0.0) < self._line_interval_s * 0.9:
            return
        self._last_line_at = progress.elapsed_s
        print(f"runwf {self._label}: {progress}", file=self._stream, flush=True)

    def _plan(self, progress: Progress) -> None:
        """The first report: when the key's rate will pace the run for a while, say so and
        how long it makes it (``41 rows to send at 10/min (the key's rate): about 4 min``).
        A run of a few seconds prints only its summary."""
        if not progress.rate_bound or (progress.eta_s or 0.0) < PLAN_MIN_S:
            return
        line = f"runwf {self._label}: {progress.plan()}"
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self._stream, flush=True)

    def _start_bar(self) -> None:
        # Imported here: a bar is drawn only on a terminal, and rich costs import time.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        console = Console(file=self._stream)
        # Narrow enough for an 80-column terminal with a six-figure row count.
        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            refresh_per_second=8,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._label, total=self._total, detail="starting")


def _detail(progress: Progress) -> str:
    parts = [f"{progress.failed} failed", f"{progress.in_flight} in flight"]
    parts.append(f"{progress.rows_per_s:.1f}/s")
    if progress.rate_bound:
        parts.append(progress.pace())
    if progress.eta_s is not None:
        parts.append(f"ETA {_duration(progress.eta_s)}")
    if progress.waiting:
        parts.append(progress.waiting)
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def summary(stats: RunStats, what: str, path: str | None, journal: str, job_id: str) -> str:
    """The closing report of a run, a few aligned lines."""
    p50 = stats.latency.percentile(50)
    p95 = stats.latency.percentile(95)
    lines = [f"runwf enrich: {stats.rows} rows through {what} in {stats.elapsed_s:.1f} s"]
    rows = [
        ("succeeded", f"{stats.succeeded}"),
        ("failed", _failed(stats)),
        (
            "reused",
            f"{stats.reused} from the journal, {stats.deduplicated} identical rows sent once",
        ),
        (
            "requests",
            f"{stats.requests} ({stats.sent} rows paid now, {stats.rate_limited} answered 429, "
            f"{stats.retried} rows retried)",
        ),
        *_unreached(stats),
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


def _failed(stats: RunStats) -> str:
    """Failed rows, and how many of them were skipped on purpose (``--on-missing skip``)."""
    if not stats.failed:
        return "0"
    skipped = f", {stats.skipped} of them skipped (--on-missing skip)" if stats.skipped else ""
    return f"{stats.failed}{skipped} (see the wf_status and wf_error columns)"


def _unreached(stats: RunStats) -> list[tuple[str, str]]:
    """A line for the rows no request reached the service for (not paid), if any."""
    if not stats.unreached:
        return []
    return [("unreached", f"{stats.unreached} rows could not connect to the service (not paid)")]


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _location(path: str | None) -> str:
    """A local path made absolute (so the user can find the file from anywhere)."""
    if path is None:
        return "-"
    return path if "://" in path else os.path.abspath(path)
