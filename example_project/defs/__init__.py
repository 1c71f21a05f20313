"""Definitions declared in YAML: each folder holds a ``defs.yaml`` (a Dagster Component)."""
