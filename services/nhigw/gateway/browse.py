"""The request browser (``POST /api/ops/requests/search``): recent business requests from the audit
trail, filtered by workstation, route, outcome, time and patient, newest first.

By patient: the operator types the full national ID; the gateway computes its keyed hash
(``nhigw.gateway.audit.patient_key``) and matches the ``patientKey`` each record was written with.
The ID itself is never stored, logged or returned; the answer shows the masked ID as the audit holds
it. A search by patient is itself audited (``ops/requests/search``, the masked ID and the hash), as
looking up a patient's records is what a privacy officer asks about.

Choices (the seed is silent): the search reads the operator's hospital's time index newest first,
page by page, and filters as it goes, up to ``SCAN_MAX`` records (``scanned`` and ``more`` in the
answer say when it stopped early: narrow the time range); so its cost grows with the records in
the time range, not with the whole log. Only business requests (``eventType`` ``rest``) are shown;
operators' and device sessions' records are in the audit trail page.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import RequestSearch
from nhigw.gateway.audit import PAGE_MAX, AuditRecord, mask_patient, ops_record, patient_key, to_ms
from nhigw.gateway.auth import Action, Client

if TYPE_CHECKING:
    from nhigw.gateway.audit import AuditLog

SCAN_MAX = 20_000


def matches(rec: AuditRecord, q: RequestSearch, pkey: str | None) -> bool:
    """Pure: does one audit record pass the filters (``pkey``: the typed ID's keyed hash)?"""
    if rec.eventType != "rest":
        return False
    if pkey is not None and rec.patientKey != pkey:
        return False
    if q.workstation and rec.workstation != q.workstation:
        return False
    if q.route and q.route.removeprefix("/api/v1/").lower() not in rec.route.lower():
        return False
    if q.outcome == "ok" and rec.outcome != 0:
        return False
    return not (q.outcome == "fail" and rec.outcome == 0)


def _ms(name: str, v: str | None) -> int | None:
    if not v:
        return None
    try:
        return to_ms(v)
    except ValueError as exc:
        raise StatusError(Code.PARAM_VALUE, f"{name} must be an ISO date or date-time (2026-11-01, 2026-11-01T08:00:00+08:00)") from exc


async def search(audit: "AuditLog", client: Client, q: RequestSearch, *, instance: str, site: str) -> dict[str, Any]:
    client.need(Action.DASHBOARD)
    since, until = _ms("since", q.since), _ms("until", q.until)
    pkey = patient_key(audit.key, q.patient) if q.patient else None
    hospital = None if client.allHospitals else client.hospitalId
    found: list[AuditRecord] = []
    scanned, more = 0, False
    async with aclosing(audit.pages(since=since, until=until, hospital=hospital, limit=PAGE_MAX, newest_first=True)) as pages:
        async for page in pages:
            for rec in page.records:
                scanned += 1
                if matches(rec, q, pkey):
                    found.append(rec)
                    if len(found) >= q.limit:
                        break
            if len(found) >= q.limit or scanned >= SCAN_MAX:
                more = page.next is not None or len(found) >= q.limit
                break
    if q.patient:
        await audit.append(ops_record(
            client, "requests/search", "R", instance=instance, site=site, hospital=hospital, patient=mask_patient(q.patient.strip().upper()), patient_key=pkey,
            note=f"request browser: {len(found)} record(s) of this patient",
        ))
    return {"records": [r.model_dump(mode="json", exclude={"patientKey"}) for r in found], "scanned": scanned, "more": more, "statusCode": 0}
