"""The gateway serves what production 6.0 HIS code calls besides the business API (public facts 3.3 /
3.3a): the upload host's ``/V2000/VNHI_Upload`` (queued, audited as a write, sent to ``--upload-cloud``
once) and the cloud's test-card API (``/test/v1/...``) on the same base URL; one-call writes are
signed as a real HIS signs them and their audit record names the doctor verified at the workstation."""

from __future__ import annotations

import base64
from typing import Any

from nhigw.common.roctime import roc_datetime
from tests.simkit import running_sim
from tests.stack import Stack, running_stack


async def _sam_sig(s: Stack, service_type: str) -> dict[str, Any]:
    status, sig = await s.agent_call("POST", "/api/sam/v1/Signature", json={"serviceType": service_type})
    assert status == 200 and sig["statusCode"] == 0, sig
    return sig


def _file(s: Stack, s_type: str, xml: bytes) -> dict[str, str]:
    return {"sType": s_type, "sPatData": base64.b64encode(xml).decode(), "sUploadDT": roc_datetime(s.store.now()) + "000"}


async def test_vnhi_upload_goes_to_the_upload_host_queued_audited_and_once() -> None:
    async with running_sim() as up:  # the upload host (medvpndti), apart from the business cloud
        async with running_stack(upload_url=up.url) as s:
            for sam_id, (hosp, pem) in s.store.sam_keys.items():
                up.store.register_sam(sam_id, hosp, pem)
            await s.ready()
            sig = await _sam_sig(s, "30")
            body = {"sSamId": sig["samId"], "sHospId": sig["hospitalId"], "sClientRandom": sig["clientRandom"], "sSignature": sig["signature"], **_file(s, "A2", b"<RECS><REC/></RECS>")}
            key = {"Idempotency-Key": "upload-a2-1"}
            async with s.http.post(s.gateway_url + "/V2000/VNHI_Upload", json=body, headers=key) as r:
                r.raise_for_status()
                first = await r.json()
            assert first["RtnCode"] == "0000" and first["Opcode"][20:30] == sig["hospitalId"], first
            async with s.http.post(s.gateway_url + "/V2000/VNHI_Upload", json=body, headers=key) as r:
                again, replayed = await r.json(), r.headers.get("Idempotent-Replayed")
            assert (again, replayed) == (first, "true")
            assert up.store.writes["VNHI_Upload"] == 1 and "VNHI_Upload" not in s.store.calls  # once, at the upload host

            # One-call: the gateway gets the SAM signature (serviceType 30) from the workstation.
            status, done = await s.gw("/V2000/VNHI_Upload", _file(s, "A1", b"<RECS><REC><MB1/></REC></RECS>"), workstation=s.workstation)
            assert status == 200 and done["RtnCode"] == "0000", done
            assert [(u.sType, u.root) for u in up.store.uploaded] == [("A2", "RECS"), ("A1", "RECS")]
            recs = [r for r in await s.gateway.audit.records() if r.route == "V2000/VNHI_Upload"]
            assert [(r.action, r.statusCode, r.hospitalId, r.workstation) for r in recs] == [("C", 0, sig["hospitalId"], None), ("C", 0, sig["hospitalId"], s.workstation)]


async def test_the_test_card_api_passes_through_to_the_cloud_but_not_the_simulators_admin_api() -> None:
    async with running_stack() as s:
        await s.ready()
        sig = await _sam_sig(s, "06")
        async with s.http.post(s.gateway_url + "/test/v1/ApplyVirtualHc/Apply", json={**sig, "sex": "F", "birthday": "0800101"}) as r:
            r.raise_for_status()
            card = await r.json()
        assert card["statusCode"] == 0 and len(card["cardSn"]) == 12, card
        assert any(p.cardSn == card["cardSn"] for p in s.store.patients_by_id.values())
        status, body = await s.gw("/test/v1/Faults", {"route": "BasicData/Query", "kind": "status", "status": 500})
        assert status == 404 and body["statusCode"] == 9405, body
        assert s.store.faults == []


async def test_one_call_writes_use_the_hc_signature_and_the_audit_names_the_verified_doctor() -> None:
    async with running_stack() as s:
        await s.ready()
        status, body = await s.agent_call("POST", "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"})
        assert body["statusCode"] == 0, body
        _, seq = await s.gw("/api/v1/SequelNumber/Next", {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"}, workstation=s.workstation)
        when = seq["treatmentDateTime"]
        status, wrote = await s.gw("/api/v1/Treatment/WriteCodeFee", {"treatmentDateTime": when, "afterCheck": "1", "mainCode": "J00", "outpatientFee": 300}, workstation=s.workstation)
        assert wrote["statusCode"] == 0 and "hpcIdNo" not in wrote, wrote  # HC signature: the cloud saw no doctor's fields
        (rec,) = [r for r in await s.gateway.audit.records() if r.route == "Treatment/WriteCodeFee"]
        _, hpc = await s.agent_call("GET", "/api/hpc/v1/Basic")
        assert rec.hpc is not None and rec.hpc != hpc["cardId"] and rec.hpc[:4] == hpc["cardId"][:4] and rec.hpc[-4:] == hpc["cardId"][-4:]
        # without a verified doctor's card the write still goes (HC signature) and the record names no HPC
        assert (await s.agent_call("DELETE", "/api/hpc/v1/Logout"))[1]["statusCode"] == 0
        status, wrote = await s.gw("/api/v1/Prescription/Write", {"treatmentDateTime": when, "prescriptions": [
            {"treatmentDateTime": when, "treatmentItem": "1", "treatmentItemCode": "AC12345100", "usage": "TID", "days": "03", "totalQuantity": "9.00", "deliveryNotes": "01"}]}, workstation=s.workstation)
        assert wrote["statusCode"] == 0, wrote
        (rec,) = [r for r in await s.gateway.audit.records() if r.route == "Prescription/Write"]
        assert rec.hpc is None
