"""The gateway's ops dashboard in a real headless Chromium, against the running stack.

- A second workstation's agent enrols with the gateway and reports; it stops, and the
  dashboard marks that workstation offline without a reload.
- An operator logs in with an ops API key; a request whose worker died mid-run (its
  replica "crashed": an unexpected error) is dead-lettered after its deliveries; the
  operator retries it from the page, it runs, and the HIS gets its answer with the
  same Idempotency-Key. The audit viewer shows the record, the patient masked.
A screenshot of every dashboard page goes to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import csv as csvlib
import datetime as dt
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nhigw.agent.buslink import BusLink
from nhigw.agent.cardio import InProcessBackend
from nhigw.agent.core import Agent
from nhigw.agent.dc import DcClient
from nhigw.bus.enrol import enrol
from nhigw.common.tls import SERVER_DAYS, CertKeeper
from nhigw.gateway.auth import Clients
from nhigw.gateway.upstream import AiohttpTransport, Transport, UpstreamRequest, UpstreamResponse, UpstreamSettings
from nhigw.vcard.bank import VirtualReaderBank
from tests.helpers import eventually, ok
from tests.stack import Stack, running_stack
from tests.web_browser import Page, browser  # noqa: F401  (fixture)

ROW = "const r = document.querySelector(`#ws-table tr[data-ws='${arguments[0]}']`); return r !== null && r.dataset.online === arguments[1];"


async def goto(p: Page, page: str) -> None:
    await p.click(f'.tabs a[data-page="{page}"]')
    await p.wait(f"return document.getElementById('page-{page}').classList.contains('active');", 5)


@contextlib.asynccontextmanager
async def another_agent(s: Stack, workstation: str, tls: CertKeeper | None = None) -> AsyncIterator[Agent]:
    """A second workstation's agent (no cards), enrolled with the stack's gateway as in production."""
    gw = s.gateway
    agent = Agent(backend=InProcessBackend(VirtualReaderBank()), dc=DcClient(s.sim_url), workstation=workstation, tls=tls)
    ident = await enrol(gw.bus, gw.keys, workstation, await gw.agents.issue_token(workstation), timeout_s=10)
    link = BusLink(agent, gw.bus, gw.keys, ident, interval_s=0.2)
    await link.start()
    try:
        yield agent
    finally:
        await link.stop()
        await agent.stop()


async def test_dashboard_shows_workstations_and_one_going_offline(browser: Any, artifacts_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    # ws-02's agent serves HTTPS with a server certificate issued 80 days ago (a 90-day one: 10 days left).
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=SERVER_DAYS - 10)
    keeper = CertKeeper(tmp_path / "ws-02", "ws-02", clock=lambda: issued)
    assert keeper.expiry is not None
    async with running_stack() as s:
        await s.ready()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200, body
        await p.get(s.gateway_url + "/dashboard/")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        async with another_agent(s, "ws-02", keeper):
            await p.wait(ROW, 5, "ws-02", "1")
            await p.wait(ROW, 5, "ws-01", "1")
            # ws-01's states as its agent reports them: SAM 2, HPC 2, HC 2; ws-02 not initialised.
            cells = await p.js("return [...document.querySelectorAll(`#ws-table tr[data-ws='ws-01'] td`)].map(td => td.textContent);")
            assert cells[1] == "線上" and cells[3:6] == ["2", "2", "2"], cells
            assert cells[6]  # the agent's version
            assert cells[8] == "—"  # ws-01's agent serves plain HTTP here: no certificate to report
            # ws-02's certificate end as its presence reports it, flagged: under 14 days left.
            cert = await p.js("const c = document.querySelector(`#ws-table tr[data-ws='ws-02'] td:nth-child(9)`); return [c.className, c.dataset.serverNotAfter, c.dataset.caNotAfter, c.textContent];")
            assert cert[:3] == ["warn", str(int(keeper.expiry.serverNotAfter)), str(int(keeper.expiry.caNotAfter))], cert
            assert cert[3].startswith(dt.datetime.fromtimestamp(keeper.expiry.serverNotAfter, dt.UTC).date().isoformat()), cert
            await p.wait("return document.getElementById('m-online').textContent === '2 / 2';", 5)
            await p.shot("dashboard-overview")
        # The ws-02 agent stopped: the page shows it offline, no reload, ws-01 still online.
        await p.js("window.__noReload = 1;")
        await p.wait(ROW, 5, "ws-02", "0")
        assert await p.js("return window.__noReload === 1;")
        await p.wait(ROW, 2, "ws-01", "1")
        await p.shot("dashboard-overview-offline")
        await p.click("#lang")
        await p.wait("return document.querySelector('.brand').textContent === 'Gateway operations';", 2)
        await p.wait("return document.querySelector(`#ws-table tr[data-ws='ws-02'] td:nth-child(2)`).textContent === 'offline';", 5)
        await p.shot("dashboard-overview-en")
        await p.click("#lang")
        # Open on loopback: the page's own POSTs (same origin) pass the foreign-Origin guard.
        await goto(p, "requests")
        await p.type("#r-patient", "Z299999929")
        await p.click("#btn-req")
        await p.wait("return document.querySelectorAll('#req-table tbody tr').length === 1;", 5)
        assert "Z29*****29" in await p.text("#req-table tbody")


class CrashOnce(Transport):
    """The first upstream call dies with an unexpected error (a worker that crashed mid-request)."""

    def __init__(self) -> None:
        self.crashes = 1
        self.inner: AiohttpTransport | None = None

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("worker died mid-request")
        self.inner = self.inner or AiohttpTransport(UpstreamSettings())
        return await self.inner.send(base_url, req)

    async def close(self) -> None:
        if self.inner:
            await self.inner.close()


async def test_operator_logs_in_retries_a_dead_letter_and_reads_the_masked_audit(browser: Any, artifacts_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    cfile = tmp_path / "clients.json"
    his_key = Clients.add(cfile, "his-front-desk", "3501200000", ["ws-*"])
    ops_key = Clients.add(cfile, "ops-alice", None, ["*"], ops=True, all_hospitals=True)
    settings = dict(clients=Clients.load(cfile), transport=CrashOnce(), max_deliveries=1, claim_idle_s=1.0, claim_every_s=0.1)  # reclaimed after the 500 ms deadline: 202 first
    async with running_stack(**settings) as s:
        await s.ready()
        his = {"Authorization": f"Bearer {his_key}", "Idempotency-Key": "web-test-0001", "X-Deadline-Ms": "500"}
        status, body = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={**his, "X-Workstation": "ws-01"})
        # Not finished: its worker died; it stays queued (202), or it was dead-lettered already and its
        # key answered 9402 "dead-lettered, never sent" (max_deliveries=1, reclaimed after 0.3 s).
        assert body["statusCode"] in (9408, 9402), body

        await p.get(s.gateway_url + "/dashboard/#dead")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        # No key yet: the gateway answers 401 and the page asks the operator to log in.
        await p.wait("return !document.getElementById('login').hidden;", 5)
        await p.shot("dashboard-login")
        await p.type("#login-key", ops_key)
        await p.click("#btn-login")
        await p.wait("return document.getElementById('login').hidden;", 5)
        assert ops_key not in await p.js("return document.documentElement.outerHTML;")

        # The entry was delivered once, reclaimed, and dead-lettered (max_deliveries=1).
        await p.wait("return document.querySelectorAll('#dead-table tbody tr').length === 1;", 10)
        row = await p.text("#dead-table tbody tr")
        assert "/api/v1/BasicData/Register" in row and "ws-01" in row
        await p.shot("dashboard-dead")
        calls_before = s.store.calls.get("BasicData/Register", 0)
        await p.click("#dead-table tbody tr button.retry")
        await p.wait("return (document.getElementById('dead-msg').dataset.last || '').startsWith('retry:');", 5)
        await p.wait("return document.querySelectorAll('#dead-table tbody tr').length === 0;", 10)

        # The retried job ran: the HIS asks again with its Idempotency-Key and gets the stored answer.
        for _ in range(100):
            status, body = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={**his, "X-Workstation": "ws-01", "X-Deadline-Ms": "2000"})
            if status != 202:
                break
        assert status == 200 and body["name"] == "測試十", body
        assert s.store.calls["BasicData/Register"] == calls_before + 1  # ran once, not twice
        # A value the HIS chose (its Idempotency-Key) that a spreadsheet would run as a formula.
        formula = '=HYPERLINK("https://evil.example")'
        headers = {**his, "X-Workstation": "ws-01", "Idempotency-Key": formula, "X-Deadline-Ms": "5000"}
        assert (await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=headers))[0] == 200

        # The audit viewer: filtered by workstation and route, the patient masked, no full ID in the page.
        await goto(p, "audit")
        await p.type("#f-ws", "ws-01")
        await p.type("#f-route", "BasicData/Register")
        await p.click("#btn-audit")
        await p.wait("return document.querySelectorAll('#audit-table tbody tr').length >= 1;", 5)
        text = await p.text("#audit-table tbody")
        assert "Z29*****29" in text and "his-front-desk" in text
        assert "Z299999929" not in await p.js("return document.documentElement.outerHTML;")
        await p.type("#f-route", "NoSuchRoute")
        await p.click("#btn-audit")
        await p.wait("return document.querySelectorAll('#audit-table tbody tr').length === 0;", 5)
        await p.type("#f-route", "")
        await p.click("#btn-audit")
        await p.wait("return document.querySelectorAll('#audit-table tbody tr').length >= 1;", 5)
        await p.shot("dashboard-audit")
        # Export: a CSV of the rows shown, patient masked.
        await p.click("#btn-export")
        assert await eventually(lambda: any(browser.downloads.glob("nhigw-audit-*.csv"))), "no CSV downloaded"
        csv_files = list(browser.downloads.glob("nhigw-audit-*.csv"))
        csv = csv_files[0].read_text(encoding="utf-8-sig")
        assert csv.splitlines()[0].startswith("seq,recorded,route") and "Z29*****29" in csv and "Z299999929" not in csv
        cells = [c for row in list(csvlib.reader(io.StringIO(csv)))[1:] for c in row]
        assert "'" + formula in cells and not any(c[:1] in ("=", "+", "-", "@") for c in cells if c)  # neutralised, as text
        # Overview: the latency / error-rate chart from the gateway's history (refreshed every 0.3 s here) while HIS calls run.
        await p.get(s.gateway_url + "/dashboard/?sample_s=0.3#overview")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        before = int(await p.js("return Number(document.getElementById('chart').dataset.requests || 0);"))
        for i in range(4):
            headers = {"Authorization": f"Bearer {his_key}", "X-Workstation": "ws-01", "Idempotency-Key": f"web-test-1{i:03d}"}
            assert ok(await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=headers))
            await p.wait("return Number(document.getElementById('chart').dataset.requests || 0) >= arguments[0];", 5, before + i + 1)
        await p.wait("return Number(document.getElementById('chart').dataset.points || 0) >= 1;", 5)
        assert await p.text("#m-dead") == "0"
        assert await p.text("#m-breaker") == "關閉 (正常)"
        await p.shot("dashboard-overview-ops")
    for name in ("dashboard-login", "dashboard-dead", "dashboard-audit"):
        assert (artifacts_dir / "screenshots" / f"{name}.png").stat().st_size > 5000
