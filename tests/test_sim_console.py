"""The simulator's developer console (``/console/``): what the cloud received and why it refused.

In a real headless Chromium against the stack (sim, agent with virtual cards, gateway): the page
says the admin API is off until it is on; then signatures taken from the agent are posted to the
simulator: a registration that passes, the same signed body again (3245: the clientRandom check
fails), a signature sent with another SAM's ID (3100: the SAM check fails) and a test card applied
with the SAM's signature. The page shows each refusal with its failed check and reason, in Chinese
and in English, the decoded body masked (no full national ID, no full signature in the page), and
the test card in the institution's table. Screenshots in ``$NHIGW_ARTIFACTS/screenshots/``.
Without a browser: the ring is bounded, ``after`` pages it, and an upload's file is shown decoded
and masked.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp

from nhigw.common.roctime import roc_datetime
from nhigw.sim.app import create_app
from nhigw.sim.store import SimStore
from tests.helpers import serving
from tests.simkit import Signer
from tests.stack import running_stack
from tests.web_browser import Page, browser  # noqa: F401  (fixture)

SAM, HC = "sam:001000000103", "hc:000073898381"  # 測試十 (Z299999929)
ROW = "return document.querySelector(`#req-table tr.row[data-code='${arguments[0]}']`) !== null;"


def _sig_fields(sig: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sig.items() if k in ("signature", "clientRandom", "samId", "hospitalId", "hcId", "hcIdNo") and v}


async def test_console_shows_a_reused_signature_and_a_wrong_sam_with_their_reasons(browser: Any, artifacts_dir: Path) -> None:  # noqa: F811
    p = Page(browser, artifacts_dir / "screenshots")
    async with running_stack(cards=[SAM, HC]) as s:
        s.store.admin_enabled = False
        await p.get(s.sim_url + "/console/?poll_ms=200")
        await p.wait("return document.body.dataset.ready === '1';", 10)
        await p.wait("return !document.getElementById('off').hidden;", 5)  # protected as the admin API is
        assert "9411" in await p.text("#off-msg")
        await p.shot("sim-console-admin-off")
        s.store.admin_enabled = True
        await p.wait("return document.getElementById('off').hidden;", 5)

        await s.ready()
        sig = (await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"}))[1]
        body = _sig_fields(sig)
        assert (await s.call("POST", s.sim_url + "/api/v1/BasicData/Register", json=body))[1]["statusCode"] == 0
        assert (await s.call("POST", s.sim_url + "/api/v1/BasicData/Register", json=body))[1]["statusCode"] == 3245  # the same signature again
        other = _sig_fields((await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"}))[1])
        wrong = {**other, "samId": "001000099999"}  # a SAM this institution does not have
        assert (await s.call("POST", s.sim_url + "/api/v1/BasicData/Register", json=wrong))[1]["statusCode"] == 3100
        sam_sig = (await s.agent_call("POST", "/api/sam/v1/Signature", json={"serviceType": "06"}))[1]
        card = {"sex": "F", "birthday": "0800101", "isForeigner": False, **{k: sam_sig[k] for k in ("signature", "clientRandom", "samId", "hospitalId")}}
        applied = (await s.call("POST", s.sim_url + "/test/v1/ApplyVirtualHc/Apply", json=card))[1]
        assert applied["statusCode"] == 0, applied

        await p.wait(ROW, 5, "3245")
        await p.wait(ROW, 5, "3100")
        reused = "#req-table tr.row[data-code='3245']"
        assert await p.js(f"return document.querySelector(\"{reused} .ck[data-check='clientRandom']\").classList.contains('bad');")
        assert "clientRandom 未曾使用" in await p.text(f"{reused} td.reason") and "3245" in await p.text(f"{reused} td.reason")
        wrong_sam = "#req-table tr.row[data-code='3100']"
        assert await p.js(f"return document.querySelector(\"{wrong_sam} .ck[data-check='sam']\").classList.contains('bad');")
        assert "unknown SAM for this institution" in await p.text(f"{wrong_sam} td.reason")
        passed = await p.js("return [...document.querySelectorAll('#req-table tr.row.passed td:nth-child(3)')].map(td => td.textContent);")
        assert "POST /api/v1/BasicData/Register" in passed and "POST /test/v1/ApplyVirtualHc/Apply" in passed
        # The test card applied through the API, in the institution's table (the SAM's institution is chosen first).
        await p.wait("return document.querySelector(`#tc-table tr[data-card='${arguments[0]}']`) !== null;", 5, applied["cardSn"])
        assert await p.js("return document.getElementById('hosp').value;") == sam_sig["hospitalId"]
        patient = await p.text("#pt-table tr[data-card='000073898381']")
        assert "測試十" in patient and "Z29*****29" in patient

        await p.click(reused)
        await p.wait("return document.querySelector('#req-table tr.detail') !== null;", 5)
        detail = await p.text("#req-table tr.detail")
        assert '"hcIdNo": "Z29*****29"' in detail and "已使用過" in detail
        html = await p.js("return document.documentElement.outerHTML;")
        assert "Z299999929" not in html and body["signature"] not in html and body["signature"][:8] in html
        assert applied["idCardNum"] not in html
        await p.shot("sim-console-refused")
        await p.click("#only-refused")
        await p.wait("return document.querySelectorAll('#req-table tr.row.passed').length === 0 && document.querySelectorAll('#req-table tr.row.refused').length === 2;", 5)
        await p.click("#lang")
        await p.wait("return document.querySelector('.brand').textContent.startsWith('NHI cloud simulator');", 2)
        await p.wait(f"return document.querySelector(\"{reused} td.reason\").textContent.includes('clientRandom not used before');", 2)
        await p.shot("sim-console-refused-en")
        await p.click("#lang")
    for name in ("sim-console-admin-off", "sim-console-refused", "sim-console-refused-en"):
        assert (artifacts_dir / "screenshots" / f"{name}.png").stat().st_size > 5000


async def test_the_ring_is_bounded_pages_by_seq_and_shows_an_upload_decoded_and_masked() -> None:
    store = SimStore.seeded()
    store.admin_enabled = True
    signer = Signer()
    store.register_sam(signer.samId, signer.hospitalId, signer.public_pem())
    async with serving(create_app(store, console_requests=5)) as url, aiohttp.ClientSession() as http:
        for _ in range(6):
            async with http.post(url + "/api/v1/BasicData/Register", json=signer.for_route("BasicData/Register")) as r:
                assert (await r.json())["statusCode"] == 0
        xml = "<?xml version='1.0' encoding='Big5'?><RECS><REC><MSH><A00>1</A00><A01>Z299999929</A01><A02>測試</A02></MSH></REC></RECS>".encode("big5")
        sig = signer.sign("30")
        upload = {"sType": "A2", "sPatData": base64.b64encode(xml).decode(), "sUploadDT": roc_datetime(store.now()) + "000",
                  "sSamId": sig["samId"], "sHospId": sig["hospitalId"], "sClientRandom": sig["clientRandom"], "sSignature": sig["signature"]}
        async with http.post(url + "/V2000/VNHI_Upload", json=upload) as r:
            assert (await r.json())["RtnCode"] == "0000"
        async with http.get(url + "/test/v1/Console/Requests") as r:
            out = await r.json()
        assert out["max"] == 5 and [x["seq"] for x in out["requests"]] == [3, 4, 5, 6, 7]
        up = out["requests"][-1]
        assert up["path"] == "/V2000/VNHI_Upload" and up["statusCode"] == "0000"
        assert "<A01>Z29*****29</A01>" in up["body"]["sPatData"] and "測試" in up["body"]["sPatData"]
        assert [c["name"] for c in up["checks"] if c["ok"]] == ["serviceType", "sam", "contract", "cardIds", "signature", "clientRandom"]
        text = json.dumps(out, ensure_ascii=False)
        assert "Z299999929" not in text and sig["signature"] not in text and sig["clientRandom"] not in text
        async with http.get(url + "/test/v1/Console/Requests?after=6") as r:
            assert [x["seq"] for x in (await r.json())["requests"]] == [7]
        async with http.get(url + "/test/v1/Console/Requests?after=x") as r:
            assert r.status == 200 and (await r.json())["statusCode"] == 1706  # a 6.0-coded refusal: HTTP 200
        async with http.get(url + "/test/v1/Console/Overview?hospitalId=0000000000") as r:
            assert (await r.json())["statusCode"] == 1706
        store.admin_enabled = False
        async with http.get(url + "/test/v1/Console/Requests") as r:
            assert r.status == 403 and (await r.json())["statusCode"] == 9411
        # a body the services' JSON parser refuses (nesting) is kept as cut text; the caller still gets its clean refusal
        store.admin_enabled = True
        async with http.post(url + "/api/v1/BasicData/Register", data="[" * 5000 + "]" * 5000, headers={"Content-Type": "application/json"}) as r:
            refused = await r.json()
        async with http.get(url + "/test/v1/Console/Requests?after=7") as r:
            (rec,) = (await r.json())["requests"]
        assert rec["statusCode"] == refused["statusCode"] and rec["body"].startswith("[[[[") and rec["body"].endswith("[")  # the first MAX_TEXT bytes


async def test_with_a_state_file_the_cloud_state_survives_a_restart_and_the_console_list_starts_empty(tmp_path: Path) -> None:
    from nhigw.sim.persist import StateFile

    signer = Signer()
    for round_ in (1, 2):
        store = SimStore.seeded()
        store.admin_enabled = True
        state = StateFile(tmp_path / "sim.db")
        app = create_app(store, state)
        if round_ == 1:
            store.register_sam(signer.samId, signer.hospitalId, signer.public_pem())
        async with serving(app) as url, aiohttp.ClientSession() as http:
            async with http.get(url + "/test/v1/Console/Requests") as r:
                before = (await r.json())["requests"]
            async with http.post(url + "/api/v1/BasicData/Register", json=signer.for_route("BasicData/Register")) as r:
                assert (await r.json())["statusCode"] == 0  # the SAM registered before the restart is still known
            async with http.get(url + "/test/v1/Console/Requests") as r:
                after = (await r.json())["requests"]
        state.close()
        assert before == [] and [x["seq"] for x in after] == [1]  # this process's traffic only
    assert store.calls["BasicData/Register"] == 2  # the counts were kept
