"""Running the emulator: in a background thread, in the foreground, or in a subprocess.

- :class:`Emulator` is for tests and the demo: a context manager that serves on an
  ephemeral loopback port from a thread with its own event loop, and gives direct access
  to stats, the request log, reset and runtime configuration (no HTTP round trip needed).
- :func:`serve` blocks; the ``runwf emulator`` command uses it.
- :func:`start_emulator_process` / :meth:`Emulator.in_subprocess` start it as a separate
  Python process. Benchmarks need that: a server in a thread shares the client's GIL and
  would be measured together with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from dagster_runwf.emulator.app import ADMIN_PREFIX, AITUTOR_PREFIX, RUNCHAT_PREFIX, EmulatorApp
from dagster_runwf.emulator.config import EmulatorConfig

ConfigSource = EmulatorConfig | Mapping[str, Any] | str | Path | None
T = TypeVar("T")

READY_PREFIX = "Emulator base URL: "


class _Urls:
    """The URLs of a running emulator, derived from its base URL."""

    base_url: str

    @property
    def aitutor_url(self) -> str:
        """AI Tutor base URL, to use where ``https://aitutor-api.vercel.app/api/v1`` goes."""
        return self.base_url + AITUTOR_PREFIX

    @property
    def runchat_url(self) -> str:
        """Runchat base URL, to use where ``https://runchat.com/api/v1`` goes."""
        return self.base_url + RUNCHAT_PREFIX

    @property
    def admin_url(self) -> str:
        return self.base_url + ADMIN_PREFIX


def _format_base(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


async def _start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            bound = int(addr[1])
            break
    return runner, bound


class Emulator(_Urls):
    """The emulator served from a background thread.

    >>> with Emulator({"keys": {"sk_test": {"credits": 5}}}) as emu:  # doctest: +SKIP
    ...     httpx.post(f"{emu.aitutor_url}/run/wf_abc123", ...)
    ...     emu.stats()["runs_by_workflow"]
    """

    def __init__(
        self, config: ConfigSource = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        # A private copy: runtime patches must not leak into the caller's object.
        self.config = EmulatorConfig.load(config).copy()
        self.host = host
        self.port = port
        self.base_url = ""
        self._emu = EmulatorApp(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="runwf-emulator", daemon=True)
        self._thread.start()
        self._started.wait(30.0)
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error
        if not self._started.is_set():
            raise RuntimeError("the emulator did not start within 30 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner, self.port = loop.run_until_complete(
                _start_site(self._emu.build(), self.host, self.port)
            )
            self.base_url = _format_base(self.host, self.port)
        except BaseException as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(30.0)
        self._thread = None
        self._loop = None

    close = stop

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- in-process access --------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (state is only ever touched there)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()

        async def call() -> T:
            return fn()

        coro: Coroutine[Any, Any, T] = call()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30.0)

    def stats(self) -> dict[str, Any]:
        """Same JSON as ``GET /_emulator/stats``."""
        return self._call(self._emu.admin.stats)

    def requests(
        self, limit: int | None = None, service: str | None = None
    ) -> list[dict[str, Any]]:
        """The request log, oldest first (``limit``: only the last N)."""
        return self._call(lambda: self._emu.admin.requests(limit, service))

    def instances(self, flow: str | None = None) -> list[dict[str, Any]]:
        """Runchat runs and the instance each started or continued (same JSON as
        ``GET /_emulator/instances``)."""
        return self._call(lambda: self._emu.admin.instances(flow))

    def reset(self) -> None:
        """Clear stats, log, rate windows and spent credits; keep the configuration."""
        self._call(self._emu.admin.reset)

    def update_config(
        self, patch: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Patch the running configuration (same format as ``POST /_emulator/config``)."""
        merged = {**(patch or {}), **fields}
        return self._call(lambda: self._emu.admin.update_config(merged))

    # -- subprocess ---------------------------------------------------------------------

    @staticmethod
    def in_subprocess(
        config: ConfigSource = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> EmulatorProcess:
        """Start the emulator in its own Python process (for benchmarks)."""
        base_url, proc = start_emulator_process(config, host=host, port=port)
        return EmulatorProcess(base_url, proc)


def serve(
    config: ConfigSource = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM). ``on_ready`` gets the base URL."""
    cfg = EmulatorConfig.load(config)

    async def main() -> None:
        runner, bound = await _start_site(EmulatorApp(cfg).build(), host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        # Everything allocated so far lives as long as the server: keep it out of the
        # garbage collector's way.
        gc.collect()
        gc.freeze()
        if on_ready is not None:
            on_ready(_format_base(host, bound))
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def start_emulator_process(
    config: ConfigSource = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 30.0,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``python -m dagster_runwf.emulator`` and wait until it serves.

    Returns the base URL (prefixes not included) and the process; stop it with
    ``process.terminate()`` (or use :class:`EmulatorProcess`).
    """
    cfg = EmulatorConfig.load(config)
    fd, path = tempfile.mkstemp(prefix="emulator-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(cfg.to_dict(), fh)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_package_root(), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "dagster_runwf.emulator",
        "--host",
        host,
        "--port",
        str(port),
        "--config",
        path,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    try:
        base = _wait_ready(proc, timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return base, proc


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    found: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith(READY_PREFIX):
                found.append(line[len(READY_PREFIX) :].strip())
                break

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise RuntimeError(f"the emulator process did not start (exit code {proc.poll()})")
    # Keep draining stdout so the child can never block on a full pipe.
    threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
    return found[0]


class EmulatorProcess(_Urls):
    """An emulator running in a child process, driven through its admin endpoints."""

    def __init__(self, base_url: str, process: subprocess.Popen[bytes]) -> None:
        self.base_url = base_url
        self.process = process

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30.0) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self._admin("GET", "/stats")
        return out

    def requests(
        self, limit: int | None = None, service: str | None = None
    ) -> list[dict[str, Any]]:
        query = []
        if limit is not None:
            query.append(f"limit={limit}")
        if service:
            query.append(f"service={service}")
        path = "/requests" + ("?" + "&".join(query) if query else "")
        out: list[dict[str, Any]] = self._admin("GET", path)["requests"]
        return out

    def instances(self, flow: str | None = None) -> list[dict[str, Any]]:
        path = "/instances" + (f"?flow={urllib.parse.quote(flow)}" if flow else "")
        out: list[dict[str, Any]] = self._admin("GET", path)["runs"]
        return out

    def reset(self) -> None:
        self._admin("POST", "/reset", {})

    def update_config(
        self, patch: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        out: dict[str, Any] = self._admin("POST", "/config", {**(patch or {}), **fields})["config"]
        return out

    def close(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    stop = close

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wait_until_serving(base_url: str, timeout: float = 10.0) -> None:
    """Poll the stats endpoint until the emulator answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base_url + ADMIN_PREFIX + "/stats", timeout=2.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
