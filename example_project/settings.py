"""Where the example keeps its files, its partitions, and which workflows it runs.

Shared by the Python assets and the YAML one (``defs/company_industries/defs.yaml`` reads
the ``@dg.template_var`` functions below), so both always agree. Environment variables
override the defaults: ``EXAMPLE_OUTPUT_DIR`` (Parquet and journals),
``AITUTOR_WORKFLOW_ID`` and ``RUNCHAT_FLOW_ID`` (your own workflows on the real services).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROJECT_DIR = Path(__file__).resolve().parent
DATA_FILE = PROJECT_DIR / "data" / "companies.csv"

FIRST_DAY = "2026-11-16"
END_DAY = "2026-11-21"
"""The partitions end here (exclusive) because the shipped table stops on 2026-11-20; with
data that keeps arriving, drop ``end_date`` and the nightly schedule enriches each new day."""

DAILY = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_date=END_DAY)

DEFAULT_AITUTOR_WORKFLOW = "wf_company_summary"
DEFAULT_RUNCHAT_FLOW = "industry-classifier"


def output_dir() -> Path:
    """Where Parquet files and journals go (``EXAMPLE_OUTPUT_DIR``, default ``output/``)."""
    return Path(os.environ.get("EXAMPLE_OUTPUT_DIR") or PROJECT_DIR / "output").resolve()


def warehouse_dir() -> Path:
    """The Parquet files: ``<asset>/<day>.parquet`` and ``industry_summary.parquet``."""
    return output_dir() / "warehouse"


def aitutor_workflow_id() -> str:
    """The AI Tutor workflow writing the company summaries."""
    return os.environ.get("AITUTOR_WORKFLOW_ID") or DEFAULT_AITUTOR_WORKFLOW


def runchat_flow_id() -> str:
    """The Runchat flow classifying the companies' industries."""
    return os.environ.get("RUNCHAT_FLOW_ID") or DEFAULT_RUNCHAT_FLOW


@dg.template_var
def journal_dir() -> str:
    """The row journals (one folder per asset and day)."""
    return str(output_dir() / "journal")


@dg.template_var
def warehouse() -> str:
    """``{{ warehouse }}`` in YAML: the Parquet files, as ``ParquetIOManager`` writes them."""
    return str(warehouse_dir())


@dg.template_var
def runchat_flow() -> str:
    """``{{ runchat_flow }}`` in YAML."""
    return runchat_flow_id()


@dg.template_var
def first_day() -> str:
    """``{{ first_day }}`` in YAML: the first daily partition."""
    return FIRST_DAY


@dg.template_var
def end_day() -> str:
    """``{{ end_day }}`` in YAML: the end of the daily partitions (exclusive)."""
    return END_DAY
