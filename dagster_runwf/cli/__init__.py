"""The ``runwf`` command: enrich a table outside Dagster, inspect a service, run the emulator.

``runwf COMMAND ...`` dispatches to one module per command. Commands are imported only when
chosen, and none of them imports Dagster, so ``runwf --help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

from ..services.registry import SERVICES

# name -> (module below dagster_runwf, one-line summary for `runwf --help`)
_COMMANDS: dict[str, tuple[str, str]] = {
    "enrich": (
        "cli.enrich",
        "run a CSV or Parquet file through a workflow, row by row, into Parquet",
    ),
    "export": ("cli.export", "write the rows a journal holds for a job as a results table"),
    "schema": ("cli.inspect", "print a Runchat flow's inputs and outputs"),
    "balance": ("cli.inspect", "print an AI Tutor key's remaining credits"),
    "emulator": (
        "emulator.cli",
        "run a local server speaking the AI Tutor and Runchat protocols",
    ),
}

_USAGE = (
    "usage: runwf COMMAND [ARGS...]\n\ncommands:\n"
    + "".join(f"  {name:<10}  {summary}\n" for name, (_, summary) in _COMMANDS.items())
    + """
'runwf COMMAND --help' describes a command. API keys are read from the environment only
("""
    + ", ".join(info.api_key_variable for info in SERVICES.values())
    + """), never from flags, so they stay out of shell history.

examples:
  export AITUTOR_API_KEY=sk_...
  runwf enrich companies.csv profiles.parquet --service aitutor \\
      --workflow wf_abc123 --map company=name --map country=country
  runwf export profiles.parquet.journal partial.parquet
  runwf schema --workflow my_flow_id
  runwf balance
"""
)


def main(argv: list[str] | None = None) -> int:
    """Run ``runwf COMMAND ...``; returns the process exit status.

    Args:
        argv: the arguments after ``runwf``; ``None`` reads ``sys.argv``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    entry = _COMMANDS.get(command)
    if entry is None:
        print(
            f"runwf: error: unknown command {command!r}; choose one of "
            f"{', '.join(_COMMANDS)} (see 'runwf --help')",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"dagster_runwf.{entry[0]}")
    # schema and balance share a module, so each command has its own entry point there.
    runner = getattr(module, f"{command}_main", None) or module.main
    status: int = runner(rest)
    return status


def run() -> NoReturn:
    """The ``runwf`` command (and ``python -m dagster_runwf.cli``): :func:`main`, then the
    process ends with its status.

    It ends without the interpreter's teardown: Arrow's native thread pools can abort a
    process being torn down (``std::terminate`` on a worker thread still joinable,
    apache/arrow#34314), which turned a finished run's exit status 0 into -6 now and then.
    By the time :func:`main` returns, the output and the journal are written and closed and
    nothing is left to clean up but what the operating system frees.
    """
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
