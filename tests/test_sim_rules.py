"""The simulator's business rules, driven over real HTTP with signatures of the test's own SAM.

(``tests/test_sim_routes.py`` drives every route with signatures from real virtual cards.)
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path

import pytest

from nhigw.common.roctime import roc_datetime
from nhigw.contracts.routes import ROUTES
from nhigw.sim.dc import VhcAuthority
from nhigw.sim.persist import StateFile
from nhigw.sim.store import SimStore
from tests.helpers import ok
from tests.simkit import DOCTOR, HOSPITAL_ID, TEST10, Signer, running_sim

E2 = {"hcId": "000073898391", "hcIdNo": "E200000007"}  # card validity passed, no visits left
F3 = {"hcId": "000073898392", "hcIdNo": "F100000006"}  # no visits left
G4 = {"hcId": "000073898393", "hcIdNo": "G200000009"}  # not insured
H5 = {"hcId": "000073898394", "hcIdNo": "H100000008"}  # cancelled card
OUYANG = {"hcId": "000073898382", "hcIdNo": "A234567890"}  # male


async def test_card_data_comes_newest_first_with_start_and_end_positions() -> None:
    async with running_sim() as s:
        _, all_ = await s.call("Prescription/Query")
        dates = [x["treatmentDateTime"] for x in all_["outpatientPrescriptions"]]
        assert all_["recordCount"] == 4 and dates == sorted(dates, reverse=True)
        _, first = await s.call("Prescription/Query", startPosition=1, endPosition=1)
        assert first["outpatientPrescriptions"] == all_["outpatientPrescriptions"][:1] and first["recordCount"] == 4
        _, mid = await s.call("Prescription/Query", startPosition=2, endPosition=3)
        assert mid["outpatientPrescriptions"] == all_["outpatientPrescriptions"][1:3]
        _, tail = await s.call("Treatment/NoNeedHPC", startPosition=3)
        _, treatments = await s.call("Treatment/NoNeedHPC")
        assert tail["treatments"] == treatments["treatments"][2:] and len(tail["treatments"]) == 1
        assert [t["treatDateTime"] for t in treatments["treatments"]] == ["1130301100000", "1130102093000", "1120815140000"]
        status, bad = await s.call("Inoculate/Query", startPosition=3, endPosition=2)
        assert status == 200 and bad["statusCode"] == 1706
        status, bad = await s.call("Inoculate/Query", startPosition=0)
        assert status == 200 and bad["statusCode"] == 1706
        # a new allergy becomes position 1
        assert ok(await s.call("AllergicMedicines/Write", medicine="IBUPROFEN"))
        _, al = await s.call("AllergicMedicines/Query", endPosition=1)
        assert al["allergicMedicines"][0]["medicine"] == "IBUPROFEN" and al["allergicMedicines"][0]["index"] == 3 and al["recordCount"] == 3


async def test_sequence_numbers_are_w_numbers_per_institution_per_day_and_visits_are_used() -> None:
    async with running_sim() as s:
        _, a = await s.call("SequelNumber/Next", treatmentItem="01")
        _, b = await s.call("SeqNumber/Next", treatmentItem="01")  # the seed's spelling: same counter
        assert (a["sequenceNumber"], b["sequenceNumber"]) == ("W001", "W002")
        assert a["isSameDay"] is False and b["isSameDay"] is True
        assert len(a["treatmentNumber"]) == 20 and a["treatmentNumber"].startswith(HOSPITAL_ID) and a["treatmentNumber"] != b["treatmentNumber"]
        assert a["treatmentDateTime"] != b["treatmentDateTime"] and len(a["treatmentDateTime"]) == 13
        assert len(base64.b64decode(a["signature"])) == 256
        # AA (course of treatment) takes no sequence number and no visit
        _, r2 = await s.call("BasicData/Register2")
        _, c = await s.call("SequelNumber/Next", treatmentItem="AA")
        assert c["sequenceNumber"] == "" and len(c["treatmentNumber"]) == 20
        assert (await s.call("BasicData/Register2"))[1]["treatmentCounter"] == r2["treatmentCounter"] == "04"
        # another institution has its own counter
        other = Signer(samId="001000099902", hospitalId="3501288888")
        s.store.register_sam(other.samId, other.hospitalId, other.public_pem())
        s.signer = other
        _, d = await s.call("SequelNumber/Next", treatmentItem="01", hc=OUYANG)
        assert d["sequenceNumber"] == "W001"
        _, last = await s.call("SequalNumber/Last", hc=OUYANG)
        assert (last["sequenceNumber"], last["treatmentDateTime"], last["hospitalId"]) == ("W001", d["treatmentDateTime"], "3501288888")


@pytest.mark.parametrize("on_file", [False, True], ids=["memory", "state-file"])
async def test_fifty_concurrent_next_calls_give_w001_to_w050_without_gaps_or_duplicates(on_file: bool, tmp_path: Path) -> None:
    state = StateFile(tmp_path / "sim.db") if on_file else None
    async with running_sim(state=state) as s:
        s.store.patients_by_id["Z299999929"].treatmentCounter = "99"
        results = await asyncio.gather(*(s.call("SequelNumber/Next", treatmentItem="01") for _ in range(50)))
        assert all(status == 200 for status, _ in results), results
        seqs = sorted(body["sequenceNumber"] for _, body in results)
        assert seqs == [f"W{i:03d}" for i in range(1, 51)]
        assert len({body["treatmentNumber"] for _, body in results}) == 50
        assert len({body["treatmentDateTime"] for _, body in results}) == 50
        assert s.store.patients_by_id["Z299999929"].treatmentCounter == "49"
    if state is not None:  # the file holds the same 50 visits
        again = SimStore.seeded()
        assert StateFile(tmp_path / "sim.db").load_into(again, VhcAuthority())
        assert again.seq_counters == s.store.seq_counters and max(again.seq_counters.values()) == 50
        assert again.patients_by_id["Z299999929"] == s.store.patients_by_id["Z299999929"]
        assert state.saves == 50  # one transaction per answered call


async def test_card_rules_on_next() -> None:
    async with running_sim() as s:
        assert (await s.call("SequelNumber/Next", hc=E2))[1]["statusCode"] == 5003  # card validity passed: update the card
        assert (await s.call("SequelNumber/Next", hc=F3))[1]["statusCode"] == 3213  # no visits left
        assert ok(await s.call("SequelNumber/Next", hc=F3, treatmentItem="AC"))  # preventive care takes no visit
        assert (await s.call("SequelNumber/Next", hc=G4))[1]["statusCode"] == 3228  # not insured
        assert (await s.call("SequelNumber/Next", hc=H5))[1]["statusCode"] == 3203  # cancelled card
        assert (await s.call("Insurance/Quick", hc=G4))[1]["insuranceStatus"] == "2"
        # the documented recovery: update the card, then take the number
        _, upd = await s.call("HcContent/Update", hc=E2)
        assert upd["treatmentCounter"] == "06" and upd["cardValidity"] > s.store.today()
        status, nxt = await s.call("SequelNumber/Next", hc=E2)
        assert status == 200 and nxt["sequenceNumber"] == "W001"


async def test_rollback_rules() -> None:
    async with running_sim() as s:
        _, a = await s.call("SequelNumber/Next")
        when = a["treatmentDateTime"]
        assert (await s.call("BasicData/Register2"))[1]["treatmentCounter"] == "05"
        # another institution cannot roll it back
        other = Signer(samId="001000099902", hospitalId="3501288888")
        s.store.register_sam(other.samId, other.hospitalId, other.public_pem())
        status, body = await s.post("/api/v1/SequelNumber/Rollback", other.for_route("SequelNumber/Rollback", treatmentDateTime=when))
        assert status == 200 and body["statusCode"] == 3211
        assert (await s.call("SequelNumber/Rollback", treatmentDateTime="1120101000000"))[1]["statusCode"] == 3208
        status, body = await s.call("SequelNumber/Rollback", treatmentDateTime=when)
        assert status == 200 and body["sequenceNumber"] == "W001"
        assert (await s.call("BasicData/Register2"))[1]["treatmentCounter"] == "06"  # the visit is given back
        assert (await s.call("SequelNumber/Rollback", treatmentDateTime=when))[1]["statusCode"] == 3220
        # the number is not reused
        _, b = await s.call("SequelNumber/Next")
        assert b["sequenceNumber"] == "W002"
        # written visits cannot be rolled back
        assert ok(await s.call("Treatment/WriteFee", treatmentDateTime=b["treatmentDateTime"], outpatientFee=100))
        refused = (await s.call("SequelNumber/Rollback", treatmentDateTime=b["treatmentDateTime"]))[1]
        assert (refused["statusCode"], refused["message"]) == (3209, "已寫入診斷碼"), refused
        # only numeric visit types (就醫類別) can be rolled back: 3219 in the 6.0 table
        _, ac = await s.call("SequelNumber/Next", treatmentItem="AC")
        refused = (await s.call("SequelNumber/Rollback", treatmentDateTime=ac["treatmentDateTime"]))[1]
        assert (refused["statusCode"], refused["message"]) == (3219, "就醫類別為數值才可退掛"), refused
        # more than 24 hours later
        _, c = await s.call("SequelNumber/Next")
        assert ok(await s.post("/test/v1/Clock", {"offset_s": 24 * 3600 + 1}))
        assert (await s.call("SequelNumber/Rollback", treatmentDateTime=c["treatmentDateTime"]))[1]["statusCode"] == 3218


async def test_treatment_writes_need_the_visit_and_diagnosis_is_written_once() -> None:
    async with running_sim() as s:
        status, body = await s.call("Treatment/WriteCodeFee", treatmentDateTime="1120101000000", mainCode="J00")
        assert status == 200 and body["statusCode"] == 3208
        _, a = await s.call("SequelNumber/Next")
        w = a["treatmentDateTime"]
        three_card = s.signer.sign("02", hc=TEST10, hpc=DOCTOR, treatmentDateTime=w, mainCode="J00", subCode1="R05", outpatientFee=500, costFee=50)
        status, body = await s.post("/api/v1/Treatment/WriteCodeFee", three_card)
        assert status == 200 and body["hpcIdNo"] == "C123456789"
        assert (await s.call("Treatment/WriteCode", treatmentDateTime=w, mainCode="J01"))[1]["statusCode"] == 3209
        _, need = await s.call("Treatment/NeedHPC", endPosition=1)
        assert need["treatments"][0] == {"treatDateTime": w, "mainCode": "J00", "subCode1": "R05", "subCode2": "", "subCode3": "", "subCode4": "", "subCode5": ""}
        _, cum = await s.call("CumulativeData/Query")
        assert cum["outpatientTimes"] == 1 and cum["costFeeTotal"] == 50
        _, fee = await s.call("CumulativeFee/Query")
        assert fee["outpatientFeeTotal"] == 500
        status, pw = await s.call("Prescription/Write", treatmentDateTime=w, prescriptions=[
            {"treatmentDateTime": w, "treatmentItem": "2", "treatmentItemCode": "BC23456100", "usage": "QD", "days": "28", "totalQuantity": "0002800", "deliveryNotes": "01"},
            {"treatmentDateTime": w, "treatmentItem": "4", "treatmentItemCode": "FBZ000001", "days": "01", "totalQuantity": "0000100", "deliveryNotes": "03"},
        ])
        assert status == 200 and len(pw["signatureItems"]) == 2 and all(len(h) == 40 for h in pw["hexSignatureItems"])
        assert (await s.call("Prescription/LongQuery", endPosition=1))[1]["longTermPrescriptions"][0]["treatmentDateTime"] == w
        assert (await s.call("Prescription/HveQuery", endPosition=1))[1]["importantOrders"][0]["treatmentItemCode"] == "FBZ000001"


async def test_other_write_rules() -> None:
    async with running_sim() as s:
        assert (await s.call("PreventData/Write", preventItem="21", checkDate="1120801"))[1]["statusCode"] == 3214
        assert (await s.call("PregnantData/Write", hc=OUYANG, checkItem="41", checkDate="1130405"))[1]["statusCode"] == 3216
        assert (await s.call("NewBorn/Write", newbornBirthday="1000101", newbornBaby="1"))[1]["statusCode"] == 3206
        assert (await s.call("NewBorn/Write", newbornBirthday="1140230", newbornBaby="1"))[1]["statusCode"] == 1706  # no 30 February
        assert (await s.call("UploadData/Upload", sType="ZZ", sPatData="PGEvPg==", sUploadDT="1140101246000"))[1]["statusCode"] == 1706
        assert ok(await s.call("NewBorn/Write", newbornBirthday=s.store.today(), newbornBaby="1"))
        assert (await s.call("BasicData/Register"))[1]["newbornBirthday"] == s.store.today()
        assert ok(await s.call("EmergentTel/Write", tel="0911222333"))
        assert (await s.call("EmergentTel/Query"))[1]["tel"] == "0911222333"
        assert (await s.call("EmergentTel/Write", hc=H5, tel="0911222333"))[1]["statusCode"] == 3203
        assert (await s.call("PregnantData/Delete"))[1]["deleted"] == 2
        assert (await s.call("PregnantData/Query"))[1]["recordCount"] == 0
        assert (await s.call("BasicData/Query", hc={"hcId": "000000000000", "hcIdNo": "Z299999929"}))[1]["statusCode"] == 3203


async def test_signature_rules_for_every_route() -> None:
    async with running_sim() as s:
        for key, route in ROUTES.items():
            if not route.supported:
                status, body = await s.call(route.path)
                assert (status, body["statusCode"]) == (200, 9406), key
                continue
            wrong = "04" if route.serviceType != "04" else "01"
            body = s.signer.for_route(route.path, **_extras(route.path))
            body["serviceType"] = wrong
            assert (await s.post(f"/api/v1/{route.path}", body))[1]["statusCode"] == 3100, key
            body = s.signer.sign(wrong, hc={"hcId": "000073898381", "hcIdNo": "Z299999929"}, hpc={"hpcId": "000000329470", "hpcIdNo": "C123456789"})
            assert (await s.post(f"/api/v1/{route.path}", {**body, **_extras(route.path)}))[1]["statusCode"] == 3100, key
            if route.kind.value != "sam":
                assert (await s.call(route.path, hc=None, **_extras(route.path)))[1]["statusCode"] == 3300, key
            body = s.signer.for_route(route.path, **_extras(route.path))
            body["signature"] = base64.b64encode(b"\0" * 256).decode()
            assert (await s.post(f"/api/v1/{route.path}", body))[1]["statusCode"] == 3100, key
            stranger = Signer(samId="009999999999")
            assert (await s.post(f"/api/v1/{route.path}", stranger.for_route(route.path, **_extras(route.path))))[1]["statusCode"] == 3100, key
            body = s.signer.for_route(route.path, **_extras(route.path))
            first = await s.post(f"/api/v1/{route.path}", body)
            assert first[1]["statusCode"] not in (3100, 3245, 3300, 1705, 1706), (key, first)
            assert (await s.post(f"/api/v1/{route.path}", body))[1]["statusCode"] == 3245, key


def _extras(path: str) -> dict[str, object]:
    """Fields a route needs to pass validation (the call may still fail a business rule)."""
    return {
        "PreventData/Write": {"preventItem": "03", "checkDate": "1140101"},
        "PregnantData/Write": {"checkItem": "43", "checkDate": "1140101"},
        "Inoculate/Write": {"item": "FL", "inoculateDate": "1140101"},
        "EmergentTel/Write": {"tel": "0223456789"},
        "NewBorn/Write": {"newbornBirthday": "1140101", "newbornBaby": "1"},
        "AllergicMedicines/Write": {"medicine": "X"},
        "AllergicMedicines/WriteByIndex": {"medicine": "X", "index": 1},
        "Treatment/WriteCode": {"treatmentDateTime": "1130301100000", "mainCode": "J00"},
        "Treatment/WriteCodeFee": {"treatmentDateTime": "1130301100000", "mainCode": "J00"},
        "Treatment/WriteFee": {"treatmentDateTime": "1130301100000"},
        "Prescription/Write": {"treatmentDateTime": "1130301100000", "prescriptions": [{"treatmentDateTime": "1130301100000", "treatmentItem": "1", "treatmentItemCode": "A"}]},
        "SequelNumber/Rollback": {"treatmentDateTime": "1130301100000"},
        "TreatmentNumber/Card": {"treatmentDateTime": "1130301100000"},
        "TreatmentNumber/NoCard": {"patientId": "Z299999929"},
        "UploadData/Upload": {"sType": "ZZ", "sPatData": base64.b64encode(b"<a/>").decode(), "sUploadDT": "1130101000000"},
        "Icd/Encode": {"icdCode": "J00"},
        "Icd/Decode": {"encodedCode": "J00"},
        "TeleMedicine/RequestToken": {"patientId": "Z299999929"},
        "TeleMedicine/ResponseToken": {"accessToken": "x"},
    }.get(path, {})


async def test_garbage_in_signature_fields_or_keys_is_a_clean_error() -> None:
    """Found by fuzzing the generated OpenAPI (schemathesis): these were 500s."""
    async with running_sim() as s:
        body = s.signer.for_route("BasicData/Query")
        body["hcIdNo"] = "測試"
        assert (await s.post("/api/v1/BasicData/Query", body))[1]["statusCode"] == 3100
        status, err = await s.post("/test/v1/Sam/Register", {"samId": "x", "hospitalId": "y", "publicKeyPem": "not a key"})
        assert status == 200 and err["statusCode"] == 1706 and "x" not in s.store.sam_keys
        status, err = await s.post("/test/v1/Sam/Register", {"samId": "", "hospitalId": "y", "publicKeyPem": s.signer.public_pem()})
        assert status == 200 and err["statusCode"] == 1706


async def test_upload_rules() -> None:
    async with running_sim() as s:
        xml = base64.b64encode("<RECS><REC><MSH>測試</MSH></REC></RECS>".encode()).decode()
        now = roc_datetime(s.store.now())
        status, body = await s.call("UploadData/Upload", sType="A1", sPatData=xml, sUploadDT=now + "000")
        assert status == 200 and body["RtnCode"] == "0000" and body["statusCode"] == 0
        assert body["Opcode"][20:30] == HOSPITAL_ID and body["Opcode"][30:42] == s.signer.samId and len(body["Opcode"]) == 42
        assert (await s.call("UploadData/Upload", sType="A1", sPatData=xml, sUploadDT=now))[1]["statusCode"] == 3236
        assert ok(await s.call("UploadData/Upload", sType="A2", sPatData=xml, sUploadDT=now))  # pre-checks may repeat
        old = roc_datetime(s.store.now() - dt.timedelta(seconds=3601))
        status, body = await s.call("UploadData/Upload", sType="ZZ", sPatData=xml, sUploadDT=old)
        assert status == 200 and body["statusCode"] == 8203 and body["RtnCode"] == "8203"
        assert (await s.call("UploadData/Upload", sType="ZZ", sPatData="not base64!", sUploadDT=now))[1]["statusCode"] == 1704
        bad = base64.b64encode(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>').decode()
        assert (await s.call("UploadData/Upload", sType="ZZ", sPatData=bad, sUploadDT=now))[1]["statusCode"] == 1704
        assert (await s.call("UploadData/Upload", sType="B1", sPatData=xml, sUploadDT=now))[1]["statusCode"] == 1706


async def test_icd_encoding_is_reversible_and_only_for_long_or_e_v_codes() -> None:
    async with running_sim() as s:
        for code, encoded in {"J00": False, "I10": False, "A09.0": False, "E11.9": True, "V01.XXXA": True, "S72.001A": True, "M54.16": False, "T81.4XXA": True}.items():
            _, enc = await s.call("Icd/Encode", icdCode=code)
            plain = code.replace(".", "")
            assert (enc["encodedCode"] != plain) is encoded and len(enc["encodedCode"]) == len(plain) and enc["encodedCode"][0] == plain[0]
            _, dec = await s.call("Icd/Decode", encodedCode=enc["encodedCode"])
            assert dec["icdCode"] == plain
        assert (await s.call("Icd/Encode", icdCode="1234"))[1]["statusCode"] == 1706  # pydantic shape check
        assert (await s.call("Icd/Encode", icdCode="JJ0"))[1]["statusCode"] == 3501


async def test_telemedicine_tokens() -> None:
    async with running_sim() as s:
        _, a = await s.call("TeleMedicine/RequestToken", patientId="Z299999929")
        status, r = await s.call("TeleMedicine/ResponseToken", accessToken=a["accessToken"])
        assert status == 200 and r["virtualCardToken"]
        assert (await s.call("TeleMedicine/ResponseToken", accessToken=a["accessToken"]))[1]["statusCode"] == 3237  # single use
        _, b = await s.call("TeleMedicine/RequestToken", patientId="Z299999929")
        other = Signer(samId="001000099902", hospitalId="3501288888")
        s.store.register_sam(other.samId, other.hospitalId, other.public_pem())
        assert (await s.post("/api/v1/TeleMedicine/ResponseToken", other.for_route("TeleMedicine/ResponseToken", accessToken=b["accessToken"])))[1]["statusCode"] == 3237
        _, c = await s.call("TeleMedicine/RequestToken", patientId="Z299999929")
        await s.post("/test/v1/Clock", {"offset_s": 301})
        assert (await s.call("TeleMedicine/ResponseToken", accessToken=c["accessToken"]))[1]["statusCode"] == 3238
        assert (await s.call("TeleMedicine/RequestToken", patientId="G200000009"))[1]["statusCode"] == 3228
        assert (await s.call("TreatmentNumber/NoCard", patientId="A999999999"))[1]["statusCode"] == 3228


async def test_treatment_numbers_card_and_nocard() -> None:
    async with running_sim() as s:
        _, a = await s.call("SequelNumber/Next")
        _, t = await s.call("TreatmentNumber/Card", treatmentDateTime=a["treatmentDateTime"])
        assert t["treatmentNumber"] == a["treatmentNumber"]
        _, n = await s.call("TreatmentNumber/NoCard", patientId="A234567890")
        assert len(n["treatmentNumber"]) == 20 and n["hospitalId"] == HOSPITAL_ID and n["treatmentNumber"] != a["treatmentNumber"]
        _, again = await s.call("TreatmentNumber/Card", hc=OUYANG, treatmentDateTime=n["treatmentDateTime"])
        assert again["treatmentNumber"] == n["treatmentNumber"]


UNKNOWN_CARD = {"hcId": "000000000001", "hcIdNo": "Z299999929"}
_OLD = "1120101000000"
RULE_FAILURES: dict[str, tuple[dict[str, object], int]] = {
    **{p: ({"hc": UNKNOWN_CARD}, 3203) for p in (
        "BasicData/Query", "BasicData/Register", "BasicData/Register2", "Insurance/Quick", "EmergentTel/Query", "OrganDonate/Query",
        "CriticalIllness/Query", "CumulativeData/Query", "CumulativeFee/Query", "SequalNumber/Last", "PreventData/Query", "PregnantData/Query",
        "Inoculate/Query", "AllergicMedicines/Query", "Treatment/NoNeedHPC", "Treatment/NeedHPC", "Prescription/Query", "Prescription/LongQuery",
        "Prescription/HveQuery")},
    **{p: ({"hc": H5, **_extras(p)}, 3203) for p in (
        "EmergentTel/Write", "PreventData/Write", "PregnantData/Write", "PregnantData/Delete", "Inoculate/Write", "NewBorn/Write",
        "AllergicMedicines/Write", "AllergicMedicines/WriteByIndex", "HcContent/Update", "TreatmentNumber/Card")},
    **{p: ({**_extras(p), "treatmentDateTime": _OLD}, 3208) for p in ("Treatment/WriteCode", "Treatment/WriteCodeFee", "Treatment/WriteFee", "SequelNumber/Rollback")},
    "Prescription/Write": ({"treatmentDateTime": _OLD, "prescriptions": [{"treatmentDateTime": _OLD, "treatmentItem": "1", "treatmentItemCode": "A"}]}, 3208),
    "SeqNumber/Next": ({"hc": F3}, 3213),
    "SequelNumber/Next": ({"hc": E2}, 5003),
    "TreatmentNumber/NoCard": ({"patientId": "A999999999"}, 3228),
    "UploadData/Upload": (_extras("UploadData/Upload"), 8203),
    "Icd/Encode": ({"icdCode": "JJ0"}, 3501),
    "Icd/Decode": ({"encodedCode": "JA"}, 3501),
    "TeleMedicine/RequestToken": ({"patientId": "G200000009"}, 3228),
    "TeleMedicine/ResponseToken": ({"accessToken": "never-issued"}, 3237),
}


async def test_every_route_has_a_documented_rule_failure() -> None:
    assert set(RULE_FAILURES) == {r.path for r in ROUTES.values() if r.supported}
    async with running_sim() as s:
        for path, (kw, code) in RULE_FAILURES.items():
            status, body = await s.call(path, **kw)  # type: ignore[arg-type]
            assert (status, body["statusCode"]) == (200, code), (path, body)
            assert body["message"] and body["messageEn"] and "未定義" not in body["message"], path
