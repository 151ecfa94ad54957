"""The one place that chooses the event loop every service runs on.

uvloop (libuv) is the loop aiohttp recommends for production: the same Python code does
less work per socket event (bench/gateway_overhead.py measures the proxy and the gateway
with it and without it, side by side). It is an optional dependency, installed by default
on Linux and macOS (``pyproject.toml``) and not available on Windows, where the standard
loop runs. The choice comes from the command line's environment (``nhigw.cli``):
``NHIGW_LOOP=asyncio`` forces the standard loop (to compare, or to rule uvloop out when
chasing a problem); ``NHIGW_LOOP=uvloop`` asks for uvloop and fails loudly if it is not
installed; ``auto`` (the default) takes uvloop where it is installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "NHIGW_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not installed (Windows, or a minimal install): the standard loop
        return None
    return uvloop.new_event_loop


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``choice`` (``auto``, ``uvloop``, ``asyncio``; None: ``auto``); None means the standard loop."""
    want = (choice or "auto").strip().lower()
    if want not in CHOICES:
        raise SystemExit(f"nhigw: {ENV}={want!r} is not one of {', '.join(CHOICES)}")
    if want == "asyncio":
        return None
    factory = _uvloop_factory()
    if factory is None and want == "uvloop":
        raise SystemExit(f"nhigw: {ENV}=uvloop but uvloop is not installed (pip install uvloop)")
    return factory


def loop_name(choice: str | None = None) -> str:
    """``uvloop`` or ``asyncio``: what ``run`` would use."""
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
