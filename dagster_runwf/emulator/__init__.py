"""A local server speaking both hosted services' protocols, for tests, demo and benchmarks.

The real services are slow, rate limited, paid per run and hard to make fail on demand;
the emulator is none of these unless told to be. It serves the AI Tutor API under
``/aitutor/api/v1`` and the Runchat API under ``/runchat/api/v1`` on one loopback port,
keeps exact statistics of what a client sent (so tests can prove limits were respected and
no input was paid twice), and injects faults reproducibly.
"""

from dagster_runwf.emulator.config import EmulatorConfig, KeyConfig
from dagster_runwf.emulator.fault_config import FaultConfig
from dagster_runwf.emulator.server import (
    Emulator,
    EmulatorProcess,
    serve,
    start_emulator_process,
)
from dagster_runwf.emulator.workflow_spec import LatencySpec, ParamSpec, WorkflowSpec

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorProcess",
    "FaultConfig",
    "KeyConfig",
    "LatencySpec",
    "ParamSpec",
    "WorkflowSpec",
    "serve",
    "start_emulator_process",
]
