"""The agent's side of the bus: presence heartbeats and the gateway's signature calls.

Presence goes out on start, every ``interval_s`` and at once on any state change;
``leaving=True`` on a clean stop, so the gateway marks the workstation offline at
once rather than after the 3-second silence. A call past its deadline is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from nhigw import __version__
from nhigw.agent.core import Agent
from nhigw.bus.base import Bus, BusError
from nhigw.bus.seal import Sealer, SealError
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import StatusError, message
from nhigw.contracts.models import (
    ErrorBody,
    Presence,
    SignatureObject,
    SignCall,
    SignReply,
)

log = get_logger("nhigw.agent.bus")


class BusLink:
    def __init__(self, agent: Agent, bus: Bus, keys: BusKeys, *, interval_s: float = 1.0, sealer: Sealer | None = None) -> None:
        self.agent, self.bus, self.keys = agent, bus, keys
        self.sealer = sealer or Sealer(None)
        self.interval_s = interval_s
        self.agent_id = uuid.uuid4().hex[:12]
        self._tasks: list[asyncio.Task[None]] = []
        self._kick = asyncio.Event()

    def presence(self, leaving: bool = False) -> Presence:
        return Presence(
            workstation=self.agent.workstation,
            agentId=self.agent_id,
            version=__version__,
            sentAt=time.time(),
            interval_s=self.interval_s,
            states=self.agent.card_states(),
            leaving=leaving,
        )

    async def start(self) -> None:
        sub = await self.bus.subscribe(self.keys.calls(self.agent.workstation))
        self.agent.listeners.append(self._kick.set)
        self._tasks = [asyncio.create_task(self._heartbeat(), name="presence"), asyncio.create_task(self._serve(sub), name="sign-calls")]

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self.bus.publish(self.keys.presence, self.presence().model_dump_json().encode())
            except BusError as exc:
                log.warning("presence_failed", error=str(exc))
            self._kick.clear()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval_s)

    async def _serve(self, sub) -> None:  # type: ignore[no-untyped-def]
        async for channel, data in sub:
            try:
                call = SignCall.model_validate_json(self.sealer.open(data, channel))
            except (ValueError, SealError):
                log.warning("bad_sign_call")  # forged, unsealed or malformed: dropped
                continue
            asyncio.create_task(self._answer(call))

    async def _answer(self, call: SignCall) -> None:
        if call.deadline < time.time():
            log.info("sign_call_expired", requestId=call.requestId)
            return
        try:
            sig = await self.agent.sign(call.kind, call.serviceType)
            reply = SignReply(requestId=call.requestId, workstation=self.agent.workstation, ok=True, signature=SignatureObject.model_validate(sig.model_dump(exclude={"statusCode"})))
        except StatusError as err:
            zh, en = message(err.code)
            reply = SignReply(requestId=call.requestId, workstation=self.agent.workstation, ok=False, error=ErrorBody(statusCode=err.code, message=zh, messageEn=en, detail=err.detail))
        self.agent.record(f"BUS sign {call.kind.value}", 0 if reply.ok else (reply.error.statusCode if reply.error else 0))
        try:
            await self.bus.publish(call.replyTo, self.sealer.seal(reply.model_dump_json().encode(), call.replyTo))
        except BusError as exc:
            log.warning("reply_failed", error=str(exc))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        with contextlib.suppress(BusError):
            await self.bus.publish(self.keys.presence, self.presence(leaving=True).model_dump_json().encode())
