"""Shared fixtures: an emulator of both services on real loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dagster_runwf.emulator import Emulator, EmulatorConfig

KEY = "sk_test_key_0123456789"


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator with the given config fields; stopped after the test."""
    started: list[Emulator] = []

    def start(**config: Any) -> Emulator:
        emulator = Emulator(EmulatorConfig.from_dict({"include_builtins": True, **config}))
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator with the built-in workflows and no rate limit."""
    return start_emulator(rate_limit_enabled=False)
