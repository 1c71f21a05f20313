"""The Dagster layer: resources, asset factories, the Parquet IO manager, checks, schedules.

Thin by design: it turns Dagster config into engine calls, engine stats into metadata and
results into Parquet. Nothing below this package imports Dagster.
"""
