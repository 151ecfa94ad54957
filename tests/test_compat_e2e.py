"""compat end to end: VHC SDK routes and csHis functions over HTTPS, on sim + agent + gateway (``tests/stack.py``).

Compat runs as in production: HTTPS with its self-signed certificate (``nhigw.common.tls``),
component calls to the agent, business calls through the gateway (pass-through) to the
simulator, cards in-process. Buffers are compared with vectors built from the documented
offsets, not with the code's own builders.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nhigw.common.tls import server_context
from nhigw.compat import vhc
from nhigw.compat.app import build
from nhigw.compat.endpoints import COMPAT
from tests.helpers import free_port, insecure_ssl, serving, site_url
from tests.stack import Stack, running_stack

SAM = "sam:001000000103"
HC = "hc:000073898381"  # 測試十, no PIN
HC4 = "hc:000073898382"  # 歐陽測試: a 4-character name
HC_PIN = "hc:000073898383"  # 測試一, PIN 1234
HPC = "hpc:000000329470"  # PIN 12345678


def vec(length: int, *fields: tuple[int, bytes]) -> bytes:
    buf = bytearray(b" " * length)
    for offset, data in fields:
        buf[offset : offset + len(data)] = data
    return bytes(buf)


@dataclass
class Compat:
    url: str
    stack: Stack
    http: aiohttp.ClientSession
    ctx: ssl.SSLContext

    async def raw(self, path: str, body: Any = None, method: str = "POST") -> tuple[int, bytes, str]:
        async with self.http.request(method, self.url + path, json=body if body is not None else {}, ssl=self.ctx) as r:
            return r.status, await r.read(), r.charset or ""

    async def post(self, path: str, body: Any = None) -> dict[str, Any]:
        status, raw, charset = await self.raw(path, body)
        out = json.loads(raw.decode(charset or "utf-8"))
        out["_http"] = status
        return out

    async def cs(self, function: str, **params: Any) -> dict[str, Any]:
        return await self.post(f"/cshis/{function}", params)

    async def ready(self) -> None:
        assert (await self.post("/VHC/VHCcsOpenCom"))["ERRORCODE"] == 0
        assert (await self.cs("csVerifySAMDC"))["ERRORCODE"] == 0

    async def doctor(self) -> None:
        assert (await self.cs("hpcVerifyHPCPIN", pin="12345678"))["ERRORCODE"] == 0


@contextlib.asynccontextmanager
async def compat_stack(tmp_path: Path, *, cards: list[str] | None = None, agent_url: str | None = None, **kw: Any) -> AsyncIterator[Compat]:
    async with running_stack(cards=cards or [SAM, HC, HPC]) as s:
        app = build(agent_url or s.agent_url, s.gateway_url, **kw)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(tmp_path / "compat")).start()
        try:
            yield Compat(site_url(runner, "https"), s, s.http, insecure_ssl())  # one context: connections are reused
        finally:
            await runner.cleanup()


def b5(text: str) -> bytes:
    return text.encode("big5")


async def test_open_com_basic_data_register_basic_close_com(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        assert (await c.post("/VHC/VHCcsOpenCom"))["ERRORCODE"] == 0
        assert c.stack.agent.initialized
        assert (await c.post("/VHC/VHCcsOpenCom"))["ERRORCODE"] == 0  # 6.0 says 1001: still success
        # A physical SAM is not verified behind the HIS's back: 4050 until csVerifySAMDC.
        before = await c.post("/VHC/VHChisGetBasicData")
        assert before["ERRORCODE"] == 4050 and before["statusCode"] == 1301 and before["pBuffer"] == ""
        assert (await c.cs("csVerifySAMDC"))["ERRORCODE"] == 0

        basic = await c.post("/VHC/VHChisGetBasicData")
        expected = vec(72, (0, b"000073898381"), (12, b5("測試十")), (32, b"Z299999929"), (42, b"0920315"), (49, b"F"), (50, b"1050217"), (57, b"1"), (58, b"0223456789"))
        assert basic["ERRORCODE"] == 0
        assert b5(basic["pBuffer"]) == expected

        cs = await c.cs("hisGetBasicData")
        assert bytes.fromhex(cs["pBufferHex"]) == expected and cs["iBufferLen"] == 72

        reg = await c.post("/VHC/VHChisGetRegisterBasic")
        assert b5(reg["pBuffer"]) == expected[:58] + vec(20, (3, b"1201231"), (10, b"06"))  # insurer code and identity mark: empty in the cloud answer
        reg2 = await c.cs("hisGetRegisterBasic2")
        assert bytes.fromhex(reg2["pBufferHex"]) == b"120123106"

        assert (await c.post("/VHC/VHCcsCloseCom"))["ERRORCODE"] == 0
        assert c.stack.agent.initialized  # the SAM verification survives the HIS's open/close per call
        assert (await c.post("/VHC/VHChisGetBasicData"))["ERRORCODE"] == 0
        assert c.stack.store.calls.get("BasicData/Query", 0) >= 3  # through the gateway to the simulator


async def test_close_com_finalizes_when_configured(tmp_path: Path) -> None:
    async with compat_stack(tmp_path, close_com_finalizes=True) as c:
        await c.ready()
        assert (await c.post("/VHC/VHCcsCloseCom"))["ERRORCODE"] == 0
        assert not c.stack.agent.initialized
        assert (await c.post("/VHC/VHChisGetBasicData"))["ERRORCODE"] == 4000  # 6.0 1000 not initialised


async def test_four_character_name_and_variants(tmp_path: Path) -> None:
    async with compat_stack(tmp_path, cards=[SAM, HC4, HPC]) as c:
        await c.ready()
        plain = await c.post("/VHC/VHChisGetBasicData")
        assert b5(plain["pBuffer"])[12:32] == b5("歐陽測試") + b" " * 12
        assert b5(plain["pBuffer"])[42:49] == b"1000101"
        status, raw, charset = await c.raw("/VHC/VHChisGetBasicDataBig5")
        assert status == 200 and charset.lower() == "big5"
        big5 = json.loads(raw.decode("big5"))
        assert big5["ERRORCODE"] == 0 and big5["pBuffer"] == plain["pBuffer"]
        assert b5("歐陽測試") in raw  # the body itself is Big5
        js = await c.post("/VHC/VHChisGetRegisterBasicJson")
        assert js["pBuffer"]["name"] == "歐陽測試" and js["pBuffer"]["cardValidity"] == "1201231"
        status, raw, _ = await c.raw("/vhc/vhchisgetregisterbasicjsonbig5")  # ASP.NET routes are case-insensitive
        assert status == 200 and json.loads(raw.decode("big5"))["pBuffer"]["idCardNum"] == "A234567890"


async def test_sequence_number_256n1_and_rollback(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        await c.ready()
        # pyMedical appends a space to every string parameter.
        res = await c.post("/VHC/VHChisGetSeqNumber256N1", {"cTreatItem": "01 ", "cBabyTreat": " ", "cTreatAfterCheck": "1 "})
        assert res["ERRORCODE"] == 0
        buf = b5(res["pBuffer"])
        assert len(buf) == 316
        when = buf[0:13].decode()
        assert re.fullmatch(r"\d{13}", when) and int(when[:3]) == dt.date.today().year - 1911
        assert re.fullmatch(rb"W\d{3}", buf[13:17])
        assert buf[17:27] == b"3501200000"
        assert buf[283:295] == b"001000000103"
        assert buf[295:296] in (b"Y", b"N")
        assert re.fullmatch(rb"\d{20}", buf[296:316])

        plain = await c.cs("hisGetSeqNumber256", cTreatItem="01")
        assert plain["ERRORCODE"] == 0 and plain["iBufferLen"] == 296
        full = plain["data"]["signature"]  # the whole security signature; the legacy field holds what fits
        assert bytes.fromhex(plain["pBufferHex"])[27:283] == full.encode()[:256].ljust(256)
        assert plain["pBuffer"][:13] >= when

        assert (await c.post("/VHC/VHCcsUnGetSeqNumber", {"pUnTreatDate": when}))["ERRORCODE"] == 0
        again = await c.post("/VHC/VHCcsUnGetSeqNumber", {"pUnTreatDate": when})
        assert again["ERRORCODE"] == 5153 and again["statusCode"] == 3220  # already rolled back
        bad = await c.post("/VHC/VHChisGetSeqNumber256N1", {"cTreatItem": "1"})
        assert bad["ERRORCODE"] == 6018


async def test_card_numbers_hospital_and_date_time(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        await c.ready()
        assert (await c.post("/VHC/VHCcsGetCardNo"))["pBuffer"] == "000073898381"
        assert (await c.cs("csGetCardNo", CardType=1))["pBuffer"] == "001000000103"
        assert (await c.cs("csGetHospID"))["pBuffer"] == "3501200000"
        name = await c.cs("csGetHospName")
        assert bytes.fromhex(name["pBufferHex"]) == b5("臺北虛擬診所")
        assert (await c.cs("csGetCardNo", CardType=7))["ERRORCODE"] == 6018
        assert (await c.cs("hisGetCardStatus", CardType=1))["value"] == 2

        res = await c.post("/VHC/VHCcsGetDateTime")
        assert res["ERRORCODE"] == 0 and re.fullmatch(r"\d{13}", res["pBuffer"])
        roc = res["pBuffer"]
        got = dt.datetime(int(roc[:3]) + 1911, int(roc[3:5]), int(roc[5:7]), int(roc[7:9]), int(roc[9:11]), int(roc[11:13]))
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
        assert abs((now - got).total_seconds()) < 120  # Taiwan time, ROC year


async def test_hc_pin_functions(tmp_path: Path) -> None:
    async with compat_stack(tmp_path, cards=[SAM, HC_PIN, HPC]) as c:
        await c.ready()
        assert (await c.cs("csISSetPIN"))["value"] == 1
        wrong = await c.cs("csVerifyHCPIN", pin="0000")
        assert wrong["ERRORCODE"] == 5102 and wrong["statusCode"] == 1514
        assert (await c.cs("csVerifyHCPIN"))["ERRORCODE"] == 5109  # no PIN given
        assert (await c.cs("csVerifyHCPIN", pin="1234"))["ERRORCODE"] == 0
        assert (await c.cs("csInputHCPIN", newPin="5678"))["ERRORCODE"] == 0
        assert (await c.cs("csDisableHCPIN"))["ERRORCODE"] == 0
        assert (await c.cs("csISSetPIN"))["value"] == 0


async def test_hpc_functions(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        await c.ready()
        assert (await c.cs("hpcGetHPCStatus"))["value"] == 2
        wrong = await c.cs("hpcVerifyHPCPIN", pin="00000000")
        assert wrong["ERRORCODE"] == 5102
        await c.doctor()
        assert (await c.cs("hpcGetHPCStatus"))["value"] == 3
        assert (await c.cs("hpcGetHPCSN"))["pBuffer"] == "000000329470"
        assert (await c.cs("hpcGetHPCSSN"))["pBuffer"] == "C123456789"
        assert bytes.fromhex((await c.cs("hpcGetHPCCNAME"))["pBufferHex"]) == b5("測試醫師")
        assert (await c.cs("csGetCardNo", CardType=2))["pBuffer"] == "000000329470"
        assert (await c.cs("hpcVHPCLogout"))["ERRORCODE"] == 0
        assert (await c.cs("hpcGetHPCStatus"))["value"] == 2
        assert (await c.post("/VHC/VHChisGetCriticalIllness"))["ERRORCODE"] == 4042  # 6.0 1402: HPC PIN not verified


async def test_treatment_and_prescription_writes(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        await c.ready()
        await c.doctor()
        seq = await c.post("/VHC/VHChisGetSeqNumber256N1", {"cTreatItem": "01", "cBabyTreat": "", "cTreatAfterCheck": "1"})
        when = seq["pBuffer"][:13]
        who = {"pDateTime": when, "pPatientID": "Z299999929", "pPatientBirthDate": "0920315"}

        code = await c.post("/VHC/VHChisWriteTreatmentCode", {**who, "pDataWrite": "1" + "J069".ljust(7) + "R05".ljust(7)})
        assert code["ERRORCODE"] == 0 and code["pBufferDocID"] == "C123456789"
        fee = await c.post("/VHC/VHChisWriteTreatmentFee", {**who, "pDataWrite": "520".ljust(8) + "50".ljust(8) + " " * 22})
        assert fee["ERRORCODE"] == 0

        rec = "".join(
            [
                when + "1" + "AC12345100".ljust(12) + " " * 6 + "TID".ljust(18) + "03" + "1234525" + "01",
                when + "1" + "BC23456100".ljust(12) + " " * 6 + "QD".ljust(18) + "28" + "0002800" + "01",
            ]
        )
        one = await c.post("/VHC/VHChisWritePrescriptionSign", {**who, "pDataWrite": rec[:61]})
        assert one["ERRORCODE"] == 0 and re.fullmatch(r"[0-9A-Fa-f]{40}", one["pBuffer"])
        multi = await c.post("/VHC/VHChisWriteMultiPrescriptSign", {**who, "pDataWrite": rec, "iWriteCount": 2})
        assert multi["ERRORCODE"] == 0 and len(multi["pBuffer"]) == 80 and len(multi["signatures"]) == 2

        # The buffers' 7-digit total quantity (5 integer + 2 decimal digits) reached the cloud as 6.0 JSON's decimal.
        read = await c.cs("hisReadPrescriptMain", iStartPos=1, iEndPos=10)
        totals = {(p["treatmentItemCode"], p["totalQuantity"]) for p in read["data"]["outpatientPrescriptions"] if p["treatmentDateTime"] == when}
        assert ("AC12345100", "12345.25") in totals and ("BC23456100", "28.00") in totals

        # Another patient's ID: 5020 and nothing is sent.
        writes = c.stack.store.calls.get("Prescription/Write", 0)
        other = await c.post("/VHC/VHChisWritePrescriptionSign", {**who, "pPatientID": "A234567890", "pDataWrite": rec[:61]})
        assert other["ERRORCODE"] == 5020
        assert c.stack.store.calls.get("Prescription/Write", 0) == writes

        ill = await c.post("/VHC/VHChisGetCriticalIllness10")
        assert ill["ERRORCODE"] == 0
        # newest first (seed: 卡片資料以日期倒排)
        assert b5(ill["pBuffer"])[:46] == vec(46, (0, b"C50.911"), (9, b"1120115"), (16, b"1170114"), (23, b"E10.9"), (32, b"1100301"), (39, b"1150228"))
        nhpc = await c.cs("hisGetTreatmentNeedHPC")
        assert nhpc["iBufferLen"] == 540 and bytes.fromhex(nhpc["pBufferHex"])[138:151] == when.encode()


async def test_virtual_hc_through_uploadqrcode(tmp_path: Path) -> None:
    async with compat_stack(tmp_path, cards=[SAM, HPC]) as c:
        await c.ready()
        status, body = await c.stack.call("POST", c.stack.sim_url + "/test/v1/VirtualHc/QrCode", json={"cardNo": "000073898382"})
        assert status == 200, body
        token = body["token"]
        assert (await c.post("/QRCodeReader/uploadqrcode", {"QRCodeString": token}))["ERRORCODE"] == 0
        basic = await c.post("/VHC/VHChisGetBasicData")
        assert basic["ERRORCODE"] == 0
        assert b5(basic["pBuffer"])[:49] == vec(49, (0, b"000073898382"), (12, b5("歐陽測試")), (32, b"A234567890"), (42, b"1000101"))
        assert (await c.cs("csISSetPIN"))["ERRORCODE"] == 9005  # 6.0 1526: a virtual HC cannot call PIN functions
        again = await c.post("/QRCodeReader/uploadqrcode", {"QRCodeString": token})  # a token verifies again within its bound
        assert again["ERRORCODE"] == 0, again
        for _ in range(8):  # 10 verifications in all (proto/dc-protocol.md), then 1525
            await c.post("/QRCodeReader/uploadqrcode", {"QRCodeString": token})
        reused = await c.post("/QRCodeReader/uploadqrcode", {"QRCodeString": token})
        assert reused["ERRORCODE"] == 4071 and reused["statusCode"] == 1525, reused
        missing = await c.post("/QRCodeReader/uploadqrcode", {})
        assert missing["ERRORCODE"] == 6018
        assert (await c.post("/QRCodeReader/VHCcleanQRCode"))["ERRORCODE"] == 0
        assert (await c.post("/VHC/VHChisGetBasicData"))["ERRORCODE"] == 4013  # logged out: no HC


@pytest.mark.parametrize("route", vhc.UNSUPPORTED, ids=lambda u: u.name)
async def test_unsupported_sdk_routes_answer_the_seeds_reason(tmp_path: Path, route: vhc.VhcUnsupported) -> None:
    async with compat_stack(tmp_path) as c:
        res = await c.post(route.path)
        assert res["_http"] == 400
        assert res["ERRORCODE"] == 9005 and res["statusCode"] == 9406
        assert res["message"] == route.reason and res["function"] == route.name
        assert any(word in res["message"] for word in ("離線", "視訊診療", "UI介面", "6.0的Web API"))


async def test_unsupported_cshis_functions_and_unknown_names(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        old = await c.cs("hisGetSeqNumber", cTreatItem="01")
        assert old["_http"] == 400 and old["ERRORCODE"] == 9005 and "hisGetSeqNumber256" in old["message"]
        assert (await c.cs("hisWriteOrganDonate"))["_http"] == 400
        assert (await c.cs("hisNoSuchThing"))["_http"] == 404
        assert (await c.cs("csGetCardNo", Bogus=1))["ERRORCODE"] == 6018
        status, raw, _ = await c.raw("/VHC/NoSuchRoute")
        assert status == 404 and json.loads(raw)["statusCode"] == 9405
        async with c.http.post(c.url + "/VHC/VHChisGetBasicData", data=b"{nope", headers={"Content-Type": "application/json"}, ssl=c.ctx) as r:
            assert r.status == 400 and (await r.json())["ERRORCODE"] == 6018


async def test_agent_unreachable_is_4000(tmp_path: Path) -> None:
    async with compat_stack(tmp_path, agent_url=f"http://127.0.0.1:{free_port()}") as c:
        res = await c.post("/VHC/VHChisGetBasicData")
        assert res["ERRORCODE"] == 4000 and "cannot reach" in res["messageEn"]


async def test_swagger_ui_and_every_documented_route_is_served(tmp_path: Path) -> None:
    async with compat_stack(tmp_path) as c:
        status, html, _ = await c.raw("/swagger/index.html", method="GET")
        assert status == 200 and b"swagger-ui" in html
        status, js, _ = await c.raw("/swagger/swagger-ui-bundle.js", method="GET")
        assert status == 200 and len(js) > 100_000  # served from the swagger-ui-bundle package, no CDN
        status, doc, _ = await c.raw("/swagger/v1/swagger.json", method="GET")
        paths = json.loads(doc)["paths"]
        assert "/VHC/VHChisGetBasicData" in paths and "/QRCodeReader/uploadqrcode" in paths and "/cshis/{function}" in paths
        for ep in COMPAT:
            path = ep.path.replace("{function}", "csGetHospID")
            status, _raw, _ = await c.raw(path, method=ep.method)
            assert status != 404, ep.path
        status, raw, _ = await c.raw("/cshis", method="GET")
        names = {f["name"] for f in json.loads(raw)["functions"]}
        assert len(names) >= 60
        mapping_table = {
            "hisGetBasicData", "hisGetRegisterBasic", "hisGetRegisterBasic2", "hisGetRegisterPrevent", "hisWriteHealthInsurance",
            "hisGetRegisterPregnant", "hisWritePredeliveryCheckup", "hisDeletePredeliveryData", "hisGetInoculateData", "hisWriteInoculateData",
            "hisGetEmergentTel", "hisWriteEmergentTel", "csVerifyHCPIN", "csInputHCPIN", "csDisableHCPIN", "csISSetPIN", "csUpdateHCContents",
            "csUpdateHCNoReset", "csOpenCom", "csCloseCom", "hisWriteNewBorn", "hisWriteOrganDonate", "hisReadPrescriptAllergic",
            "hisGetTreatmentNeedHPC", "hisGetCumulativeData", "hisGetCumulativeFee", "hisReadPrescription", "hisReadPrescriptLongTerm",
            "hisReadPrescriptHVE", "hisGetOrganDonate", "hisGetLastSeqNum", "hisGetCardStatus", "hisWriteTreatmentCode", "hisWriteTreatmentData",
            "hisWriteTreatmentFee", "hisGetCriticalIllnessID", "hisGetCriticalIllness", "csGetDateTime", "csGetCardNo", "hisGetSeqNumber",
            "hisGetSeqNumber256N1", "hisQuickInsurance", "hisGetTreatNumICCard", "hisGetTreatNumNoICCard", "csVerifySAMDC", "csGetHospID",
            "csGetHospName", "csGetHospAbbName", "csUploadData", "hpcGetHPCStatus", "hpcVerifyHPCPIN", "hpcInputHPCPIN", "hpcUnlockHPC",
            "hpcGetHPCSN", "hpcGetHPCSSN", "hpcGetHPCCNAME", "hpcGetHPCENAME", "hpcVHPCLogout", "hisGetICD10EnC", "hisGetICD10DeC",
            "csGetVersionEx", "csSoftwareReset",
        }
        assert mapping_table <= names


async def test_cs_upload_data_goes_to_the_upload_host_as_6_0_sends_it(tmp_path: Path) -> None:
    """csUploadData posts ``/V2000/VNHI_Upload`` (through the gateway); the out buffer comes from the Opcode."""
    async with compat_stack(tmp_path, cards=[SAM]) as c:
        await c.ready()
        done = await c.cs("csUploadData", pUploadData="<RECS><REC><MSH/></REC></RECS>", sType="A2")
        assert done["ERRORCODE"] == 0, done
        (kept,) = c.stack.store.uploaded
        assert (kept.sType, kept.root) == ("A2", "RECS")
        out = b5(done["pBuffer"])
        assert len(out) == 50 and out[:12] == kept.samId.encode() and out[12:22] == kept.hospitalId.encode() and out[22:36] == kept.opcode[:14].encode()
        refused = await c.cs("csUploadData", pUploadData="<RECS/>", sType="B9")
        assert refused["ERRORCODE"] == 5003, refused  # the upload host's RtnCode (wrong type)
        assert len(c.stack.store.uploaded) == 1


async def test_every_cshis_function_answers_through_the_real_stack(tmp_path: Path) -> None:
    """Each legacy function, in a visit's order, against sim + agent + gateway: the legacy code expected.

    Not here: ``csUploadData`` (``test_cs_upload_data_goes_to_the_upload_host_as_6_0_sends_it``).
    """
    from nhigw.compat.cshis import FUNCTIONS

    async with compat_stack(tmp_path) as c:
        await c.ready()
        await c.doctor()
        when = (await c.cs("hisGetSeqNumber256N1", cTreatItem="01"))["pBuffer"][:13]
        who = {"pPatientID": "Z299999929", "pPatientBirthDate": "0920315"}
        rec = when + "1" + "AC12345100".ljust(12) + " " * 6 + "TID".ljust(18) + "03" + "0000900" + "01"
        calls: list[tuple[str, dict[str, Any], int]] = [
            ("hisGetBasicData", {}, 0), ("hisGetRegisterBasic", {}, 0), ("hisGetRegisterBasic2", {}, 0), ("hisGetRegisterPrevent", {}, 0),
            ("hisGetRegisterPregnant", {}, 0), ("hisGetTreatmentNoNeedHPC", {}, 0), ("hisGetCumulativeData", {}, 0), ("hisGetCumulativeFee", {}, 0),
            ("hisGetTreatmentNeedHPC", {}, 0), ("hisGetSeqNumber", {"cTreatItem": "01"}, 9005), ("hisReadPrescription", {}, 0),
            ("hisGetInoculateData", {}, 0), ("hisGetOrganDonate", {}, 0), ("hisGetEmergentTel", {}, 0), ("hisGetLastSeqNum", {}, 0),
            ("hisGetCardStatus", {"CardType": 3}, 0), ("hisGetCriticalIllness", {}, 0), ("hisGetCriticalIllnessID", who, 0),
            ("hisQuickInsurance", {}, 0), ("hisGetTreatNumICCard", {"pDateTime": when}, 0), ("hisGetTreatNumNoICCard", {"pPatientID": "Z299999929"}, 0),
            ("hisReadPrescriptMain", {}, 0), ("hisReadPrescriptLongTerm", {}, 0), ("hisReadPrescriptHVE", {}, 0), ("hisReadPrescriptAllergic", {}, 0),
            ("hisWriteTreatmentCode", {"pDateTime": when, **who, "pDataWrite": "1 J069"}, 0),
            ("hisWriteTreatmentFee", {"pDateTime": when, **who, "pDataWrite": "100"}, 0),
            ("hisWriteTreatmentData", {"pDateTime": when, **who, "pDataWrite": "1 J069".ljust(54) + "100".ljust(38)}, 0),
            ("hisWritePrescription", {"pDateTime": when, **who, "pDataWrite": rec}, 0),
            ("hisWriteMultiPrescript", {"pDateTime": when, **who, "pDataWrite": rec, "iWriteCount": 1}, 0),
            ("hisWritePrescriptionSign", {"pDateTime": when, **who, "pDataWrite": rec}, 0),
            ("hisWriteMultiPrescriptSign", {"pDateTime": when, **who, "pDataWrite": rec, "iWriteCount": 1}, 0),
            ("hisWriteNewBorn", {**who, "pNewBornDate": when[:7], "pNoOfDelivered": "1"}, 0),
            ("hisWriteNewBorn", {**who, "pNewBornDate": "0990101", "pNoOfDelivered": "1"}, 5004),  # 3206: more than 60 days ago
            ("hisWriteAllergicMedicines", {**who, "data": {"medicine": "IBUPROFEN"}}, 0),
            ("hisWriteAllergicNum", {**who, "data": {"medicine": "ASPIRIN", "index": 3}}, 0),
            ("hisWriteHealthInsurance", {**who, "data": {"preventItem": "21", "checkDate": when[:7]}}, 0),
            ("hisWritePredeliveryCheckup", {**who, "data": {"checkItem": "43", "checkDate": when[:7]}}, 0),
            ("hisDeletePredeliveryData", who, 0),
            ("hisWriteInoculateData", {**who, "data": {"item": "FL", "inoculateDate": when[:7]}}, 0),
            ("hisWriteEmergentTel", {**who, "pDataWrite": "0227654321"}, 0),
            ("hisWriteOrganDonate", who, 9005),
            ("csUpdateHCContents", {}, 0), ("csUpdateHCNoReset", {}, 0),
            ("csVerifyHCPIN", {"pin": "1234"}, 9005),  # 1510: this HC has no PIN
            ("csISSetPIN", {}, 0), ("csInputHCPIN", {"newPin": "4321"}, 0), ("csVerifyHCPIN", {"pin": "4321"}, 0), ("csDisableHCPIN", {}, 0),
            ("csGetDateTime", {}, 0), ("csGetCardNo", {"CardType": 3}, 0), ("csGetVersionEx", {}, 0), ("csGetVersion", {}, 0),
            ("csGetHospID", {}, 0), ("csGetHospName", {}, 0), ("csGetHospAbbName", {}, 0), ("csVerifySAMDC", {}, 0),
            ("hisGetICD10EnC", {"IN": "S72.001A"}, 0), ("hisGetICD10DeC", {"IN": "S7200"}, 0),
            ("hpcGetHPCStatus", {}, 0), ("hpcGetHPCSN", {}, 0), ("hpcGetHPCSSN", {}, 0), ("hpcGetHPCCNAME", {}, 0), ("hpcGetHPCENAME", {}, 0),
            ("hpcVerifyHPCPIN", {"pin": "12345678"}, 0), ("hpcInputHPCPIN", {"newPin": "12345678"}, 0),
            ("hpcUnlockHPC", {"puk": "87654321", "newPin": "12345678"}, 0), ("hpcVerifyHPCPIN", {"pin": "12345678"}, 0), ("hpcVHPCLogout", {}, 0),
            ("csUnGetSeqNumber", {"pUnTreatDate": when}, 5154),  # 3209: treatment data already written (a success for writes, a refusal here)
            ("csSoftwareReset", {"Device": 3}, 0), ("csSoftwareReset", {"Device": 0}, 0), ("csOpenCom", {"ComPort": 0}, 0), ("csCloseCom", {}, 0),
        ]
        got = [(name, (await c.cs(name, **params))["ERRORCODE"], code) for name, params, code in calls]
        assert [g for g in got if g[1] != g[2]] == []
        covered = {name for name, _, _ in calls} | {"hisGetSeqNumber256N1", "csUploadData"}
        assert {f.name for f in FUNCTIONS.values()} - covered == {"hisGetSeqNumber256"}  # in test_sequence_number_256n1_and_rollback


async def test_every_sdk_route_through_a_virtual_card(tmp_path: Path) -> None:
    """The SDK flow with a virtual HC only (no physical HC inserted): every supported route answers 0."""
    async with compat_stack(tmp_path, cards=[SAM, HPC]) as c:
        await c.ready()
        await c.doctor()
        _, qr = await c.stack.call("POST", c.stack.sim_url + "/test/v1/VirtualHc/QrCode", json={"cardNo": "000073898381"})
        assert (await c.post("/QRCodeReader/uploadqrcode", {"QRCodeString": qr["token"] + " "}))["ERRORCODE"] == 0
        first = await c.post("/VHC/VHChisGetSeqNumber256N1", {"cTreatItem": "01", "cBabyTreat": "", "cTreatAfterCheck": "1"})
        undo = await c.post("/VHC/VHChisGetSeqNumber256N1", {"cTreatItem": "01", "cBabyTreat": "", "cTreatAfterCheck": "1"})
        when, undo_when = first["pBuffer"][:13], undo["pBuffer"][:13]
        who = {"pDateTime": when, "pPatientID": "Z299999929", "pPatientBirthDate": "0920315"}
        rec = when + "3" + "33012B".ljust(12) + " " * 6 + " " * 18 + "01" + "0000100" + "03"
        bodies: dict[str, dict[str, Any]] = {
            "/VHC/VHChisGetSeqNumber256N1": {"cTreatItem": "AC"},
            "/VHC/VHCcsUnGetSeqNumber": {"pUnTreatDate": undo_when},
            "/VHC/VHChisWriteTreatmentCode": {**who, "pDataWrite": "1" + "J00".ljust(7)},
            "/VHC/VHChisWriteTreatmentCode10": {**who, "pDataWrite": "1" + "J00".ljust(7) + "R05".ljust(7)},
            "/VHC/VHChisWriteTreatmentFee": {**who, "pDataWrite": "00000520" + "00000050" + "0" * 22},
            "/VHC/VHChisWritePrescriptionSign": {**who, "pDataWrite": rec},
            "/VHC/VHChisWriteMultiPrescriptSign": {**who, "pDataWrite": rec + rec, "iWriteCount": 2},
        }
        skip = {"/QRCodeReader/uploadqrcode", "/QRCodeReader/GetVHCQRCodeCloudToken", "/QRCodeReader/UploadVHCQRCodeCloudToken", "/QRCodeReader/VHCcleanQRCode", "/VHC/VHCcsCloseCom"}
        answers = {r.path: await c.post(r.path, bodies.get(r.path, {})) for r in vhc.ROUTES if r.path not in skip}
        assert {p: a["ERRORCODE"] for p, a in answers.items() if a["ERRORCODE"] != 0} == {}
        assert b5(answers["/VHC/VHChisGetBasicData"]["pBuffer"])[:12] == b"000073898381"
        assert b5(answers["/VHC/VHChisGetBasicData"]["pBuffer"])[58:72] == b"0223456789    "
        assert answers["/VHC/VHChisGetCardStatus"]["pBuffer"] == "2"

        # Transfer: export logs the virtual HC out here; importing the code brings it back.
        exported = await c.post("/QRCodeReader/GetVHCQRCodeCloudToken")
        assert exported["ERRORCODE"] == 0 and exported["pBuffer"]
        assert (await c.post("/VHC/VHChisGetBasicData"))["ERRORCODE"] == 4013
        assert (await c.post("/QRCodeReader/UploadVHCQRCodeCloudToken", {"token": exported["pBuffer"]}))["ERRORCODE"] == 0
        assert (await c.post("/VHC/VHChisGetBasicData"))["ERRORCODE"] == 0
        assert (await c.post("/VHC/VHCcsCloseCom"))["ERRORCODE"] == 0


async def test_a_write_without_an_answer_is_reported_unknown_never_repeated(tmp_path: Path) -> None:
    seen: list[str] = []

    async def silent(req: web.Request) -> web.Response:
        seen.append(req.headers.get("Idempotency-Key", ""))
        await asyncio.sleep(1)
        return web.json_response({"statusCode": 0})

    cloud = web.Application()
    cloud.router.add_post("/api/v1/{path:.+}", silent)
    async with serving(cloud) as cloud_url, running_stack() as s:
        await s.ready()
        from nhigw.client import AgentClient, CloudClient
        from nhigw.compat.cshis import CsHis

        cs = CsHis(AgentClient(s.agent_url), CloudClient(cloud_url, timeout_s=0.3))
        res = await cs.hisGetSeqNumber256N1(cTreatItem="01")
        assert res.code == 9003 and len(seen) == 1 and seen[0] and seen[0] in (res.detail or "")
        read = await cs.hisGetBasicData()
        assert read.code == 4061 and seen[1] == ""  # a read: no answer is "network down", no key needed
        await cs.agent.close()
        await cs.cloud.close()
