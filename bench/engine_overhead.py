"""Client overhead: the engine's rows/s against bare HTTP loops, in the same run.

The emulator runs in its own process with no rate limit and zero latency, so the numbers
measure the client. Every contender posts the same bodies (built by the workflow itself)
at the same concurrency to the same company-profile workflow (~460-character answers) and
decodes the JSON answers:

- bare loops: ``httpx.AsyncClient`` with httpx's own pool; the same client over the aiohttp
  transport (``httpx_aiohttp.AiohttpTransport``, what the engine uses by default); a plain
  ``aiohttp.ClientSession``;
- the engine (``run_workflow_rows``): aiohttp transport without and with a row journal
  (a fresh local ``RowJournal`` per pass, its closing merge included), and httpx's own pool.

Best of ``--repeat`` passes per contender (the order reversed every other pass), as rows/s
and as this process's CPU time per row (all threads; steadier on a busy machine). Target:
the engine, journal on and off, >= 0.9 of the bare httpx loop's rows/s.

httpx's own pool is several times slower than the rest at this concurrency, so its two
contenders (the bare loop and the engine on it) post the first ``--pool-rows`` rows only
(their rows/s is steady after the first second); pass ``--pool-rows 20000`` for all.

    python bench/engine_overhead.py [--rows 20000] [--pool-rows 5000] [--concurrency 64]
                                    [--repeat 2]
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from _common import (
    KEY,
    WORKFLOW,
    Finding,
    at_least,
    company_rows,
    emulator,
    emulator_config,
    engine_options,
    info,
    load,
    parser,
    print_header,
    report,
    save,
    timed,
)
from httpx_aiohttp import AiohttpTransport

from dagster_runwf import RowJournal, run_workflow_rows
from dagster_runwf.engine.client import auth_headers

SCENARIO = "3 client overhead"


def bodies(n: int) -> list[bytes]:
    """The request bodies the engine sends for the benchmark rows."""
    out = [WORKFLOW.prepare(row).request.content for row in company_rows(n)]
    return [body for body in out if body is not None]


async def bare_httpx(url: str, rows: list[bytes], concurrency: int, aiohttp_pool: bool) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = AiohttpTransport(limits=limits) if aiohttp_pool else None
    headers = auth_headers(KEY)
    async with httpx.AsyncClient(limits=limits, timeout=60, transport=transport) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with sem:
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()
                json.loads(response.content)

        await asyncio.gather(*(one(b) for b in rows))


async def bare_aiohttp(url: str, rows: list[bytes], concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = auth_headers(KEY)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with sem, session.post(url, data=body, headers=headers) as response:
                response.raise_for_status()
                json.loads(await response.read())

        await asyncio.gather(*(one(b) for b in rows))


async def engine(
    base: str, n: int, concurrency: int, backend: str, journal: RowJournal | None
) -> None:
    run = run_workflow_rows(
        WORKFLOW,
        company_rows(n),
        dataclasses.replace(engine_options(base, concurrency), backend=backend),
        journal=journal,
    )
    async for result in run:
        assert result.status == "succeeded", result.error


def journaled(base: str, n: int, concurrency: int) -> Callable[[Path], None]:
    """The engine with a fresh local journal in ``scratch`` (closing merge included)."""

    def run(scratch: Path) -> None:
        with RowJournal(scratch / "journal", job_id="overhead") as journal:
            asyncio.run(engine(base, n, concurrency, "aiohttp", journal))

    return run


def plain(make: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    return lambda scratch: asyncio.run(make())


@dataclass
class Contender:
    """One way of sending the rows, and its best figures over the passes."""

    label: str
    run: Callable[[Path], None]
    rate: float = 0.0
    cpu_us: float = float("inf")

    rows: int = 0

    def once(self, emu: Any, scratch: Path) -> None:
        n = self.rows
        emu.reset()
        scratch.mkdir(parents=True)
        _, took = timed(lambda: self.run(scratch))
        served = emu.stats()["by_status"].get("200", 0)
        assert served == n, f"{self.label}: {served} of {n} rows answered"
        rate, cpu_us = n / took.wall_s, took.cpu_s / n * 1e6
        self.rate, self.cpu_us = max(self.rate, rate), min(self.cpu_us, cpu_us)
        print(f"  {self.label:<36} {rate:7.0f} rows/s  {cpu_us:6.0f} us CPU/row", flush=True)


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--rows", type=int, default=20_000)
    args_parser.add_argument("--pool-rows", type=int, default=5_000)
    args_parser.add_argument("--concurrency", type=int, default=64)
    args_parser.add_argument("--repeat", type=int, default=2)
    args = args_parser.parse_args(argv)
    n, c, p = args.rows, args.concurrency, min(args.pool_rows, args.rows)
    print_header("3. Client overhead (bench/engine_overhead.py)")
    print(
        f"{n} rows ({p} through httpx's pool), concurrency {c}, best of {args.repeat}",
        flush=True,
    )
    payload = bodies(n)
    with emulator(emulator_config()) as emu, tempfile.TemporaryDirectory() as tmp:
        url = f"{emu.aitutor_url}/{WORKFLOW.run_path()}"
        base = emu.aitutor_url
        bare = Contender(
            "bare httpx loop (httpx pool)",
            plain(lambda: bare_httpx(url, payload[:p], c, False)),
            rows=p,
        )
        bare_aio = Contender(
            "bare httpx loop (aiohttp transport)",
            plain(lambda: bare_httpx(url, payload, c, True)),
        )
        aio = Contender("bare aiohttp loop", plain(lambda: bare_aiohttp(url, payload, c)))
        engine_off = Contender(
            "engine, no journal", plain(lambda: engine(base, n, c, "aiohttp", None))
        )
        engine_on = Contender("engine, journal", journaled(base, n, c))
        engine_httpx = Contender(
            "engine, httpx pool, no journal",
            plain(lambda: engine(base, p, c, "httpx", None)),
            rows=p,
        )
        contenders = [bare, bare_aio, aio, engine_off, engine_on, engine_httpx]
        for contender in contenders:
            contender.rows = contender.rows or n
        asyncio.run(bare_aiohttp(url, payload[:1000], c))  # warm-up: imports, the server
        for attempt in range(args.repeat):
            order = contenders if attempt % 2 == 0 else contenders[::-1]
            for contender in order:
                contender.once(emu, Path(tmp) / f"{attempt}-{contenders.index(contender)}")
    print(f"  (load {load()})")
    findings = [
        at_least(
            SCENARIO, "engine, no journal / bare httpx loop", engine_off.rate / bare.rate, 0.9
        ),
        at_least(SCENARIO, "engine, journal / bare httpx loop", engine_on.rate / bare.rate, 0.9),
        info(
            SCENARIO,
            "engine, no journal / bare httpx loop on aiohttp transport",
            engine_off.rate / bare_aio.rate,
            "(same transport: the engine's own cost)",
        ),
        info(SCENARIO, "engine, no journal / bare aiohttp loop", engine_off.rate / aio.rate),
        info(
            SCENARIO,
            "engine, httpx pool / bare httpx loop",
            engine_httpx.rate / bare.rate,
            "(same pool)",
        ),
        info(
            SCENARIO,
            "bare httpx: aiohttp transport / httpx pool",
            bare_aio.rate / bare.rate,
        ),
        info(SCENARIO, "engine, journal / no journal", engine_on.rate / engine_off.rate),
        info(SCENARIO, "engine rows/s, no journal", engine_off.rate),
        info(SCENARIO, "engine CPU us/row, no journal", engine_off.cpu_us),
        info(SCENARIO, "bare httpx loop rows/s", bare.rate),
    ]
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
