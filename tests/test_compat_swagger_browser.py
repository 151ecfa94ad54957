"""Swagger UI in a real headless Chromium (compat, the agent, the simulator): the bundled UI renders the OpenAPI documents (no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.compat.app import build
from tests.helpers import site_url
from tests.stack import running_stack
from tests.web_browser import Page, browser  # noqa: F401  (fixture)


async def test_swagger_ui_renders_every_compat_route(browser: Any, artifacts_dir: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    async with running_stack() as s:
        runner = web.AppRunner(build(s.agent_url, s.gateway_url), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            await p.get(f"{site_url(runner)}/swagger/index.html")
            await p.wait("return document.querySelectorAll('.opblock').length >= 40;", 15)
            assert "虛擬健保卡相容性 SDK" in await p.text(".info .title")
            paths = await p.js("return Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.textContent);")
            assert "/QRCodeReader/uploadqrcode" in paths and "/VHC/VHChisGetSeqNumber256N1" in paths and "/Offline/exportOfflineMData" in paths
            await p.shot("compat-swagger")
        finally:
            await runner.cleanup()


async def test_swagger_ui_renders_the_agents_and_the_simulators_documents(browser: Any, artifacts_dir: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    async with running_stack() as s:
        for name, url, must, at_least in (
            ("agent", s.agent_url + "/api/swagger/index.html", "/api/hpc/v1/Verification/Hpc", 30),
            ("sim-cloud", s.sim_url + "/api/swagger/index.html", "/api/v1/Treatment/WriteCodeFee", 40),
            ("sim-test", s.sim_url + "/test/swagger/index.html", "/test/v1/ApplyVirtualHc/Apply", 8),
        ):
            await p.get(url)
            await p.wait("return document.querySelectorAll('.opblock').length >= arguments[0];", 15, at_least)
            paths = await p.js("return Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.textContent);")
            assert must in paths, (name, paths)
            await p.shot(f"{name}-swagger")
