"""Shared helpers of the benchmarks: the machine header, the emulator in its own process,
the benchmark workflow and its rows, timing, peak RSS, and findings against targets.

Every benchmark prints ratios measured in the same run; absolute figures depend on the
machine and on what else it is doing, which is why the load average is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd

from dagster_runwf import AITutorWorkflow, EngineOptions
from dagster_runwf.emulator import Emulator, EmulatorConfig, EmulatorProcess

KEY = "sk_bench"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

# -- the benchmark workflow: a company profile, like a small enrichment prompt ------------------

WORKFLOW_ID = "wf_bench_profile"
PROFILE = (
    "{{company}} is a privately held company headquartered in {{country}}. It was founded "
    "in the late 1990s and today employs between 200 and 500 people across three offices. "
    "Its main products are industrial software and maintenance services for mid-sized "
    "manufacturers; most revenue comes from multi-year contracts in {{country}} and its "
    "neighbours. Recent news: a new regional office and a partnership with a logistics firm."
)
WORKFLOW = AITutorWorkflow(WORKFLOW_ID, ["company", "country"])

_FIRST = ["Northwind", "Blue Harbor", "Granite Peak", "Silver Birch", "Red Fern", "Oakridge"]
_SECOND = ["Industrial", "Logistics", "Software", "Precision", "Marine", "Agricultural"]
_THIRD = ["Systems", "Holdings", "Solutions", "Components", "Services", "Technologies"]
_LEGAL = ["GmbH", "Ltd", "S.A.", "B.V.", "Inc.", "AB"]
_COUNTRIES = ["Germany", "United Kingdom", "Spain", "Netherlands", "United States", "Sweden"]


def workflow_spec(latency: float | tuple[float, float] = 0.0, **extra: Any) -> dict[str, Any]:
    """The emulated company-profile workflow: a ~460-character answer and two citations."""
    low, high = latency if isinstance(latency, tuple) else (latency, latency)
    return {
        "id": WORKFLOW_ID,
        "service": "aitutor",
        "name": "Company profile (benchmark)",
        "variables": ["company", "country"],
        "template": PROFILE,
        "citations": [
            "https://en.wikipedia.org/wiki/{{company}}",
            "https://registry.example.com/{{country}}/{{company}}",
        ],
        "latency": {"min_s": low, "max_s": high},
        **extra,
    }


def company(i: int) -> str:
    """A unique company name of about 40 characters."""
    return (
        f"{_FIRST[i % 6]} {_SECOND[i // 6 % 6]} {_THIRD[i // 36 % 6]} "
        f"{_LEGAL[i // 216 % 6]} {i:07d}"
    )


def company_rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    return [
        {"company": company(i), "country": _COUNTRIES[i % len(_COUNTRIES)]}
        for i in range(offset, offset + n)
    ]


def company_frame(n: int, offset: int = 0) -> pd.DataFrame:
    columns = {
        "company": [company(i) for i in range(offset, offset + n)],
        "country": [_COUNTRIES[i % len(_COUNTRIES)] for i in range(offset, offset + n)],
    }
    frame: pd.DataFrame = pd.DataFrame(columns)
    return frame


def emulator_config(
    latency: float | tuple[float, float] = 0.0,
    *,
    rate_limit: bool = False,
    log: int = 0,
    include_builtins: bool = False,
    extra_workflows: Sequence[Mapping[str, Any]] = (),
    **settings: Any,
) -> EmulatorConfig:
    """The emulator serving the benchmark workflow; no rate limit and no request log unless
    asked (``log``: entries kept, for arrival times)."""
    return EmulatorConfig.from_dict(
        {
            "workflows": [workflow_spec(latency), *extra_workflows],
            "include_builtins": include_builtins,
            "rate_limit_enabled": rate_limit,
            "log_bodies": False,
            "log_limit": log,
            **settings,
        }
    )


@contextlib.contextmanager
def emulator(config: EmulatorConfig) -> Iterator[EmulatorProcess]:
    """The emulator in its own Python process, so the figures measure the client."""
    with Emulator.in_subprocess(config) as emu:
        yield emu


def engine_options(base_url: str, concurrency: int, rate: str = "unlimited") -> EngineOptions:
    return EngineOptions(api_key=KEY, base_url=base_url, rate=rate, concurrency=concurrency)


# -- the machine --------------------------------------------------------------------------------

_PACKAGES = (
    "dagster-runwf",
    "httpx",
    "httpx-aiohttp",
    "aiohttp",
    "pyarrow",
    "pandas",
    "dagster",
    "requests",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import pyarrow as pa

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_total_memory_kib() / 2**20, 1),
        "python": platform.python_version(),
        "arrow_memory_pool": pa.default_memory_pool().backend_name,
        "versions": versions,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _total_memory_kib() -> int:
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_header(title: str) -> None:
    info = machine()
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"== {title}")
    print(
        f"machine: {info['system']}, {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_gib']} GiB; Python {info['python']}; Arrow pool "
        f"{info['arrow_memory_pool']}\nversions: {versions}\nload average: {load()}",
        flush=True,
    )


# -- findings -----------------------------------------------------------------------------------


@dataclass
class Finding:
    """One figure of a scenario, with its target when it has one."""

    scenario: str
    metric: str
    value: float
    target: str = ""
    met: bool | None = None
    note: str = ""
    load: str = field(default_factory=load)

    def line(self) -> str:
        verdict = "" if self.met is None else ("  [met]" if self.met else "  [MISSED]")
        target = f" (target {self.target})" if self.target else ""
        note = f"  {self.note}" if self.note else ""
        return f"  {self.metric:<58} {self.value:10.3f}{target}{verdict}{note}"


def at_most(scenario: str, metric: str, value: float, limit: float, note: str = "") -> Finding:
    return Finding(scenario, metric, value, f"<= {limit:g}", value <= limit, note)


def at_least(scenario: str, metric: str, value: float, limit: float, note: str = "") -> Finding:
    return Finding(scenario, metric, value, f">= {limit:g}", value >= limit, note)


def info(scenario: str, metric: str, value: float, note: str = "") -> Finding:
    return Finding(scenario, metric, value, note=note)


def report(findings: Sequence[Finding]) -> None:
    for finding in findings:
        print(finding.line(), flush=True)


def save(findings: Sequence[Finding], path: str | None) -> None:
    """Append the findings as JSON lines (for collecting the results of several runs)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for finding in findings:
            fh.write(json.dumps(asdict(finding)) + "\n")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose description is the first line of ``doc``, with ``--json``."""
    out = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    out.add_argument("--json", help="append the findings to this file as JSON lines")
    return out


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Timed:
    """Wall time and this process's CPU time (all threads) of one call."""

    wall_s: float
    cpu_s: float


def timed(call: Callable[[], Any]) -> tuple[Any, Timed]:
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    value = call()
    return value, Timed(time.perf_counter() - started, time.process_time() - cpu)


# -- memory -------------------------------------------------------------------------------------


def status_kb(field_name: str) -> int | None:
    """A ``Vm*`` field of /proc/self/status in KiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def restart_peak() -> bool:
    """Make the peak RSS (VmHWM) start from now (Linux 4.0+); ``False`` where it cannot.

    Needed because ``ru_maxrss`` of a child on Linux starts at its parent's peak RSS (kept
    across fork and exec), which would hide any child peak below the parent's.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return status_kb("VmHWM") is not None


def peak_kb(own_peak: bool) -> int:
    return (status_kb("VmHWM") if own_peak else None) or maxrss_kb()


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
