"""Audit records exported as FHIR R4 AuditEvents (BALP), validated by the fhir.resources models."""

from __future__ import annotations

import asyncio
import json
import re

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from nhigw.gateway.audit import AuditRecord, MemoryAudit, mask_card, mask_patient, patient_key
from nhigw.gateway.auditexport import BALP, CHAIN_EXT, audit_event, balp_problems, bundle, ndjson


async def _chain() -> tuple[MemoryAudit, list[AuditRecord]]:
    log = MemoryAudit()
    base = {"route": "BasicData/Register", "statusCode": 0, "httpStatus": 200, "client": "his-a", "hospitalId": "3501200000", "instance": "gw-1", "site": "clinic"}
    await log.append(AuditRecord(action="R", outcome=0, workstation="ws-01", patient=mask_patient("Z299999929"), patientKey=patient_key(log.key, "Z299999929"),
                                 requestId="r1", idempotencyKey="k1", **base))
    await log.append(AuditRecord(action="C", outcome=4, hpc=mask_card("000000329470"), requestId="r2", idempotencyKey="k2", **{**base, "statusCode": 3245}))
    return log, await log.records()


async def test_records_export_as_valid_balp_audit_events_with_their_chain_position() -> None:
    log, recs = await _chain()
    lines = list(ndjson(recs, log.name))
    assert len(lines) == 2
    for line, rec in zip(lines, recs, strict=True):
        ev = AuditEvent.model_validate_json(line)  # valid FHIR R4 (R4B models: AuditEvent is unchanged)
        assert balp_problems(ev) == []
        d = json.loads(line)
        chain = {x["url"]: next(iter(v for k, v in x.items() if k.startswith("value"))) for x in d["extension"][0]["extension"]}
        assert d["extension"][0]["url"] == CHAIN_EXT and chain["seq"] == rec.seq and chain["hash"] == rec.hash and chain["prevHash"] == rec.prevHash
        assert not re.search(r"[A-Z][12]\d{8}", line) and "000000329470" not in line  # masked numbers only
    first, second = (json.loads(x) for x in lines)
    assert first["meta"]["profile"] == [BALP + "PatientRead"] and first["subtype"][0]["code"] == "read"
    assert second["meta"]["profile"] == [BALP + "Create"] and second["outcome"] == "4"
    b = bundle(recs, log.name)
    assert isinstance(b, Bundle) and b.type == "batch" and len(b.entry or []) == 2


async def test_balp_check_fails_a_resource_without_its_client_agent_or_chain() -> None:
    log, recs = await _chain()
    d = json.loads(audit_event(recs[0], log.name).model_dump_json())
    d["agent"] = d["agent"][1:]
    d["extension"] = []
    problems = balp_problems(AuditEvent.model_validate(d))
    assert any("client" in p for p in problems) and any("chain" in p for p in problems)


async def test_nhigw_audit_export_writes_a_fhir_bundle(tmp_path) -> None:
    import subprocess
    import sys

    from nhigw.gateway.audit import FileAudit

    log = FileAudit(tmp_path / "gateway" / "audit.jsonl")
    for rec in (await _chain())[1]:
        await log.append(rec.model_copy(update={"seq": 0, "hash": ""}))
    argv = [sys.executable, "-m", "nhigw", "audit", "export", "--file", str(log.path), "--format", "fhir-bundle", "--data-dir", str(tmp_path)]
    out = (await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, check=True)).stdout
    b = Bundle.model_validate_json(out)
    events = [AuditEvent.model_validate(e.resource.model_dump()) for e in b.entry or []]  # type: ignore[union-attr]
    assert len(events) == 2 and all(balp_problems(e) == [] for e in events)
