"""The event loop every service runs on (``nhigw.common.loop``): uvloop where installed, the standard loop when asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nhigw.common import loop
from tests.helpers import Proc, free_port


async def running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_is_uvloop_on_linux() -> None:
    """uvloop is a default dependency on Linux (pyproject.toml): ``auto`` finds it."""
    assert loop.loop_name("auto") == "uvloop"
    assert loop.run(running_loop_module(), choice="auto") == "uvloop"


def test_asyncio_choice_runs_the_standard_loop() -> None:
    assert loop.loop_name("asyncio") == "asyncio"
    assert loop.run(running_loop_module(), choice="asyncio") == "asyncio"


def test_an_unknown_choice_is_refused_loudly() -> None:
    with pytest.raises(SystemExit, match="NHIGW_LOOP='tokio'"):
        loop.loop_factory("tokio")


def test_a_service_runs_on_the_loop_the_environment_names(tmp_path: Path) -> None:
    """``nhigw sim`` as a process: uvloop by default, the standard loop with ``NHIGW_LOOP=asyncio``."""
    for env, want in (({"NHIGW_LOOP": "auto"}, "uvloop"), ({"NHIGW_LOOP": "asyncio"}, "asyncio")):
        p = Proc(f"sim-{want}", ["sim", "--port", str(free_port())], tmp_path, env=env)
        try:
            p.wait_ready()
            assert f"nhigw ready (event loop: {want})" in p.log()
        finally:
            p.stop()
