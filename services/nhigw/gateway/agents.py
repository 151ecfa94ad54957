"""The gateway's side of enrolment and agent keys (see ``nhigw.bus.enrol`` for the flow).

``AgentKeys`` issues one-time tokens, answers ``EnrolRequest`` messages, and keeps the
per-workstation keys: stored in the shared store sealed with the gateway key, cached
in memory, re-read when a message does not open with the cached key (another replica
may have enrolled a new agent for that workstation).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os

from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.enrol import new_token, request_mac, token_id, wrap_key
from nhigw.bus.seal import Sealer, SealError, open_envelope, seal_envelope
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, message
from nhigw.contracts.models import EnrolReply, EnrolRequest, ErrorBody
from nhigw.gateway.store import KV

log = get_logger("nhigw.gateway.agents")

ENROL_TOKEN_TTL_S = 24 * 3600.0


class AgentKeys:
    def __init__(self, bus: Bus, kv: KV, keys: BusKeys, gateway_key: bytes) -> None:
        self.bus, self.kv, self.keys = bus, kv, keys
        self.box = Sealer(gateway_key)
        self._cache: dict[str, tuple[str, bytes]] = {}  # workstation -> (agentId, key)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ tokens and keys

    async def issue_token(self, workstation: str, ttl_s: float = ENROL_TOKEN_TTL_S) -> str:
        token = new_token()
        blob = self.box.seal(json.dumps({"workstation": workstation, "token": token}).encode(), "enrol-token")
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
        except (SealError, ValueError):
            log.warning("agent_key_unreadable", workstation=workstation)
            return None
        entry = (d["agentId"], base64.b64decode(d["key"]))
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
        """Open an agent's envelope; on failure re-read that workstation's key once (re-enrolment)."""
        try:
            return open_envelope(lambda ws: (self._cache.get(ws) or (None, None))[1], channel, raw)
        except SealError:
            with contextlib.suppress(ValueError):
                ws = json.loads(raw).get("workstation")
                if isinstance(ws, str) and await self.refresh(ws):
                    return open_envelope(lambda w: (self._cache.get(w) or (None, None))[1], channel, raw)
            raise

    # ------------------------------------------------------------ enrolment service

    async def start(self) -> None:
        self._sub = await self.bus.subscribe(self.keys.enrol)
        self._task = asyncio.create_task(self._serve(), name="enrolment")

    async def _serve(self) -> None:
        assert self._sub is not None
        async for _ch, data in self._sub:
            try:
                req = EnrolRequest.model_validate_json(data)
            except ValueError:
                continue
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
            d = json.loads(self.box.open(blob, "enrol-token"))
        except (SealError, ValueError):
            return
        token, ws = d["token"], d["workstation"]
        if not hmac.compare_digest(request_mac(token, req.workstation, req.agentId, req.nonce), req.mac):
            log.warning("enrol_bad_mac", workstation=req.workstation)
            return
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
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub:
            await self._sub.close()
