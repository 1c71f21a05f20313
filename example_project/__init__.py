"""An example Dagster project: companies enriched by hosted AI workflows, one run per row.

Run it from the repository root with ``dagster dev -m example_project.definitions``; see
``example_project/README.md``.
"""
