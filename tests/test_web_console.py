"""The agent's web console in a real headless Chromium, against the running stack.

What a clinic user does: connect the device, verify the SAM, verify the HPC PIN through
the page; a card pulled out and put back shows in the status bar within 2 seconds,
without reloading (the SSE stream). A screenshot of every page goes to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nhigw.agent.mobilehca import MobileHcaVerifier
from nhigw.common.tls import CertKeeper
from nhigw.contracts.api import AGENT
from tests.helpers import Proc, free_port
from tests.pcsc import Pcscd
from tests.stack import running_stack
from tests.test_agent_mobilehca import login, make_ca, make_leaf
from tests.web_browser import Page, browser  # noqa: F401  (fixture)

PAGES = ["common", "sam", "hca", "hc", "settings", "swagger", "about"]
STATE = "return document.getElementById(arguments[0]).dataset.state === arguments[1];"


async def goto(p: Page, page: str) -> None:
    await p.click(f'.sidebar a[data-page="{page}"]')
    await p.wait(f"return document.getElementById('page-{page}').classList.contains('active');", 5)


async def test_console_live_card_events_and_hpc_pin_through_the_page(browser: Any, artifacts_dir: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    async with running_stack() as s:
        await p.get(s.agent_url + "/console/")
        await p.wait("return document.body.dataset.ready === '1' && document.getElementById('sb-live').classList.contains('on');", 10)
        assert await p.text("#sb-device") == "未連接"
        assert await p.text("#sb-hc") == "無健保卡 0"

        # Common: connect the device (POST /api/common/v1/Initial, the HIS's own call).
        await p.click("#btn-initial")
        await p.wait(STATE, 5, "sb-device", "1")
        await p.wait(STATE, 2, "sb-hc", "1")
        assert await p.text("#sb-sam") == "安全模組 1"
        assert s.agent.initialized

        # SAM: verify with the data centre; HC becomes ready (2), HPC can be verified (2).
        await goto(p, "sam")
        await p.click("#btn-sam-verify")
        await p.wait(STATE, 5, "sb-sam", "2")
        await p.wait(STATE, 2, "sb-hc", "2")
        assert await p.text("#sb-sam") == "安全模組 2"
        assert await p.text("#sb-hpc") == "醫事人員卡 2"
        # The state table beside the action shows which needs are met now.
        assert await p.js("return document.querySelector('#page-hca td[data-need=\"hpc:2\"]').classList.contains('ok');")

        # HCA: a wrong PIN is refused with its code and tries left; the right one gives state 3.
        await goto(p, "hca")
        await p.type("#hpc-pin", "11111111")
        await p.click("#btn-hpc-verify")
        await p.wait("return document.getElementById('res-hpc').classList.contains('err');", 5)
        assert '"triesLeft"' in await p.text("#res-hpc")
        assert (await p.text("#sb-hpc")).endswith(" 2")
        await p.type("#hpc-pin", "12345678")
        await p.click("#btn-hpc-verify")
        await p.wait(STATE, 5, "sb-hpc", "3")
        assert '"statusCode": 0' in await p.text("#res-hpc")
        assert s.agent.hpc_state == 3
        assert await p.text("#st-hpc") == "已驗 PIN (3)"
        assert await p.text("#st-sam") == "已驗證 (2)"
        # The PIN stays nowhere in the page (input cleared; the record holds function and result only).
        assert "12345678" not in await p.js("return document.documentElement.outerHTML + JSON.stringify([...document.querySelectorAll('input,textarea')].map(e => e.value));")
        await p.wait("return document.getElementById('rec-table').textContent.includes('POST /api/hpc/v1/Verification/Hpc');", 5)

        # HC: pull the card out and put it back: the status bar follows within 2 s, no reload.
        await goto(p, "hc")
        await p.js("window.__noReload = 1;")
        hc_reader = s.bank.names[1]
        card = s.bank.cards[hc_reader]
        s.bank.remove(hc_reader)
        took_out = await p.wait(STATE, 2.0, "sb-hc", "0")
        assert await p.text("#sb-hc") == "無健保卡 0"
        s.bank.insert(hc_reader, card)
        took_in = await p.wait(STATE, 2.0, "sb-hc", "2")
        assert await p.js("return window.__noReload === 1;")  # same document: it was pushed, not reloaded
        print(f"console saw removal in {took_out * 1000:.0f} ms, insertion in {took_in * 1000:.0f} ms")

        await p.click("#btn-hc-basic")
        await p.wait("return document.querySelector('#kv-hc dd[data-k=name]').textContent === '測試十';", 5)
        await p.click("#btn-sig-hpchc")
        await p.wait("return document.getElementById('res-sig-hc').textContent.includes('\"hpcId\"');", 5)
        assert '"hcId": "000073898381"' in await p.text("#res-sig-hc")

        # HC PIN: none set; set one, verify it, disable it, all through the page's PIN card.
        await p.click("#btn-hcpin-query")
        await p.wait("return document.getElementById('hc-pinset').textContent === '否';", 5)
        await p.type("#hc-pin", "1234")
        await p.click("#btn-hcpin-set")
        await p.wait("return document.getElementById('st-pinset').textContent === '是';", 5)
        await p.type("#hc-pin", "1234")
        await p.click("#btn-hcpin-verify")
        await p.wait("return document.getElementById('st-pinok').textContent === '是';", 5)
        await p.click("#btn-hcpin-clear")
        await p.wait("return document.getElementById('st-pinset').textContent === '否';", 5)
        assert '"statusCode": 0' in await p.text("#res-hcpin")

        # Swagger: the component API listed from the OpenAPI document, the event stream among it.
        await goto(p, "swagger")
        await p.wait("return document.querySelectorAll('#sw-table tbody tr').length >= arguments[0];", 5, len(AGENT))
        assert "/api/common/v1/Events" in await p.text("#sw-table")

        for page in PAGES:
            await goto(p, page)
            await p.shot(f"console-{page}")

        # English on the toggle; the live state is re-labelled, not lost.
        await p.click("#lang")
        await p.wait("return document.querySelector('.brand').textContent === 'Reader control console';", 2)
        assert await p.text("#sb-sam") == "SAM 2"
        assert await p.text("#sb-hpc") == "HPC 3"
        await goto(p, "common")
        await p.shot("console-common-en")
        await p.click("#lang")

        # Release the device (Finalize): every state back to 0 in the status bar.
        await goto(p, "common")
        await p.click("#btn-finalize")
        await p.wait(STATE, 5, "sb-device", "0")
        for pill in ("sb-sam", "sb-hpc", "sb-hc"):
            await p.wait(STATE, 2, pill, "0")
        assert not s.agent.initialized
    for page in PAGES:
        assert (artifacts_dir / "screenshots" / f"console-{page}.png").stat().st_size > 5000


async def test_console_with_no_physical_card_cloud_sam_mobile_hca_and_virtual_hc(browser: Any, artifacts_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """No physical card at all: the cloud SAM file, the mobile HCA login and the QR string go in through the page."""
    p = Page(browser, artifacts_dir / "screenshots")
    async with running_stack(cards=[]) as s:
        # The agent trusts a test HCA CA (files in its hca dir, as an operator drops them in place).
        ca, ca_key = make_ca("NHIGW Web Test HCA CA")
        (tmp_path / "hca" / "trusted").mkdir(parents=True)
        (tmp_path / "hca" / "trusted" / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        s.agent.hca_verifier = lambda: MobileHcaVerifier.from_dir(tmp_path / "hca")
        status, sam_file = await s.call("POST", s.sim_url + "/test/v1/CloudSam/Issue", json={"hospitalId": "3501200000"})
        assert status == 200, sam_file
        path = tmp_path / "cloud.sam.json"
        path.write_text(json.dumps(sam_file, ensure_ascii=False), encoding="utf-8")

        s.agent.tls = CertKeeper(tmp_path / "agent", "ws-01")  # as `nhigw agent` runs its HTTPS
        await p.get(s.agent_url + "/console/#settings")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        # The HTTPS certificates' ends, as the agent's files say.
        ends = [dt.datetime.fromtimestamp(x509.load_pem_x509_certificate(f.read_bytes()).not_valid_after_utc.timestamp(), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                for f in (tmp_path / "agent" / "tls.crt", tmp_path / "agent" / "ca.crt")]
        await p.wait("return [...document.querySelectorAll('#kv-tls dd')].map(d => d.textContent).join('|') === arguments[0];", 5, "|".join(ends))
        # Settings: the readers and CORS hosts the agent has; the file imported through the file input.
        await p.wait("return [...document.querySelectorAll('#reader-list option')].some(o => o.value === arguments[0]);", 5, s.bank.names[0])
        await p.wait("return document.getElementById('cors-hosts').value.includes('*.nhi.gov.tw');", 5)
        await p.js("document.getElementById('reader-list').value = arguments[0];", s.bank.names[0])
        await p.click("#btn-reader-save")
        await p.wait("return document.getElementById('reader-current').textContent === arguments[0];", 5, s.bank.names[0])
        assert (await s.agent_call("GET", "/api/common/v1/Settings"))[1]["defaultReader"] == s.bank.names[0]
        await p.type("#cloudsam-file", str(path))
        await p.click("#btn-cloudsam-import")
        await p.wait("return document.getElementById('cloudsam-table').textContent.includes(arguments[0]);", 10, sam_file["samId"])
        assert "臺北虛擬診所" in await p.text("#cloudsam-table")
        # CORS hosts saved through the page are the agent's settings.
        await p.js("document.getElementById('cors-hosts').value = '*.nhi.gov.tw\\nhis.clinic.lan';")
        await p.click("#btn-cors-save")
        await p.wait("return document.getElementById('res-cors').textContent.includes('his.clinic.lan');", 5)
        _, settings = await s.agent_call("GET", "/api/common/v1/Settings")
        assert "his.clinic.lan" in settings["corsHosts"]
        await p.shot("console-settings-imported")

        # Common: connect the cloud SAM by its ID; it verifies itself (SAM 2).
        await p.get(s.agent_url + "/console/#common")
        await p.wait("return [...document.querySelectorAll('#device-list option')].some(o => o.value === arguments[0]);", 5, sam_file["samId"])
        await p.js("document.getElementById('device-list').value = arguments[0];", sam_file["samId"])
        await p.click("#btn-initial")
        await p.wait(STATE, 10, "sb-sam", "2")
        assert await p.text("#st-device") == sam_file["samId"]
        assert await p.text("#sb-sam") == "雲端安全模組 2"  # as the seed's status bar says it

        # HCA: a mobile HCA login pasted into the page (no physical HPC): HCA state 3. Signed now:
        # the agent refuses a login older than its clock skew (the helper's NOW is import time).
        leaf, leaf_key = make_leaf(ca, ca_key)
        await goto(p, "hca")
        await p.js("document.getElementById('mobile-json').value = arguments[0];", json.dumps(login(leaf, leaf_key, at=dt.datetime.now(dt.UTC).replace(microsecond=0))))
        await p.click("#btn-mobile")
        await p.wait(STATE, 5, "sb-hpc", "3")
        assert '"statusCode": 0' in await p.text("#res-mobile")

        # HC: a virtual HC from its QR string; then basic data, the PIN question and a signature.
        _, qr = await s.call("POST", s.sim_url + "/test/v1/VirtualHc/QrCode", json={"cardNo": "000073898382"})
        await goto(p, "hc")
        await p.js("document.getElementById('vhc-token').value = arguments[0];", qr["token"])
        await p.click("#btn-vhc")
        await p.wait(STATE, 5, "sb-hc", "2")
        assert await p.text("#sb-hc") == "虛擬健保卡 2"
        await p.click("#btn-hc-basic")
        await p.wait("return document.querySelector('#kv-hc dd[data-k=name]').textContent === '歐陽測試';", 5)
        await p.click("#btn-sig-hpchc")  # the three-card signature: cloud SAM + mobile HCA + virtual HC
        await p.wait("return document.getElementById('res-sig-hc').textContent.includes('\"hcId\": \"000073898382\"');", 5)
        assert '"hpcIdNo": "C123456789"' in await p.text("#res-sig-hc")
        # A virtual HC has no PIN functions: the page shows the agent's code, not a crash.
        await p.click("#btn-hcpin-query")
        await p.wait("return document.getElementById('res-hcpin').textContent.includes('statusCode');", 5)
        # The webcam button degrades: headless Chromium has no camera.
        await p.click("#btn-scan")
        await p.wait("return document.getElementById('res-vhc').textContent.length > 0 && !document.getElementById('res-vhc').textContent.includes('\"statusCode\": 0');", 5)
        await p.shot("console-hc-virtual")
        # The record is the agent's own (GET /api/common/v1/Record), with the failed call's code.
        await p.wait("return document.getElementById('rec-table').textContent.includes('POST /api/hc/v1/Verification/VirtualHc');", 5)
        _, rec = await s.agent_call("GET", "/api/common/v1/Record")
        assert any(r["function"] == "POST /api/hc/v1/Verification/VirtualHc" and r["result"] == "0000" for r in rec["records"])


@pytest.mark.pcsc
async def test_console_over_real_pcsc_sees_a_card_pulled_and_put_back_within_2_s(browser: Any, artifacts_dir: Path, pcscd: Pcscd, tmp_path: Path) -> None:  # noqa: F811
    """``nhigw agent --pcsc`` (HTTPS) and ``nhigw vcard`` as processes, cards in vpcd slots of a real pcscd."""
    p = Page(browser, artifacts_dir / "screenshots")
    ports = {n: free_port() for n in ("sim", "vcard", "agent")}
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    vcard = f"http://127.0.0.1:{ports['vcard']}"
    procs: list[Proc] = []
    try:
        procs.append(Proc("sim", ["sim", "--port", str(ports["sim"])], tmp_path).wait_ready())
        procs.append(Proc("vcard", ["vcard", "--port", str(ports["vcard"]), "--sim", sim_url, "--data-dir", str(tmp_path / "data"),
                                    "--slot", "0=sam:001000000103", "--slot", "1=hc:000073898381"], tmp_path).wait_ready())
        procs.append(Proc("agent", ["agent", "--pcsc", "--port", str(ports["agent"]), "--workstation", "ws-web", "--cloud", sim_url,
                                    "--data-dir", str(tmp_path / "data")], tmp_path).wait_ready())
        await p.get(f"https://127.0.0.1:{ports['agent']}/console/")
        await p.wait("return document.body.dataset.ready === '1' && document.getElementById('sb-live').classList.contains('on');", 10)
        await p.click("#btn-initial")
        await p.wait(STATE, 10, "sb-device", "1")
        await p.wait(STATE, 5, "sb-hc", "1")
        async with aiohttp.ClientSession() as http:
            async with http.delete(vcard + "/slots/1") as r:
                assert r.status == 200
            took_out = await p.wait(STATE, 2.0, "sb-hc", "0")
            async with http.put(vcard + "/slots/1", json={"card": "hc:000073898381"}) as r:
                assert r.status == 200
            took_in = await p.wait(STATE, 2.0, "sb-hc", "1")
        print(f"over pcscd: removal shown in {took_out * 1000:.0f} ms, insertion in {took_in * 1000:.0f} ms")
        await p.shot("console-common-pcsc")
    finally:
        for proc in reversed(procs):
            proc.stop()
