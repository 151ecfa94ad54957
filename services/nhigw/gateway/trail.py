"""The history of a request that did not end in one clean run: every delivery, upstream attempt
and operator action, for the dead-letter view (``GET /api/ops/dead-letters/{id}``).

A clean run needs no trail: its audit record holds its upstream attempts. What is kept here, per
answer key (client + ``Idempotency-Key``, so a retried request's runs share one history), in the
gateway's KV (a Redis list shared by the replicas, TTL = the idempotency window, the last
``KEEP`` entries):

- ``failed``: a delivery that raised inside the worker (the error's class and masked message, the
  phases it got through: ``sign``, ``cloud`` in ms, as ``Server-Timing`` names them);
- ``redelivered``: a later delivery starting (the earlier one ended without an answer: its
  replica stopped, crashed or stalled past ``claim_idle_s``);
- ``answered``: a later delivery or an operator's re-run that ended, with the 6.0 code, the
  upstream attempts (number, outcome: ``ok``, the HTTP status or the error, latency) and phases;
- ``dead-lettered``: moved to the dead-letter stream after N deliveries, by which replica;
- ``retry`` / ``resend`` / ``discard`` / ``decision``: an operator's action (also in the audit chain).

Only first deliveries that end normally write nothing (the hot path pays no extra round trip);
a write's first send is known from its ``attempted`` marker, which names the replica and time
(``SentMarker``): the dead-letter view shows it as a ``sent`` entry. Entries carry no body, no
patient and no card data.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from nhigw.common.logging import get_logger, mask_text
from nhigw.gateway.audit import AuditAttempt

if TYPE_CHECKING:
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.store import KV

log = get_logger("nhigw.gateway.trail")

KEEP = 100  # entries per request: a poison job under an operator who retries it for days stays bounded

Event = Literal["failed", "redelivered", "answered", "sent", "dead-lettered", "retry", "resend", "discard", "decision"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TrailEntry(BaseModel):
    at: str = Field(default_factory=now_iso)
    event: Event
    instance: str  # the gateway replica (or, for an operator's action, the replica that took it)
    requestId: str
    delivery: int | None = None
    statusCode: int | None = None  # the 6.0 code of the answer (the cloud's, or the gateway's own)
    attempts: list[AuditAttempt] = Field(default_factory=list)
    phases: dict[str, float] = Field(default_factory=dict)  # Server-Timing names: queue, sign, cloud, audit (ms)
    client: str | None = None  # an operator's action: who
    detail: str | None = None


class SentMarker(BaseModel):
    """A write's ``attempted`` marker: set just before its first send, never sent again once set."""

    at: str = Field(default_factory=now_iso)
    instance: str
    requestId: str
    delivery: int = 1  # which delivery of the entry placed it (two may run at once)


def error_detail(exc: BaseException) -> str:
    """An exception as a trail shows it: its class and message, national IDs masked and signatures cut
    (as a log line shows them: the message may quote the signed request), bounded."""
    return mask_text(f"{type(exc).__name__}: {exc}")[:300]


class Trail:
    def __init__(self, kv: "KV", keys: "BusKeys", ttl_s: float) -> None:
        self.kv, self.keys, self.ttl_s = kv, keys, ttl_s

    async def add(self, answer_key: str, entry: TrailEntry) -> None:
        await self.kv.push(self.keys.trail(answer_key), entry.model_dump_json().encode(), ttl_s=self.ttl_s, keep=KEEP)

    async def entries(self, answer_key: str, *, write: bool) -> list[TrailEntry]:
        """The request's history, oldest first, with its first send (a write's marker) in its place."""
        out: list[TrailEntry] = []
        for raw in await self.kv.items(self.keys.trail(answer_key)):
            try:
                out.append(TrailEntry.model_validate_json(raw))
            except ValueError:
                log.warning("trail_entry_unreadable", answerKey=answer_key)
        out.sort(key=lambda e: e.at)  # stable: entries of one millisecond stay in the order they were pushed
        if write:
            marker = await self.kv.get(self.keys.attempted(answer_key))
            if marker is not None:
                try:
                    m = SentMarker.model_validate_json(marker)
                    sent = TrailEntry(at=m.at, event="sent", instance=m.instance, requestId=m.requestId, delivery=m.delivery, detail="sent to the NHI cloud (its answer was not recorded)")
                except ValueError:  # a marker written before markers named their sender
                    sent = TrailEntry(at="", event="sent", instance="?", requestId="?", detail="sent to the NHI cloud (time and replica not recorded)")
                # Set just before the send: before whatever that delivery recorded in the same millisecond
                # (its failure, say), which a plain sort by time would put either side of it.
                out.insert(bisect.bisect_left(out, sent.at, key=lambda e: e.at), sent)
        return out
