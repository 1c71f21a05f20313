"""Settings in the words of Dagster definitions: Python (``enriched_asset``, the resources)
and the YAML component (see :mod:`dagster_runwf.wording`).

A setting of the workflow or of :class:`~.settings.EnrichmentSettings` is a parameter in
Python and a key in YAML; the API key, the circuit breaker, the timeouts, the answer's size
cap and the retries of 429s are fields of the service's resource (the YAML sets only the
first two, when it defines the resource with ``api_key``).
"""

from __future__ import annotations

from ..wording import Spelling

_RESOURCE_FIELDS = {
    "api_key": 'the resource\'s api_key, e.g. dg.EnvVar("{value}")',
    "max_consecutive_failures": "the resource's max_consecutive_failures",
    "rate_limit_store": "the resource's rate_limit_store",
    # The resource's attempt deadline is its connect plus its read timeout.
    "attempt_timeout_s": "the resource's read_timeout_s",
    "read_timeout": "the resource's read_timeout_s",
    "max_response_bytes": "the resource's max_response_bytes",
    "max_rate_limited": "the resource's max_rate_limited",
}
"""Settings of the service's resource, not of the asset."""

_RESOURCE_ONLY = ("attempt_timeout_s", "read_timeout", "max_response_bytes", "max_rate_limited")
"""Resource fields the component does not take (it sets only api_key and the breaker)."""

_IN_PYTHON = " (of a resource defined in Python, with no api_key in the YAML)"
"""The component defines its resource from ``api_key`` with the defaults of the rest."""

DAGSTER = Spelling(
    "dagster",
    phrases={**_RESOURCE_FIELDS, "budget.max_runs": "budget=Budget(max_runs=...)"},
    python_values=True,
)
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
        "rate_limit_store": "rate_limit_store in the YAML (with api_key), or the resource's "
        "rate_limit_store",
        "max_runs": "budget: {{max_runs: {value}}}",
        "max_credits": "budget: {{max_credits: {value}}}",
        "budget.max_runs": "budget: {{max_runs: N}}",
        **{
            name: _RESOURCE_FIELDS[name] + _IN_PYTHON
            for name in (
                "attempt_timeout_s",
                "read_timeout",
                "max_response_bytes",
                "max_rate_limited",
            )
        },
    },
)
"""Assets defined by the YAML component: ``on_missing: "null"``, ``retry_failed: true``."""
