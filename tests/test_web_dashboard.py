"""The gateway's ops dashboard in a real headless Chromium, against the running stack.

Two workstations' agents report to one gateway over a shared bus; one agent stops and
the dashboard marks its workstation offline without a reload. A screenshot of every
dashboard page goes to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nhigw.bus import MemoryBus
from tests.stack import running_stack
from tests.web_browser import Page, browser  # noqa: F401  (fixture)

ROW = "const r = document.querySelector(`#ws-table tr[data-ws='${arguments[0]}']`); return r !== null && r.dataset.online === arguments[1];"


async def goto(p: Page, page: str) -> None:
    await p.click(f'.tabs a[data-page="{page}"]')
    await p.wait(f"return document.getElementById('page-{page}').classList.contains('active');", 5)


async def test_dashboard_shows_workstations_and_one_going_offline(browser: Any, artifacts_dir: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    bus = MemoryBus()
    async with running_stack(bus=bus) as s:
        await s.ready()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200, body
        await p.get(s.gateway_url + "/dashboard/")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        async with running_stack(bus=bus, workstation="ws-02"):
            await p.wait(ROW, 5, "ws-02", "1")
            await p.wait(ROW, 5, "ws-01", "1")
            # ws-01's states as its agent reports them: SAM 2, HPC 2, HC 2; ws-02 not initialised.
            cells = await p.js("return [...document.querySelectorAll(`#ws-table tr[data-ws='ws-01'] td`)].map(td => td.textContent);")
            assert cells[1] == "線上" and cells[3:6] == ["2", "2", "2"], cells
            assert cells[6]  # the agent's version
            await p.shot("dashboard-overview")
        # The ws-02 agent stopped: the page shows it offline, no reload, ws-01 still online.
        await p.js("window.__noReload = 1;")
        await p.wait(ROW, 5, "ws-02", "0")
        assert await p.js("return window.__noReload === 1;")
        await p.wait(ROW, 2, "ws-01", "1")
        await p.shot("dashboard-overview-offline")
        for page in ("dead", "audit"):
            await goto(p, page)
            await p.shot(f"dashboard-{page}")
        await p.click("#lang")
        await p.wait("return document.querySelector('.brand').textContent === 'Gateway operations';", 2)
        await goto(p, "overview")
        await p.wait(ROW, 5, "ws-02", "0")
        assert await p.text("#ws-table tr[data-ws='ws-02'] td:nth-child(2)") == "offline"
        await p.shot("dashboard-overview-en")
        await p.click("#lang")
    for name in ("dashboard-overview", "dashboard-dead", "dashboard-audit"):
        assert (artifacts_dir / "screenshots" / f"{name}.png").stat().st_size > 5000
