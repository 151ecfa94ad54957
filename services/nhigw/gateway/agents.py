"""The gateway's side of enrolment and agent keys (see ``nhigw.bus.enrol`` for the flow).

``AgentKeys`` issues one-time tokens, answers ``EnrolRequest`` messages, and keeps the
per-workstation keys: stored in the shared store sealed with the gateway key (bound to their
workstation: AAD ``agent-key:<workstation>``), cached in memory, re-read when a message does not
open with the cached key (another replica may have enrolled a new agent for that workstation).
That re-read is rate-limited (once per ``refresh_every_s`` per workstation named, and at most
``refreshes_per_s``, 200, in all for names with no cached key: a replica that just started learns
200 workstations' keys a second): a flood of forged messages costs no Redis
round trip each and changes no state (the key cache follows Redis only). Known limit: while a flood
under ever-new names lasts, a workstation this replica has no key cached for yet (just after the
replica started, before any HIS call to it) may wait for its key's first read.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import time

from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.enrol import new_token, request_mac, token_id, wrap_key
from nhigw.bus.guard import MAX_SMALL_BYTES, Drop, Drops, Supervisor, serve
from nhigw.bus.seal import Sealer, SealError, open_blob, parse_envelope, seal_envelope
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, message
from nhigw.contracts.models import EnrolReply, EnrolRequest, ErrorBody
from nhigw.gateway.store import KV

log = get_logger("nhigw.gateway.agents")

ENROL_TOKEN_TTL_S = 24 * 3600.0


class AgentKeys:
    def __init__(self, bus: Bus, kv: KV, keys: BusKeys, gateway_key: bytes | None, *, drops: Drops | None = None, supervisor: Supervisor | None = None,
                 refresh_every_s: float = 1.0, refreshes_per_s: float = 200.0) -> None:
        self.bus, self.kv, self.keys = bus, kv, keys
        self.box = Sealer(gateway_key)
        self.drops = drops or Drops()
        self.supervisor = supervisor or Supervisor()
        self.refresh_every_s, self.refreshes_per_s = refresh_every_s, refreshes_per_s
        self._cache: dict[str, tuple[str, bytes]] = {}  # workstation -> (agentId, key)
        self._refreshed: dict[str, float] = {}  # workstation named by a message that did not open -> when its key was re-read
        self._budget, self._budget_at = refreshes_per_s, time.monotonic()
        self._sub: Subscription | None = None

    # ------------------------------------------------------------ tokens and keys

    async def issue_token(self, workstation: str, ttl_s: float = ENROL_TOKEN_TTL_S) -> str:
        token = new_token()
        blob = self.box.seal(json.dumps({"workstation": workstation, "token": token}).encode(), _token_aad(token_id(token)))
        await self.kv.set(self.keys.enrol_token(token_id(token)), blob, ttl_s=ttl_s)
        return token

    async def refresh(self, workstation: str) -> tuple[str, bytes] | None:
        try:
            blob = await self.kv.get(self.keys.agent_key(workstation))
        except BusError:
            return self._cache.get(workstation)
        if blob is None:
            self._cache.pop(workstation, None)
            return None
        try:
            d = json.loads(self.box.open(blob, f"agent-key:{workstation}"))
            entry = (str(d["agentId"]), base64.b64decode(d["key"]))
        except (SealError, ValueError, KeyError, TypeError):
            log.warning("agent_key_unreadable", workstation=workstation)
            return None
        self._cache[workstation] = entry
        return entry

    async def get(self, workstation: str) -> tuple[str, bytes] | None:
        return self._cache.get(workstation) or await self.refresh(workstation)

    def agent_id(self, workstation: str) -> str | None:
        e = self._cache.get(workstation)
        return e[0] if e else None

    # ------------------------------------------------------------ envelopes

    async def seal(self, workstation: str, channel: str, data: bytes) -> bytes | None:
        entry = await self.get(workstation)
        return seal_envelope(entry[1], channel, workstation, data) if entry else None

    async def open(self, channel: str, raw: bytes) -> tuple[str, bytes]:
        """Open an agent's envelope; on failure re-read that workstation's key (re-enrolment), rate-limited."""
        ws, blob = parse_envelope(raw)
        entry = self._cache.get(ws)
        try:
            return ws, open_blob(entry[1] if entry else None, channel, ws, blob)
        except SealError:
            if not self._may_refresh(ws):
                raise
            fresh = await self.refresh(ws)
            if fresh is None or fresh == entry:
                raise
            return ws, open_blob(fresh[1], channel, ws, blob)

    def _may_refresh(self, workstation: str) -> bool:
        now = time.monotonic()
        if now - self._refreshed.get(workstation, -1e9) < self.refresh_every_s:
            return False
        if workstation not in self._cache:  # names this replica knows no key for share one budget (forged names)
            self._budget = min(self.refreshes_per_s, self._budget + (now - self._budget_at) * self.refreshes_per_s)
            self._budget_at = now
            if self._budget < 1:
                return False
            self._budget -= 1
        if len(self._refreshed) > 10_000:  # forged names: forget those past their interval
            self._refreshed = {w: t for w, t in self._refreshed.items() if now - t < self.refresh_every_s}
        self._refreshed[workstation] = now
        return True

    # ------------------------------------------------------------ enrolment service

    async def start(self) -> None:
        sub = self._sub = await self.bus.subscribe(self.keys.enrol)
        self.supervisor.start("enrolment", lambda: serve(sub, "enrol", self._serve_one, self.drops, max_bytes=MAX_SMALL_BYTES))

    async def _serve_one(self, _channel: str, data: bytes) -> None:
        req = EnrolRequest.model_validate_json(data)
        try:
            await self._handle(req)
        except BusError as exc:
            log.warning("enrol_failed", error=str(exc))

    async def _handle(self, req: EnrolRequest) -> None:
        key_name = self.keys.enrol_token(req.tokenId)
        blob = await self.kv.get(key_name)
        if blob is None:
            return  # unknown or used token (maybe another replica won): stay silent, the agent resends or times out
        try:
            d = json.loads(self.box.open(blob, _token_aad(req.tokenId)))
            token, ws = str(d["token"]), str(d["workstation"])
        except (SealError, ValueError, KeyError, TypeError) as exc:
            raise Drop("token_unreadable") from exc
        if not hmac.compare_digest(request_mac(token, req.workstation, req.agentId, req.nonce), req.mac):
            raise Drop("bad_mac")
        if ws != req.workstation:
            zh, en = message(Code.UNAUTHORIZED)
            err = ErrorBody(statusCode=Code.UNAUTHORIZED, message=zh, messageEn=en, detail=f"this token is for workstation {ws!r}")
            await self.bus.publish(self.keys.enrol_reply(req.agentId), EnrolReply(workstation=req.workstation, agentId=req.agentId, ok=False, error=err).model_dump_json().encode())
            return
        if await self.kv.getdel(key_name) is None:
            return  # another replica consumed it first
        key = os.urandom(32)
        sealed = self.box.seal(json.dumps({"agentId": req.agentId, "key": base64.b64encode(key).decode()}).encode(), f"agent-key:{ws}")
        await self.kv.set(self.keys.agent_key(ws), sealed)
        self._cache[ws] = (req.agentId, key)
        log.info("agent_enrolled", workstation=ws, agentId=req.agentId)
        reply = EnrolReply(workstation=ws, agentId=req.agentId, ok=True, wrappedKey=wrap_key(token, req.nonce, req.agentId, key))
        await self.bus.publish(self.keys.enrol_reply(req.agentId), reply.model_dump_json().encode())

    async def close(self) -> None:
        await self.supervisor.stop("enrolment")
        if self._sub:
            await self._sub.close()


def _token_aad(tid: str) -> str:
    """An enrolment token's record is bound to its own id (a copy under another id does not open)."""
    return f"enrol-token:{tid}"
