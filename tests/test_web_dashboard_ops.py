"""The dashboard's ops pages in a real headless Chromium, on a real Redis, against a real simulator,
agent and gateway: the overview's history, the request browser, dead letters and roles.

- Overview: HIS requests go through replica A before any page is open; the page, served by replica B
  (no workers, same Redis), shows them at once in the latency / error chart and the per-route table
  (count, errors, p50 / p99), and the device-session count.
- Request browser: the operator types a patient's full national ID; the page finds that patient's
  records (and only theirs), shows the ID masked, and keeps it nowhere (page, storage, Redis).
- Dead letters: a write sent to the cloud whose worker then died, and reads whose worker died
  before sending, are dead-lettered; the page shows a dead letter's history (time, replica, outcome,
  code, Server-Timing phases), runs a bulk retry bounded by the count the operator types (the cloud
  sees exactly that many more reads, the write is never among them), and the write is sent again
  only through the explicit "resend anyway" decision, recorded in the audit with its note.
- Roles: a viewer sees no action button, an operator no client administration, an admin the clients;
  a viewer of another hospital sees none of this hospital's requests or dead letters.
A screenshot of each page goes to ``$NHIGW_ARTIFACTS/screenshots/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nhigw.bus.redis import RedisBus
from nhigw.gateway.app import create_app as gateway_app
from nhigw.gateway.auth import Clients, Role
from nhigw.gateway.service import Gateway, GatewaySettings
from nhigw.gateway.upstream import AiohttpTransport, Transport, UpstreamRequest, UpstreamResponse, UpstreamSettings
from tests.helpers import eventually, serving
from tests.stack import Stack, running_stack
from tests.test_gateway_browse import redis_values
from tests.test_gateway_service import PASS_BODY
from tests.test_secrets_scan import find_secrets
from tests.web_browser import Page, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.redis

HOSP, OTHER = "3501200000", "3501209999"
READ, WRITE = "/api/v1/BasicData/Query", "/api/v1/EmergentTel/Write"
ROWS = "return document.querySelectorAll(arguments[0] + ' tbody tr').length === arguments[1];"


def keys(f: Path) -> dict[str, str]:
    return {
        "his": Clients.add(f, "his-front-desk", HOSP, ["ws-*"]),
        "viewer": Clients.add(f, "desk-viewer", HOSP, ["*"], role=Role.VIEWER),
        "operator": Clients.add(f, "it-operator", HOSP, ["*"], role=Role.OPERATOR),
        "admin": Clients.add(f, "it-admin", HOSP, ["*"], role=Role.ADMIN),
        "elsewhere": Clients.add(f, "other-viewer", OTHER, ["*"], role=Role.VIEWER),
    }


async def login(p: Page, url: str, key: str) -> None:
    """Open ``url`` in a fresh tab state (no key), log in with ``key``, wait for the page to know the role."""
    await p.js("try { sessionStorage.removeItem('nhigw.opkey'); } catch (e) {}")  # the last login's key (this origin's tab storage)
    await p.get("about:blank")  # a real load below, not a hash change within the page
    await p.get(url)
    await p.wait("return document.body.dataset.ready === '1';", 10)
    await p.wait("return !document.getElementById('login').hidden;", 5)
    await p.type("#login-key", key)
    await p.click("#btn-login")
    await p.wait("return document.getElementById('login').hidden && !!document.body.dataset.role;", 5)
    assert key not in await p.js("return document.documentElement.outerHTML;")


async def in_time_order(p: Page) -> bool:
    ats = await p.js("return [...document.querySelectorAll('#dd-history tbody tr')].map(tr => tr.dataset.at);")
    return bool(ats) and all(ats) and ats == sorted(ats)


async def tabs(p: Page) -> list[str]:
    return list(await p.js("return [...document.querySelectorAll('.tabs a')].filter(a => !a.hidden).map(a => a.dataset.page);"))


async def goto(p: Page, page: str) -> None:
    await p.click(f'.tabs a[data-page="{page}"]')
    await p.wait(f"return document.getElementById('page-{page}').classList.contains('active');", 5)


@contextlib.asynccontextmanager
async def replica(s: Stack, redis_url: str, prefix: str, gateway_key: bytes, clients: Clients) -> AsyncIterator[str]:
    """A second gateway replica on the same Redis, serving the API and the dashboard, running no workers."""
    bus = RedisBus(redis_url)
    gw = Gateway(bus, GatewaySettings(prefix=prefix, gateway_key=gateway_key, clients=clients, cloud_url=s.sim_url))
    try:
        async with serving(gateway_app(gw, workers=False)) as url:
            yield url
    finally:
        await bus.close()


async def test_overview_history_request_browser_and_roles(browser: Any, artifacts_dir: Path, redis_server: str, bus_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    f = tmp_path / "clients.json"
    k = keys(f)
    his = {"Authorization": f"Bearer {k['his']}"}
    gateway_key = os.urandom(32)
    bus = RedisBus(redis_server)
    try:
        async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=gateway_key, clients=Clients.load(f)) as s, replica(s, redis_server, bus_prefix, gateway_key, Clients.load(f)) as b_url:
            await s.ready()
            # Before any page is open: 5 registrations of the card's patient at ws-01 (answered 0) and
            # 3 pass-through queries for another patient that the cloud refuses (a made-up signature).
            for i in range(5):
                st, body = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={**his, "X-Workstation": "ws-01", "Idempotency-Key": f"reg-{i}"})
                assert st == 200 and body["idCardNum"] == "Z299999929", body
            for i in range(3):
                st, body = await s.call("POST", s.gateway_url + READ, json={**PASS_BODY, "hcIdNo": "A234567890"}, headers={**his, "Idempotency-Key": f"q-{i}"})
                assert st == 200 and body["statusCode"] != 0, body
            viewer = {"Authorization": f"Bearer {k['viewer']}"}

            async def b_sees_all() -> bool:  # replica A's counts reach Redis within its flush interval
                _st, h = await s.call("GET", b_url + "/api/ops/history?hours=1", headers=viewer)
                return sum(pt["count"] for pt in h.get("points", [])) == 8

            assert await eventually(b_sees_all, timeout_s=10)

            # The overview on replica B, opened now: the 8 earlier requests are in the chart and the table.
            await login(p, b_url + "/dashboard/#overview", k["viewer"])
            await p.wait("return document.getElementById('chart').dataset.requests === '8';", 5)
            assert await p.js("return document.getElementById('chart').dataset.errors;") == "3"
            assert int(await p.js("return Number(document.getElementById('chart').dataset.points);")) >= 1
            assert int(await p.js("return document.querySelectorAll('#chart polyline.lat')[0].getAttribute('points').split(' ').filter(Boolean).length;")) >= 1
            await p.wait(ROWS, 5, "#route-table", 2)
            rows = await p.js("return [...document.querySelectorAll('#route-table tbody tr')].map(tr => [...tr.children].map(td => td.textContent));")
            by_route = {r[0]: r for r in rows}
            assert by_route["BasicData/Register"][1:4] == ["5", "0", "0.0%"], rows
            assert by_route["BasicData/Query"][1:4] == ["3", "3", "100.0%"], rows
            assert all(r[4] != "—" and r[5] != "—" and float(r[4]) <= float(r[5]) for r in rows), rows  # p50 <= p99, in ms
            await p.wait("return document.getElementById('m-sessions').textContent === '0';", 5)  # the device-session gauge
            await p.wait("return document.querySelector(`#ws-table tr[data-ws='ws-01']`)?.dataset.online === '1';", 5)
            assert "desk-viewer" in await p.text("#who") and HOSP in await p.text("#who")
            await p.shot("ops-overview-history")

            # Request browser: the full ID typed in finds that patient's 5 records; the page shows it masked only.
            assert await tabs(p) == ["overview", "requests", "dead", "audit"]  # a viewer: no client administration
            await goto(p, "requests")
            await p.type("#r-patient", "Z299999929")
            await p.click("#btn-req")
            await p.wait(ROWS, 5, "#req-table", 5)
            cells = await p.js("return [...document.querySelectorAll('#req-table tbody tr')].map(tr => [...tr.children].map(td => td.textContent));")
            assert {(c[1], c[2], c[4], c[6]) for c in cells} == {("BasicData/Register", "ws-01", "Z29*****29", "✓")}, cells
            assert "Z29*****29" in await p.text("#req-asked")
            assert await p.js("return document.getElementById('r-patient').value;") == ""
            assert "Z299999929" not in await p.js("return document.documentElement.outerHTML + JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + location.href;")
            await p.shot("ops-request-browser")
            await p.type("#r-patient", " a234567890 ")  # as typed: spaces, lower case
            await p.click("#btn-req")
            await p.wait(ROWS, 5, "#req-table", 3)
            text = await p.text("#req-table tbody")
            assert "A23*****90" in text and "✓" not in text and "Z29" not in text, text
            await p.type("#r-patient", "C123456789")
            await p.click("#btn-req")
            await p.wait(ROWS, 5, "#req-table", 0)
            await p.js("document.getElementById('r-outcome').value = 'ok';")
            await p.type("#r-ws", "ws-01")
            await p.click("#btn-req")
            await p.wait(ROWS, 5, "#req-table", 5)
            # Each search by patient is an audit record of the viewer, with the masked ID only.
            st, page = await s.call("GET", s.gateway_url + "/api/audit?limit=1000&order=desc", headers=viewer)
            searches = [(r["client"], r["patient"]) for r in page["records"] if r["route"] == "ops/requests/search"]
            assert searches == [("desk-viewer", "C12*****89"), ("desk-viewer", "A23*****90"), ("desk-viewer", "Z29*****29")], searches
            stored = await redis_values(redis_server, bus_prefix)
            assert "Z29*****29" in stored and find_secrets(stored, []) == []
            assert "Z299999929" not in stored and "A234567890" not in stored

            # A viewer of another hospital: none of these requests, in the chart or in the browser.
            await login(p, b_url + "/dashboard/#overview", k["elsewhere"])
            await p.wait("return document.getElementById('chart').dataset.requests === '0';", 5)
            assert await p.js("return document.querySelectorAll('#route-table tbody tr').length;") == 0
            await goto(p, "requests")
            await p.type("#r-patient", "Z299999929")
            await p.click("#btn-req")
            await p.wait("return document.getElementById('req-msg').textContent.startsWith('0 ');", 5)
            assert await p.js("return document.querySelectorAll('#req-table tbody tr').length;") == 0
            # The operator: no client administration either; the admin: its hospital's clients, in English.
            await login(p, b_url + "/dashboard/", k["operator"])
            assert await tabs(p) == ["overview", "requests", "dead", "audit"]
            await login(p, b_url + "/dashboard/#admin", k["admin"])
            assert await tabs(p) == ["overview", "requests", "dead", "audit", "admin"]
            await p.wait(ROWS, 5, "#clients-table", 4)  # its hospital's clients; not the other hospital's viewer
            names = await p.js("return [...document.querySelectorAll('#clients-table tbody tr')].map(tr => tr.dataset.name).sort();")
            assert names == ["desk-viewer", "his-front-desk", "it-admin", "it-operator"], names
            await p.click("#lang")
            await p.wait("return document.querySelector('.brand').textContent === 'Gateway operations';", 2)
            await p.shot("ops-admin-en")
            await p.click("#lang")
    finally:  # on a failure too: an open client left to the collector fails a later test
        await bus.close()
    for name in ("ops-overview-history", "ops-request-browser", "ops-admin-en"):
        assert (artifacts_dir / "screenshots" / f"{name}.png").stat().st_size > 5000


class CrashingWorker(Transport):
    """Until ``healed``: a read's worker dies before sending; a write's after the cloud executed it."""

    def __init__(self) -> None:
        self.healed = False
        self.inner = AiohttpTransport(UpstreamSettings())

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        if self.healed:
            return await self.inner.send(base_url, req)
        if req.write:
            await self.inner.send(base_url, req)
            raise RuntimeError("worker died after the cloud executed the write")
        raise RuntimeError("worker died before sending")

    async def close(self) -> None:
        await self.inner.close()


async def test_dead_letter_history_bounded_bulk_retry_and_the_recorded_resend(browser: Any, artifacts_dir: Path, redis_server: str, bus_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    f = tmp_path / "clients.json"
    k = keys(f)
    his = {"Authorization": f"Bearer {k['his']}", "X-Workstation": "ws-01", "X-Deadline-Ms": "100"}
    op = {"Authorization": f"Bearer {k['operator']}"}
    transport = CrashingWorker()
    bus = RedisBus(redis_server)
    settings: dict[str, Any] = dict(
        clients=Clients.load(f), transport=transport, max_deliveries=1, claim_idle_s=0.5, claim_every_s=0.05,
        upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6, backoff_base_s=0.001),
    )
    try:
        async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), **settings) as s:
            await s.ready()
            # The oldest dead letter: a write the cloud executed before its worker died. Then 12 reads never sent.
            await s.call("POST", s.gateway_url + WRITE, json={"tel": "0912345678"}, headers={**his, "Idempotency-Key": "w-0"})
            assert await eventually(lambda: s.store.writes.get("EmergentTel/Write", 0) == 1, timeout_s=10)
            await asyncio.gather(*(s.call("POST", s.gateway_url + READ, json={}, headers={**his, "Idempotency-Key": f"r-{i:02d}"}) for i in range(12)))

            async def dead() -> list[dict[str, Any]]:
                return list((await s.call("GET", s.gateway_url + "/api/ops/dead-letters", headers=op))[1]["deadLetters"])

            async def all_dead() -> bool:
                return len(await dead()) == 13

            assert await eventually(all_dead, timeout_s=30)
            letters = await dead()
            write_id = next(d["id"] for d in letters if d["job"]["write"])
            read_id = next(d["id"] for d in letters if not d["job"]["write"])
            assert s.store.calls.get("BasicData/Query", 0) == 0
            transport.healed = True

            # The operator's dead-letter page: a write that may have landed offers resend, never a plain retry.
            await login(p, s.gateway_url + "/dashboard/#dead", k["operator"])
            assert "admin" not in await tabs(p)
            await p.wait(ROWS, 10, "#dead-table", 13)
            wrow = f"#dead-table tr[data-id='{write_id}']"
            assert await p.js(f"return document.querySelector(`{wrow}`).dataset.maybe;") == "1"
            assert await p.js(f"return [...document.querySelectorAll(`{wrow} button`)].map(b => b.className);") == ["details", "resend", "discard"]
            assert await p.js(f"return [...document.querySelectorAll(`#dead-table tr[data-id='{read_id}'] button`)].map(b => b.className);") == ["details", "retry", "discard"]
            await p.shot("ops-dead-letters")

            # One read's history: the delivery that failed (replica, error, phases) and its dead-lettering.
            await p.click(f"#dead-table tr[data-id='{read_id}'] button.details")
            await p.wait("return document.getElementById('dd-history').dataset.count === '2' && document.getElementById('dead-detail').dataset.id === arguments[0];", 5, read_id)
            hist = await p.js("return [...document.querySelectorAll('#dd-history tbody tr')].map(tr => [tr.dataset.event, ...[...tr.children].map(td => td.textContent)]);")
            # In time order; a worker stalled past claim_idle_s may record its failure after the reclaim dead-lettered it.
            assert sorted(h[0] for h in hist) == ["dead-lettered", "failed"] and await in_time_order(p), hist
            failed = next(h for h in hist if h[0] == "failed")
            assert failed[3] == s.gateway.instance and failed[4] == "1" and "cloud" in failed[7] and failed[9].startswith("RuntimeError: worker died before sending"), failed
            # The write's: its send (from its attempted marker), the failed delivery, dead-lettered 9403, and what to check.
            await p.js("location.hash = arguments[0];", f"#dead/{write_id}")
            await p.wait("return document.getElementById('dead-detail').dataset.id === arguments[0] && document.getElementById('dd-history').dataset.count === '3';", 5, write_id)
            hist = await p.js("return [...document.querySelectorAll('#dd-history tbody tr')].map(tr => [tr.dataset.event, ...[...tr.children].map(td => td.textContent)]);")
            assert await in_time_order(p) and hist[0][0] == "sent" and sorted(h[0] for h in hist[1:]) == ["dead-lettered", "failed"], hist
            assert hist[0][3] == s.gateway.instance and next(h for h in hist if h[0] == "dead-lettered")[5] == "9403", hist
            assert "EmergentTel/Query" in await p.text("#dd-reconcile")
            assert await p.js("return [document.getElementById('dd-retry').hidden, document.getElementById('resend-form').hidden, document.getElementById('btn-resend').disabled];") == [True, False, True]
            await p.shot("ops-dead-letter-history")

            # Bulk retry bounded by the count the operator types: exactly 5 reads go to the cloud, no write.
            await p.js("location.hash = '#dead';")
            await p.wait("return document.getElementById('dead-detail').hidden;", 5)
            await p.type("#bulk-max", "5")
            await p.click("#btn-bulk")
            await p.wait("return document.getElementById('bulk-msg').dataset.retried === '5';", 10)
            assert await p.js("return document.getElementById('bulk-msg').dataset.needDecision;") == "1"
            assert await eventually(lambda: s.store.calls.get("BasicData/Query", 0) == 5, timeout_s=10)
            await p.wait(ROWS, 10, "#dead-table", 8)
            await p.shot("ops-bulk-retry")
            assert s.store.calls.get("BasicData/Query", 0) == 5 and s.store.writes["EmergentTel/Write"] == 1

            # The explicit decision: checked, with a note; the write is sent once more, and the decision is recorded.
            await p.js("location.hash = arguments[0];", f"#dead/{write_id}")
            await p.wait("const d = document.getElementById('dead-detail'); return !d.hidden && d.dataset.id === arguments[0] && !document.getElementById('resend-form').hidden;", 5, write_id)
            await p.click("#lang")  # English: the decision form stays as it was
            await p.wait("return document.getElementById('btn-resend').textContent === 'Resend anyway' && !document.getElementById('resend-form').hidden;", 2)
            await p.click("#lang")
            await p.click("#resend-ok")
            await p.type("#resend-note", "EmergentTel/Query showed no new number")
            await p.click("#btn-resend")
            await p.wait("return document.getElementById('dd-msg').dataset.last === arguments[0] || document.getElementById('dead-msg').dataset.last === arguments[0];", 5, f"resend:{write_id}")
            assert await eventually(lambda: s.store.writes.get("EmergentTel/Write", 0) == 2, timeout_s=10)
            await p.wait(ROWS, 10, "#dead-table", 7)
            records = (await s.call("GET", s.gateway_url + "/api/audit?limit=1000", headers=op))[1]["records"]
            resends = [r for r in records if r["route"] == "ops/dead-letters/resend"]
            assert len(resends) == 1 and resends[0]["client"] == "it-operator" and "showed no new number" in resends[0]["note"], resends
            assert len([r for r in records if r["route"] == "ops/dead-letters/retry"]) == 5
            # Discard one read from its row (the page asks first).
            await p.js("window.confirm = () => true;")
            gone = (await dead())[0]["id"]
            await p.click(f"#dead-table tr[data-id='{gone}'] button.discard")
            await p.wait(ROWS, 10, "#dead-table", 6)

            # A viewer: the same list and history, no action anywhere.
            await login(p, s.gateway_url + "/dashboard/#dead", k["viewer"])
            await p.wait(ROWS, 10, "#dead-table", 6)
            assert await p.js("return [...document.querySelectorAll('#dead-table button')].map(b => b.className);") == ["details"] * 6
            assert await p.js("return document.getElementById('bulk-form').hidden;")
            some = (await dead())[0]["id"]
            await p.js("location.hash = arguments[0];", f"#dead/{some}")
            await p.wait("return document.getElementById('dead-detail').dataset.id === arguments[0] && Number(document.getElementById('dd-history').dataset.count) >= 2;", 5, some)
            visible = await p.js("return [...document.querySelectorAll('#page-dead button, #page-dead form')].filter(e => e.offsetParent !== null).map(e => e.id || e.className);")
            assert visible == ["details"] * 6, visible
            await p.shot("ops-dead-letter-viewer")
            await goto(p, "overview")
            await p.wait("return document.getElementById('m-dead').textContent === '6';", 5)
            # A viewer of another hospital: none of them, in the list or the overview's count.
            await login(p, s.gateway_url + "/dashboard/#dead", k["elsewhere"])
            await p.wait("return document.getElementById('dead-table').dataset.count === '0';", 5)
            await goto(p, "overview")
            await p.wait("return document.getElementById('m-dead').textContent === '0';", 5)
    finally:  # on a failure too: an open client left to the collector fails a later test
        await transport.close()
        await bus.close()
    for name in ("ops-dead-letters", "ops-dead-letter-viewer", "ops-dead-letter-history", "ops-bulk-retry"):
        assert (artifacts_dir / "screenshots" / f"{name}.png").stat().st_size > 5000
