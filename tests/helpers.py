"""Helpers for tests that run real processes and servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_site(app: web.Application, port: int, *, shutdown_timeout: float = 60.0) -> web.AppRunner:
    """``app`` served on 127.0.0.1:``port``; the caller cleans the runner up."""
    runner = http_runner(app, shutdown_timeout=shutdown_timeout)  # the services' own runner (nhigw.cli.serve)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@contextlib.asynccontextmanager
async def serving(app: web.Application, *, shutdown_timeout: float = 60.0) -> AsyncIterator[str]:
    """``app`` on a free loopback port for the block; yields its base URL."""
    port = free_port()
    runner = await start_site(app, port, shutdown_timeout=shutdown_timeout)
    try:
        yield f"http://127.0.0.1:{port}"
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
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "nhigw ready" in self.log_path.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
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


async def eventually(fn: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> bool:
    """Poll ``fn`` every 50 ms until it is true (True) or ``timeout_s`` passes (False): wait on conditions, not sleeps."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await fn():
            return True
        await asyncio.sleep(0.05)
    return False


def ok(answer: tuple[object, ...]) -> bool:
    """A 6.0 answer ``(http_status, body, ...)`` that succeeded: HTTP 200 *and* statusCode 0.

    Every 6.0-coded answer is HTTP 200, refusals included (nhigw.contracts.codes), so the
    HTTP status alone says nothing about success.
    """
    status, body = answer[0], answer[1]
    return status == 200 and isinstance(body, dict) and body.get("statusCode", 0) == 0
