"""The example's code location: ``dagster dev -m example_project.definitions``.

Python assets (``assets.py``) and the YAML one (``defs/``), the AI Tutor asset's free
``plan`` check, the services' resources
(``resources.py``: real with keys, else the embedded emulator), Parquet through
``ParquetIOManager``, and one nightly schedule for the lot.
"""

from __future__ import annotations

import dagster as dg

from dagster_runwf import ParquetIOManager, enrichment_plan_check, nightly_schedule

from . import settings
from .assets import INDUSTRIES_KEY, companies, company_profiles, industry_summary
from .resources import service_resources


def build_definitions() -> dg.Definitions:
    """Everything, with paths and services read from the environment now."""
    profiles = company_profiles(journal_dir=str(settings.output_dir() / "journal"))
    from_yaml = dg.load_from_defs_folder(path_within_project=settings.PROJECT_DIR)
    in_python = dg.Definitions(
        assets=[companies, profiles, industry_summary],
        # The free plan of the next materialization: execute it alone from the asset's
        # Checks tab before paying; in the nightly run it plans the next night.
        asset_checks=[enrichment_plan_check(profiles)],
        schedules=[
            # Each night: the companies that arrived the day before, both enrichments,
            # and the summary brought up to date.
            nightly_schedule([companies, profiles, INDUSTRIES_KEY, industry_summary])
        ],
        resources={
            **service_resources(),
            "io_manager": ParquetIOManager(base_dir=str(settings.warehouse_dir())),
        },
    )
    return dg.Definitions.merge(in_python, from_yaml)


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the code location, not on import."""
    return build_definitions()
