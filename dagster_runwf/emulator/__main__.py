"""``python -m dagster_runwf.emulator``: the same as ``runwf emulator``."""

from __future__ import annotations

import sys

from dagster_runwf.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
