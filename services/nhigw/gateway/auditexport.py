"""Audit records as FHIR R4 ``AuditEvent`` resources after the IHE Basic Audit Log Patterns (BALP).

``audit_event(rec, chain)`` maps one chained ``AuditRecord`` and validates it with the FHIR R4(B)
models of ``fhir.resources`` (an invalid resource raises, never leaves); ``ndjson`` and ``bundle``
write many (``nhigw audit export --format fhir-ndjson | fhir-bundle``). Only masked numbers leave:
the patient as the masked national ID and the keyed hash stored with the record, the HPC masked.
Every resource carries its place in the hash chain (extension ``CHAIN_EXT``: chain, seq, hash, prevHash).

Choices (the seed is silent): the NHI cloud call is the audited REST operation; reads are BALP
``Read``, writes ``Create`` (the NHI cloud keeps what a write sends), operator actions and other
executes carry no BALP CRUD profile; a record with a patient uses the ``Patient*`` profile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from nhigw.gateway.audit import AuditRecord

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
CHAIN_EXT = "urn:nhigw:fhir:StructureDefinition:audit-chain"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTION = {"C": "create", "R": "read", "U": "update"}


def _profile(rec: AuditRecord) -> str | None:
    kind = {"C": "Create", "R": "Read", "U": "Update"}.get(rec.action)
    if kind is None:
        return None
    return BALP + ("Patient" + kind if rec.patient else kind)


def audit_event(rec: AuditRecord, chain: str) -> AuditEvent:
    return AuditEvent.model_validate(audit_event_data(rec, chain))


def audit_event_json(rec: AuditRecord, chain: str) -> str:
    """The resource as JSON, validated as ``audit_event`` does (``ValueError`` if invalid), written from
    the data it was validated from: fhir.resources' own serialiser costs twice the validation."""
    data = audit_event_data(rec, chain)
    AuditEvent.model_validate(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def audit_event_data(rec: AuditRecord, chain: str) -> dict[str, Any]:
    """The AuditEvent resource as plain data (not validated: ``audit_event`` validates it)."""
    profile = _profile(rec)
    ev: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"nhigw-{rec.seq}-{rec.hash[:16]}",
        "extension": [{"url": CHAIN_EXT, "extension": [
            {"url": "chain", "valueString": chain}, {"url": "seq", "valueInteger": rec.seq},
            {"url": "hash", "valueString": rec.hash}, {"url": "prevHash", "valueString": rec.prevHash}]}],
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "action": rec.action if rec.action in ("C", "R", "U", "D", "E") else "E",
        "recorded": rec.recorded,
        "outcome": str(rec.outcome),
        "outcomeDesc": f"statusCode {rec.statusCode}, HTTP {rec.httpStatus}",
        "agent": [
            {"type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
             "who": {"display": rec.client}, "requestor": True,
             **({"network": {"address": rec.workstation, "type": "1"}} if rec.workstation else {})},
            {"type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
             "who": {"display": "NHI cloud"}, "requestor": False},
        ],
        "source": {"site": rec.site, "observer": {"display": rec.instance},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]},
        "entity": [{"what": {"identifier": {"value": rec.requestId}, "display": rec.route},
                    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}}],
    }
    if profile:
        ev["meta"] = {"profile": [profile]}
    sub = _INTERACTION.get(rec.action)
    if sub:
        ev["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction", "code": sub}]
    if rec.hpc:
        ev["agent"].append({"type": {"coding": [{"system": DCM, "code": "110151", "display": "Destination Media"}]}, "who": {"display": f"HPC {rec.hpc}"}, "requestor": False})
    if rec.patient:
        who: dict[str, Any] = {"display": rec.patient}
        if rec.patientKey:
            who["identifier"] = {"system": "urn:nhigw:patient-key", "value": rec.patientKey}
        ev["entity"].append({"what": who, "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                             "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}})
    return ev


def balp_problems(ev: AuditEvent) -> list[str]:
    """The BALP constraints this export promises, checked on a resource (pure)."""
    d = json.loads(ev.model_dump_json())
    out = []
    if d["type"]["code"] != "rest":
        out.append("type is not rest")
    roles = [a["type"]["coding"][0]["code"] for a in d["agent"]]
    if roles.count("110153") != 1 or roles.count("110152") != 1:
        out.append("one client (110153) and one server (110152) agent are required")
    if not any(a.get("requestor") for a in d["agent"]):
        out.append("no requestor agent")
    profile = (d.get("meta") or {}).get("profile", [None])[0]
    patients = [e for e in d["entity"] if (e.get("role") or {}).get("code") == "1"]
    if profile and ("Patient" in profile) != bool(patients):
        out.append("a Patient profile needs exactly the patient entity")
    if profile and not d.get("subtype"):
        out.append("a CRUD profile needs its restful-interaction subtype")
    chain = [x for x in d.get("extension", []) if x["url"] == CHAIN_EXT]
    if len(chain) != 1 or not any(x["url"] == "seq" and x["valueInteger"] >= 1 for x in chain[0]["extension"]):
        out.append("the hash-chain position is missing")
    return out


def ndjson(records: Iterable[AuditRecord], chain: str) -> Iterable[str]:
    for rec in records:
        yield audit_event(rec, chain).model_dump_json()


def bundle(records: Iterable[AuditRecord], chain: str) -> Bundle:
    """A ``batch`` Bundle that an audit repository's FHIR endpoint takes as it is (POST AuditEvent each)."""
    entries = [{"resource": json.loads(audit_event(r, chain).model_dump_json()), "request": {"method": "POST", "url": "AuditEvent"}} for r in records]
    return Bundle.model_validate({"resourceType": "Bundle", "type": "batch", "entry": entries})
