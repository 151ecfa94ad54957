"""Request/reply over the bus: the gateway asks one workstation's agent for a signature.

Outcomes, each defined: a reply (ok or a 6.0 error from the agent); nobody subscribed
to that workstation's channel (9400, at once); no reply before the deadline (9401).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.seal import Sealer, SealError
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import SignatureKind, SignCall, SignReply

log = get_logger("nhigw.bus.rpc")


class RpcClient:
    def __init__(self, bus: Bus, keys: BusKeys, node_id: str | None = None, sealer: Sealer | None = None) -> None:
        self.bus, self.keys = bus, keys
        self.sealer = sealer or Sealer(None)
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._pending: dict[str, asyncio.Future[SignReply]] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.bus.subscribe(self.keys.replies(self.node_id))
        self._task = asyncio.create_task(self._receive(), name="rpc-replies")

    async def _receive(self) -> None:
        assert self._sub is not None
        async for channel, data in self._sub:
            try:
                reply = SignReply.model_validate_json(self.sealer.open(data, channel))
            except (ValueError, SealError):
                log.warning("rpc_bad_reply")
                continue
            fut = self._pending.get(reply.requestId)
            if fut and not fut.done():
                fut.set_result(reply)

    async def sign(self, workstation: str, kind: SignatureKind, service_type: str, *, timeout_s: float = 10.0) -> SignReply:
        req = SignCall(
            requestId=uuid.uuid4().hex,
            workstation=workstation,
            kind=kind,
            serviceType=service_type,
            replyTo=self.keys.replies(self.node_id),
            deadline=time.time() + timeout_s,
        )
        fut: asyncio.Future[SignReply] = asyncio.get_running_loop().create_future()
        self._pending[req.requestId] = fut
        try:
            try:
                channel = self.keys.calls(workstation)
                receivers = await self.bus.publish(channel, self.sealer.seal(req.model_dump_json().encode(), channel))
            except BusError as exc:
                raise StatusError(Code.UPSTREAM_UNAVAILABLE, "message bus unavailable", http_status=503) from exc
            if receivers == 0:
                raise StatusError(Code.WORKSTATION_OFFLINE, f"workstation {workstation!r} is not connected", http_status=503, workstation=workstation)
            try:
                return await asyncio.wait_for(fut, timeout_s)
            except TimeoutError as exc:
                raise StatusError(Code.WORKSTATION_TIMEOUT, f"workstation {workstation!r} did not answer within {timeout_s:g} s", http_status=504, workstation=workstation) from exc
        finally:
            self._pending.pop(req.requestId, None)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub:
            await self._sub.close()
