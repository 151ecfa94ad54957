"""What production 6.0 HIS code sends for writes (public facts 3.3a), accepted by the simulator:
the HC signature (serviceType 02, no hpcId / hpcIdNo) and the three-card one for the treatment and
prescription writes, ``totalQuantity`` as a decimal string, and a virtual HC QR token verified
for each step of a visit; the upload host's ``/V2000/VNHI_Upload``."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from nhigw.common.roctime import roc_datetime
from nhigw.contracts.codes import Code, StatusError
from nhigw.sim.dc import MAX_VERIFICATIONS, VhcAuthority
from tests.simkit import DOCTOR, HOSPITAL_ID, TEST10, Signer, Sim, running_sim


async def _visit(s: Sim) -> str:
    status, seq = await s.call("SequelNumber/Next", treatmentItem="01")
    assert status == 200 and seq["statusCode"] == 0, seq
    return str(seq["treatmentDateTime"])


def _drug(when: str, code: str, qty: str) -> dict[str, Any]:
    return {"treatmentDateTime": when, "treatmentItem": "1", "treatmentItemCode": code, "usage": "TID", "days": "07", "totalQuantity": qty, "deliveryNotes": "01"}


async def test_treatment_and_prescription_writes_take_the_hc_signature_and_the_three_card_one() -> None:
    async with running_sim() as s:
        when = await _visit(s)
        hc_only = s.signer.sign("02", hc=TEST10, treatmentDateTime=when, afterCheck="1", mainCode="J00", outpatientFee=350)
        assert "hpcId" not in hc_only
        status, body = await s.post("/api/v1/Treatment/WriteCodeFee", hc_only)
        assert (status, body["statusCode"]) == (200, 0), body
        status, body = await s.post("/api/v1/Prescription/Write", s.signer.sign("02", hc=TEST10, treatmentDateTime=when, prescriptions=[_drug(when, "AC12345100", "42.00")]))
        assert (status, body["statusCode"], len(body["hexSignatureItems"])) == (200, 0, 1), body
        # the three-card signature of the same writes is taken too
        when2 = await _visit(s)
        status, body = await s.post("/api/v1/Treatment/WriteCode", s.signer.sign("02", hc=TEST10, hpc=DOCTOR, treatmentDateTime=when2, mainCode="J01"))
        assert (status, body["statusCode"], body["hpcIdNo"]) == (200, 0, DOCTOR["hpcIdNo"]), body
        status, body = await s.post("/api/v1/Prescription/Write", s.signer.sign("02", hc=TEST10, hpc=DOCTOR, treatmentDateTime=when2, prescriptions=[_drug(when2, "AC00001100", "3")]))
        assert body["statusCode"] == 0, body
        # an HC signature signed as if it carried a doctor fails the signature check, not the key check
        forged = s.signer.sign("02", hc=TEST10, treatmentDateTime=when2, mainCode="J02")
        forged.update(DOCTOR)
        assert (await s.post("/api/v1/Treatment/WriteFee", forged))[1]["statusCode"] == 3100
        # a SAM-only signature still lacks the card: 3300; a route with no public evidence keeps the three-card one
        assert (await s.post("/api/v1/Treatment/WriteCodeFee", s.signer.sign("02", treatmentDateTime=when2, mainCode="J00")))[1]["statusCode"] == 3300
        assert (await s.post("/api/v1/Inoculate/Write", s.signer.sign("02", hc=TEST10, item="01", inoculateDate=s.store.today())))[1]["statusCode"] == 3300


async def test_total_quantity_is_the_decimal_string_6_0_sends() -> None:
    async with running_sim() as s:
        when = await _visit(s)
        items = [_drug(when, "AC12345100", "42.00"), {**_drug(when, "33012B", "0000001"), "treatmentItem": "3"}, _drug(when, "BC23456100", "99999.99")]
        status, body = await s.post("/api/v1/Prescription/Write", s.signer.sign("02", hc=TEST10, treatmentDateTime=when, prescriptions=items))
        assert (status, body["statusCode"], len(body["signatureItems"])) == (200, 0, 3), body
        _, read = await s.call("Prescription/Query", endPosition=10)
        assert {(p["treatmentItemCode"], p["totalQuantity"]) for p in read["outpatientPrescriptions"] if p["treatmentDateTime"] == when} == {
            ("AC12345100", "42.00"), ("33012B", "0000001"), ("BC23456100", "99999.99")}
        for bad in ("100000.00", "4.2.0", "42.001", "-1", "12a"):
            _, body = await s.post("/api/v1/Prescription/Write", s.signer.sign("02", hc=TEST10, treatmentDateTime=when, prescriptions=[_drug(when, "AC12345100", bad)]))
            assert body["statusCode"] == 1706, (bad, body)


def test_a_qr_token_verifies_a_bounded_number_of_times_at_the_institution_it_was_shown_to() -> None:
    now = [1000.0]
    dc = VhcAuthority(clock=lambda: now[0])
    token, _ = dc.issue("000073898381", ttl_s=300)
    for _ in range(MAX_VERIFICATIONS):
        assert dc.take(token, "3501200000")[0] == "000073898381"
    with pytest.raises(StatusError) as err:
        dc.take(token, "3501200000")
    assert err.value.code == Code.VHC_TOKEN_COUNT == 1525

    other, _ = dc.issue("000073898381", ttl_s=300)
    card, jti = dc.take(other, "3501200000")
    with pytest.raises(StatusError) as err:
        dc.take(other, "3501299999")  # shown to another institution
    assert err.value.code == Code.VHC_QR_USED
    # transferred away: the transfer code works once, the QR token no more
    code, _ = dc.transfer(dc.open_session(card, "001000000103", jti), "001000000103")
    assert dc.take(code, "3501299999")[0] == card
    for t, want in ((code, Code.VHC_QR_USED), (other, Code.VHC_TOKEN_COUNT)):
        with pytest.raises(StatusError) as err:
            dc.take(t, "3501200000")
        assert err.value.code == want
    late, _ = dc.issue("000073898381", ttl_s=60)
    now[0] += 61
    with pytest.raises(StatusError) as err:
        dc.take(late, "3501200000")
    assert err.value.code == Code.QRCODE_EXPIRED


def _upload(s: Sim, s_type: str = "A2", xml: bytes = b"<RECS><REC><MSH/></REC></RECS>", signer: Signer | None = None, **over: str) -> dict[str, str]:
    sig = (signer or s.signer).sign("30")
    body = {
        "sSamId": sig["samId"], "sHospId": sig["hospitalId"], "sClientRandom": sig["clientRandom"], "sSignature": sig["signature"],
        "sType": s_type, "sPatData": base64.b64encode(xml).decode(), "sUploadDT": roc_datetime(s.store.now()) + "000",
    }
    return {**body, **over}


async def test_vnhi_upload_answers_rtncode_and_opcode_and_keeps_the_parsed_xml() -> None:
    async with running_sim() as s:
        status, ok = await s.post("/V2000/VNHI_Upload", _upload(s, "A2"))
        assert status == 200 and ok["RtnCode"] == "0000", ok
        op = ok["Opcode"]
        assert len(op) == 42 and op[20:30] == HOSPITAL_ID and op[30:42] == s.signer.samId and op[:14].isdigit()
        assert [(u.sType, u.root, u.opcode) for u in s.store.uploaded] == [("A2", "RECS", op)]
        assert (await s.post("/V2000/VNHI_Upload", _upload(s, "A1")))[1]["RtnCode"] == "0000"

        def rtn(body: dict[str, str]) -> Any:
            return s.post("/V2000/VNHI_Upload", body)

        replay = _upload(s)
        assert (await rtn(replay))[1]["RtnCode"] == "0000"
        assert (await rtn(replay))[1]["RtnCode"] == "9002"  # a signature is used once
        bad_sig = _upload(s, sSignature=base64.b64encode(b"\0" * 256).decode())
        assert (await rtn(bad_sig))[1]["RtnCode"] == "9002"
        assert (await rtn(_upload(s, "B9")))[1]["RtnCode"] == "5003"
        assert (await rtn(_upload(s, sHospId="3599999999")))[1]["RtnCode"] == "9005"
        s.store.register_sam("001000099902", "3501200000", s.signer.public_pem())  # another hospital's SAM
        assert (await rtn(_upload(s, sSamId="001000099902")))[1]["RtnCode"] == "5004"
        old = roc_datetime(s.store.now() - dt.timedelta(hours=2)) + "000"
        status, late = await rtn(_upload(s, sUploadDT=old))
        assert (status, late["RtnCode"], late["Opcode"]) == (200, "8203", "") and late["message"] == "簽章已逾 1 小時"
        status, broken = await rtn(_upload(s, xml=b"<RECS><REC>"))
        assert (status, broken["RtnCode"]) == (200, "9999") and "XML" in broken["detail"]
        status, missing = await rtn({"sType": "A2"})
        assert (status, missing["RtnCode"]) == (200, "9999")
        s.store.institutions[HOSPITAL_ID].contract = "cancelled"
        assert (await rtn(_upload(s)))[1]["RtnCode"] == "8205"
        assert len(s.store.uploaded) == 3  # accepted files only
        assert s.store.writes["VNHI_Upload"] == 5  # counted once signed, as every write route (late and broken files too)


async def test_vnhi_upload_reads_big5_xml_as_ic_data_files_are() -> None:
    async with running_sim() as s:
        xml = "<?xml version='1.0' encoding='Big5'?><RECS><REC><MSH><A01>臺北</A01></MSH></REC></RECS>".encode("big5")
        status, ok = await s.post("/V2000/VNHI_Upload", _upload(s, "A2", xml))
        assert (status, ok["RtnCode"]) == (200, "0000"), ok
        assert s.store.uploaded[-1].root == "RECS"
        for bad in (b"<?xml version='1.0' encoding='nonesuch'?><a/>", b"<?xml version='1.0' encoding='Big5'?><a>"):
            status, body = await s.post("/V2000/VNHI_Upload", _upload(s, "A2", bad))
            assert (status, body["RtnCode"]) == (200, "9999") and "XML" in body["detail"], body
