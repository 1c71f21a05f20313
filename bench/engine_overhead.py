"""Client overhead: the engine's rows/s against bare HTTP loops, in the same run.

The emulator runs in its own process with no rate limit and zero latency, so the numbers
measure the client. Each contender posts the same bodies at the same concurrency; the
ratios (engine / bare loop) are the result, absolute rows/s depend on the machine.

    python bench/engine_overhead.py [--rows 5000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from dagster_runwf import AITutorWorkflow, run_workflow_rows
from dagster_runwf.emulator import Emulator, EmulatorConfig

KEY = "sk_bench"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def bodies(n: int) -> list[bytes]:
    return [json.dumps({"text": f"row {i}"}).encode() for i in range(n)]


async def bare_httpx(url: str, rows: list[bytes], concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with sem:
                response = await client.post(url, content=body, headers=HEADERS)
                response.raise_for_status()
                response.json()

        await asyncio.gather(*(one(b) for b in rows))


async def bare_aiohttp(url: str, rows: list[bytes], concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with sem, session.post(url, data=body, headers=HEADERS) as response:
                response.raise_for_status()
                await response.json()

        await asyncio.gather(*(one(b) for b in rows))


async def engine(base: str, n: int, concurrency: int, backend: str) -> None:
    rows = ({"text": f"row {i}"} for i in range(n))
    run = run_workflow_rows(
        AITutorWorkflow("wf_summarize", ["text"]),
        rows,
        api_key=KEY,
        base_url=base,
        rate="unlimited",
        concurrency=concurrency,
        backend=backend,  # type: ignore[arg-type]
    )
    async for result in run:
        assert result.status == "succeeded", result.error


def timed(label: str, n: int, make: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    asyncio.run(make())  # type: ignore[arg-type]
    rate = n / (time.perf_counter() - started)
    print(f"  {label:<28} {rate:8.0f} rows/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    n, c = args.rows, args.concurrency
    config = EmulatorConfig.from_dict(
        {"include_builtins": True, "rate_limit_enabled": False, "log_bodies": False, "log_limit": 0}
    )
    with Emulator.in_subprocess(config) as emu:
        url = f"{emu.aitutor_url}/run/wf_summarize"
        payload = bodies(n)
        print(f"{n} rows, concurrency {c}, emulator in its own process")
        timed("warm-up", 500, lambda: bare_aiohttp(url, payload[:500], c))
        httpx_rate = timed("bare httpx loop", n, lambda: bare_httpx(url, payload, c))
        aiohttp_rate = timed("bare aiohttp loop", n, lambda: bare_aiohttp(url, payload, c))
        eng_httpx = timed(
            "engine, httpx transport", n, lambda: engine(emu.aitutor_url, n, c, "httpx")
        )
        eng_aio = timed(
            "engine, aiohttp transport", n, lambda: engine(emu.aitutor_url, n, c, "aiohttp")
        )
    print(f"engine(httpx) / bare httpx     = {eng_httpx / httpx_rate:.2f}")
    print(f"engine(aiohttp) / bare httpx   = {eng_aio / httpx_rate:.2f}")
    print(f"engine(aiohttp) / bare aiohttp = {eng_aio / aiohttp_rate:.2f}")


if __name__ == "__main__":
    main()
