"""Running the services' aiohttp applications: the sites one process serves, until SIGINT/SIGTERM.

Stopping: on POSIX the event loop's signal handlers (SIGINT, SIGTERM). Windows has none
(``add_signal_handler`` is POSIX-only), and a service wrapper stops a console program with a
console control event (NSSM and WinSW send Ctrl+C, then Ctrl+Break): there ``signal.signal`` for
SIGINT and SIGBREAK sets the same stop event from the signal handler (:func:`_on_stop_signals`),
so ``on_stop`` (leave the bus, close the readers) runs on a service stop there too.

Shared by ``nhigw.cli`` and the services' own command-line pieces (``nhigw.compat.cli``), so
that no service's CLI imports the top-level one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web

from nhigw.common.guard import is_loopback
from nhigw.common.http import runner as http_runner
from nhigw.common.secretbox import private_dir

__all__ = ["Site", "data_dir", "refuse_non_loopback", "serve"]


def data_dir(args: argparse.Namespace, service: str) -> Path:
    """``<base>/<service>``, made private (0700) to the user the service runs as: it holds sealed keys."""
    base = Path(args.data_dir)  # flag, environment or default: resolved by ``nhigw.cli``
    path = base / service
    private_dir(base)
    private_dir(path)
    return path


def refuse_non_loopback(args: argparse.Namespace, service: str) -> None:
    """The agent and compat have no authentication: loopback only unless told (``--allow-non-loopback``)."""
    if not is_loopback(args.host) and not getattr(args, "allow_non_loopback", False):
        sys.exit(f"nhigw: the {service} has no authentication and serves loopback only; --host {args.host} needs --allow-non-loopback")


@dataclass
class Site:
    app: web.Application
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    label: str = ""

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"


def _on_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT/SIGTERM (POSIX: the loop's handlers) or SIGINT/SIGBREAK (Windows: ``signal.signal``); returns the undo."""
    names = [n for n in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, n)]
    posix: list[signal.Signals] = []
    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | signal.Handlers] = {}
    for name in names:
        sig = signal.Signals[name]
        try:
            loop.add_signal_handler(sig, stop.set)
            posix.append(sig)
        except NotImplementedError:  # Windows' event loops
            with contextlib.suppress(ValueError, OSError):  # not the main thread, or a signal this platform cannot catch
                before = signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
                previous[sig] = signal.SIG_DFL if before is None else before  # None: a handler not set from Python

    def restore() -> None:
        for sig in posix:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


async def serve(sites: list[Site], *, on_started: Callable[[], Awaitable[None]] | None = None, on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run every site until SIGINT/SIGTERM, then shut down cleanly."""
    runners = []
    stop = asyncio.Event()
    restore = _on_stop_signals(asyncio.get_running_loop(), stop)
    try:
        for s in sites:
            runner = http_runner(s.app)  # JSON for aiohttp's own errors, request-head timeout (nhigw.common.http)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, s.host, s.port, ssl_context=s.ssl_context, reuse_address=True).start()
            print(f"nhigw {s.label:8s} {s.url}", flush=True)
        if on_started:
            await on_started()
        print(f"nhigw ready (event loop: {type(asyncio.get_running_loop()).__module__.split('.')[0]})", flush=True)
        await stop.wait()
    finally:
        if on_stop:
            with contextlib.suppress(Exception):
                await on_stop()
        for r in reversed(runners):
            await r.cleanup()
        restore()
