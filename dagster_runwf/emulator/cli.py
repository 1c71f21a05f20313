"""``runwf emulator``: serve both emulated services from the command line.

The main ``runwf`` command dispatches ``runwf emulator ...`` here; ``python -m
dagster_runwf.emulator`` runs the same thing. The help text lists the built-in workflows
so someone trying the demo by hand knows what to call without opening the source.
"""

from __future__ import annotations

import argparse
import sys

from dagster_runwf.emulator.app import ADMIN_PREFIX, AITUTOR_PREFIX, RUNCHAT_PREFIX
from dagster_runwf.emulator.builtins import builtin_workflows
from dagster_runwf.emulator.config import EmulatorConfig
from dagster_runwf.emulator.server import READY_PREFIX, serve


def _epilog() -> str:
    lines = ["built-in workflows (used when the config file names none):"]
    lines += [
        "  " + w.describe() + ("" if w.published else "  [unpublished]")
        for w in builtin_workflows()
    ]
    lines += [
        "",
        "URL prefixes: AI Tutor "
        + AITUTOR_PREFIX
        + ", Runchat "
        + RUNCHAT_PREFIX
        + ", admin "
        + ADMIN_PREFIX
        + " (stats, requests, reset, config).",
        "Any non-empty bearer key is accepted unless the config file lists keys;"
        " * marks a required input.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runwf emulator",
        description="Serve local emulations of the Runchat and AI Tutor APIs.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)"
    )
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON configuration file")
    parser.add_argument(
        "--aitutor-rate", type=int, metavar="N", help="AI Tutor requests per second per key"
    )
    parser.add_argument(
        "--runchat-rate", type=int, metavar="N", help="Runchat requests per window per key"
    )
    parser.add_argument(
        "--runchat-window", type=float, metavar="S", help="Runchat rate window in seconds"
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="never answer 429 for rate")
    parser.add_argument("--seed", type=int, help="seed of the fault and latency draws")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = EmulatorConfig.load(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"runwf emulator: cannot load {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.aitutor_rate is not None:
        config.aitutor_rate_limit = args.aitutor_rate
    if args.runchat_rate is not None:
        config.runchat_rate_limit = args.runchat_rate
    if args.runchat_window is not None:
        config.runchat_window_s = args.runchat_window
    if args.no_rate_limit:
        config.rate_limit_enabled = False
    if args.seed is not None:
        config.seed = args.seed
    try:
        config.validate()
    except ValueError as exc:
        print(f"runwf emulator: {exc}", file=sys.stderr)
        return 2

    def ready(base: str) -> None:
        print(READY_PREFIX + base)
        print(f"AI Tutor: {base}{AITUTOR_PREFIX}")
        print(f"Runchat:  {base}{RUNCHAT_PREFIX}")
        print(f"Admin:    {base}{ADMIN_PREFIX}/stats")
        sys.stdout.flush()

    try:
        serve(config, args.host, args.port, on_ready=ready)
    except OSError as exc:
        print(f"runwf emulator: {exc}", file=sys.stderr)
        return 1
    return 0
