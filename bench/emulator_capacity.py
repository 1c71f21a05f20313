"""Capacity of the emulator itself: requests/s and server CPU per request.

Benchmarks of the client are only meaningful if the emulator is far from saturated. This
starts the emulator in its own process (no rate limit, zero latency), drives the AI Tutor
run endpoint from this process with a plain aiohttp loop, and reports throughput and the
server process's CPU time per request (Linux: read from /proc).

    python bench/emulator_capacity.py [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import aiohttp

from dagster_runwf.emulator import Emulator

HEADERS = {"Authorization": "Bearer sk_bench"}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux only; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, n: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                async with session.post(url, json={"story": f"row {i}"}, headers=HEADERS) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    with Emulator.in_subprocess({"rate_limit_enabled": False}) as emu:
        url = f"{emu.aitutor_url}/run/wf_abc123"
        asyncio.run(drive(url, 2_000, args.concurrency))  # warm-up
        for trial in range(1, args.trials + 1):
            cpu0, t0 = process_cpu_s(emu.process.pid), time.perf_counter()
            asyncio.run(drive(url, args.requests, args.concurrency))
            elapsed = time.perf_counter() - t0
            cpu = process_cpu_s(emu.process.pid) - cpu0
            print(
                f"trial {trial}: {args.requests / elapsed:,.0f} req/s at concurrency "
                f"{args.concurrency}; server CPU {cpu / args.requests * 1000:.3f} ms/request, "
                f"server busy {100 * cpu / elapsed:.0f}%"
            )


if __name__ == "__main__":
    main()
