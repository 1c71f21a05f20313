"""The package's version: its one home, read by setuptools at build time (pyproject's
``dynamic = ["version"]``), by the package root and by the HTTP client's user agent."""

__version__ = "0.1.0"
