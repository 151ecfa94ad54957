"""Request/reply over the bus: the gateway asks one workstation's agent for a signature or a component call.

Calls and replies are ``SealedEnvelope``s under that workstation's agent key. A reply
counts only if it opens with the key of the workstation the call went to: another
agent, or any host without the key, cannot answer for it (forgeries are dropped and
counted in ``rejected``). No reply of any size or shape stops the receiving task
(``nhigw.bus.guard``): bad ones are dropped and counted by reason, logged once per interval.

Outcomes, each defined: a reply (ok or a 6.0 error from the agent); workstation not
enrolled or nobody subscribed to its channel (9400, at once); no reply before the
deadline (9401); the agent known gone while the call waits (``alive``, the gateway's registry:
its presence stopped or it said it is leaving): 9400 "agent went offline during the call" at once,
not after the full timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.guard import MAX_CALL_BYTES, Drop, Drops, Supervisor, serve
from nhigw.bus.seal import SealError
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import ComponentCall, ComponentReply, SignatureKind, SignCall, SignReply

log = get_logger("nhigw.bus.rpc")


class Envelopes(Protocol):
    async def seal(self, workstation: str, channel: str, data: bytes) -> bytes | None: ...

    async def open(self, channel: str, raw: bytes) -> tuple[str, bytes]: ...


class _ReplyHead(BaseModel):
    """What the receiver reads of any reply before handing it to the caller (which parses it whole)."""

    model_config = ConfigDict(extra="ignore")
    requestId: str


class RpcClient:
    def __init__(self, bus: Bus, keys: BusKeys, envelopes: Envelopes, node_id: str | None = None, *, drops: Drops | None = None,
                 supervisor: Supervisor | None = None, receiver: str = "replies") -> None:
        self.bus, self.keys, self.envelopes = bus, keys, envelopes
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.drops = drops or Drops()
        self.supervisor = supervisor or Supervisor()
        self.receiver = receiver  # the task's name and the drops' label
        self._pending: dict[str, tuple[str, asyncio.Future[bytes]]] = {}
        self._sub: Subscription | None = None
        self.alive: Callable[[str], bool] | None = None  # is this workstation's agent still there? (the gateway's registry)
        self.check_every_s = 0.1

    @property
    def rejected(self) -> int:
        """Replies dropped (forged, another workstation's, malformed, oversized)."""
        return self.drops.total(self.receiver)

    async def start(self) -> None:
        sub = self._sub = await self.bus.subscribe(self.keys.replies(self.node_id))
        self.supervisor.start(self.receiver, lambda: serve(sub, self.receiver, self._receive, self.drops, max_bytes=MAX_CALL_BYTES))

    async def _receive(self, channel: str, data: bytes) -> None:
        try:
            ws, plain = await self.envelopes.open(channel, data)
        except SealError as exc:
            raise Drop("forged") from exc
        request_id = _ReplyHead.model_validate_json(plain).requestId
        pending = self._pending.get(request_id)
        if pending is None:
            return  # late (its caller gave up) or a replay of an answered one: nobody waits for it
        want_ws, fut = pending
        if ws != want_ws:  # sealed by another enrolled workstation: not an answer for this one
            raise Drop("wrong_workstation")
        if not fut.done():
            fut.set_result(plain)

    async def _call(self, workstation: str, request_id: str, msg: BaseModel, timeout_s: float) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (workstation, fut)
        try:
            channel = self.keys.calls(workstation)
            try:
                sealed = await self.envelopes.seal(workstation, channel, msg.model_dump_json().encode())
                if sealed is None:
                    raise StatusError(Code.WORKSTATION_OFFLINE, f"workstation {workstation!r} is not enrolled", workstation=workstation)
                receivers = await self.bus.publish(channel, sealed)
            except BusError as exc:
                raise StatusError(Code.UPSTREAM_UNAVAILABLE, "message bus unavailable") from exc
            if receivers == 0:
                raise StatusError(Code.WORKSTATION_OFFLINE, f"workstation {workstation!r} is not connected", workstation=workstation)
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout_s
            seen = self.alive is not None and self.alive(workstation)  # there during the call (one never seen waits for its timeout)
            while True:  # the reply, the deadline, or the agent known gone (``alive``), whichever comes first
                remaining = end - loop.time()
                if remaining <= 0:
                    raise StatusError(Code.WORKSTATION_TIMEOUT, f"workstation {workstation!r} did not answer within {timeout_s:g} s", workstation=workstation)
                await asyncio.wait((fut,), timeout=min(self.check_every_s, remaining))
                if fut.done():
                    return fut.result()
                if self.alive is None:
                    continue
                if self.alive(workstation):
                    seen = True
                elif seen:
                    raise StatusError(Code.WORKSTATION_OFFLINE, f"agent went offline during the call (workstation {workstation!r})", workstation=workstation)
        finally:
            self._pending.pop(request_id, None)

    async def sign(self, workstation: str, kind: SignatureKind, service_type: str, *, timeout_s: float = 10.0) -> SignReply:
        req = SignCall(
            requestId=uuid.uuid4().hex,
            workstation=workstation,
            kind=kind,
            serviceType=service_type,
            replyTo=self.keys.replies(self.node_id),
            deadline=time.time() + timeout_s,
        )
        return SignReply.model_validate_json(await self._call(workstation, req.requestId, req, timeout_s))

    async def component(self, workstation: str, method: str, path: str, body: str, *, timeout_s: float = 30.0) -> ComponentReply:
        req = ComponentCall(
            requestId=uuid.uuid4().hex,
            workstation=workstation,
            method=method,
            path=path,
            body=body,
            replyTo=self.keys.replies(self.node_id),
            deadline=time.time() + timeout_s,
        )
        return ComponentReply.model_validate_json(await self._call(workstation, req.requestId, req, timeout_s))

    async def close(self) -> None:
        await self.supervisor.stop(self.receiver)
        if self._sub:
            await self._sub.close()
