"""Settings in the words of Dagster definitions: Python (``enriched_asset``, the resources)
and the YAML component (see :mod:`dagster_runwf.wording`).

A setting of the workflow or of :class:`~.settings.EnrichmentSettings` is a parameter in
Python and a key in YAML; the API key and the circuit breaker are fields of the service's
resource in both.
"""

from __future__ import annotations

from ..wording import Spelling

_RESOURCE_FIELDS = {
    "api_key": 'the resource\'s api_key, e.g. dg.EnvVar("{value}")',
    "max_consecutive_failures": "the resource's max_consecutive_failures",
}

DAGSTER = Spelling("dagster", phrases=_RESOURCE_FIELDS, python_values=True)
"""Assets defined in Python: ``on_missing='null'``, ``retry_failed=True``."""

YAML = Spelling(
    "yaml",
    assignment="{name}: {value}",
    # Unquoted, YAML reads null as no value rather than the setting's word.
    values={"null": '"null"'},
    phrases={
        **_RESOURCE_FIELDS,
        "api_key": 'api_key: "{{{{ env.{value} }}}}" in the YAML, or the resource\'s api_key',
        "max_consecutive_failures": "max_consecutive_failures in the YAML (with api_key), or "
        "the resource's max_consecutive_failures",
        "max_runs": "budget: {{max_runs: {value}}}",
        "max_credits": "budget: {{max_credits: {value}}}",
    },
)
"""Assets defined by the YAML component: ``on_missing: "null"``, ``retry_failed: true``."""
