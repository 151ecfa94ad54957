"""Dead letters: the final answer of a dead-lettered request, and the operators' actions on them.

A queue entry that failed ``max_deliveries`` deliveries goes to the dead-letter stream
(``nhigw.gateway.queue``). In the same step its key gets a final answer (``answer``), so the
HIS asking with its ``Idempotency-Key`` is told something final instead of 9408 "still queued"
for ever (an answer already stored for the key is kept):

- a write whose earlier delivery may have reached the NHI cloud (its ``attempted`` marker is
  set): 9403 "outcome unknown" with the key and the reconciliation hint (which NHI query shows
  whether it landed);
- anything else (a read, a write that provably never left): 9402 "dead-lettered, not sent",
  with the key; an operator may retry it.

Operators (each sees its own hospital's dead letters only, an ``allHospitals`` operator all;
``Client.operates_for``; a ``viewer`` looks, an ``operator`` or ``admin`` acts: ``nhigw.gateway.auth``):

- ``GET /api/ops/dead-letters``: each entry with ``mayHaveLanded``, ``reconcile`` (the hint)
  and the actions this key may take (``retry`` or ``resend``, ``discard``; none for a viewer);
- ``GET /api/ops/dead-letters/{id}``: the same, with ``history``: every delivery, upstream
  attempt and operator action of the request (``nhigw.gateway.trail``);
- ``POST /api/ops/dead-letters/bulk-retry`` ``{"max": 10}``: retries at most ``max`` dead letters
  (oldest first) that provably never reached the cloud; writes that may have landed are never in
  a bulk retry (listed as ``needDecision``: each needs its own ``resend``);
- ``POST .../{id}/retry``: puts back a request that provably never reached the cloud. A write
  that may have landed is *refused* (9403, HTTP 200 as every coded answer) naming the explicit path: it is never sent
  again by a plain retry;
- ``POST .../{id}/resend`` ``{"reconciled": true, "note": "..."}``: the operator checked (the
  hint's query) that the write did not land and sends it again; audited as its own action
  (``ops/dead-letters/resend``) with the hint;
- ``DELETE .../{id}``: discards; the key's answer becomes the operator's recorded decision
  (9403 if it may have landed, else 9402 "never sent").

A retried or resent request runs under its key again: its dead-letter answer is removed and its
in-flight marker set, so the HIS asking with the key waits for the new run's answer. An entry
that does not open or parse (tampered, another gateway key) cannot be retried: it is kept
(1706) and can only be discarded.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from nhigw.bus.base import BusError
from nhigw.common.logging import get_logger
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import DeadLetterBulkRetryRequest, DeadLetterBulkRetryResponse, DeadLetterResendRequest, JobAnswer, QueuedJob
from nhigw.gateway.audit import ops_record
from nhigw.gateway.auth import Action, Client
from nhigw.gateway.queue import DeadAnswer, DeadLetter
from nhigw.gateway.store import answer_aad
from nhigw.gateway.trail import TrailEntry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nhigw.bus.seal import Sealer
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.audit import AuditLog
    from nhigw.gateway.queue import WorkQueue
    from nhigw.gateway.store import KV
    from nhigw.gateway.trail import Trail

log = get_logger("nhigw.gateway.deadletters")



# Which NHI query shows whether a write landed (the reconciliation hint), by route family.
_QUERY_OF = {
    "PreventData": "PreventData/Query (the patient's preventive-care records)",
    "PregnantData": "PregnantData/Query (the patient's prenatal checks)",
    "Inoculate": "Inoculate/Query (the patient's inoculations)",
    "EmergentTel": "EmergentTel/Query (the patient's emergency phone number)",
    "HcContent": "BasicData/Register2 (card validity and visits left)",
    "NewBorn": "BasicData/Query (the newborn mark)",
    "AllergicMedicines": "AllergicMedicines/Query (the patient's allergy slots)",
    "Treatment": "Treatment/NeedHPC and Treatment/NoNeedHPC (the patient's treatment records of that date-time)",
    "Prescription": "Prescription/Query (the patient's prescriptions of that treatment)",
    "SeqNumber": "Treatment/NoNeedHPC and SequalNumber/Last (the patient's sequence numbers of the day)",
    "SequelNumber": "Treatment/NoNeedHPC and SequalNumber/Last (the patient's sequence numbers of the day)",
    "TreatmentNumber": "Treatment/NoNeedHPC (the patient's treatment numbers of the day)",
    "UploadData": "the NHI's upload results for that file (a formal A1 upload sent twice is refused 3236)",
}


def reconcile_hint(path: str) -> str:
    family = path.removeprefix("/api/v1/").split("/", 1)[0]
    query = _QUERY_OF.get(family, "the patient's records for this route")
    return f"check with {query} whether it landed before sending it again"


def _job(raw: bytes) -> QueuedJob | None:
    try:
        return QueuedJob.model_validate_json(raw)
    except ValueError:
        return None


def fingerprint(job: QueuedJob) -> bytes:
    """The request's fingerprint, as admission computes it (``Gateway.submit``)."""
    return hashlib.sha256(b"|".join([job.path.lower().encode(), (job.workstation or "").encode(), (job.deviceSession or "").encode(), job.body.encode("utf-8")])).hexdigest().encode()


class DeadLetters:
    """The gateway's ``DeadHook`` and the operators' dead-letter actions."""

    def __init__(
        self, *, kv: "KV", keys: "BusKeys", box: "Sealer", queue: "WorkQueue", audit: "AuditLog", trail: "Trail", instance: str, site: str,
        window_s: float, deadline_s: float,
        store_answer: "Callable[[str, JobAnswer, str | None], Awaitable[None]]", resolve: "Callable[[str, JobAnswer], None]",
    ) -> None:
        """``store_answer`` stores a final answer and tells its waiters (every replica);
        ``resolve`` answers the requests waiting in this process (the in-memory deployment)."""
        self.kv, self.keys, self.box, self.queue, self.audit_log, self.trail = kv, keys, box, queue, audit, trail
        self.instance, self.site, self.window_s, self.deadline_s = instance, site, window_s, deadline_s
        self.store_answer, self.resolve = store_answer, resolve

    # ------------------------------------------------------------------ the final answer (DeadHook)

    async def answer(self, raw: bytes, entry_id: str, deliveries: int) -> DeadAnswer | None:
        job = _job(raw)
        if job is None:
            log.error("dead_letter_unreadable", entry=entry_id)
            return None
        maybe = job.write and await self.kv.get(self.keys.attempted(job.answerKey)) is not None
        if maybe:
            err = StatusError(Code.OUTCOME_UNKNOWN, f"dead-lettered after {deliveries} failed deliveries; an earlier delivery may have reached the NHI cloud, so it is not sent again; {reconcile_hint(job.path)}", idempotencyKey=job.idempotencyKey, entryId=entry_id)
        else:
            err = StatusError(Code.UPSTREAM_UNAVAILABLE, f"dead-lettered after {deliveries} failed deliveries; never sent to the NHI cloud (an operator may retry it)", idempotencyKey=job.idempotencyKey, entryId=entry_id)
        log.warning("dead_lettered", entry=entry_id, requestId=job.requestId, deliveries=deliveries, maybeSent=maybe)
        await self._trail(job, "dead-lettered", f"after {deliveries} deliveries without an answer" + ("; a delivery may have reached the NHI cloud" if maybe else ""), delivery=deliveries, status_code=err.code)
        return self._final(job, err, maybe)

    async def _trail(self, job: QueuedJob, event: Any, detail: str | None = None, *, client: Client | None = None, delivery: int | None = None, status_code: int | None = None) -> None:
        try:
            await self.trail.add(job.answerKey, TrailEntry(event=event, instance=self.instance, requestId=job.requestId, delivery=delivery, statusCode=status_code, client=client.name if client else None, detail=detail))
        except BusError as exc:  # the history loses an entry; the dead letter and the audit record do not
            log.warning("trail_unwritable", requestId=job.requestId, error=str(exc))

    def _final(self, job: QueuedJob, err: StatusError, maybe: bool) -> DeadAnswer:
        ans = JobAnswer(requestId=job.requestId, idempotencyKey=job.idempotencyKey, httpStatus=err.http_status, body=json.dumps(err.body(), ensure_ascii=False), instance=self.instance)
        sealed = self.box.seal(ans.model_dump_json().encode(), answer_aad(job.answerKey))
        channel = self.keys.done(job.origin) if job.origin else None
        return DeadAnswer(self.keys.answer(job.answerKey), sealed, self.window_s, channel, job.answerKey.encode() + b" " + sealed, maybe)

    async def deliver(self, a: DeadAnswer) -> None:
        """In one process (``MemoryQueue``): store unless answered, and answer the waiters here."""
        if await self.kv.set(a.key, a.sealed, ttl_s=a.ttl_s, nx=True):
            akey = a.message.partition(b" ")[0].decode()
            self.resolve(akey, JobAnswer.model_validate_json(self.box.open(a.sealed, answer_aad(akey))))

    # ------------------------------------------------------------------ operators

    async def _mine(self, client: Client, dead_id: str, action: Action = Action.DEAD_LETTERS) -> tuple[DeadLetter, QueuedJob | None]:
        """The dead letter if this key may see it and take ``action`` (404 if not its hospital's: another hospital's is not shown)."""
        client.need(action)
        d = await self.queue.dead_one(dead_id)
        job = _job(d.raw) if d is not None else None
        if d is None or not client.operates_for(job.hospitalId if job else None):
            raise StatusError(Code.NOT_FOUND, "no such dead letter")
        return d, job

    async def may_have_landed(self, d: DeadLetter, job: QueuedJob) -> bool:
        """As the dead letter was marked, or since: a write whose ``attempted`` marker is set may have reached the cloud."""
        return d.maybeSent or (job.write and await self.kv.get(self.keys.attempted(job.answerKey)) is not None)

    def view(self, d: DeadLetter, job: QueuedJob | None, client: Client) -> dict[str, Any]:
        acting = client.may(Action.DEAD_LETTERS)
        if job is None:
            return {"id": d.id, "deliveries": d.deliveries, "originalId": d.originalId, "job": {"unreadable": True}, "actions": ["discard"] if acting else []}
        summary = {k: getattr(job, k) for k in ("requestId", "idempotencyKey", "path", "workstation", "client", "hospitalId", "write", "enqueuedAt", "rerunOf")}
        out: dict[str, Any] = {"id": d.id, "deliveries": d.deliveries, "originalId": d.originalId, "job": summary, "mayHaveLanded": d.maybeSent}
        if d.maybeSent:
            out["reconcile"] = reconcile_hint(job.path)
        out["actions"] = (["resend", "discard"] if d.maybeSent else ["retry", "discard"]) if acting else []
        return out

    async def list(self, client: Client) -> list[dict[str, Any]]:
        client.need(Action.DASHBOARD)
        out = []
        for d in await self.queue.dead():
            job = _job(d.raw)
            if client.operates_for(job.hospitalId if job else None):
                out.append(self.view(d, job, client))
        return out

    async def detail(self, client: Client, dead_id: str) -> dict[str, Any]:
        """One dead letter with its history (oldest first)."""
        d, job = await self._mine(client, dead_id, Action.DASHBOARD)
        out = self.view(d, job, client)
        history = await self.trail.entries(job.answerKey, write=job.write) if job is not None else []
        out["history"] = [e.model_dump(mode="json", exclude_none=True) for e in history]
        return out

    async def retry(self, client: Client, dead_id: str, *, note: str = "") -> str:
        d, job = await self._mine(client, dead_id)
        if job is None:
            raise StatusError(Code.PARAM_VALUE, "this dead letter does not open or parse: it cannot be sent again, only discarded (DELETE)")
        if await self.may_have_landed(d, job):
            raise StatusError(
                Code.OUTCOME_UNKNOWN,
                f"this write may have reached the NHI cloud: a plain retry could execute it twice. {reconcile_hint(job.path)}; "
                f"if it did not land: POST /api/ops/dead-letters/{dead_id}/resend with {{\"reconciled\": true}}", idempotencyKey=job.idempotencyKey, resend=f"/api/ops/dead-letters/{dead_id}/resend",
            )
        return await self._requeue(client, d, job, "retry", note=note)

    async def bulk_retry(self, client: Client, req: DeadLetterBulkRetryRequest) -> DeadLetterBulkRetryResponse:
        """At most ``req.max`` retries, oldest first; a write that may have landed is never among them."""
        client.need(Action.DEAD_LETTERS)
        out = DeadLetterBulkRetryResponse()
        for d in await self.queue.dead():
            if len(out.retried) >= req.max:
                break
            job = _job(d.raw)
            if not client.operates_for(job.hospitalId if job else None):
                continue
            if job is None:
                out.unreadable.append(d.id)
                continue
            if (req.route and job.path.removeprefix("/api/v1/") != req.route.removeprefix("/api/v1/")) or (req.workstation and job.workstation != req.workstation):
                continue
            if await self.may_have_landed(d, job):
                out.needDecision.append(d.id)
                continue
            try:
                out.retried[d.id] = await self._requeue(client, d, job, "retry", note=f"bulk retry, bound {req.max}")
            except StatusError as err:
                if err.code != Code.NOT_FOUND:  # taken by another operator or replica meanwhile: not ours to count
                    raise
        log.info("dead_letters_bulk_retry", client=client.name, bound=req.max, retried=len(out.retried), needDecision=len(out.needDecision))
        return out

    async def resend(self, client: Client, dead_id: str, req: DeadLetterResendRequest) -> str:
        d, job = await self._mine(client, dead_id)
        if job is None:
            raise StatusError(Code.PARAM_VALUE, "this dead letter does not open or parse: it cannot be sent again, only discarded (DELETE)")
        if not req.reconciled:
            raise StatusError(Code.PARAM_VALUE, f"resend needs \"reconciled\": true: {reconcile_hint(job.path)}")
        return await self._requeue(client, d, job, "resend", note=req.note)

    async def _requeue(self, client: Client, d: DeadLetter, job: QueuedJob, action: str, note: str = "") -> str:
        taken = await self.queue.discard(d.id)  # taken once: another operator or replica may have been first
        if taken is None:
            raise StatusError(Code.NOT_FOUND, "no such dead letter")
        window = self.window_s
        await self.kv.delete(self.keys.answer(job.answerKey))  # the dead-letter answer: the new run answers the key
        if action == "resend":  # reconciled by the operator: the new run may send it again (its marker is placed NX)
            await self.kv.delete(self.keys.attempted(job.answerKey))
        await self.kv.set(self.keys.inflight(job.answerKey), fingerprint(job), ttl_s=window)
        # A new run of the request (a new requestId: the workers' replay check knows the old one),
        # under the same key; whoever asks with the key waits for its answer.
        now = time.time()
        rerun = job.model_copy(update={"requestId": uuid.uuid4().hex, "enqueuedAt": now, "deadline": now + self.deadline_s, "rerunOf": d.id})
        await self._trail(rerun, action, " ".join(x for x in (f"dead letter {d.id} put back as a new run", note) if x), client=client)  # before the run can write its own
        new_id = await self.queue.add(rerun)
        await self.audit(client, action, d.id, job, note)
        return new_id

    async def discard(self, client: Client, dead_id: str) -> None:
        d, job = await self._mine(client, dead_id)
        if await self.queue.discard(dead_id) is None:
            raise StatusError(Code.NOT_FOUND, "no such dead letter")
        await self.audit(client, "discard", dead_id, job)
        if job is None:
            return
        maybe = await self.may_have_landed(d, job)
        await self._trail(job, "discard", "may have landed: answered 9403" if maybe else "never sent: answered 9402", client=client)
        err = (
            StatusError(Code.OUTCOME_UNKNOWN, f"discarded by an operator after it may have reached the NHI cloud; {reconcile_hint(job.path)}", idempotencyKey=job.idempotencyKey)
            if maybe
            else StatusError(Code.UPSTREAM_UNAVAILABLE, "discarded by an operator; never sent", idempotencyKey=job.idempotencyKey)
        )
        ans = JobAnswer(requestId=job.requestId, idempotencyKey=job.idempotencyKey, httpStatus=err.http_status, body=json.dumps(err.body(), ensure_ascii=False), instance=self.instance)
        await self.store_answer(job.answerKey, ans, job.origin)

    async def audit(self, client: Client, action: str, dead_id: str, job: QueuedJob | None, note: str = "") -> None:
        """Operators' dead-letter actions go into the same chain (eventType "ops", ``ops_record``)."""
        detail = reconcile_hint(job.path) if job is not None and action == "resend" else None
        await self.audit_log.append(
            ops_record(
                client, f"dead-letters/{action}", {"retry": "E", "resend": "E", "discard": "D"}[action], instance=self.instance, site=self.site,
                hospital=job.hospitalId if job else client.hospitalId, workstation=job.workstation if job else None,
                request_id=job.requestId if job else dead_id, idempotency_key=job.idempotencyKey if job else "", note=" ".join(x for x in (detail, note) if x) or None,
            )
        )
