"""Every business route of the table answers its documented fields for a signed call, with
signatures from the real (virtual) cards through the agent; signature errors per route kind."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from nhigw.common.roctime import roc_datetime
from nhigw.contracts.cloud import ROUTE_MODELS
from nhigw.contracts.models import SignatureKind
from nhigw.contracts.routes import ROUTES, Route, lookup
from tests.helpers import ok
from tests.simkit import running_sim
from tests.stack import Stack, running_stack

SIGN_PATH = {
    SignatureKind.HC: "/api/hc/v1/Signature/Hc",
    SignatureKind.HPCHC: "/api/hc/v1/Signature/HpcHc",
    SignatureKind.SAM: "/api/sam/v1/Signature",
    SignatureKind.HPC: "/api/hpc/v1/Signature",
}

Ctx = dict[str, Any]
XML = base64.b64encode("<RECS><REC><MSH>測試</MSH></REC></RECS>".encode()).decode()

# In call order (later rows use what earlier rows returned); every supported route exactly once.
PLAN: list[tuple[str, Callable[[Ctx], dict[str, Any]]]] = [
    ("BasicData/Query", lambda c: {}),
    ("BasicData/Register", lambda c: {}),
    ("BasicData/Register2", lambda c: {}),
    ("Insurance/Quick", lambda c: {}),
    ("SequelNumber/Next", lambda c: {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"}),
    ("SeqNumber/Next", lambda c: {"treatmentItem": "01"}),
    ("SequalNumber/Last", lambda c: {}),
    ("Treatment/WriteCodeFee", lambda c: {"treatmentDateTime": c["SequelNumber/Next"]["treatmentDateTime"], "afterCheck": "1", "mainCode": "J00", "subCode1": "R05", "outpatientFee": 500, "costFee": 50}),
    ("Treatment/WriteCode", lambda c: {"treatmentDateTime": c["SeqNumber/Next"]["treatmentDateTime"], "mainCode": "E119"}),
    ("Treatment/WriteFee", lambda c: {"treatmentDateTime": c["SeqNumber/Next"]["treatmentDateTime"], "outpatientFee": 800}),
    ("Prescription/Write", lambda c: {"treatmentDateTime": c["SequelNumber/Next"]["treatmentDateTime"], "prescriptions": [
        {"treatmentDateTime": c["SequelNumber/Next"]["treatmentDateTime"], "treatmentItem": "1", "treatmentItemCode": "AC12345100", "usage": "TID", "days": "03", "totalQuantity": "0000900", "deliveryNotes": "01"}]}),
    ("TreatmentNumber/Card", lambda c: {"treatmentDateTime": c["SequelNumber/Next"]["treatmentDateTime"]}),
    ("Treatment/NoNeedHPC", lambda c: {"startPosition": 1, "endPosition": 2}),
    ("Treatment/NeedHPC", lambda c: {"format": "0"}),
    ("CumulativeData/Query", lambda c: {}),
    ("CumulativeFee/Query", lambda c: {}),
    ("Prescription/Query", lambda c: {}),
    ("Prescription/LongQuery", lambda c: {}),
    ("Prescription/HveQuery", lambda c: {}),
    ("CriticalIllness/Query", lambda c: {"format": "0"}),
    ("AllergicMedicines/Write", lambda c: {"medicine": "IBUPROFEN"}),
    ("AllergicMedicines/WriteByIndex", lambda c: {"index": 1, "medicine": "CODEINE"}),
    ("AllergicMedicines/Query", lambda c: {}),
    ("PreventData/Write", lambda c: {"preventItem": "21", "checkDate": c["today"]}),
    ("PreventData/Query", lambda c: {}),
    ("PregnantData/Write", lambda c: {"checkItem": "43", "checkDate": c["today"]}),
    ("PregnantData/Query", lambda c: {}),
    ("PregnantData/Delete", lambda c: {}),
    ("Inoculate/Write", lambda c: {"item": "FL", "inoculateDate": c["today"], "lotNumber": "FLU2026"}),
    ("Inoculate/Query", lambda c: {}),
    ("EmergentTel/Write", lambda c: {"tel": "0223456789"}),
    ("EmergentTel/Query", lambda c: {}),
    ("NewBorn/Write", lambda c: {"newbornBirthday": c["today"], "newbornBaby": "1"}),
    ("HcContent/Update", lambda c: {}),
    ("OrganDonate/Query", lambda c: {}),
    ("SequelNumber/Rollback", lambda c: {"treatmentDateTime": c["SeqNumber/Next"]["treatmentDateTime"]}),  # written: 3209 below
    ("TreatmentNumber/NoCard", lambda c: {"patientId": "A234567890"}),
    ("UploadData/Upload", lambda c: {"sType": "A1", "sPatData": XML, "sUploadDT": c["now"] + "000"}),
    ("Icd/Encode", lambda c: {"icdCode": "E11.9"}),
    ("Icd/Decode", lambda c: {"encodedCode": c["Icd/Encode"]["encodedCode"]}),
    ("TeleMedicine/RequestToken", lambda c: {"patientId": "Z299999929"}),
    ("TeleMedicine/ResponseToken", lambda c: {"accessToken": c["TeleMedicine/RequestToken"]["accessToken"]}),
]
EXPECTED_CODE = {"SequelNumber/Rollback": 3209}  # the one planned rule failure: a written visit cannot be rolled back


async def sign(s: Stack, route: Route) -> dict[str, Any]:
    status, sig = await s.agent_call("POST", SIGN_PATH[route.kind], json={"serviceType": route.serviceType})
    assert status == 200 and sig["statusCode"] == 0, (route.path, sig)
    sig.pop("statusCode")
    return sig


def documented_fields(path: str) -> set[str]:
    model = ROUTE_MODELS[path][1]
    return {n for n, f in model.model_fields.items() if f.is_required() or f.default is not None}


async def ready_with_hpc(s: Stack) -> None:
    await s.ready()
    status, body = await s.agent_call("POST", "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"})
    assert status == 200 and body["statusCode"] == 0, body


async def test_every_route_answers_its_documented_fields_for_a_card_signed_call() -> None:
    supported = {r.path for r in ROUTES.values() if r.supported}
    assert [p for p, _ in PLAN] == list(dict.fromkeys(p for p, _ in PLAN)) and {p for p, _ in PLAN} == supported
    async with running_stack() as s:
        await ready_with_hpc(s)
        ctx: Ctx = {"today": s.store.today(), "now": roc_datetime(s.store.now())}
        for path, extras in PLAN:
            route = lookup(path)
            assert route is not None
            body = {**await sign(s, route), **extras(ctx)}
            status, out = await s.call("POST", f"{s.sim_url}/api/v1/{path}", json=body)
            if path in EXPECTED_CODE:
                assert (status, out["statusCode"]) == (200, EXPECTED_CODE[path]), (path, out)
                continue
            assert status == 200 and out["statusCode"] == 0, (path, out)
            missing = documented_fields(path) - set(out)
            assert not missing, (path, missing)
            ROUTE_MODELS[path][1].model_validate(out)
            ctx[path] = out
        assert ctx["SequelNumber/Next"]["sequenceNumber"] == "W001" and ctx["SeqNumber/Next"]["sequenceNumber"] == "W002"
        assert ctx["TreatmentNumber/Card"]["treatmentNumber"] == ctx["SequelNumber/Next"]["treatmentNumber"]
        assert ctx["Icd/Decode"]["icdCode"] == "E119"
        assert ctx["AllergicMedicines/Query"]["allergicMedicines"][0]["medicine"] == "CODEINE"
        # unsupported rows of the seed answer a documented error
        for r in ROUTES.values():
            if not r.supported:
                status, out = await s.call("POST", f"{s.sim_url}/api/v1/{r.path}", json=await sign(s, r))
                assert (status, out["statusCode"]) == (200, 9406) and "不支援" in out["detail"]


@pytest.mark.parametrize("path", ["BasicData/Query", "CriticalIllness/Query", "Icd/Encode", "SequelNumber/Next"])
async def test_signature_errors_per_route_kind(path: str) -> None:
    route = lookup(path)
    assert route is not None
    extras = {"icdCode": "J00"} if path == "Icd/Encode" else {}
    async with running_stack() as s:
        await ready_with_hpc(s)
        url = f"{s.sim_url}/api/v1/{path}"
        good = {**await sign(s, route), **extras}
        assert ok(await s.call("POST", url, json=good))
        status, out = await s.call("POST", url, json=good)
        assert (status, out["statusCode"]) == (200, 3245), "a signature is used once"

        bad = {**await sign(s, route), **extras}
        raw = bytearray(base64.b64decode(bad["signature"]))
        raw[10] ^= 0xFF
        bad["signature"] = base64.b64encode(bytes(raw)).decode()
        assert (await s.call("POST", url, json=bad))[1]["statusCode"] == 3100

        other = "02" if route.serviceType != "02" else "01"
        wrong_kind = Route(route.path, route.kind, other, route.write, "")
        wrong = {**await sign(s, wrong_kind), **extras}
        assert (await s.call("POST", url, json=wrong))[1]["statusCode"] == 3100
        wrong.pop("serviceType", None)  # even when the body does not say which serviceType it was for
        assert (await s.call("POST", url, json=wrong))[1]["statusCode"] == 3100

        if route.kind != SignatureKind.SAM:
            sam_only = {**await sign(s, Route(route.path, SignatureKind.SAM, route.serviceType, route.write, "")), **extras}
            assert (await s.call("POST", url, json=sam_only))[1]["statusCode"] == 3300

        unknown = {**await sign(s, route), **extras}
        s.store.sam_keys.pop(unknown["samId"])
        assert (await s.call("POST", url, json=unknown))[1]["statusCode"] == 3100


async def test_a_sam_the_data_centre_does_not_know_is_reported_as_such_not_as_a_sam_state() -> None:
    """Issue 17 item 8: a simulator started apart from the virtual SAM's process does not know its key."""
    async with running_sim() as s:
        for path, body in (("/dc/v1/SamAuth/Challenge", {"samId": "001099999999", "hospitalId": "3501200000"}),
                           ("/dc/v1/SamAuth/Verify", {"samId": "001099999999", "hospitalId": "3501200000", "challenge": "AAAA", "signature": "AAAA"})):
            status, err = await s.post(path, body)
            assert err["statusCode"] != 1300 and "unknown SAM 001099999999 at the data centre" in err["detail"], (path, err)
