"""The key's rate out of one process: four worker processes sharing a 50/s limit through
Redis, beside the same rows in one process, and what the limiter costs Redis.

The emulator (in its own process) enforces 50 requests per 1 s sliding window and answers
429 beyond it; runs take 1-3 s (uniform). Two cases, the same rows each:

- one process: ``enrich`` over every row, concurrency 192 (``--concurrency``), the key's
  rate kept in the process (the baseline);
- four processes (like four Dagster workers, each a chunk of the rows, concurrency 48
  each: the same 192 in all), each its own journal job, the key's rate and the row claims
  in one Redis server started here (``redis-server`` on loopback) — what the celery, dask
  or k8s executors do.

Achieved rate as in ``bench/rate_limit.py``: from the emulator's log of admitted requests in
order of arrival ``t_1 .. t_N``, ``limit / mean(t_k - t_(k-limit))``. Redis cost: the
server's own counts (``INFO commandstats``, reset before the case) divided by the requests
the emulator received — commands a request (the rate limiter's lock, reads and writes, the
claim and its release, heartbeats, lock polls while another process decides) and the
server's CPU time a request. Redis capacity on this machine: ``redis-benchmark`` (``PING``,
``SET``, ``ZADD``; 50 clients, no pipelining). From these, how many requests/s one Redis
serves before it is the bottleneck (see ``docs/how-to/distributed.md``).

Targets: four processes reach >= 0.97 of the allowed rate over the middle of the run with
< 1% 429s (as one process must), and no failed row.

Achieved rate over the whole run, and over its middle 80% (every worker started, none
finished yet): one process at concurrency 48 and 2 s a run sends only 24/s, so four
processes that start or finish their chunks at different times cannot fill the key alone.

    python bench/distributed.py [--seconds 20] [--workers 4] [--concurrency 192]
"""

from __future__ import annotations

import math
import multiprocessing
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    KEY,
    WORKFLOW,
    Finding,
    at_least,
    at_most,
    company_frame,
    emulator,
    emulator_config,
    info,
    load,
    parser,
    print_header,
    report,
    save,
)

from dagster_runwf import EngineOptions, RowJournal, enrich
from dagster_runwf.emulator import EmulatorProcess

SCENARIO = "8 distributed"
LIMIT = 50
COLUMNS = {"company": "company", "country": "country"}


class Redis:
    """A redis-server of this benchmark's own on loopback (no persistence)."""

    def __init__(self, folder: Path) -> None:
        import redis

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def command_stats(self) -> dict[str, tuple[int, float]]:
        """Calls and microseconds of CPU, by command, since the last reset."""
        stats = self.client.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"]))
            for name, v in stats.items()
        }

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def run_chunk(args: tuple[str, str, int, int, int, str, str]) -> dict[str, int]:
    """One worker: ``enrich`` over rows ``start:start + count`` (its own journal job)."""
    base_url, store, start, count, concurrency, folder, job = args
    options = EngineOptions(
        api_key=KEY,
        base_url=base_url,
        rate=f"{LIMIT}/s",
        concurrency=concurrency,
        rate_limit_store=store,
        claim_store=store if store.startswith("redis") else "auto",
    )
    with RowJournal(folder, job_id=job) as journal:
        done = enrich(
            company_frame(count, offset=start), WORKFLOW, options, columns=COLUMNS, journal=journal
        )
    return {"failed": done.stats.failed, "succeeded": done.stats.succeeded}


def achieved(admitted: list[float]) -> float:
    """``LIMIT / mean(t_k - t_(k-LIMIT))`` over arrival times ``admitted`` (sorted)."""
    later, earlier = admitted[LIMIT:], admitted[:-LIMIT]
    return LIMIT / ((sum(later) - sum(earlier)) / len(later))


def admitted_rate(emu: EmulatorProcess) -> tuple[float, float, float, int, int]:
    """Achieved / allowed rate over the whole run and over its middle 80% (all the workers
    started, none finished: at concurrency 48 and 2 s a run, one process alone sends 24/s),
    the 429 share, requests and 429s, from the emulator's log."""
    log = [e for e in emu.requests(service="aitutor") if e["endpoint"] == "aitutor.run"]
    admitted = sorted(e["time"] - e["duration_ms"] / 1000 for e in log if e["status"] == 200)
    limited = sum(1 for e in log if e["status"] == 429)
    tenth = len(admitted) // 10
    steady = admitted[tenth : len(admitted) - tenth]
    return (
        achieved(admitted) / LIMIT,
        achieved(steady) / LIMIT,
        limited / max(len(log), 1),
        len(log),
        limited,
    )


def one_case(
    emu: EmulatorProcess,
    label: str,
    store: str,
    rows: int,
    workers: int,
    total_concurrency: int,
    folder: str,
) -> tuple[list[Finding], int]:
    """``rows`` rows over ``workers`` processes; the findings and the requests sent."""
    emu.reset()
    per = math.ceil(rows / workers)
    concurrency = total_concurrency // workers
    chunks = [
        (emu.aitutor_url, store, i * per, min(per, rows - i * per), concurrency, folder,
         f"{label}-{i}")
        for i in range(workers)
    ]  # fmt: skip
    started = time.monotonic()
    if workers == 1:
        outcomes = [run_chunk(chunks[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            outcomes = pool.map(run_chunk, chunks)
    elapsed = time.monotonic() - started
    ratio, steady, share_429, requests, limited = admitted_rate(emu)
    failed = sum(o["failed"] for o in outcomes)
    print(
        f"  {label}: {rows} rows in {workers} process(es), concurrency {concurrency} each, "
        f"store {store.split(':')[0]}: {ratio * LIMIT:.2f}/s of {LIMIT}/s allowed "
        f"({ratio:.3f}; {steady:.3f} over the middle 80% of the run); {limited} 429s of "
        f"{requests} requests; {failed} failed rows; {elapsed:.1f} s (load {load()})",
        flush=True,
    )
    return [
        info(SCENARIO, f"{label}: achieved / allowed rate, whole run", ratio),
        at_least(SCENARIO, f"{label}: achieved / allowed rate, middle 80%", steady, 0.97),
        at_most(SCENARIO, f"{label}: 429s / requests", share_429, 0.01 - 1e-12, "(< 1%)"),
        at_most(SCENARIO, f"{label}: failed rows", float(failed), 0),
    ], requests


def redis_benchmark(port: int) -> dict[str, float]:
    """Requests/s of PING, SET and ZADD from redis-benchmark (50 clients, no pipelining)."""
    if shutil.which("redis-benchmark") is None:
        return {}
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-q", "-n", "100000", "-c", "50",
         "-t", "ping_mbulk,set,zadd"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    found = {}
    for line in out.replace("\r", "\n").splitlines():
        match = re.match(r"^(\w+)[^:]*: ([\d.]+) requests per second", line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def redis_cost(server: Redis, requests: int, workers: int) -> tuple[list[Finding], float, float]:
    """Commands and server CPU (µs) per request of the case just run."""
    stats = server.command_stats()
    commands = sum(calls for calls, _ in stats.values())
    usec = sum(u for _, u in stats.values())
    top = sorted(stats.items(), key=lambda kv: -kv[1][0])[:6]
    detail = ", ".join(f"{name} {calls / requests:.2f}" for name, (calls, _) in top)
    per_request, usec_per_request = commands / requests, usec / requests
    print(
        f"  Redis: {commands} commands for {requests} requests = {per_request:.1f} a request "
        f"({detail}); {usec_per_request:.0f} µs of server CPU a request",
        flush=True,
    )
    return (
        [
            info(SCENARIO, f"{workers} processes: Redis commands / request", per_request),
            info(SCENARIO, f"{workers} processes: Redis server CPU µs / request", usec_per_request),
        ],
        per_request,
        usec_per_request,
    )


def capacity(server: Redis, per_request: float, usec_per_request: float) -> list[Finding]:
    """How many requests/s one Redis carries: its command rate over commands a request."""
    rates = redis_benchmark(server.port)
    if not rates:
        print("  redis-benchmark is not installed: no capacity estimate")
        return []
    slowest = min(rates.values())
    print(
        "  redis-benchmark (50 clients): "
        + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in rates.items()),
        flush=True,
    )
    # Every command costs a round trip's work (the benchmark's rate) plus, for the
    # limiter's scripts and sorted sets, the CPU the server counted beyond a SET's.
    seconds_per_request = per_request / slowest + usec_per_request / 1e6
    estimate = 1 / seconds_per_request
    print(
        f"  one Redis carries about {estimate:,.0f} requests/s of the key's traffic before it "
        f"is the bottleneck ({per_request:.1f} commands a request at {slowest:,.0f}/s, plus "
        f"{usec_per_request:.0f} µs of script and sorted-set work)",
        flush=True,
    )
    return [
        info(SCENARIO, "redis-benchmark: slowest of PING/SET/ZADD, commands/s", slowest),
        info(SCENARIO, "one Redis: requests/s before it is the bottleneck", estimate),
    ]


def main(argv: list[str] | None = None) -> list[Finding]:
    args_parser = parser(__doc__)
    args_parser.add_argument("--seconds", type=float, default=20.0)
    args_parser.add_argument("--workers", type=int, default=4)
    args_parser.add_argument(
        "--concurrency", type=int, default=192, help="in flight in all, shared by the workers"
    )
    args = args_parser.parse_args(argv)
    print_header("8. The key's rate over several processes, through Redis (bench/distributed.py)")
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: nothing to measure")
        return []
    rows = LIMIT * math.ceil(1 + args.seconds)
    config = emulator_config(
        (1.0, 3.0), rate_limit=True, log=20_000, aitutor_rate_limit=LIMIT, aitutor_window_s=1.0
    )
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory() as folder, emulator(config) as emu:
        server = Redis(Path(folder))
        try:
            one, _ = one_case(
                emu, "one process", "memory", rows, 1, args.concurrency, f"{folder}/one"
            )
            server.client.config_resetstat()
            label = f"{args.workers} processes"
            many, requests = one_case(
                emu, label, server.url, rows, args.workers, args.concurrency, f"{folder}/many"
            )
            cost, per_request, usec = redis_cost(server, requests, args.workers)
            findings += one + many + cost + capacity(server, per_request, usec)
        finally:
            server.stop()
    report(findings)
    save(findings, args.json)
    return findings


if __name__ == "__main__":
    main()
