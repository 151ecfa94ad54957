"""Conformance: whole call sequences of a 6.0 HIS, written from the public facts (section 3, 3.3a:
how the one public client calls the 6.0 component and cloud APIs), against a running stack.

``His60`` is that client, written fresh: every call is followed by ``raise_for_status()`` and only
then is ``statusCode`` read (a non-2xx answer is an error the HIS cannot read); the local component
is the agent; the cloud is the simulator, or the gateway in pass-through (the HIS signs at its agent
and posts the signature object), or the gateway in one-call mode (``X-Workstation``, no signature).
Signatures are the ones the client takes (3.3a): ``Signature/Hc`` for registration, numbers and the
writes (serviceType 03 / 02), ``Signature/HpcHc`` for the reads that need the doctor (01), the SAM's
for the upload (30); ``DELETE /api/hc/v1/Logout`` before every HC signature, and for a virtual HC
``Verification/VirtualHc`` with the one scanned token again each time.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from nhigw.common.roctime import roc_datetime
from tests.stack import Stack, running_stack

MODES = ["simulator", "gateway-pass-through", "gateway-one-call"]
SAM, HC, HPC = "sam:001000000103", "hc:000073898381", "hpc:000000329470"  # 測試十 (Z299999929), no HC PIN; HPC PIN 12345678
SIGNATURE_FIELDS = ("clientRandom", "hospitalId", "samId", "signature", "hcId", "hcIdNo", "hpcId", "hpcIdNo")


@dataclass
class His60:
    http: aiohttp.ClientSession
    local: str  # the 6.0 component (https://localhost:5066 on a workstation)
    cloud: str  # the business API's base URL (medvpndc), also the upload host's and the test API's here
    workstation: str | None = None  # one-call mode through the gateway
    token: str | None = None  # the virtual HC QR code the patient showed

    async def _json(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        async with self.http.request(method, url, json=body, headers=headers) as r:
            r.raise_for_status()
            out = await r.json(content_type=None)
        assert isinstance(out, dict)
        return out

    async def component(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return await self._json(method, self.local + path, body)

    async def ok(self, method: str, path: str, body: Any = None, also: tuple[int, ...] = ()) -> dict[str, Any]:
        out = await self.component(method, path, body)
        assert out.get("statusCode", 0) in (0, *also), (path, out)
        return out

    async def open(self) -> None:
        """Status -> Initial (1001 counts as done) -> SAM verification when the SAM is not in state 2."""
        st = (await self.component("GET", "/api/common/v1/Status"))["status"]
        if not st["initialized"]:
            await self.ok("POST", "/api/common/v1/Initial", {}, also=(1001,))
            st = (await self.component("GET", "/api/common/v1/Status"))["status"]
        if st["sam"]["status"] != 2:
            await self.ok("POST", "/api/sam/v1/Verification", {})

    async def doctor(self) -> None:
        st = (await self.component("GET", "/api/common/v1/Status"))["status"]
        if st["hpc"]["status"] != 3:
            await self.ok("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"})

    async def _hc_ready(self) -> None:
        await self.ok("DELETE", "/api/hc/v1/Logout")
        if self.token is not None:
            await self.ok("POST", "/api/hc/v1/Verification/VirtualHc", {"token": self.token})

    async def signature(self, path: str, service_type: str) -> dict[str, Any]:
        sig = await self.ok("POST", path, {"serviceType": service_type})
        return {k: sig[k] for k in SIGNATURE_FIELDS if sig.get(k)}

    async def business(self, route: str, service_type: str, extras: dict[str, Any] | None = None, *, three_card: bool = False) -> dict[str, Any]:
        """One cloud call: the card ready, the signature taken (unless one-call), posted; the answer's JSON."""
        await self._hc_ready()
        body = dict(extras or {})
        headers = None
        if self.workstation:
            headers = {"X-Workstation": self.workstation}
        else:
            body |= await self.signature("/api/hc/v1/Signature/HpcHc" if three_card else "/api/hc/v1/Signature/Hc", service_type)
        return await self._json("POST", f"{self.cloud}/api/v1/{route}", body, headers)

    async def upload(self, s_type: str, xml: bytes, upload_dt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"sType": s_type, "sPatData": base64.b64encode(xml).decode(), "sUploadDT": upload_dt}
        headers = None
        if self.workstation:
            headers = {"X-Workstation": self.workstation}
        else:
            sig = await self.signature("/api/sam/v1/Signature", "30")
            body |= {"sSamId": sig["samId"], "sHospId": sig["hospitalId"], "sClientRandom": sig["clientRandom"], "sSignature": sig["signature"]}
        out = await self._json("POST", f"{self.cloud}/V2000/VNHI_Upload", body, headers)
        assert "RtnCode" in out and "Opcode" in out, out  # the client fails without them
        return out


@contextlib.asynccontextmanager
async def his_on(mode: str, cards: list[str]) -> AsyncIterator[tuple[His60, Stack]]:
    async with running_stack(cards=cards) as s:
        cloud = s.sim_url if mode == "simulator" else s.gateway_url
        yield His60(s.http, s.agent_url, cloud, s.workstation if mode == "gateway-one-call" else None), s


def _visit_fields(seq: dict[str, Any]) -> None:
    for k in ("treatmentDateTime", "sequenceNumber", "hospitalId", "signature", "samId", "isSameDay", "treatmentNumber"):
        assert k in seq, (k, seq)
    assert len(seq["treatmentDateTime"]) == 13 and isinstance(seq["isSameDay"], bool)


def _drugs(when: str) -> list[dict[str, Any]]:
    """Two prescription lines as the client formats them: a drug with f"{qty:.2f}", a treatment with "0000001"."""
    return [
        {"days": "07", "deliveryNotes": "01", "totalQuantity": f"{21:.2f}", "treatmentDateTime": when, "treatmentItem": "1", "treatmentItemCode": "AC12345100", "treatmentPosition": "", "usage": "TID"},
        {"days": "01", "deliveryNotes": "03", "totalQuantity": "0000001", "treatmentDateTime": when, "treatmentItem": "3", "treatmentItemCode": "33012B", "treatmentPosition": "", "usage": ""},
    ]


def _signature_items(pw: dict[str, Any], n: int) -> list[str]:
    """The client reads ``hexSignatureItems``, or converts ``signatureItems`` (base64) to hex."""
    b64 = pw["signatureItems"]
    hexes = pw.get("hexSignatureItems") or [base64.b64decode(x).hex().upper() for x in b64]
    assert len(b64) == len(hexes) == n
    assert [base64.b64decode(x).hex().upper() for x in b64] == [h.upper() for h in hexes]
    return hexes


@pytest.mark.parametrize("mode", MODES)
async def test_registration(mode: str) -> None:
    async with his_on(mode, [SAM, HC, HPC]) as (his, _s):
        await his.open()
        reg = await his.business("BasicData/Register", "01")
        assert reg["statusCode"] == 0, reg
        for k in ("cardSn", "name", "idCardNum", "birthday", "sex", "dateIssue", "cancelTermination", "insurerCode", "insurerId", "cardValidity", "treatmentCounter"):
            assert k in reg, (k, reg)
        assert (reg["cardSn"], reg["name"], reg["idCardNum"], reg["birthday"]) == ("000073898381", "測試十", "Z299999929", "0920315")
        again = await his.component("POST", "/api/common/v1/Initial", {})  # the HIS opens the port again: 1001, read as done
        assert again["statusCode"] == 1001, again


@pytest.mark.parametrize("mode", MODES)
async def test_visit_writes_the_treatment_and_two_prescriptions_and_gets_their_signatures(mode: str) -> None:
    async with his_on(mode, [SAM, HC, HPC]) as (his, s):
        await his.open()
        await his.doctor()  # the doctor's card is verified (state 3); the writes still go with the HC signature
        seq = await his.business("SequelNumber/Next", "03", {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
        assert seq["statusCode"] == 0, seq
        _visit_fields(seq)
        when = seq["treatmentDateTime"]
        fees = {"outpatientFee": 420, "costFee": 50, "inpatientFee": 0, "inpatient30Fee": 0, "inpatient180Fee": 0}
        codes = {"mainCode": "J00", "subCode1": "R05", "subCode2": "", "subCode3": "", "subCode4": "", "subCode5": ""}
        wcf = await his.business("Treatment/WriteCodeFee", "02", {"afterCheck": "1", "treatmentDateTime": when, **codes, **fees})
        assert wcf["statusCode"] == 0, wcf
        # the HIS sends it again (its answer was lost): 3209 「已寫入診斷碼」, which the client reads as done
        again = await his.business("Treatment/WriteCodeFee", "02", {"afterCheck": "1", "treatmentDateTime": when, **codes, **fees})
        assert again["statusCode"] == 3209, again
        pw = await his.business("Prescription/Write", "02", {"treatmentDateTime": when, "prescriptions": _drugs(when)})
        assert pw["statusCode"] == 0, pw
        assert all(len(h) == 40 for h in _signature_items(pw, 2))
        # the reads that need the doctor's card go with the three-card signature and show what was written
        need = await his.business("Treatment/NeedHPC", "01", {"format": "0"}, three_card=True)
        assert need["treatments"][0]["treatDateTime"] == when and need["treatments"][0]["mainCode"] == "J00", need
        rx = await his.business("Prescription/Query", "01", three_card=True)
        mine = {(p["treatmentItemCode"], p["totalQuantity"]) for p in rx["outpatientPrescriptions"] if p["treatmentDateTime"] == when}
        assert mine == {("AC12345100", "21.00"), ("33012B", "0000001")}
        assert s.store.writes.get("Treatment/WriteCodeFee") == 2 and s.store.writes.get("Prescription/Write") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_virtual_card_visit(mode: str) -> None:
    async with his_on(mode, [SAM, HPC]) as (his, s):  # no physical health card: the patient shows a QR code
        await his.open()
        await his.doctor()
        qr = await his._json("POST", f"{his.cloud}/test/v1/VirtualHc/QrCode", {"cardNo": "000073898381"})  # the cloud's test API, same base URL
        token = qr["token"]
        basic = await his.ok("POST", "/api/hc/v1/VirtualHc/ReadBasic", {"token": token})
        assert (basic["cardId"], basic["name"], basic["idNo"], basic["birthday"], basic["sex"]) == ("000073898381", "測試十", "Z299999929", "0920315", "F")
        his.token = token  # from here: Logout -> Verification/VirtualHc {the same token} before every HC signature
        reg = await his.business("BasicData/Register", "01")
        assert reg["statusCode"] == 0 and reg["idCardNum"] == "Z299999929", reg
        seq = await his.business("SequelNumber/Next", "03", {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
        other = await his.business("SequelNumber/Next", "03", {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
        assert seq["statusCode"] == other["statusCode"] == 0 and seq["treatmentDateTime"] != other["treatmentDateTime"]
        _visit_fields(seq)
        when = seq["treatmentDateTime"]
        wcf = await his.business("Treatment/WriteCodeFee", "02", {"afterCheck": "1", "treatmentDateTime": when, "mainCode": "J06.9", "outpatientFee": 350})
        assert wcf["statusCode"] in (0, 3209), wcf
        pw = await his.business("Prescription/Write", "02", {"treatmentDateTime": when, "prescriptions": _drugs(when)})
        assert pw["statusCode"] == 0, pw
        _signature_items(pw, 2)
        back = await his.business("SequelNumber/Rollback", "03", {"treatmentDateTime": other["treatmentDateTime"]})
        assert back["statusCode"] == 0, back
        st = (await his.component("GET", "/api/common/v1/Status"))["status"]
        assert st["hc"]["status"] == 2 and st["hc"]["virtual"] is True
        p = s.store.patients_by_id["Z299999929"]
        assert [t.rolledBack for t in p.treatments if t.treatDateTime in (when, other["treatmentDateTime"])] == [False, True]


@pytest.mark.parametrize("mode", MODES)
async def test_daily_upload_pre_check_then_formal(mode: str) -> None:
    async with his_on(mode, [SAM]) as (his, s):
        await his.open()
        xml = "<?xml version='1.0' encoding='Big5'?><RECS><REC><MSH><A00>1</A00><A01>3501200000</A01></MSH></REC></RECS>".encode("big5")
        got = []
        for s_type in ("A2", "A1"):  # the pre-check first, then the formal upload of the same file
            out = await his.upload(s_type, xml, roc_datetime(s.store.now()) + "000")
            assert out["RtnCode"] in ("0000", 0), out
            got.append(out["Opcode"])
        sam = await his.component("GET", "/api/sam/v1/Basic")
        assert all(op[20:30] == sam["hospitalId"] and op[30:42].strip() == sam["samId"] for op in got)
        assert [(u.sType, u.root, u.opcode) for u in s.store.uploaded] == [("A2", "RECS", got[0]), ("A1", "RECS", got[1])]


@pytest.mark.parametrize("mode", MODES)
async def test_card_update_and_retry_on_5003(mode: str) -> None:
    async with his_on(mode, [SAM, HC]) as (his, s):
        s.store.patients_by_id["Z299999929"].cardValidity = "1100101"  # the card's validity has passed
        await his.open()
        args = {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"}
        seq = await his.business("SequelNumber/Next", "03", args)
        assert seq["statusCode"] == 5003, seq
        upd = await his.business("HcContent/Update", "04")
        assert upd["statusCode"] == 0, upd
        seq = await his.business("SequelNumber/Next", "03", args)  # the retry, with a new signature
        assert seq["statusCode"] == 0, seq
        _visit_fields(seq)
        assert s.store.patients_by_id["Z299999929"].cardValidity > s.store.today()
