"""Helpers for tests that run real processes and servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO

from aiohttp import web

from nhigw.common.http import runner as http_runner

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port free right now, for a server this process cannot bind itself (a child process).

    A server in this process binds port 0 instead (``start_site``, ``serving``): the kernel's
    choice is read back from the bound socket and no one can take it in between. A child gets
    a number: ``nhigw`` services take ``--port N`` and print no port of theirs, several of them
    are given each other's URLs on the command line before any starts (``nhigw up``, the
    stacks here), and redis-server and Prometheus have no "bind 0 and report" either
    (redis-server ``--port 0`` turns TCP off). Between this function's close and the child's
    bind another socket could take the port; the number is drawn below the kernel's ephemeral
    range (``net.ipv4.ip_local_port_range``, where every ``connect`` and ``bind(0)`` on the
    machine draws from), so only another explicit pick of the same number in that gap can.
    The same holds for a URL where nobody listens (a refused connection, on purpose).
    """
    low = _ephemeral_low()
    while True:
        port = _RNG.randrange(max(1024, low - _BELOW_EPHEMERAL), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


_BELOW_EPHEMERAL = 12000
_RNG = random.SystemRandom()  # not the random module's: a test seeding it would make runs pick alike


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems draw ephemeral ports from 49152 up


def reserved_socket() -> socket.socket:
    """A loopback socket bound to a port of the kernel's choice, not listening yet.

    For a server in this process whose URL other parts need before it can start (a stack given
    the cloud's URL, the cloud built on the stack's store): the port is known now and no one can
    take it until ``start_site(app, sock=...)`` serves on it.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


async def start_site(
    app: web.Application, port: int = 0, *, sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None, shutdown_timeout: float = 60.0
) -> web.AppRunner:
    """``app`` served on 127.0.0.1:``port`` (0: a port the kernel picks; ``site_url`` reads it back) or on
    ``sock``; the caller cleans the runner up."""
    runner = http_runner(app, shutdown_timeout=shutdown_timeout)  # the services' own runner (nhigw.cli.serve)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ssl_context) if sock is not None else web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    return runner


def site_port(runner: web.AppRunner) -> int:
    """The port ``runner``'s site is bound to (read back from its socket)."""
    return int(runner.addresses[0][1])


def site_url(runner: web.AppRunner, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{site_port(runner)}"


@contextlib.asynccontextmanager
async def serving(app: web.Application, *, shutdown_timeout: float = 60.0) -> AsyncIterator[str]:
    """``app`` on a loopback port of the kernel's choice for the block; yields its base URL."""
    runner = await start_site(app, shutdown_timeout=shutdown_timeout)
    try:
        yield site_url(runner)
    finally:
        await runner.cleanup()


def wait_port(host: str, port: int, *, timeout_s: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open in {timeout_s} s")


def insecure_ssl() -> ssl.SSLContext:
    """HIS code talks to the agent's self-signed localhost certificate without verifying it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Proc:
    """``python -m nhigw <args>`` as a child process, logging to a file, stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "nhigw", *args], stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)

    def wait_ready(self, timeout_s: float = 20.0) -> "Proc":
        """This process once it printed "nhigw ready"; if it exits or times out first, it is stopped and
        this raises (a caller's ``finally`` only stops the processes this returned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "nhigw ready" in self.log_path.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} not ready in {timeout_s} s:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        stop_process(self.proc, sig)
        self._log.close()
        return int(self.proc.returncode)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Stop a child this test started: ``sig``, then SIGKILL if it has not exited in ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def eventually(fn: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0, *, interval_s: float = 0.05) -> bool:
    """Poll ``fn`` (plain or async) every ``interval_s`` until it is true (True) or ``timeout_s`` passes (False).

    The one way the tests wait: on a condition, never a fixed sleep. ``fn`` is asked once more at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)


def ok(answer: tuple[object, ...]) -> bool:
    """A 6.0 answer ``(http_status, body, ...)`` that succeeded: HTTP 200 *and* statusCode 0.

    Every 6.0-coded answer is HTTP 200, refusals included (nhigw.contracts.codes), so the
    HTTP status alone says nothing about success.
    """
    status, body = answer[0], answer[1]
    return status == 200 and isinstance(body, dict) and body.get("statusCode", 0) == 0
