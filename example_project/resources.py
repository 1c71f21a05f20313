"""Which services the example talks to: the real ones when their keys are set, else an
emulator of both, started on first use in this process, on loopback.

==================================  ====================================================
``AITUTOR_API_KEY``                 set: the real AI Tutor API with this key (read when a
                                    run starts, never shown); unset: the emulator
``RUNCHAT_API_KEY``                 the same for Runchat
``AITUTOR_BASE_URL``                another API root for AI Tutor (e.g. a proxy)
``RUNCHAT_BASE_URL``                another API root for Runchat
==================================  ====================================================

Each service is chosen on its own: with only ``AITUTOR_API_KEY`` set, AI Tutor is real and
Runchat emulated. The emulator serves the two workflows the example uses
(:func:`emulated_workflows`), at the services' rate limits scaled up so that the 300 rows
take seconds, with a little latency and a few transient errors to retry.

Under ``dagster dev`` runs and steps execute in child processes of the code server: the
emulator's address is handed down in ``RUNWF_EXAMPLE_EMULATOR_URL``, so they all talk to the
one emulator the code location started.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dagster as dg
import httpx

from dagster_runwf import AITutorResource, RunchatResource
from dagster_runwf.emulator import Emulator, EmulatorConfig

from . import settings

EMULATOR_URL_VARIABLE = "RUNWF_EXAMPLE_EMULATOR_URL"
EMULATOR_KEY = "sk_emulator_example"
"""What the example sends the emulator's AI Tutor: not a secret."""
EMULATOR_RUNCHAT_KEY = "rc_emulator_example"
"""What the example sends the emulator's Runchat (a key of its own, as with the real
services, so each asset's balance moves only with its own runs): not a secret."""

_lock = threading.Lock()
_emulator: Emulator | None = None


def emulated_workflows() -> list[dict[str, Any]]:
    """Stand-ins for the example's two workflows, with the ids the assets use.

    Their answers are templates filled from the inputs (the emulator runs no model), which
    is enough to see the data flow: a summary with citations and its facts as JSON per
    company, an industry per company, and companies in stealth failing as a real workflow
    might.
    """
    return [
        {
            "id": settings.aitutor_workflow_id(),
            "service": "aitutor",
            "name": "Company summary",
            "variables": ["company", "domain", "industry", "country", "employees", "city"],
            # A summary, then the facts as JSON in a fenced block, as a model would write
            # them; the asset's output_schema types them into wf_headcount and wf_hq.
            "template": "{{company}} ({{domain}}) is a {{industry}} company from {{country}}."
            '\n```json\n{"headcount": {{employees}}, "hq": "{{city}}"}\n```',
            "citations": ["https://{{domain}}/about", "https://{{domain}}/press"],
            "latency": {"min_s": 0.05, "max_s": 0.4},
            "fail_when": "Stealth",
        },
        {
            "id": settings.runchat_flow_id(),
            "service": "runchat",
            "name": "Industry classifier",
            "inputs": [
                {"id": "company_n1", "label": "Company", "required": True},
                {"id": "domain_n1", "label": "Domain"},
                {"id": "industry_n1", "label": "Stated industry"},
            ],
            "outputs": [
                {
                    "id": "rationale_n4",
                    "label": "Rationale",
                    "template": "{{company_n1}} ({{domain_n1}}) describes itself as "
                    "{{industry_n1}} [{{hash}}]",
                },
                {"id": "sector_n4", "label": "Sector", "template": "{{industry_n1}}"},
            ],
            "latency": {"min_s": 0.05, "max_s": 0.3},
        },
    ]


def emulator_config() -> dict[str, Any]:
    """The embedded emulator's configuration (see ``docs/emulator.md``)."""
    return {
        "include_builtins": True,
        "workflows": emulated_workflows(),
        "aitutor_rate_limit": 50,
        "runchat_rate_limit": 50,
        "runchat_window_s": 1.0,
        "faults": {"error_rate": 0.01},
        # A balance that goes down as runs are paid, so each materialization's
        # runwf/credits_spent shows what it cost (an unlimited key's balance never moves).
        "keys": {EMULATOR_KEY: {"credits": 1_000_000}, EMULATOR_RUNCHAT_KEY: {}},
    }


def emulator_url() -> str:
    """The root URL of the emulator: the one a parent process started, else a new one."""
    global _emulator
    with _lock:
        inherited = os.environ.get(EMULATOR_URL_VARIABLE)
        if inherited and _answers(inherited):
            return inherited
        if _emulator is None:
            _emulator = Emulator(EmulatorConfig.from_dict(emulator_config())).start()
        os.environ[EMULATOR_URL_VARIABLE] = _emulator.base_url
        return _emulator.base_url


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_emulator/stats", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def service_resources() -> dict[str, AITutorResource | RunchatResource]:
    """``aitutor`` and ``runchat`` resources, real or emulated as the environment says."""
    resources: dict[str, AITutorResource | RunchatResource] = {}
    for name, cls, emulated_rate in (
        ("aitutor", AITutorResource, "50/s"),
        ("runchat", RunchatResource, "50/s"),
    ):
        prefix = name.upper()
        if os.environ.get(f"{prefix}_API_KEY"):
            base_url = os.environ.get(f"{prefix}_BASE_URL")
            resources[name] = cls(
                api_key=dg.EnvVar(f"{prefix}_API_KEY"),
                base_url=dg.EnvVar(f"{prefix}_BASE_URL") if base_url else None,
            )
        else:
            resources[name] = cls(
                api_key=EMULATOR_KEY if name == "aitutor" else EMULATOR_RUNCHAT_KEY,
                base_url=f"{emulator_url()}/{name}/api/v1",
                rate=emulated_rate,
                concurrency=16,
            )
    return resources
