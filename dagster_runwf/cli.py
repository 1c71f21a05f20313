"""The ``runwf`` command: ``runwf emulator`` starts the local emulator of both services."""

from __future__ import annotations

import sys

_USAGE = """usage: runwf COMMAND [ARGS...]

commands:
  emulator    run a local server speaking the AI Tutor and Runchat protocols
              (see 'runwf emulator --help')
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``runwf COMMAND ...``; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "emulator":
        from .emulator.cli import main as emulator_main

        return emulator_main(rest)
    print(f"runwf: unknown command {command!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
